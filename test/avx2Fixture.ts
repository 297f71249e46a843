// Runs some tests of a test file again in a child process on the native kernels' AVX2 path
// (MOPO_NATIVE_ISA=avx2), for the tests that check both instruction sets on an AVX-512 machine.
// Not a test itself (`node --test dist/test/` loads it and finds none).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { nativeKernelsInfo } from '../pipeline/kernels.js';

/** Why the AVX2 re-run is skipped here, or false when it runs (AVX-512 in use). */
export const avx2Skip: string | false = nativeKernelsInfo().isa !== 'avx512' ? 'AVX-512 not in use here' : false;

/** Runs the tests of `testFileUrl` (import.meta.url) matching `pattern` on AVX2; asserts that `passes` of them ran and passed. */
export function passOnAvx2(testFileUrl: string, pattern: string, passes: number): void {
  const env: NodeJS.ProcessEnv = { ...process.env, MOPO_NATIVE_ISA: 'avx2' };
  delete env.NODE_TEST_CONTEXT; // a runner of its own, reporting as text
  const r = spawnSync(process.execPath, ['--test', `--test-name-pattern=${pattern}`, fileURLToPath(testFileUrl)], { env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`# pass ${passes}\\b`));
}
