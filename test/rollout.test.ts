// MOPO rollouts: the three penalties against hand computations on a fake ensemble, λ = 0 (plain
// MBPO) and λ > 0 rewards, sampling only from elites with the predicted Gaussian, termination,
// dropped non-finite rows, determinism, the operator (triggers, statistics, unsubscribe), config
// validation, and a round on a real DynamicsEnsemble with a SAC policy.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { from, lastValueFrom, map, range, take, toArray } from 'rxjs';
import { initBackend } from '../pipeline/backend.js';
import { Rng } from '../pipeline/random.js';
import { UserError } from '../pipeline/errors.js';
import { TransitionBatch } from '../schemas/transition.js';
import { DynamicsEnsemble, type EnsemblePrediction } from '../operators/ensemble.js';
import { SacAgent } from '../operators/sac.js';
import {
  resolveRolloutConfig, rolloutPenalized, rolloutPenalty, rolloutRound, rolloutTriggers,
  type RolloutConfig, type RolloutModel, type RolloutPolicy, type RolloutStats,
} from '../operators/rollout.js';

before(async () => {
  await initBackend({ log: () => undefined });
});

/** A prediction from per-member, per-row plain numbers: mu[e][i] = [s'..., r], v likewise. */
function prediction(mu: number[][][], v: number[][][]): EnsemblePrediction {
  const E = mu.length;
  const n = mu[0]!.length;
  const O = mu[0]![0]!.length - 1;
  const p: EnsemblePrediction = {
    members: E, n, obsDim: O,
    nextObsMean: new Float32Array(E * n * O), nextObsVar: new Float32Array(E * n * O),
    rewardMean: new Float32Array(E * n), rewardVar: new Float32Array(E * n),
  };
  for (let e = 0; e < E; e++) {
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < O; j++) {
        p.nextObsMean[(e * n + i) * O + j] = mu[e]![i]![j]!;
        p.nextObsVar[(e * n + i) * O + j] = v[e]![i]![j]!;
      }
      p.rewardMean[e * n + i] = mu[e]![i]![O]!;
      p.rewardVar[e * n + i] = v[e]![i]![O]!;
    }
  }
  return p;
}

/**
 * An exact fake ensemble: member e predicts s' = obs + shift(e, obs row) with variance varOf(e),
 * reward = 100·e + obs[0] (so a sample names the member it came from when the variance is 0).
 */
function fakeModel(opts: {
  obsDim: number; actDim: number; members: number; elites: number[];
  shift?: (e: number, j: number) => number; variance?: number; rewardVariance?: number;
}): RolloutModel & { calls: number[] } {
  const { obsDim: O, members: E } = opts;
  const calls: number[] = [];
  return {
    members: E, elites: opts.elites, obsDim: O, actDim: opts.actDim, calls,
    predict(obs, act, n) {
      calls.push(n);
      assert.equal(act.length, n * opts.actDim);
      const p: EnsemblePrediction = {
        members: E, n, obsDim: O,
        nextObsMean: new Float32Array(E * n * O), nextObsVar: new Float32Array(E * n * O).fill(opts.variance ?? 0),
        rewardMean: new Float32Array(E * n), rewardVar: new Float32Array(E * n).fill(opts.rewardVariance ?? 0),
      };
      for (let e = 0; e < E; e++) {
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < O; j++) p.nextObsMean[(e * n + i) * O + j] = obs[i * O + j]! + (opts.shift?.(e, j) ?? 0);
          p.rewardMean[e * n + i] = 100 * e + obs[i * O]!;
        }
      }
      return p;
    },
  };
}

/** Actions that are a fixed function of the observation (deterministic, so tests see exact values). */
const obsPolicy = (O: number, A: number): RolloutPolicy & { stochastic: number } => {
  const p = {
    stochastic: 0,
    act(obs: Float32Array, n: number, deterministic?: boolean) {
      if (!deterministic) p.stochastic++;
      const a = new Float32Array(n * A);
      for (let i = 0; i < n; i++) for (let j = 0; j < A; j++) a[i * A + j] = obs[i * O]! * 0.1 + j;
      return a;
    },
  };
  return p;
};

// ---------------------------------------------------------------------------------------------
// Penalties

