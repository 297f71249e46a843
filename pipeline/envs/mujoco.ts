// MuJoCo for the locomotion environments: the official WebAssembly build (npm `mujoco-js`,
// MuJoCo 3.3.8), loaded once per process, and the project's own MJCF models from data/mujoco/.
//
//   loadMujoco()            -> the wasm module (first call instantiates it, ~0.1-0.2 s)
//   loadModel(name)         -> { mujoco, model } for 'halfcheetah' | 'hopper' | 'walker2d' (compiled once, cached)
//   compileModel(xml, label)-> an MjModel compiled from an MJCF string (diagnostics, tests)
//   modelXmlPath(name)      -> absolute path of our XML for that environment
//   DataViews               -> Float64Array views of one MjData's qpos / qvel / ctrl in the wasm heap
//
// Gotchas (measured with mujoco-js 0.0.7 on Node 20):
//   * The package is a single ESM file (~11 MB, wasm inlined); `await loadMujoco()` is all it
//     needs in Node. It is an assertion-enabled Emscripten build: reading a runtime symbol that was
//     not exported (HEAPF64, UTF8ToString, ...) aborts the whole module, so we never touch them.
//   * Models are compiled from files of Emscripten's in-memory file system (MEMFS): we read our XML
//     with node:fs and write it to /mopo/models/<name>.xml, then call MjModel.loadFromXML on that
//     path. Nothing of the real file system is mounted.
//   * A bad XML makes loadFromXML throw a CppException whose .message is undefined (mjXError and
//     mjCError are plain structs, no what()); the text is the C string at the exception's excPtr,
//     read here through the wasm heap. A missing file makes it return null instead.
//   * data.qpos / .qvel / .ctrl are fresh Float64Array views into the wasm heap on every access
//     (~0.2 µs each). DataViews caches them; the wasm memory can grow (a new MjData, a new model),
//     which detaches every old view (length becomes 0), so DataViews re-fetches when that happened.
//   * MuJoCo's default arena is ~13 MB per MjData and the wasm heap is capped at 2 GB, so our models
//     set <size memory="1M"/> (random rollouts use < 40 KB) to allow thousands of copies.
//   * MuJoCo's warnings go to the module's `print`: we send them to stderr, so stdout stays clean
//     for --json output.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import loadMujocoModule from 'mujoco-js';
import type { MainModule, MjData, MjModel } from 'mujoco-js';
import { UserError } from '../errors.js';

export type { MainModule, MjData, MjModel };

export type MujocoEnvName = 'halfcheetah' | 'hopper' | 'walker2d';
export const MUJOCO_ENV_NAMES: readonly MujocoEnvName[] = ['halfcheetah', 'hopper', 'walker2d'];

/** Model file of each environment, under <project>/data/mujoco/. */
export const MODEL_FILES: Readonly<Record<MujocoEnvName, string>> = {
  halfcheetah: 'halfcheetah.xml',
  hopper: 'hopper.xml',
  walker2d: 'walker2d.xml',
};

let modulePromise: Promise<MainModule> | null = null;
let memfsReady = false;
const modelCache = new Map<MujocoEnvName, Promise<MjModel>>();

/** The MuJoCo wasm module, instantiated on first use and shared by the whole process. */
export function loadMujoco(): Promise<MainModule> {
  if (!modulePromise) {
    const toStderr = (s: string) => process.stderr.write(`mujoco: ${s}\n`);
    modulePromise = loadMujocoModule({ print: toStderr, printErr: toStderr });
    modulePromise.catch(() => {
      modulePromise = null;
    });
  }
  return modulePromise;
}

/** Directory holding our MJCF models: the first data/mujoco/ found walking up from this module. */
export function modelDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'data', 'mujoco');
    if (existsSync(join(candidate, MODEL_FILES.halfcheetah))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new UserError(
    'the MuJoCo model files (data/mujoco/halfcheetah.xml, hopper.xml, walker2d.xml) were not found in any parent ' +
      'directory of the installed package; reinstall mopo-stream or restore the data/mujoco/ directory.',
  );
}

export function modelXmlPath(name: MujocoEnvName): string {
  return resolve(modelDir(), MODEL_FILES[name]);
}

function ensureMemfs(mj: MainModule): void {
  if (memfsReady) return;
  const fs = mj.FS as unknown as { mkdir(p: string): void; analyzePath(p: string): { exists: boolean } };
  for (const p of ['/mopo', '/mopo/models']) if (!fs.analyzePath(p).exists) fs.mkdir(p);
  memfsReady = true;
}

