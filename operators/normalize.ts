// Dataset normalization for the dynamics model (MOPO.md "inputs and targets normalized with dataset
// statistics").
//
//   source$.pipe(computeNormalizer())          // one streaming pass -> one Normalizer
//   source$.pipe(normalize(normalizer))        // TransitionBatch -> ModelBatch (normalized)
//   Normalizer.fromMoments(...) / a.merge(b)   // shards or workers: merge, same numbers as one pass
//   JSON.stringify(n) / Normalizer.fromJSON(j) // plain data, round-trips exactly
//
// Four groups of per-dimension statistics, each a RunningMoments (operators/datasetStats.ts, Chan's
// parallel update, so merging shard statistics equals one pass over the concatenation):
//   observation s (obsDim), action a (actDim), state delta Δs = next_observation − observation
//   (obsDim) and reward r (1).
// The model's input is x = [(s − μ_s)/σ_s, (a − μ_a)/σ_a] (obsDim + actDim columns) and its target
// y = [(Δs − μ_Δ)/σ_Δ, (r − μ_r)/σ_r] (obsDim + 1 columns). A ModelBatch carries x and y row-major,
// ready to become [B, in] / [B, out] tensors; the source batch is not modified (new arrays).
//
// Standard deviations: population std (÷ n). A dimension whose std is below MIN_STD (1e-6), not
// finite, or that has no values uses 1 instead, so a constant column is only centered (it becomes 0)
// instead of being divided by ~0 (the official code's StandardScaler does the same with 1e-12;
// 1e-6 is used here because the data is float32, whose rounding noise alone is ~1e-7 relative).
//
// Non-finite values (NaN, ±Infinity) make computeNormalizer fail with a UserError naming the group
// and the first row: a model trained on them would be NaN. Clean the data first.
import { Observable, type OperatorFunction } from 'rxjs';
import { RunningMoments } from './datasetStats.js';
import { TransitionBatch, type TransitionDims } from '../schemas/transition.js';
import { UserError } from '../pipeline/errors.js';
import type { ModelTargets } from './ensemble.js';

/** Below this a standard deviation is replaced by 1 (see the header). */
export const MIN_STD = 1e-6;

export const NORMALIZER_FORMAT = 'mopo-normalizer';

/** The four statistic groups, in the order of the model's input and target columns. */
export const GROUPS = ['observation', 'action', 'delta', 'reward'] as const;
export type Group = (typeof GROUPS)[number];

/** A RunningMoments as plain JSON (min/max ±Infinity stored as null). */
export interface MomentsJson {
  dim: number;
  rows: number;
  count: number[];
  mean: number[];
  m2: number[];
  min: Array<number | null>;
  max: Array<number | null>;
}

export interface NormalizerJson {
  format: typeof NORMALIZER_FORMAT;
  version: 1;
  obsDim: number;
  actDim: number;
  /** The effective mean/std used (std already replaced by 1 where tiny). */
  mean: Record<Group, number[]>;
  std: Record<Group, number[]>;
  /** The moments, so a loaded normalizer still merges. */
  moments: Record<Group, MomentsJson>;
}

/** The model's view of a batch: normalized inputs [(s, a)] and targets [(Δs, r)], row-major. */
export interface ModelBatch {
  length: number;
  obsDim: number;
  actDim: number;
  /** length × (obsDim + actDim). */
  inputs: Float32Array;
  /** length × (obsDim + 1). */
  targets: Float32Array;
}

function effectiveStd(m: RunningMoments): Float32Array {
  const s = m.std();
  const out = new Float32Array(m.dim);
  for (let j = 0; j < m.dim; j++) {
    const v = s[j]!;
    out[j] = m.count[j]! > 0 && Number.isFinite(v) && v >= MIN_STD ? v : 1;
  }
  return out;
}

