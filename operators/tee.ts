// tee: passes every batch through unchanged while writing the stream to an Arrow shard set
// (operators/shards.ts writeShards) in `dir`, so a later run can replay this point of the
// pipeline with readShards instead of recomputing it.
//
//   source$.pipe(dropNonFinite(), tee({ dir: 'runs/x/clean', stage: 'dropNonFinite', config }), …)
//
// One subscription to the source feeds both the downstream and the writer. The output completes
// only after the shard set is finalized (manifest complete: true), so whatever runs after the
// pipeline finds the shards whole; the final manifest goes to hooks.onSummary just before. An
// upstream error reaches the downstream only after the partial set was removed; an early
// unsubscribe (e.g. take(n) downstream) removes it too: the directory holds the whole stream or no
// shard set at all. Batches are written some time after they passed through, so downstream stages
// must not modify them in place (no stage in this project does).
import { Observable, Subject, type OperatorFunction } from 'rxjs';
import type { TransitionBatch } from '../schemas/transition.js';
import { writeShards, type ShardManifest } from './shards.js';
import { UserError, showValue } from '../pipeline/errors.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface TeeConfig {
  /** Directory of the shard set (created if missing; a set already there is replaced). */
  dir: string;
  /** Name of the stage whose output this is, recorded in the manifest. */
  stage: string;
  /** That stage's config, recorded in the manifest with its hash (default null). */
  config?: JsonValue;
  /** The run's seed, recorded in the manifest. */
  seed?: number;
  /** Manifest hashes of the shard sets the stage read from (manifestHash), recorded in the manifest. */
  inputs: string[];
  /** Rows per shard file; batches are grouped, never split. */
  rowsPerShard: number;
}

export const TEE_DEFAULTS: Readonly<Pick<TeeConfig, 'stage' | 'inputs' | 'rowsPerShard'>> = Object.freeze({ stage: 'tee', inputs: [], rowsPerShard: 262_144 });

const KEYS: readonly (keyof TeeConfig)[] = ['dir', 'stage', 'config', 'seed', 'inputs', 'rowsPerShard'];

export interface TeeHooks {
  /** Called once with the final manifest (complete: true), before the output completes. */
  onSummary?: (manifest: ShardManifest) => void;
}

/** Defaults filled in and checked: a UserError naming the field on a bad or unknown one. */
export function resolveTeeConfig(partial: Partial<TeeConfig>): TeeConfig {
  const bad = (field: string, msg: string) => new UserError(`tee config: ${field}: ${msg}`);
  for (const k of Object.keys(partial)) if (!(KEYS as readonly string[]).includes(k)) throw bad(k, `unknown field (known: ${KEYS.join(', ')})`);
  if (typeof partial.dir !== 'string' || partial.dir === '') throw bad('dir', `expected a directory path, got ${showValue(partial.dir)}`);
  const c: TeeConfig = { ...TEE_DEFAULTS, inputs: [], dir: partial.dir };
  if (partial.stage !== undefined) {
    if (typeof partial.stage !== 'string' || partial.stage === '') throw bad('stage', `expected a non-empty name, got ${showValue(partial.stage)}`);
    c.stage = partial.stage;
  }
  if (partial.config !== undefined) {
    // Round-trip through JSON: what the manifest stores is what the config must equal.
    let text: string | undefined;
    try {
      text = JSON.stringify(partial.config);
    } catch (e) {
      throw bad('config', `must be JSON-serializable (${(e as Error).message})`);
    }
    if (text === undefined) throw bad('config', `must be JSON-serializable, got ${typeof partial.config}`);
    c.config = JSON.parse(text) as JsonValue;
  }
  if (partial.seed !== undefined) {
    if (!Number.isInteger(partial.seed)) throw bad('seed', `expected an integer, got ${showValue(partial.seed)}`);
    c.seed = partial.seed;
  }
  if (partial.inputs !== undefined) {
    if (!Array.isArray(partial.inputs)) throw bad('inputs', `expected a list of manifest hashes, got ${showValue(partial.inputs)}`);
    partial.inputs.forEach((h, i) => {
      if (typeof h !== 'string' || h === '') throw bad(`inputs[${i}]`, `expected a manifest hash, got ${showValue(h)}`);
    });
    c.inputs = partial.inputs.slice();
  }
  if (partial.rowsPerShard !== undefined) {
    if (!Number.isInteger(partial.rowsPerShard) || partial.rowsPerShard < 1) throw bad('rowsPerShard', `expected an integer ≥ 1, got ${showValue(partial.rowsPerShard)}`);
    c.rowsPerShard = partial.rowsPerShard;
  }
  return c;
}

/**
 * Operator: the source's batches, unchanged, while they are written to a shard set in config.dir;
 * completes after the set is complete, errors after a failed set was removed (see the header).
 */
export function tee(config: Partial<TeeConfig>, hooks: TeeHooks = {}): OperatorFunction<TransitionBatch, TransitionBatch> {
  const cfg = resolveTeeConfig(config);
  return (source) =>
    new Observable<TransitionBatch>((subscriber) => {
      const toWriter = new Subject<TransitionBatch>();
      // The writer's end is the output's end: writeShards completes after the final manifest and
      // errors after it removed a partial set, whichever way the failure came (upstream or disk).
      // Its teardown is registered before the source is subscribed, so a downstream that stops
      // during a synchronous source (take(1)) stops the writer (which removes the set) at once.
      subscriber.add(
        toWriter
          .pipe(
            writeShards({
              dir: cfg.dir,
              stage: cfg.stage,
              config: cfg.config ?? null,
              ...(cfg.seed !== undefined ? { seed: cfg.seed } : {}),
              inputs: cfg.inputs,
              rowsPerShard: cfg.rowsPerShard,
            }),
          )
          .subscribe({
            next: (manifest) => {
              try {
                hooks.onSummary?.(manifest);
              } catch (e) {
                subscriber.error(e);
              }
            },
            error: (e) => subscriber.error(e),
            complete: () => subscriber.complete(),
          }),
      );
      // A synchronous source keeps emitting until its subscribe call returns, even after the
      // downstream stopped: what comes then must not reach the writer, or it would finish the set
      // the downstream abandoned.
      subscriber.add(
        source.subscribe({
          next: (b) => {
            if (subscriber.closed) return;
            toWriter.next(b);
            subscriber.next(b);
          },
          error: (e) => {
            if (!subscriber.closed) toWriter.error(e);
          },
          complete: () => {
            if (!subscriber.closed) toWriter.complete();
          },
        }),
      );
    });
}
