// Arrow shards: transition batches saved as Arrow IPC files with a manifest, so a later run can
// replay a stage's output without recomputing it. `writeShards` is a sink operator, `readShards` a
// cold source that verifies each shard's checksum and schema and streams shard by shard.
import { promises as fsp } from 'node:fs';
import { join, resolve } from 'node:path';
import { Observable, type OperatorFunction } from 'rxjs';
import { RecordBatchFileWriter, tableFromIPC, type Schema } from 'apache-arrow';
import { TransitionBatch, dimsOfSchema, type TransitionDims } from '../schemas/transition.js';
import { writeFileAtomic } from '../pipeline/atomic.js';
import { configHash, sha256Hex } from '../pipeline/hash.js';
import { UserError } from '../pipeline/errors.js';

export const MANIFEST_FILE = 'manifest.json';
export const SHARD_FORMAT = 'mopo-arrow-shards';

export interface ShardEntry {
  file: string;
  rows: number;
  bytes: number;
  sha256: string;
}

export interface ShardSchemaInfo extends TransitionDims {
  /** Column names and Arrow types, in order, as the shard files carry them. */
  columns: { name: string; type: string }[];
}

export interface ShardManifest {
  format: typeof SHARD_FORMAT;
  version: 1;
  /** The stage that produced the shards, e.g. "normalize". */
  stage: string;
  config: unknown;
  configHash: string;
  seed?: number;
  /** Hashes of the manifests this stage read from (empty for a stage fed by a file). */
  inputs: string[];
  schema: ShardSchemaInfo | null;
  rows: number;
  shards: ShardEntry[];
  /** False while the writer is still running (or was killed); readers refuse incomplete sets. */
  complete: boolean;
}

export interface WriteShardsConfig {
  /** Directory for the shards and manifest.json (created if missing). */
  dir: string;
  /** Name of the stage whose output this is. */
  stage: string;
  /** The stage's config, stored in the manifest with its hash. */
  config?: unknown;
  seed?: number;
  inputs?: string[];
  /** Rows per shard file (default 262,144). Batches are grouped, never split. */
  rowsPerShard?: number;
}

export function schemaInfo(schema: Schema): ShardSchemaInfo {
  return { ...dimsOfSchema(schema), columns: schema.fields.map((f) => ({ name: f.name, type: String(f.type) })) };
}

const shardName = (i: number) => `shard-${String(i).padStart(5, '0')}.arrow`;

/**
 * Sink: writes the incoming batches to Arrow IPC shards in `config.dir`, each atomically, and the
 * manifest after every shard (complete: false) and at the end (complete: true). Emits the final
 * manifest once the source completes.
 */
export function writeShards(config: WriteShardsConfig): OperatorFunction<TransitionBatch, ShardManifest> {
  const rowsPerShard = config.rowsPerShard ?? 262_144;
  if (!(Number.isInteger(rowsPerShard) && rowsPerShard > 0)) throw new UserError(`writeShards: rowsPerShard must be a positive integer, got ${rowsPerShard}`);
  return (source) =>
    new Observable<ShardManifest>((subscriber) => {
      const dir = resolve(config.dir);
      const manifest: ShardManifest = {
        format: SHARD_FORMAT,
        version: 1,
        stage: config.stage,
        config: config.config ?? null,
        configHash: configHash(config.config ?? null),
        ...(config.seed !== undefined ? { seed: config.seed } : {}),
        inputs: config.inputs ?? [],
        schema: null,
        rows: 0,
        shards: [],
        complete: false,
      };
      let firstDims: TransitionDims | undefined;
      let pending: TransitionBatch[] = [];
      let pendingRows = 0;
      // Writes are chained so shards land in order and a slow disk never sees two writers. The
      // directory belongs to this stage: an earlier set in it is removed first, so a reader never
      // sees a manifest that mixes two runs.
      let chain: Promise<void> = fsp.mkdir(dir, { recursive: true }).then(() => removeShardSet(dir));
      let failed = false;
      let completed = false;
      // On an error or an early unsubscribe, nothing is left behind: the set is removed.
      const cleanup = () => chain.catch(() => undefined).then(() => removeShardSet(dir, true));
      let sub: { unsubscribe(): void } | undefined;
      const fail = (e: unknown) => {
        if (failed) return;
        failed = true;
        sub?.unsubscribe(); // no more batches: nothing may be written after the cleanup starts
        void cleanup().finally(() => subscriber.error(e));
      };

      const flush = () => {
        if (pendingRows === 0) return;
        const batches = pending;
        const rows = pendingRows;
        pending = [];
        pendingRows = 0;
        chain = chain.then(async () => {
          const records = batches.map((b) => b.toRecordBatch());
          const bytes = RecordBatchFileWriter.writeAll(records).toUint8Array(true);
          const file = shardName(manifest.shards.length);
          await writeFileAtomic(join(dir, file), bytes);
          manifest.schema ??= schemaInfo(records[0]!.schema);
          manifest.shards.push({ file, rows, bytes: bytes.byteLength, sha256: sha256Hex(bytes) });
          manifest.rows += rows;
          await writeManifest(dir, manifest);
        });
        chain.catch(fail);
      };

      sub = source.subscribe({
        next: (batch) => {
          if (failed) return;
          firstDims ??= batch.dims;
          if (batch.obsDim !== firstDims.obsDim || batch.actDim !== firstDims.actDim) {
            fail(new UserError(`writeShards(${config.stage}): a batch has dims obs ${batch.obsDim}/act ${batch.actDim}, the set started with ${firstDims.obsDim}/${firstDims.actDim}; one shard set holds one schema`));
            return;
          }
          if (batch.length === 0) return;
          pending.push(batch);
          pendingRows += batch.length;
          if (pendingRows >= rowsPerShard) flush();
        },
        error: fail,
        complete: () => {
          if (failed) return;
          flush();
          // Assigned to `chain` so an unsubscribe now waits for this write before it cleans up, and
          // skipped when that already happened (no complete manifest over removed shards).
          chain = chain.then(async () => {
            if (failed) return;
            manifest.complete = true;
            await writeManifest(dir, manifest);
            completed = true;
            if (!failed) {
              subscriber.next(manifest);
              subscriber.complete();
            }
          });
          chain.catch(fail);
        },
      });
      return () => {
        sub?.unsubscribe();
        if (!completed && !failed) {
          failed = true;
          void cleanup();
        }
      };
    });
}

