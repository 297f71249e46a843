// Soft Actor-Critic (Haarnoja et al. 2018, automatic entropy tuning), as the MOPO reference runs it
// (softlearning; /work/shared/MOPO.md "SAC"), with hand-written gradients on DenseStack.
//
//   const agent = SacAgent.create({ actionLow: [-2], actionHigh: [2] }, { obsDim: 3, actDim: 1 }, rng);
//   const a = agent.act(obs, n, deterministic);        // Float32Array n × actDim, env action scale
//   const m = agent.update(batch, { metrics: true });  // one full update; metrics read back on demand
//   await agent.saveCheckpoint(dir); const again = await SacAgent.loadCheckpoint(dir);
//   const policy = await loadPolicy(dir);               // actor only: act() for collection/evaluation
//   await trainSacOnline({ env, steps: 15_000, startSteps: 1000, ... });
//   batches$.pipe(sacUpdates(agent, { metricsEvery: 1000 }))  // operator: one update per batch
//
// The algorithm (defaults = SAC_DEFAULTS = the reference):
//   actor     s -> 256 -> 256 (ReLU) -> [mean, log σ] (2|A|), log σ clipped to [-20, 2] (zero gradient
//             outside, as tf.clip_by_value); u = mean + σ·ε, a = tanh(u);
//             log π(a|s) = Σ_j [ -ε_j²/2 - log σ_j - log(2π)/2 - 2(log 2 - u_j - softplus(-2u_j)) ]
//             (the last term is log(1 - tanh²u) computed stably).
//   critics   twin Q (s, a) -> 256 -> 256 (ReLU) -> 1, computed as ONE 2-member DenseStack (weights
//             [2, in, out]) with a target copy updated by Polyak averaging (τ = 0.005) after every
//             update.
//   targets   y = r + γ (1 - terminal) (min_i Q̄_i(s', a') - α log π(a'|s')), a' ~ π(·|s'); timeouts
//             are not terminals (they only end an episode; the state still has a value).
//   losses    critic Σ_i ½ mean (Q_i(s,a) - y)²; actor mean(α log π(ã|s) - min_i Q_i(s, ã)), ã ~ π(·|s)
//             reparameterized; temperature -mean(log α · (log π(ã|s) + H̄)), H̄ = -|A|.
//   update    all three gradients are taken at the same (pre-update) parameters and α, as
//             softlearning does (one session run), then Adam (3e-4 each) and the Polyak step.
//   actions   the networks work in [-1, 1]; act() maps to [actionLow, actionHigh] and update() maps
//             the batch's (env-scale) actions back, so buffers and datasets hold env actions.
//
// Gradients (no tape; explicit tf ops inside one tf.tidy; with the native kernels, the squash, the
// losses and the squash's backward are one kernel each: MopoSacSquash, MopoSacLosses,
// MopoSacSquashGrad, held to the tf-op forms below by test/sac.test.ts):
//   critic    dL/dQ_i = (Q_i - y)/B  -> DenseStack.backward.
//   actor     dL/dã = -(1/B)·∂Q_min/∂ã: the critic is run forward on (s, ã) and back-propagated to its
//             input only (DenseStack.inputGrad: dz·Wᵀ per layer, no weight gradients; first layer only
//             the action rows of W1), with dOut = -1/B on the member that is the minimum (ties: the
//             first, like tf.minimum's gradient). Then through the squash and the reparameterization:
//               g_u   = dL/dã·(1 - ã²) + (α/B)·2ã                       (∂ log π/∂u = 2 tanh u)
//               dmean = g_u;  dlogσ = (g_u·σ·ε - α/B)·[log σ within the clip]
//             and DenseStack.backward on the actor.
//   α         dL/dlog α = -(mean log π + H̄).
// test/sac.test.ts checks all three against tf.grad autodiff on small shapes.
//
// Noise ε is drawn from the agent's Rng (one seed drives every draw), so a run is reproducible on
// one backend and a checkpoint restores the noise stream too.
//
// Flop count of one update (matmuls only; SacAgent.updateFlops): with F(net) = 2·B·Σ in·out per
// member, actor forward on s' (F_a) + target critics on (s', a') (F_c) + critics on (s, a) forward
// and backward (F_c + F_c [dW] + F_c minus its first layer [dX, layers > 0]) + actor forward on s
// (F_a) + critics on (s, ã) forward (F_c) and input gradient (F_c minus the first layer's
// observation rows) + actor backward (F_a [dW] + F_a minus its first layer [dX]).

import type { Env } from '../pipeline/envs/env.js';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Observable, type OperatorFunction } from 'rxjs';
import { Adam, DenseStack, WEIGHT_INITS, type DenseStackSpec, type WeightInit } from '../pipeline/mlp.js';
import { hasMopoKernel } from '../pipeline/kernels.js';
import { Rng } from '../pipeline/random.js';
import { readTensorCheckpoint, writeTensorCheckpoint, type CheckpointKind } from '../pipeline/tensorCheckpoint.js';
import { UserError } from '../pipeline/errors.js';
import { DivergenceError } from '../pipeline/divergence.js';
import { TransitionBatch, type TransitionDims } from '../schemas/transition.js';
import { ArrowReplayBuffer } from './replayBuffer.js';
import { meanStd } from './evaluate.js';

// ---------------------------------------------------------------------------------------------
// Config

export interface SacConfig {
  /** Hidden layer widths of the actor and of each critic (ReLU). */
  hidden: number[];
  /** Discount γ. */
  gamma: number;
  /** Polyak coefficient τ of the target critics (target ← (1-τ)·target + τ·critic, every update). */
  tau: number;
  actorLr: number;
  criticLr: number;
  alphaLr: number;
  /** Transitions per update (used by the training loops; update() takes whatever batch it gets). */
  batchSize: number;
  /** Initial temperature α (softlearning starts at log α = 0). */
  initialAlpha: number;
  /** Learn α (automatic entropy tuning); false keeps α = initialAlpha. */
  autoEntropy: boolean;
  /** Target entropy H̄; null means -|A|. */
  targetEntropy: number | null;
  logStdMin: number;
  logStdMax: number;
  /**
   * Initial weights of actor and critics, one of pipeline/mlp.ts WEIGHT_INITS: 'uniform'
   * U(±1/√fan-in) by default, 'glorot-uniform' as the reference's Keras layers.
   */
  init: WeightInit;
  /** Environment action bounds (per dimension); null means [-1, 1]. */
  actionLow: number[] | null;
  actionHigh: number[] | null;
  /**
   * An update whose Q values or TD targets exceed this in magnitude (or whose losses are not
   * finite) stops training: a DivergenceError. Returns here are bounded by max|r| / (1 − γ), about 10³ for the
   * locomotion tasks, so 10⁶ only catches a learner that has blown up.
   */
  divergenceQLimit: number;
}