// Row 0: three members that disagree; row 1: three identical members with unit variances.
//   member 0: μ = (0, 0 | r 0), σ² = (1, 1 | 2)          ‖σ‖ = 2
//   member 1: μ = (3, 0 | r 4), σ² = (4, 0 | 5)          ‖σ‖ = 3
//   member 2: μ = (0, 0 | r 0), σ² = (0.25, 0.25 | 0.5)  ‖σ‖ = 1
const P = prediction(
  [[[0, 0, 0], [1, 2, 3]], [[3, 0, 4], [1, 2, 3]], [[0, 0, 0], [1, 2, 3]]],
  [[[1, 1, 2], [1, 1, 1]], [[4, 0, 5], [1, 1, 1]], [[0.25, 0.25, 0.5], [1, 1, 1]]],
);

test('max-aleatoric: max over members of the L2 norm of the std over all predicted dims', () => {
  const all = rolloutPenalty(P, 'max-aleatoric', [0, 1, 2]);
  assert.deepEqual(Array.from(all), [3, Math.fround(Math.sqrt(3))]);
  assert.deepEqual(Array.from(rolloutPenalty(P, 'max-aleatoric', [0, 2])), [2, Math.fround(Math.sqrt(3))]);
  assert.deepEqual(Array.from(rolloutPenalty(P, 'max-aleatoric', [2])), [1, Math.fround(Math.sqrt(3))]);
});

test('disagreement: max pairwise distance of the means over (s\', r)', () => {
  // pairs (0,1): √(3² + 4²) = 5, (0,2): 0, (1,2): 5
  assert.deepEqual(Array.from(rolloutPenalty(P, 'disagreement', [0, 1, 2])), [5, 0]);
  assert.deepEqual(Array.from(rolloutPenalty(P, 'disagreement', [0, 2])), [0, 0]);
  assert.deepEqual(Array.from(rolloutPenalty(P, 'disagreement', [1])), [0, 0]);
});

test('ensemble-variance: norm of the mixture std, Σ w(σ² + μ²) − (Σ w μ)² per dim', () => {
  // dim 0: 1.75 + 2 = 3.75; dim 1: 5/12; r: 2.5 + 32/9 → total 92/9
  const all = rolloutPenalty(P, 'ensemble-variance', [0, 1, 2]);
  assert.ok(Math.abs(all[0]! - Math.sqrt(92 / 9)) < 1e-6, `${all[0]}`);
  // the literal mixture formula gives the same
  const lit = (ms: number[], i: number) => {
    let t = 0;
    for (let d = 0; d < 3; d++) {
      const get = (e: number, a: Float32Array, b: Float32Array) => (d < 2 ? a[(e * 2 + i) * 2 + d]! : b[e * 2 + i]!);
      const w = 1 / ms.length;
      const m2 = ms.reduce((s, e) => s + w * (get(e, P.nextObsVar, P.rewardVar) + get(e, P.nextObsMean, P.rewardMean) ** 2), 0);
      const m1 = ms.reduce((s, e) => s + w * get(e, P.nextObsMean, P.rewardMean), 0);
      t += m2 - m1 * m1;
    }
    return Math.sqrt(t);
  };
  assert.ok(Math.abs(all[0]! - lit([0, 1, 2], 0)) < 1e-6);
  // members that agree: the mixture is one member, the same as max-aleatoric
  assert.ok(Math.abs(all[1]! - Math.sqrt(3)) < 1e-6);
  // the same spread around means of 1000: no cancellation to speak of (one pass, in double)
  const far = prediction(
    [[[1000, 1000, 1000]], [[1003, 1000, 1004]], [[1000, 1000, 1000]]],
    [[[1, 1, 2]], [[4, 0, 5]], [[0.25, 0.25, 0.5]]],
  );
  assert.ok(Math.abs(rolloutPenalty(far, 'ensemble-variance', [0, 1, 2])[0]! - Math.sqrt(92 / 9)) < 1e-5);
  const el = rolloutPenalty(P, 'ensemble-variance', [0, 2]);
  assert.ok(Math.abs(el[0]! - Math.sqrt(2.5)) < 1e-6 && Math.abs(el[0]! - lit([0, 2], 0)) < 1e-6, `${el[0]}`);
});

