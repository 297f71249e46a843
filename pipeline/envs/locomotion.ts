// The MuJoCo locomotion environments, HalfCheetah, Hopper and Walker2d, with Gymnasium v5
// semantics (see /work/shared/reference/ENVS.md), on our own models in data/mujoco/.
//
// One step: ctrl = action (MuJoCo clamps to ctrlrange [-1, 1] internally; the action itself is not
// clipped), then frame_skip mj_step calls; dt = timestep * frame_skip; x_velocity = (qpos[0] after
// - qpos[0] before) / dt; ctrl_cost = w_ctrl * sum(action^2) on the unclipped action.
//   HalfCheetah  obs = qpos[1:] (8) + qvel (9)                 reward = x_vel - 0.1 sum(a^2), never terminates
//   Hopper       obs = qpos[1:] (5) + clip(qvel, -10, 10) (6)  reward = healthy + x_vel - 1e-3 sum(a^2)
//   Walker2d     obs = qpos[1:] (8) + clip(qvel, -10, 10) (9)  reward = healthy + x_vel - 1e-3 sum(a^2)
// healthy is 1 while healthy, else 0 (v5); terminated = not healthy. Episodes are cut at 1000 steps
// (truncated, distinct from terminated; both are true if the 1000th step is also unhealthy, as in
// Gymnasium's TimeLimit). Gymnasium also calls mj_rnePostConstraint after stepping, which only
// fills cacc / cfrc_int / cfrc_ext; none of these models reads them, so we skip it.
//
// Termination from the observation (model rollouts only have observations):
//   Walker2d: z = obs[0], angle = obs[1]: exactly the state rule (0.8 < z < 2, -1 < angle < 1).
//   Hopper:   the state rule is z > 0.7, -0.2 < angle < 0.2 and every value of qpos[2:] and of the
//             UNCLIPPED qvel in (-100, 100). The observation holds z, angle and qpos[2:] exactly
//             (obs[0], obs[1], obs[1..4]) but qvel only clipped to [-10, 10], so on real observations
//             the velocity bound always passes: hopperIsTerminal(obs) differs from the state rule
//             only when some |qvel| >= 100, which the observation cannot show (never seen in random
//             or policy rollouts; NaN velocities stay NaN through the clip and do terminate). On
//             model-predicted observations (not clipped) the (-100, 100) bound is applied to obs[1:].
//   HalfCheetah: never.
// Non-finite values fail every comparison, so NaN observations are terminal for Hopper / Walker2d.

import { Rng } from '../random.js';
import type { BoxSpec, Env, EnvOptions, EnvSpec, EnvState, ObservationBuffer, StepResult } from './env.js';
import { DataViews, loadModel, type MainModule, type MjData, type MjModel, type MujocoEnvName } from './mujoco.js';

export type LocomotionName = MujocoEnvName;

export interface LocomotionSpec extends EnvSpec {
  readonly name: LocomotionName;
  readonly forwardRewardWeight: number;
  readonly ctrlCostWeight: number;
  /** Reward per step while healthy (0 for HalfCheetah, which is always healthy). */
  readonly healthyReward: number;
  /** Observed velocities are clipped to [-velocityClip, velocityClip] (Infinity: no clip). */
  readonly velocityClip: number;
  /** qpos = qpos0 + U(-a, a); qvel = 0 + (uniform: U(-b, b) | normal: b * N(0, 1)). */
  readonly resetNoise: { readonly qpos: number; readonly qvel: number; readonly qvelKind: 'uniform' | 'normal' };
}

function box(dim: number, low: number, high: number): BoxSpec {
  return Object.freeze({ dim, low: Object.freeze(new Array<number>(dim).fill(low)), high: Object.freeze(new Array<number>(dim).fill(high)) });
}

function locomotionSpec(s: Omit<LocomotionSpec, 'observationSpec' | 'actionSpec' | 'maxEpisodeSteps'>): LocomotionSpec {
  return Object.freeze({
    ...s,
    maxEpisodeSteps: 1000,
    observationSpec: box(s.obsDim, -Infinity, Infinity),
    actionSpec: box(s.actDim, -1, 1),
  });
}

