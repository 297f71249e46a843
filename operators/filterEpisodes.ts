// filterEpisodes: keeps whole episodes by length and/or return, e.g. the best 10 % of a mixed
// dataset (%BC-style filtering) or no episodes shorter than 10 steps.
//
//   source$.pipe(filterEpisodes({ minReturnQuantile: 0.9 }))            // return ≥ the 0.9-quantile
//   source$.pipe(filterEpisodes({ minLength: 10, minReturn: 1000 }))
//
// Episodes: an episode ends at a row with terminal or timeout set, and — where the `episode` column
// is present — where the episode id changes (a dataset whose flags were lost still splits right).
// A trailing unfinished episode counts as an episode. Its return is the sum of its rewards in
// double, in row order.
//
// Rules (all that are set must hold; a dropped episode is counted under the first rule it fails,
// in this order): minLength, maxLength, then the return rules — an episode whose return is not
// finite fails them (it is counted as nonFiniteReturn), else its return must be ≥ minReturn and ≥
// the minReturnQuantile-quantile of the finite returns of ALL episodes (before any length rule),
// with linear interpolation between order statistics (numpy's default): q = 0 keeps every
// episode, q = 1 only those tied for the best.
//
// Passes: the quantile needs every return first, so with minReturnQuantile the stage subscribes to
// the source twice — the first pass records each episode's length and return (O(episodes) memory),
// the second streams the rows and keeps or drops them by the first pass's decision, holding no rows
// beyond the current batch. THE SOURCE MUST BE COLD (each subscription reads the data again), as
// every source in this project is (readTransitions, readShards); the second pass checks that it
// sees the same episodes and fails otherwise. Without a quantile there is one pass, which holds the
// rows of the current unfinished episode (copied, so the batches they came from can be freed) until
// it ends; an episode already longer than maxLength is not held.
import { Observable, Subscription, type OperatorFunction } from 'rxjs';
import { TransitionBatch } from '../schemas/transition.js';
import { UserError, showValue } from '../pipeline/errors.js';
import { keepRows } from './dropNonFinite.js';
import { completeWithSummary, type SummaryHooks } from './mapBatches.js';

export interface FilterEpisodesConfig {
  /** Fewest rows an episode may have. */
  minLength?: number;
  /** Most rows an episode may have. */
  maxLength?: number;
  /** Smallest return kept (absolute). */
  minReturn?: number;
  /** q in [0, 1]: keep episodes whose return ≥ the q-quantile of all episode returns (two passes). */
  minReturnQuantile?: number;
}

const KEYS: readonly (keyof FilterEpisodesConfig)[] = ['minLength', 'maxLength', 'minReturn', 'minReturnQuantile'];

export interface FilterEpisodesSummary {
  rowsIn: number;
  rowsOut: number;
  episodesIn: number;
  episodesKept: number;
  episodesDropped: number;
  /** Dropped episodes by the first rule they failed. */
  dropped: { tooShort: number; tooLong: number; nonFiniteReturn: number; lowReturn: number };
  /** The return an episode needed (the larger of minReturn and the quantile's value); null without a return rule or without any finite return. */
  returnThreshold: number | null;
  /** Subscriptions to the source: 2 with minReturnQuantile, else 1. */
  passes: 1 | 2;
}

export type FilterEpisodesHooks = SummaryHooks<FilterEpisodesSummary>;

