// The CLI as a user meets it: a subprocess, its exit code, stdout and stderr.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'pipeline', 'cli.js');

export function mopo(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const STACK = /^\s+at .+:\d+:\d+\)?$/m;

test('--help lists every command; each command has its own --help', () => {
  const r = mopo(['--help']);
  assert.equal(r.code, 0, r.stderr);
  for (const c of ['start', 'inspect', 'bench']) assert.match(r.stdout, new RegExp(`mopo ${c}`));
  for (const c of ['start', 'inspect', 'bench']) {
    const h = mopo([c, '--help']);
    assert.equal(h.code, 0, h.stderr);
    assert.match(h.stdout, /Examples:/);
  }
});

test('unknown flags, missing commands and bad choices exit 2 with a usage hint', () => {
  for (const args of [['inspect', 'x.parquet', '--bogus'], [], ['bench', 'nope'], ['frobnicate'], ['bench', 'dense', '--backend', 'gpu']]) {
    const r = mopo(args);
    assert.equal(r.code, 2, `mopo ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /mopo --help/);
    assert.doesNotMatch(r.stderr, STACK);
  }
  assert.match(mopo(['inspect', 'x.parquet', '--bogus']).stderr, /Unknown argument: bogus/);
});

test('a missing input file is one paragraph naming the file, exit 2, no stack trace', () => {
  const r = mopo(['inspect', '/nonexistent/dir/data.parquet']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /\/nonexistent\/dir\/data\.parquet/);
  assert.doesNotMatch(r.stderr, STACK);
  assert.equal(r.stdout, '');
});

test('an invalid MOPO_BACKEND names the variable and the valid values', () => {
  const r = mopo(['bench', 'dense', '--json', '--seconds', '0.1'], { MOPO_BACKEND: 'tpu' });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /MOPO_BACKEND/);
  assert.match(r.stderr, /node, wasm, cpu/);
  assert.doesNotMatch(r.stderr, STACK);
});
