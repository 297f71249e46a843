// Compute backend selection for TensorFlow.js.
//
//   initBackend({ backend?, log? }) -> 'node' | 'wasm' | 'cpu'
//
// Order of preference: `node` (@tensorflow/tfjs-node, native TensorFlow) when it loads, else
// `wasm` (@tensorflow/tfjs-backend-wasm, XNNPACK + SIMD), else `cpu` (pure JS). The `backend`
// option (CLI flag --backend) wins over the MOPO_BACKEND environment variable, which wins over
// the automatic choice. An explicit `node` that cannot load falls back to wasm with a warning.
//
// When wasm is selected the fast matmul kernels of ./kernels.ts are installed (see there why).
//
// Gotchas (measured, tfjs 4.22 on Node 20):
//   * In Node, `import '@tensorflow/tfjs-backend-wasm'` resolves to the CommonJS node bundle in
//     dist/, which sits next to the three .wasm binaries; Emscripten's default locateFile finds them
//     via __dirname. We still call setWasmPaths() with that directory (found with
//     createRequire(import.meta.url).resolve) so bundling or a different resolution cannot break it.
//   * Multi-threaded wasm is disabled by tfjs in Node (WASM_HAS_MULTITHREAD_SUPPORT is false when
//     IS_NODE), so the wasm backend runs 1 thread; SIMD is used when the runtime validates it.

import { createRequire } from 'node:module';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import * as tfwasm from '@tensorflow/tfjs-backend-wasm';
import { UserError } from './errors.js';
import { installFastKernels, nativeKernelsInfo } from './kernels.js';

export { tf };

export type BackendName = 'node' | 'wasm' | 'cpu';
export const BACKEND_NAMES: readonly BackendName[] = ['node', 'wasm', 'cpu'];

export interface InitBackendOptions {
  /** Backend to use; overrides MOPO_BACKEND. */
  backend?: BackendName | string;
  /** Where the one-line choice goes (default: stderr). */
  log?: (msg: string) => void;
}

/** tf backend name for each of our names. */
const TF_NAME: Record<BackendName, string> = { node: 'tensorflow', wasm: 'wasm', cpu: 'cpu' };

let current: BackendName | null = null;
let pending: Promise<BackendName> | null = null;
let nodeLoad: Promise<boolean> | null = null;
let wasmPathsSet = false;

function defaultLog(msg: string): void {
  process.stderr.write(msg + '\n');
}

const logged = new Set<string>();
/** Warnings are printed once per process (per distinct message). */
function logOnce(log: (msg: string) => void, msg: string): void {
  if (logged.has(msg)) return;
  logged.add(msg);
  log(msg);
}

function nodeUnavailable(using: string): string {
  return `mopo: compute backend node is not available (@tensorflow/tfjs-node did not load; install it for native TensorFlow); using ${using}`;
}

/** Validates a backend name from the flag or the environment. */
export function parseBackendName(value: string, source: string): BackendName {
  const v = value.trim().toLowerCase();
  if ((BACKEND_NAMES as readonly string[]).includes(v)) return v as BackendName;
  throw new UserError(
    `invalid compute backend ${JSON.stringify(value)} (from ${source}): valid values are ${BACKEND_NAMES.join(', ')}`,
  );
}

/** Tries to load @tensorflow/tfjs-node once; false if it is not installed or fails to load. */
function tryLoadNode(): Promise<boolean> {
  if (nodeLoad === null) {
    nodeLoad = (async () => {
      try {
        const name = '@tensorflow/tfjs-node';
        await import(name);
        return tf.findBackendFactory('tensorflow') != null;
      } catch {
        return false;
      }
    })();
  }
  return nodeLoad;
}

function setWasmPathsOnce(): void {
  if (wasmPathsSet) return;
  wasmPathsSet = true;
  try {
    const require = createRequire(import.meta.url);
    const main = require.resolve('@tensorflow/tfjs-backend-wasm'); // .../dist/tf-backend-wasm.node.js
    const dir = path.dirname(main) + path.sep;
    tfwasm.setWasmPaths(dir);
  } catch {
    // Leave the default (the bundle's own directory), which works for the stock layout.
  }
}

async function trySet(name: BackendName): Promise<boolean> {
  if (name === 'node' && !(await tryLoadNode())) return false;
  if (name === 'wasm') {
    setWasmPathsOnce();
    installFastKernels();
  }
  try {
    const ok = await tf.setBackend(TF_NAME[name]);
    // The cpu backend prints a multi-line "install tfjs-node" banner on first use; our own log
    // line already says it is the slow pure-JS backend.
    if (ok && name === 'cpu') (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
    return ok;
  } catch {
    return false;
  }
}

function describe(name: BackendName): string {
  const version = tf.version.tfjs ?? tf.version_core;
  if (name === 'wasm') {
    let threads = 1;
    try {
      threads = tfwasm.getThreadsCount();
    } catch {
      /* not initialized */
    }
    const simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT') ? 'SIMD, ' : '';
    // Dense products go to the native gemm where it is built (pipeline/kernels.ts), else XNNPACK and the SIMD gemm.
    const nk = nativeKernelsInfo();
    const products = nk.isa !== null ? `native ${nk.isa === 'avx512' ? 'AVX-512' : 'AVX2'} gemm` : 'XNNPACK';
    return `mopo: compute backend wasm (tfjs ${version}, ${products}, ${simd}${threads} thread${threads === 1 ? '' : 's'})`;
  }
  if (name === 'node') return `mopo: compute backend node (tfjs ${version}, native TensorFlow)`;
  return `mopo: compute backend cpu (tfjs ${version}, pure JavaScript: slow)`;
}

/**
 * Selects and initializes the compute backend; returns its name. Idempotent: a second call that
 * resolves to the same backend returns at once without logging again; a call asking for a
 * different backend switches to it (and logs that choice).
 */
export async function initBackend(opts: InitBackendOptions = {}): Promise<BackendName> {
  const log = opts.log ?? defaultLog;
  let requested: BackendName | null = null;
  if (opts.backend !== undefined && opts.backend !== '') requested = parseBackendName(opts.backend, '--backend');
  else {
    const env = process.env['MOPO_BACKEND'];
    if (env !== undefined && env.trim() !== '') requested = parseBackendName(env, 'MOPO_BACKEND');
  }
  // Serialize concurrent calls.
  while (pending !== null) await pending.catch(() => undefined);
  if (current !== null && tf.getBackend() === TF_NAME[current]) {
    if (requested === null || requested === current) return current;
    if (requested === 'node' && current === 'wasm' && !(await tryLoadNode())) {
      logOnce(log, nodeUnavailable('wasm'));
      return current;
    }
  }
  pending = (async () => {
    const order: BackendName[] = requested === null ? ['node', 'wasm', 'cpu'] : requested === 'node' ? ['node', 'wasm', 'cpu'] : [requested];
    const warnings: string[] = [];
    for (const name of order) {
      if (await trySet(name)) {
        if (requested !== null && name !== requested) {
          warnings.push(requested === 'node' ? nodeUnavailable(name) : `mopo: compute backend ${requested} could not be initialized; using ${name}`);
        }
        for (const w of warnings) logOnce(log, w);
        if (current !== name) log(describe(name));
        current = name;
        return name;
      }
    }
    throw new UserError(`compute backend ${requested ?? 'auto'} could not be initialized (tried ${order.join(', ')})`);
  })();
  try {
    return await pending;
  } finally {
    pending = null;
  }
}

/** The backend chosen by the last successful initBackend call, or null. */
export function currentBackend(): BackendName | null {
  return current;
}
