// The docs' command lines and code, held to the code: every `npx mopo …` in README.md and docs/*.md
// (in sh blocks and in inline code), and every `--help` example, must be one the CLI accepts — its command, flags, choices and
// types, checked by checkCommandLine without running anything — and the README's TypeScript
// examples must type-check against the library's exports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { checkCommandLine } from '../pipeline/cli.js';

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const DOCS = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

export interface DocCommand {
  file: string;
  line: number;
  text: string;
}

/** Shell words of one command line: whitespace-separated, '…' and "…" quoted; no expansions. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  let cur = '';
  let last = -1;
  for (let m; (m = re.exec(line)) !== null; ) {
    const part = m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2] ?? m[3]!;
    if (m.index === last) cur += part; // adjacent pieces (--reference "35.4=…") are one word
    else {
      if (last >= 0) words.push(cur);
      cur = part;
    }
    last = re.lastIndex;
  }
  if (last >= 0) words.push(cur);
  return words;
}

/** The 1-based line of `text` that character `index` is on. */
const lineAt = (text: string, index: number) => text.slice(0, index).split('\n').length;
/** A shell line without its leading environment assignments (MOPO_NATIVE_KERNELS=0 npx mopo …): they are the shell's, not the CLI's. */
const withoutEnvAssignments = (line: string) => line.trim().replace(/^(?:[A-Z_][A-Z0-9_]*=\S*\s+)+/, '');

/** The `npx mopo` command lines of a markdown text: lines of sh blocks and inline code spans. */
export function docCommands(file: string, text: string): DocCommand[] {
  const out: DocCommand[] = [];
  const lines = text.split('\n');
  let inSh = false;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (/^```/.test(l)) {
      inSh = !inSh && /^```(sh|bash)\s*$/.test(l);
      continue;
    }
    if (inSh) {
      const t = withoutEnvAssignments(l);
      if (t.startsWith('npx mopo ')) out.push({ file, line: i + 1, text: t.replace(/\s+#.*$/, '') });
    }
  }
  // Inline code may wrap across lines in prose.
  for (const m of text.matchAll(/`(npx mopo [^`]+)`/g)) {
    const line = lineAt(text, m.index!);
    if (withoutEnvAssignments(lines[line - 1]!).startsWith('npx mopo ')) continue; // an sh block's line, taken above
    out.push({ file, line, text: m[1]!.replace(/\s+/g, ' ').trim() });
  }
  return out;
}

/** The `--help` examples of pipeline/cli.ts (`.example('$0 …', …)`), as `npx mopo …` lines. */
export function helpExamples(source: string): DocCommand[] {
  return [...source.matchAll(/\.example\(\s*'\$0 ((?:[^'\\]|\\.)*)'/g)].map((m) => ({
    file: 'pipeline/cli.ts',
    line: lineAt(source, m.index!),
    text: `npx mopo ${m[1]!.replace(/\\(.)/g, '$1')}`,
  }));
}

/** Placeholders and elisions stand for text the reader fills in: not command lines to check. */
const elided = (c: DocCommand) => /…|\.\.\.|<command>/.test(c.text);

test('every `npx mopo` command line in the docs, and every --help example, is one the CLI accepts', async (t) => {
  const commands = [
    ...DOCS.flatMap((f) => docCommands(f, readFileSync(join(ROOT, f), 'utf8'))),
    ...helpExamples(readFileSync(join(ROOT, 'pipeline', 'cli.ts'), 'utf8')),
  ].filter((c) => !elided(c));
  assert.ok(commands.length >= 40, `found only ${commands.length} command lines: is the extraction broken?`);
  assert.ok(commands.filter((c) => c.file === 'pipeline/cli.ts').length >= 20, 'the --help examples were not found');
  const bad: string[] = [];
  for (const c of commands) {
    const msg = await checkCommandLine(shellWords(c.text).slice(2));
    if (msg !== null) bad.push(`${c.file}:${c.line}: ${c.text}\n    ${msg}`);
  }
  assert.deepEqual(bad, [], `command lines the CLI refuses:\n${bad.join('\n')}`);
  t.diagnostic(`${commands.length} command lines checked`);
});

/** The ```ts blocks of a markdown text. */
export function tsBlocks(text: string): { line: number; code: string }[] {
  const out: { line: number; code: string }[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i]!)) continue;
    const start = i + 1;
    while (++i < lines.length && !/^```/.test(lines[i]!));
    out.push({ line: start + 1, code: lines.slice(start, i).join('\n') });
  }
  return out;
}

test("the README's TypeScript examples type-check against the library", () => {
  const blocks = DOCS.flatMap((f) => tsBlocks(readFileSync(join(ROOT, f), 'utf8')).map((b) => ({ ...b, file: f })));
  assert.ok(blocks.length >= 2, `found ${blocks.length} TypeScript blocks`);
  // Inside the project, so that rxjs and the rest resolve from its node_modules; 'mopo-stream' is the
  // package's own declarations (dist/index.d.ts, built with the tests).
  const dir = mkdtempSync(join(ROOT, 'dist', 'docs-check-'));
  try {
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
    const names = blocks.map((b, i) => {
      const name = `block${i}.ts`;
      writeFileSync(join(dir, name), `// ${b.file}:${b.line}\n${b.code}\nexport {};\n`);
      return name;
    });
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: true,
        types: ['node'], paths: { 'mopo-stream': [join(ROOT, 'dist', 'index.d.ts')] },
      },
      files: names,
    }));
    let out = '';
    try {
      execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { encoding: 'utf8' });
    } catch (e) {
      out = String((e as { stdout?: string }).stdout ?? e);
    }
    // Name the doc and line of each error, not the scratch file's.
    const located = out.replace(/\S*block(\d+)\.ts\((\d+),(\d+)\)/g, (_, i: string, l: string) => `${blocks[Number(i)]!.file}:${blocks[Number(i)]!.line + Number(l) - 2}`);
    assert.equal(located, '', `the docs' TypeScript does not type-check:\n${located}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('checkCommandLine refuses what the CLI refuses and runs nothing', async () => {
  assert.equal(await checkCommandLine(['train', '--dataset', 'no/such/file.parquet', '--lambda', '0']), null);
  assert.match((await checkCommandLine(['train', '--dataset', 'x.parquet', '--lamda', '0']))!, /Unknown argument: lamda/);
  assert.match((await checkCommandLine(['train', '--dataset', 'x.parquet', '--penalty', 'biggest']))!, /Invalid values/);
  assert.match((await checkCommandLine(['trian']))!, /Unknown argument|Did you mean/);
  assert.notEqual(await checkCommandLine(['inspect']), null);
  assert.deepEqual(shellWords(`npx mopo runs plot a --reference "35.4=MOPO paper (D4RL v0)" --out x.svg`), ['npx', 'mopo', 'runs', 'plot', 'a', '--reference', '35.4=MOPO paper (D4RL v0)', '--out', 'x.svg']);
});
