// evaluate: scores the learner's deterministic policy in the real simulator every `every` epochs
// (10 episodes by default, stepped in lockstep so the actor runs once per step for all of them)
// and attaches the result to the epoch event: returns, mean ± std, and the D4RL-normalized score.
// Synchronous, so the learner's next update waits for it.
import { map, type OperatorFunction } from 'rxjs';
import { makeEnv, d4rlScore, type Env } from '../pipeline/envs/env.js';
import { UserError } from '../pipeline/errors.js';

export interface EvaluateConfig {
  env: string;
  /** Evaluate after every this many epochs (and after the last one). */
  every: number;
  /**
   * Also after each of the final this many epochs (default 1: the last only). MOPO's reported score
   * is the mean of its last 10 evaluations, one an epoch (the reference's d4rl_results.py, LAST_K).
   */
  lastEpochs?: number;
  episodes: number;
  /** Episode i of every evaluation resets with seed + i (the same start states each time). */
  seed: number;
}

export interface Evaluation {
  returns: number[];
  mean: number;
  std: number;
  /** D4RL-normalized mean and std (null for environments without reference returns). */
  score: number | null;
  scoreStd: number | null;
  seconds: number;
}

export interface Actor {
  act(obs: Float32Array, n: number, deterministic?: boolean): Float32Array;
}

/** Deterministic returns of `envs.length` episodes run in lockstep from the given reset seeds. */
export function evaluateEpisodes(policy: Actor, envs: readonly Env[], seeds: readonly number[]): number[] {
  const n = envs.length;
  if (seeds.length !== n) throw new RangeError(`evaluateEpisodes: ${n} environments, ${seeds.length} seeds`);
  const O = envs[0]!.spec.obsDim;
  const A = envs[0]!.spec.actDim;
  const obs = new Float32Array(n * O);
  const returns = new Array<number>(n).fill(0);
  const alive = envs.map((e, i) => {
    e.reset(seeds[i]).forEach((v, j) => (obs[i * O + j] = v));
    return true;
  });
  const rows = new Float32Array(n * O);
  const idx: number[] = [];
  for (;;) {
    idx.length = 0;
    for (let i = 0; i < n; i++) if (alive[i]) idx.push(i);
    if (idx.length === 0) return returns;
    idx.forEach((i, k) => rows.set(obs.subarray(i * O, (i + 1) * O), k * O));
    const acts = policy.act(rows.subarray(0, idx.length * O), idx.length, true);
    idx.forEach((i, k) => {
      const r = envs[i]!.step(acts.subarray(k * A, (k + 1) * A));
      returns[i]! += r.reward;
      obs.set(r.observation, i * O);
      if (r.terminated || r.truncated) alive[i] = false;
    });
  }
}

/** Mean and population standard deviation (numpy's default, as the reference reports) of a non-empty list. */
export function meanStd(xs: readonly number[]): { mean: number; std: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return { mean, std: Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length) };
}

export function summarizeReturns(env: string, returns: number[], seconds: number): Evaluation {
  const { mean, std } = meanStd(returns);
  let score: number | null = null;
  let scoreStd: number | null = null;
  if (env !== 'pendulum') {
    score = d4rlScore(env, mean);
    scoreStd = Math.abs(d4rlScore(env, mean + std) - score);
  }
  return { returns, mean, std, score, scoreStd, seconds };
}

/** The `episodes` environments an evaluation steps in lockstep (made once per run). */
export function makeEvaluationEnvs(config: Pick<EvaluateConfig, 'env' | 'episodes'>): Promise<Env[]> {
  if (!Number.isInteger(config.episodes) || config.episodes < 1) throw new UserError(`evaluate: episodes must be a positive integer, got ${config.episodes}`);
  return Promise.all(Array.from({ length: config.episodes }, () => makeEnv(config.env)));
}

/** Whether `epoch` gets an evaluation: every `every` epochs, and each of the last `lastEpochs` before `lastEpoch`. */
export function evaluationDue(epoch: number, config: Pick<EvaluateConfig, 'every' | 'lastEpochs'>, lastEpoch?: number): boolean {
  return (epoch + 1) % config.every === 0 || (lastEpoch !== undefined && epoch <= lastEpoch && epoch > lastEpoch - (config.lastEpochs ?? 1));
}

/**
 * Operator over epoch events carrying the learner (SacEpochEvent): adds `evaluation` every
 * `every` epochs and at each of the last `lastEpochs` up to `lastEpoch`, null in between.
 */
export function evaluatePolicyEvery<T extends { epoch: number; agent: { actorPolicy: Actor } }>(
  config: EvaluateConfig,
  envs: readonly Env[],
  opts: { lastEpoch?: number } = {},
): OperatorFunction<T, T & { evaluation: Evaluation | null }> {
  if (!Number.isInteger(config.every) || config.every < 1) throw new UserError(`evaluate: every must be a positive integer, got ${config.every}`);
  if (config.lastEpochs !== undefined && (!Number.isInteger(config.lastEpochs) || config.lastEpochs < 1)) throw new UserError(`evaluate: lastEpochs must be a positive integer, got ${config.lastEpochs}`);
  if (envs.length !== config.episodes) throw new RangeError(`evaluate: ${envs.length} environments for ${config.episodes} episodes`);
  return (source) =>
    source.pipe(
      map((e) => {
        if (!evaluationDue(e.epoch, config, opts.lastEpoch)) return { ...e, evaluation: null };
        const t0 = performance.now();
        const returns = evaluateEpisodes(e.agent.actorPolicy, envs, envs.map((_, i) => config.seed + i));
        return { ...e, evaluation: summarizeReturns(config.env, returns, (performance.now() - t0) / 1000) };
      }),
    );
}
