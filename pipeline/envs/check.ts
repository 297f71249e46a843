// Trajectory fidelity check: replay a reference trajectory (start state + actions, with the
// observation, reward and termination recorded after each step by MuJoCo 3.3.8, the reference
// model and Gymnasium v5 semantics) on our environment and measure how far we are.
//
//   checkTrajectory(path) -> { env, steps, maxObsError, maxRewardError, terminationsMatch, ok, ... }
//
// The file format (the shared reference trajectories):
//   { "env": "hopper", "frameSkip"?: 4, "dt"?: 0.008, "initialQpos": [...nq], "initialQvel": [...nv],
//     "initialObservation"?: [...obsDim],
//     "steps": [ { "action": [...actDim], "observation": [...obsDim], "reward": r, "terminated": bool }, ... ] }
// The environment is set to (initialQpos, initialQvel) with setState (a fresh MuJoCo state, like
// Gymnasium right after reset) and stepped with the actions, without time limit and through
// terminations (a raw Gymnasium env keeps stepping too), comparing every step. Errors are absolute
// maxima over all steps and dimensions (the initial observation included when the file has one);
// a non-finite value of ours counts as an infinite error. ok = both maxima <= TRAJECTORY_TOLERANCE
// and every terminated flag equal. A `truncated` field in a step is ignored (time limits are not
// part of the physics).

import { readFile } from 'node:fs/promises';
import { UserError } from '../errors.js';
import { ENV_NAMES, envSpec, isEnvName, makeEnv, type EnvName } from './env.js';

export const TRAJECTORY_TOLERANCE = 1e-6;

export interface TrajectoryCheckResult {
  env: EnvName;
  /** Steps replayed. */
  steps: number;
  maxObsError: number;
  maxRewardError: number;
  terminationsMatch: boolean;
  /** maxObsError and maxRewardError within TRAJECTORY_TOLERANCE and terminations matching. */
  ok: boolean;
  tolerance: number;
  /** Step index (0-based) of the largest observation error, -1 for the initial observation. */
  worstObsStep: number;
  /** First step whose terminated flag differs, or null. */
  firstTerminationMismatch: number | null;
}

export interface ReferenceStep {
  action: number[];
  observation: number[];
  reward: number;
  terminated: boolean;
}

export interface ReferenceTrajectory {
  env: EnvName;
  frameSkip?: number;
  dt?: number;
  initialQpos: number[];
  initialQvel: number[];
  initialObservation?: number[];
  steps: ReferenceStep[];
}

const FORMAT =
  'expected the reference trajectory format { "env", "initialQpos": [...], "initialQvel": [...], ' +
  '"steps": [{ "action": [...], "observation": [...], "reward": number, "terminated": boolean }, ...] }';

/** 'hopper', 'Hopper', 'Hopper-v5' -> 'hopper'. */
function normalizeEnvName(s: string): string {
  return s.trim().toLowerCase().replace(/-v\d+$/, '');
}

