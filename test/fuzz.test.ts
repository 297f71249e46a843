// The fuzzer (scripts/fuzz.ts) in its fast variant, its seed corpus (test/fixtures/fuzz/: inputs that
// once crashed, hung, blew up memory or read wrong, each now a clear error), and the containment
// of its child processes. The full campaign is `node dist/scripts/fuzz.js --cases 2000 --seed 1`.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { classifyCli, runCaseInProcess, runChild, unclearReason, type Target } from '../scripts/fuzz.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURES = join(ROOT, 'test', 'fixtures', 'fuzz');
const CLI = join(ROOT, 'dist', 'pipeline', 'cli.js');
const FUZZ = join(ROOT, 'dist', 'scripts', 'fuzz.js');

interface CorpusEntry {
  name: string;
  target: Target;
  input: string;
  sets?: string[];
  expect: 'ok' | 'clear';
  match?: string;
  rows?: number;
  bug: string;
}
const corpus = JSON.parse(readFileSync(join(FIXTURES, 'corpus.json'), 'utf8')) as CorpusEntry[];

const tmp = mkdtempSync(join(tmpdir(), 'mopo-fuzz-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('seed corpus: inputs that exposed bugs', () => {
  for (const e of corpus) {
    test(`${e.name}${e.sets ? ` --set ${e.sets.join(' ')}` : ''}: ${e.expect === 'ok' ? 'reads correctly' : 'a clear error'}`, async () => {
      const r = await runCaseInProcess({ target: e.target, input: join(FIXTURES, e.input), runOut: join(tmp, `run-${e.name}`), ...(e.sets ? { sets: e.sets } : {}) });
      assert.equal(r.outcome, e.expect, `${e.bug}\n→ ${r.outcome}: ${r.detail}`);
      if (e.match) assert.match(r.detail, new RegExp(e.match), e.bug);
      if (e.rows !== undefined) assert.match(r.detail, new RegExp(`: ${e.rows} rows`));
      assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched');
    });
  }
});

describe('seed corpus through the CLI', () => {
  // one of each kind: exit code 2, one paragraph on stderr, no stack trace
  for (const name of ['parquet-page-uncompressed-huge.parquet', 'shard-ipc-field-count', 'pipeline-set-proto']) {
    test(`${name}: exit 2, one paragraph, no stack trace`, () => {
      const e = corpus.find((x) => x.name === name)!;
      const input = join(FIXTURES, e.input);
      const args = e.target === 'pipeline' ? ['run', input, '--out', join(tmp, `cli-${name}`), '--quiet', ...(e.sets ?? []).flatMap((s) => ['--set', s])] : ['inspect', input, '--json', '--quiet'];
      const r = spawnSync(process.execPath, ['--max-old-space-size=256', CLI, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, MOPO_BACKEND: 'cpu' } });
      const c = classifyCli({ target: e.target, runOut: tmp }, { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, peakRssMb: 0 });
      assert.equal(c.outcome, 'clear', c.detail);
      assert.match(c.detail, new RegExp(e.match!));
    });
  }
});

describe('harness', () => {
  test('what counts as a clear error', () => {
    assert.equal(unclearReason('x.parquet: the file is empty (0 bytes), not a Parquet file. Re-create it.'), undefined);
    assert.match(unclearReason('TypeError: boom\n    at f (file:///a.js:1:2)')!, /stack/);
    assert.match(unclearReason('one\n\ntwo')!, /paragraph/);
    assert.match(unclearReason('  ')!, /empty/);
    assert.match(unclearReason('checksum: [object Object] bytes')!, /object Object/);
  });

  test('a crash, a hang and a memory blow-up in a child are contained and are failures', async () => {
    const o = { timeoutMs: 1500, rssLimitMb: 400, heapMb: 256 };
    const crash = await runChild(['-e', 'process.abort()'], o);
    const hang = await runChild(['-e', 'for (;;) {}'], o);
    const memory = await runChild(['-e', 'const a = []; for (;;) a.push(new Uint8Array(64 << 20).fill(1))'], { ...o, timeoutMs: 30_000 });
    const stack = await runChild(['-e', 'throw new TypeError("boom")'], o);
    assert.equal(crash.signal, 'SIGABRT');
    assert.equal(hang.killedFor, 'timeout');
    assert.equal(memory.killedFor, 'memory', `peak ${memory.peakRssMb} MB`);
    for (const r of [crash, hang, memory, stack]) assert.equal(classifyCli({ target: 'parquet', runOut: tmp }, r).outcome, 'failure');
  });
});

test('fast fuzz: 80 cases, every one a clear error or a correct result', { timeout: 120_000 }, () => {
  const out = join(tmp, 'fuzz');
  const r = spawnSync(process.execPath, [FUZZ, '--cases', '80', '--seed', '11', '--cli-fraction', '0.04', '--out', out, '--quiet'], { encoding: 'utf8', timeout: 110_000 });
  const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { cases: number; counts: Record<string, number>; failures: Array<{ id: number; mutator: string; detail: string }> };
  assert.deepEqual(report.failures.map((f) => `case ${f.id} (${f.mutator}): ${f.detail.split('\n')[0]}`), []);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^fuzz: 80 cases, ok \d+, clear errors \d+, failures 0$/m);
  assert.equal(report.cases, 80);
  assert.equal(report.counts.ok! + report.counts.clear!, 80);
  assert.ok(report.counts.ok! > 0 && report.counts.clear! > 0, JSON.stringify(report.counts));
});
