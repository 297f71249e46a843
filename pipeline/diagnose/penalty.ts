// `mopo diagnose penalty`: does the uncertainty penalty bound the model's error? MOPO's guarantee
// asks for u(s, a) ≥ d(T̂(s, a), T(s, a)) (MOPO.md); with the real simulator at hand we measure both
// sides at the state-action pairs MOPO penalizes.
//
//   const report = await diagnosePenalty('runs/start', { states: 1000 });   // writes the JSON + HTML
//
// The pairs (s, a), a from the run's latest policy (sampled, as in rollouts; a fresh random policy
// when the run has no checkpoint yet):
//   dataset  N states drawn uniformly from the run's dataset;
//   rollout  the policy rolled in the ensemble for the run's horizon from other dataset states
//            (rolloutRound, exactly as MOPO's rollouts: a random elite and a Gaussian sample a step),
//            every visited state with its step (step 1 = the dataset start state).
// At every pair: every penalty estimator (each kind of PENALTY_KINDS over all members and over the
// elites), and the true one-step error of the model against MuJoCo (state set from the
// observation, the action applied; rows whose state the observation cannot pin down are skipped
// and counted):
//   obs           ‖E[ŝ′] − s′‖₂, the elite mixture's mean next observation against the true one
//   transition    ‖E[(ŝ′, r̂)] − (s′, r)‖₂
//   reward        |E[r̂] − r|
//   rewardW1      W₁(model reward distribution, δ_r) = E|r̂ − r|, the elite mixture of Gaussians
//                 against the simulator's (deterministic) reward, in closed form (w1MixtureToPoint)
//   transitionW1  W₁(model distribution of (s′, r), δ_(s′, r)) = E‖(ŝ′, r̂) − (s′, r)‖₂, Monte Carlo
//                 (stratified over the elites): the d of MOPO's bound with the Euclidean metric
// and the distance from the data: the nearest neighbour of (s, a) among a uniform sample of the
// dataset rows (the rows the ensemble trained on when the run trained it on a prefix), in the
// ensemble's normalized input space, the row a state was drawn from excluded.
// Reported per estimator, overall and per source, rollout step and distance quantile bin: Pearson
// and Spearman (average ranks for ties) correlation with each true error, the share of pairs where
// λ·u ≥ the error (the bound holds at the run's λ), and the λ that would make it hold at 50/90/95 %.
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { lastValueFrom, tap } from 'rxjs';
import { openTransitions } from '../../operators/source.js';
import { DynamicsEnsemble, type EnsemblePrediction } from '../../operators/ensemble.js';
import { PENALTY_KINDS, rolloutPenalty, rolloutRound, type PenaltyKind, type RolloutPolicy } from '../../operators/rollout.js';
import { SacAgent, loadPolicy, type SacPolicy } from '../../operators/sac.js';
import type { TransitionBatch } from '../../schemas/transition.js';
import { resolveMopoConfig, type MopoConfig } from '../mopo.js';
import { makeEnv, stateFromObservation } from '../envs/env.js';
import { Rng } from '../random.js';
import { UserError } from '../errors.js';
import { writeFileAtomic } from '../atomic.js';
import { PALETTE, lineChartSvg, scatterSvg } from '../plot.js';
import { eliteMixture } from './dynamics.js';

// ---------------------------------------------------------------------------------------------
// Statistics with exact answers (tested)

/**
 * erf(x), to ~1e-15: below 3 the series erf(x) = (2/√π)·e^{−x²}·Σ_n 2ⁿx^{2n+1}/(2n+1)!! (all terms
 * positive: no cancellation), above it the continued fraction of erfc.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  const sign = x < 0 ? -1 : 1;
  const a = Math.abs(x);
  if (a < 3) {
    const a2 = a * a;
    let term = a;
    let sum = a;
    for (let n = 1; n < 300; n++) {
      term *= (2 * a2) / (2 * n + 1);
      sum += term;
      if (term < 1e-17 * sum) break;
    }
    return (sign * 2 * Math.exp(-a2) * sum) / Math.sqrt(Math.PI);
  }
  return sign * (1 - erfcLarge(a));
}

/** erfc(x) for x ≥ 3: e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), evaluated backwards. */
function erfcLarge(x: number): number {
  let f = x;
  for (let k = 60; k >= 1; k--) f = x + k / 2 / f;
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

/** Standard normal CDF Φ(z). */
export function normalCdf(z: number): number {
  return 0.5 * (1 + erf(z / Math.SQRT2));
}

/**
 * E|X − r| for X ~ N(μ, σ²): with d = μ − r and z = d/σ, X − r = d + σZ and
 *   E|d + σZ| = ∫ |d + σz| φ(z) dz = σ·√(2/π)·e^{−z²/2} + d·(1 − 2Φ(−z)),   1 − 2Φ(−z) = erf(z/√2)
 * (split the integral at z = −d/σ; ∫ z φ = −φ). σ = 0 gives |d|.
 */
export function gaussianAbsDeviation(mu: number, sigma: number, r: number): number {
  const d = mu - r;
  if (!(sigma > 0)) return Math.abs(d);
  const z = d / sigma;
  return sigma * Math.sqrt(2 / Math.PI) * Math.exp(-0.5 * z * z) + d * erf(z / Math.SQRT2);
}

/**
 * Wasserstein-1 distance between a mixture of 1-d Gaussians Σ_k w_k N(μ_k, σ_k²) and the point mass
 * at r: the only coupling with a point mass is the product, so W₁ = E|X − r| = Σ_k w_k E|X_k − r|.
 * Weights default to equal.
 */
export function w1MixtureToPoint(mu: ArrayLike<number>, sigma: ArrayLike<number>, r: number, weights?: ArrayLike<number>): number {
  const K = mu.length;
  let s = 0;
  let wsum = 0;
  for (let k = 0; k < K; k++) {
    const w = weights ? weights[k]! : 1;
    s += w * gaussianAbsDeviation(mu[k]!, sigma[k]!, r);
    wsum += w;
  }
  return s / wsum;
}

/** Pearson correlation; null with fewer than 3 pairs or a constant side. */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number | null {
  const n = Math.min(x.length, y.length);
  if (n < 3) return null;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i]!;
    my += y[i]!;
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const a = x[i]! - mx;
    const b = y[i]! - my;
    sxy += a * b;
    sxx += a * a;
    syy += b * b;
  }
  if (!(sxx > 0 && syy > 0)) return null;
  return Math.max(-1, Math.min(1, sxy / Math.sqrt(sxx * syy)));
}

