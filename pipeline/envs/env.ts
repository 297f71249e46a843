// One environment interface for the MuJoCo locomotion tasks and the pendulum, a registry, a
// vectorized form with auto-reset, the pure termination rules, and the D4RL normalized score.
//
//   const env = await makeEnv('hopper');            // 'halfcheetah' | 'hopper' | 'walker2d' | 'pendulum'
//   let obs = env.reset(seed);                      // Float64Array(obsDim)
//   const { observation, reward, terminated, truncated } = env.step(action);
//   env.setState(qpos, qvel); env.getState();       // "set MuJoCo to the state, apply the action"
//
//   const vec = await makeVectorEnv('halfcheetah', 8, { seed: 1 });   // N copies, auto-reset
//   const r = vec.step(actions);                    // Float32Array n × obsDim, reward, flags
//
// Conventions
//   * Observations of a single environment are Float64Array: MuJoCo computes in double, and the
//     fidelity check compares to ~1e-6 values that reach tens (velocities), beyond float32. The
//     vector form returns Float32Array rows, the dtype of datasets and networks.
//   * step() returns a fresh observation every call (safe to keep). stepInto() is the
//     allocation-free path (writes into a caller's buffer, flags in env.terminated / truncated).
//   * terminated (the task's own end: a fall) and truncated (the time limit: 1000 steps for the
//     locomotion tasks, 200 for the pendulum) are separate flags; both are true when the last
//     allowed step is also a fall (Gymnasium's TimeLimit does the same).
//   * Stepping an environment whose episode ended throws (a bug in the caller) unless it was made
//     with { stepAfterDone: 'allow' }: then it keeps going like a raw Gymnasium env, each step still
//     reporting its own terminated flag (used by the trajectory check).
//   * reset(seed) draws the reset noise of ENVS.md from Rng(seed, 'env/<name>/reset'); reset()
//     without a seed continues the stream (an env that was never seeded uses seed 0).

import { UserError } from '../errors.js';
import { hashString } from '../random.js';
import {
  HALFCHEETAH,
  HOPPER,
  WALKER2D,
  halfcheetahIsTerminal,
  halfcheetahIsTerminalBatch,
  hopperIsTerminal,
  hopperIsTerminalBatch,
  makeLocomotionEnv,
  walker2dIsTerminal,
  walker2dIsTerminalBatch,
} from './locomotion.js';
import { PENDULUM_SPEC, PendulumEnv, pendulumIsTerminal, pendulumIsTerminalBatch } from './pendulum.js';

export type EnvName = 'halfcheetah' | 'hopper' | 'walker2d' | 'pendulum';
export const ENV_NAMES: readonly EnvName[] = Object.freeze(['halfcheetah', 'hopper', 'walker2d', 'pendulum'] as EnvName[]);

/** A box: `dim` values, each within [low[i], high[i]] (±Infinity where unbounded). */
export interface BoxSpec {
  readonly dim: number;
  readonly low: readonly number[];
  readonly high: readonly number[];
}

/** What is known about an environment without loading MuJoCo. */
export interface EnvSpec {
  readonly name: EnvName;
  readonly obsDim: number;
  readonly actDim: number;
  /** Sizes of the physical state (setState / getState): generalized positions and velocities. */
  readonly nq: number;
  readonly nv: number;
  /** Simulator steps per environment step (1 for the pendulum). */
  readonly frameSkip: number;
  /** Seconds of simulated time per step. */
  readonly dt: number;
  /** Default time limit (truncation). */
  readonly maxEpisodeSteps: number;
  readonly observationSpec: BoxSpec;
  readonly actionSpec: BoxSpec;
}

export type ObservationBuffer = Float32Array | Float64Array;

export interface StepResult {
  observation: Float64Array;
  reward: number;
  terminated: boolean;
  truncated: boolean;
}

/** Physical state: generalized positions and velocities (pendulum: [θ] and [θ̇]). */
export interface EnvState {
  qpos: Float64Array;
  qvel: Float64Array;
}

