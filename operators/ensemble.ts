// The probabilistic dynamics ensemble of MOPO (/work/shared/MOPO.md "The practical algorithm" 1 and
// "Reference settings"), computed as ONE batched DenseStack (weights [E, in, out]) with hand-written
// gradients, and its training loop as a streaming operator.
//
//   const ens = DynamicsEnsemble.create(config, dims, rng, normalizer)
//   ens.trainStep(xs, ys)                 // xs [E, B, in], ys [E, B, out]: each member its own batch
//   ens.evaluate(x, y)                    // per-member validation MSE and NLL (normalized space)
//   ens.predict(obs, act)                 // per-member means/variances of s' and r, ORIGINAL scale
//   ens.elites                            // indices of the best members by validation loss
//   await ens.save(dir); await DynamicsEnsemble.load(dir)     // exact round trip
//   source$.pipe(trainEnsemble(config))   // epochs over a cold source, early stopping, best weights
//                                         // (config.workers: members split across threads)
//
// Model (defaults = ENSEMBLE_DEFAULTS = the reference settings):
//   input   x = normalized (s, a) (operators/normalize.ts), in = obsDim + actDim
//   net     in -> 200 -> 200 -> 200 -> 200 (swish) -> 2D, D = obsDim + 1; out = [μ | raw]
//   targets y = raw (Δs, r) (Δs = s' − s; targets 'raw', the default: the official code's BNN,
//           whose scaler normalizes inputs only, so the bounds' init, the bound penalty and the
//           decay act in the data's units), or normalized (Δs, r) with targets 'normalized'.
//           The defaults follow the official code rather than MOPO.md's "targets normalized": on
//           halfcheetah-random (uniform actions) MOPO at λ 0.5 scored 27.9 at epoch 69 and 30–34
//           at 199–299 on a raw/'mean' ensemble against 23.9 at 69 on a normalized/'sum' one (README)
//   bounds  learned maxLV, minLV ([1, D], shared by the members, init 0.5 and −10 as the official
//           code), softly applied to the raw log-variance:
//             lv₁ = maxLV − softplus(maxLV − raw);  lv = minLV + softplus(lv₁ − minLV)
//   loss    Σ_members NLL_e + 0.01·(Σ maxLV − Σ minLV) + Σ_l wd_l·½‖W_l‖²  (biases not decayed;
//           wd = 2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4; ½‖W‖² is tf.nn.l2_loss as in the official code)
//           NLL_e = mean over the batch of mean_dims [(μ − y)²·exp(−lv) + lv]   (nllReduction
//           'mean', the default and the official code's; 'sum' sums over the dims instead: that
//           only rescales the NLL against the bound penalty and the decay, by D)
//   opt     one Adam (lr 1e-3) over the weights, biases and both bounds; batch 256 per member.
//
// Gradients (no tape; explicit tf ops in one tf.tidy; test/ensemble.test.ts checks them against
// tf.grads): with c = 1/B ('sum') or 1/(B·D) ('mean'), d = μ − y, ι = exp(−lv),
//   dμ = 2c·d·ι;  g = ∂L/∂lv = c·(1 − d²ι);  σa = sigmoid(maxLV − raw), σb = sigmoid(lv₁ − minLV)
//   ∂L/∂raw = g·σb·σa;  ∂L/∂maxLV = Σ g·σb·(1 − σa) + 0.01;  ∂L/∂minLV = Σ g·(1 − σb) − 0.01
//   then DenseStack.backward on dOut = [dμ | ∂L/∂raw], plus wd_l·W_l on each weight gradient.
// Cost: trainStep does not form the total loss (the decay term would cost a pass over the
// weights); measured at the reference shape (7 × 23-200x4-36, batch 256, wasm, shared machine,
// interleaved in one process) ~68 ms a step vs ~66 ms for bench/dense.ts's plain-NLL fixture.
//
// Validation and elites: the validation loss that ranks members (elites) and drives early stopping
// is the per-member MSE of μ in the model's output space (selectBy 'mse', what the official code
// uses; with targets 'raw' it is the raw MSE, as there), or the NLL (selectBy 'nll').
//
// Training loop (trainEnsemble): see the comment above trainEnsemble.
import { existsSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Observable, isObservable, type OperatorFunction, type Subscription } from 'rxjs';
import { Adam, DenseStack, WEIGHT_INITS, type Activation, type DenseStackSpec, type WeightInit } from '../pipeline/mlp.js';
import { hasMopoKernel } from '../pipeline/kernels.js';
import { Rng, hashString } from '../pipeline/random.js';
import { readTensorCheckpoint, writeTensorCheckpoint, type CheckpointKind } from '../pipeline/tensorCheckpoint.js';
import { UserError, showValue } from '../pipeline/errors.js';
import { DivergenceError } from '../pipeline/divergence.js';
import type { TransitionBatch, TransitionDims } from '../schemas/transition.js';
import { Normalizer, NormalizerAccumulator, type ModelBatch, type NormalizerJson } from './normalize.js';
import { EnsembleWorkerPool } from './ensembleWorkerPool.js';

// ---------------------------------------------------------------------------------------------
// Config

/** The choices of the ensemble's enumerated settings: one list each, for the type, the CLI, pipeline files and the config check. */
export const MODEL_TARGETS = ['normalized', 'raw'] as const;
export type ModelTargets = (typeof MODEL_TARGETS)[number];
export const NLL_REDUCTIONS = ['sum', 'mean'] as const;
export type NllReduction = (typeof NLL_REDUCTIONS)[number];
export const RESAMPLES = ['permutation', 'bootstrap'] as const;
export type Resample = (typeof RESAMPLES)[number];

export interface EnsembleConfig {
  /** Ensemble size N. */
  members: number;
  /** How many of the best members (by validation loss) are elites. */
  elites: number;
  /** Hidden layer widths. */
  hidden: number[];
  /** Hidden activation. */
  activation: Activation;
  /** L2 weight decay coefficient per layer (hidden.length + 1 entries, output layer last). */
  weightDecay: number[];
  lr: number;
  /** Rows per member per training step. */
  batchSize: number;
  /** Initial values of the learned log-variance bounds. */
  maxLogVarInit: number;
  minLogVarInit: number;
  /** Weight of the bound penalty Σ maxLV − Σ minLV. */
  boundPenalty: number;
  /** 'sum' (Σ over dims, mean over rows) or 'mean' (mean over both) in the NLL. */
  nllReduction: NllReduction;
  /** The model's output space: normalized (Δs, r) or raw (Δs, r) as the official code. */
  targets: ModelTargets;
  /** Validation loss ranking elites and driving early stopping. */
  selectBy: 'mse' | 'nll';
  // --- training loop (trainEnsemble) ---
  /** Held-out share of the rows, capped at holdoutMax rows (in expectation; see trainEnsemble). */
  holdoutFraction: number;
  holdoutMax: number;
  /** A member improves when its validation loss drops by more than this fraction of its best. */
  improvementThreshold: number;
  /** Stop after this many epochs in which no member improved. */
  patience: number;
  /** Hard cap on epochs. */
  maxEpochs: number;
  /** Rows per shuffle block (each member shuffles each block in its own order). */
  shuffleBuffer: number;
  /**
   * What each member trains on in a block: 'permutation', every row once (a new order each epoch),
   * or 'bootstrap', as the reference: as many rows drawn with replacement, the same draw every
   * epoch (seeded by member and block), in a new order each epoch (memberOrders).
   */
  resample: Resample;
  /**
   * Initial weights: 'uniform' in ±1/√fan-in, 'truncated-normal' with σ = 1/(2√fan-in) cut at
   * ±2σ, as the official code's FC layers, or 'glorot-uniform' (pipeline/mlp.ts).
   */
  init: WeightInit;
  /** Seed of the initialization, the holdout rule and the shuffles. */
  seed: number;
  /**
   * Threads the members are split across during training (trainEnsemble): 1 trains in the calling
   * thread; k > 1 (capped at `members`) trains contiguous member ranges in k worker threads on the
   * same shuffle blocks (operators/ensembleWorkerPool.ts): the same numbers up to float rounding,
   * and deterministic for a given k. 2 pays at the reference size with a free second core (1.5–1.6×
   * the steps per second); it is slower when that core is busy (0.75–0.95×), for small networks
   * (steps too short for a per-step exchange) and short runs (starting the workers takes about a
   * second), hence default 1. Ignored on the node backend (native TensorFlow is multi-threaded).
   */
  workers: number;
}

