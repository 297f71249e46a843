// `mopo diagnose dynamics`: how good is the model MOPO trusts? Three measurements on the rows the
// ensemble held out for validation (the same seeded rule as training, so no row was trained on):
//   1. validation MSE of the elite-mean prediction on normalized (Δs, r) against a linear
//      least-squares model fitted on the training split of the same pass (the ratio says how much
//      the network buys over the obvious baseline);
//   2. one step against the real simulator: put MuJoCo in the row's state, apply the row's action,
//      compare the true next state and reward with each member's Gaussian: error per dimension and
//      the calibration of the predicted spread (share of true values within ±1σ / ±2σ of each
//      member and of the elite mixture; a calibrated Gaussian has 68.3 % / 95.4 %);
//   3. open-loop rollouts of `horizon` steps from held-out states under the dataset's actions, in
//      the model (elite mean, and MOPO-style random elite + sample) and in the simulator: error
//      growth per step.
// One streaming pass over the dataset; memory holds the normal equations and the held-out rows.
import { openTransitions } from '../../operators/source.js';
import { lastValueFrom, tap } from 'rxjs';
import type { DynamicsEnsemble, EnsemblePrediction, ModelTargets } from '../../operators/ensemble.js';
import { isHoldoutRow, concatF32 } from '../../operators/ensemble.js';
import type { ReadOptions } from '../../operators/readTransitions.js';
import type { TransitionBatch } from '../../schemas/transition.js';
import { makeEnv, stateFromObservation, type Env } from '../envs/env.js';
import { Rng } from '../random.js';
import { UserError } from '../errors.js';

export interface DiagnoseDynamicsOptions {
  dataset: string;
  read?: ReadOptions;
  /** Environment (default: the dataset's metadata, then the ensemble's). */
  env?: string;
  /** Held-out rows compared with the simulator (one step and multi-step starts). */
  states: number;
  /** Open-loop rollout length. */
  horizon: number;
  seed: number;
  onProgress?: (rows: number) => void;
}

export const DIAGNOSE_DYNAMICS_DEFAULTS = { states: 1000, horizon: 5, seed: 0 } as const;

export interface Calibration {
  /** Share of (row, dimension) values within ±1σ and ±2σ. */
  within1: number;
  within2: number;
}

export interface DynamicsDiagnostics {
  /** Set when the ensemble is an unfinished training's best weights so far. */
  unfinished?: { afterEpoch: number };
  dataset: string;
  env: string;
  rows: number;
  members: number;
  elites: number[];
  validation: {
    rows: number;
    /** Per member, as trained: in the model's output space (normalized (Δs, r), or raw with targets 'raw'). */
    memberMse: number[];
    /** The space memberMse is in: the ensemble's training targets. */
    memberTargets: ModelTargets;
    /** The mean of the elites' predicted means. */
    eliteMeanMse: number;
    /** Ordinary least squares (with intercept) on the same normalized inputs and targets. */
    linearMse: number;
    /** eliteMeanMse / linearMse. */
    ratio: number;
  };
  simulator: {
    states: number;
    /** Held-out rows whose state the observation cannot pin down (clipped velocities), skipped. */
    skippedInexact: number;
    /** Largest |simulator next obs − dataset next obs|: does the dataset agree with our simulator? */
    datasetAgreementMaxAbs: number;
    /** Elite-mean error against the simulator, per next-observation dimension (RMSE, raw scale). */
    obsRmse: number[];
    /** The same divided by the dataset's std of Δs in that dimension (1 = no better than the mean). */
    obsRmseOverDeltaStd: number[];
    rewardRmse: number;
    rewardRmseOverStd: number;
    /** Calibration over all next-obs and reward dimensions, per member and for the elite mixture. */
    memberCalibration: Calibration[];
    mixtureCalibration: Calibration;
    /** Mixture calibration per dimension (next obs dims, then reward). */
    mixtureCalibrationPerDim: Calibration[];
    ideal: Calibration;
  };
  multiStep: {
    starts: number;
    horizon: number;
    /** Per step t = 1..horizon: RMSE over rows and dims of the observation (raw and ÷ obs std), reward RMSE. */
    eliteMean: StepError[];
    sampled: StepError[];
  };
  seconds: number;
}