export const HALFCHEETAH: LocomotionSpec = locomotionSpec({
  name: 'halfcheetah',
  nq: 9,
  nv: 9,
  obsDim: 17,
  actDim: 6,
  frameSkip: 5,
  dt: 0.05,
  forwardRewardWeight: 1,
  ctrlCostWeight: 0.1,
  healthyReward: 0,
  velocityClip: Infinity,
  resetNoise: { qpos: 0.1, qvel: 0.1, qvelKind: 'normal' },
});

export const HOPPER: LocomotionSpec = locomotionSpec({
  name: 'hopper',
  nq: 6,
  nv: 6,
  obsDim: 11,
  actDim: 3,
  frameSkip: 4,
  dt: 0.008,
  forwardRewardWeight: 1,
  ctrlCostWeight: 1e-3,
  healthyReward: 1,
  velocityClip: 10,
  resetNoise: { qpos: 5e-3, qvel: 5e-3, qvelKind: 'uniform' },
});

export const WALKER2D: LocomotionSpec = locomotionSpec({
  name: 'walker2d',
  nq: 9,
  nv: 9,
  obsDim: 17,
  actDim: 6,
  frameSkip: 4,
  dt: 0.008,
  forwardRewardWeight: 1,
  ctrlCostWeight: 1e-3,
  healthyReward: 1,
  velocityClip: 10,
  resetNoise: { qpos: 5e-3, qvel: 5e-3, qvelKind: 'uniform' },
});

export const LOCOMOTION_SPECS: Readonly<Record<LocomotionName, LocomotionSpec>> = Object.freeze({
  halfcheetah: HALFCHEETAH,
  hopper: HOPPER,
  walker2d: WALKER2D,
});

// ---------------------------------------------------------------------------------------------
// Termination rules. State-based (Gymnasium's own, used by the environments) and
// observation-based (pure, for model rollouts), scalar and batched over n × obsDim rows.

/** Hopper's healthy rule on the state (qpos, unclipped qvel), as Gymnasium v5 computes it. */
export function hopperIsHealthyState(qpos: ArrayLike<number>, qvel: ArrayLike<number>): boolean {
  const z = qpos[1]!;
  const angle = qpos[2]!;
  if (!(z > 0.7 && z < Infinity && angle > -0.2 && angle < 0.2)) return false;
  for (let i = 2; i < qpos.length; i++) {
    const x = qpos[i]!;
    if (!(x > -100 && x < 100)) return false;
  }
  for (let i = 0; i < qvel.length; i++) {
    const x = qvel[i]!;
    if (!(x > -100 && x < 100)) return false;
  }
  return true;
}

/** Walker2d's healthy rule on the state: 0.8 < z < 2 and -1 < angle < 1. */
export function walker2dIsHealthyState(qpos: ArrayLike<number>, _qvel?: ArrayLike<number>): boolean {
  const z = qpos[1]!;
  const angle = qpos[2]!;
  return z > 0.8 && z < 2 && angle > -1 && angle < 1;
}

/** HalfCheetah never terminates. */
export function halfcheetahIsTerminal(_obs: ArrayLike<number>, _offset = 0): boolean {
  return false;
}

/**
 * Hopper termination from an observation [z, angle, thigh, leg, foot, 6 velocities] at `offset`:
 * not (z > 0.7 and -0.2 < angle < 0.2 and every obs[1:] in (-100, 100)). See the header for what the
 * clipped velocities hide.
 */
export function hopperIsTerminal(obs: ArrayLike<number>, offset = 0): boolean {
  const z = obs[offset]!;
  const angle = obs[offset + 1]!;
  if (!(z > 0.7 && z < Infinity && angle > -0.2 && angle < 0.2)) return true;
  for (let i = offset + 1, end = offset + 11; i < end; i++) {
    const x = obs[i]!;
    if (!(x > -100 && x < 100)) return true;
  }
  return false;
}