test('penalties: a non-finite input gives a non-finite penalty for that row only; bad member sets are refused', () => {
  const q = prediction([[[0, 0, 0], [0, 0, 0]], [[1, 1, 1], [Number.NaN, 0, 0]]], [[[1, 1, 1], [1, 1, 1]], [[1, 1, 1], [Infinity, 1, 1]]]);
  for (const kind of ['max-aleatoric', 'disagreement', 'ensemble-variance'] as const) {
    const u = rolloutPenalty(q, kind, [0, 1]);
    assert.ok(Number.isFinite(u[0]!) && !Number.isFinite(u[1]!), `${kind}: ${Array.from(u)}`);
  }
  assert.throws(() => rolloutPenalty(q, 'max-aleatoric', [2]), UserError);
  assert.throws(() => rolloutPenalty(q, 'max-aleatoric', []), UserError);
});

// ---------------------------------------------------------------------------------------------
// Rounds

const HC = { obsDim: 17, actDim: 6 };

test('λ = 0 gives reward == raw reward; λ > 0 subtracts λ·penalty; columns and timeouts', () => {
  const model = fakeModel({ ...HC, members: 3, elites: [0, 2], variance: 0.5, rewardVariance: 0.3 });
  const starts = new Rng(1).fillNormal(new Float32Array(40 * 17));
  for (const lambda of [0, 2.5]) {
    const { batches, stats } = rolloutRound({ env: 'halfcheetah', horizon: 3, lambda }, { model, policy: obsPolicy(17, 6), starts, rng: new Rng(2) });
    assert.equal(batches.length, 3);
    for (const b of batches) {
      assert.equal(b.length, 40);
      assert.equal(b.env, 'halfcheetah');
      assert.deepEqual(b.optionalColumns, ['rawReward', 'penalty']);
      assert.ok(b.timeout.every((x) => x === 0) && b.terminal.every((x) => x === 0));
      for (let i = 0; i < b.length; i++) {
        assert.ok(b.penalty![i]! > 0);
        assert.equal(b.reward[i], Math.fround(b.rawReward![i]! - lambda * b.penalty![i]!));
      }
      // max-aleatoric over all members with equal variances: √(17·0.5 + 0.3)
      assert.ok(Math.abs(b.penalty![0]! - Math.sqrt(17 * 0.5 + 0.3)) < 1e-5);
    }
    assert.equal(stats.rows, 120);
    assert.deepEqual(stats.rowsPerStep, [40, 40, 40]);
    assert.ok(Math.abs(stats.penalty.mean - Math.sqrt(8.8)) < 1e-5 && stats.penalty.std < 1e-5);
    // each step starts where the previous one went, in its own array
    for (let h = 1; h < 3; h++) {
      assert.deepEqual(batches[h]!.observation, batches[h - 1]!.nextObservation);
      assert.notEqual(batches[h]!.observation.buffer, batches[h - 1]!.nextObservation.buffer);
    }
  }
});

test('samples come from one elite per row, as mean + std·N(0, 1), with a stochastic policy', () => {
  // variance 0: the reward names the member (100·e + obs[0]); only elites 1 and 3 may appear
  const model = fakeModel({ ...HC, members: 4, elites: [3, 1] });
  const n = 2000;
  const starts = new Float32Array(n * 17);
  const policy = obsPolicy(17, 6);
  const { batches } = rolloutRound({ env: 'halfcheetah', horizon: 1, lambda: 0 }, { model, policy, starts, rng: new Rng(3) });
  assert.equal(policy.stochastic, 1);
  const counts = new Map<number, number>();
  for (const r of batches[0]!.rawReward!) counts.set(r, (counts.get(r) ?? 0) + 1);
  assert.deepEqual([...counts.keys()].sort((a, b) => a - b), [100, 300]);
  assert.ok(Math.abs(counts.get(100)! / n - 0.5) < 0.05, JSON.stringify([...counts]));

  // with variance: s' − s has the predicted std, per dim and for the reward
  const noisy = fakeModel({ ...HC, members: 2, elites: [0, 1], shift: (e, j) => (e === 0 ? 1 : -1) * (j + 1), variance: 4, rewardVariance: 9 });
  const m = 20000;
  const { batches: nb } = rolloutRound({ env: 'halfcheetah', horizon: 1, lambda: 0 }, { model: noisy, policy, starts: new Float32Array(m * 17), rng: new Rng(4) });
  const b = nb[0]!;
  for (const j of [0, 16]) {
    // the mixture of N(±(j+1), 4) with equal weights: mean 0, variance 4 + (j+1)²
    let s = 0, s2 = 0;
    for (let i = 0; i < m; i++) {
      const d = b.nextObservation[i * 17 + j]!;
      s += d;
      s2 += d * d;
    }
    const mean = s / m;
    const variance = s2 / m - mean * mean;
    assert.ok(Math.abs(mean) < 0.15 && Math.abs(variance / (4 + (j + 1) ** 2) - 1) < 0.05, `dim ${j}: ${mean} ${variance}`);
  }
  let rs = 0, rs2 = 0;
  for (let i = 0; i < m; i++) {
    const r = b.rawReward![i]! - 50; // members 0 and 1: means 0 and 100
    rs += r;
    rs2 += r * r;
  }
  assert.ok(Math.abs(rs2 / m - (rs / m) ** 2 - (9 + 2500)) / 2509 < 0.05);
});