/** Ranks 1..n, tied values sharing the average of their ranks. */
export function averageRanks(x: ArrayLike<number>): Float64Array {
  const n = x.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => x[a]! - x[b]!);
  const ranks = new Float64Array(n);
  for (let i = 0; i < n; ) {
    let j = i + 1;
    while (j < n && x[order[j]!] === x[order[i]!]) j++;
    const r = (i + 1 + j) / 2; // the mean of ranks i+1 … j
    for (let k = i; k < j; k++) ranks[order[k]!] = r;
    i = j;
  }
  return ranks;
}

/** Spearman's ρ: Pearson on average ranks (the tie-corrected form). */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number | null {
  if (x.length !== y.length) throw new RangeError(`spearman: ${x.length} and ${y.length} values`);
  if (x.length < 3) return null;
  return pearson(averageRanks(x), averageRanks(y));
}

/** The q-quantile with linear interpolation between order statistics (R's type 7); null when empty. */
export function quantile(sorted: ArrayLike<number>, q: number): number | null {
  const n = sorted.length;
  if (n === 0) return null;
  const h = (n - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(n - 1, lo + 1);
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  if (a === b || h === lo) return a;
  return a + (h - lo) * (b - a);
}

// ---------------------------------------------------------------------------------------------
// Options and report

export interface DiagnosePenaltyOptions {
  /** Dataset states evaluated (policy actions). */
  states?: number;
  /** Rollout start states (default: `states`); each rolled for the run's horizon. */
  starts?: number;
  /** Dataset rows the distance from the data is measured to (default 20,000). */
  referenceRows?: number;
  /** Quantile bins of the distance from the data (default 5). */
  distanceBins?: number;
  /** Monte Carlo samples per pair for the transition W₁ (default 100, spread evenly over the elites). */
  w1Samples?: number;
  seed?: number;
  /**
   * Another ensemble (a train-dynamics run or ensemble directory) in place of the run's: the same
   * policy, states and λ, measured with that ensemble's estimators and error. The report is then
   * written as diagnose-penalty-<its directory name>.{json,html}, beside the run's own.
   */
  dynamics?: string;
  /** Write <run>/diagnose-penalty.json and .html (default true). */
  write?: boolean;
  /** Progress of the long phases (total null when unknown). */
  onProgress?: (phase: 'read' | 'simulate' | 'distance', done: number, total: number | null) => void;
  log?: (m: string) => void;
}

export const DIAGNOSE_PENALTY_DEFAULTS = { states: 1000, referenceRows: 20_000, distanceBins: 5, w1Samples: 100, seed: 0 } as const;

export const TRUE_ERRORS = ['obs', 'transition', 'reward', 'rewardW1', 'transitionW1'] as const;
export type TrueError = (typeof TRUE_ERRORS)[number];

export const TRUE_ERROR_DESCRIPTIONS: Readonly<Record<TrueError, string>> = {
  obs: "‖E[ŝ′] − s′‖₂: the elite mixture's mean next observation against MuJoCo's",
  transition: '‖E[(ŝ′, r̂)] − (s′, r)‖₂: the same with the reward appended',
  reward: '|E[r̂] − r|: mean reward error',
  rewardW1: "W₁(elite mixture of reward Gaussians, δ_r) = E|r̂ − r|, closed form",
  transitionW1: "W₁(elite mixture over (s′, r), δ_(s′, r)) = E‖(ŝ′, r̂) − (s′, r)‖₂, Monte Carlo",
};

export interface EstimatorSpec {
  /** `<kind>/<members>`, e.g. max-aleatoric/all. */
  name: string;
  kind: PenaltyKind;
  members: 'all' | 'elites';
  /** The run's own estimator (its rollout config). */
  configured: boolean;
}

export interface EstimatorStats {
  /** Mean u over the slice. */
  mean: number;
  pearson: Record<TrueError, number | null>;
  spearman: Record<TrueError, number | null>;
  /** Share of pairs with λ·u ≥ the error, at the run's λ. */
  coverage: Record<TrueError, number>;
  /** The λ with λ·u ≥ the error at 50 / 90 / 95 % of the pairs (quantiles of error / u; null: u = 0 there). */
  lambdaNeeded: Record<TrueError, { q50: number | null; q90: number | null; q95: number | null }>;
}

export interface Slice {
  n: number;
  error: Record<TrueError, { mean: number; median: number }>;
  distance: { mean: number; median: number };
  estimators: Record<string, EstimatorStats>;
}

export interface PenaltyDiagnostics {
  run: string;
  env: string;
  dataset: string;
  /** The run's penalty weight, horizon and estimator. */
  lambda: number;
  horizon: number;
  penalty: PenaltyKind;
  penaltyMembers: 'all' | 'elites';
  policy: { source: 'checkpoint'; dir: string; epoch: number | null; updates: number | null } | { source: 'random'; note: string };
  /** override: the ensemble is another one than the run's (--dynamics). */
  ensemble: { dir: string; members: number; elites: number[]; override: boolean };
  states: {
    /** Pairs evaluated (simulated exactly), by source. */
    dataset: number;
    rollout: number;
    rolloutStarts: number;
    /** Rollout rows per step (before skipping). */
    rolloutPerStep: number[];
    /** Pairs skipped: the observation does not pin the state down (clipped velocities), or non-finite. */
    skippedInexact: number;
    skippedNonFinite: number;
  };
  /**
   * The rollouts as SAC learns from them (means over the rollout rows): the model's reward, the run's
   * penalty u and the penalized reward r − λ·u. Comparing two policies' figures shows which one the
   * penalized model objective prefers. Null without rollouts (--starts 0).
   */
  rolloutRewards: { model: number; penalty: number; penalized: number } | null;
  reference: { rows: number; of: string };
  datasetRows: number;
  w1Samples: number;
  estimators: EstimatorSpec[];
  errors: Record<TrueError, string>;
  overall: Slice;
  bySource: { dataset: Slice | null; rollout: Slice | null };
  byStep: Array<{ step: number } & Slice>;
  byDistance: Array<{ bin: number; lo: number; hi: number } & Slice>;
  /** Every evaluated pair, column-wise (source 0 dataset / 1 rollout; step 0 for dataset pairs). */
  rows: {
    source: number[];
    step: number[];
    distance: number[];
    errors: Record<TrueError, number[]>;
    estimators: Record<string, number[]>;
  };
  seconds: number;
}

// ---------------------------------------------------------------------------------------------
// The run directory

interface LoadedRun {
  dir: string;
  config: MopoConfig;
  ensembleDir: string;
  /** The ensemble came from --dynamics, not from the run. */
  dynamicsOverride: boolean;
  checkpoint: { dir: string; epoch: number | null; updates: number | null } | null;
}

/** The ensemble directory in a train-dynamics run (its ensemble/) or the directory itself, or null. */
function findEnsembleDir(candidates: string[]): string | null {
  return candidates.flatMap((d) => [join(d, 'ensemble'), d]).find((d) => existsSync(join(d, 'ensemble.json'))) ?? null;
}

function readJson<T>(path: string, what: string): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UserError(`${path}: cannot read ${what} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new UserError(`${path}: ${what} is not valid JSON (${(e as Error).message})`);
  }
}

/** A MOPO run directory's config, ensemble and latest checkpoint (UserErrors name the file). */
export function loadPenaltyRun(runIn: string, dynamics?: string): LoadedRun {
  const dir = resolve(runIn);
  if (!existsSync(dir)) throw new UserError(`--run ${runIn}: no such directory`);
  const cfgPath = join(dir, 'config.json');
  if (!existsSync(cfgPath)) throw new UserError(`${cfgPath}: not found; --run takes a run directory made by mopo train, mopo run or mopo start`);
  const config = readJson<MopoConfig>(cfgPath, 'the run config');
  if (typeof config !== 'object' || config === null || typeof config.rollout !== 'object' || config.rollout === null || typeof config.dataset !== 'string') {
    throw new UserError(`${cfgPath}: not a MOPO run config (no rollout settings or dataset); a train-dynamics run has no policy to diagnose — use mopo diagnose dynamics for it`);
  }
  let ensembleDir: string;
  if (dynamics !== undefined) {
    const found = findEnsembleDir([resolve(dynamics)]);
    if (!found) throw new UserError(`--dynamics ${dynamics}: no ensemble here (expected ${join(dynamics, 'ensemble', 'ensemble.json')} or ${join(dynamics, 'ensemble.json')}); pass a directory made by mopo train-dynamics`);
    ensembleDir = found;
  } else if (config.dynamicsFrom) {
    const found = findEnsembleDir([resolve(config.dynamicsFrom), resolve(dir, config.dynamicsFrom)]);
    if (!found) throw new UserError(`${cfgPath}: dynamicsFrom ${config.dynamicsFrom} holds no ensemble (expected ensemble/ensemble.json there)`);
    ensembleDir = found;
  } else {
    ensembleDir = join(dir, 'dynamics', 'ensemble');
    if (!existsSync(join(ensembleDir, 'ensemble.json'))) throw new UserError(`${join(ensembleDir, 'ensemble.json')}: not found; the run has not trained its ensemble yet`);
  }
  let checkpoint: LoadedRun['checkpoint'] = null;
  const latest = join(dir, 'checkpoints', 'latest.json');
  if (existsSync(latest)) {
    const l = readJson<{ checkpoint?: unknown; epoch?: unknown; updates?: unknown }>(latest, 'the latest-checkpoint pointer');
    if (typeof l.checkpoint !== 'string') throw new UserError(`${latest}: no "checkpoint" name`);
    const agent = join(dir, 'checkpoints', l.checkpoint, 'agent');
    if (!existsSync(agent)) throw new UserError(`${latest} points at ${agent}, which does not exist`);
    checkpoint = { dir: agent, epoch: typeof l.epoch === 'number' ? l.epoch : null, updates: typeof l.updates === 'number' ? l.updates : null };
  }
  return { dir, config, ensembleDir, dynamicsOverride: dynamics !== undefined, checkpoint };
}

// ---------------------------------------------------------------------------------------------
// Sampling dataset rows

/** Algorithm R over a stream: a uniform sample of `cap` rows (observation, action, row index). */
class RowReservoir {
  readonly obs: Float32Array;
  readonly act: Float32Array;
  readonly index: Float64Array;
  seen = 0;
  constructor(
    readonly cap: number,
    private readonly O: number,
    private readonly A: number,
    private readonly rng: Rng,
  ) {
    this.obs = new Float32Array(cap * O);
    this.act = new Float32Array(cap * A);
    this.index = new Float64Array(cap);
  }
  offer(b: TransitionBatch, i: number, row: number): void {
    const t = this.seen++;
    let slot = t;
    if (t >= this.cap) {
      slot = this.rng.int(t + 1);
      if (slot >= this.cap) return;
    }
    this.obs.set(b.observation.subarray(i * this.O, (i + 1) * this.O), slot * this.O);
    this.act.set(b.action.subarray(i * this.A, (i + 1) * this.A), slot * this.A);
    this.index[slot] = row;
  }
  get size(): number {
    return Math.min(this.seen, this.cap);
  }
}

// ---------------------------------------------------------------------------------------------
// The diagnostic

export function estimatorSpecs(members: number, elites: readonly number[], configured: { penalty: PenaltyKind; penaltyMembers: 'all' | 'elites' }): EstimatorSpec[] {
  const sets: Array<'all' | 'elites'> = elites.length < members ? ['all', 'elites'] : ['all'];
  const out: EstimatorSpec[] = [];
  for (const kind of PENALTY_KINDS) {
    for (const set of sets) {
      const isConfigured = kind === configured.penalty && (set === configured.penaltyMembers || sets.length === 1);
      out.push({ name: `${kind}/${set}`, kind, members: set, configured: isConfigured });
    }
  }
  return out;
}

/** The report's file name without extension: the run's own ensemble's, or one per --dynamics ensemble. */
export function penaltyReportBase(run: Pick<LoadedRun, 'ensembleDir' | 'dynamicsOverride'>): string {
  if (!run.dynamicsOverride) return 'diagnose-penalty';
  // <train-dynamics run>/ensemble → the run's name; a bare ensemble directory → its own name.
  const dir = basename(run.ensembleDir) === 'ensemble' ? dirname(run.ensembleDir) : run.ensembleDir;
  return `diagnose-penalty-${basename(dir).replace(/[^A-Za-z0-9._-]/g, '_')}`;
}

export async function diagnosePenalty(runIn: string, opts: DiagnosePenaltyOptions = {}): Promise<PenaltyDiagnostics> {
  const t0 = performance.now();
  const log = opts.log ?? (() => {});
  const nStates = opts.states ?? DIAGNOSE_PENALTY_DEFAULTS.states;
  const nStarts = opts.starts ?? nStates;
  const refCap = opts.referenceRows ?? DIAGNOSE_PENALTY_DEFAULTS.referenceRows;
  const bins = opts.distanceBins ?? DIAGNOSE_PENALTY_DEFAULTS.distanceBins;
  const w1Samples = opts.w1Samples ?? DIAGNOSE_PENALTY_DEFAULTS.w1Samples;
  const seed = opts.seed ?? DIAGNOSE_PENALTY_DEFAULTS.seed;
  const posInt = (v: number, flag: string, min = 1) => {
    if (!(Number.isInteger(v) && v >= min)) throw new UserError(`${flag} must be an integer ≥ ${min}, got ${v}`);
  };
  posInt(nStates, '--states', 0);
  posInt(nStarts, '--starts', 0);
  if (nStates + nStarts === 0) throw new UserError('--states and --starts are both 0: nothing to diagnose');
  posInt(refCap, '--reference-rows');
  posInt(bins, '--bins');
  posInt(w1Samples, '--w1-samples');
  if (!Number.isInteger(seed)) throw new UserError(`--seed must be an integer, got ${seed}`);

  const run = loadPenaltyRun(runIn, opts.dynamics);
  const cfgPath = join(run.dir, 'config.json');
  let resolved: ReturnType<typeof resolveMopoConfig>;
  try {
    resolved = resolveMopoConfig(run.config);
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`${cfgPath}: ${e.message}`);
    throw e;
  }
  const { rollout, sac, spec } = resolved;
  const env = run.config.env;
  const O = spec.obsDim;
  const A = spec.actDim;

  const ensemble = await DynamicsEnsemble.load(run.ensembleDir);
  let agent: SacAgent | null = null;
  let loaded: SacPolicy | null = null;
  try {
    if (ensemble.obsDim !== O || ensemble.actDim !== A) {
      throw new UserError(`${run.ensembleDir}: the ensemble models ${ensemble.obsDim}-dim observations and ${ensemble.actDim}-dim actions, but ${env} has ${O} and ${A}`);
    }
    let policy: RolloutPolicy;
    let policyInfo: PenaltyDiagnostics['policy'];
    if (run.checkpoint) {
      loaded = await loadPolicy(run.checkpoint.dir, { rng: new Rng(seed, 'diagnose-penalty/policy') });
      policy = loaded;
      policyInfo = { source: 'checkpoint', dir: run.checkpoint.dir, epoch: run.checkpoint.epoch, updates: run.checkpoint.updates };
      log(`policy: ${run.checkpoint.dir}${run.checkpoint.epoch !== null ? ` (epoch ${run.checkpoint.epoch})` : ''}`);
    } else {
      agent = SacAgent.create(sac, { obsDim: O, actDim: A, env }, new Rng(run.config.seed, 'mopo/sac'));
      policy = agent.actorPolicy;
      policyInfo = { source: 'random', note: 'the run has no checkpoint yet: a freshly initialized policy (the one the run starts from), not a trained one' };
      log(`${run.dir} has no checkpoint yet: diagnosing with a freshly initialized (random) policy`);
    }
    return await diagnoseWith(run, ensemble, policy, policyInfo, {
      nStates, nStarts, refCap, bins, w1Samples, seed, rollout, O, A, env, opts, t0, log,
    });
  } finally {
    agent?.dispose();
    loaded?.dispose();
    ensemble.dispose();
  }
}

interface Ctx {
  nStates: number;
  nStarts: number;
  refCap: number;
  bins: number;
  w1Samples: number;
  seed: number;
  rollout: ReturnType<typeof resolveMopoConfig>['rollout'];
  O: number;
  A: number;
  env: string;
  opts: DiagnosePenaltyOptions;
  t0: number;
  log: (m: string) => void;
}

async function diagnoseWith(run: LoadedRun, ensemble: DynamicsEnsemble, policy: RolloutPolicy, policyInfo: PenaltyDiagnostics['policy'], c: Ctx): Promise<PenaltyDiagnostics> {
  const { O, A, env, opts } = c;
  const cfg = run.config;

  // 1. One pass over the dataset: uniform samples of states, rollout starts and reference rows.
  // The run's own ensemble saw only its first ensembleRows rows; another ensemble, the whole dataset.
  const refLimit = !cfg.dynamicsFrom && !run.dynamicsOverride && cfg.ensembleRows ? cfg.ensembleRows : Infinity;
  const states = new RowReservoir(c.nStates, O, A, new Rng(c.seed, 'diagnose-penalty/states'));
  const starts = new RowReservoir(c.nStarts, O, A, new Rng(c.seed, 'diagnose-penalty/starts'));
  const ref = new RowReservoir(c.refCap, O, A, new Rng(c.seed, 'diagnose-penalty/reference'));
  let row = 0;
  opts.onProgress?.('read', 0, null);
  await lastValueFrom(
    openTransitions(cfg.dataset, cfg.read ?? {}).pipe(
      tap((b: TransitionBatch) => {
        if (b.obsDim !== O || b.actDim !== A) throw new UserError(`${cfg.dataset}: ${b.obsDim}-dim observations and ${b.actDim}-dim actions, but ${env} has ${O} and ${A}`);
        for (let i = 0; i < b.length; i++, row++) {
          states.offer(b, i, row);
          starts.offer(b, i, row);
          if (row < refLimit) ref.offer(b, i, row);
        }
        opts.onProgress?.('read', row, null);
      }),
    ),
    { defaultValue: undefined },
  );
  if (row === 0) throw new UserError(`${cfg.dataset}: no transitions`);
  const datasetRows = row;

  // 2. The pairs: dataset states with policy actions, then the rollouts' states step by step.
  const nD = states.size;
  const pairObs: Float32Array[] = [];
  const pairAct: Float32Array[] = [];
  const source: number[] = [];
  const step: number[] = [];
  const origin: number[] = []; // dataset row a state was drawn from (excluded from its distance), or −1
  if (nD > 0) {
    const s = states.obs.subarray(0, nD * O);
    pairObs.push(s);
    pairAct.push(policy.act(s, nD, false).slice());
    for (let i = 0; i < nD; i++) {
      source.push(0);
      step.push(0);
      origin.push(states.index[i]!);
    }
  }
  const nS = starts.size;
  const rolloutPerStep: number[] = [];
  let rolloutRewards: PenaltyDiagnostics['rolloutRewards'] = null;
  if (nS > 0) {
    const { stats } = rolloutRound(
      { ...c.rollout, batch: nS },
      {
        model: ensemble,
        policy,
        starts: starts.obs.subarray(0, nS * O),
        rng: new Rng(c.seed, 'diagnose-penalty/rollout'),
        onBatch: (b, h) => {
          pairObs.push(b.observation);
          pairAct.push(b.action);
          rolloutPerStep.push(b.length);
          // Step 1 keeps the starts' order unless a non-finite row was dropped.
          const known = h === 1 && b.length === nS;
          for (let i = 0; i < b.length; i++) {
            source.push(1);
            step.push(h);
            origin.push(known ? starts.index[i]! : -1);
          }
        },
      },
    );
    rolloutRewards = { model: stats.rawReward.mean, penalty: stats.penalty.mean, penalized: stats.reward.mean };
  }
  const nAll = source.length;
  const obsAll = concat(pairObs, nAll * O);
  const actAll = concat(pairAct, nAll * A);

  // 3. The model at every pair: estimators and the elite mixture; 4. the simulator; true errors.
  const elites = ensemble.elites.slice();
  const specs = estimatorSpecs(ensemble.members, elites, { penalty: c.rollout.penalty, penaltyMembers: c.rollout.penaltyMembers });
  const allMembers = Array.from({ length: ensemble.members }, (_, e) => e);
  const estAll = specs.map(() => new Float64Array(nAll));
  const errAll = Object.fromEntries(TRUE_ERRORS.map((k) => [k, new Float64Array(nAll)])) as Record<TrueError, Float64Array>;
  const valid = new Uint8Array(nAll);
  let skippedInexact = 0;
  let skippedNonFinite = 0;
  const sim = await makeEnv(env, { maxEpisodeSteps: Infinity, stepAfterDone: 'allow' });
  const mcRng = new Rng(c.seed, 'diagnose-penalty/w1');
  const perElite = Math.max(1, Math.ceil(c.w1Samples / elites.length));
  const D = O + 1;
  const truth = new Float64Array(D);
  const pen = new Float32Array(4096);
  const chunk = 4096;
  opts.onProgress?.('simulate', 0, nAll);
  try {
    for (let c0 = 0; c0 < nAll; c0 += chunk) {
      const m = Math.min(chunk, nAll - c0);
      const pred: EnsemblePrediction = ensemble.predict(obsAll.subarray(c0 * O, (c0 + m) * O), actAll.subarray(c0 * A, (c0 + m) * A), m);
      specs.forEach((s, k) => {
        rolloutPenalty(pred, s.kind, s.members === 'all' ? allMembers : elites, pen);
        for (let i = 0; i < m; i++) estAll[k]![c0 + i] = pen[i]!;
      });
      const mix = eliteMixture(pred, elites);
      for (let i = 0; i < m; i++) {
        const g = c0 + i;
        let finite = true;
        for (let j = 0; j < O && finite; j++) finite = Number.isFinite(obsAll[g * O + j]!);
        for (let k = 0; k < specs.length && finite; k++) finite = Number.isFinite(estAll[k]![g]!);
        if (finite) finite = Number.isFinite(mix.rewardMean[i]!);
        if (!finite) {
          skippedNonFinite++;
          continue;
        }
        const st = stateFromObservation(env, obsAll, g * O);
        if (!st.exact) {
          skippedInexact++;
          continue;
        }
        sim.setState(st.qpos, st.qvel);
        const res = sim.step(actAll.subarray(g * A, (g + 1) * A));
        truth.set(res.observation, 0);
        truth[O] = res.reward;
        let se = 0;
        for (let j = 0; j < O; j++) se += (mix.obsMean[i * O + j]! - truth[j]!) ** 2;
        const dr = mix.rewardMean[i]! - truth[O]!;
        errAll.obs[g] = Math.sqrt(se);
        errAll.transition[g] = Math.sqrt(se + dr * dr);
        errAll.reward[g] = Math.abs(dr);
        const mus = elites.map((e) => pred.rewardMean[e * m + i]!);
        const sds = elites.map((e) => Math.sqrt(pred.rewardVar[e * m + i]!));
        errAll.rewardW1[g] = w1MixtureToPoint(mus, sds, truth[O]!);
        errAll.transitionW1[g] = transitionW1(pred, elites, i, m, O, truth, perElite, mcRng);
        valid[g] = 1;
      }
      opts.onProgress?.('simulate', c0 + m, nAll);
    }
  } finally {
    sim.close();
  }
  if (skippedInexact + skippedNonFinite > 0) c.log(`skipped ${skippedInexact} pairs whose state the observation does not pin down and ${skippedNonFinite} non-finite ones`);

  // 5. Distance from the data.
  const keep: number[] = [];
  for (let g = 0; g < nAll; g++) if (valid[g]) keep.push(g);
  if (keep.length === 0) throw new UserError(`no pair could be simulated exactly (${skippedInexact} with clipped velocities, ${skippedNonFinite} non-finite)`);
  const nRef = ref.size;
  const refX = ensemble.normalizer.normalizeInputs(ref.obs.subarray(0, nRef * O), ref.act.subarray(0, nRef * A), nRef);
  const x = ensemble.normalizer.normalizeInputs(obsAll, actAll, nAll);
  const dist = new Float64Array(nAll);
  const In = O + A;
  opts.onProgress?.('distance', 0, keep.length);
  keep.forEach((g, done) => {
    dist[g] = nearestDistance(x, g, refX, nRef, In, ref.index, origin[g]!);
    if (done % 256 === 255) opts.onProgress?.('distance', done + 1, keep.length);
  });
  opts.onProgress?.('distance', keep.length, keep.length);

  // 6. Statistics over slices.
  const estNames = specs.map((s) => s.name);
  const cols = {
    est: Object.fromEntries(specs.map((s, k) => [s.name, keep.map((g) => estAll[k]![g]!)])) as Record<string, number[]>,
    err: Object.fromEntries(TRUE_ERRORS.map((e) => [e, keep.map((g) => errAll[e][g]!)])) as Record<TrueError, number[]>,
    dist: keep.map((g) => dist[g]!),
    source: keep.map((g) => source[g]!),
    step: keep.map((g) => step[g]!),
  };
  const lambda = c.rollout.lambda;
  const all = cols.dist.map((_, i) => i);
  const slice = (ix: number[]) => sliceStats(ix, cols, estNames, lambda);
  const bySrc = (s: number) => {
    const ix = all.filter((i) => cols.source[i] === s);
    return ix.length > 0 ? slice(ix) : null;
  };
  const byStep: PenaltyDiagnostics['byStep'] = [];
  for (let h = 1; h <= c.rollout.horizon; h++) {
    const ix = all.filter((i) => cols.source[i] === 1 && cols.step[i] === h);
    if (ix.length > 0) byStep.push({ step: h, ...slice(ix) });
  }
  const sortedDist = Float64Array.from(cols.dist).sort();
  const edges = Array.from({ length: c.bins + 1 }, (_, b) => quantile(sortedDist, b / c.bins)!);
  const byDistance: PenaltyDiagnostics['byDistance'] = [];
  for (let b = 0; b < c.bins; b++) {
    const lo = edges[b]!;
    const hi = edges[b + 1]!;
    const ix = all.filter((i) => (b === 0 ? cols.dist[i]! >= lo : cols.dist[i]! > lo) && cols.dist[i]! <= hi);
    if (ix.length > 0) byDistance.push({ bin: b, lo, hi, ...slice(ix) });
  }
  const round = (v: number) => (Number.isFinite(v) ? Number(v.toPrecision(6)) : v);
  const report: PenaltyDiagnostics = {
    run: run.dir,
    env,
    dataset: cfg.dataset,
    lambda,
    horizon: c.rollout.horizon,
    penalty: c.rollout.penalty,
    penaltyMembers: c.rollout.penaltyMembers,
    policy: policyInfo,
    ensemble: { dir: run.ensembleDir, members: ensemble.members, elites, override: run.dynamicsOverride },
    states: {
      dataset: cols.source.filter((s) => s === 0).length,
      rollout: cols.source.filter((s) => s === 1).length,
      rolloutStarts: nS,
      rolloutPerStep,
      skippedInexact,
      skippedNonFinite,
    },
    rolloutRewards,
    reference: { rows: nRef, of: Number.isFinite(refLimit) ? `the first ${refLimit} rows of the dataset (the ensemble's training rows)` : 'all rows of the dataset' },
    datasetRows,
    w1Samples: perElite * elites.length,
    estimators: specs,
    errors: { ...TRUE_ERROR_DESCRIPTIONS },
    overall: slice(all),
    bySource: { dataset: bySrc(0), rollout: bySrc(1) },
    byStep,
    byDistance,
    rows: {
      source: cols.source,
      step: cols.step,
      distance: cols.dist.map(round),
      errors: Object.fromEntries(TRUE_ERRORS.map((e) => [e, cols.err[e].map(round)])) as Record<TrueError, number[]>,
      estimators: Object.fromEntries(estNames.map((n) => [n, cols.est[n]!.map(round)])),
    },
    seconds: 0,
  };
  report.seconds = (performance.now() - c.t0) / 1000;
  if (opts.write ?? true) {
    const base = penaltyReportBase(run);
    await writeFileAtomic(join(run.dir, `${base}.json`), JSON.stringify(report, jsonSafe) + '\n');
    await writeFileAtomic(join(run.dir, `${base}.html`), penaltyReportHtml(report));
  }
  return report;
}

/** JSON has no Infinity/NaN: they become null. */
function jsonSafe(_k: string, v: unknown): unknown {
  return typeof v === 'number' && !Number.isFinite(v) ? null : v;
}

function concat(parts: Float32Array[], total: number): Float32Array {
  const out = new Float32Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * E‖X − y‖₂ for X from the equal mixture of the elites' diagonal Gaussians over (s′, r), by Monte
 * Carlo stratified over the elites (`perElite` draws each): unbiased, and exact for the mixture
 * weights.
 */
function transitionW1(pred: EnsemblePrediction, elites: readonly number[], i: number, n: number, O: number, y: Float64Array, perElite: number, rng: Rng): number {
  let total = 0;
  for (const e of elites) {
    const base = (e * n + i) * O;
    const rm = pred.rewardMean[e * n + i]!;
    const rs = Math.sqrt(pred.rewardVar[e * n + i]!);
    for (let k = 0; k < perElite; k++) {
      let s = 0;
      for (let j = 0; j < O; j++) {
        const d = pred.nextObsMean[base + j]! + Math.sqrt(pred.nextObsVar[base + j]!) * rng.normal() - y[j]!;
        s += d * d;
      }
      const dr = rm + rs * rng.normal() - y[O]!;
      total += Math.sqrt(s + dr * dr);
    }
  }
  return total / (perElite * elites.length);
}

/** Euclidean distance from row g of x to its nearest reference row, skipping the row `exclude` came from. */
function nearestDistance(x: Float32Array, g: number, ref: Float32Array, nRef: number, In: number, refIndex: Float64Array, exclude: number): number {
  let best = Infinity;
  const xo = g * In;
  for (let r = 0; r < nRef; r++) {
    if (refIndex[r] === exclude) continue;
    const ro = r * In;
    let s = 0;
    for (let j = 0; j < In && s < best; j++) {
      const d = x[xo + j]! - ref[ro + j]!;
      s += d * d;
    }
    if (s < best) best = s;
  }
  return Math.sqrt(best);
}

function sliceStats(ix: number[], cols: { est: Record<string, number[]>; err: Record<TrueError, number[]>; dist: number[] }, estNames: string[], lambda: number): Slice {
  const pick = (v: number[]) => ix.map((i) => v[i]!);
  const mean = (v: number[]) => v.reduce((s, x) => s + x, 0) / Math.max(1, v.length);
  const median = (v: number[]) => quantile(Float64Array.from(v).sort(), 0.5) ?? 0;
  const errs = Object.fromEntries(TRUE_ERRORS.map((e) => [e, pick(cols.err[e])])) as Record<TrueError, number[]>;
  const d = pick(cols.dist);
  const estimators: Record<string, EstimatorStats> = {};
  for (const name of estNames) {
    const u = pick(cols.est[name]!);
    const rec = <T>(f: (e: TrueError, ev: number[]) => T) => Object.fromEntries(TRUE_ERRORS.map((e) => [e, f(e, errs[e])])) as Record<TrueError, T>;
    estimators[name] = {
      mean: mean(u),
      pearson: rec((_, ev) => pearson(u, ev)),
      spearman: rec((_, ev) => spearman(u, ev)),
      coverage: rec((_, ev) => ev.reduce((s, x, k) => s + (lambda * u[k]! >= x ? 1 : 0), 0) / ev.length),
      lambdaNeeded: rec((_, ev) => {
        const ratio = Float64Array.from(ev, (x, k) => (x === 0 ? 0 : u[k]! > 0 ? x / u[k]! : Infinity)).sort();
        const q = (p: number) => {
          const v = quantile(ratio, p);
          return v === null || !Number.isFinite(v) ? null : v;
        };
        return { q50: q(0.5), q90: q(0.9), q95: q(0.95) };
      }),
    };
  }
  return {
    n: ix.length,
    error: Object.fromEntries(TRUE_ERRORS.map((e) => [e, { mean: mean(errs[e]), median: median(errs[e]) }])) as Slice['error'],
    distance: { mean: mean(d), median: median(d) },
    estimators,
  };
}

// ---------------------------------------------------------------------------------------------
// The HTML page

const escHtml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const f3 = (v: number | null | undefined) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(3));
const pctS = (v: number | null | undefined) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : `${(100 * v).toFixed(1)} %`);
const g3 = (v: number | null | undefined) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : Number(v.toPrecision(3)).toString());