/** Checked config: a UserError naming the field on a bad or unknown one (at least one rule is required). */
export function resolveFilterEpisodesConfig(partial: Partial<FilterEpisodesConfig>): FilterEpisodesConfig {
  const bad = (field: string, msg: string) => new UserError(`filterEpisodes config: ${field}: ${msg}`);
  for (const k of Object.keys(partial)) if (!(KEYS as readonly string[]).includes(k)) throw bad(k, `unknown field (known: ${KEYS.join(', ')})`);
  const c: FilterEpisodesConfig = {};
  for (const k of ['minLength', 'maxLength'] as const) {
    const v = partial[k];
    if (v === undefined) continue;
    if (!Number.isInteger(v) || v < 1) throw bad(k, `expected an integer ≥ 1, got ${showValue(v)}`);
    c[k] = v;
  }
  if (c.minLength !== undefined && c.maxLength !== undefined && c.maxLength < c.minLength) throw bad('maxLength', `must be ≥ minLength (${c.minLength}), got ${c.maxLength}`);
  if (partial.minReturn !== undefined) {
    if (typeof partial.minReturn !== 'number' || !Number.isFinite(partial.minReturn)) throw bad('minReturn', `expected a finite number, got ${showValue(partial.minReturn)}`);
    c.minReturn = partial.minReturn;
  }
  const q = partial.minReturnQuantile;
  if (q !== undefined) {
    if (typeof q !== 'number' || !(q >= 0 && q <= 1)) throw bad('minReturnQuantile', `expected a number in [0, 1], got ${showValue(q)}`);
    c.minReturnQuantile = q;
  }
  if (Object.keys(c).length === 0) throw new UserError(`filterEpisodes config: set at least one of ${KEYS.join(', ')}`);
  return c;
}

// ---------------------------------------------------------------------------------------------
// Batch-level helpers

/**
 * Where episodes end inside a batch: sorted positions p in [0, n] such that an episode's last row
 * is p − 1 (p = 0: the episode open before this batch ends before its first row, because the
 * episode id changed from `prevEpisodeId`).
 */
export function episodeBreaks(b: TransitionBatch, prevEpisodeId?: number): Int32Array {
  const n = b.length;
  const ids = b.episode;
  const out = new Int32Array(n + 1);
  let k = 0;
  if (ids && n > 0 && prevEpisodeId !== undefined && ids[0] !== prevEpisodeId) out[k++] = 0;
  for (let i = 0; i < n; i++) {
    if (b.terminal[i] || b.timeout[i] || (ids && i + 1 < n && ids[i + 1] !== ids[i])) out[k++] = i + 1;
  }
  return out.subarray(0, k);
}

/** Sum of reward[start, end) in double. */
export function sumRewards(reward: Float32Array, start: number, end: number): number {
  let s = 0;
  for (let i = start; i < end; i++) s += reward[i]!;
  return s;
}

/** The q-quantile of the finite values, linear interpolation between order statistics; NaN if none. */
export function quantile(values: ArrayLike<number>, q: number): number {
  const finite = Float64Array.from(values).filter((x) => Number.isFinite(x)).sort();
  const n = finite.length;
  if (n === 0) return Number.NaN;
  const pos = q * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, n - 1);
  const f = pos - lo;
  // f = 0 at an order statistic: return it exactly, so an episode with that return passes ≥.
  return f === 0 ? finite[lo]! : finite[lo]! + (finite[hi]! - finite[lo]!) * f;
}

/**
 * Walks the episodes of a stream batch by batch, tracking the open episode across batches. For
 * every piece of an episode inside a batch it calls onPiece(start, end, ends) with `ends` true when
 * the episode ends at `end` (a piece may be empty: the id changed right at the batch start).
 */
class EpisodeWalker {
  private lastId: number | undefined;

  walk(b: TransitionBatch, onPiece: (start: number, end: number, ends: boolean) => void): void {
    let start = 0;
    for (const p of episodeBreaks(b, this.lastId)) {
      onPiece(start, p, true);
      start = p;
    }
    if (start < b.length) onPiece(start, b.length, false);
    if (b.episode && b.length > 0) this.lastId = b.episode[b.length - 1];
  }
}

const KEEP = 0;
const TOO_SHORT = 1;
const TOO_LONG = 2;
const NON_FINITE = 3;
const LOW_RETURN = 4;

/** Why an episode is dropped (KEEP = 0 if it is not); see the header for the order. */
function verdict(cfg: FilterEpisodesConfig, threshold: number | null, length: number, ret: number): number {
  if (cfg.minLength !== undefined && length < cfg.minLength) return TOO_SHORT;
  if (cfg.maxLength !== undefined && length > cfg.maxLength) return TOO_LONG;
  if (threshold === null) return KEEP;
  if (!Number.isFinite(ret)) return NON_FINITE;
  return ret >= threshold ? KEEP : LOW_RETURN;
}