/** Walker2d termination from an observation [z, angle, ...] at `offset`: not (0.8 < z < 2 and -1 < angle < 1). */
export function walker2dIsTerminal(obs: ArrayLike<number>, offset = 0): boolean {
  const z = obs[offset]!;
  const angle = obs[offset + 1]!;
  return !(z > 0.8 && z < 2 && angle > -1 && angle < 1);
}

type ObsRows = Float32Array | Float64Array;

function batchRows(fn: string, obs: ObsRows, obsDim: number, out: Uint8Array | undefined): { n: number; out: Uint8Array } {
  if (obs.length % obsDim !== 0) throw new RangeError(`${fn}: ${obs.length} values is not a whole number of ${obsDim}-wide observations`);
  const n = obs.length / obsDim;
  if (out === undefined) out = new Uint8Array(n);
  else if (out.length < n) throw new RangeError(`${fn}: out holds ${out.length} flags, need ${n}`);
  return { n, out };
}

/** 1 where the row is terminal, over n × 17 observations (all 0: HalfCheetah never terminates). */
export function halfcheetahIsTerminalBatch(obs: ObsRows, out?: Uint8Array): Uint8Array {
  const r = batchRows('halfcheetahIsTerminalBatch', obs, 17, out);
  r.out.fill(0, 0, r.n);
  return r.out;
}

/** hopperIsTerminal over n × 11 observations: 1 where terminal. */
export function hopperIsTerminalBatch(obs: ObsRows, out?: Uint8Array): Uint8Array {
  const r = batchRows('hopperIsTerminalBatch', obs, 11, out);
  for (let i = 0; i < r.n; i++) r.out[i] = hopperIsTerminal(obs, i * 11) ? 1 : 0;
  return r.out;
}

/** walker2dIsTerminal over n × 17 observations: 1 where terminal. */
export function walker2dIsTerminalBatch(obs: ObsRows, out?: Uint8Array): Uint8Array {
  const r = batchRows('walker2dIsTerminalBatch', obs, 17, out);
  for (let i = 0; i < r.n; i++) r.out[i] = walker2dIsTerminal(obs, i * 17) ? 1 : 0;
  return r.out;
}

const OBS_TERMINAL: Readonly<Record<LocomotionName, (obs: ArrayLike<number>, offset?: number) => boolean>> = {
  halfcheetah: halfcheetahIsTerminal,
  hopper: hopperIsTerminal,
  walker2d: walker2dIsTerminal,
};

// ---------------------------------------------------------------------------------------------

const HEALTH_ALWAYS = 0;
const HEALTH_HOPPER = 1;
const HEALTH_WALKER = 2;

/**
 * A MuJoCo locomotion environment: one MjData on the shared compiled model. Observations are
 * Float64Array (MuJoCo's own precision; the fidelity check needs ~1e-6 on velocities of tens).
 */
export class LocomotionEnv implements Env {
  readonly name: LocomotionName;
  readonly spec: LocomotionSpec;
  readonly observationSpec: BoxSpec;
  readonly actionSpec: BoxSpec;
  readonly maxEpisodeSteps: number;
  /** timestep * frameSkip, computed from the compiled model exactly as Gymnasium does. */
  readonly dt: number;

  private readonly mj: MainModule;
  private readonly model: MjModel;
  private data: MjData | null;
  private readonly views: DataViews;
  private readonly qpos0: Float64Array;
  private readonly nq: number;
  private readonly nv: number;
  private readonly nu: number;
  private readonly obsDim: number;
  private readonly frameSkip: number;
  private readonly health: number;
  private readonly clip: number;
  private readonly throwAfterDone: boolean;
  private rng: Rng;

  private started = false;
  private done = false;
  private elapsed = 0;
  private lastTerminated = false;
  private lastTruncated = false;