function momentsToJson(m: RunningMoments): MomentsJson {
  const fin = (x: number) => (Number.isFinite(x) ? x : null);
  return {
    dim: m.dim,
    rows: m.rows,
    count: Array.from(m.count),
    mean: Array.from(m.mean),
    m2: Array.from(m.m2),
    min: Array.from(m.min, fin),
    max: Array.from(m.max, fin),
  };
}

function momentsFromJson(j: MomentsJson): RunningMoments {
  const m = new RunningMoments(j.dim);
  if (j.count.length !== j.dim || j.mean.length !== j.dim || j.m2.length !== j.dim) throw new UserError(`normalizer moments: arrays do not match dim ${j.dim}`);
  m.count.set(j.count);
  m.mean.set(j.mean);
  m.m2.set(j.m2);
  m.min.set(j.min.map((x) => (x === null ? Infinity : x)));
  m.max.set(j.max.map((x) => (x === null ? -Infinity : x)));
  m.rows = j.rows;
  return m;
}

function cloneMoments(m: RunningMoments): RunningMoments {
  return new RunningMoments(m.dim).merge(m);
}

/** Per-dimension mean/std of s, a, Δs, r (plain data; see the header). */
export class Normalizer {
  readonly obsDim: number;
  readonly actDim: number;
  readonly mean: Readonly<Record<Group, Float32Array>>;
  readonly std: Readonly<Record<Group, Float32Array>>;
  private readonly moments: Record<Group, RunningMoments>;

  private constructor(obsDim: number, actDim: number, moments: Record<Group, RunningMoments>) {
    this.obsDim = obsDim;
    this.actDim = actDim;
    this.moments = moments;
    const mean = {} as Record<Group, Float32Array>;
    const std = {} as Record<Group, Float32Array>;
    for (const g of GROUPS) {
      mean[g] = Float32Array.from(moments[g].mean);
      std[g] = effectiveStd(moments[g]);
    }
    this.mean = mean;
    this.std = std;
  }

  /** From accumulated moments (copied). */
  static fromMoments(dims: { obsDim: number; actDim: number }, moments: Record<Group, RunningMoments>): Normalizer {
    const want: Record<Group, number> = { observation: dims.obsDim, action: dims.actDim, delta: dims.obsDim, reward: 1 };
    const m = {} as Record<Group, RunningMoments>;
    for (const g of GROUPS) {
      if (moments[g].dim !== want[g]) throw new RangeError(`Normalizer: ${g} moments have dim ${moments[g].dim}, expected ${want[g]}`);
      m[g] = cloneMoments(moments[g]);
    }
    return new Normalizer(dims.obsDim, dims.actDim, m);
  }

  /** The identity (mean 0, std 1, no rows). */
  static identity(dims: { obsDim: number; actDim: number }): Normalizer {
    return new Normalizer(dims.obsDim, dims.actDim, emptyMoments(dims));
  }

  /** Statistics of one batch (or use computeNormalizer for a stream). */
  static ofBatch(b: TransitionBatch): Normalizer {
    const acc = new NormalizerAccumulator(b);
    acc.update(b);
    return acc.result();
  }

  /** Rows the statistics were computed from. */
  get rows(): number {
    return this.moments.reward.rows;
  }

  /** A new Normalizer with the statistics of both (as one pass over both datasets). */
  merge(other: Normalizer): Normalizer {
    if (other.obsDim !== this.obsDim || other.actDim !== this.actDim) {
      throw new RangeError(`Normalizer.merge: dims ${other.obsDim}/${other.actDim} ≠ ${this.obsDim}/${this.actDim}`);
    }
    const m = {} as Record<Group, RunningMoments>;
    for (const g of GROUPS) m[g] = cloneMoments(this.moments[g]).merge(other.moments[g]);
    return new Normalizer(this.obsDim, this.actDim, m);
  }