/** A self-contained page (inline SVG, inline CSS, no script, no network). */
export function penaltyReportHtml(r: PenaltyDiagnostics): string {
  const est = r.estimators;
  const o = r.overall;
  const rows = r.rows;
  const isDataset = rows.source.map((s) => s === 0);
  const split = (v: number[]) => ({ d: v.filter((_, i) => isDataset[i]), m: v.filter((_, i) => !isDataset[i]) });
  const colors = { dataset: '#1f77b4', rollout: '#d62728' };
  const scatter = (estName: string, err: TrueError, yLabel: string) => {
    const u = split(rows.estimators[estName]!);
    const e = split(rows.errors[err]);
    return scatterSvg({
      title: `${estName} vs ${err}`,
      xLabel: `u(s, a): ${estName}`,
      yLabel,
      xScale: 'log',
      yScale: 'log',
      series: [
        { name: 'dataset states', x: u.d, y: e.d, color: colors.dataset },
        { name: 'rollout states', x: u.m, y: e.m, color: colors.rollout },
      ],
      lines: r.lambda > 0 ? [{ slope: r.lambda, label: `error = λ·u (λ ${r.lambda})` }] : [],
      legendWidth: 175,
    });
  };
  const curves = <S extends Slice>(slices: S[], xOf: (s: S) => number, xLabel: string, title: string, yLabel: string, y: (s: S, name: string) => number | null) =>
    lineChartSvg({
      title,
      xLabel,
      yLabel,
      legendWidth: 190,
      width: 580,
      height: 340,
      series: est.map((e, k) => {
        const pts = slices.map((s) => [xOf(s), y(s, e.name)] as const).filter((p): p is readonly [number, number] => p[1] !== null && Number.isFinite(p[1]));
        return { name: e.name + (e.configured ? ' *' : ''), x: pts.map((p) => p[0]), y: pts.map((p) => p[1]), color: PALETTE[k % PALETTE.length]! };
      }),
    });
  const errCurves = <S extends Slice>(slices: S[], xOf: (s: S) => number, xLabel: string, title: string) => {
    const conf = est.find((e) => e.configured) ?? est[0]!;
    return lineChartSvg({
      title,
      xLabel,
      yLabel: 'mean over the pairs',
      legendWidth: 190,
      width: 580,
      height: 340,
      series: [
        ...(['transitionW1', 'transition', 'rewardW1', 'reward'] as TrueError[]).map((e, k) => ({ name: `error: ${e}`, x: slices.map(xOf), y: slices.map((s) => s.error[e].mean), color: PALETTE[k]! })),
        { name: `λ·u (${conf.name})`, x: slices.map(xOf), y: slices.map((s) => r.lambda * s.estimators[conf.name]!.mean), color: '#000' },
      ],
    });
  };
  const steps = r.byStep;
  const distBins = r.byDistance;
  const distX = (s: { lo: number; hi: number }) => Number(((s.lo + s.hi) / 2).toPrecision(4));

  const table = (s: Slice) => {
    const cols: Array<[string, (x: EstimatorStats) => string]> = [
      ['mean u', (x) => g3(x.mean)],
      ['Spearman<br>vs ‖Δ(s′,r)‖', (x) => f3(x.spearman.transition)],
      ['Spearman<br>vs W₁(s′,r)', (x) => f3(x.spearman.transitionW1)],
      ['Spearman<br>vs |Δr|', (x) => f3(x.spearman.reward)],
      ['Spearman<br>vs W₁(r)', (x) => f3(x.spearman.rewardW1)],
      ['Pearson<br>vs ‖Δ(s′,r)‖', (x) => f3(x.pearson.transition)],
      ['Pearson<br>vs W₁(s′,r)', (x) => f3(x.pearson.transitionW1)],
      ['λu ≥ |Δr|', (x) => pctS(x.coverage.reward)],
      ['λu ≥ W₁(r)', (x) => pctS(x.coverage.rewardW1)],
      ['λu ≥ ‖Δ(s′,r)‖', (x) => pctS(x.coverage.transition)],
      ['λu ≥ W₁(s′,r)', (x) => pctS(x.coverage.transitionW1)],
      ['λ for 95 %<br>W₁(r)', (x) => g3(x.lambdaNeeded.rewardW1.q95)],
      ['λ for 95 %<br>‖Δ(s′,r)‖', (x) => g3(x.lambdaNeeded.transition.q95)],
      ['λ for 95 %<br>W₁(s′,r)', (x) => g3(x.lambdaNeeded.transitionW1.q95)],
    ];
    const head = `<tr><th>estimator</th>${cols.map(([h]) => `<th>${h}</th>`).join('')}</tr>`;
    const body = est
      .map((e) => {
        const x = s.estimators[e.name]!;
        return `<tr${e.configured ? ' class="conf"' : ''}><td>${escHtml(e.name)}${e.configured ? ' *' : ''}</td>${cols.map(([, f]) => `<td>${f(x)}</td>`).join('')}</tr>`;
      })
      .join('\n');
    return `<table>${head}\n${body}</table>`;
  };
  const policy = r.policy.source === 'checkpoint' ? `checkpoint ${escHtml(r.policy.dir)}${r.policy.epoch !== null ? ` (epoch ${r.policy.epoch}, ${r.policy.updates ?? '?'} updates)` : ''}` : `<b>a freshly initialized random policy</b>: ${escHtml(r.policy.note)}`;
  const errList = TRUE_ERRORS.map((e) => `<li><code>${e}</code>: ${escHtml(r.errors[e])}; mean ${g3(o.error[e].mean)}, median ${g3(o.error[e].median)}</li>`).join('\n');
  const scatters = est.map((e) => `<div class="row">${scatter(e.name, 'transitionW1', 'true W₁ of (s′, r)')}${scatter(e.name, 'rewardW1', 'true W₁ of the reward')}</div>`).join('\n');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Penalty diagnostic: ${escHtml(r.run)}</title>
<style>
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1200px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0 16px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
td { white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
tr.conf { background: #fff6d5; }
.row { display: flex; flex-wrap: wrap; gap: 8px; }
.note { color: #555; font-size: 13px; }
</style>
</head>
<body>
<h1>Does the penalty bound the model error?</h1>
<p>Run <code>${escHtml(r.run)}</code> (${escHtml(r.env)}; dataset <code>${escHtml(r.dataset)}</code>, ${r.datasetRows} rows). λ = ${r.lambda}, horizon ${r.horizon}, the run's penalty ${escHtml(r.penalty)} over ${r.penaltyMembers} members (marked *). Ensemble: ${r.ensemble.members} members, elites ${r.ensemble.elites.join(', ')}. Policy: ${policy}.</p>
<p>${r.states.dataset} dataset states and ${r.states.rollout} model-rollout states (${r.states.rolloutStarts} starts, rows per step ${r.states.rolloutPerStep.join(' / ')}) simulated one step in the real simulator; skipped ${r.states.skippedInexact} whose state the observation cannot pin down and ${r.states.skippedNonFinite} non-finite. Distance from the data: nearest neighbour in the ensemble's normalized (s, a) space among ${r.reference.rows} rows from ${escHtml(r.reference.of)}. W₁ of (s′, r) from ${r.w1Samples} Monte Carlo samples a pair.${r.rolloutRewards ? ` The rollouts as SAC learns from them, a step: model reward ${r.rolloutRewards.model.toFixed(3)}, penalty u ${r.rolloutRewards.penalty.toFixed(3)}, r − λu ${r.rolloutRewards.penalized.toFixed(3)}.` : ''}</p>
<h2>Overall (${o.n} pairs)</h2>
${table(o)}
<p class="note">‖Δ(s′,r)‖ is the error of the model's mean; W₁ compares the model's whole distribution with the simulator's deterministic outcome, so it includes the model's own spread (a calibrated but noisy model has W₁ ≥ its spread even where its mean is right).</p>
<p class="note">λu ≥ e: the share of pairs where the penalty at the run's λ covers the true error e (how often MOPO's bound holds). λ for 95 %: the penalty weight that would cover it at 95 % of the pairs.</p>
<ul class="note">${errList}</ul>
${r.bySource.dataset ? `<h3>Dataset states (${r.bySource.dataset.n})</h3>\n${table(r.bySource.dataset)}` : ''}
${r.bySource.rollout ? `<h3>Rollout states (${r.bySource.rollout.n})</h3>\n${table(r.bySource.rollout)}` : ''}
<h2>Along the rollout horizon</h2>
<div class="row">
${curves(steps, (s) => s.step, 'rollout step', 'Spearman ρ(u, ‖Δ(s′, r)‖) per step', 'Spearman ρ', (s, n) => s.estimators[n]!.spearman.transition)}
${curves(steps, (s) => s.step, 'rollout step', 'Spearman ρ(u, W₁ of (s′, r)) per step', 'Spearman ρ', (s, n) => s.estimators[n]!.spearman.transitionW1)}
${curves(steps, (s) => s.step, 'rollout step', 'Bound holds: share with λu ≥ W₁(reward)', 'share of pairs', (s, n) => s.estimators[n]!.coverage.rewardW1)}
${curves(steps, (s) => s.step, 'rollout step', 'Bound holds: share with λu ≥ ‖Δ(s′, r)‖', 'share of pairs', (s, n) => s.estimators[n]!.coverage.transition)}
${curves(steps, (s) => s.step, 'rollout step', 'Bound holds: share with λu ≥ W₁(s′, r)', 'share of pairs', (s, n) => s.estimators[n]!.coverage.transitionW1)}
${errCurves(steps, (s) => s.step, 'rollout step', 'True model error and the penalty per step')}
</div>
<h2>With distance from the data</h2>
<p class="note">${distBins.length} quantile bins of the nearest-neighbour distance (x: bin midpoint): ${distBins.map((b) => `[${g3(b.lo)}, ${g3(b.hi)}] n=${b.n}`).join('; ')}.</p>
<div class="row">
${curves(distBins, distX, 'distance from the data (normalized)', 'Spearman ρ(u, ‖Δ(s′, r)‖) per distance bin', 'Spearman ρ', (s, n) => s.estimators[n]!.spearman.transition)}
${curves(distBins, distX, 'distance from the data (normalized)', 'Spearman ρ(u, W₁ of (s′, r)) per distance bin', 'Spearman ρ', (s, n) => s.estimators[n]!.spearman.transitionW1)}
${curves(distBins, distX, 'distance from the data (normalized)', 'Bound holds: share with λu ≥ W₁(reward)', 'share of pairs', (s, n) => s.estimators[n]!.coverage.rewardW1)}
${curves(distBins, distX, 'distance from the data (normalized)', 'Bound holds: share with λu ≥ ‖Δ(s′, r)‖', 'share of pairs', (s, n) => s.estimators[n]!.coverage.transition)}
${curves(distBins, distX, 'distance from the data (normalized)', 'Bound holds: share with λu ≥ W₁(s′, r)', 'share of pairs', (s, n) => s.estimators[n]!.coverage.transitionW1)}
${errCurves(distBins, distX, 'distance from the data (normalized)', 'True model error and the penalty per distance bin')}
</div>
<h2>Estimator vs true error</h2>
<p class="note">Log–log, against the W₁ of (s′, r) and of the reward (the per-pair mean errors are in diagnose-penalty.json); blue: dataset states, red: model-rollout states; dashed: error = λ·u (points below it are covered by the penalty).</p>
${scatters}
</body>
</html>
`;
}
