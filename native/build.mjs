// `npm install` step: builds the native kernels (binding.gyp here) with node-gyp against the
// headers of the Node that runs this, never downloaded ones: without them, or without a C++
// compiler, it says so and exits 0, and the wasm kernels are used (pipeline/kernels.ts).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const skip = (why) => {
  console.error(`mopo: native kernels not built (${why}); the wasm kernels will be used`);
  process.exit(0);
};
if (process.env.MOPO_NATIVE_KERNELS === '0') skip('MOPO_NATIVE_KERNELS=0');
if (process.arch !== 'x64') skip(`they are x86-64 code and this is ${process.arch}`);
// Node's own headers: npm's nodedir if set, else beside this node binary (…/bin/node → …/include/node).
const nodedir = process.env.npm_config_nodedir || dirname(dirname(process.execPath));
if (!existsSync(join(nodedir, 'include', 'node', 'node_api.h'))) skip(`no Node headers at ${join(nodedir, 'include', 'node')}`);
// npm's bundled node-gyp (npm passes its path to scripts), else one on PATH.
const gyp = process.env.npm_config_node_gyp;
const [cmd, args] = gyp ? [process.execPath, [gyp]] : ['node-gyp', []];
const r = spawnSync(cmd, [...args, 'rebuild', `--nodedir=${nodedir}`, '--loglevel=warn'], { cwd: here, stdio: 'inherit' });
if (r.error !== undefined) skip(`node-gyp did not run: ${r.error.message}`);
if (r.status !== 0) skip(`node-gyp exited with ${r.status}`);