  /** Mean and std of the model input columns [s, a] and of the target columns [Δs, r]. */
  get inputMean(): Float32Array { return cat(this.mean.observation, this.mean.action); }
  get inputStd(): Float32Array { return cat(this.std.observation, this.std.action); }
  get targetMean(): Float32Array { return cat(this.mean.delta, this.mean.reward); }
  get targetStd(): Float32Array { return cat(this.std.delta, this.std.reward); }

  /** Normalized model inputs for n rows of observations and actions (new array, n × (O + A)). */
  normalizeInputs(obs: Float32Array, act: Float32Array, n = obs.length / this.obsDim): Float32Array {
    const O = this.obsDim;
    const A = this.actDim;
    const W = O + A;
    const out = new Float32Array(n * W);
    const ms = this.mean.observation, ss = this.std.observation, ma = this.mean.action, sa = this.std.action;
    for (let i = 0; i < n; i++) {
      const o = i * W;
      for (let j = 0; j < O; j++) out[o + j] = (obs[i * O + j]! - ms[j]!) / ss[j]!;
      for (let j = 0; j < A; j++) out[o + O + j] = (act[i * A + j]! - ma[j]!) / sa[j]!;
    }
    return out;
  }

  /** Normalized targets [(Δs − μ)/σ, (r − μ)/σ] (new array, n × (O + 1)). */
  normalizeTargets(obs: Float32Array, nextObs: Float32Array, reward: Float32Array, n = reward.length): Float32Array {
    const O = this.obsDim;
    const W = O + 1;
    const out = new Float32Array(n * W);
    const md = this.mean.delta, sd = this.std.delta;
    const mr = this.mean.reward[0]!, sr = this.std.reward[0]!;
    for (let i = 0; i < n; i++) {
      const o = i * W;
      for (let j = 0; j < O; j++) out[o + j] = (nextObs[i * O + j]! - obs[i * O + j]! - md[j]!) / sd[j]!;
      out[o + O] = (reward[i]! - mr) / sr;
    }
    return out;
  }

  /** Targets [Δs, r] in the data's units (new array, n × (O + 1)): the official code's BNN. */
  rawTargets(obs: Float32Array, nextObs: Float32Array, reward: Float32Array, n = reward.length): Float32Array {
    const O = this.obsDim;
    const W = O + 1;
    const out = new Float32Array(n * W);
    for (let i = 0; i < n; i++) {
      const o = i * W;
      for (let j = 0; j < O; j++) out[o + j] = nextObs[i * O + j]! - obs[i * O + j]!;
      out[o + O] = reward[i]!;
    }
    return out;
  }

  /**
   * The model's view of a batch (the batch is not modified): normalized inputs, and targets
   * normalized or, with targets 'raw' (the official code's BNN), (Δs, r) as they are.
   */
  toModelBatch(b: TransitionBatch, targets: ModelTargets = 'normalized'): ModelBatch {
    this.checkDims(b);
    return {
      length: b.length,
      obsDim: b.obsDim,
      actDim: b.actDim,
      inputs: this.normalizeInputs(b.observation, b.action, b.length),
      targets: targets === 'raw' ? this.rawTargets(b.observation, b.nextObservation, b.reward, b.length) : this.normalizeTargets(b.observation, b.nextObservation, b.reward, b.length),
    };
  }

  checkDims(d: { obsDim: number; actDim: number }): void {
    if (d.obsDim !== this.obsDim || d.actDim !== this.actDim) {
      throw new UserError(`normalizer is for obsDim ${this.obsDim}/actDim ${this.actDim}, the batch has ${d.obsDim}/${d.actDim}`);
    }
  }

  toJSON(): NormalizerJson {
    const mean = {} as Record<Group, number[]>;
    const std = {} as Record<Group, number[]>;
    const moments = {} as Record<Group, MomentsJson>;
    for (const g of GROUPS) {
      mean[g] = Array.from(this.mean[g]);
      std[g] = Array.from(this.std[g]);
      moments[g] = momentsToJson(this.moments[g]);
    }
    return { format: NORMALIZER_FORMAT, version: 1, obsDim: this.obsDim, actDim: this.actDim, mean, std, moments };
  }