/** Validate a parsed trajectory file; anything wrong is a UserError naming the file and the field. */
export function parseTrajectory(data: unknown, path: string): ReferenceTrajectory {
  const bad = (what: string): never => {
    throw new UserError(`trajectory file ${path}: ${what}; ${FORMAT}.`);
  };
  if (typeof data !== 'object' || data === null || Array.isArray(data)) bad('the top level is not a JSON object');
  const o = data as Record<string, unknown>;
  if (typeof o.env !== 'string') bad('"env" is missing or not a string');
  const name = normalizeEnvName(o.env as string);
  if (!isEnvName(name)) bad(`unknown environment "${o.env as string}" (known: ${ENV_NAMES.join(', ')})`);
  const env = name as EnvName;
  const spec = envSpec(env);
  const { nq, nv } = spec;

  const numbers = (v: unknown, field: string, len: number): number[] => {
    if (!Array.isArray(v)) return bad(`${field} is missing or not an array`);
    if (v.length !== len) bad(`${field} has ${v.length} values, ${env} needs ${len}`);
    for (let i = 0; i < v.length; i++) if (typeof v[i] !== 'number' || !Number.isFinite(v[i])) bad(`${field}[${i}] is not a finite number`);
    return v as number[];
  };

  if (o.frameSkip !== undefined) {
    if (o.frameSkip !== spec.frameSkip) bad(`"frameSkip" is ${JSON.stringify(o.frameSkip)} but ${env} steps the simulator ${spec.frameSkip} times per action`);
  }
  if (o.dt !== undefined) {
    if (typeof o.dt !== 'number' || Math.abs(o.dt - spec.dt) > 1e-12) bad(`"dt" is ${JSON.stringify(o.dt)} but ${env} has dt ${spec.dt}`);
  }
  const initialQpos = numbers(o.initialQpos, '"initialQpos"', nq);
  const initialQvel = numbers(o.initialQvel, '"initialQvel"', nv);
  const initialObservation = o.initialObservation === undefined ? undefined : numbers(o.initialObservation, '"initialObservation"', spec.obsDim);
  if (!Array.isArray(o.steps)) bad('"steps" is missing or not an array');
  const rawSteps = o.steps as unknown[];
  if (rawSteps.length === 0) bad('"steps" is empty');
  const steps: ReferenceStep[] = rawSteps.map((s, i) => {
    if (typeof s !== 'object' || s === null || Array.isArray(s)) return bad(`steps[${i}] is not an object`);
    const st = s as Record<string, unknown>;
    const action = numbers(st.action, `steps[${i}].action`, spec.actDim);
    const observation = numbers(st.observation, `steps[${i}].observation`, spec.obsDim);
    if (typeof st.reward !== 'number' || !Number.isFinite(st.reward)) bad(`steps[${i}].reward is missing or not a finite number`);
    if (typeof st.terminated !== 'boolean') bad(`steps[${i}].terminated is missing or not a boolean`);
    return { action, observation, reward: st.reward as number, terminated: st.terminated as boolean };
  });
  return { env, frameSkip: o.frameSkip as number | undefined, dt: o.dt as number | undefined, initialQpos, initialQvel, initialObservation, steps };
}

/** Read and validate a trajectory file (UserError when missing, not JSON, or malformed). */
export async function readTrajectory(path: string): Promise<ReferenceTrajectory> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (e as Error).message;
    throw new UserError(`cannot read trajectory file ${path} (${why}); pass the path of a reference trajectory .json file.`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new UserError(`trajectory file ${path} is not valid JSON (${(e as Error).message}); ${FORMAT}.`);
  }
  return parseTrajectory(data, path);
}

/** Replay a parsed trajectory on our environment and compare (see the file header). */
export async function checkReferenceTrajectory(traj: ReferenceTrajectory): Promise<TrajectoryCheckResult> {
  const env = await makeEnv(traj.env, { maxEpisodeSteps: Infinity, stepAfterDone: 'allow' });
  try {
    let maxObsError = 0;
    let worstObsStep = -1;
    let maxRewardError = 0;
    let firstTerminationMismatch: number | null = null;
    const obsError = (ours: ArrayLike<number>, ref: readonly number[]): number => {
      let m = 0;
      for (let i = 0; i < ref.length; i++) {
        const e = Math.abs(ours[i]! - ref[i]!);
        if (Number.isNaN(e)) return Infinity;
        if (e > m) m = e;
      }
      return m;
    };
    const obs0 = env.setState(traj.initialQpos, traj.initialQvel);
    if (traj.initialObservation) maxObsError = obsError(obs0, traj.initialObservation);
    for (let t = 0; t < traj.steps.length; t++) {
      const ref = traj.steps[t]!;
      const r = env.step(ref.action);
      const e = obsError(r.observation, ref.observation);
      if (e > maxObsError) {
        maxObsError = e;
        worstObsStep = t;
      }
      const re = Number.isNaN(r.reward) ? Infinity : Math.abs(r.reward - ref.reward);
      if (re > maxRewardError) maxRewardError = re;
      if (r.terminated !== ref.terminated && firstTerminationMismatch === null) firstTerminationMismatch = t;
    }
    const terminationsMatch = firstTerminationMismatch === null;
    return {
      env: traj.env,
      steps: traj.steps.length,
      maxObsError,
      maxRewardError,
      terminationsMatch,
      ok: maxObsError <= TRAJECTORY_TOLERANCE && maxRewardError <= TRAJECTORY_TOLERANCE && terminationsMatch,
      tolerance: TRAJECTORY_TOLERANCE,
      worstObsStep,
      firstTerminationMismatch,
    };
  } finally {
    env.close();
  }
}

/** Load a reference trajectory file, replay it on our environment, and compare. */
export async function checkTrajectory(path: string): Promise<TrajectoryCheckResult> {
  return checkReferenceTrajectory(await readTrajectory(path));
}