test('terminal rows stop (hopper health rule on s\'); only survivors are predicted again', () => {
  // s' = s − 0.3 in z (obs[0]); healthy needs z > 0.7. Starts z = 0.75, 1.05, 2: end at h = 1, 2, never.
  const model = fakeModel({ obsDim: 11, actDim: 3, members: 2, elites: [0, 1], shift: (_e, j) => (j === 0 ? -0.3 : 0) });
  const starts = new Float32Array(3 * 11);
  [0.75, 1.05, 2].forEach((z, i) => (starts[i * 11] = z));
  const { batches, stats } = rolloutRound({ env: 'hopper', horizon: 3, lambda: 0 }, { model, policy: obsPolicy(11, 3), starts, rng: new Rng(5) });
  assert.deepEqual(batches.map((b) => b.length), [3, 2, 1]);
  assert.deepEqual(model.calls, [3, 2, 1]);
  assert.deepEqual(Array.from(batches[0]!.terminal), [1, 0, 0]);
  assert.deepEqual(Array.from(batches[1]!.terminal), [1, 0]);
  assert.deepEqual(Array.from(batches[2]!.terminal), [0]);
  const z = (b: TransitionBatch, col: 'observation' | 'nextObservation') => Array.from({ length: b.length }, (_, i) => +b[col][i * 11]!.toFixed(4));
  assert.deepEqual(z(batches[1]!, 'observation'), [0.75, 1.7]);
  assert.deepEqual(z(batches[2]!, 'observation'), [1.4]);
  assert.deepEqual(z(batches[2]!, 'nextObservation'), [1.1]);
  // the actions were computed from each step's own observations
  assert.ok(Math.abs(batches[2]!.action[0]! - 0.14) < 1e-6);
  assert.equal(stats.terminated, 2);
  assert.ok(Math.abs(stats.terminatedFraction - 2 / 3) < 1e-12);
  assert.deepEqual(stats.rowsPerStep, [3, 2, 1]);
});

test('rows with a non-finite sample are dropped and counted', () => {
  const base = fakeModel({ ...HC, members: 2, elites: [0, 1] });
  const model: RolloutModel = {
    ...base,
    predict(obs, act, n) {
      const p = base.predict(obs, act, n);
      p.nextObsMean[(0 * n + 1) * 17 + 4] = Number.NaN; // row 1, member 0
      p.nextObsMean[(1 * n + 1) * 17 + 4] = Number.NaN; // row 1, member 1
      return p;
    },
  };
  const starts = new Float32Array(4 * 17);
  for (let i = 0; i < 4; i++) starts[i * 17] = i;
  const { batches, stats } = rolloutRound({ env: 'halfcheetah', horizon: 2, lambda: 1 }, { model, policy: obsPolicy(17, 6), starts, rng: new Rng(6) });
  assert.deepEqual(batches.map((b) => b.length), [3, 2]);
  assert.deepEqual(Array.from({ length: 3 }, (_, i) => batches[0]!.observation[i * 17]), [0, 2, 3]);
  assert.equal(stats.nonFinite, 2);
  for (const b of batches) assert.ok(b.nextObservation.every(Number.isFinite) && b.reward.every(Number.isFinite));
});

test('penaltyMembers: elites leaves out a wild non-elite member', () => {
  const model = fakeModel({ ...HC, members: 3, elites: [0, 1], shift: (e) => (e === 2 ? 50 : 0) });
  const starts = new Float32Array(5 * 17);
  const run = (penaltyMembers: 'all' | 'elites') =>
    rolloutRound({ env: 'halfcheetah', horizon: 1, penalty: 'disagreement', penaltyMembers }, { model, policy: obsPolicy(17, 6), starts, rng: new Rng(7) }).batches[0]!.penalty!;
  // elites 0 and 1 agree on s' and differ by 100 in r; member 2 is 50 off in every s' dim and 200 in r
  assert.ok(run('elites').every((u) => Math.abs(u - 100) < 1e-3));
  assert.ok(run('all').every((u) => Math.abs(u - Math.sqrt(17 * 2500 + 200 ** 2)) < 1e-2));
});