export const ENSEMBLE_DEFAULTS: Readonly<EnsembleConfig> = Object.freeze({
  members: 7,
  elites: 5,
  hidden: [200, 200, 200, 200],
  activation: 'swish',
  weightDecay: [2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4],
  lr: 1e-3,
  batchSize: 256,
  maxLogVarInit: 0.5,
  minLogVarInit: -10,
  boundPenalty: 0.01,
  nllReduction: 'mean',
  targets: 'raw',
  selectBy: 'mse',
  holdoutFraction: 0.2,
  holdoutMax: 1000,
  improvementThreshold: 0.01,
  patience: 5,
  maxEpochs: 1000,
  shuffleBuffer: 65536,
  resample: 'permutation',
  init: 'uniform',
  seed: 0,
  workers: 1,
}) as Readonly<EnsembleConfig>;

/** Defaults filled in and checked (UserError on a bad value). */
export function resolveEnsembleConfig(partial: Partial<EnsembleConfig> = {}): EnsembleConfig {
  const c: EnsembleConfig = { ...ENSEMBLE_DEFAULTS, hidden: ENSEMBLE_DEFAULTS.hidden.slice(), weightDecay: ENSEMBLE_DEFAULTS.weightDecay.slice() };
  for (const [k, v] of Object.entries(partial)) if (v !== undefined) (c as unknown as Record<string, unknown>)[k] = v;
  if (partial.hidden !== undefined && partial.weightDecay === undefined) {
    // A different depth without its own decay list: keep the reference growth, padded with the last value.
    const wd = ENSEMBLE_DEFAULTS.weightDecay;
    c.weightDecay = Array.from({ length: c.hidden.length + 1 }, (_, i) => wd[Math.min(i, wd.length - 1)]!);
  }
  const posInt = (k: keyof EnsembleConfig) => {
    const v = c[k] as number;
    if (!Number.isInteger(v) || v < 1) throw new UserError(`ensemble config: ${k} must be a positive integer, got ${v}`);
  };
  for (const k of ['members', 'elites', 'batchSize', 'patience', 'maxEpochs', 'shuffleBuffer', 'workers'] as const) posInt(k);
  if (c.elites > c.members) throw new UserError(`ensemble config: elites (${c.elites}) exceeds members (${c.members})`);
  if (!Array.isArray(c.hidden) || c.hidden.length === 0 || c.hidden.some((h) => !Number.isInteger(h) || h < 1)) {
    throw new UserError(`ensemble config: hidden must be a non-empty list of positive integers, got ${JSON.stringify(c.hidden)}`);
  }
  if (c.weightDecay.length !== c.hidden.length + 1 || c.weightDecay.some((w) => !(w >= 0))) {
    throw new UserError(`ensemble config: weightDecay needs ${c.hidden.length + 1} non-negative numbers (one per layer), got ${JSON.stringify(c.weightDecay)}`);
  }
  if (!['relu', 'swish', 'tanh', 'linear'].includes(c.activation)) throw new UserError(`ensemble config: unknown activation ${c.activation}`);
  if (!(c.lr > 0)) throw new UserError(`ensemble config: lr must be > 0, got ${c.lr}`);
  if (!(c.maxLogVarInit > c.minLogVarInit)) throw new UserError('ensemble config: maxLogVarInit must exceed minLogVarInit');
  if (!(c.boundPenalty >= 0)) throw new UserError(`ensemble config: boundPenalty must be ≥ 0, got ${c.boundPenalty}`);
  const choice = (k: 'nllReduction' | 'resample' | 'init' | 'targets', choices: readonly string[]) => {
    if (!choices.includes(c[k])) throw new UserError(`ensemble config: ${k} must be one of ${choices.map((x) => `'${x}'`).join(', ')}, got ${showValue(c[k])}`);
  };
  choice('nllReduction', NLL_REDUCTIONS);
  choice('resample', RESAMPLES);
  choice('init', WEIGHT_INITS);
  choice('targets', MODEL_TARGETS);
  if (c.selectBy !== 'mse' && c.selectBy !== 'nll') throw new UserError(`ensemble config: selectBy must be 'mse' or 'nll'`);
  if (!(c.holdoutFraction > 0 && c.holdoutFraction < 1)) throw new UserError(`ensemble config: holdoutFraction must be in (0, 1), got ${c.holdoutFraction}`);
  posInt('holdoutMax');
  if (!(c.improvementThreshold >= 0)) throw new UserError('ensemble config: improvementThreshold must be ≥ 0');
  if (!Number.isInteger(c.seed)) throw new UserError(`ensemble config: seed must be an integer, got ${c.seed}`);
  return c;
}

// ---------------------------------------------------------------------------------------------
// The ensemble

export interface EnsembleEvaluation {
  /** Per member: mean over rows and dims of (μ − y)² (the model's output space, config.targets). */
  mse: number[];
  /** Per member: the NLL as trained (without bound penalty and decay). */
  nll: number[];
  rows: number;
}

export interface EnsemblePrediction {
  members: number;
  n: number;
  obsDim: number;
  /** [E, n, obsDim]: s + denormalized Δs mean. */
  nextObsMean: Float32Array;
  /** [E, n, obsDim]: exp(lv)·σ_Δ². */
  nextObsVar: Float32Array;
  /** [E, n]. */
  rewardMean: Float32Array;
  /** [E, n]. */
  rewardVar: Float32Array;
}

export interface LossAndGrads {
  /** Total loss (NLL summed over members + bound penalty + decay). */
  loss: tf.Scalar;
  /** Per-member NLL [E]. */
  memberNll: tf.Tensor1D;
  /** Aligned with trainableParams(): [W1, b1, …, maxLV, minLV]. */
  grads: tf.Tensor[];
}

/**
 * Sums the bound-gradient terms of one ensemble shard (maxLV, minLV: [D] each, penalty excluded)
 * with the other shards' so every thread applies the same update to its copy of the shared bounds.
 */
export type BoundGradReducer = (maxLV: Float32Array, minLV: Float32Array) => void;

/**
 * Members [from, to) of an ensemble plus the shared bounds as plain arrays: how members travel to a
 * worker thread and back (exportMembers / fromMembers / importMembers).
 */
export interface EnsembleMembersState {
  from: number;
  to: number;
  /** The members' slices of the net parameters (params() order), then maxLV, minLV. */
  params: Float32Array[];
  /** Adam moments aligned with params. */
  m: Float32Array[];
  v: Float32Array[];
  optimizerSteps: number;
  steps: number;
  /** Per-member training NLL summed since the last takeTrainLoss (null: none), over lossSteps steps. */
  lossSum: Float32Array | null;
  lossSteps: number;
}

const CHECKPOINT_FILE = 'ensemble.json';
const CHECKPOINT_FORMAT = 'mopo-ensemble';

const ENSEMBLE_CHECKPOINT: CheckpointKind = { headerFile: CHECKPOINT_FILE, format: CHECKPOINT_FORMAT, what: 'ensemble checkpoint' };

/** What an ensemble checkpoint's header carries beside the tensor index. */
interface EnsembleJson {
  config: EnsembleConfig;
  dims: TransitionDims;
  normalizer: NormalizerJson;
  elites: number[];
  validation: EnsembleEvaluation | null;
  steps: number;
  optimizerSteps: number;
}

function upload(values: Float32Array, shape: number[]): tf.Tensor {
  return tf.tensor(tf.getBackend() === 'wasm' ? values : values.slice(), shape, 'float32');
}

export class DynamicsEnsemble {
  readonly config: EnsembleConfig;
  readonly obsDim: number;
  readonly actDim: number;
  readonly env: string | undefined;
  /** obsDim + actDim. */
  readonly inDim: number;
  /** obsDim + 1 (Δs, r). */
  readonly outDim: number;
  normalizer: Normalizer;
  readonly net: DenseStack;
  private maxLV: tf.Tensor;
  private minLV: tf.Tensor;
  private readonly opt: Adam;
  private eliteIdx: number[];
  /** Last validation result (set by setValidation / the training loop), or null. */
  validation: EnsembleEvaluation | null = null;
  /** Training steps taken. */
  steps = 0;
  private lossAcc: tf.Tensor | null = null;
  private lossAccSteps = 0;

