// native/build.mjs, the install step of the native kernels: without Node's headers it does not run
// node-gyp at all (which would download headers), says why, and lets the install go on (exit 0).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './queueScriptFixture.js';

const BUILT = join(ROOT, 'native', 'build', 'Release', 'mopo_kernels.node');
const run = (env: Record<string, string>) =>
  spawnSync(process.execPath, [join(ROOT, 'native', 'build.mjs')], { env: { ...process.env, ...env }, encoding: 'utf8' });

test('native/build.mjs: no Node headers → no node-gyp, a clear line, exit 0; MOPO_NATIVE_KERNELS=0 skips it', () => {
  const before = existsSync(BUILT) ? statSync(BUILT).mtimeMs : null;
  const r = run({ npm_config_nodedir: '/nonexistent-node-dir', npm_config_node_gyp: '/nonexistent/node-gyp.js' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /native kernels not built \(no Node headers at \/nonexistent-node-dir\/include\/node\); the wasm kernels will be used/);
  const off = run({ MOPO_NATIVE_KERNELS: '0' });
  assert.equal(off.status, 0);
  assert.match(off.stderr, /not built \(MOPO_NATIVE_KERNELS=0\)/);
  assert.equal(existsSync(BUILT) ? statSync(BUILT).mtimeMs : null, before, 'the built addon is left as it was');
});