  static fromJSON(j: NormalizerJson): Normalizer {
    if (!j || j.format !== NORMALIZER_FORMAT || j.version !== 1) throw new UserError(`not a mopo normalizer (format ${JSON.stringify(j?.format)})`);
    const m = {} as Record<Group, RunningMoments>;
    for (const g of GROUPS) m[g] = momentsFromJson(j.moments[g]);
    return Normalizer.fromMoments({ obsDim: j.obsDim, actDim: j.actDim }, m);
  }
}

function cat(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function emptyMoments(d: { obsDim: number; actDim: number }): Record<Group, RunningMoments> {
  return {
    observation: new RunningMoments(d.obsDim),
    action: new RunningMoments(d.actDim),
    delta: new RunningMoments(d.obsDim),
    reward: new RunningMoments(1),
  };
}

/** Streaming accumulator behind computeNormalizer (usable directly, e.g. inside another pass). */
export class NormalizerAccumulator {
  readonly dims: TransitionDims;
  private readonly m: Record<Group, RunningMoments>;

  constructor(dims: TransitionDims) {
    this.dims = { obsDim: dims.obsDim, actDim: dims.actDim };
    this.m = emptyMoments(dims);
  }

  update(b: TransitionBatch): void {
    if (b.obsDim !== this.dims.obsDim || b.actDim !== this.dims.actDim) {
      throw new UserError(`computeNormalizer: batch dims ${b.obsDim}/${b.actDim} differ from the first batch's ${this.dims.obsDim}/${this.dims.actDim}`);
    }
    const delta = new Float32Array(b.nextObservation.length);
    for (let i = 0; i < delta.length; i++) delta[i] = b.nextObservation[i]! - b.observation[i]!;
    // RunningMoments counts rows itself (its first-non-finite row is a global row index).
    this.m.observation.update(b.observation);
    this.m.action.update(b.action);
    this.m.delta.update(delta);
    this.m.reward.update(b.reward);
  }

  result(): Normalizer {
    for (const g of GROUPS) {
      const m = this.m[g];
      if (m.nonFinite > 0) {
        throw new UserError(
          `computeNormalizer: ${m.nonFinite} non-finite value(s) in ${g === 'delta' ? 'next_observation − observation' : g} (first at row ${m.firstNonFiniteRow}); clean the dataset before training the model`,
        );
      }
    }
    if (this.m.reward.rows === 0) throw new UserError('computeNormalizer: the dataset has no rows');
    return Normalizer.fromMoments(this.dims, this.m);
  }
}

/** Operator: one streaming pass over transition batches; emits one Normalizer at completion. */
export function computeNormalizer(): OperatorFunction<TransitionBatch, Normalizer> {
  return (source) =>
    new Observable<Normalizer>((subscriber) => {
      let acc: NormalizerAccumulator | null = null;
      return source.subscribe({
        next: (b) => {
          try {
            acc ??= new NormalizerAccumulator(b.dims);
            acc.update(b);
          } catch (e) {
            subscriber.error(e);
          }
        },
        error: (e) => subscriber.error(e),
        complete: () => {
          try {
            if (acc === null) throw new UserError('computeNormalizer: the dataset has no rows');
            subscriber.next(acc.result());
            subscriber.complete();
          } catch (e) {
            subscriber.error(e);
          }
        },
      });
    });
}

/** Operator: the normalized model view (inputs [s, a], targets [Δs, r]) of each batch. */
export function normalize(normalizer: Normalizer): OperatorFunction<TransitionBatch, ModelBatch> {
  return (source) =>
    new Observable<ModelBatch>((subscriber) =>
      source.subscribe({
        next: (b) => {
          let mb: ModelBatch;
          try {
            mb = normalizer.toModelBatch(b);
          } catch (e) {
            subscriber.error(e);
            return;
          }
          subscriber.next(mb);
        },
        error: (e) => subscriber.error(e),
        complete: () => subscriber.complete(),
      }),
    );
}

// ---------------------------------------------------------------------------------------------
// The `normalize` pipeline stage: the same statistics, applied to the transitions themselves.

export interface NormalizeTransitionsConfig {
  /** Standardize observation and next_observation with the observation statistics. */
  observations: boolean;
  /** Standardize actions with the action statistics (off by default: actions keep their box). */
  actions: boolean;
  /** Standardize the reward with the reward statistics. */
  reward: boolean;
}

export const NORMALIZE_TRANSITIONS_DEFAULTS: Readonly<NormalizeTransitionsConfig> = Object.freeze({ observations: true, actions: false, reward: false });

export function resolveNormalizeTransitionsConfig(partial: Partial<NormalizeTransitionsConfig> = {}): NormalizeTransitionsConfig {
  const c = { ...NORMALIZE_TRANSITIONS_DEFAULTS };
  for (const [k, v] of Object.entries(partial)) {
    if (!(k in NORMALIZE_TRANSITIONS_DEFAULTS)) throw new UserError(`normalize config: unknown field '${k}' (known: observations, actions, reward)`);
    if (v === undefined) continue;
    if (typeof v !== 'boolean') throw new UserError(`normalize config: ${k}: expected true or false, got ${JSON.stringify(v)}`);
    (c as Record<string, boolean>)[k] = v;
  }
  return c;
}

/**
 * Operator: standardizes the chosen columns of every transition with statistics of the whole
 * stream, so it subscribes twice to its (cold) source: a first pass computes the Normalizer, the
 * second emits new batches (the inputs are not modified). onSummary gets the Normalizer's JSON, to
 * invert or reuse the transform. Memory: one batch at a time on both passes.
 */
export function normalizeTransitions(config: Partial<NormalizeTransitionsConfig> = {}, hooks: { onSummary?: (s: { config: NormalizeTransitionsConfig; normalizer: NormalizerJson; rows: number }) => void } = {}): OperatorFunction<TransitionBatch, TransitionBatch> {
  const cfg = resolveNormalizeTransitionsConfig(config);
  return (source) =>
    new Observable<TransitionBatch>((subscriber) => {
      let inner: { unsubscribe(): void } | null = null;
      let rows = 0;
      const first = source.pipe(computeNormalizer()).subscribe({
        next: (n) => {
          const std = (x: Float32Array, n0: number, w: number, mean: Float32Array, sd: Float32Array) => {
            const out = new Float32Array(x.length);
            for (let i = 0; i < n0; i++) for (let j = 0; j < w; j++) out[i * w + j] = (x[i * w + j]! - mean[j]!) / sd[j]!;
            return out;
          };
          inner = source.subscribe({
            next: (b) => {
              const O = b.obsDim;
              const cols = { ...b.columns };
              if (cfg.observations) {
                cols.observation = std(b.observation, b.length, O, n.mean.observation, n.std.observation);
                cols.nextObservation = std(b.nextObservation, b.length, O, n.mean.observation, n.std.observation);
              }
              if (cfg.actions) cols.action = std(b.action, b.length, b.actDim, n.mean.action, n.std.action);
              if (cfg.reward) cols.reward = std(b.reward, b.length, 1, n.mean.reward, n.std.reward);
              rows += b.length;
              subscriber.next(new TransitionBatch(b.dims, cols));
            },
            error: (e) => subscriber.error(e),
            complete: () => {
              hooks.onSummary?.({ config: cfg, normalizer: n.toJSON(), rows });
              subscriber.complete();
            },
          });
        },
        error: (e) => subscriber.error(e),
      });
      return () => {
        first.unsubscribe();
        inner?.unsubscribe();
      };
    });
}