  private constructor(config: EnsembleConfig, dims: TransitionDims, normalizer: Normalizer, net: DenseStack, maxLV: tf.Tensor, minLV: tf.Tensor) {
    this.config = config;
    this.obsDim = dims.obsDim;
    this.actDim = dims.actDim;
    this.env = dims.env;
    this.inDim = dims.obsDim + dims.actDim;
    this.outDim = dims.obsDim + 1;
    normalizer.checkDims(dims);
    this.normalizer = normalizer;
    this.net = net;
    this.maxLV = maxLV;
    this.minLV = minLV;
    this.opt = new Adam(this.trainableParams(), { lr: config.lr });
    this.eliteIdx = Array.from({ length: config.elites }, (_, i) => i);
  }

  static spec(config: EnsembleConfig, dims: { obsDim: number; actDim: number }): DenseStackSpec {
    return { sizes: [dims.obsDim + dims.actDim, ...config.hidden, 2 * (dims.obsDim + 1)], hidden: config.activation, members: config.members, init: config.init };
  }

  /** A fresh ensemble (weights from rng); normalizer defaults to the identity. */
  static create(config: Partial<EnsembleConfig>, dims: TransitionDims, rng: Rng, normalizer?: Normalizer): DynamicsEnsemble {
    const c = resolveEnsembleConfig(config);
    const net = DenseStack.init(DynamicsEnsemble.spec(c, dims), rng);
    const D = dims.obsDim + 1;
    const maxLV = tf.fill([1, D], c.maxLogVarInit, 'float32');
    const minLV = tf.fill([1, D], c.minLogVarInit, 'float32');
    return new DynamicsEnsemble(c, dims, normalizer ?? Normalizer.identity(dims), net, maxLV, minLV);
  }

  get members(): number {
    return this.config.members;
  }

  get dims(): TransitionDims {
    return this.env ? { obsDim: this.obsDim, actDim: this.actDim, env: this.env } : { obsDim: this.obsDim, actDim: this.actDim };
  }

  /** Indices of the elite members, best first. */
  get elites(): readonly number[] {
    return this.eliteIdx;
  }

  /** [W1, b1, …, maxLV, minLV] (owned by the ensemble: do not dispose). */
  trainableParams(): tf.Tensor[] {
    return [...this.net.params(), this.maxLV, this.minLV];
  }

  /** The weight decay of each of trainableParams(): each layer's on its weights, none on biases and bounds. */
  paramDecays(): number[] {
    return [...this.config.weightDecay.flatMap((wd) => [wd, 0]), 0, 0];
  }

  /** The learned log-variance bounds. */
  logVarBounds(): { max: Float32Array; min: Float32Array } {
    return { max: this.maxLV.dataSync() as Float32Array, min: this.minLV.dataSync() as Float32Array };
  }

  /** μ and the bounded log-variance from the raw network output. Call inside tf.tidy. */
  private heads(out: tf.Tensor): { mu: tf.Tensor; lv: tf.Tensor; sa: tf.Tensor; sb: tf.Tensor } {
    const D = this.outDim;
    const [mu, raw] = tf.split(out, [D, D], out.rank - 1) as [tf.Tensor, tf.Tensor];
    const a = tf.sub(this.maxLV, raw);
    const lv1 = tf.sub(this.maxLV, tf.softplus(a));
    const b = tf.sub(lv1, this.minLV);
    const lv = tf.add(this.minLV, tf.softplus(b));
    return { mu, lv, sa: a, sb: b };
  }

  /** [μ, e^lv] of the network's output (normalized scale): one native pass where it is built, else heads(). */
  private predictedGaussians(out: tf.Tensor): [tf.Tensor, tf.Tensor] {
    if (hasMopoKernel('MopoGaussianVariance')) {
      return tf.engine().runKernel('MopoGaussianVariance', { out, maxLV: this.maxLV, minLV: this.minLV }, {}) as unknown as [tf.Tensor, tf.Tensor];
    }
    const { mu, lv } = this.heads(out);
    return [mu, tf.exp(lv)];
  }

  /**
   * Loss and gradients for one step at the current parameters (no update). xs [E, B, in] and
   * ys [E, B, out] (normalized). Call inside tf.tidy. Exposed for tests and custom loops.
   * withLoss false skips the total loss (its decay term costs a pass over all weights); loss is
   * then NaN. reduceBounds (members split across threads) turns this shard's sums of the bounds'
   * gradient (without the penalty) into the sums over all members, in place. decayInGrads false
   * leaves the weight decay's gradient out of grads, for an optimizer step that adds it
   * (trainStep: Adam.step with paramDecays()).
   */
  lossAndGrads(xs: tf.Tensor, ys: tf.Tensor, withLoss = true, reduceBounds?: BoundGradReducer, decayInGrads = true): LossAndGrads {
    const E = this.members;
    const B = xs.shape[1]!;
    const D = this.outDim;
    if (xs.rank !== 3 || xs.shape[0] !== E || xs.shape[2] !== this.inDim) throw new RangeError(`ensemble: xs must be [${E}, B, ${this.inDim}], got [${xs.shape}]`);
    if (ys.rank !== 3 || ys.shape[0] !== E || ys.shape[1] !== B || ys.shape[2] !== D) throw new RangeError(`ensemble: ys must be [${E}, ${B}, ${D}], got [${ys.shape}]`);
    const cfg = this.config;
    const c = cfg.nllReduction === 'sum' ? 1 / B : 1 / (B * D);
    const { out, cache } = this.net.forward(xs);
    let memberNll: tf.Tensor1D;
    let dOut: tf.Tensor;
    let sMax: tf.Tensor;
    let sMin: tf.Tensor;
    if (hasMopoKernel('MopoGaussianHead')) {
      // The same formulas in one native pass (native/head.h).
      [dOut, memberNll, sMax, sMin] = tf.engine().runKernel('MopoGaussianHead', { out, y: ys, maxLV: this.maxLV, minLV: this.minLV }, { c }) as unknown as [tf.Tensor, tf.Tensor1D, tf.Tensor, tf.Tensor];
    } else {
      const { mu, lv, sa: a, sb: b } = this.heads(out);
      const inv = tf.exp(tf.neg(lv));
      const d = tf.sub(mu, ys);
      const d2inv = tf.mul(tf.square(d), inv);
      memberNll = tf.mul(tf.sum(tf.add(d2inv, lv), [1, 2]), c) as tf.Tensor1D;
      const dmu = tf.mul(tf.mul(d, inv), 2 * c);
      const g = tf.mul(tf.sub(1, d2inv), c);
      const sa = tf.sigmoid(a);
      const sb = tf.sigmoid(b);
      const gsb = tf.mul(g, sb);
      const draw = tf.mul(gsb, sa);
      const flat = (t: tf.Tensor) => tf.sum(tf.reshape(t, [-1, D]), 0, true);
      sMax = flat(tf.sub(gsb, draw)); // Σ g·σb·(1 − σa)
      sMin = flat(tf.sub(g, gsb)); // Σ g·(1 − σb)
      dOut = tf.concat([dmu, draw], 2);
    }
    const { grads } = this.net.backward(cache, dOut);
    if (reduceBounds) {
      const mx = Float32Array.from(sMax.dataSync());
      const mn = Float32Array.from(sMin.dataSync());
      reduceBounds(mx, mn);
      sMax = tf.tensor(mx, [1, D], 'float32');
      sMin = tf.tensor(mn, [1, D], 'float32');
    }
    const dMax = tf.add(sMax, cfg.boundPenalty);
    const dMin = tf.sub(sMin, cfg.boundPenalty);
    const ps = this.net.params();
    let decay: tf.Tensor = tf.scalar(0);
    for (let l = 0; l < this.net.numLayers; l++) {
      const wd = cfg.weightDecay[l]!;
      if (wd === 0) continue;
      const w = ps[2 * l]!;
      if (decayInGrads) grads[2 * l] = tf.add(grads[2 * l]!, tf.mul(w, wd));
      if (withLoss) decay = tf.add(decay, tf.mul(tf.sum(tf.square(w)), wd / 2));
    }
    if (!withLoss) return { loss: tf.scalar(Number.NaN), memberNll, grads: [...grads, dMax, dMin] };
    const penalty = tf.mul(tf.sub(tf.sum(this.maxLV), tf.sum(this.minLV)), cfg.boundPenalty);
    const loss = tf.add(tf.add(tf.sum(memberNll), penalty), decay) as tf.Scalar;
    return { loss, memberNll, grads: [...grads, dMax, dMin] };
  }

