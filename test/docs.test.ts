// The docs' command lines and code, held to the code: every `npx mopo …` in README.md and docs/*.md
// (in sh blocks and in inline code), and every `--help` example, must be one the CLI accepts — its command, flags, choices and
// types, checked by checkCommandLine without running anything — the README's TypeScript
// examples must type-check against the library's exports, and every relative link must reach its
// file and heading.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
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

/** A heading's anchor as GitHub makes it: lower case, punctuation and symbols out, each space a hyphen. */
export function headingSlug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

/** The lines of a markdown text outside fenced code blocks, with their 1-based numbers (fences left out too). */
function proseLines(text: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  let inCode = false;
  text.split('\n').forEach((l, i) => {
    if (/^```/.test(l)) inCode = !inCode;
    else if (!inCode) out.push({ line: i + 1, text: l });
  });
  return out;
}

/** The anchors of a markdown text's headings (outside code blocks; a repeated one gets -1, -2, …). */
export function headingAnchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const { text: l } of proseLines(text)) {
    const m = /^#{1,6}\s+(.*)$/.exec(l);
    if (!m) continue;
    const slug = headingSlug(m[1]!);
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    out.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return out;
}

/** The relative link targets of a markdown text (links and images outside code blocks and spans). */
export function relativeLinks(text: string): { line: number; target: string }[] {
  const out: { line: number; target: string }[] = [];
  for (const { line, text: l } of proseLines(text)) {
    for (const m of l.replace(/`[^`]*`/g, '').matchAll(/\]\(([^()\s]+)\)/g)) {
      if (!/^[a-z][a-z0-9+.-]*:/i.test(m[1]!)) out.push({ line, target: m[1]! });
    }
  }
  return out;
}

test('every relative link in the docs reaches its file, and its #heading there', () => {
  const bad: string[] = [];
  const anchors = new Map<string, Set<string>>(); // per target file, read once
  const anchorsOf = (path: string) => anchors.get(path) ?? anchors.set(path, headingAnchors(readFileSync(path, 'utf8'))).get(path)!;
  let n = 0;
  for (const f of DOCS) {
    for (const { line, target } of relativeLinks(readFileSync(join(ROOT, f), 'utf8'))) {
      n++;
      const [path, anchor] = target.split('#') as [string, string | undefined];
      const to = path === '' ? join(ROOT, f) : join(ROOT, dirname(f), decodeURIComponent(path));
      if (!existsSync(to)) bad.push(`${f}:${line}: ${target}: no such file`);
      else if (anchor !== undefined && !anchorsOf(to).has(decodeURIComponent(anchor))) bad.push(`${f}:${line}: ${target}: no such heading`);
    }
  }
  assert.ok(n >= 20, `found only ${n} links: is the extraction broken?`);
  assert.deepEqual(bad, []);
  // GitHub's anchors, by hand: symbols and punctuation go, spaces stay as hyphens.
  assert.equal(headingSlug('λ = 0 on the same ensemble: 40.9'), 'λ--0-on-the-same-ensemble-409');
  assert.equal(headingSlug('`mopo replay <run-dir>` and `mopo runs ls|show|plot`'), 'mopo-replay-run-dir-and-mopo-runs-lsshowplot');
  assert.deepEqual([...headingAnchors('# A\n## A\n```\n# B\n```\n')], ['a', 'a-1']);
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