export interface EnvOptions {
  /** Time limit in steps (default: the environment's, 1000 or 200); Infinity disables it. */
  maxEpisodeSteps?: number;
  /** What step() does after the episode ended: 'throw' (default) or 'allow' (keep simulating). */
  stepAfterDone?: 'throw' | 'allow';
}

export interface Env {
  readonly name: EnvName;
  readonly spec: EnvSpec;
  readonly observationSpec: BoxSpec;
  readonly actionSpec: BoxSpec;
  readonly maxEpisodeSteps: number;
  readonly dt: number;
  /** Steps taken since the last reset / setState. */
  readonly elapsedSteps: number;
  /** Flags of the last step. */
  readonly terminated: boolean;
  readonly truncated: boolean;
  /** Start an episode; returns its first observation. */
  reset(seed?: number): Float64Array;
  step(action: ArrayLike<number>): StepResult;
  /** Allocation-free step: observation into out[outOffset..], returns the reward. */
  stepInto(action: ArrayLike<number>, actionOffset: number, out: ObservationBuffer, outOffset: number): number;
  /** The current observation into out[offset..]. */
  observeInto(out: ObservationBuffer, offset: number): void;
  getState(): EnvState;
  /** Set the physical state and start an episode there; returns its observation. */
  setState(qpos: ArrayLike<number>, qvel: ArrayLike<number>): Float64Array;
  /** This environment's termination rule on an observation (pure). */
  isTerminal(obs: ArrayLike<number>, offset?: number): boolean;
  close(): void;
}

export const ENV_SPECS: Readonly<Record<EnvName, EnvSpec>> = Object.freeze({
  halfcheetah: HALFCHEETAH,
  hopper: HOPPER,
  walker2d: WALKER2D,
  pendulum: PENDULUM_SPEC,
});

function checkName(name: string, what = 'environment'): EnvName {
  if ((ENV_NAMES as readonly string[]).includes(name)) return name as EnvName;
  throw new UserError(`unknown ${what} '${name}': expected one of ${ENV_NAMES.join(', ')}.`);
}

export function isEnvName(name: string): name is EnvName {
  return (ENV_NAMES as readonly string[]).includes(name);
}

/** Dimensions, bounds and limits of an environment (no MuJoCo needed). Unknown name: UserError. */
export function envSpec(name: string): EnvSpec {
  return ENV_SPECS[checkName(name)];
}

/** A new environment. Unknown name: UserError listing the names. */
export async function makeEnv(name: string, opts: EnvOptions = {}): Promise<Env> {
  const n = checkName(name);
  if (n === 'pendulum') return new PendulumEnv(opts);
  return makeLocomotionEnv(n, opts);
}

// ---------------------------------------------------------------------------------------------
// Termination rules on observations (pure; see locomotion.ts for what each is and what the
// observation can and cannot show).

export interface TerminationFn {
  /** Terminal test of one observation at `offset`. */
  isTerminal(obs: ArrayLike<number>, offset?: number): boolean;
  /** 1 where terminal, over a flat n × obsDim array (into `out` when given). */
  isTerminalBatch(obs: Float32Array | Float64Array, out?: Uint8Array): Uint8Array;
}

const TERMINATION: Readonly<Record<EnvName, TerminationFn>> = Object.freeze({
  halfcheetah: { isTerminal: halfcheetahIsTerminal, isTerminalBatch: halfcheetahIsTerminalBatch },
  hopper: { isTerminal: hopperIsTerminal, isTerminalBatch: hopperIsTerminalBatch },
  walker2d: { isTerminal: walker2dIsTerminal, isTerminalBatch: walker2dIsTerminalBatch },
  pendulum: { isTerminal: pendulumIsTerminal, isTerminalBatch: pendulumIsTerminalBatch },
});

export function terminationFn(name: string): TerminationFn {
  return TERMINATION[checkName(name)];
}

// ---------------------------------------------------------------------------------------------
// Vectorized form.

