// openTransitions: the one way a stage opens a dataset by path — a Parquet file (any layout
// readTransitions reads) or a directory of Arrow shards written by mopo (readShards, verified).
// Both are cold: every subscription reads again, so a multi-epoch stage re-subscribes.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { Observable, defer, type MonoTypeOperatorFunction } from 'rxjs';
import type { TransitionBatch } from '../schemas/transition.js';
import { readTransitions, type ReadOptions } from './readTransitions.js';
import { MANIFEST_FILE, readShards } from './shards.js';
import { UserError } from '../pipeline/errors.js';

export type DatasetKind = 'parquet' | 'shards';

/** What `path` is; UserError when it is neither a file nor a shard directory. */
export function datasetKind(path: string): DatasetKind {
  let dir: boolean;
  try {
    dir = statSync(path).isDirectory();
  } catch (e) {
    throw new UserError(`${path}: cannot open (${(e as NodeJS.ErrnoException).code ?? String(e)}). Give a Parquet file or a directory of Arrow shards.`);
  }
  if (!dir) return 'parquet';
  try {
    statSync(join(path, MANIFEST_FILE));
  } catch {
    throw new UserError(`${path}: a directory without ${MANIFEST_FILE}. Give a Parquet file or a directory of Arrow shards written by mopo.`);
  }
  return 'shards';
}

/**
 * Cold stream of the dataset at `path`. Read options apply to Parquet files; of them, only the row
 * range `rows` applies to shards (already in the schema).
 */
export function openTransitions(path: string, read: ReadOptions = {}): Observable<TransitionBatch> {
  return defer(() => {
    if (datasetKind(path) === 'parquet') return readTransitions(path, read);
    const all = readShards(path);
    return read.rows ? all.pipe(rowRange(read.rows.start ?? 0, read.rows.end ?? Infinity)) : all;
  });
}

/** Rows [start, end) of a stream, counted across batches (zero-copy slices). */
export function rowRange(start: number, end: number): MonoTypeOperatorFunction<TransitionBatch> {
  return (source) =>
    new Observable<TransitionBatch>((subscriber) => {
      let at = 0;
      const sub = source.subscribe({
        next: (b) => {
          const lo = Math.max(start - at, 0);
          const hi = Math.min(end - at, b.length);
          at += b.length;
          if (hi > lo) subscriber.next(lo === 0 && hi === b.length ? b : b.slice(lo, hi));
          if (at >= end) {
            subscriber.complete();
            sub.unsubscribe();
          }
        },
        error: (e) => subscriber.error(e),
        complete: () => subscriber.complete(),
      });
      return sub;
    });
}