// ---------------------------------------------------------------------------------------------
// The operator

/**
 * Operator: keeps whole episodes by the configured rules; row order, dims and optional columns are
 * kept, batches left empty are not emitted, input batches are not modified. With minReturnQuantile
 * the source is subscribed twice and must be cold (see the header).
 */
export function filterEpisodes(config: Partial<FilterEpisodesConfig>, hooks: FilterEpisodesHooks = {}): OperatorFunction<TransitionBatch, TransitionBatch> {
  const cfg = resolveFilterEpisodesConfig(config);
  return (source) =>
    new Observable<TransitionBatch>((subscriber) => {
      const dropped = { tooShort: 0, tooLong: 0, nonFiniteReturn: 0, lowReturn: 0 };
      let kept = 0;
      let rowsIn = 0;
      let rowsOut = 0;
      const count = (v: number) => {
        if (v === KEEP) kept++;
        else if (v === TOO_SHORT) dropped.tooShort++;
        else if (v === TOO_LONG) dropped.tooLong++;
        else if (v === NON_FINITE) dropped.nonFiniteReturn++;
        else dropped.lowReturn++;
      };
      const emit = (b: TransitionBatch) => {
        rowsOut += b.length;
        if (b.length > 0) subscriber.next(b);
      };
      const finish = (threshold: number | null, passes: 1 | 2) =>
        completeWithSummary(subscriber, hooks, () => {
          const episodesDropped = dropped.tooShort + dropped.tooLong + dropped.nonFiniteReturn + dropped.lowReturn;
          return { rowsIn, rowsOut, episodesIn: kept + episodesDropped, episodesKept: kept, episodesDropped, dropped, returnThreshold: threshold, passes };
        });
      // Both passes live in one Subscription, so unsubscribing the output stops whichever runs
      // (pass 2 may start synchronously inside pass 1's complete).
      const subs = new Subscription();
      const guard = (f: (b: TransitionBatch) => void) => (b: TransitionBatch) => {
        if (subscriber.closed) return; // a synchronous source runs on after the downstream stopped
        try {
          f(b);
        } catch (e) {
          subscriber.error(e);
        }
      };

      if (cfg.minReturnQuantile === undefined) {
        const threshold = cfg.minReturn ?? null;
        subs.add(onePass(source, cfg, threshold, { count, emit, guard, rows: (n) => (rowsIn += n), error: (e) => subscriber.error(e), complete: () => finish(threshold, 1) }));
        return subs;
      }

      // Pass 1: every episode's length and return.
      const lengths: number[] = [];
      const returns: number[] = [];
      const walker = new EpisodeWalker();
      let openRows = 0;
      let openReturn = 0;
      const close = () => {
        if (openRows === 0) return;
        lengths.push(openRows);
        returns.push(openReturn);
        openRows = 0;
        openReturn = 0;
      };
      subs.add(
        source.subscribe({
          next: guard((b) =>
            walker.walk(b, (start, end, ends) => {
              openRows += end - start;
              openReturn += sumRewards(b.reward, start, end);
              if (ends) close();
            }),
          ),
          error: (e) => subscriber.error(e),
          complete: () => {
            close();
            if (subscriber.closed) return;
            const q = quantile(returns, cfg.minReturnQuantile!);
            // No finite return at all: every episode fails the return rule as non-finite.
            const threshold = Math.max(cfg.minReturn ?? -Infinity, Number.isNaN(q) ? -Infinity : q);
            const decisions = new Uint8Array(lengths.length);
            for (let k = 0; k < lengths.length; k++) decisions[k] = verdict(cfg, threshold, lengths[k]!, returns[k]!);
            const reported = Number.isFinite(threshold) ? threshold : null;
            subs.add(secondPass(source, lengths, decisions, { count, emit, guard, rows: (n) => (rowsIn += n), error: (e) => subscriber.error(e), complete: () => finish(reported, 2) }));
          },
        }),
      );
      return subs;
    });
}