  /**
   * One Adam step on per-member batches xs [E, B, in], ys [E, B, out] (normalized; tensors or
   * row-major Float32Arrays). Returns the per-member NLL when readLoss (forces a sync), else null.
   * The per-member NLL is also accumulated on the device for takeTrainLoss(). reduceBounds: see
   * lossAndGrads.
   */
  trainStep(xs: tf.Tensor | Float32Array, ys: tf.Tensor | Float32Array, readLoss = false, reduceBounds?: BoundGradReducer): number[] | null {
    const E = this.members;
    const own: tf.Tensor[] = [];
    const asT = (v: tf.Tensor | Float32Array, w: number) => {
      if (v instanceof tf.Tensor) return v;
      const t = upload(v, [E, v.length / (E * w), w]);
      own.push(t);
      return t;
    };
    try {
      const x = asT(xs, this.inDim);
      const y = asT(ys, this.outDim);
      let nll: tf.Tensor | null = null;
      const grads = tf.tidy(() => {
        const r = this.lossAndGrads(x, y, false, reduceBounds, false);
        nll = tf.keep(r.memberNll);
        return r.grads;
      });
      // Divergence guard, before the step is applied (7 floats read back: cheap on wasm, which
      // computes synchronously anyway): a non-finite loss stops training with the weights intact.
      const nllNow = (nll as unknown as tf.Tensor).dataSync();
      const bad = Array.from(nllNow.keys()).filter((e) => !Number.isFinite(nllNow[e]!));
      if (bad.length > 0) {
        tf.dispose([...grads, nll as unknown as tf.Tensor]);
        throw new DivergenceError('dynamics', `member${bad.length > 1 ? 's' : ''} ${bad.join(', ')} had a non-finite training loss (${bad.map((e) => nllNow[e]).join(', ')}) at step ${this.steps + 1}; check the dataset for extreme values (mopo inspect) or lower the learning rate`);
      }
      const newParams = tf.tidy(() => this.opt.step(this.trainableParams(), grads, this.paramDecays()));
      tf.dispose(grads);
      const L = 2 * this.net.numLayers;
      this.net.setParams(newParams.slice(0, L));
      this.maxLV.dispose();
      this.minLV.dispose();
      this.maxLV = newParams[L]!;
      this.minLV = newParams[L + 1]!;
      this.steps++;
      const n = nll as unknown as tf.Tensor;
      const acc = this.lossAcc === null ? tf.keep(n.clone()) : tf.tidy(() => tf.add(this.lossAcc!, n));
      if (this.lossAcc !== null) this.lossAcc.dispose();
      this.lossAcc = acc;
      this.lossAccSteps++;
      const out = readLoss ? Array.from(n.dataSync()) : null;
      n.dispose();
      return out;
    } finally {
      for (const t of own) t.dispose();
    }
  }

  /** Mean per-member training NLL over the steps since the last call (empty array if none). */
  takeTrainLoss(): number[] {
    if (this.lossAcc === null) return [];
    const v = Array.from(this.lossAcc.dataSync(), (x) => x / this.lossAccSteps);
    this.lossAcc.dispose();
    this.lossAcc = null;
    this.lossAccSteps = 0;
    return v;
  }

  /** Per-member sums over a chunk: [Σ (μ−y)², Σ NLL terms] (normalized x [n, in], y [n, out]). */
  private evalSums(x: Float32Array, y: Float32Array, n: number): { se: Float32Array; nll: Float32Array } {
    return tf.tidy(() => {
      const xt = upload(x, [n, this.inDim]);
      const yt = upload(y, [n, this.outDim]);
      const { mu, lv } = this.heads(this.net.predict(xt));
      const d2 = tf.square(tf.sub(mu, yt));
      const se = tf.sum(d2, [1, 2]);
      const nll = tf.sum(tf.add(tf.mul(d2, tf.exp(tf.neg(lv))), lv), [1, 2]);
      return { se: se.dataSync() as Float32Array, nll: nll.dataSync() as Float32Array };
    });
  }

  /**
   * Per-member validation MSE and NLL over normalized rows x [n, in], y [n, out] (every member sees
   * every row), in chunks of `chunk` rows.
   */
  evaluate(x: Float32Array, y: Float32Array, chunk = 4096): EnsembleEvaluation {
    const n = x.length / this.inDim;
    if (!Number.isInteger(n) || y.length !== n * this.outDim) throw new RangeError(`evaluate: x has ${x.length} values, y ${y.length}; expected n×${this.inDim} and n×${this.outDim}`);
    const E = this.members;
    const se = new Float64Array(E);
    const nll = new Float64Array(E);
    for (let s = 0; s < n; s += chunk) {
      const e = Math.min(n, s + chunk);
      const r = this.evalSums(x.subarray(s * this.inDim, e * this.inDim), y.subarray(s * this.outDim, e * this.outDim), e - s);
      for (let m = 0; m < E; m++) {
        se[m]! += r.se[m]!;
        nll[m]! += r.nll[m]!;
      }
    }
    const D = this.outDim;
    const c = this.config.nllReduction === 'sum' ? 1 / n : 1 / (n * D);
    return { mse: Array.from(se, (v) => v / (n * D)), nll: Array.from(nll, (v) => v * c), rows: n };
  }

  /** A batch in the model's input and output space (config.targets). */
  toModelBatch(b: TransitionBatch): ModelBatch {
    return this.normalizer.toModelBatch(b, this.config.targets);
  }

  /** evaluate() on transitions as they are (put in the model's space first). */
  evaluateBatch(b: TransitionBatch): EnsembleEvaluation {
    const mb = this.toModelBatch(b);
    return this.evaluate(mb.inputs, mb.targets);
  }

  /** Shift and scale from the model's output space to (Δs, r) in the data's units. */
  private targetScaling(): { mean: Float32Array; std: Float32Array } {
    if (this.config.targets === 'raw') return { mean: new Float32Array(this.outDim), std: new Float32Array(this.outDim).fill(1) };
    return { mean: this.normalizer.targetMean, std: this.normalizer.targetStd };
  }

  /** The per-member validation loss that ranks members (config.selectBy). */
  validationLoss(ev: EnsembleEvaluation): number[] {
    return this.config.selectBy === 'mse' ? ev.mse : ev.nll;
  }

  /** Records a validation result and picks the elites from it (lowest loss first). */
  setValidation(ev: EnsembleEvaluation): void {
    this.validation = ev;
    this.chooseElites(this.validationLoss(ev));
  }

  /** The elites: the config.elites members of lowest validation loss (ties: lower index first). */
  chooseElites(loss: readonly number[]): void {
    const order = Array.from(loss.keys()).sort((i, j) => loss[i]! - loss[j]! || i - j);
    this.eliteIdx = order.slice(0, this.config.elites);
  }

  /**
   * Per-member predictions for n rows of observations [n, obsDim] and actions [n, actDim] (raw
   * scale), in the original scale: next-state mean s + μ_Δ·σ_Δ + m_Δ, variance exp(lv)·σ_Δ²; reward
   * mean μ_r·σ_r + m_r, variance exp(lv)·σ_r² (m = 0, σ = 1 with targets 'raw').
   */
  predict(obs: Float32Array, act: Float32Array, n = obs.length / this.obsDim): EnsemblePrediction {
    const O = this.obsDim;
    const D = this.outDim;
    const E = this.members;
    if (obs.length !== n * O || act.length !== n * this.actDim) throw new RangeError(`predict: expected ${n}×${O} observations and ${n}×${this.actDim} actions`);
    const x = this.normalizer.normalizeInputs(obs, act, n);
    const { mean: tm, std: ts } = this.targetScaling();
    const nextObsMean = new Float32Array(E * n * O);
    const nextObsVar = new Float32Array(E * n * O);
    const rewardMean = new Float32Array(E * n);
    const rewardVar = new Float32Array(E * n);
    // In chunks: the activations of 7 members × 50,000 rows × 200 units (280 MB a layer) fall out
    // of cache and halve the throughput (measured 12 vs 24 GFLOP/s); 8,192-row chunks keep it.
    const chunk = 8192;
    for (let c0 = 0; c0 < n; c0 += chunk) {
      const m = Math.min(chunk, n - c0);
      // tidy returns the tensors, not their data: tf.tidy walks a returned container element by
      // element looking for tensors, which for multi-million-element arrays cost seconds.
      const [muT, varT] = tf.tidy(() => this.predictedGaussians(this.net.predict(upload(x.subarray(c0 * this.inDim, (c0 + m) * this.inDim), [m, this.inDim]))));
      const muH = muT.dataSync() as Float32Array;
      const varH = varT.dataSync() as Float32Array;
      tf.dispose([muT, varT]);
      for (let e = 0; e < E; e++) {
        for (let k = 0; k < m; k++) {
          const i = c0 + k;
          const src = (e * m + k) * D;
          const dst = (e * n + i) * O;
          for (let j = 0; j < O; j++) {
            nextObsMean[dst + j] = obs[i * O + j]! + muH[src + j]! * ts[j]! + tm[j]!;
            nextObsVar[dst + j] = varH[src + j]! * ts[j]! * ts[j]!;
          }
          rewardMean[e * n + i] = muH[src + O]! * ts[O]! + tm[O]!;
          rewardVar[e * n + i] = varH[src + O]! * ts[O]! * ts[O]!;
        }
      }
    }
    return { members: E, n, obsDim: O, nextObsMean, nextObsVar, rewardMean, rewardVar };
  }

