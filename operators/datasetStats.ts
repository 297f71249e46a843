// Dataset statistics in one streaming pass: per-dimension count/mean/M2/min/max with Chan et al.'s
// parallel update, so statistics of shards or workers merge exactly (the same numbers as one pass
// over the concatenation, up to float rounding), plus the episode/flag/reward summaries `inspect`
// reports. Non-finite values are counted per column and left out of the moments.
import { Observable, type OperatorFunction } from 'rxjs';
import { COLUMNS, type TransitionBatch } from '../schemas/transition.js';

/** Mergeable per-dimension moments over finite values. */
export class RunningMoments {
  readonly dim: number;
  readonly count: Float64Array;
  readonly mean: Float64Array;
  readonly m2: Float64Array;
  readonly min: Float64Array;
  readonly max: Float64Array;
  /** Non-finite values seen (all dimensions together) and the first row index holding one. */
  nonFinite = 0;
  firstNonFiniteRow = -1;
  rows = 0;

  constructor(dim: number) {
    this.dim = dim;
    this.count = new Float64Array(dim);
    this.mean = new Float64Array(dim);
    this.m2 = new Float64Array(dim);
    this.min = new Float64Array(dim).fill(Infinity);
    this.max = new Float64Array(dim).fill(-Infinity);
  }

  /**
   * Adds n rows of row-major values (n × dim). Each batch's moments are computed in a first pass
   * and merged with Chan's formula: stable, and the same rule as merge().
   */
  update(values: Float32Array, rowOffset = 0): void {
    const d = this.dim;
    const n = values.length / d;
    const bCount = new Float64Array(d);
    const bSum = new Float64Array(d);
    const bMin = new Float64Array(d).fill(Infinity);
    const bMax = new Float64Array(d).fill(-Infinity);
    for (let i = 0, k = 0; i < n; i++) {
      for (let j = 0; j < d; j++, k++) {
        const v = values[k]!;
        if (v - v !== 0) {
          // NaN or ±Infinity
          if (this.firstNonFiniteRow < 0) this.firstNonFiniteRow = this.rows + rowOffset + i;
          this.nonFinite++;
          continue;
        }
        bCount[j]!++;
        bSum[j]! += v;
        if (v < bMin[j]!) bMin[j] = v;
        if (v > bMax[j]!) bMax[j] = v;
      }
    }
    const bMean = new Float64Array(d);
    for (let j = 0; j < d; j++) bMean[j] = bCount[j]! > 0 ? bSum[j]! / bCount[j]! : 0;
    const bM2 = new Float64Array(d);
    for (let i = 0, k = 0; i < n; i++) {
      for (let j = 0; j < d; j++, k++) {
        const v = values[k]!;
        if (v - v !== 0) continue;
        const dv = v - bMean[j]!;
        bM2[j]! += dv * dv;
      }
    }
    this.mergeParts(bCount, bMean, bM2, bMin, bMax);
    this.rows += n;
  }

  /** Merges another accumulator of the same dim into this one. */
  merge(other: RunningMoments): this {
    if (other.dim !== this.dim) throw new RangeError(`RunningMoments.merge: dim ${other.dim} ≠ ${this.dim}`);
    if (other.firstNonFiniteRow >= 0 && this.firstNonFiniteRow < 0) this.firstNonFiniteRow = this.rows + other.firstNonFiniteRow;
    this.mergeParts(other.count, other.mean, other.m2, other.min, other.max);
    this.nonFinite += other.nonFinite;
    this.rows += other.rows;
    return this;
  }

  private mergeParts(nB: Float64Array, meanB: Float64Array, m2B: Float64Array, minB: Float64Array, maxB: Float64Array): void {
    for (let j = 0; j < this.dim; j++) {
      const nA = this.count[j]!;
      const nb = nB[j]!;
      if (nb === 0) continue;
      const n = nA + nb;
      const delta = meanB[j]! - this.mean[j]!;
      this.mean[j] = this.mean[j]! + (delta * nb) / n;
      this.m2[j] = this.m2[j]! + m2B[j]! + (delta * delta * nA * nb) / n;
      this.count[j] = n;
      if (minB[j]! < this.min[j]!) this.min[j] = minB[j]!;
      if (maxB[j]! > this.max[j]!) this.max[j] = maxB[j]!;
    }
  }

  /** Population standard deviation per dimension. */
  std(): Float64Array {
    const out = new Float64Array(this.dim);
    for (let j = 0; j < this.dim; j++) out[j] = this.count[j]! > 0 ? Math.sqrt(this.m2[j]! / this.count[j]!) : 0;
    return out;
  }
}

export interface ColumnSummary {
  dim: number;
  min: number[];
  max: number[];
  mean: number[];
  std: number[];
  nonFinite: number;
  /** First row holding a non-finite value, or null. */
  firstNonFiniteRow: number | null;
}