export interface StepError {
  step: number;
  obsRmse: number;
  obsRmseOverStd: number;
  rewardRmse: number;
}

/** One held-out row and the (up to horizon − 1) rows that continue its episode. */
interface HeldOut {
  /** horizon × obsDim observations, horizon × actDim actions (only `length` rows valid). */
  obs: Float32Array;
  act: Float32Array;
  nextObs: Float32Array;
  reward: Float32Array;
  length: number;
  /** Still collecting the continuation. */
  open: boolean;
}

export async function diagnoseDynamics(ensemble: DynamicsEnsemble, opts: DiagnoseDynamicsOptions): Promise<DynamicsDiagnostics> {
  const t0 = performance.now();
  const O = ensemble.obsDim;
  const A = ensemble.actDim;
  const In = ensemble.inDim;
  const Out = ensemble.outDim;
  const H = opts.horizon;
  if (!(Number.isInteger(H) && H >= 1)) throw new UserError(`--horizon must be a positive integer, got ${opts.horizon}`);
  if (!(Number.isInteger(opts.states) && opts.states >= 1)) throw new UserError(`--states must be a positive integer, got ${opts.states}`);
  const norm = ensemble.normalizer;
  const N = norm.rows;
  const cfg = ensemble.config;
  // The training loop's holdout probability (trainEnsemble): same rule, same seed, same rows.
  const p = Math.min(cfg.holdoutMax / N, cfg.holdoutFraction);

  // Normal equations of least squares with an intercept column, in double precision.
  const K = In + 1;
  const xtx = new Float64Array(K * K);
  const xty = new Float64Array(K * Out);
  const xrow = new Float64Array(K);
  const valX: Float32Array[] = [];
  const valY: Float32Array[] = [];
  // The same rows' targets in the model's output space (differs from valY with targets 'raw').
  const valYModel: Float32Array[] = [];
  const held: HeldOut[] = [];
  let open: HeldOut[] = [];
  let env = opts.env;
  let row = 0;
  let trainRows = 0;

  await lastValueFrom(
    openTransitions(opts.dataset, opts.read ?? {}).pipe(
      tap((b: TransitionBatch) => {
        if (b.obsDim !== O || b.actDim !== A) {
          throw new UserError(`${opts.dataset}: observations have ${b.obsDim} and actions ${b.actDim} dimensions, the ensemble was trained on ${O} and ${A}`);
        }
        env ??= b.dims.env;
        const mb = norm.toModelBatch(b);
        const modelTargets = ensemble.config.targets === 'normalized' ? mb.targets : ensemble.toModelBatch(b).targets;
        for (let i = 0; i < b.length; i++, row++) {
          // Continue the open windows first: row i continues a window when its observation is the
          // window's last next observation (same episode, no reset in between).
          if (open.length > 0) {
            const still: HeldOut[] = [];
            for (const w of open) {
              if (continues(w, b, i, O)) {
                appendRow(w, b, i, O, A);
                if (w.length < H) still.push(w);
                else w.open = false;
              } else w.open = false;
            }
            open = still;
          }
          const x = mb.inputs.subarray(i * In, (i + 1) * In);
          const y = mb.targets.subarray(i * Out, (i + 1) * Out);
          if (isHoldoutRow(cfg.seed, row, p)) {
            valX.push(x.slice());
            valY.push(y.slice());
            valYModel.push(modelTargets.slice(i * Out, (i + 1) * Out));
            if (held.length < opts.states) {
              const w: HeldOut = { obs: new Float32Array(H * O), act: new Float32Array(H * A), nextObs: new Float32Array(H * O), reward: new Float32Array(H), length: 0, open: true };
              appendRow(w, b, i, O, A);
              held.push(w);
              if (H > 1 && !b.terminal[i] && !b.timeout[i]) open.push(w);
              else w.open = false;
            }
            continue;
          }
          trainRows++;
          for (let k = 0; k < In; k++) xrow[k] = x[k]!;
          xrow[In] = 1;
          for (let r = 0; r < K; r++) {
            const xr = xrow[r]!;
            const base = r * K;
            for (let c = r; c < K; c++) xtx[base + c]! += xr * xrow[c]!;
            const yb = r * Out;
            for (let j = 0; j < Out; j++) xty[yb + j]! += xr * y[j]!;
          }
        }
        opts.onProgress?.(row);
      }),
    ),
    { defaultValue: undefined },
  );
  if (row !== N) {
    throw new UserError(`${opts.dataset} has ${row} rows but the ensemble was trained on ${N}: diagnose it with the dataset it was trained on (the held-out rows are chosen by row index)`);
  }
  if (valX.length === 0) throw new UserError(`${opts.dataset}: no held-out rows`);
  env ??= ensemble.env;
  if (env === undefined) throw new UserError(`${opts.dataset} does not record its environment; name it with --env`);
  for (let r = 0; r < K; r++) for (let c = 0; c < r; c++) xtx[r * K + c] = xtx[c * K + r]!;

  // 1. Validation MSE: members as trained, elite mean, linear baseline.
  const vx = concatF32(valX);
  const vy = concatF32(valY);
  const V = valX.length;
  const ev = ensemble.evaluate(vx, concatF32(valYModel));
  const W = solveLeastSquares(xtx, xty, K, Out, trainRows);
  const linearMse = linearModelMse(W, vx, vy, V, In, Out);
  const eliteMeanMse = eliteMeanNormalizedMse(ensemble, vx, vy, V);

  // 2. One step against the simulator.
  const sim = await makeEnv(env, { maxEpisodeSteps: Infinity, stepAfterDone: 'allow' });
  try {
    const oneStep = simulatorOneStep(ensemble, sim, env, held, O, A);
    const multi = multiStep(ensemble, sim, env, held.filter((w) => w.length === H), H, O, A, new Rng(opts.seed, 'diagnose/sampled'));
    return {
      dataset: opts.dataset,
      env,
      rows: N,
      members: ensemble.members,
      elites: ensemble.elites.slice(),
      validation: { rows: V, memberMse: ev.mse, memberTargets: ensemble.config.targets, eliteMeanMse, linearMse, ratio: eliteMeanMse / linearMse },
      simulator: oneStep,
      multiStep: multi,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    sim.close();
  }
}

function continues(w: HeldOut, b: TransitionBatch, i: number, O: number): boolean {
  const last = (w.length - 1) * O;
  for (let j = 0; j < O; j++) if (b.observation[i * O + j] !== w.nextObs[last + j]) return false;
  return true;
}

function appendRow(w: HeldOut, b: TransitionBatch, i: number, O: number, A: number): void {
  const k = w.length;
  w.obs.set(b.observation.subarray(i * O, (i + 1) * O), k * O);
  w.act.set(b.action.subarray(i * A, (i + 1) * A), k * A);
  w.nextObs.set(b.nextObservation.subarray(i * O, (i + 1) * O), k * O);
  w.reward[k] = b.reward[i]!;
  w.length = k + 1;
  if (b.terminal[i] || b.timeout[i]) w.open = false;
}


/**
 * Solves (XᵀX + εI) W = XᵀY by Cholesky (ε: a relative 1e-9 ridge so a constant input column, e.g.
 * a std-0 dimension, does not make the system singular). W is K × Out.
 */
export function solveLeastSquares(xtx: Float64Array, xty: Float64Array, K: number, Out: number, rows: number): Float64Array {
  const a = Float64Array.from(xtx);
  let trace = 0;
  for (let i = 0; i < K; i++) trace += a[i * K + i]!;
  const eps = 1e-9 * (trace / K) + 1e-12 * Math.max(rows, 1);
  for (let i = 0; i < K; i++) a[i * K + i]! += eps;
  // In-place Cholesky: a = L Lᵀ, L in the lower triangle.
  for (let j = 0; j < K; j++) {
    let d = a[j * K + j]!;
    for (let k = 0; k < j; k++) d -= a[j * K + k]! ** 2;
    if (!(d > 0)) throw new Error(`least squares: normal equations not positive definite at column ${j}`);
    const l = Math.sqrt(d);
    a[j * K + j] = l;
    for (let i = j + 1; i < K; i++) {
      let s = a[i * K + j]!;
      for (let k = 0; k < j; k++) s -= a[i * K + k]! * a[j * K + k]!;
      a[i * K + j] = s / l;
    }
  }
  const w = new Float64Array(K * Out);
  const z = new Float64Array(K);
  for (let o = 0; o < Out; o++) {
    for (let i = 0; i < K; i++) {
      let s = xty[i * Out + o]!;
      for (let k = 0; k < i; k++) s -= a[i * K + k]! * z[k]!;
      z[i] = s / a[i * K + i]!;
    }
    for (let i = K - 1; i >= 0; i--) {
      let s = z[i]!;
      for (let k = i + 1; k < K; k++) s -= a[k * K + i]! * w[k * Out + o]!;
      w[i * Out + o] = s / a[i * K + i]!;
    }
  }
  return w;
}

/** Mean over rows and output dims of the squared error of x ↦ [x, 1] W. */
export function linearModelMse(W: Float64Array, x: Float32Array, y: Float32Array, n: number, In: number, Out: number): number {
  let se = 0;
  for (let r = 0; r < n; r++) {
    for (let o = 0; o < Out; o++) {
      let s = W[In * Out + o]!;
      for (let k = 0; k < In; k++) s += x[r * In + k]! * W[k * Out + o]!;
      se += (s - y[r * Out + o]!) ** 2;
    }
  }
  return se / (n * Out);
}

/** Normalized inputs back to raw (s, a), the form predict() takes. */
function rawInputs(ens: DynamicsEnsemble, x: Float32Array, n: number): { obs: Float32Array; act: Float32Array } {
  const O = ens.obsDim;
  const A = ens.actDim;
  const In = ens.inDim;
  const { mean, std } = ens.normalizer;
  const obs = new Float32Array(n * O);
  const act = new Float32Array(n * A);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < O; j++) obs[r * O + j] = x[r * In + j]! * std.observation[j]! + mean.observation[j]!;
    for (let j = 0; j < A; j++) act[r * A + j] = x[r * In + O + j]! * std.action[j]! + mean.action[j]!;
  }
  return { obs, act };
}