  constructor(mujoco: MainModule, model: MjModel, spec: LocomotionSpec, opts: EnvOptions = {}) {
    if (model.nq !== spec.nq || model.nv !== spec.nv || model.nu !== spec.actDim) {
      throw new Error(`${spec.name}: model has nq=${model.nq} nv=${model.nv} nu=${model.nu}, expected ${spec.nq}/${spec.nv}/${spec.actDim}`);
    }
    this.name = spec.name;
    this.spec = spec;
    this.observationSpec = spec.observationSpec;
    this.actionSpec = spec.actionSpec;
    this.maxEpisodeSteps = opts.maxEpisodeSteps ?? spec.maxEpisodeSteps;
    this.throwAfterDone = (opts.stepAfterDone ?? 'throw') === 'throw';
    this.mj = mujoco;
    this.model = model;
    this.data = new mujoco.MjData(model);
    this.views = new DataViews(this.data);
    this.qpos0 = Float64Array.from(model.qpos0 as Float64Array);
    this.nq = spec.nq;
    this.nv = spec.nv;
    this.nu = spec.actDim;
    this.obsDim = spec.obsDim;
    this.frameSkip = spec.frameSkip;
    this.dt = model.opt.timestep * spec.frameSkip;
    this.health = spec.name === 'hopper' ? HEALTH_HOPPER : spec.name === 'walker2d' ? HEALTH_WALKER : HEALTH_ALWAYS;
    this.clip = spec.velocityClip;
    this.rng = new Rng(0, `env/${spec.name}/reset`);
  }

  get elapsedSteps(): number {
    return this.elapsed;
  }
  get terminated(): boolean {
    return this.lastTerminated;
  }
  get truncated(): boolean {
    return this.lastTruncated;
  }

  /**
   * Start an episode: mj_resetData, then qpos0 + noise and noise velocities (ENVS.md), mj_forward.
   * With a seed the noise stream restarts from it; without, it continues (seed 0 if never seeded).
   */
  reset(seed?: number): Float64Array {
    const data = this.live();
    if (seed !== undefined) this.rng = new Rng(seed, `env/${this.name}/reset`);
    this.mj.mj_resetData(this.model, data);
    const v = this.views;
    v.refreshIfDetached();
    const rng = this.rng;
    const { qpos: a, qvel: b, qvelKind } = this.spec.resetNoise;
    for (let i = 0; i < this.nq; i++) v.qpos[i] = this.qpos0[i]! + rng.uniform(-a, a);
    if (qvelKind === 'normal') for (let i = 0; i < this.nv; i++) v.qvel[i] = b * rng.normal();
    else for (let i = 0; i < this.nv; i++) v.qvel[i] = rng.uniform(-b, b);
    return this.beginEpisode();
  }

  /**
   * Set the simulator to (qpos, qvel) and start an episode there: mj_resetData (so nothing of the
   * previous history, e.g. the solver's warm start, leaks in), write the state, mj_forward. The
   * result depends on (qpos, qvel) only. Returns the observation of that state.
   */
  setState(qpos: ArrayLike<number>, qvel: ArrayLike<number>): Float64Array {
    if (qpos.length !== this.nq || qvel.length !== this.nv) {
      throw new RangeError(`${this.name}.setState: expected qpos of ${this.nq} and qvel of ${this.nv} values, got ${qpos.length} and ${qvel.length}`);
    }
    const data = this.live();
    this.mj.mj_resetData(this.model, data);
    const v = this.views;
    v.refreshIfDetached();
    for (let i = 0; i < this.nq; i++) v.qpos[i] = qpos[i]!;
    for (let i = 0; i < this.nv; i++) v.qvel[i] = qvel[i]!;
    return this.beginEpisode();
  }

  private beginEpisode(): Float64Array {
    this.mj.mj_forward(this.model, this.data!);
    this.started = true;
    this.done = false;
    this.elapsed = 0;
    this.lastTerminated = false;
    this.lastTruncated = false;
    const obs = new Float64Array(this.obsDim);
    this.observeInto(obs, 0);
    return obs;
  }

  /** Copies of the current qpos and qvel. */
  getState(): EnvState {
    this.live();
    const v = this.views;
    v.refreshIfDetached();
    return { qpos: Float64Array.from(v.qpos), qvel: Float64Array.from(v.qvel) };
  }

