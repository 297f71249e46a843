// One checkpoint format for every set of tensors the project saves (SAC agents and policies, the
// dynamics ensemble): a JSON header (the owner's metadata + a tensor index) beside one float32
// data file named by step, with the data's sha256 in the header. The data file is written first and
// the header last, both atomically, so a header always points at complete, verified data; older
// data files are removed after the header lands.
import { promises as fsp } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeFileAtomic } from './atomic.js';
import { sha256Hex } from './hash.js';
import { UserError } from './errors.js';

export interface TensorEntry {
  name: string;
  shape: number[];
  /** Offset in float32 elements into the data file. */
  offset: number;
}

export interface TensorCheckpointHeader {
  format: string;
  version: 1;
  data: { file: string; floats: number; sha256: string };
  tensors: TensorEntry[];
}

export interface CheckpointKind {
  /** The header's file name, e.g. "sac.json". */
  headerFile: string;
  /** The header's `format` value, checked on read. */
  format: string;
  /** What the owner calls it, for messages ("SAC checkpoint"). */
  what: string;
}

/** Writes named tensors and the owner's metadata; `dataPrefix-<step>.f32` holds the floats. */
export async function writeTensorCheckpoint<M extends object>(dir: string, kind: CheckpointKind, dataPrefix: string, step: number, named: ReadonlyArray<readonly [string, tf.Tensor]>, meta: M): Promise<void> {
  const root = resolve(dir);
  const floats = named.reduce((s, [, t]) => s + t.size, 0);
  const data = new Float32Array(floats);
  const tensors: TensorEntry[] = [];
  let off = 0;
  for (const [name, t] of named) {
    data.set(t.dataSync() as Float32Array, off);
    tensors.push({ name, shape: t.shape.slice(), offset: off });
    off += t.size;
  }
  const bytes = new Uint8Array(data.buffer);
  const file = `${dataPrefix}-${String(step).padStart(9, '0')}.f32`;
  const header: TensorCheckpointHeader & M = { ...meta, format: kind.format, version: 1, data: { file, floats, sha256: sha256Hex(bytes) }, tensors };
  await writeFileAtomic(join(root, file), bytes);
  await writeFileAtomic(join(root, kind.headerFile), JSON.stringify(header, null, 1) + '\n');
  const stale = new RegExp(`^${dataPrefix}-\\d+\\.f32$`);
  for (const name of await fsp.readdir(root)) {
    if (name !== file && stale.test(name)) await fsp.rm(join(root, name), { force: true });
  }
}

/** Reads and verifies a checkpoint; `get(name)` makes a new tensor (the caller owns it). */
export async function readTensorCheckpoint<M extends object>(dir: string, kind: CheckpointKind): Promise<{ json: TensorCheckpointHeader & M; path: string; get: (name: string) => tf.Tensor }> {
  const root = resolve(dir);
  const path = join(root, kind.headerFile);
  let json: TensorCheckpointHeader & M;
  try {
    json = JSON.parse(await fsp.readFile(path, 'utf8')) as TensorCheckpointHeader & M;
  } catch (e) {
    throw new UserError(`${path}: cannot read the ${kind.what} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}). Point at a directory where mopo saved one.`);
  }
  if (json.format !== kind.format || json.version !== 1) throw new UserError(`${path}: not a mopo ${kind.what} (format ${JSON.stringify(json.format)})`);
  const dataPath = join(root, json.data.file);
  let buf: Buffer;
  try {
    buf = await fsp.readFile(dataPath);
  } catch (e) {
    throw new UserError(`${dataPath}: the ${kind.what}'s data file cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)}); the checkpoint is damaged`);
  }
  if (buf.byteLength !== json.data.floats * 4 || sha256Hex(buf) !== json.data.sha256) {
    throw new UserError(`${dataPath}: checksum or size mismatch with ${kind.headerFile}; the checkpoint is damaged`);
  }
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const index = new Map(json.tensors.map((t) => [t.name, t]));
  const get = (name: string): tf.Tensor => {
    const e = index.get(name);
    if (e === undefined) throw new UserError(`${path}: the checkpoint has no tensor ${name}`);
    const size = e.shape.reduce((a, b) => a * b, 1);
    return tf.tensor(data.slice(e.offset, e.offset + size), e.shape, 'float32');
  };
  return { json, path, get };
}