function eliteMeanNormalizedMse(ens: DynamicsEnsemble, x: Float32Array, y: Float32Array, n: number): number {
  const O = ens.obsDim;
  const Out = ens.outDim;
  const { obs, act } = rawInputs(ens, x, n);
  const pred = ens.predict(obs, act, n);
  const m = eliteMixture(pred, ens.elites);
  const { mean, std } = ens.normalizer;
  let se = 0;
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < O; j++) {
      const d = (m.obsMean[r * O + j]! - obs[r * O + j]! - mean.delta[j]!) / std.delta[j]!;
      se += (d - y[r * Out + j]!) ** 2;
    }
    const rr = (m.rewardMean[r]! - mean.reward[0]!) / std.reward[0]!;
    se += (rr - y[r * Out + O]!) ** 2;
  }
  return se / (n * Out);
}

/** Moments of the equal-weight mixture of the elites' Gaussians, per row and dimension. */
export function eliteMixture(p: EnsemblePrediction, elites: readonly number[]): { obsMean: Float64Array; obsVar: Float64Array; rewardMean: Float64Array; rewardVar: Float64Array } {
  const { n, obsDim: O } = p;
  const obsMean = new Float64Array(n * O);
  const obsVar = new Float64Array(n * O);
  const rewardMean = new Float64Array(n);
  const rewardVar = new Float64Array(n);
  const k = elites.length;
  for (const e of elites) {
    for (let i = 0; i < n * O; i++) {
      const mu = p.nextObsMean[e * n * O + i]!;
      obsMean[i]! += mu / k;
      obsVar[i]! += (p.nextObsVar[e * n * O + i]! + mu * mu) / k;
    }
    for (let i = 0; i < n; i++) {
      const mu = p.rewardMean[e * n + i]!;
      rewardMean[i]! += mu / k;
      rewardVar[i]! += (p.rewardVar[e * n + i]! + mu * mu) / k;
    }
  }
  for (let i = 0; i < n * O; i++) obsVar[i] = Math.max(0, obsVar[i]! - obsMean[i]! ** 2);
  for (let i = 0; i < n; i++) rewardVar[i] = Math.max(0, rewardVar[i]! - rewardMean[i]! ** 2);
  return { obsMean, obsVar, rewardMean, rewardVar };
}