export interface VectorStepResult {
  /** n × obsDim: the observation to act on next (the new episode's first one where an episode ended). */
  observation: Float32Array;
  /** n × obsDim: this step's true successor observation, before any auto-reset. */
  nextObservation: Float32Array;
  reward: Float32Array;
  terminated: Uint8Array;
  truncated: Uint8Array;
  /** Return and length of the episode so far; where an episode ended, of the finished episode. */
  episodeReturn: Float64Array;
  episodeLength: Uint32Array;
}

/** Per-copy seed of a vector reset: distinct for every (seed, index) pair. */
export function vectorSeed(seed: number, index: number): number {
  return hashString(`${seed >>> 0}/${index}`);
}

/**
 * N copies of one environment stepped together, with auto-reset: where a step ends an episode
 * (terminated or truncated), `nextObservation` holds its last observation and `observation` the
 * first of the next episode. The result's buffers belong to the VectorEnv and are overwritten by
 * the next step() / reset(): copy what you keep. Stepping allocates nothing.
 */
export class VectorEnv {
  readonly name: EnvName;
  readonly n: number;
  readonly obsDim: number;
  readonly actDim: number;
  readonly spec: EnvSpec;
  readonly envs: readonly Env[];
  private readonly result: VectorStepResult;
  private readonly returns: Float64Array;
  private readonly lengths: Uint32Array;
  private started = false;

  constructor(envs: Env[]) {
    if (envs.length === 0) throw new RangeError('VectorEnv: needs at least one environment');
    const first = envs[0]!;
    for (const e of envs) if (e.name !== first.name) throw new RangeError(`VectorEnv: mixed environments ${first.name} and ${e.name}`);
    this.envs = envs;
    this.name = first.name;
    this.spec = first.spec;
    this.n = envs.length;
    this.obsDim = first.observationSpec.dim;
    this.actDim = first.actionSpec.dim;
    this.returns = new Float64Array(this.n);
    this.lengths = new Uint32Array(this.n);
    this.result = {
      observation: new Float32Array(this.n * this.obsDim),
      nextObservation: new Float32Array(this.n * this.obsDim),
      reward: new Float32Array(this.n),
      terminated: new Uint8Array(this.n),
      truncated: new Uint8Array(this.n),
      episodeReturn: new Float64Array(this.n),
      episodeLength: new Uint32Array(this.n),
    };
  }

  /** Reset every copy (copy i from vectorSeed(seed, i)); returns the n × obsDim observations (owned buffer). */
  reset(seed?: number): Float32Array {
    const obs = this.result.observation;
    for (let i = 0; i < this.n; i++) {
      const env = this.envs[i]!;
      env.reset(seed === undefined ? undefined : vectorSeed(seed, i));
      env.observeInto(obs, i * this.obsDim);
      this.returns[i] = 0;
      this.lengths[i] = 0;
    }
    this.started = true;
    return obs;
  }

  /** Step every copy with its actDim actions (row i of `actions`, n × actDim). */
  step(actions: ArrayLike<number>): VectorStepResult {
    if (!this.started) throw new Error('VectorEnv: step() before reset()');
    if (actions.length !== this.n * this.actDim) throw new RangeError(`VectorEnv: expected ${this.n} × ${this.actDim} = ${this.n * this.actDim} actions, got ${actions.length}`);
    const r = this.result;
    const d = this.obsDim;
    for (let i = 0; i < this.n; i++) {
      const env = this.envs[i]!;
      const reward = env.stepInto(actions, i * this.actDim, r.nextObservation, i * d);
      const term = env.terminated;
      const trunc = env.truncated;
      r.reward[i] = reward;
      r.terminated[i] = term ? 1 : 0;
      r.truncated[i] = trunc ? 1 : 0;
      this.returns[i] += reward;
      this.lengths[i]++;
      r.episodeReturn[i] = this.returns[i]!;
      r.episodeLength[i] = this.lengths[i]!;
      if (term || trunc) {
        env.reset();
        env.observeInto(r.observation, i * d);
        this.returns[i] = 0;
        this.lengths[i] = 0;
      } else {
        const obs = r.observation;
        const next = r.nextObservation;
        for (let k = i * d, end = k + d; k < end; k++) obs[k] = next[k]!;
      }
    }
    return r;
  }