/** Deletes a shard set's manifest and shard files (and the directory when it is left empty). */
async function removeShardSet(dir: string, rmdirIfEmpty = false): Promise<void> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return;
  }
  await Promise.all(names.filter((n) => n === MANIFEST_FILE || /^shard-\d+\.arrow$/.test(n)).map((n) => fsp.rm(join(dir, n), { force: true })));
  if (rmdirIfEmpty && (await fsp.readdir(dir)).length === 0) await fsp.rmdir(dir).catch(() => undefined);
}

async function writeManifest(dir: string, manifest: ShardManifest): Promise<void> {
  await writeFileAtomic(join(dir, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
}

/** Reads and checks a shard set's manifest. */
export async function readManifest(dir: string): Promise<ShardManifest> {
  const path = join(resolve(dir), MANIFEST_FILE);
  let text: string;
  try {
    text = await fsp.readFile(path, 'utf8');
  } catch (e) {
    throw new UserError(`${path}: cannot read the shard manifest (${(e as NodeJS.ErrnoException).code ?? String(e)}). Point at a directory written by a stage with tee/shards enabled.`);
  }
  let m: ShardManifest;
  try {
    m = JSON.parse(text) as ShardManifest;
  } catch (e) {
    throw new UserError(`${path}: the shard manifest is not valid JSON (${(e as Error).message}). The file is damaged; re-run the stage that wrote it.`);
  }
  if (m.format !== SHARD_FORMAT || !Array.isArray(m.shards)) {
    throw new UserError(`${path}: not a mopo shard manifest (format ${JSON.stringify(m.format)}). Point at a directory written by mopo.`);
  }
  if (!m.complete) {
    throw new UserError(`${path}: the shard set is incomplete (${m.shards.length} shards, ${m.rows} rows written before its writer stopped). Re-run the stage that writes it.`);
  }
  return m;
}

/** The hash that identifies a manifest as an input of a later stage. */
export function manifestHash(m: ShardManifest): string {
  return sha256Hex(JSON.stringify({ configHash: m.configHash, shards: m.shards.map((s) => s.sha256) })).slice(0, 16);
}

/**
 * Cold source: streams the transition batches of a shard set, one shard in memory at a time,
 * verifying every shard's checksum and schema against the manifest.
 */
export function readShards(dir: string): Observable<TransitionBatch> {
  return new Observable<TransitionBatch>((subscriber) => {
    let cancelled = false;
    (async () => {
      const manifest = await readManifest(dir);
      for (const entry of manifest.shards) {
        if (cancelled) return;
        const path = join(resolve(dir), entry.file);
        let bytes: Uint8Array;
        try {
          bytes = await fsp.readFile(path);
        } catch (e) {
          throw new UserError(`${path}: shard listed in the manifest cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)}). The shard set is damaged; re-run the stage that wrote it.`);
        }
        const sum = sha256Hex(bytes);
        if (sum !== entry.sha256 || bytes.byteLength !== entry.bytes) {
          throw new UserError(`${path}: checksum mismatch (manifest sha256 ${entry.sha256.slice(0, 12)}…, ${entry.bytes} bytes; file ${sum.slice(0, 12)}…, ${bytes.byteLength} bytes). The shard was changed or damaged after it was written; re-run the stage that wrote it.`);
        }
        const table = tableFromIPC(bytes);
        const info = schemaInfo(table.schema);
        const expected = manifest.schema;
        if (!expected || JSON.stringify(info.columns) !== JSON.stringify(expected.columns) || info.obsDim !== expected.obsDim || info.actDim !== expected.actDim) {
          throw new UserError(`${path}: schema differs from the manifest (file: ${info.columns.map((c) => `${c.name}:${c.type}`).join(', ')}). The shard set is inconsistent; re-run the stage that wrote it.`);
        }
        if (table.numRows !== entry.rows) {
          throw new UserError(`${path}: holds ${table.numRows} rows, the manifest says ${entry.rows}. Re-run the stage that wrote it.`);
        }
        for (const rb of table.batches) {
          if (cancelled) return;
          if (rb.numRows > 0) subscriber.next(TransitionBatch.fromRecordBatch(rb, expected.env));
        }
      }
    })().then(
      () => subscriber.complete(),
      (e) => subscriber.error(e),
    );
    return () => {
      cancelled = true;
    };
  });
}