class CalibrationCounter {
  private in1 = 0;
  private in2 = 0;
  private total = 0;
  add(truth: number, mean: number, variance: number): void {
    const z = Math.abs(truth - mean) / Math.sqrt(variance);
    if (z <= 1) this.in1++;
    if (z <= 2) this.in2++;
    this.total++;
  }
  result(): Calibration {
    return { within1: this.in1 / this.total, within2: this.in2 / this.total };
  }
}

function simulatorOneStep(ens: DynamicsEnsemble, sim: Env, env: string, held: HeldOut[], O: number, A: number): DynamicsDiagnostics['simulator'] {
  const rows = held.filter((w) => stateFromObservation(env, w.obs, 0).exact);
  const n = rows.length;
  if (n === 0) throw new UserError('no held-out row has an exactly observable state (all velocities at the clip bound)');
  const obs = new Float32Array(n * O);
  const act = new Float32Array(n * A);
  const trueNext = new Float64Array(n * O);
  const trueReward = new Float64Array(n);
  let agreement = 0;
  rows.forEach((w, r) => {
    obs.set(w.obs.subarray(0, O), r * O);
    act.set(w.act.subarray(0, A), r * A);
    const s = stateFromObservation(env, w.obs, 0);
    sim.setState(s.qpos, s.qvel);
    const step = sim.step(w.act.subarray(0, A));
    trueNext.set(step.observation, r * O);
    trueReward[r] = step.reward;
    for (let j = 0; j < O; j++) agreement = Math.max(agreement, Math.abs(step.observation[j]! - w.nextObs[j]!));
  });
  const pred = ens.predict(obs, act, n);
  const mix = eliteMixture(pred, ens.elites);
  const { std } = ens.normalizer;
  const obsSe = new Float64Array(O);
  let rewardSe = 0;
  const memberCal = Array.from({ length: pred.members }, () => new CalibrationCounter());
  const mixCal = new CalibrationCounter();
  const perDim = Array.from({ length: O + 1 }, () => new CalibrationCounter());
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < O; j++) {
      const t = trueNext[r * O + j]!;
      obsSe[j]! += (mix.obsMean[r * O + j]! - t) ** 2;
      mixCal.add(t, mix.obsMean[r * O + j]!, mix.obsVar[r * O + j]!);
      perDim[j]!.add(t, mix.obsMean[r * O + j]!, mix.obsVar[r * O + j]!);
      for (let e = 0; e < pred.members; e++) memberCal[e]!.add(t, pred.nextObsMean[(e * n + r) * O + j]!, pred.nextObsVar[(e * n + r) * O + j]!);
    }
    const t = trueReward[r]!;
    rewardSe += (mix.rewardMean[r]! - t) ** 2;
    mixCal.add(t, mix.rewardMean[r]!, mix.rewardVar[r]!);
    perDim[O]!.add(t, mix.rewardMean[r]!, mix.rewardVar[r]!);
    for (let e = 0; e < pred.members; e++) memberCal[e]!.add(t, pred.rewardMean[e * n + r]!, pred.rewardVar[e * n + r]!);
  }
  const obsRmse = Array.from(obsSe, (s) => Math.sqrt(s / n));
  const rewardRmse = Math.sqrt(rewardSe / n);
  return {
    states: n,
    skippedInexact: held.length - n,
    datasetAgreementMaxAbs: agreement,
    obsRmse,
    obsRmseOverDeltaStd: obsRmse.map((e, j) => e / std.delta[j]!),
    rewardRmse,
    rewardRmseOverStd: rewardRmse / std.reward[0]!,
    memberCalibration: memberCal.map((c) => c.result()),
    mixtureCalibration: mixCal.result(),
    mixtureCalibrationPerDim: perDim.map((c) => c.result()),
    ideal: { within1: 0.6827, within2: 0.9545 },
  };
}

