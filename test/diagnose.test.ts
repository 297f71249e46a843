// The pieces of `mopo diagnose dynamics` with exact answers: the least-squares baseline, the
// mixture moments, and observation → simulator state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { solveLeastSquares, linearModelMse, eliteMixture } from '../pipeline/diagnose/dynamics.js';
import { makeEnv, stateFromObservation } from '../pipeline/envs/env.js';
import { Rng } from '../pipeline/random.js';
import type { EnsemblePrediction } from '../operators/ensemble.js';

test('least squares recovers a linear map with intercept; its MSE is the noise', () => {
  const rng = new Rng(1, 'lsq');
  const In = 4;
  const Out = 2;
  const K = In + 1;
  const W = [0.5, -1, 2, 0, 1.5, 0.25, -0.75, 3, 0.1, -2]; // K × Out, intercept row last
  const n = 5000;
  const x = new Float32Array(n * In);
  const y = new Float32Array(n * Out);
  const xtx = new Float64Array(K * K);
  const xty = new Float64Array(K * Out);
  for (let r = 0; r < n; r++) {
    const row = [...Array.from({ length: In }, () => rng.normal()), 1];
    for (let k = 0; k < In; k++) x[r * In + k] = row[k]!;
    for (let o = 0; o < Out; o++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += row[k]! * W[k * Out + o]!;
      y[r * Out + o] = s + 0.1 * rng.normal();
    }
    for (let i = 0; i < K; i++) {
      for (let j = 0; j < K; j++) xtx[i * K + j]! += row[i]! * row[j]!;
      for (let o = 0; o < Out; o++) xty[i * Out + o]! += row[i]! * y[r * Out + o]!;
    }
  }
  const fit = solveLeastSquares(xtx, xty, K, Out, n);
  fit.forEach((w, i) => assert.ok(Math.abs(w - W[i]!) < 0.01, `w[${i}] = ${w}, want ${W[i]}`));
  const mse = linearModelMse(fit, x, y, n, In, Out);
  assert.ok(Math.abs(mse - 0.01) < 0.001, `residual MSE ${mse} ≈ noise variance 0.01`);
});

test('least squares survives a constant input column (std-0 dimension)', () => {
  const K = 3;
  // x = [t, 0, 1]: the middle column is all zeros, so XᵀX is singular without the ridge.
  const xtx = new Float64Array(K * K);
  const xty = new Float64Array(K);
  for (let t = 0; t < 10; t++) {
    const row = [t, 0, 1];
    for (let i = 0; i < K; i++) {
      for (let j = 0; j < K; j++) xtx[i * K + j]! += row[i]! * row[j]!;
      xty[i]! += row[i]! * (2 * t + 1);
    }
  }
  const w = solveLeastSquares(xtx, xty, K, 1, 10);
  assert.ok(Math.abs(w[0]! - 2) < 1e-6 && Math.abs(w[1]!) < 1e-6 && Math.abs(w[2]! - 1) < 1e-6, `${Array.from(w)}`);
});

test('eliteMixture: mean and total variance of the equal-weight mixture of the elites only', () => {
  // 3 members, 1 row, obsDim 1; elites 0 and 2.
  const p: EnsemblePrediction = {
    members: 3,
    n: 1,
    obsDim: 1,
    nextObsMean: Float32Array.of(1, 100, 3),
    nextObsVar: Float32Array.of(0.5, 100, 1.5),
    rewardMean: Float32Array.of(-1, 50, 1),
    rewardVar: Float32Array.of(1, 9, 1),
  };
  const m = eliteMixture(p, [0, 2]);
  assert.equal(m.obsMean[0], 2);
  assert.ok(Math.abs(m.obsVar[0]! - (1 + 1)) < 1e-12, 'mean of variances 1 + variance of means 1');
  assert.equal(m.rewardMean[0], 0);
  assert.ok(Math.abs(m.rewardVar[0]! - 2) < 1e-12);
});