// ---------------------------------------------------------------------------------------------
// The operator

function runOperator(config: Partial<RolloutConfig>, triggers: number, onStats?: (s: RolloutStats) => void) {
  const model = fakeModel({ obsDim: 11, actDim: 3, members: 3, elites: [0, 2], shift: (e, j) => (j === 0 ? -0.2 : 0.01 * e), variance: 0.01, rewardVariance: 0.04 });
  const sampleStarts = (n: number, rng: Rng) => {
    const s = new Float32Array(n * 11);
    for (let i = 0; i < n; i++) s[i * 11] = rng.uniform(0.8, 1.6);
    return s;
  };
  return lastValueFrom(
    range(0, triggers).pipe(
      map((step) => ({ step })),
      rolloutPenalized({ env: 'hopper', batch: 64, horizon: 4, lambda: 0.5, ...config }, { model, sampleStarts, policy: obsPolicy(11, 3), onStats }),
      toArray(),
    ),
  );
}

test('operator: batches per step for every trigger, statistics per round, determinism by seed', async () => {
  const stats: RolloutStats[] = [];
  const a = await runOperator({ seed: 3 }, 2, (s) => stats.push(s));
  assert.equal(stats.length, 2);
  assert.deepEqual(stats.map((s) => s.round), [0, 1]);
  assert.equal(a.length, stats[0]!.rowsPerStep.length + stats[1]!.rowsPerStep.length);
  assert.equal(a.reduce((s, b) => s + b.length, 0), stats[0]!.rows + stats[1]!.rows);
  // z falls by 0.2 a step from U(0.8, 1.6): some rows terminate, the rest survive 4 steps
  assert.ok(stats[0]!.terminated > 0 && stats[0]!.terminated < 64 && stats[0]!.rowsPerStep[0] === 64);
  const rows0 = a.slice(0, stats[0]!.rowsPerStep.length);
  const pens = rows0.flatMap((b) => Array.from(b.penalty!));
  const mean = pens.reduce((s, x) => s + x, 0) / pens.length;
  assert.ok(Math.abs(stats[0]!.penalty.mean - mean) < 1e-6 && stats[0]!.penalty.max === Math.max(...pens));
  assert.ok(stats[0]!.seconds.total >= stats[0]!.seconds.predict);

  const b = await runOperator({ seed: 3 }, 2);
  assert.equal(a.length, b.length);
  a.forEach((x, i) => {
    for (const k of ['observation', 'action', 'nextObservation', 'reward', 'rawReward', 'penalty', 'terminal'] as const) assert.deepEqual(x[k], b[i]![k], k);
  });
  const c = await runOperator({ seed: 4 }, 2);
  assert.notDeepEqual(c[0]!.nextObservation, a[0]!.nextObservation);
});

test('operator: the trigger\'s policy wins; unsubscribing ends a round at the next step', async () => {
  const model = fakeModel({ ...HC, members: 2, elites: [0, 1] });
  const sampleStarts = (n: number) => new Float32Array(n * 17);
  const used: string[] = [];
  const named = (name: string): RolloutPolicy => ({ act: (_o, n) => (used.push(name), new Float32Array(n * 6)) });
  const out = await lastValueFrom(
    from([{ policy: named('trigger') }, {}]).pipe(rolloutPenalized({ env: 'halfcheetah', batch: 8, horizon: 2 }, { model, sampleStarts, policy: named('deps') }), toArray()),
  );
  assert.equal(out.length, 4);
  assert.deepEqual(used, ['trigger', 'trigger', 'deps', 'deps']);

  model.calls.length = 0;
  const first = await lastValueFrom(from([{}]).pipe(rolloutPenalized({ env: 'halfcheetah', batch: 8, horizon: 5 }, { model, sampleStarts, policy: named('deps') }), take(1), toArray()));
  assert.equal(first.length, 1);
  assert.deepEqual(model.calls, [8]);

  await assert.rejects(lastValueFrom(from([{}]).pipe(rolloutPenalized({ env: 'halfcheetah', batch: 8 }, { model, sampleStarts }))), /no policy/);
  await assert.rejects(
    lastValueFrom(from([{}]).pipe(rolloutPenalized({ env: 'halfcheetah', batch: 8 }, { model, sampleStarts: () => new Float32Array(3), policy: named('x') }))),
    /sampleStarts returned 3 values/,
  );
});