  /** Write the current observation into out[offset .. offset + obsDim). */
  observeInto(out: ObservationBuffer, offset: number): void {
    const v = this.views;
    v.refreshIfDetached();
    const qpos = v.qpos;
    const qvel = v.qvel;
    let o = offset;
    for (let i = 1; i < this.nq; i++) out[o++] = qpos[i]!;
    const c = this.clip;
    if (c === Infinity) {
      for (let i = 0; i < this.nv; i++) out[o++] = qvel[i]!;
    } else {
      for (let i = 0; i < this.nv; i++) {
        const x = qvel[i]!;
        out[o++] = x < -c ? -c : x > c ? c : x;
      }
    }
  }

  step(action: ArrayLike<number>): StepResult {
    const observation = new Float64Array(this.obsDim);
    const reward = this.stepInto(action, 0, observation, 0);
    return { observation, reward, terminated: this.lastTerminated, truncated: this.lastTruncated };
  }

  /**
   * The allocation-free step: reads actDim values of `action` from `actionOffset`, writes the next
   * observation into `out` at `outOffset` and returns the reward; this step's terminated /
   * truncated are then in `env.terminated` / `env.truncated`.
   */
  stepInto(action: ArrayLike<number>, actionOffset: number, out: ObservationBuffer, outOffset: number): number {
    if (!this.started) throw new Error(`${this.name}: step() before reset() (or setState())`);
    if (this.done && this.throwAfterDone) throw new Error(`${this.name}: step() after the episode ended (terminated or truncated); call reset()`);
    if (action.length - actionOffset < this.nu) throw new RangeError(`${this.name}: action needs ${this.nu} values, got ${action.length - actionOffset}`);
    const data = this.data!;
    const v = this.views;
    v.refreshIfDetached();
    const ctrl = v.ctrl;
    let sumSq = 0;
    for (let i = 0; i < this.nu; i++) {
      const a = +action[actionOffset + i]!;
      if (a - a !== 0) throw new RangeError(`${this.name}: action[${i}] is ${a}; actions must be finite`);
      ctrl[i] = a;
      sumSq += a * a;
    }
    const xBefore = v.qpos[0]!;
    const mj = this.mj;
    const model = this.model;
    for (let k = 0; k < this.frameSkip; k++) mj.mj_step(model, data);
    v.refreshIfDetached();
    const qpos = v.qpos;
    const xVelocity = (qpos[0]! - xBefore) / this.dt;
    const ctrlCost = this.spec.ctrlCostWeight * sumSq;
    const forward = this.spec.forwardRewardWeight * xVelocity;
    let reward: number;
    let terminated = false;
    if (this.health === HEALTH_ALWAYS) {
      reward = forward - ctrlCost;
    } else {
      const healthy = this.health === HEALTH_HOPPER ? hopperIsHealthyState(qpos, v.qvel) : walker2dIsHealthyState(qpos);
      reward = forward + (healthy ? this.spec.healthyReward : 0) - ctrlCost;
      terminated = !healthy;
    }
    this.observeInto(out, outOffset);
    this.elapsed++;
    this.lastTerminated = terminated;
    this.lastTruncated = this.elapsed >= this.maxEpisodeSteps;
    this.done = terminated || this.lastTruncated;
    return reward;
  }

  /** The observation-based termination rule of this environment (pure; see the file header). */
  isTerminal(obs: ArrayLike<number>, offset = 0): boolean {
    return OBS_TERMINAL[this.name](obs, offset);
  }

  /** Free the MjData (the compiled model stays cached for other environments). */
  close(): void {
    if (this.data) {
      this.data.delete();
      this.data = null;
    }
    this.started = false;
  }

  private live(): MjData {
    if (!this.data) throw new Error(`${this.name}: environment is closed`);
    return this.data;
  }
}

/** A new environment on our compiled model (the wasm module and model are loaded once per process). */
export async function makeLocomotionEnv(name: LocomotionName, opts: EnvOptions = {}): Promise<LocomotionEnv> {
  const { mujoco, model } = await loadModel(name);
  return new LocomotionEnv(mujoco, model, LOCOMOTION_SPECS[name], opts);
}
