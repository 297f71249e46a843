// The classic pendulum swing-up (Gymnasium Pendulum-v1 dynamics) in plain TypeScript: a fast,
// dependency-free environment for tests and for the built-in default dataset.
//
// The low-level functions (PENDULUM, pendulumStep, pendulumObserve) drive the default dataset;
// PendulumEnv wraps them in the common environment interface of ./env.ts: observation
// [cos θ, sin θ, θ̇] as Float64Array, action [torque] in [-2, 2] (clipped), reward
// -(θ² + 0.1 θ̇² + 0.001 u²) with θ normalized to [-π, π), never terminates, truncated after 200
// steps. reset draws θ ~ U(-π, π), θ̇ ~ U(-1, 1) (Gymnasium's reset). Its state is qpos = [θ],
// qvel = [θ̇], so getState / setState look like the MuJoCo environments'.

import { Rng } from '../random.js';
import type { BoxSpec, Env, EnvOptions, EnvSpec, EnvState, ObservationBuffer, StepResult } from './env.js';

export const PENDULUM = {
  name: 'pendulum',
  obsDim: 3,
  actDim: 1,
  maxSpeed: 8,
  maxTorque: 2,
  dt: 0.05,
  g: 10,
  m: 1,
  l: 1,
  timeLimit: 200,
} as const;

export interface PendulumState {
  theta: number;
  thetaDot: number;
}

function angleNormalize(x: number): number {
  return ((((x + Math.PI) % (2 * Math.PI)) + 2 * Math.PI) % (2 * Math.PI)) - Math.PI;
}

/** Observation [cos θ, sin θ, θ̇] written into `out` at `offset`. */
export function pendulumObserve(s: PendulumState, out: Float32Array | Float64Array, offset = 0): void {
  out[offset] = Math.cos(s.theta);
  out[offset + 1] = Math.sin(s.theta);
  out[offset + 2] = s.thetaDot;
}

/** One step: returns the reward and advances the state in place. The pendulum never terminates. */
export function pendulumStep(s: PendulumState, action: number): number {
  const { g, m, l, dt, maxSpeed, maxTorque } = PENDULUM;
  const u = Math.min(maxTorque, Math.max(-maxTorque, action));
  const th = s.theta;
  const thdot = s.thetaDot;
  const cost = angleNormalize(th) ** 2 + 0.1 * thdot * thdot + 0.001 * u * u;
  let newThdot = thdot + ((3 * g) / (2 * l) * Math.sin(th) + (3 / (m * l * l)) * u) * dt;
  newThdot = Math.min(maxSpeed, Math.max(-maxSpeed, newThdot));
  s.theta = th + newThdot * dt;
  s.thetaDot = newThdot;
  return -cost;
}

/** The pendulum as an environment spec (bounds as in Gymnasium's Pendulum-v1). */
export const PENDULUM_SPEC: EnvSpec = Object.freeze({
  name: 'pendulum',
  obsDim: PENDULUM.obsDim,
  actDim: PENDULUM.actDim,
  nq: 1,
  nv: 1,
  frameSkip: 1,
  dt: PENDULUM.dt,
  maxEpisodeSteps: PENDULUM.timeLimit,
  observationSpec: Object.freeze({ dim: 3, low: Object.freeze([-1, -1, -PENDULUM.maxSpeed]), high: Object.freeze([1, 1, PENDULUM.maxSpeed]) }),
  actionSpec: Object.freeze({ dim: 1, low: Object.freeze([-PENDULUM.maxTorque]), high: Object.freeze([PENDULUM.maxTorque]) }),
});

/** The pendulum never terminates (episodes end by the time limit only). */
export function pendulumIsTerminal(_obs: ArrayLike<number>, _offset = 0): boolean {
  return false;
}

/** pendulumIsTerminal over n × 3 observations: all 0. */
export function pendulumIsTerminalBatch(obs: Float32Array | Float64Array, out?: Uint8Array): Uint8Array {
  if (obs.length % 3 !== 0) throw new RangeError(`pendulumIsTerminalBatch: ${obs.length} values is not a whole number of 3-wide observations`);
  const n = obs.length / 3;
  if (out === undefined) return new Uint8Array(n);
  if (out.length < n) throw new RangeError(`pendulumIsTerminalBatch: out holds ${out.length} flags, need ${n}`);
  out.fill(0, 0, n);
  return out;
}