  /** Copies of the network parameters (caller owns them), e.g. to keep the best weights. */
  snapshot(): tf.Tensor[] {
    return this.net.params().map((p) => p.clone());
  }

  /**
   * Puts the snapshot's weights back for the members where take[e] is true (others keep theirs).
   * The log-variance bounds are shared by all members and are not part of a snapshot.
   */
  restoreMembers(snap: readonly tf.Tensor[], take: readonly boolean[]): void {
    if (!take.some((t) => t)) return;
    const cond = tf.tensor1d(take.map((t) => (t ? 1 : 0)), 'bool');
    const next = tf.tidy(() => this.net.params().map((p, i) => tf.where(memberMask(cond, p.rank), snap[i]!, p)));
    cond.dispose();
    this.net.setParams(next);
  }

  /** Replaces the members' weights where take[e] by the current ones in the snapshot (in place). */
  static updateSnapshot(snap: tf.Tensor[], current: readonly tf.Tensor[], take: readonly boolean[]): void {
    if (!take.some((t) => t)) return;
    const cond = tf.tensor1d(take.map((t) => (t ? 1 : 0)), 'bool');
    for (let i = 0; i < snap.length; i++) {
      const old = snap[i]!;
      snap[i] = tf.tidy(() => tf.where(memberMask(cond, old.rank), current[i]!, old));
      old.dispose();
    }
    cond.dispose();
  }

  numParams(): number {
    return this.trainableParams().reduce((s, t) => s + t.size, 0);
  }

  // -------------------------------------------------------------------------------------------
  // Member ranges as plain arrays, for training split across worker threads
  // (operators/ensembleWorkerPool.ts): the main thread hands each worker a range, the worker trains
  // it as an ensemble of its own, and the ranges come back into the main ensemble at epoch end.

  /** Members [from, to) with the shared bounds, their Adam state and counters (copies). takeLoss resets the loss accumulator. */
  exportMembers(from: number, to: number, takeLoss = false): EnsembleMembersState {
    const E = this.members;
    if (!(Number.isInteger(from) && Number.isInteger(to) && from >= 0 && from < to && to <= E)) throw new RangeError(`exportMembers: bad range [${from}, ${to}) of ${E} members`);
    const L = 2 * this.net.numLayers;
    // Net tensors are member-major ([E, …]); the bounds are shared and go whole.
    const part = (ts: readonly tf.Tensor[]) =>
      ts.map((t, i) => {
        const d = t.dataSync() as Float32Array;
        const per = t.size / E;
        return i >= L ? d.slice() : d.slice(from * per, to * per);
      });
    const st = this.opt.getState();
    const lossSum = this.lossAcc === null ? null : (this.lossAcc.dataSync() as Float32Array).slice(from, to);
    const lossSteps = this.lossAccSteps;
    if (takeLoss) {
      this.lossAcc?.dispose();
      this.lossAcc = null;
      this.lossAccSteps = 0;
    }
    return { from, to, params: part(this.trainableParams()), m: part(st.m), v: part(st.v), optimizerSteps: st.t, steps: this.steps, lossSum, lossSteps };
  }

  /**
   * An ensemble of exactly the exported members (config.members becomes to − from; identity
   * normalizer: it trains on normalized rows only).
   */
  static fromMembers(config: EnsembleConfig, dims: TransitionDims, s: EnsembleMembersState): DynamicsEnsemble {
    const n = s.to - s.from;
    const c = resolveEnsembleConfig({ ...config, members: n, elites: Math.min(config.elites, n), workers: 1 });
    const spec = DynamicsEnsemble.spec(c, dims);
    const shapes: number[][] = [];
    for (let l = 0; l + 1 < spec.sizes.length; l++) shapes.push([n, spec.sizes[l]!, spec.sizes[l + 1]!], [n, 1, spec.sizes[l + 1]!]);
    shapes.push([1, dims.obsDim + 1], [1, dims.obsDim + 1]);
    const make = (arrs: Float32Array[]) => {
      if (arrs.length !== shapes.length) throw new RangeError(`fromMembers: ${arrs.length} arrays for ${shapes.length} parameters`);
      return arrs.map((a, i) => upload(a, shapes[i]!));
    };
    const ps = make(s.params);
    const L = shapes.length - 2;
    const ens = new DynamicsEnsemble(c, dims, Normalizer.identity(dims), DenseStack.fromParams(spec, ps.slice(0, L)), ps[L]!, ps[L + 1]!);
    ens.opt.setState({ t: s.optimizerSteps, m: make(s.m), v: make(s.v) });
    ens.steps = s.steps;
    if (s.lossSum !== null) {
      ens.lossAcc = upload(s.lossSum, [n]);
      ens.lossAccSteps = s.lossSteps;
    }
    return ens;
  }