export interface DatasetStats {
  rows: number;
  obsDim: number;
  actDim: number;
  env: string | null;
  episodes: number;
  terminals: number;
  timeouts: number;
  columns: Record<string, ColumnSummary>;
  nonFinite: Record<string, number>;
  reward: { mean: number; std: number; min: number; max: number };
  episodeReturns: { count: number; mean: number; std: number; min: number; max: number } | null;
  episodeLengths: { mean: number; min: number; max: number } | null;
}

const FLOAT_COLUMNS = [
  ['observation', COLUMNS.observation],
  ['action', COLUMNS.action],
  ['reward', COLUMNS.reward],
  ['nextObservation', COLUMNS.nextObservation],
] as const;

/**
 * Operator: consumes a stream of transition batches and emits one DatasetStats when it completes.
 * Episodes are delimited by the `episode` column when present, else by terminal/timeout flags
 * (a trailing unfinished episode counts as one).
 */
export function datasetStats(): OperatorFunction<TransitionBatch, DatasetStats> {
  return (source) =>
    new Observable<DatasetStats>((subscriber) => {
      const moments = new Map<string, RunningMoments>();
      let rows = 0;
      let terminals = 0;
      let timeouts = 0;
      let obsDim = 0;
      let actDim = 0;
      let env: string | null = null;
      const returns: number[] = [];
      const lengths: number[] = [];
      let epReturn = 0;
      let epLength = 0;
      let lastEpisodeId: number | null = null;

      const closeEpisode = () => {
        if (epLength > 0) {
          returns.push(epReturn);
          lengths.push(epLength);
        }
        epReturn = 0;
        epLength = 0;
      };

      return source.subscribe({
        next: (b) => {
          if (rows === 0) {
            obsDim = b.obsDim;
            actDim = b.actDim;
            env = b.env ?? null;
            for (const [key, name] of FLOAT_COLUMNS) moments.set(name, new RunningMoments(key === 'reward' ? 1 : key === 'action' ? actDim : obsDim));
          }
          for (const [key, name] of FLOAT_COLUMNS) moments.get(name)!.update(b[key], 0);
          for (let i = 0; i < b.length; i++) {
            if (b.episode) {
              const id = b.episode[i]!;
              if (lastEpisodeId !== null && id !== lastEpisodeId) closeEpisode();
              lastEpisodeId = id;
            }
            const r = b.reward[i]!;
            if (r - r === 0) epReturn += r;
            epLength++;
            terminals += b.terminal[i]!;
            timeouts += b.timeout[i]!;
            if (!b.episode && (b.terminal[i] || b.timeout[i])) closeEpisode();
          }
          rows += b.length;
        },
        error: (e) => subscriber.error(e),
        complete: () => {
          closeEpisode();
          const columns: Record<string, ColumnSummary> = {};
          const nonFinite: Record<string, number> = {};
          for (const [, name] of FLOAT_COLUMNS) {
            const m = moments.get(name);
            if (!m) continue;
            const std = m.std();
            columns[name] = {
              dim: m.dim,
              min: Array.from(m.min, (x) => (Number.isFinite(x) ? x : Number.NaN)),
              max: Array.from(m.max, (x) => (Number.isFinite(x) ? x : Number.NaN)),
              mean: Array.from(m.mean),
              std: Array.from(std),
              nonFinite: m.nonFinite,
              firstNonFiniteRow: m.firstNonFiniteRow >= 0 ? m.firstNonFiniteRow : null,
            };
            nonFinite[name] = m.nonFinite;
          }
          const rw = columns[COLUMNS.reward];
          subscriber.next({
            rows,
            obsDim,
            actDim,
            env,
            episodes: returns.length,
            terminals,
            timeouts,
            columns,
            nonFinite,
            reward: rw ? { mean: rw.mean[0]!, std: rw.std[0]!, min: rw.min[0]!, max: rw.max[0]! } : { mean: Number.NaN, std: Number.NaN, min: Number.NaN, max: Number.NaN },
            episodeReturns: summarize(returns),
            episodeLengths: lengthSummary(lengths),
          });
          subscriber.complete();
        },
      });
    });
}

function lengthSummary(xs: number[]): DatasetStats['episodeLengths'] {
  const s = summarize(xs);
  return s && { mean: s.mean, min: s.min, max: s.max };
}

function summarize(xs: number[]): DatasetStats['episodeReturns'] {
  if (xs.length === 0) return null;
  let mean = 0;
  for (const x of xs) mean += x;
  mean /= xs.length;
  let v = 0;
  for (const x of xs) v += (x - mean) * (x - mean);
  let min = Infinity;
  let max = -Infinity;
  for (const x of xs) {
    if (x < min) min = x;
    if (x > max) max = x;
  }
  return { count: xs.length, mean, std: Math.sqrt(v / xs.length), min, max };
}