  /** The current n × obsDim observations (owned buffer). */
  get observation(): Float32Array {
    return this.result.observation;
  }

  close(): void {
    for (const e of this.envs) e.close();
    this.started = false;
  }
}

/** N copies of an environment (one compiled model, N simulation states), reset from `seed` when given. */
export async function makeVectorEnv(name: string, n: number, opts: EnvOptions & { seed?: number } = {}): Promise<VectorEnv> {
  const envName = checkName(name);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`the number of environment copies must be a positive integer, got ${n}.`);
  const envs: Env[] = [];
  for (let i = 0; i < n; i++) envs.push(await makeEnv(envName, opts));
  const vec = new VectorEnv(envs);
  if (opts.seed !== undefined) vec.reset(opts.seed);
  return vec;
}

// ---------------------------------------------------------------------------------------------
// D4RL normalized score.

/** The reference returns D4RL normalizes with (ENVS.md). */
export const D4RL_REFERENCE_RETURNS: Readonly<Record<'halfcheetah' | 'hopper' | 'walker2d', { random: number; expert: number }>> = Object.freeze({
  halfcheetah: Object.freeze({ random: -280.178953, expert: 12135.0 }),
  hopper: Object.freeze({ random: -20.272305, expert: 3234.3 }),
  walker2d: Object.freeze({ random: 1.629008, expert: 4592.3 }),
});

/** 100 * (return - random) / (expert - random): 0 at the random policy, 100 at the expert. */
export function d4rlScore(env: string | { name: string }, episodeReturn: number): number {
  const name = checkName(typeof env === 'string' ? env : env.name);
  if (name === 'pendulum') {
    throw new UserError(`D4RL has no reference returns for pendulum; normalized scores exist for ${Object.keys(D4RL_REFERENCE_RETURNS).join(', ')}.`);
  }
  const ref = D4RL_REFERENCE_RETURNS[name];
  return (100 * (episodeReturn - ref.random)) / (ref.expert - ref.random);
}

// ---------------------------------------------------------------------------------------------
// Observation → physical state, to put the simulator where a dataset row was ("set MuJoCo to the
// state, apply the action"): the model diagnostics compare the ensemble with the real dynamics.

export interface StateFromObservation extends EnvState {
  /**
   * False when the observation cannot pin the state down: Hopper and Walker2d observe velocities
   * clipped to ±10, so a row at the clip bound hides the true velocity.
   */
  exact: boolean;
}

/**
 * The state whose observation is obs[offset..]. Locomotion: obs = qpos[1:] ++ qvel, and qpos[0]
 * (the x position) is not observed; it is set to 0, which changes neither the dynamics nor the
 * reward (the reward uses the x velocity, a difference). Pendulum: θ = atan2(sin θ, cos θ).
 */
export function stateFromObservation(name: string, obs: ArrayLike<number>, offset = 0): StateFromObservation {
  const n = checkName(name);
  if (n === 'pendulum') {
    return { qpos: Float64Array.of(Math.atan2(obs[offset + 1]!, obs[offset]!)), qvel: Float64Array.of(obs[offset + 2]!), exact: true };
  }
  const spec = { halfcheetah: HALFCHEETAH, hopper: HOPPER, walker2d: WALKER2D }[n];
  const qpos = new Float64Array(spec.nq);
  const qvel = new Float64Array(spec.nv);
  for (let i = 1; i < spec.nq; i++) qpos[i] = obs[offset + i - 1]!;
  let exact = true;
  for (let i = 0; i < spec.nv; i++) {
    const v = obs[offset + spec.nq - 1 + i]!;
    qvel[i] = v;
    if (Math.abs(v) >= spec.velocityClip) exact = false;
  }
  return { qpos, qvel, exact };
}