  /**
   * Replaces every member, the bounds, the Adam state, the step counters and the training-loss
   * accumulator by the ranges in parts (which must cover all members once).
   */
  importMembers(parts: readonly EnsembleMembersState[]): void {
    const E = this.members;
    const sorted = [...parts].sort((a, b) => a.from - b.from);
    sorted.forEach((p, i) => {
      if (p.from !== (i === 0 ? 0 : sorted[i - 1]!.to)) throw new RangeError(`importMembers: ranges do not tile the ${E} members`);
    });
    if (sorted.length === 0 || sorted[sorted.length - 1]!.to !== E) throw new RangeError(`importMembers: ranges do not tile the ${E} members`);
    const first = sorted[0]!;
    const L = 2 * this.net.numLayers;
    // Every shard applied the same summed gradient to the same shared bounds: a difference is a bug.
    for (const p of sorted) {
      const same = p.optimizerSteps === first.optimizerSteps && p.steps === first.steps && p.lossSteps === first.lossSteps &&
        [L, L + 1].every((i) => sameF32(p.params[i]!, first.params[i]!) && sameF32(p.m[i]!, first.m[i]!) && sameF32(p.v[i]!, first.v[i]!));
      if (!same) throw new Error(`importMembers: members ${p.from}..${p.to - 1} disagree with members 0..${first.to - 1} on the shared bounds or counters`);
    }
    const join = (pick: (p: EnsembleMembersState) => Float32Array[]) =>
      this.trainableParams().map((t, i) => upload(i < L ? concatF32(sorted.map((p) => pick(p)[i]!)) : pick(first)[i]!.slice(), t.shape));
    const ps = join((p) => p.params);
    this.net.setParams(ps.slice(0, L));
    this.maxLV.dispose();
    this.minLV.dispose();
    this.maxLV = ps[L]!;
    this.minLV = ps[L + 1]!;
    this.opt.setState({ t: first.optimizerSteps, m: join((p) => p.m), v: join((p) => p.v) });
    this.steps = first.steps;
    this.lossAcc?.dispose();
    this.lossAcc = null;
    this.lossAccSteps = 0;
    if (sorted.every((p) => p.lossSum !== null)) {
      this.lossAcc = upload(concatF32(sorted.map((p) => p.lossSum!)), [E]);
      this.lossAccSteps = first.lossSteps;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Checkpoints: ensemble.json (config, dims, normalizer, elites, validation, counters, tensor
  // index) + one float32 data file with its sha256; each written atomically, the JSON last.

  private namedTensors(): Array<[string, tf.Tensor]> {
    const out: Array<[string, tf.Tensor]> = [];
    this.net.params().forEach((t, i) => out.push([`net/${i}`, t]));
    out.push(['maxLogVar', this.maxLV], ['minLogVar', this.minLV]);
    const st = this.opt.getState();
    st.m.forEach((t, i) => out.push([`adam/m/${i}`, t]));
    st.v.forEach((t, i) => out.push([`adam/v/${i}`, t]));
    return out;
  }

  /** Writes the ensemble (weights, bounds, Adam state, normalizer, elites, config) into dir. */
  async save(dir: string): Promise<void> {
    const meta: EnsembleJson = {
      config: this.config,
      dims: this.dims,
      normalizer: this.normalizer.toJSON(),
      elites: this.eliteIdx.slice(),
      validation: this.validation,
      steps: this.steps,
      optimizerSteps: this.opt.iterations,
    };
    await writeTensorCheckpoint(dir, ENSEMBLE_CHECKPOINT, 'ensemble', this.steps, this.namedTensors(), meta);
  }

  /** Restores an ensemble written by save() exactly. */
  static async load(dir: string): Promise<DynamicsEnsemble> {
    const { json, get } = await readTensorCheckpoint<EnsembleJson>(dir, ENSEMBLE_CHECKPOINT);
    // Ensembles saved before these options existed were trained with normalized targets, a summed
    // NLL and uniform initial weights, whatever the defaults are now.
    const config = resolveEnsembleConfig({ targets: 'normalized', nllReduction: 'sum', init: 'uniform', ...(json.config as Partial<EnsembleConfig>) });
    const spec = DynamicsEnsemble.spec(config, json.dims);
    const nParams = 2 * (spec.sizes.length - 1);
    const list = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => get(`${prefix}/${i}`));
    const net = DenseStack.fromParams(spec, list('net', nParams));
    const ens = new DynamicsEnsemble(config, json.dims, Normalizer.fromJSON(json.normalizer), net, get('maxLogVar'), get('minLogVar'));
    ens.opt.setState({ t: json.optimizerSteps, m: list('adam/m', nParams + 2), v: list('adam/v', nParams + 2) });
    ens.eliteIdx = json.elites.slice();
    ens.validation = json.validation;
    ens.steps = json.steps;
    return ens;
  }

  dispose(): void {
    this.net.dispose();
    this.opt.dispose();
    this.maxLV.dispose();
    this.minLV.dispose();
    this.lossAcc?.dispose();
    this.lossAcc = null;
  }
}

// ---------------------------------------------------------------------------------------------
// Early stopping (the official rule: a member improves when (best − loss)/|best| > threshold; its
// best is then updated; training stops after `patience` epochs in which no member improved)

export class EarlyStopping {
  readonly best: number[];
  readonly bestEpoch: number[];
  epochsSinceImprovement = 0;
  epochs = 0;
  readonly threshold: number;
  readonly patience: number;

  constructor(members: number, opts: { threshold?: number; patience?: number } = {}) {
    this.best = new Array<number>(members).fill(Infinity);
    this.bestEpoch = new Array<number>(members).fill(-1);
    this.threshold = opts.threshold ?? 0.01;
    this.patience = opts.patience ?? 5;
  }

  /** Feeds one epoch's per-member validation losses; returns which members improved. */
  update(losses: readonly number[]): boolean[] {
    if (losses.length !== this.best.length) throw new RangeError(`EarlyStopping: ${losses.length} losses for ${this.best.length} members`);
    const improved = losses.map((l, i) => {
      const b = this.best[i]!;
      if (!Number.isFinite(l)) return false;
      return b === Infinity || (b - l) / Math.abs(b) > this.threshold;
    });
    improved.forEach((imp, i) => {
      if (imp) {
        this.best[i] = losses[i]!;
        this.bestEpoch[i] = this.epochs;
      }
    });
    this.epochs++;
    this.epochsSinceImprovement = improved.some((x) => x) ? 0 : this.epochsSinceImprovement + 1;
    return improved;
  }

  get shouldStop(): boolean {
    return this.epochsSinceImprovement >= this.patience;
  }
}

// ---------------------------------------------------------------------------------------------
// Training loop

/** Stable holdout rule: row r is held out iff mix(seed, r) / 2³² < p (same on every pass). */
export function isHoldoutRow(seed: number, row: number, p: number): boolean {
  let h = (Math.imul(row >>> 0, 0x9e3779b1) ^ hashString(`holdout:${seed}`) ^ Math.floor(row / 4294967296)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h = (h ^ (h >>> 16)) >>> 0;
  return h / 4294967296 < p;
}

export interface EnsembleEpochEvent {
  type: 'epoch';
  epoch: number;
  /** Mean training NLL per member over the epoch. */
  trainLoss: number[];
  /** Validation loss per member (config.selectBy). */
  valLoss: number[];
  valMse: number[];
  /** Members whose validation loss improved by more than the threshold this epoch. */
  improved: boolean[];
  /** Current elites by this epoch's validation loss. */
  elites: number[];
  epochsSinceImprovement: number;
  trainRows: number;
  valRows: number;
  steps: number;
  seconds: number;
}

export interface EnsembleDoneEvent {
  type: 'done';
  /** The trained ensemble (each member at its best weights; the caller owns it: dispose it). */
  ensemble: DynamicsEnsemble;
  epochs: number;
  stoppedBy: 'patience' | 'maxEpochs';
  /** Validation of the returned weights. */
  validation: EnsembleEvaluation;
}

/** The training stopped on request (stopRequested) after an epoch whose state onEpochState saved. */
export interface EnsembleStoppedEvent {
  type: 'stopped';
  /** Epochs done; a resume continues with this epoch. */
  epochs: number;
}

export type EnsembleTrainingEvent = EnsembleEpochEvent | EnsembleDoneEvent | EnsembleStoppedEvent;

export interface TrainEnsembleOptions {
  /** Normalizer to use; default: computed by a first pass over the source. */
  normalizer?: Normalizer;
  /**
   * Called after every epoch with the training state (before the next epoch starts; the loop
   * waits for a returned promise), e.g. saveEnsembleTrainingState: a run of hours can resume.
   */
  onEpochState?: (state: EnsembleTrainingState) => Promise<void> | void;
  /** Continue from a saved state (loadEnsembleTrainingState); its ensemble and best weights are taken over. */
  resume?: EnsembleTrainingState;
  /**
   * Asked after each epoch's state is saved: true ends the training there with a 'stopped' event
   * (Ctrl-C), so a resume loses nothing.
   */
  stopRequested?: () => boolean;
}

/** Everything the training loop needs to continue exactly where an epoch ended. */
export interface EnsembleTrainingState {
  /** The current ensemble (weights, bounds, Adam state, normalizer, steps). */
  ensemble: DynamicsEnsemble;
  /** Each member's best weights so far (net parameters, as snapshot()). */
  best: tf.Tensor[];
  /** Epochs done. */
  epoch: number;
  stopping: { best: number[]; bestEpoch: number[]; epochsSinceImprovement: number; epochs: number };
  shuffleRng: number[];
}

const TRAINING_STATE: CheckpointKind = { headerFile: 'training.json', format: 'mopo-ensemble-training', what: 'ensemble training checkpoint' };

/**
 * Saves a training state into `dir` as a complete new directory swapped in by renames (dir.new →
 * dir), so a kill at any moment leaves the previous state or the new one.
 */
export async function saveEnsembleTrainingState(dir: string, s: EnsembleTrainingState): Promise<void> {
  const next = `${dir}.new`;
  const old = `${dir}.old`;
  await fsp.rm(next, { recursive: true, force: true });
  await s.ensemble.save(join(next, 'current'));
  const meta = { epoch: s.epoch, stopping: { ...s.stopping, best: s.stopping.best.map((b) => (Number.isFinite(b) ? b : null)) }, shuffleRng: s.shuffleRng };
  await writeTensorCheckpoint(join(next, 'best'), TRAINING_STATE, 'best', s.epoch, s.best.map((t, i) => [`best/${i}`, t] as const), meta);
  await fsp.rm(old, { recursive: true, force: true });
  if (existsSync(dir)) await fsp.rename(dir, old);
  await fsp.rename(next, dir);
  await fsp.rm(old, { recursive: true, force: true });
}

/**
 * Whether `dir` holds a training state (or `dir.old`, after a kill mid-swap): saveEnsembleTrainingState
 * only ever renames complete directories into these names, so their presence is the whole test.
 */
export function hasEnsembleTrainingState(dir: string): boolean {
  return existsSync(dir) || existsSync(`${dir}.old`);
}

/** The state saveEnsembleTrainingState wrote (or null when `dir` holds none; `dir.old` counts after a kill mid-swap). */
export async function loadEnsembleTrainingState(dir: string): Promise<EnsembleTrainingState | null> {
  const where = existsSync(join(dir, 'best', TRAINING_STATE.headerFile)) ? dir : existsSync(join(`${dir}.old`, 'best', TRAINING_STATE.headerFile)) ? `${dir}.old` : null;
  if (where === null) return null;
  const ensemble = await DynamicsEnsemble.load(join(where, 'current'));
  const { json, get } = await readTensorCheckpoint<{ epoch: number; stopping: { best: (number | null)[]; bestEpoch: number[]; epochsSinceImprovement: number; epochs: number }; shuffleRng: number[] }>(join(where, 'best'), TRAINING_STATE);
  const best = json.tensors.map((t) => get(t.name));
  return {
    ensemble,
    best,
    epoch: json.epoch,
    stopping: { ...json.stopping, best: json.stopping.best.map((b) => b ?? Infinity) },
    shuffleRng: json.shuffleRng,
  };
}

/**
 * An unfinished training's ensemble as it would be handed over if it stopped now: every member at
 * its best epoch so far, elites by those best validation losses (what the finished training's
 * final validation gives for the same weights). Null when `dir` holds no training state.
 */
export async function loadBestSoFar(dir: string): Promise<{ ensemble: DynamicsEnsemble; afterEpoch: number } | null> {
  const state = await loadEnsembleTrainingState(dir);
  if (state === null) return null;
  state.ensemble.restoreMembers(state.best, new Array<boolean>(state.ensemble.members).fill(true));
  for (const t of state.best) t.dispose();
  state.ensemble.chooseElites(state.stopping.best);
  return { ensemble: state.ensemble, afterEpoch: state.epoch - 1 };
}

/**
 * Trains an ensemble over a cold source, one subscription per epoch (plus one first pass for the
 * normalizer and the row count unless a normalizer is given; its `rows` must then be the dataset's).
 *   - holdout: p = min(holdoutMax / N, holdoutFraction); row r (global index in source order) is
 *     held out iff isHoldoutRow(seed, r, p), so about min(holdoutMax, 20 % of N) rows (a binomial
 *     count, not exact), the same rows on every pass. They are kept in memory (normalized) after the
 *     first epoch and skipped afterwards; the source must emit rows in the same order every time.
 *   - shuffling: training rows fill a block of `shuffleBuffer` rows; each member trains on its own
 *     random permutation of the block (batches of batchSize, the last one smaller), then the block
 *     is cleared. So every row is used once per member per epoch; the order is random within a
 *     block, and blocks follow the source order (a dataset that fits in one block is fully shuffled).
 *     With resample 'bootstrap' each member trains on its own fixed bootstrap sample of the block
 *     instead, in a new order each epoch (memberOrders).
 *   - after each epoch: validation of every member, EarlyStopping; a member that improved has its
 *     weights copied to its best snapshot. Stops when no member improved for `patience` epochs or
 *     after maxEpochs; then every member gets its best weights back, the elites are chosen on the
 *     validation set, and the ensemble is emitted in a 'done' event before completing.
 *   - workers k > 1: the same loop, but each block is trained by k worker threads, each on a
 *     contiguous range of members with the permutations drawn here (ensembleWorkerPool.ts); their
 *     state is gathered back before each validation, so everything after it is unchanged.
 * Training is synchronous inside the source's `next`, so a fast source waits for the model.
 */
export function trainEnsemble(config: Partial<EnsembleConfig> = {}, opts: TrainEnsembleOptions = {}): OperatorFunction<TransitionBatch, EnsembleTrainingEvent> {
  return (source) => trainEnsembleFrom(source, config, opts);
}

/** trainEnsemble on a source given as an Observable or a factory of one (called once per pass). */
export function trainEnsembleFrom(
  source: Observable<TransitionBatch> | (() => Observable<TransitionBatch>),
  config: Partial<EnsembleConfig> = {},
  opts: TrainEnsembleOptions = {},
): Observable<EnsembleTrainingEvent> {
  const cfg = resolveEnsembleConfig(config);
  const open = isObservable(source) ? () => source : source;
  return new Observable<EnsembleTrainingEvent>((subscriber) => {
    let sub: Subscription | null = null;
    let closed = false;
    let ens: DynamicsEnsemble | null = null;
    let best: tf.Tensor[] | null = null;
    let pool: EnsembleWorkerPool | null = null;
    const threads = tf.getBackend() === 'tensorflow' ? 1 : Math.min(cfg.workers, cfg.members);
    const stopPool = () => {
      pool?.dispose().catch(() => undefined); // terminating cannot fail in a way worth reporting over the run's own outcome
      pool = null;
    };
    const cleanup = () => {
      if (best) tf.dispose(best);
      best = null;
    };
    const fail = (e: unknown) => {
      stopPool();
      cleanup();
      ens?.dispose();
      ens = null;
      subscriber.error(e);
    };
    // Every callback that may run after the run has ended (stopped, failed or unsubscribed) goes
    // through these, so a failure is reported once and nothing runs after it.
    const failOnce = (e: unknown) => {
      if (closed) return;
      closed = true;
      sub?.unsubscribe();
      fail(e);
    };
    const guarded = (f: () => void) => {
      if (closed) return;
      try {
        f();
      } catch (e) {
        failOnce(e);
      }
    };
    const pass = (onBatch: (b: TransitionBatch) => void, onDone: () => void) => {
      setImmediate(() => {
        if (closed) return;
        sub = open().subscribe({
          next: (b) => guarded(() => onBatch(b)),
          error: failOnce,
          complete: () => guarded(onDone),
        });
        // A source that emitted synchronously may have failed us before `sub` was assigned.
        if (closed) sub.unsubscribe();
      });
    };

    const start = (normalizer: Normalizer) => {
      const N = normalizer.rows;
      if (N < 2) throw new UserError(`trainEnsemble: the dataset has ${N} rows; need at least 2`);
      const p = Math.min(cfg.holdoutMax / N, cfg.holdoutFraction);
      const rng = new Rng(cfg.seed, 'ensemble');
      const dims = { obsDim: normalizer.obsDim, actDim: normalizer.actDim };
      const resume = opts.resume;
      ens = resume ? resume.ensemble : DynamicsEnsemble.create(cfg, dims, rng, normalizer);
      const E = cfg.members;
      const In = ens.inDim;
      const Out = ens.outDim;
      const stopper = new EarlyStopping(E, { threshold: cfg.improvementThreshold, patience: cfg.patience });
      best = resume ? resume.best : ens.snapshot();
      const shuffleRng = new Rng(cfg.seed, 'ensemble-shuffle');
      if (resume) {
        resume.stopping.best.forEach((b, i) => (stopper.best[i] = b));
        resume.stopping.bestEpoch.forEach((b, i) => (stopper.bestEpoch[i] = b));
        stopper.epochsSinceImprovement = resume.stopping.epochsSinceImprovement;
        stopper.epochs = resume.stopping.epochs;
        shuffleRng.setState(resume.shuffleRng);
      }
      const cap = cfg.shuffleBuffer;
      // Worker threads read the blocks in place.
      const alloc = (n: number) => new Float32Array(threads > 1 ? new SharedArrayBuffer(4 * n) : new ArrayBuffer(4 * n));
      const blockX = alloc(cap * In);
      const blockY = alloc(cap * Out);
      let blockN = 0;
      let valX: Float32Array[] = [];
      let valY: Float32Array[] = [];
      // A resumed run collects the held-out rows again in its first epoch (the same rule, the same rows).
      let val: { x: Float32Array; y: Float32Array } | null = null;
      let epoch = resume ? resume.epoch : 0;

      let blockOfEpoch = 0;
      const trainBlock = () => {
        const n = blockN;
        if (n === 0) return;
        const perms = memberOrders(n, E, shuffleRng, cfg.resample, cfg.seed, blockOfEpoch++);
        if (pool) {
          pool.trainBlock(perms, n);
        } else {
          const B = cfg.batchSize;
          for (let s = 0; s < n; s += B) {
            const b = Math.min(B, n - s);
            const { xs, ys } = fillMemberBatch(blockX, blockY, perms, s, b, In, Out);
            ens!.trainStep(xs, ys);
          }
        }
        blockN = 0;
      };

      // Ends the training with every member's best weights; `epoch` epochs are done.
      const finish = () => {
        const e = ens!;
        const done = () => {
          e.restoreMembers(best!, new Array<boolean>(E).fill(true));
          cleanup();
          const final = e.evaluate(val!.x, val!.y);
          e.setValidation(final);
          ens = null; // handed over
          subscriber.next({ type: 'done', ensemble: e, epochs: epoch, stoppedBy: stopper.shouldStop ? 'patience' : 'maxEpochs', validation: final });
          subscriber.complete();
        };
        if (!pool) return done();
        // Complete only once the worker threads have exited, so none outlives the run.
        const p = pool;
        pool = null;
        p.dispose().then(() => guarded(done), failOnce);
      };

      const runEpoch = () => {
        let row = 0;
        blockOfEpoch = 0;
        let trainRows = 0;
        const t0 = performance.now();
        const first = val === null;
        // A resumed run whose cap was lowered to the epochs it has done, or its patience to the epochs
        // it has gone without an improvement: this pass only collects the held-out rows, for the
        // final validation, and the training ends without another epoch.
        const capped = epoch >= cfg.maxEpochs || stopper.shouldStop;
        pass(
          (b) => {
            const mb = ens!.toModelBatch(b);
            const vIdx: number[] = [];
            for (let i = 0; i < mb.length; i++, row++) {
              if (isHoldoutRow(cfg.seed, row, p)) {
                if (first) vIdx.push(i);
                continue;
              }
              if (capped) continue;
              copyRow(mb.inputs, i, blockX, blockN, In);
              copyRow(mb.targets, i, blockY, blockN, Out);
              blockN++;
              trainRows++;
              if (blockN === cap) trainBlock();
            }
            if (first && vIdx.length > 0) {
              const vx = new Float32Array(vIdx.length * In);
              const vy = new Float32Array(vIdx.length * Out);
              vIdx.forEach((i, k) => {
                vx.set(mb.inputs.subarray(i * In, (i + 1) * In), k * In);
                vy.set(mb.targets.subarray(i * Out, (i + 1) * Out), k * Out);
              });
              valX.push(vx);
              valY.push(vy);
            }
          },
          () => {
            trainBlock();
            if (first) {
              val = { x: concatF32(valX), y: concatF32(valY) };
              valX = [];
              valY = [];
              if (val.x.length === 0) throw new UserError(`trainEnsemble: no validation rows (dataset of ${N} rows, holdout ${p}); use a larger dataset or holdoutFraction`);
              if (trainRows === 0 && !capped) throw new UserError('trainEnsemble: no training rows left after the holdout');
            }
            if (capped) return finish();
            const e = ens!;
            pool?.gather(e);
            const ev = e.evaluate(val!.x, val!.y);
            const vl = e.validationLoss(ev);
            const improved = stopper.update(vl);
            DynamicsEnsemble.updateSnapshot(best!, e.net.params(), improved);
            e.setValidation(ev);
            subscriber.next({
              type: 'epoch',
              epoch,
              trainLoss: e.takeTrainLoss(),
              valLoss: vl,
              valMse: ev.mse,
              improved,
              elites: e.elites.slice(),
              epochsSinceImprovement: stopper.epochsSinceImprovement,
              trainRows,
              valRows: ev.rows,
              steps: e.steps,
              seconds: (performance.now() - t0) / 1000,
            });
            epoch++;
            if (closed) return;
            if (stopper.shouldStop || epoch >= cfg.maxEpochs) return finish();
            const saving = opts.onEpochState?.({
              ensemble: e,
              best: best!,
              epoch,
              stopping: { best: stopper.best.slice(), bestEpoch: stopper.bestEpoch.slice(), epochsSinceImprovement: stopper.epochsSinceImprovement, epochs: stopper.epochs },
              shuffleRng: shuffleRng.getState(),
            });
            const next = () => {
              if (!opts.stopRequested?.()) return runEpoch();
              closed = true;
              const p = pool;
              pool = null;
              const stopped = () => {
                cleanup();
                ens?.dispose();
                ens = null;
                subscriber.next({ type: 'stopped', epochs: epoch });
                subscriber.complete();
              };
              if (!p) return stopped();
              p.dispose().then(stopped, (err: unknown) => fail(err));
            };
            if (saving instanceof Promise) {
              saving.then(() => guarded(next), failOnce);
            } else next();
          },
        );
      };
      // A capped resume (epochs or patience) trains no further epoch, so it needs no worker threads.
      if (threads === 1 || epoch >= cfg.maxEpochs || stopper.shouldStop) {
        runEpoch();
        return;
      }
      EnsembleWorkerPool.start(ens, { workers: threads, blockX, blockY }).then(
        (p) => {
          if (closed) {
            p.dispose().catch(() => undefined);
            return;
          }
          pool = p;
          guarded(runEpoch);
        },
        failOnce,
      );
    };

    if (opts.normalizer || opts.resume) {
      setImmediate(() => guarded(() => start(opts.resume?.ensemble.normalizer ?? opts.normalizer!)));
    } else {
      let acc: NormalizerAccumulator | null = null;
      pass(
        (b) => {
          acc ??= new NormalizerAccumulator(b.dims);
          acc.update(b);
        },
        () => {
          if (acc === null) throw new UserError('trainEnsemble: the dataset has no rows');
          start(acc.result());
        },
      );
    }

    return () => {
      closed = true;
      sub?.unsubscribe();
      stopPool();
      cleanup();
      ens?.dispose();
      ens = null;
    };
  });
}

/**
 * Each member's order of the rows of a block (indices into the block, n of them). 'permutation':
 * a random permutation. 'bootstrap': n rows drawn with replacement, the reference's per-member
 * bootstrap (its BNN draws each member's N indices once, with replacement, and reshuffles them every
 * epoch), here per block: the draw depends only on (seed, member, block of the epoch), so it is the
 * same every epoch (the blocks hold the same rows every epoch) and after a resume; shuffleRng only
 * orders it. Both take the same draws from shuffleRng.
 */
export function memberOrders(n: number, members: number, shuffleRng: Rng, resample: EnsembleConfig['resample'], seed: number, block: number): Uint32Array[] {
  return Array.from({ length: members }, (_, m) => {
    const order = shuffleRng.permutation(n);
    if (resample === 'permutation') return order;
    const draw = new Rng(seed, `ensemble-bootstrap/${m}/${block}`);
    const sample = new Uint32Array(n);
    for (let i = 0; i < n; i++) sample[i] = draw.int(n);
    const out = new Uint32Array(n);
    for (let i = 0; i < n; i++) out[i] = sample[order[i]!]!;
    return out;
  });
}

/**
 * Per-member training batch: rows start … start + b − 1 of each member's permutation of a block
 * (x [rows, inDim], y [rows, outDim]) → xs [members, b, inDim], ys [members, b, outDim].
 */
export function fillMemberBatch(
  blockX: Float32Array, blockY: Float32Array, perms: readonly Uint32Array[], start: number, b: number, inDim: number, outDim: number,
): { xs: Float32Array; ys: Float32Array } {
  const E = perms.length;
  const xs = new Float32Array(E * b * inDim);
  const ys = new Float32Array(E * b * outDim);
  for (let e = 0; e < E; e++) {
    const perm = perms[e]!;
    for (let i = 0; i < b; i++) {
      const r = perm[start + i]!;
      copyRow(blockX, r, xs, e * b + i, inDim);
      copyRow(blockY, r, ys, e * b + i, outDim);
    }
  }
  return { xs, ys };
}

/** Row `from` of src into row `to` of dst (rows of w values): a plain loop, as rows are short and a subarray per row costs more than the copy. */
function copyRow(src: Float32Array, from: number, dst: Float32Array, to: number, w: number): void {
  const s = from * w;
  const d = to * w;
  for (let j = 0; j < w; j++) dst[d + j] = src[s + j]!;
}

/** A [E] bool mask reshaped to [E, 1, …, 1] (rank r) so tf.where broadcasts it over a member's tensor. */
function memberMask(cond: tf.Tensor, rank: number): tf.Tensor {
  return tf.reshape(cond, [cond.shape[0]!, ...new Array<number>(rank - 1).fill(1)]);
}

function sameF32(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return false;
  return true;
}

/** The parts one after another in one new array. */
export function concatF32(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