test('rolloutTriggers: one trigger every rolloutEvery steps, step 0 included', async () => {
  const t = await lastValueFrom(range(0, 2501).pipe(rolloutTriggers({ rolloutEvery: 1000 }), toArray()));
  assert.deepEqual(t, [{ step: 0 }, { step: 1000 }, { step: 2000 }]);
});

// ---------------------------------------------------------------------------------------------
// Config

test('config: defaults, and a UserError naming the field for each bad value', () => {
  const c = resolveRolloutConfig({ env: 'hopper' });
  assert.deepEqual(c, { batch: 50_000, horizon: 5, lambda: 1, penalty: 'max-aleatoric', penaltyMembers: 'all', rolloutEvery: 1000, seed: 0, env: 'hopper' });
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ batch: 0 }, /batch must be a positive integer, got 0/],
    [{ horizon: 1.5 }, /horizon must be a positive integer/],
    [{ rolloutEvery: -1 }, /rolloutEvery/],
    [{ lambda: -0.1 }, /lambda must be a finite number ≥ 0/],
    [{ lambda: Number.NaN }, /lambda/],
    [{ lambda: '1' }, /lambda/],
    [{ penalty: 'max' }, /penalty must be one of max-aleatoric, disagreement, ensemble-variance, got 'max'/],
    [{ penaltyMembers: 'some' }, /penaltyMembers must be 'all' or 'elites'/],
    [{ env: 'ant' }, /env must be one of halfcheetah, hopper, walker2d, pendulum, got 'ant'/],
    [{ env: undefined }, /env is required/],
    [{ seed: 0.5 }, /seed must be an integer/],
    [{ horizn: 5 }, /unknown field 'horizn'/],
  ];
  for (const [partial, re] of bad) {
    assert.throws(() => resolveRolloutConfig({ env: 'hopper', ...partial } as Partial<RolloutConfig>), (e: unknown) => e instanceof UserError && /^rollout config: /.test(e.message) && re.test(e.message), JSON.stringify(partial));
  }
  // the env must be the ensemble's: checked when the operator is built
  const model = fakeModel({ ...HC, members: 2, elites: [0] });
  assert.throws(() => rolloutPenalized({ env: 'hopper' }, { model, sampleStarts: () => new Float32Array(0) }), (e: unknown) => e instanceof UserError && /env 'hopper' has 11-dim observations/.test(e.message));
  assert.throws(() => rolloutPenalized({ env: 'halfcheetah' }, { model: { ...model, elites: [5] }, sampleStarts: () => new Float32Array(0) }), UserError);
});

// ---------------------------------------------------------------------------------------------
// The real pieces

test('a round on a real DynamicsEnsemble with a SAC policy', () => {
  const dims = { obsDim: 11, actDim: 3, env: 'hopper' };
  const ens = DynamicsEnsemble.create({ members: 3, elites: 2, hidden: [8, 8] }, dims, new Rng(8));
  const agent = SacAgent.create({ hidden: [8, 8] }, dims, new Rng(9));
  try {
    const starts = new Float32Array(50 * 11);
    for (let i = 0; i < 50; i++) starts[i * 11] = 1.25;
    const { batches, stats } = rolloutRound({ env: 'hopper', horizon: 2, lambda: 1 }, { model: ens, policy: agent, starts, rng: new Rng(10) });
    assert.ok(batches.length >= 1 && batches[0]!.length === 50);
    // the penalty of the first step is the ensemble's own max-aleatoric at (s, a)
    const b = batches[0]!;
    const u = rolloutPenalty(ens.predict(b.observation, b.action), 'max-aleatoric', [0, 1, 2]);
    for (let i = 0; i < b.length; i++) assert.ok(Math.abs(u[i]! - b.penalty![i]!) <= 1e-6 * u[i]!, `${u[i]} vs ${b.penalty![i]}`);
    assert.ok(stats.penalty.min > 0 && Number.isFinite(stats.penalty.max));
  } finally {
    ens.dispose();
    agent.dispose();
  }
});