/** Text of a MuJoCo C++ exception (mjXError / mjCError): the C string at its excPtr. */
function cppErrorText(e: unknown, heap: ArrayBufferLike | null): string | null {
  const ptr = (e as { excPtr?: unknown } | null)?.excPtr;
  if (typeof ptr !== 'number' || heap === null || heap.byteLength === 0 || ptr <= 0 || ptr >= heap.byteLength) return null;
  const bytes = new Uint8Array(heap, ptr, Math.min(2000, heap.byteLength - ptr));
  let end = bytes.indexOf(0);
  if (end < 0) end = bytes.length;
  const text = new TextDecoder().decode(bytes.subarray(0, end)).trim();
  return text.length > 0 ? text : null;
}

let heapProbe: { model: MjModel; data: MjData } | null = null;
/** The wasm heap's current ArrayBuffer, reached through the qpos view of a 1-dof probe model. */
function wasmHeap(mj: MainModule): ArrayBufferLike | null {
  try {
    if (!heapProbe) {
      mj.FS.writeFile('/mopo/models/.probe.xml', '<mujoco><worldbody><body><joint type="slide"/><geom size="0.1"/></body></worldbody></mujoco>');
      const model = mj.MjModel.loadFromXML('/mopo/models/.probe.xml');
      heapProbe = { model, data: new mj.MjData(model) };
    }
    return (heapProbe.data.qpos as Float64Array).buffer;
  } catch {
    return null;
  }
}

/**
 * Compile an MJCF string. `label` names the source in error messages (a path or a description);
 * a model that MuJoCo rejects is a UserError carrying MuJoCo's own message.
 */
export async function compileModel(xml: string, label: string): Promise<MjModel> {
  const mj = await loadMujoco();
  ensureMemfs(mj);
  const vpath = `/mopo/models/${label.replace(/[^A-Za-z0-9_.-]+/g, '_').slice(-80) || 'model'}.xml`;
  mj.FS.writeFile(vpath, xml);
  let model: MjModel | null;
  try {
    model = mj.MjModel.loadFromXML(vpath);
  } catch (e) {
    const text = cppErrorText(e, wasmHeap(mj)) ?? String((e as Error)?.name ?? e);
    throw new UserError(`MuJoCo could not compile the model ${label}: ${text.replace(/\s+/g, ' ')}. Fix the MJCF (or restore the file).`);
  } finally {
    try {
      mj.FS.unlink(vpath);
    } catch {
      /* already gone */
    }
  }
  if (!model) throw new UserError(`MuJoCo could not load the model ${label} (see the MuJoCo message above).`);
  return model;
}

/** Our compiled model for one environment (compiled on first use, then shared by every env). */
export async function loadModel(name: MujocoEnvName): Promise<{ mujoco: MainModule; model: MjModel }> {
  const mujoco = await loadMujoco();
  let pending = modelCache.get(name);
  if (!pending) {
    pending = (async () => {
      const path = modelXmlPath(name);
      let xml: string;
      try {
        xml = readFileSync(path, 'utf8');
      } catch (e) {
        throw new UserError(`cannot read the MuJoCo model ${path} (${(e as Error).message}); restore data/mujoco/${MODEL_FILES[name]}.`);
      }
      return compileModel(xml, path);
    })();
    modelCache.set(name, pending);
    pending.catch(() => modelCache.delete(name));
  }
  return { mujoco, model: await pending };
}

/**
 * Cached Float64Array views of one MjData's qpos, qvel and ctrl in the wasm heap. Call
 * `refreshIfDetached()` before using them after anything that may have grown the wasm memory
 * (creating models or MjData); it is one length comparison when nothing happened.
 */
export class DataViews {
  qpos!: Float64Array;
  qvel!: Float64Array;
  ctrl!: Float64Array;

  constructor(private readonly data: MjData) {
    this.refresh();
  }

  refresh(): void {
    this.qpos = this.data.qpos as Float64Array;
    this.qvel = this.data.qvel as Float64Array;
    this.ctrl = this.data.ctrl as Float64Array;
  }

  /** Re-fetch the views when a memory growth detached them (a detached view has length 0). */
  refreshIfDetached(): void {
    if (this.qpos.length === 0) this.refresh();
  }
}