/**
 * Open loop from each start: the simulator replays the dataset's actions from the start state; the
 * model rolls the same actions from the same state, (a) on the elite mean, (b) as MOPO's rollouts
 * do, a random elite per row and step and a sample from its Gaussian.
 */
function multiStep(ens: DynamicsEnsemble, sim: Env, env: string, starts: HeldOut[], H: number, O: number, A: number, rng: Rng): DynamicsDiagnostics['multiStep'] {
  const valid = starts.filter((w) => stateFromObservation(env, w.obs, 0).exact);
  const n = valid.length;
  if (n === 0) return { starts: 0, horizon: H, eliteMean: [], sampled: [] };
  // Simulator trajectories.
  const simObs = new Float64Array(H * n * O);
  const simReward = new Float64Array(H * n);
  valid.forEach((w, r) => {
    const s = stateFromObservation(env, w.obs, 0);
    sim.setState(s.qpos, s.qvel);
    for (let t = 0; t < H; t++) {
      const step = sim.step(w.act.subarray(t * A, (t + 1) * A));
      simObs.set(step.observation, (t * n + r) * O);
      simReward[t * n + r] = step.reward;
    }
  });
  const obsStd = ens.normalizer.std.observation;
  const run = (sampled: boolean): StepError[] => {
    let cur = new Float32Array(n * O);
    valid.forEach((w, r) => cur.set(w.obs.subarray(0, O), r * O));
    const act = new Float32Array(n * A);
    const out: StepError[] = [];
    for (let t = 0; t < H; t++) {
      valid.forEach((w, r) => act.set(w.act.subarray(t * A, (t + 1) * A), r * A));
      const pred = ens.predict(cur, act, n);
      const next = new Float32Array(n * O);
      const reward = new Float64Array(n);
      if (sampled) {
        const elites = ens.elites;
        for (let r = 0; r < n; r++) {
          const e = elites[rng.int(elites.length)]!;
          for (let j = 0; j < O; j++) {
            const i = (e * n + r) * O + j;
            next[r * O + j] = pred.nextObsMean[i]! + Math.sqrt(pred.nextObsVar[i]!) * rng.normal();
          }
          reward[r] = pred.rewardMean[e * n + r]! + Math.sqrt(pred.rewardVar[e * n + r]!) * rng.normal();
        }
      } else {
        const mix = eliteMixture(pred, ens.elites);
        for (let i = 0; i < n * O; i++) next[i] = mix.obsMean[i]!;
        reward.set(mix.rewardMean);
      }
      let se = 0;
      let seStd = 0;
      let rse = 0;
      for (let r = 0; r < n; r++) {
        for (let j = 0; j < O; j++) {
          const d = next[r * O + j]! - simObs[(t * n + r) * O + j]!;
          se += d * d;
          seStd += (d / obsStd[j]!) ** 2;
        }
        rse += (reward[r]! - simReward[t * n + r]!) ** 2;
      }
      out.push({ step: t + 1, obsRmse: Math.sqrt(se / (n * O)), obsRmseOverStd: Math.sqrt(seStd / (n * O)), rewardRmse: Math.sqrt(rse / n) });
      cur = next;
    }
    return out;
  };
  return { starts: n, horizon: H, eliteMean: run(false), sampled: run(true) };
}