test('stateFromObservation puts the simulator back where an observation was', async () => {
  for (const name of ['halfcheetah', 'hopper', 'pendulum'] as const) {
    const env = await makeEnv(name, { maxEpisodeSteps: Infinity });
    try {
      env.reset(3);
      const a = new Float64Array(env.actionSpec.dim).fill(0.3);
      for (let t = 0; t < 5; t++) env.step(a);
      const obs = env.step(a).observation;
      const next = env.step(a);
      const s = stateFromObservation(name, obs);
      assert.ok(s.exact);
      const back = env.setState(s.qpos, s.qvel);
      back.forEach((v, j) => assert.ok(Math.abs(v - obs[j]!) < 1e-9, `${name} obs[${j}]`));
      const again = env.step(a);
      again.observation.forEach((v, j) => assert.ok(Math.abs(v - next.observation[j]!) < 1e-9, `${name} next obs[${j}]`));
      assert.ok(Math.abs(again.reward - next.reward) < 1e-9, `${name} reward`);
    } finally {
      env.close();
    }
  }
  // Hopper observes velocities clipped to ±10: such a row does not pin the state down.
  const clipped = new Float64Array(11);
  clipped[0] = 1.25;
  clipped[7] = 10;
  assert.equal(stateFromObservation('hopper', clipped).exact, false);
});

test('diagnose dynamics reads the dataset as the run did (an ensemble trained on its first rows, as the quick preset does)', { timeout: 120_000 }, async () => {
  const { join } = await import('node:path');
  const { readFileSync } = await import('node:fs');
  const { withPendulumDataset } = await import('./pendulumFixture.js');
  const { trainDynamicsInto } = await import('../pipeline/commands/trainDynamics.js');
  const { runDiagnoseDynamics } = await import('../pipeline/commands/diagnose.js');
  await withPendulumDataset('mopo-diag-rows-', { steps: 3000, seed: 2 }, async ({ dir, dataset, backend }) => {
    const out = join(dir, 'dyn');
    await trainDynamicsInto(out, { dataset, read: { rows: { start: 0, end: 1500 } }, ensemble: { members: 2, elites: 1, hidden: [16, 16], maxEpochs: 1, workers: 1 }, backend, quiet: true });
    const write = process.stdout.write;
    process.stdout.write = (() => true) as typeof process.stdout.write; // the table; the test runner owns stdout
    try {
      await runDiagnoseDynamics({ run: out, states: 50, horizon: 2, seed: 0, json: false, quiet: true });
    } finally {
      process.stdout.write = write;
    }
    const report = JSON.parse(readFileSync(join(out, 'diagnose-dynamics.json'), 'utf8')) as { rows: number };
    assert.equal(report.rows, 1500, 'the 1,500 rows it was trained on, not the file’s 3,000');
  });
});

test('diagnose dynamics on an unfinished training: its best weights so far, written beside (not as) the final report', { timeout: 120_000 }, async () => {
  const { join } = await import('node:path');
  const { readFileSync, existsSync } = await import('node:fs');
  const { withPendulumDataset } = await import('./pendulumFixture.js');
  const { trainDynamicsInto } = await import('../pipeline/commands/trainDynamics.js');
  const { runDiagnoseDynamics } = await import('../pipeline/commands/diagnose.js');
  await withPendulumDataset('mopo-diag-sofar-', { steps: 2000, seed: 3 }, async ({ dir, dataset, backend }) => {
    const out = join(dir, 'dyn');
    // Ctrl-C during the first epoch: the training stops after it, its state saved.
    await assert.rejects(
      trainDynamicsInto(out, { dataset, read: {}, ensemble: { members: 2, elites: 1, hidden: [16, 16], maxEpochs: 3, workers: 1 }, backend, quiet: true, stopRequested: () => true }),
      /stopped after epoch 0/,
    );
    const write = process.stdout.write;
    let printed = '';
    process.stdout.write = ((s: string) => ((printed += s), true)) as typeof process.stdout.write;
    try {
      await runDiagnoseDynamics({ run: out, states: 30, horizon: 2, seed: 0, json: false, quiet: true });
    } finally {
      process.stdout.write = write;
    }
    assert.match(printed, /^training unfinished: the best weights after epoch 0\n/);
    const report = JSON.parse(readFileSync(join(out, 'diagnose-dynamics-after-epoch-0.json'), 'utf8')) as { unfinished: { afterEpoch: number }; validation: { ratio: number } };
    assert.deepEqual(report.unfinished, { afterEpoch: 0 });
    assert.ok(Number.isFinite(report.validation.ratio));
    assert.ok(!existsSync(join(out, 'diagnose-dynamics.json')), 'the final report is the finished ensemble\'s alone (queues wait for it)');
    await assert.rejects(runDiagnoseDynamics({ run: dir, states: 30, horizon: 2, seed: 0, json: true, quiet: true, dataset }), /no ensemble here .*or an unfinished training's checkpoint/);
  });
});