/** Pendulum-v1 through the common interface (see the file header). */
export class PendulumEnv implements Env {
  readonly name = 'pendulum' as const;
  readonly spec: EnvSpec = PENDULUM_SPEC;
  readonly observationSpec: BoxSpec = PENDULUM_SPEC.observationSpec;
  readonly actionSpec: BoxSpec = PENDULUM_SPEC.actionSpec;
  readonly maxEpisodeSteps: number;
  readonly dt = PENDULUM.dt;

  private readonly state: PendulumState = { theta: 0, thetaDot: 0 };
  private readonly throwAfterDone: boolean;
  private rng = new Rng(0, 'env/pendulum/reset');
  private started = false;
  private done = false;
  private elapsed = 0;
  private lastTruncated = false;

  constructor(opts: EnvOptions = {}) {
    this.maxEpisodeSteps = opts.maxEpisodeSteps ?? PENDULUM.timeLimit;
    this.throwAfterDone = (opts.stepAfterDone ?? 'throw') === 'throw';
  }

  get elapsedSteps(): number {
    return this.elapsed;
  }
  get terminated(): boolean {
    return false;
  }
  get truncated(): boolean {
    return this.lastTruncated;
  }

  /** θ ~ U(-π, π), θ̇ ~ U(-1, 1); a seed restarts the stream, no seed continues it (seed 0 if never seeded). */
  reset(seed?: number): Float64Array {
    if (seed !== undefined) this.rng = new Rng(seed, 'env/pendulum/reset');
    this.state.theta = this.rng.uniform(-Math.PI, Math.PI);
    this.state.thetaDot = this.rng.uniform(-1, 1);
    return this.begin();
  }

  /** Set θ = qpos[0], θ̇ = qvel[0] and start an episode there. */
  setState(qpos: ArrayLike<number>, qvel: ArrayLike<number>): Float64Array {
    if (qpos.length !== 1 || qvel.length !== 1) throw new RangeError(`pendulum.setState: expected qpos and qvel of 1 value each, got ${qpos.length} and ${qvel.length}`);
    this.state.theta = qpos[0]!;
    this.state.thetaDot = qvel[0]!;
    return this.begin();
  }

  private begin(): Float64Array {
    this.started = true;
    this.done = false;
    this.elapsed = 0;
    this.lastTruncated = false;
    const obs = new Float64Array(3);
    pendulumObserve(this.state, obs, 0);
    return obs;
  }

  getState(): EnvState {
    return { qpos: Float64Array.of(this.state.theta), qvel: Float64Array.of(this.state.thetaDot) };
  }

  observeInto(out: ObservationBuffer, offset: number): void {
    pendulumObserve(this.state, out, offset);
  }

  step(action: ArrayLike<number>): StepResult {
    const observation = new Float64Array(3);
    const reward = this.stepInto(action, 0, observation, 0);
    return { observation, reward, terminated: false, truncated: this.lastTruncated };
  }

  stepInto(action: ArrayLike<number>, actionOffset: number, out: ObservationBuffer, outOffset: number): number {
    if (!this.started) throw new Error('pendulum: step() before reset() (or setState())');
    if (this.done && this.throwAfterDone) throw new Error('pendulum: step() after the episode ended (truncated); call reset()');
    if (action.length - actionOffset < 1) throw new RangeError('pendulum: action needs 1 value, got 0');
    const a = +action[actionOffset]!;
    if (a - a !== 0) throw new RangeError(`pendulum: action[0] is ${a}; actions must be finite`);
    const reward = pendulumStep(this.state, a);
    pendulumObserve(this.state, out, outOffset);
    this.elapsed++;
    this.lastTruncated = this.elapsed >= this.maxEpisodeSteps;
    this.done = this.lastTruncated;
    return reward;
  }

  isTerminal(obs: ArrayLike<number>, offset = 0): boolean {
    return pendulumIsTerminal(obs, offset);
  }

  close(): void {
    this.started = false;
  }
}