export const SAC_DEFAULTS: Readonly<SacConfig> = Object.freeze({
  hidden: [256, 256],
  gamma: 0.99,
  tau: 0.005,
  actorLr: 3e-4,
  criticLr: 3e-4,
  alphaLr: 3e-4,
  batchSize: 256,
  initialAlpha: 1,
  autoEntropy: true,
  targetEntropy: null,
  logStdMin: -20,
  logStdMax: 2,
  init: 'uniform',
  actionLow: null,
  actionHigh: null,
  divergenceQLimit: 1e6,
});

/** Fills defaults and validates (UserError on a bad value). Bounds become explicit arrays. */
export function resolveSacConfig(partial: Partial<SacConfig>, actDim: number): SacConfig {
  const c: SacConfig = { ...SAC_DEFAULTS, ...stripUndefined(partial) } as SacConfig;
  const bad = (what: string, v: unknown) => new UserError(`sac config: ${what} (got ${JSON.stringify(v)})`);
  if (!Array.isArray(c.hidden) || c.hidden.length === 0 || !c.hidden.every((h) => Number.isInteger(h) && h > 0)) throw bad('hidden must be a non-empty list of positive integers', c.hidden);
  const inUnit = (k: 'gamma' | 'tau') => {
    if (!(c[k] >= 0 && c[k] <= 1)) throw bad(`${k} must be within [0, 1]`, c[k]);
  };
  inUnit('gamma');
  inUnit('tau');
  for (const k of ['actorLr', 'criticLr', 'alphaLr', 'initialAlpha'] as const) if (!(c[k] > 0 && Number.isFinite(c[k]))) throw bad(`${k} must be a positive number`, c[k]);
  if (!Number.isInteger(c.batchSize) || c.batchSize <= 0) throw bad('batchSize must be a positive integer', c.batchSize);
  if (!(c.logStdMin < c.logStdMax)) throw bad('logStdMin must be below logStdMax', [c.logStdMin, c.logStdMax]);
  if (c.targetEntropy !== null && !Number.isFinite(c.targetEntropy)) throw bad('targetEntropy must be a number or null', c.targetEntropy);
  if (!WEIGHT_INITS.includes(c.init)) throw bad(`init must be one of ${WEIGHT_INITS.join(', ')}`, c.init);
  const low = c.actionLow ?? new Array<number>(actDim).fill(-1);
  const high = c.actionHigh ?? new Array<number>(actDim).fill(1);
  if (low.length !== actDim || high.length !== actDim) throw bad(`actionLow/actionHigh need ${actDim} values`, [low, high]);
  for (let j = 0; j < actDim; j++) {
    if (!(Number.isFinite(low[j]) && Number.isFinite(high[j]) && low[j]! < high[j]!)) throw bad(`action bounds must be finite with low < high (dimension ${j})`, [low[j], high[j]]);
  }
  return { ...c, hidden: c.hidden.slice(), actionLow: low.slice(), actionHigh: high.slice() };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

export interface SacMetrics {
  /** Σ over the two critics of ½·mean squared TD error. */
  criticLoss: number;
  /** mean(α log π - min Q) at the sampled actions. */
  actorLoss: number;
  /** α used by this update. */
  alpha: number;
  /** -mean log π (a Monte Carlo estimate of the policy entropy, in nats). */
  entropy: number;
  /** mean Q(s, a) over the batch and both critics. */
  qMean: number;
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** Copies host data for backends that keep a reference to it (cpu, node); wasm copies on upload. */
function upload(values: Float32Array, shape: number[]): tf.Tensor {
  return tf.tensor(tf.getBackend() === 'wasm' ? values : values.slice(), shape, 'float32');
}

const LOG2 = Math.log(2);
const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);

/** Gaussian noise for one batch plus the per-row constant Σ_j(-ε²/2) - |A|(log(2π)/2 + 2 log 2). */
function fillNoise(rng: Rng, eps: Float32Array, base: Float32Array, actDim: number): void {
  rng.fillNormal(eps);
  const c = -actDim * (HALF_LOG_2PI + 2 * LOG2);
  for (let i = 0, k = 0; i < base.length; i++) {
    let s = 0;
    for (let j = 0; j < actDim; j++, k++) s += eps[k]! * eps[k]!;
    base[i] = c - 0.5 * s;
  }
}

// ---------------------------------------------------------------------------------------------
// The update's elementwise parts, each as tf ops and as one native kernel (MopoSacSquash,
// MopoSacSquashGrad, MopoSacLosses in pipeline/kernels.ts, registered together with the native
// gemm). The tf-op forms are the definition; test/sac.test.ts checks the kernels against them.

/** A squashed Gaussian sample: a = tanh u [B,A], log π [B,1], aux [B,2A] = (σ·ε | log σ within its clip). */
interface Squashed {
  a: tf.Tensor;
  logp: tf.Tensor;
  aux: tf.Tensor;
}

/** Indices into SacLossOutputs.stats. */
const STAT = { diff2: 0, actor: 1, maxAbsQ: 2, q: 3, logp: 4, alpha: 5 } as const;

interface SacLossInputs {
  /** Target critics on (s', a') [M,B,1]; log π(a'|s') [B,1]. */
  qT: tf.Tensor;
  logpNext: tf.Tensor;
  r: tf.Tensor;
  notDone: tf.Tensor;
  /** Critics on (s, a) [M,B,1]; on (s, ã) [M,B,1]; log π(ã|s) [B,1]. */
  q: tf.Tensor;
  qPi: tf.Tensor;
  logp: tf.Tensor;
  logAlpha: tf.Tensor;
}

interface SacLossOutputs {
  /** ∂L_critic/∂Q [M,B,1]; ∂L_actor/∂Q(s, ã) through min_i [M,B,1]; ∂L_α/∂log α [1]. */
  dQ: tf.Tensor;
  dMin: tf.Tensor;
  gLogAlpha: tf.Tensor;
  /** [Σ (Q − y)², Σ (α log π − min_i Q_i(s, ã)), max(|Q|, |y|), Σ Q, Σ log π, α] (STAT). */
  stats: tf.Tensor;
}

/** log π = base − Σ_j (log σ_j − 2 u_j − 2 softplus(−2 u_j)); base holds −ε²/2 and the constants. */
function squashTf(out: tf.Tensor, eps: tf.Tensor, base: tf.Tensor, lo: number, hi: number): Squashed {
  const [mean, lsRaw] = tf.split(out, 2, 1) as [tf.Tensor, tf.Tensor];
  const ls = tf.clipByValue(lsRaw, lo, hi);
  const se = tf.mul(tf.exp(ls), eps);
  const u = tf.add(mean, se);
  const w = tf.add(u, tf.softplus(tf.mul(u, -2)));
  const logp = tf.sub(base, tf.sum(tf.sub(ls, tf.mul(w, 2)), 1, true));
  const inClip = tf.cast(tf.equal(ls, lsRaw), 'float32');
  return { a: tf.tanh(u), logp, aux: tf.concat([se, inClip], 1) };
}

function squashFused(out: tf.Tensor, eps: tf.Tensor, base: tf.Tensor, lo: number, hi: number): Squashed {
  const [a, logp, aux] = tf.engine().runKernel('MopoSacSquash', { out, eps, base }, { lo, hi }) as unknown as tf.Tensor[];
  return { a: a!, logp: logp!, aux: aux! };
}

/** y = r + γ·notDone·(min_i Q̄_i − α log π'); dQ = (Q − y)/B; dMin = −1/B on the minimum member (ties: the first). */
function lossesTf(x: SacLossInputs, gamma: number, targetEntropy: number): SacLossOutputs {
  const B = x.r.shape[0]!;
  const alpha = tf.exp(x.logAlpha); // [1]
  const soft = tf.sub(tf.min(x.qT, 0), tf.mul(alpha, x.logpNext));
  const y = tf.add(x.r, tf.mul(tf.mul(x.notDone, soft), gamma));
  const diff = tf.sub(x.q, y);
  const [q1, q2] = tf.split(x.qPi, 2, 0) as [tf.Tensor, tf.Tensor];
  const first = tf.cast(tf.lessEqual(q1, q2), 'float32'); // [1, B, 1]
  const dMin = tf.mul(tf.concat([first, tf.sub(1, first)], 0), -1 / B);
  const meanLogp = tf.mean(x.logp);
  const stats = tf.stack([
    tf.sum(tf.square(diff)),
    tf.sum(tf.sub(tf.mul(alpha, x.logp), tf.min(x.qPi, 0))),
    tf.maximum(tf.max(tf.abs(x.q)), tf.max(tf.abs(y))),
    tf.sum(x.q),
    tf.sum(x.logp),
    tf.reshape(alpha, []),
  ]);
  return { dQ: tf.mul(diff, 1 / B), dMin, gLogAlpha: tf.reshape(tf.neg(tf.add(meanLogp, targetEntropy)), [1]), stats };
}

function lossesFused(x: SacLossInputs, gamma: number, targetEntropy: number): SacLossOutputs {
  const [dQ, dMin, gLogAlpha, stats] = tf.engine().runKernel('MopoSacLosses', { ...x }, { gamma, targetEntropy }) as unknown as tf.Tensor[];
  return { dQ: dQ!, dMin: dMin!, gLogAlpha: gLogAlpha!, stats: stats! };
}

/** dA [M,B,A] (per critic member) → the actor's output gradient [B,2A] (see the file header). */
function squashGradTf(dA: tf.Tensor, cur: Squashed, logAlpha: tf.Tensor): tf.Tensor {
  const B = dA.shape[1]!;
  const alphaB = tf.div(tf.exp(logAlpha), B);
  const [se, inClip] = tf.split(cur.aux, 2, 1) as [tf.Tensor, tf.Tensor];
  const gu = tf.add(tf.mul(tf.sum(dA, 0), tf.sub(1, tf.square(cur.a))), tf.mul(cur.a, tf.mul(alphaB, 2)));
  const dls = tf.mul(tf.sub(tf.mul(gu, se), alphaB), inClip);
  return tf.concat([gu, dls], 1);
}

function squashGradFused(dA: tf.Tensor, cur: Squashed, logAlpha: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel('MopoSacSquashGrad', { dA, a: cur.a, aux: cur.aux, logAlpha }, {}) as tf.Tensor;
}

/** Both forms of each elementwise part, for the tests that hold the kernels to the tf-op forms. */
export const SAC_UPDATE_PARTS = {
  tf: { squash: squashTf, losses: lossesTf, squashGrad: squashGradTf },
  fused: { squash: squashFused, losses: lossesFused, squashGrad: squashGradFused },
} as const;

// ---------------------------------------------------------------------------------------------
// Policy (the actor alone): act() for data collection and evaluation

/** Env-scale actions from a tanh-squashed Gaussian actor. */
export class SacPolicy {
  readonly obsDim: number;
  readonly actDim: number;
  readonly actionLow: Float32Array;
  readonly actionHigh: Float32Array;
  readonly logStdMin: number;
  readonly logStdMax: number;
  /** @internal */
  actor: DenseStack;
  rng: Rng;

  constructor(actor: DenseStack, dims: { obsDim: number; actDim: number }, cfg: Pick<SacConfig, 'actionLow' | 'actionHigh' | 'logStdMin' | 'logStdMax'>, rng: Rng) {
    this.actor = actor;
    this.obsDim = dims.obsDim;
    this.actDim = dims.actDim;
    this.actionLow = Float32Array.from(cfg.actionLow ?? new Array<number>(dims.actDim).fill(-1));
    this.actionHigh = Float32Array.from(cfg.actionHigh ?? new Array<number>(dims.actDim).fill(1));
    this.logStdMin = cfg.logStdMin;
    this.logStdMax = cfg.logStdMax;
    this.rng = rng;
  }

  /**
   * Actions for n observations (row-major n × obsDim): tanh(mean) when deterministic, else
   * tanh(mean + σ·ε) with ε from this policy's Rng; scaled to [actionLow, actionHigh].
   */
  act(obs: ArrayLike<number>, n: number, deterministic = false): Float32Array {
    const O = this.obsDim;
    const A = this.actDim;
    if (!Number.isInteger(n) || n <= 0) throw new RangeError(`act: n must be a positive integer, got ${n}`);
    if (obs.length < n * O) throw new RangeError(`act: ${obs.length} observation values, need ${n} × ${O}`);
    const x = obs instanceof Float32Array && obs.length === n * O && tf.getBackend() === 'wasm' ? obs : Float32Array.from({ length: n * O }, (_, i) => obs[i]!);
    const out = tf.tidy(() => this.actor.predict(tf.tensor(x, [n, O], 'float32')));
    const v = out.dataSync() as Float32Array;
    out.dispose();
    const res = new Float32Array(n * A);
    const lo = this.actionLow;
    const hi = this.actionHigh;
    for (let i = 0; i < n; i++) {
      const r = i * 2 * A;
      for (let j = 0; j < A; j++) {
        let u = v[r + j]!;
        if (!deterministic) {
          const ls = Math.min(this.logStdMax, Math.max(this.logStdMin, v[r + A + j]!));
          u += Math.exp(ls) * this.rng.normal();
        }
        const a = Math.tanh(u);
        res[i * A + j] = lo[j]! + 0.5 * (a + 1) * (hi[j]! - lo[j]!);
      }
    }
    return res;
  }

  dispose(): void {
    this.actor.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Agent

interface NoiseScratch {
  eps: Float32Array;
  epsNext: Float32Array;
  base: Float32Array;
  baseNext: Float32Array;
  action: Float32Array;
  notDone: Float32Array;
}

/** Host-side inputs of one update (all Float32Array, row-major). */
export interface SacUpdateInputs {
  observation: Float32Array;
  /** Actions in [-1, 1] (network scale). */
  action: Float32Array;
  reward: Float32Array;
  nextObservation: Float32Array;
  /** 1 - terminal. */
  notDone: Float32Array;
  /** Reparameterization noise for s (B × |A|) and s' (B × |A|). */
  eps: Float32Array;
  epsNext: Float32Array;
}

export interface SacGradients {
  critic: Float32Array[];
  actor: Float32Array[];
  logAlpha: number;
}

const CHECKPOINT_FILE = 'sac.json';
const CHECKPOINT_FORMAT = 'mopo-sac-checkpoint';

const SAC_CHECKPOINT: CheckpointKind = { headerFile: CHECKPOINT_FILE, format: CHECKPOINT_FORMAT, what: 'SAC checkpoint' };

/** What a SAC checkpoint's header carries beside the tensor index. */
interface CheckpointJson {
  kind: 'agent' | 'policy';
  config: SacConfig;
  dims: TransitionDims;
  updates: number;
  rng: Array<number | null>;
  optimizers?: { actor: number; critic: number; alpha: number };
}

export class SacAgent {
  readonly config: SacConfig;
  readonly obsDim: number;
  readonly actDim: number;
  readonly env: string | undefined;
  readonly targetEntropy: number;
  readonly rng: Rng;
  private readonly policy: SacPolicy;
  private critic: DenseStack;
  private target: DenseStack;
  private actorOpt: Adam;
  private criticOpt: Adam;
  private alphaOpt: Adam;
  private logAlpha: tf.Tensor;
  private updateCount = 0;
  private scratch: NoiseScratch | null = null;
  /** Whether env actions need rescaling to [-1, 1] (false for [-1, 1] bounds). */
  private readonly rescale: boolean;
  private readonly actScale: Float32Array;
  private readonly actShift: Float32Array;

  private constructor(
    config: SacConfig, dims: TransitionDims, rng: Rng, actor: DenseStack, critic: DenseStack, target: DenseStack, logAlpha: tf.Tensor,
  ) {
    this.config = config;
    this.obsDim = dims.obsDim;
    this.actDim = dims.actDim;
    this.env = dims.env;
    this.rng = rng;
    this.policy = new SacPolicy(actor, dims, config, rng);
    this.critic = critic;
    this.target = target;
    this.logAlpha = logAlpha;
    this.targetEntropy = config.targetEntropy ?? -dims.actDim;
    this.actorOpt = new Adam(actor.params(), { lr: config.actorLr });
    this.criticOpt = new Adam(critic.params(), { lr: config.criticLr });
    this.alphaOpt = new Adam([logAlpha], { lr: config.alphaLr });
    const lo = config.actionLow!;
    const hi = config.actionHigh!;
    this.actScale = Float32Array.from(lo, (l, j) => 2 / (hi[j]! - l));
    this.actShift = Float32Array.from(lo, (l, j) => -1 - l * this.actScale[j]!);
    this.rescale = lo.some((l, j) => l !== -1 || hi[j] !== 1);
  }

  /** The actor's Adam learning rate (config.actorLr unless a schedule has set it: sacConsumer). */
  get actorLr(): number {
    return this.actorOpt.lr;
  }

  set actorLr(lr: number) {
    if (!(lr >= 0 && Number.isFinite(lr))) throw new RangeError(`actorLr must be a finite number >= 0, got ${lr}`);
    this.actorOpt.lr = lr;
  }

  static actorSpec(config: SacConfig, dims: { obsDim: number; actDim: number }): DenseStackSpec {
    return { sizes: [dims.obsDim, ...config.hidden, 2 * dims.actDim], hidden: 'relu', init: config.init };
  }

  static criticSpec(config: SacConfig, dims: { obsDim: number; actDim: number }): DenseStackSpec {
    return { sizes: [dims.obsDim + dims.actDim, ...config.hidden, 1], hidden: 'relu', members: 2, init: config.init };
  }

  /** A fresh agent: networks drawn from `rng`, which then drives the agent's noise. */
  static create(config: Partial<SacConfig>, dims: TransitionDims, rng: Rng): SacAgent {
    const c = resolveSacConfig(config, dims.actDim);
    const actor = DenseStack.init(SacAgent.actorSpec(c, dims), rng);
    const critic = DenseStack.init(SacAgent.criticSpec(c, dims), rng);
    const target = DenseStack.fromParams(SacAgent.criticSpec(c, dims), critic.params().map((p) => p.clone()));
    const logAlpha = tf.tensor([Math.log(c.initialAlpha)], [1], 'float32');
    return new SacAgent(c, dims, rng, actor, critic, target, logAlpha);
  }

  /** Updates done so far. */
  get updates(): number {
    return this.updateCount;
  }

  /** Current temperature (reads one value back). */
  get alpha(): number {
    return Math.exp(this.logAlpha.dataSync()[0]!);
  }

  /** The actor as a policy (shares the agent's actor and Rng; do not dispose it separately). */
  get actorPolicy(): SacPolicy {
    return this.policy;
  }

  /** See SacPolicy.act. */
  act(obs: ArrayLike<number>, n: number, deterministic = false): Float32Array {
    return this.policy.act(obs, n, deterministic);
  }

  /** [actor, critic, target, logAlpha] parameter tensors (owned by the agent). */
  parameters(): { actor: tf.Tensor[]; critic: tf.Tensor[]; target: tf.Tensor[]; logAlpha: tf.Tensor } {
    return { actor: this.policy.actor.params(), critic: this.critic.params(), target: this.target.params(), logAlpha: this.logAlpha };
  }

  /** Matmul flops of one update with a batch of `batch` rows (see the file header). */
  updateFlops(batch: number): number {
    return sacUpdateFlops(this.config, { obsDim: this.obsDim, actDim: this.actDim }, batch);
  }

  private ensureScratch(B: number): NoiseScratch {
    const A = this.actDim;
    if (this.scratch === null || this.scratch.base.length !== B) {
      this.scratch = {
        eps: new Float32Array(B * A),
        epsNext: new Float32Array(B * A),
        base: new Float32Array(B),
        baseNext: new Float32Array(B),
        action: new Float32Array(B * A),
        notDone: new Float32Array(B),
      };
    }
    return this.scratch;
  }

  /**
   * One SAC update on `batch` (env-scale actions; terminal masks the bootstrap, timeout does not).
   * With { metrics: true } (default) the metrics are read back (one small copy); with false nothing
   * is read and null is returned.
   */
  update(batch: TransitionBatch, opts?: { metrics?: true }): SacMetrics;
  update(batch: TransitionBatch, opts: { metrics: false }): null;
  update(batch: TransitionBatch, opts?: { metrics?: boolean }): SacMetrics | null;
  update(batch: TransitionBatch, opts: { metrics?: boolean } = {}): SacMetrics | null {
    if (batch.obsDim !== this.obsDim || batch.actDim !== this.actDim) {
      throw new UserError(`sac: batch dims obs ${batch.obsDim}/act ${batch.actDim} differ from the agent's ${this.obsDim}/${this.actDim}`);
    }
    const B = batch.length;
    if (B === 0) throw new RangeError('sac: update on an empty batch');
    const A = this.actDim;
    const s = this.ensureScratch(B);
    let action = batch.action;
    if (this.rescale) {
      const sc = this.actScale;
      const sh = this.actShift;
      for (let i = 0, k = 0; i < B; i++) for (let j = 0; j < A; j++, k++) s.action[k] = batch.action[k]! * sc[j]! + sh[j]!;
      action = s.action;
    }
    for (let i = 0; i < B; i++) s.notDone[i] = batch.terminal[i] ? 0 : 1;
    fillNoise(this.rng, s.epsNext, s.baseNext, A);
    fillNoise(this.rng, s.eps, s.base, A);
    const wantMetrics = opts.metrics ?? true;
    // Adam.step keeps its outputs, so they survive the tidy.
    let newCritic: tf.Tensor[] = [];
    let newActor: tf.Tensor[] = [];
    let newLogAlpha: tf.Tensor | null = null;
    let g!: { critic: tf.Tensor[]; actor: tf.Tensor[]; logAlpha: tf.Tensor; stats: tf.Tensor };
    tf.tidy(() => {
      const r = this.gradients({
        s: upload(batch.observation, [B, this.obsDim]),
        a: upload(action, [B, A]),
        r: upload(batch.reward, [B, 1]),
        s2: upload(batch.nextObservation, [B, this.obsDim]),
        notDone: upload(s.notDone, [B, 1]),
        eps: upload(s.eps, [B, A]),
        eps2: upload(s.epsNext, [B, A]),
        base: upload(s.base, [B, 1]),
        base2: upload(s.baseNext, [B, 1]),
      });
      g = { critic: r.critic.map((t) => tf.keep(t)), actor: r.actor.map((t) => tf.keep(t)), logAlpha: tf.keep(r.logAlpha), stats: tf.keep(r.stats) };
    });
    // Divergence guard, before anything is applied: the loss sums (6 floats) are read back every
    // update (wasm computes synchronously, so this costs no pipeline stall); the metrics come from
    // the same floats. See SacConfig.divergenceQLimit.
    const st = g.stats.dataSync();
    const qLimit = this.config.divergenceQLimit;
    const criticSum = st[STAT.diff2]!;
    const actorSum = st[STAT.actor]!;
    const maxAbs = st[STAT.maxAbsQ]!;
    if (!Number.isFinite(criticSum) || !Number.isFinite(actorSum) || !(maxAbs <= qLimit)) {
      tf.dispose([...g.critic, ...g.actor, g.logAlpha, g.stats]);
      const what = !Number.isFinite(criticSum) ? `the critic loss is ${criticSum}` : !Number.isFinite(actorSum) ? `the actor loss is ${actorSum}` : `|Q| or its TD target reached ${maxAbs.toExponential(2)} (limit ${qLimit.toExponential(0)})`;
      throw new DivergenceError('sac', `${what} at update ${this.updateCount + 1}; the update was not applied. Check the rewards (mopo inspect; a large λ·penalty or reward scale) or lower the learning rates`);
    }
    tf.tidy(() => {
      newCritic = this.criticOpt.step(this.critic.params(), g.critic);
      newActor = this.actorOpt.step(this.policy.actor.params(), g.actor);
      if (this.config.autoEntropy) newLogAlpha = this.alphaOpt.step([this.logAlpha], [g.logAlpha])[0]!;
    });
    tf.dispose([...g.critic, ...g.actor, g.logAlpha, g.stats]);
    this.critic.setParams(newCritic);
    this.policy.actor.setParams(newActor);
    if (newLogAlpha !== null) {
      this.logAlpha.dispose();
      this.logAlpha = newLogAlpha as tf.Tensor;
    }
    this.polyak();
    this.updateCount++;
    if (!wantMetrics) return null;
    const members = this.critic.spec.members ?? 1; // the twin critics
    return {
      criticLoss: (0.5 / B) * criticSum,
      actorLoss: actorSum / B,
      alpha: st[STAT.alpha]!,
      entropy: -st[STAT.logp]! / B,
      qMean: st[STAT.q]! / (members * B),
    };
  }

  /** target ← target + τ (critic - target): one MopoPolyak pass where the SIMD kernels are installed. */
  private polyak(): void {
    const tau = this.config.tau;
    const next = tf.tidy(() => {
      const cs = this.critic.params();
      const ts = this.target.params();
      if (hasMopoKernel('MopoPolyak')) {
        const inputs: Record<string, tf.Tensor> = {};
        ts.forEach((t, i) => {
          inputs[`t${i}`] = t;
          inputs[`c${i}`] = cs[i]!;
        });
        return (tf.engine().runKernel('MopoPolyak', inputs, { n: ts.length, tau }) as unknown as tf.Tensor[]).map((t) => tf.keep(t));
      }
      return ts.map((t, i) => tf.keep(tf.add(t, tf.mul(tf.sub(cs[i]!, t), tau))));
    });
    this.target.setParams(next);
  }

  /**
   * The three gradients at the current parameters (see the file header) and the loss sums
   * (SacLossOutputs.stats). Tensors: s [B,O], a [B,A] (network scale), r / notDone / base / base2 [B,1],
   * eps / eps2 [B,A]. Call in tf.tidy.
   */
  private gradients(x: {
    s: tf.Tensor; a: tf.Tensor; r: tf.Tensor; s2: tf.Tensor; notDone: tf.Tensor; eps: tf.Tensor; eps2: tf.Tensor; base: tf.Tensor; base2: tf.Tensor;
  }): { critic: tf.Tensor[]; actor: tf.Tensor[]; logAlpha: tf.Tensor; stats: tf.Tensor } {
    const { logStdMin, logStdMax } = this.config;
    const A = this.actDim;
    const O = this.obsDim;
    const actor = this.policy.actor;
    const fused = hasMopoKernel('MopoSacSquash');
    const squash = fused ? squashFused : squashTf;

    // The three forward passes: target critics on (s', a'), critics on (s, a) and on (s, ã).
    const next = squash(actor.predict(x.s2), x.eps2, x.base2, logStdMin, logStdMax);
    const qT = this.target.predict(tf.concat([x.s2, next.a], 1)); // [2, B, 1]
    const fq = this.critic.forward(tf.concat([x.s, x.a], 1));
    const fa = actor.forward(x.s);
    const cur = squash(fa.out, x.eps, x.base, logStdMin, logStdMax);
    const fpi = this.critic.forward(tf.concat([x.s, cur.a], 1));
    const losses = (fused ? lossesFused : lossesTf)(
      { qT, logpNext: next.logp, r: x.r, notDone: x.notDone, q: fq.out, qPi: fpi.out, logp: cur.logp, logAlpha: this.logAlpha },
      this.config.gamma, this.targetEntropy,
    );

    const criticGrads = this.critic.backward(fq.cache, losses.dQ).grads;
    // Actor: ∂min_i Q_i/∂ã back through the critics' input (action rows of W1 only), then the squash.
    const w1 = this.critic.params()[0]!; // [2, O+A, H]
    const w1a = tf.slice(w1, [0, O, 0], [2, A, w1.shape[2]!]);
    const dA = this.critic.inputGrad(fpi.cache, losses.dMin, w1a); // [2, B, A]
    const dOut = (fused ? squashGradFused : squashGradTf)(dA, cur, this.logAlpha);
    const actorGrads = actor.backward(fa.cache, dOut).grads;
    return { critic: criticGrads, actor: actorGrads, logAlpha: losses.gLogAlpha, stats: losses.stats };
  }

  /**
   * The gradients one update would apply, without applying them, for explicit inputs and noise
   * (for tests against autodiff). Actions in network scale [-1, 1].
   */
  computeGradients(inp: SacUpdateInputs): SacGradients {
    const B = inp.reward.length;
    const A = this.actDim;
    const base = new Float32Array(B);
    const base2 = new Float32Array(B);
    const c = -A * (HALF_LOG_2PI + 2 * LOG2);
    for (let i = 0; i < B; i++) {
      let s1 = 0;
      let s2 = 0;
      for (let j = 0; j < A; j++) {
        s1 += inp.eps[i * A + j]! ** 2;
        s2 += inp.epsNext[i * A + j]! ** 2;
      }
      base[i] = c - 0.5 * s1;
      base2[i] = c - 0.5 * s2;
    }
    return tf.tidy(() => {
      const g = this.gradients({
        s: upload(inp.observation, [B, this.obsDim]),
        a: upload(inp.action, [B, A]),
        r: upload(inp.reward, [B, 1]),
        s2: upload(inp.nextObservation, [B, this.obsDim]),
        notDone: upload(inp.notDone, [B, 1]),
        eps: upload(inp.eps, [B, A]),
        eps2: upload(inp.epsNext, [B, A]),
        base: upload(base, [B, 1]),
        base2: upload(base2, [B, 1]),
      });
      return {
        critic: g.critic.map((t) => t.dataSync() as Float32Array),
        actor: g.actor.map((t) => t.dataSync() as Float32Array),
        logAlpha: g.logAlpha.dataSync()[0]!,
      };
    });
  }

  // -------------------------------------------------------------------------------------------
  // Checkpoints

  private namedTensors(kind: 'agent' | 'policy'): Array<[string, tf.Tensor]> {
    const out: Array<[string, tf.Tensor]> = [];
    const add = (prefix: string, ts: tf.Tensor[]) => ts.forEach((t, i) => out.push([`${prefix}/${i}`, t]));
    add('actor', this.policy.actor.params());
    if (kind === 'policy') return out;
    add('critic', this.critic.params());
    add('target', this.target.params());
    out.push(['logAlpha', this.logAlpha]);
    for (const [name, opt] of [['actorOpt', this.actorOpt], ['criticOpt', this.criticOpt], ['alphaOpt', this.alphaOpt]] as const) {
      const st = opt.getState();
      add(`${name}/m`, [...st.m]);
      add(`${name}/v`, [...st.v]);
    }
    return out;
  }

  /**
   * Writes a checkpoint into `dir`: sac.json (config, dims, counters, Rng state, tensor index)
   * and one float32 data file named by the update count. Each file is written atomically and the
   * JSON last, so a killed run leaves the previous checkpoint intact; stale data files are removed.
   * The checkpoint restores the agent exactly (loadCheckpoint) and serves as a policy (loadPolicy).
   */
  async saveCheckpoint(dir: string): Promise<void> {
    await this.writeCheckpoint(dir, 'agent');
  }

  /** Writes only the actor (a policy checkpoint for loadPolicy; not resumable). */
  async savePolicy(dir: string): Promise<void> {
    await this.writeCheckpoint(dir, 'policy');
  }

  private async writeCheckpoint(dir: string, kind: 'agent' | 'policy'): Promise<void> {
    const meta: CheckpointJson = {
      kind,
      config: this.config,
      dims: this.env ? { obsDim: this.obsDim, actDim: this.actDim, env: this.env } : { obsDim: this.obsDim, actDim: this.actDim },
      updates: this.updateCount,
      rng: this.rng.getState().map((v) => (Number.isNaN(v) ? null : v)),
      ...(kind === 'agent'
        ? { optimizers: { actor: this.actorOpt.iterations, critic: this.criticOpt.iterations, alpha: this.alphaOpt.iterations } }
        : {}),
    };
    await writeTensorCheckpoint(dir, SAC_CHECKPOINT, kind === 'agent' ? 'sac' : 'policy', this.updateCount, this.namedTensors(kind), meta);
  }

  /** Restores an agent saved by saveCheckpoint exactly (weights, targets, Adam states, α, counters, Rng). */
  static async loadCheckpoint(dir: string): Promise<SacAgent> {
    const { json, get } = await readCheckpoint(dir);
    if (json.kind !== 'agent') throw new UserError(`${join(resolve(dir), CHECKPOINT_FILE)}: a policy-only checkpoint; load it with loadPolicy`);
    const c = json.config;
    const dims = json.dims;
    const actor = DenseStack.fromParams(SacAgent.actorSpec(c, dims), getList(get, 'actor'));
    const critic = DenseStack.fromParams(SacAgent.criticSpec(c, dims), getList(get, 'critic'));
    const target = DenseStack.fromParams(SacAgent.criticSpec(c, dims), getList(get, 'target'));
    const rng = new Rng(0);
    rng.setState(json.rng.map((v) => (v === null ? Number.NaN : v)));
    const agent = new SacAgent(c, dims, rng, actor, critic, target, get('logAlpha'));
    const restore = (opt: Adam, name: string, t: number) => opt.setState({ t, m: getList(get, `${name}/m`), v: getList(get, `${name}/v`) });
    const o = json.optimizers!;
    restore(agent.actorOpt, 'actorOpt', o.actor);
    restore(agent.criticOpt, 'criticOpt', o.critic);
    restore(agent.alphaOpt, 'alphaOpt', o.alpha);
    agent.updateCount = json.updates;
    return agent;
  }

  dispose(): void {
    this.policy.dispose();
    this.critic.dispose();
    this.target.dispose();
    this.actorOpt.dispose();
    this.criticOpt.dispose();
    this.alphaOpt.dispose();
    this.logAlpha.dispose();
  }
}

/** Matmul flops of one SAC update (see the file header for what is counted). */
export function sacUpdateFlops(config: Pick<SacConfig, 'hidden'>, dims: { obsDim: number; actDim: number }, B: number): number {
  const O = dims.obsDim;
  const A = dims.actDim;
  const layerFlops = (sizes: number[], from = 0) => {
    let f = 0;
    for (let l = from; l + 1 < sizes.length; l++) f += 2 * B * sizes[l]! * sizes[l + 1]!;
    return f;
  };
  const aSizes = [O, ...config.hidden, 2 * A];
  const cSizes = [O + A, ...config.hidden, 1];
  const Fa = layerFlops(aSizes);
  const FaNoFirst = layerFlops(aSizes, 1);
  const Fc = 2 * layerFlops(cSizes); // two critics
  const FcNoFirst = 2 * layerFlops(cSizes, 1);
  const FcFirstActRows = 2 * 2 * B * A * config.hidden[0]!;
  return (
    Fa + // actor on s'
    Fc + // target critics on (s', a')
    Fc + Fc + FcNoFirst + // critics on (s, a): forward, dW, dX (layers > 0)
    Fa + // actor on s
    Fc + FcNoFirst + FcFirstActRows + // critics on (s, ã): forward, input gradient (action rows of layer 1)
    Fa + FaNoFirst // actor backward: dW, dX (layers > 0)
  );
}

// ---------------------------------------------------------------------------------------------
// Operator

export interface SacUpdatesConfig {
  /** Emit metrics every this many updates (default 1000); other updates read nothing back. */
  metricsEvery?: number;
}

/**
 * Operator: one agent.update per incoming batch (e.g. from a mixed sampler); emits
 * { updates, ...metrics } every metricsEvery updates. The agent stays the caller's.
 */
export function sacUpdates(agent: SacAgent, config: SacUpdatesConfig = {}): OperatorFunction<TransitionBatch, SacMetrics & { updates: number }> {
  const every = config.metricsEvery ?? 1000;
  if (!Number.isInteger(every) || every < 1) throw new UserError(`sacUpdates: metricsEvery must be a positive integer, got ${every}`);
  return (source) =>
    new Observable((subscriber) =>
      source.subscribe({
        next: (batch) => {
          try {
            const want = (agent.updates + 1) % every === 0;
            const m = agent.update(batch, { metrics: want });
            if (m !== null) subscriber.next({ updates: agent.updates, ...m });
          } catch (e) {
            subscriber.error(e);
          }
        },
        error: (e) => subscriber.error(e),
        complete: () => subscriber.complete(),
      }),
    );
}

// ---------------------------------------------------------------------------------------------
// Checkpoint reading and loadPolicy

function readCheckpoint(dir: string) {
  return readTensorCheckpoint<CheckpointJson>(dir, SAC_CHECKPOINT);
}

function getList(get: (name: string) => tf.Tensor, prefix: string): tf.Tensor[] {
  const out: tf.Tensor[] = [];
  for (let i = 0; ; i++) {
    let t: tf.Tensor;
    try {
      t = get(`${prefix}/${i}`);
    } catch (e) {
      if (i > 0) break;
      throw e;
    }
    out.push(t);
  }
  return out;
}

/**
 * The actor of a checkpoint (full or policy-only) as a policy. Stochastic actions draw from
 * `opts.rng` (default: the checkpoint's Rng state).
 */
export async function loadPolicy(dir: string, opts: { rng?: Rng } = {}): Promise<SacPolicy> {
  const { json, get } = await readCheckpoint(dir);
  const actor = DenseStack.fromParams(SacAgent.actorSpec(json.config, json.dims), getList(get, 'actor'));
  let rng = opts.rng;
  if (rng === undefined) {
    rng = new Rng(0);
    rng.setState(json.rng.map((v) => (v === null ? Number.NaN : v)));
  }
  return new SacPolicy(actor, json.dims, json.config, rng);
}

// ---------------------------------------------------------------------------------------------
// Online training

/** The environment interface trainSacOnline needs (the project's Env fits through a tiny adapter). */
export interface SacEnv {
  readonly obsDim: number;
  readonly actDim: number;
  readonly actionLow: ArrayLike<number>;
  readonly actionHigh: ArrayLike<number>;
  /** Starts an episode from the seeded reset distribution; returns the first observation. */
  reset(seed: number): ArrayLike<number>;
  /** Applies an env-scale action. */
  step(action: Float32Array): { observation: ArrayLike<number>; reward: number; terminated: boolean; truncated: boolean };
}

export type SacOnlineEvent =
  | { kind: 'episode'; step: number; episode: number; return: number; length: number }
  | ({ kind: 'update'; step: number; updates: number } & SacMetrics)
  | { kind: 'eval'; step: number; updates: number; meanReturn: number; returns: number[]; seconds: number };

export interface TrainSacOnlineOptions {
  env: SacEnv;
  /** Environment for evaluation episodes. Without it, evaluations wait for the end of the current
   *  training episode and use `env` (then training resets it). */
  evalEnv?: SacEnv;
  /** Environment steps. */
  steps: number;
  /** Uniform random actions for the first startSteps steps (default 10,000). */
  startSteps?: number;
  /** No updates before this many steps (default 1000). */
  updateAfter?: number;
  /** Updates happen in blocks every updateEvery steps (default 50), updateEvery·updatesPerStep each. */
  updateEvery?: number;
  /** Updates per environment step (default 1). */
  updatesPerStep?: number;
  /** Evaluate every evalEvery steps (default 5000; 0 = never). */
  evalEvery?: number;
  /** Deterministic evaluation episodes (default 10), with fixed seeds across evaluations. */
  evalEpisodes?: number;
  /** Replay buffer capacity (default 1,000,000). */
  bufferSize?: number;
  seed?: number;
  /** Agent settings (action bounds default to the env's). */
  config?: Partial<SacConfig>;
  /** Continue training this agent instead of creating one. */
  agent?: SacAgent;
  /** Emit an 'update' event with metrics every this many updates (default 1000; 0 = never). */
  metricsEvery?: number;
  onMetrics?: (e: SacOnlineEvent) => void;
  /** Stop early (checked between steps). */
  signal?: AbortSignal;
  /** Called once with the agent before training starts (e.g. to checkpoint it at evaluations). */
  onAgent?: (agent: SacAgent) => void;
}

export interface TrainSacOnlineResult {
  agent: SacAgent;
  buffer: ArrowReplayBuffer;
  evals: Array<{ step: number; updates: number; meanReturn: number; returns: number[] }>;
  episodes: number;
  updates: number;
  seconds: number;
}

/** Mean return of deterministic episodes on `env` with the given reset seeds. */
export function evaluatePolicy(policy: { act(obs: ArrayLike<number>, n: number, deterministic?: boolean): Float32Array }, env: SacEnv, seeds: readonly number[], maxSteps = Infinity): number[] {
  const returns: number[] = [];
  for (const seed of seeds) {
    let obs = env.reset(seed);
    let ret = 0;
    for (let t = 0; t < maxSteps; t++) {
      const r = env.step(policy.act(obs, 1, true));
      ret += r.reward;
      obs = r.observation;
      if (r.terminated || r.truncated) break;
    }
    returns.push(ret);
  }
  return returns;
}

/**
 * Online SAC: act in `env` (uniform random actions for the first startSteps), store every
 * transition (terminal = the env's terminated, timeout = truncated and not terminated), update
 * in blocks, evaluate deterministically now and then. Yields to the event loop every 1000 steps.
 */
export async function trainSacOnline(opts: TrainSacOnlineOptions): Promise<TrainSacOnlineResult> {
  const t0 = performance.now();
  const env = opts.env;
  const seed = opts.seed ?? 0;
  const startSteps = opts.startSteps ?? 10_000;
  const updateAfter = opts.updateAfter ?? 1000;
  const updateEvery = opts.updateEvery ?? 50;
  const utd = opts.updatesPerStep ?? 1;
  const evalEvery = opts.evalEvery ?? 5000;
  const evalEpisodes = opts.evalEpisodes ?? 10;
  const metricsEvery = opts.metricsEvery ?? 1000;
  for (const [k, v] of Object.entries({ steps: opts.steps, updateEvery, evalEpisodes })) {
    if (!Number.isInteger(v) || v < (k === 'steps' ? 0 : 1)) throw new UserError(`trainSacOnline: ${k} must be a positive integer, got ${v}`);
  }
  const O = env.obsDim;
  const A = env.actDim;
  const low = Array.from(env.actionLow);
  const high = Array.from(env.actionHigh);
  const agent = opts.agent ?? SacAgent.create(
    { ...opts.config, actionLow: opts.config?.actionLow ?? low, actionHigh: opts.config?.actionHigh ?? high },
    { obsDim: O, actDim: A },
    Rng.derive(seed, 'sac/agent'),
  );
  opts.onAgent?.(agent);
  const B = agent.config.batchSize;
  const buffer = new ArrowReplayBuffer({ obsDim: O, actDim: A, capacity: opts.bufferSize ?? 1_000_000 });
  const sampleRng = Rng.derive(seed, 'sac/replay');
  const exploreRng = Rng.derive(seed, 'sac/explore');
  const resetRng = Rng.derive(seed, 'sac/reset');
  const evalRng = Rng.derive(seed, 'sac/eval');
  const evalSeeds = Array.from({ length: evalEpisodes }, () => evalRng.nextUint32());
  const step1 = TransitionBatch.allocate({ obsDim: O, actDim: A }, 1);
  const sample = buffer.allocateSample(B);
  const evals: TrainSacOnlineResult['evals'] = [];
  const emit = (e: SacOnlineEvent) => opts.onMetrics?.(e);

  let obs = Float32Array.from(env.reset(resetRng.nextUint32()));
  let epRet = 0;
  let epLen = 0;
  let episodes = 0;
  let evalPending = false;
  const action = new Float32Array(A);

  const runEval = (step: number, e: SacEnv) => {
    const te = performance.now();
    const returns = evaluatePolicy(agent, e, evalSeeds);
    const meanReturn = meanStd(returns).mean;
    evals.push({ step, updates: agent.updates, meanReturn, returns });
    emit({ kind: 'eval', step, updates: agent.updates, meanReturn, returns, seconds: (performance.now() - te) / 1000 });
  };

  for (let t = 0; t < opts.steps; t++) {
    if (opts.signal?.aborted) break;
    if (t % 1000 === 999) await new Promise((r) => setImmediate(r));
    if (t < startSteps) {
      for (let j = 0; j < A; j++) action[j] = exploreRng.uniform(low[j]!, high[j]!);
    } else {
      action.set(agent.act(obs, 1, false));
    }
    const r = env.step(action);
    step1.observation.set(obs);
    step1.action.set(action);
    step1.reward[0] = r.reward;
    for (let j = 0; j < O; j++) step1.nextObservation[j] = r.observation[j]!;
    step1.terminal[0] = r.terminated ? 1 : 0;
    step1.timeout[0] = r.truncated && !r.terminated ? 1 : 0;
    buffer.append(step1);
    epRet += r.reward;
    epLen++;
    obs.set(step1.nextObservation);
    const stepNo = t + 1;
    if (r.terminated || r.truncated) {
      episodes++;
      emit({ kind: 'episode', step: stepNo, episode: episodes, return: epRet, length: epLen });
      if (evalPending) {
        runEval(stepNo, env);
        evalPending = false;
      }
      obs = Float32Array.from(env.reset(resetRng.nextUint32()));
      epRet = 0;
      epLen = 0;
    }
    if (stepNo >= updateAfter && stepNo % updateEvery === 0) {
      const n = updateEvery * utd;
      for (let k = 0; k < n; k++) {
        buffer.sample(B, sampleRng, sample);
        const want = metricsEvery > 0 && (agent.updates + 1) % metricsEvery === 0;
        const m = agent.update(sample, { metrics: want });
        if (m !== null) emit({ kind: 'update', step: stepNo, updates: agent.updates, ...m });
      }
    }
    if (evalEvery > 0 && stepNo % evalEvery === 0) {
      if (opts.evalEnv !== undefined) runEval(stepNo, opts.evalEnv);
      else evalPending = true;
    }
  }
  if (evalPending) runEval(opts.steps, env); // the last training episode did not end: evaluate now
  return { agent, buffer, evals, episodes, updates: agent.updates, seconds: (performance.now() - t0) / 1000 };
}

/** The project's Env as the SacEnv trainSacOnline and evaluatePolicy take. */
export function sacEnvFrom(env: Env): SacEnv {
  return {
    obsDim: env.observationSpec.dim,
    actDim: env.actionSpec.dim,
    actionLow: env.actionSpec.low,
    actionHigh: env.actionSpec.high,
    reset: (seed) => env.reset(seed),
    step: (action) => env.step(action),
  };
}
