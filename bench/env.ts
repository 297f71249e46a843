// Environment-step throughput: HalfCheetah through our environment interface versus the raw
// MuJoCo stepping it is built on, measured in the same run.
//
//   benchEnv({ steps?, rounds? }) -> { envStepsPerSecond, rawEnvStepsPerSecond, ratio, ... }
//
// env    env.step(action) with uniformly random actions in [-1, 1]^6: writing ctrl, 5 mj_step
//        calls, the observation (a fresh Float64Array), reward and flags, resets at the 1000-step
//        time limit included.
// raw    the same model on its own MjData: random ctrl written every 5 mj_step calls, nothing
//        else (mj_resetData every 1000 such groups, as the env's time limit does). Reported as
//        mj_step calls per second / 5, i.e. the env steps per second a zero-overhead wrapper
//        would reach. ratio = env / raw (target >= 0.8).
// stepInto  the allocation-free env path (observation written into a reused buffer), for reference.
// Actions come from a pre-drawn pool so the generator's cost is not measured. The three loops
// run interleaved in `rounds` rounds after a warm-up (the machine is shared and noisy: compare
// the ratio, not absolute numbers).
//
// From the CLI: mopo bench env [--rows 20000]  (rows = env steps)

import { LocomotionEnv, HALFCHEETAH } from '../pipeline/envs/locomotion.js';
import { DataViews, loadModel } from '../pipeline/envs/mujoco.js';
import { Rng } from '../pipeline/random.js';

export interface EnvBenchResult {
  envStepsPerSecond: number;
  rawEnvStepsPerSecond: number;
  ratio: number;
  /** The allocation-free stepInto path, env steps per second. */
  stepIntoStepsPerSecond: number;
  /** Microseconds per mj_step call in the raw loop. */
  mjStepMicroseconds: number;
  /** Env steps timed per loop. */
  steps: number;
}

const POOL = 1024;

export async function benchEnv(opts: { steps?: number; rounds?: number } = {}): Promise<EnvBenchResult> {
  const steps = Math.max(1, Math.floor(opts.steps ?? 20_000));
  const rounds = Math.max(1, Math.min(steps, Math.floor(opts.rounds ?? 5)));
  const { mujoco, model } = await loadModel('halfcheetah');
  const frameSkip = HALFCHEETAH.frameSkip;
  const actDim = HALFCHEETAH.actDim;
  const limit = HALFCHEETAH.maxEpisodeSteps;

  const rng = new Rng(12345, 'bench/env-actions');
  const actions: Float64Array[] = [];
  for (let i = 0; i < POOL; i++) {
    const a = new Float64Array(actDim);
    for (let j = 0; j < actDim; j++) a[j] = rng.uniform(-1, 1);
    actions.push(a);
  }

  const env = new LocomotionEnv(mujoco, model, HALFCHEETAH);
  const env2 = new LocomotionEnv(mujoco, model, HALFCHEETAH);
  const data = new mujoco.MjData(model);
  const views = new DataViews(data);
  env.reset(1);
  env2.reset(2);
  mujoco.mj_resetData(model, data);
  let rawT = 0;
  let k1 = 0;
  let k2 = 0;
  let k3 = 0;

  const runEnv = (n: number): number => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const r = env.step(actions[k1++ & (POOL - 1)]!);
      if (r.terminated || r.truncated) env.reset();
    }
    return performance.now() - t0;
  };
  const obsBuf = new Float64Array(HALFCHEETAH.obsDim);
  const runStepInto = (n: number): number => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      env2.stepInto(actions[k2++ & (POOL - 1)]!, 0, obsBuf, 0);
      if (env2.terminated || env2.truncated) env2.reset();
    }
    return performance.now() - t0;
  };
  const runRaw = (n: number): number => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      views.refreshIfDetached();
      const ctrl = views.ctrl;
      const a = actions[k3++ & (POOL - 1)]!;
      for (let j = 0; j < actDim; j++) ctrl[j] = a[j]!;
      for (let s = 0; s < frameSkip; s++) mujoco.mj_step(model, data);
      if (++rawT >= limit) {
        rawT = 0;
        mujoco.mj_resetData(model, data);
      }
    }
    return performance.now() - t0;
  };

  try {
    const warm = Math.min(2000, steps);
    runRaw(warm);
    runEnv(warm);
    runStepInto(warm);
    let tEnv = 0;
    let tRaw = 0;
    let tInto = 0;
    let done = 0;
    for (let r = 0; r < rounds; r++) {
      const n = Math.floor((steps * (r + 1)) / rounds) - done;
      done += n;
      tRaw += runRaw(n);
      tEnv += runEnv(n);
      tInto += runStepInto(n);
    }
    const envStepsPerSecond = (steps / tEnv) * 1000;
    const rawEnvStepsPerSecond = (steps / tRaw) * 1000;
    return {
      envStepsPerSecond,
      rawEnvStepsPerSecond,
      ratio: envStepsPerSecond / rawEnvStepsPerSecond,
      stepIntoStepsPerSecond: (steps / tInto) * 1000,
      mjStepMicroseconds: (tRaw * 1000) / (steps * frameSkip),
      steps,
    };
  } finally {
    env.close();
    env2.close();
    data.delete();
  }
}