interface PassSink {
  count(verdict: number): void;
  emit(b: TransitionBatch): void;
  guard(f: (b: TransitionBatch) => void): (b: TransitionBatch) => void;
  rows(n: number): void;
  error(e: unknown): void;
  complete(): void;
}

/** Pass 2: rows kept or dropped by the recorded decision of their episode. */
function secondPass(source: Observable<TransitionBatch>, lengths: readonly number[], decisions: Uint8Array, sink: PassSink): Subscription {
  const walker = new EpisodeWalker();
  let episode = 0;
  let openRows = 0;
  const changed = (what: string) =>
    new UserError(`filterEpisodes: the source gave different data on its second pass (${what}); minReturnQuantile needs a cold source that reads the same data again (readTransitions, readShards)`);
  const close = () => {
    if (openRows === 0) return;
    if (openRows !== lengths[episode]) throw changed(`episode ${episode} has ${openRows} rows, ${lengths[episode]} on the first pass`);
    sink.count(decisions[episode]!);
    episode++;
    openRows = 0;
  };
  return source.subscribe({
    next: sink.guard((b) => {
      const keep = new Uint8Array(b.length);
      walker.walk(b, (start, end, ends) => {
        if (end > start) {
          if (episode >= decisions.length) throw changed(`more than the ${decisions.length} episodes of the first pass`);
          if (decisions[episode] === KEEP) keep.fill(1, start, end);
          openRows += end - start;
        }
        if (ends) close();
      });
      sink.rows(b.length);
      sink.emit(keepRows(b, keep));
    }),
    error: sink.error,
    complete: () => {
      try {
        close();
        if (episode !== decisions.length) throw changed(`${episode} episodes, ${decisions.length} on the first pass`);
      } catch (e) {
        sink.error(e);
        return;
      }
      sink.complete();
    },
  });
}

/** One pass (no quantile): decides each episode at its end, holding the rows of the open one. */
function onePass(source: Observable<TransitionBatch>, cfg: FilterEpisodesConfig, threshold: number | null, sink: PassSink): Subscription {
  const walker = new EpisodeWalker();
  let openRows = 0;
  let openReturn = 0;
  // Copies of the open episode's rows from earlier batches (empty once it is longer than maxLength).
  let held: TransitionBatch[] = [];
  return source.subscribe({
    next: sink.guard((b) => {
      const keep = new Uint8Array(b.length);
      // Held rows that turn out kept precede every row of this batch.
      const before: TransitionBatch[] = [];
      walker.walk(b, (start, end, ends) => {
        openRows += end - start;
        openReturn += sumRewards(b.reward, start, end);
        if (ends) {
          if (openRows > 0) {
            const v = verdict(cfg, threshold, openRows, openReturn);
            sink.count(v);
            if (v === KEEP) {
              keep.fill(1, start, end);
              before.push(...held);
            }
          }
          held = [];
          openRows = 0;
          openReturn = 0;
        } else if (cfg.maxLength !== undefined && openRows > cfg.maxLength) {
          held = [];
        } else {
          held.push(copyRows(b, start, end));
        }
      });
      sink.rows(b.length);
      const rest = keepRows(b, keep);
      sink.emit(before.length === 0 ? rest : TransitionBatch.concat([...before, rest]));
    }),
    error: sink.error,
    complete: () => {
      if (openRows > 0) {
        const v = verdict(cfg, threshold, openRows, openReturn);
        sink.count(v);
        if (v === KEEP && held.length > 0) sink.emit(TransitionBatch.concat(held));
      }
      sink.complete();
    },
  });
}

/** Rows [start, end) of b as a new batch with its own buffers. */
function copyRows(b: TransitionBatch, start: number, end: number): TransitionBatch {
  const mask = new Uint8Array(b.length);
  mask.fill(1, start, end);
  // keepRows copies unless the rows are the whole batch; holding that batch costs the same.
  return keepRows(b, mask);
}
