// Dynamics ensemble: hand-written gradients (NLL, soft log-variance bounds, bound penalty, weight
// decay) against tf.grads, predictions in the original scale, save/load round trip, the early
// stopping rule, the holdout rule, a tiny training run on a linear-Gaussian dataset, and the same
// run with the members split across two worker threads.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { concatWith, defer, from, lastValueFrom, take, tap, throwError, toArray } from 'rxjs';
import { initBackend, tf } from '../pipeline/backend.js';
import { Rng } from '../pipeline/random.js';
import { UserError } from '../pipeline/errors.js';
import { TransitionBatch } from '../schemas/transition.js';
import { Normalizer } from '../operators/normalize.js';
import {
  DynamicsEnsemble, EarlyStopping, ENSEMBLE_DEFAULTS, isHoldoutRow, memberOrders, resolveEnsembleConfig, trainEnsemble,
  type EnsembleConfig, type EnsembleDoneEvent, type EnsembleEpochEvent, type EnsembleTrainingEvent,
  type Resample,
} from '../operators/ensemble.js';
import { liveEnsembleWorkers } from '../operators/ensembleWorkerPool.js';
import { Adam } from '../pipeline/mlp.js';
import { weightStats } from './weightStats.js';

before(async () => {
  await initBackend({ log: () => undefined });
});

/** Every member's weights as plain arrays, for exact comparison. */
function weightsOf(e: DynamicsEnsemble): number[][] {
  return e.net.params().map((t) => Array.from(t.dataSync()));
}

/** The loss written plainly with tf ops, as a function of [W1, b1, …, maxLV, minLV]. */
function refLoss(ps: tf.Tensor[], x: tf.Tensor, y: tf.Tensor, cfg: EnsembleConfig): tf.Scalar {
  const L = (ps.length - 2) / 2;
  let h = x;
  for (let l = 0; l < L; l++) {
    const z = tf.add(tf.matMul(h, ps[2 * l]!), ps[2 * l + 1]!);
    h = l < L - 1 ? tf.mul(z, tf.sigmoid(z)) : z;
  }
  const maxLV = ps[2 * L]!;
  const minLV = ps[2 * L + 1]!;
  const D = y.shape[2]!;
  const B = y.shape[1]!;
  const [mu, raw] = tf.split(h, 2, 2);
  let lv = tf.sub(maxLV, tf.softplus(tf.sub(maxLV, raw!)));
  lv = tf.add(minLV, tf.softplus(tf.sub(lv, minLV)));
  const terms = tf.add(tf.mul(tf.square(tf.sub(mu!, y)), tf.exp(tf.neg(lv))), lv);
  const nll = tf.div(tf.sum(terms), cfg.nllReduction === 'sum' ? B : B * D);
  let decay: tf.Tensor = tf.scalar(0);
  for (let l = 0; l < L; l++) decay = tf.add(decay, tf.mul(tf.sum(tf.square(ps[2 * l]!)), cfg.weightDecay[l]! / 2));
  const pen = tf.mul(tf.sub(tf.sum(maxLV), tf.sum(minLV)), cfg.boundPenalty);
  return tf.add(tf.add(nll, pen), decay) as tf.Scalar;
}

const SMALL: Partial<EnsembleConfig> = {
  members: 3, elites: 2, hidden: [5, 4], weightDecay: [0.01, 0.02, 0.03], minLogVarInit: -1.5, maxLogVarInit: 0.7, boundPenalty: 0.05,
};

for (const nllReduction of ['sum', 'mean'] as const) {
  test(`hand-written gradients match tf.grads (NLL ${nllReduction}, bounds, penalty, decay)`, () => {
    const dims = { obsDim: 2, actDim: 2 };
    const ens = DynamicsEnsemble.create({ ...SMALL, nllReduction }, dims, new Rng(11));
    try {
      const rng = new Rng(12);
      const E = 3, B = 6;
      // targets with a wide spread so both bounds are active somewhere
      const x = tf.tensor(rng.fillNormal(new Float32Array(E * B * 4), 0, 2), [E, B, 4]);
      const y = tf.tensor(rng.fillNormal(new Float32Array(E * B * 3), 0, 3), [E, B, 3]);
      // non-zero biases and larger weights, so the bounds' sigmoids are away from 0 and 1
      const ps = ens.net.params().map((p, i) => tf.tensor(rng.fillNormal(new Float32Array(p.size), 0, i % 2 === 0 ? 0.9 : 0.5), p.shape));
      ens.net.setParams(ps);
      const cfg = ens.config;
      const { mine, loss } = tf.tidy(() => {
        const r = ens.lossAndGrads(x, y);
        return { mine: r.grads.map((g) => g.arraySync()), loss: r.loss.arraySync() };
      });
      const params = ens.trainableParams();
      const ref = tf.tidy(() => {
        const f = (...vars: tf.Tensor[]) => refLoss(vars, x, y, cfg);
        const gs = tf.grads(f)(params);
        return { grads: gs.map((g) => g.arraySync()), loss: f(...params).arraySync() };
      });
      assert.ok(Math.abs(loss - ref.loss) < 1e-4 * (1 + Math.abs(ref.loss)), `loss ${loss} vs ${ref.loss}`);
      assert.equal(mine.length, ref.grads.length);
      for (let i = 0; i < mine.length; i++) {
        const a = (mine[i] as number[]).flat(3) as number[];
        const b = (ref.grads[i] as number[]).flat(3) as number[];
        assert.equal(a.length, b.length, `grad ${i} size`);
        let scale = 1e-3;
        for (const v of b) scale = Math.max(scale, Math.abs(v));
        for (let k = 0; k < a.length; k++) assert.ok(Math.abs(a[k]! - b[k]!) < 2e-4 * scale, `grad ${i}[${k}]: ${a[k]} vs ${b[k]}`);
      }
      // the bound gradients are really exercised (not only the ±penalty constant)
      const bmax = (mine[mine.length - 2] as number[][]).flat();
      assert.ok(bmax.some((v) => Math.abs(v - cfg.boundPenalty) > 1e-3));
      x.dispose();
      y.dispose();
    } finally {
      ens.dispose();
    }
  });
}

test('trainStep takes the weight decay in its Adam step: the update of Adam on the gradient with the decay in it', () => {
  const dims = { obsDim: 2, actDim: 2 };
  // A decay large enough to turn the sign of many weights' gradients: Adam's first step is about
  // lr·sign(g), so a decay left out (or applied twice) shows.
  const ens = DynamicsEnsemble.create({ ...SMALL, weightDecay: [1, 2, 3] }, dims, new Rng(13));
  const rng = new Rng(14);
  const x = tf.tensor(rng.fillNormal(new Float32Array(3 * 6 * 4)), [3, 6, 4]);
  const y = tf.tensor(rng.fillNormal(new Float32Array(3 * 6 * 3)), [3, 6, 3]);
  try {
    const before = ens.trainableParams().map((p) => p.clone());
    const step = (decayInGrads: boolean): number[][] => tf.tidy(() => {
      const { grads } = ens.lossAndGrads(x, y, false, undefined, decayInGrads);
      const opt = new Adam(before, { lr: ens.config.lr });
      const out = opt.step(before, grads).map((t) => Array.from(t.dataSync()));
      opt.dispose();
      return out;
    });
    const withDecay = step(true);
    const withoutDecay = step(false);
    ens.trainStep(x, y);
    const after = ens.trainableParams().map((t) => Array.from(t.dataSync()));
    let differs = 0;
    after.forEach((p, i) => p.forEach((v, k) => {
      assert.ok(Math.abs(v - withDecay[i]![k]!) < 1e-6, `param ${i}[${k}]: ${v} vs ${withDecay[i]![k]}`);
      if (Math.abs(v - withoutDecay[i]![k]!) > 1e-4) differs++;
    }));
    assert.ok(differs > 10, `the decay changes the step (${differs} values)`);
    tf.dispose(before);
  } finally {
    tf.dispose([x, y]);
    ens.dispose();
  }
});

test('trainStep lowers the loss, evaluate and predict are consistent, the original scale is restored', () => {
  const dims = { obsDim: 2, actDim: 1 };
  const rng = new Rng(21);
  const n = 64;
  const b = TransitionBatch.allocate(dims, n);
  rng.fillNormal(b.observation, 10, 3);
  rng.fillNormal(b.action, 0, 1);
  for (let i = 0; i < n; i++) {
    b.nextObservation[2 * i] = b.observation[2 * i]! + 0.5 * b.action[i]!;
    b.nextObservation[2 * i + 1] = b.observation[2 * i + 1]! - 0.1 * b.observation[2 * i]!;
    b.reward[i] = 100 + b.action[i]!;
  }
  const norm = Normalizer.ofBatch(b);
  // Normalized targets: predict must undo the targets' scaling (reward ≈ 100 here).
  const ens = DynamicsEnsemble.create({ ...SMALL, hidden: [16, 16], weightDecay: undefined, lr: 3e-3, targets: 'normalized', nllReduction: 'sum' }, dims, new Rng(22), norm);
  try {
    assert.deepEqual(ens.config.weightDecay, [2.5e-5, 5e-5, 7.5e-5]);
    const mb = norm.toModelBatch(b);
    const E = ens.members;
    const xs = new Float32Array(E * n * 3);
    const ys = new Float32Array(E * n * 3);
    for (let e = 0; e < E; e++) {
      xs.set(mb.inputs, e * n * 3);
      ys.set(mb.targets, e * n * 3);
    }
    const first = ens.trainStep(xs, ys, true)!;
    for (let k = 0; k < 150; k++) ens.trainStep(xs, ys);
    const last = ens.trainStep(xs, ys, true)!;
    assert.equal(first.length, E);
    for (let e = 0; e < E; e++) assert.ok(last[e]! < first[e]! - 0.5, `member ${e}: ${first[e]} -> ${last[e]}`);
    assert.equal(ens.takeTrainLoss().length, E);
    const ev = ens.evaluate(mb.inputs, mb.targets);
    assert.equal(ev.rows, n);
    for (let e = 0; e < E; e++) assert.ok(ev.mse[e]! < 0.2, `mse ${ev.mse[e]}`);
    // evaluate's NLL is the training NLL at the same weights
    const nllNow = ens.trainStep(xs, ys, true)!; // computed before this step's update
    for (let e = 0; e < E; e++) assert.ok(Math.abs(nllNow[e]! - ev.nll[e]!) < 1e-3 * (1 + Math.abs(ev.nll[e]!)));
    // predict: original scale, close to the truth after fitting
    const p = ens.predict(b.observation, b.action);
    assert.equal(p.nextObsMean.length, E * n * 2);
    assert.equal(p.rewardVar.length, E * n);
    let err = 0;
    for (let i = 0; i < n; i++) err += Math.abs(p.rewardMean[i]! - b.reward[i]!) + Math.abs(p.nextObsMean[2 * i + 1]! - b.nextObservation[2 * i + 1]!);
    assert.ok(err / n < 0.5, `mean abs error ${err / n}`);
    assert.ok(p.rewardVar.every((v) => v > 0 && Number.isFinite(v)));
    // the variance is exp(lv)·σ²: bounded by exp(maxLV)·σ²
    const bounds = ens.logVarBounds();
    const sr = norm.std.reward[0]!;
    assert.ok(p.rewardVar.every((v) => v <= Math.exp(bounds.max[2]!) * sr * sr * (1 + 1e-5)));
  } finally {
    ens.dispose();
  }
});

test('save/load restores weights, bounds, Adam state, normalizer, elites and config exactly', async () => {
  const dims = { obsDim: 2, actDim: 1 };
  const rng = new Rng(31);
  const b = TransitionBatch.allocate(dims, 40);
  rng.fillNormal(b.observation);
  rng.fillNormal(b.action);
  rng.fillNormal(b.nextObservation);
  rng.fillNormal(b.reward);
  const norm = Normalizer.ofBatch(b);
  const tensorsBefore = tf.memory().numTensors;
  const ens = DynamicsEnsemble.create(SMALL, dims, new Rng(32), norm);
  const dir = await mkdtemp(join(tmpdir(), 'mopo-ens-'));
  try {
    const mb = norm.toModelBatch(b);
    const xs = new Float32Array(3 * 40 * 3);
    const ys = new Float32Array(3 * 40 * 3);
    for (let e = 0; e < 3; e++) {
      xs.set(mb.inputs, e * 120);
      ys.set(mb.targets, e * 120);
    }
    for (let k = 0; k < 5; k++) ens.trainStep(xs, ys);
    ens.setValidation(ens.evaluate(mb.inputs, mb.targets));
    await ens.save(dir);
    await ens.save(dir); // a second save replaces the data file
    assert.equal((await readdir(dir)).filter((f) => f.endsWith('.f32')).length, 1);
    const again = await DynamicsEnsemble.load(dir);
    try {
      assert.deepEqual(again.config, ens.config);
      assert.deepEqual(again.elites, ens.elites);
      assert.deepEqual(again.normalizer.toJSON(), ens.normalizer.toJSON());
      assert.deepEqual(again.validation, ens.validation);
      assert.equal(again.steps, 5);
      const pa = ens.trainableParams().map((t) => Array.from(t.dataSync()));
      const pb = again.trainableParams().map((t) => Array.from(t.dataSync()));
      assert.deepEqual(pb, pa);
      // the next step is identical (Adam moments and step count restored)
      const la = ens.trainStep(xs, ys, true)!;
      const lb = again.trainStep(xs, ys, true)!;
      assert.deepEqual(lb, la);
      assert.deepEqual(again.trainableParams().map((t) => Array.from(t.dataSync())), ens.trainableParams().map((t) => Array.from(t.dataSync())));
      const p1 = ens.predict(b.observation, b.action);
      const p2 = again.predict(b.observation, b.action);
      assert.deepEqual(p2, p1);
    } finally {
      again.dispose();
    }
    // damage is detected
    const f = (await readdir(dir)).find((x) => x.endsWith('.f32'))!;
    const bytes = await readFile(join(dir, f));
    bytes[10] ^= 0xff;
    await writeFile(join(dir, f), bytes);
    await assert.rejects(DynamicsEnsemble.load(dir), UserError);
  } finally {
    ens.dispose();
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(tf.memory().numTensors, tensorsBefore, 'no tensors leak');
});

test('early stopping: > 1 % improvement of any member resets; 5 epochs without stops', () => {
  const s = new EarlyStopping(2, { threshold: 0.01, patience: 5 });
  assert.deepEqual(s.update([1, 1]), [true, true]);
  assert.deepEqual(s.update([0.995, 0.98]), [false, true]); // 0.5 % vs 2 %
  assert.equal(s.epochsSinceImprovement, 0);
  const seq = [
    [0.999, 0.975], // 0.1 %, 0.5 % of 0.98
    [0.991, 0.9703], // member 0: 0.9 % of 1 (best stays 1), member 1: 0.99 %
    [0.992, 0.979],
    [0.995, 0.98],
  ];
  for (const l of seq) {
    assert.deepEqual(s.update(l), [false, false]);
    assert.equal(s.shouldStop, false);
  }
  assert.equal(s.epochsSinceImprovement, 4);
  assert.deepEqual(s.update([0.5, 2]), [true, false]);
  assert.equal(s.epochsSinceImprovement, 0);
  assert.deepEqual(s.best, [0.5, 0.98]);
  assert.deepEqual(s.bestEpoch, [6, 1]);
  for (let k = 0; k < 4; k++) s.update([0.499, 0.98]);
  assert.equal(s.shouldStop, false);
  s.update([Number.NaN, 0.9799]);
  assert.equal(s.shouldStop, true);
  // negative losses (NLL): relative to |best|
  const t = new EarlyStopping(1);
  t.update([-1]);
  assert.deepEqual(t.update([-1.02]), [true]);
  assert.deepEqual(t.update([-1.025]), [false]);
});

test('holdout rule is stable, about the requested share, and config validation', () => {
  let held = 0;
  for (let r = 0; r < 20000; r++) {
    const h = isHoldoutRow(5, r, 0.05);
    assert.equal(isHoldoutRow(5, r, 0.05), h);
    if (h) held++;
  }
  assert.ok(held > 850 && held < 1150, `held ${held}`);
  let diff = 0;
  for (let r = 0; r < 1000; r++) if (isHoldoutRow(5, r, 0.2) !== isHoldoutRow(6, r, 0.2)) diff++;
  assert.ok(diff > 100, 'another seed holds out other rows');
  assert.deepEqual(resolveEnsembleConfig(), { ...ENSEMBLE_DEFAULTS });
  assert.equal(resolveEnsembleConfig().members, 7);
  assert.throws(() => resolveEnsembleConfig({ elites: 8 }), UserError);
  assert.throws(() => resolveEnsembleConfig({ weightDecay: [1e-4] }), UserError);
  assert.throws(() => resolveEnsembleConfig({ init: 'glorot' as never }), /init must be one of 'uniform', 'truncated-normal', 'glorot-uniform', got 'glorot'/);
  assert.throws(() => resolveEnsembleConfig({ resample: 'jackknife' as never }), /resample must be one of 'permutation', 'bootstrap', got 'jackknife'/);
  assert.throws(() => resolveEnsembleConfig({ targets: 'scaled' as never }), /targets must be one of 'normalized', 'raw', got 'scaled'/);
  assert.throws(() => resolveEnsembleConfig({ nllReduction: 'max' as never }), /nllReduction must be one of 'sum', 'mean', got 'max'/);
});

test("init 'truncated-normal': the official code's σ = 1/(2√fan-in) cut at ±2σ, per layer; 'uniform' stays ±1/√fan-in; saved with the ensemble", async () => {
  const dims = { obsDim: 17, actDim: 6 };
  const weights = (init: 'uniform' | 'truncated-normal') => {
    const ens = DynamicsEnsemble.create({ init, hidden: [200, 200] }, dims, new Rng(4));
    try {
      assert.equal(ens.config.init, init);
      return ens.net.params().filter((_, i) => i % 2 === 0).map((w) => ({ fanIn: w.shape[1]!, w: w.dataSync() as Float32Array }));
    } finally {
      ens.dispose();
    }
  };
  // A standard normal cut at ±2 has std √(1 − 4φ(2)/(2Φ(2) − 1)) = 0.8796; a uniform on ±b has b/√3.
  for (const { fanIn, w } of weights('truncated-normal')) {
    const sigma = 1 / (2 * Math.sqrt(fanIn));
    const { mean, std, max } = weightStats(w);
    assert.ok(max <= 2 * sigma * (1 + 1e-6), `fan-in ${fanIn}: |w| ${max} beyond 2σ ${2 * sigma}`);
    assert.ok(max > 1.95 * sigma, `fan-in ${fanIn}: the tails are reached (${max / sigma}σ)`);
    assert.ok(Math.abs(std / (0.8796 * sigma) - 1) < 0.02, `fan-in ${fanIn}: std ${std}, expected ${0.8796 * sigma}`);
    assert.ok(Math.abs(mean) < 0.02 * sigma, `fan-in ${fanIn}: mean ${mean}`);
  }
  for (const { fanIn, w } of weights('uniform')) {
    const { std, max } = weightStats(w);
    assert.ok(max <= 1 / Math.sqrt(fanIn) && max > 0.99 / Math.sqrt(fanIn), `fan-in ${fanIn}: max ${max}`);
    assert.ok(Math.abs(std / (1 / Math.sqrt(3 * fanIn)) - 1) < 0.02, `fan-in ${fanIn}: std ${std}`);
  }
  const ens = DynamicsEnsemble.create({ init: 'truncated-normal', hidden: [8], members: 2, elites: 1 }, dims, new Rng(4));
  const dir = await mkdtemp(join(tmpdir(), 'mopo-ens-init-'));
  try {
    await ens.save(dir);
    const back = await DynamicsEnsemble.load(dir);
    try {
      assert.equal(back.config.init, 'truncated-normal');
    } finally {
      back.dispose();
    }
  } finally {
    ens.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});

/** s' = s + s·M + a·K + noise, r = s·c + a·d + noise; with obsDim 3, actDim 2. */
function linearGaussian(rows: number, seed: number): TransitionBatch[] {
  const rng = new Rng(seed);
  const O = 3, A = 2;
  const M = [[0.1, -0.2, 0.05], [0.3, 0.1, -0.1], [-0.2, 0.2, 0.1]];
  const K = [[0.5, 0, -0.3], [0.2, -0.4, 0.1]];
  const c = [0.4, -0.7, 0.2];
  const d = [1, -0.5];
  const out: TransitionBatch[] = [];
  for (let start = 0; start < rows; start += 500) {
    const n = Math.min(500, rows - start);
    const b = TransitionBatch.allocate({ obsDim: O, actDim: A }, n);
    rng.fillNormal(b.observation, 2, 1.5);
    rng.fillUniform(b.action, -1, 1);
    for (let i = 0; i < n; i++) {
      let r = 0;
      for (let j = 0; j < O; j++) {
        let v = b.observation[i * O + j]!;
        for (let k = 0; k < O; k++) v += b.observation[i * O + k]! * M[k]![j]!;
        for (let k = 0; k < A; k++) v += b.action[i * A + k]! * K[k]![j]!;
        b.nextObservation[i * O + j] = v + 0.05 * rng.normal();
        r += b.observation[i * O + j]! * c[j]!;
      }
      for (let k = 0; k < A; k++) r += b.action[i * A + k]! * d[k]!;
      b.reward[i] = r + 0.05 * rng.normal();
    }
    out.push(b);
  }
  return out;
}

test('trainEnsemble learns a linear-Gaussian dataset, stops early, and returns the best members', async () => {
  const data = linearGaussian(3000, 41);
  let subscriptions = 0;
  const source = new (await import('rxjs')).Observable<TransitionBatch>((sub) => {
    subscriptions++;
    for (const b of data) sub.next(b);
    sub.complete();
  });
  const tensorsBefore = tf.memory().numTensors;
  const t0 = performance.now();
  const events: EnsembleTrainingEvent[] = await lastValueFrom(
    source.pipe(
      trainEnsemble({ members: 3, elites: 2, hidden: [32, 32], batchSize: 64, maxEpochs: 40, patience: 3, improvementThreshold: 0.02, shuffleBuffer: 1000, seed: 3 }),
      toArray(),
    ),
  );
  const secs = (performance.now() - t0) / 1000;
  const epochs = events.filter((e): e is EnsembleEpochEvent => e.type === 'epoch');
  const done = events[events.length - 1] as EnsembleDoneEvent;
  assert.equal(done.type, 'done');
  assert.equal(subscriptions, epochs.length + 1, 'one pass for the normalizer, one per epoch');
  const ens = done.ensemble;
  try {
    const first = epochs[0]!;
    // min(1000, 20 % of 3000 = 600) rows held out, in expectation
    assert.ok(first.valRows > 500 && first.valRows < 700, `valRows ${first.valRows}`);
    assert.equal(first.trainRows + first.valRows, 3000);
    assert.ok(epochs.every((e) => e.valRows === first.valRows && e.trainLoss.length === 3 && e.valLoss.length === 3));
    // normalized targets have variance 1; the noise is small, so the model gets far below it
    for (let e = 0; e < 3; e++) assert.ok(done.validation.mse[e]! < 0.05, `member ${e} val MSE ${done.validation.mse[e]}`);
    assert.ok(epochs[epochs.length - 1]!.trainLoss[0]! < first.trainLoss[0]!);
    // best weights: the returned validation is no worse than any epoch's (up to the 2 % rule)
    for (let e = 0; e < 3; e++) {
      const bestSeen = Math.min(...epochs.map((ev) => ev.valLoss[e]!));
      assert.ok(done.validation.mse[e]! <= bestSeen * 1.021 + 1e-9, `member ${e}: ${done.validation.mse[e]} vs best ${bestSeen}`);
    }
    assert.equal(ens.elites.length, 2);
    const sorted = [...done.validation.mse].map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]).map((x) => x[1]);
    assert.deepEqual([...ens.elites], sorted.slice(0, 2));
    // early stop, unconditionally: patience (3) fired well before maxEpochs (40; this seed stops
    // after 19), i.e. the last 3 epochs improved no member and every earlier epoch was within patience
    assert.equal(done.stoppedBy, 'patience', `ran ${epochs.length} epochs`);
    assert.ok(epochs.length < 40, `ran ${epochs.length} of 40 epochs`);
    assert.equal(done.epochs, epochs.length);
    assert.deepEqual(epochs.slice(-3).map((e) => e.epochsSinceImprovement), [1, 2, 3]);
    assert.ok(epochs.slice(-3).every((e) => e.improved.every((x) => !x)), 'no member improved in the last 3 epochs');
    assert.ok(epochs.slice(0, -1).every((e) => e.epochsSinceImprovement < 3), 'no earlier epoch reached patience');
    // predictions in the original scale
    const b = data[0]!.slice(0, 50);
    const p = ens.predict(b.observation, b.action);
    let err = 0;
    for (let i = 0; i < 50; i++) err += Math.abs(p.rewardMean[ens.elites[0]! * 50 + i]! - b.reward[i]!);
    assert.ok(err / 50 < 0.2, `reward mean abs error ${err / 50}`);
    console.log(`trainEnsemble tiny run: ${epochs.length} epochs (${done.stoppedBy}) in ${secs.toFixed(1)} s, val MSE ${done.validation.mse.map((v) => v.toFixed(4)).join(' ')}`);
  } finally {
    ens.dispose();
  }
  assert.equal(tf.memory().numTensors, tensorsBefore, 'no tensors leak');
});

test("resample 'bootstrap': each member's fixed draw with replacement, reordered every epoch; 'permutation': every row once", async () => {
  const n = 20_000;
  const count = (o: Uint32Array) => {
    const c = new Uint32Array(n);
    for (const i of o) c[i]!++;
    return c;
  };
  const rngA = new Rng(5, 's');
  const rngB = new Rng(6, 's');
  rngB.permutation(10); // another state: another epoch's orders
  const a = memberOrders(n, 3, rngA, 'bootstrap', 9, 4);
  const b = memberOrders(n, 3, rngB, 'bootstrap', 9, 4);
  for (let m = 0; m < 3; m++) {
    assert.equal(a[m]!.length, n);
    assert.deepEqual(count(a[m]!), count(b[m]!), `member ${m}: the same rows, as often, in every epoch`);
    assert.notDeepEqual(a[m], b[m], 'in another order');
    const unique = count(a[m]!).filter((c) => c > 0).length / n;
    assert.ok(Math.abs(unique - (1 - Math.exp(-1))) < 0.01, `a bootstrap sample holds about 63.2 % of the rows: ${unique}`);
  }
  assert.notDeepEqual(count(a[0]!), count(a[1]!), 'members draw their own samples');
  assert.notDeepEqual(count(a[0]!), count(memberOrders(n, 1, new Rng(5, 's'), 'bootstrap', 9, 5)[0]!), 'and another block, another sample');
  // 'permutation' takes the same draws from the shuffle stream, and uses every row once.
  const rngC = new Rng(5, 's');
  const perms = memberOrders(n, 3, rngC, 'permutation', 9, 4);
  for (const o of perms) assert.ok(count(o).every((c) => c === 1));
  assert.deepEqual(rngC.getState(), rngA.getState());

  // In training: recorded in the config, and a different ensemble from the same seed.
  const data = linearGaussian(3000, 44);
  const train = async (resample: Resample) => {
    const events = await lastValueFrom(from(data).pipe(trainEnsemble({ members: 3, elites: 2, hidden: [16], batchSize: 64, maxEpochs: 3, shuffleBuffer: 1000, seed: 3, resample }), toArray()));
    return events[events.length - 1] as EnsembleDoneEvent;
  };
  const boot = await train('bootstrap');
  const perm = await train('permutation');
  try {
    assert.equal(boot.ensemble.config.resample, 'bootstrap');
    assert.notDeepEqual(boot.validation.mse, perm.validation.mse);
    for (const v of boot.validation.mse) assert.ok(Number.isFinite(v) && v < 2 * Math.max(...perm.validation.mse), `bootstrap members fit as well: ${boot.validation.mse} vs ${perm.validation.mse}`);
  } finally {
    boot.ensemble.dispose();
    perm.ensemble.dispose();
  }
});

test("targets 'raw' (the official code's BNN): trains on (Δs, r) as they are; validation MSE and predict in the data's units", async () => {
  // Rewards off mean 0 / std 1, so a raw model read as a normalized one (or the reverse) is off.
  const data = linearGaussian(3000, 43).map((b) => {
    const c = b.slice(0, b.length);
    for (let i = 0; i < c.length; i++) c.reward[i] = 1 + 3 * c.reward[i]!;
    return c;
  });
  const norm = Normalizer.ofBatch(data[0]!);
  const mbRaw = norm.toModelBatch(data[0]!, 'raw');
  const mbNorm = norm.toModelBatch(data[0]!);
  assert.deepEqual(mbRaw.inputs, mbNorm.inputs, 'inputs are normalized either way');
  const b0 = data[0]!;
  for (const i of [0, 7, 499]) {
    for (let j = 0; j < 3; j++) assert.equal(mbRaw.targets[i * 4 + j], Math.fround(b0.nextObservation[i * 3 + j]! - b0.observation[i * 3 + j]!));
    assert.equal(mbRaw.targets[i * 4 + 3], b0.reward[i]);
  }
  const events: EnsembleTrainingEvent[] = await lastValueFrom(
    from(data).pipe(
      trainEnsemble({ members: 3, elites: 2, hidden: [32, 32], batchSize: 64, maxEpochs: 25, patience: 3, shuffleBuffer: 1000, seed: 3, targets: 'raw', nllReduction: 'mean' }),
      toArray(),
    ),
  );
  const done = events[events.length - 1] as EnsembleDoneEvent;
  const ens = done.ensemble;
  const dir = await mkdtemp(join(tmpdir(), 'mopo-ens-raw-'));
  try {
    assert.equal(ens.config.targets, 'raw');
    // The validation MSE is the raw one: recomputed here from predict (the data's units).
    const b = data[1]!;
    const n = b.length;
    const p = ens.predict(b.observation, b.action);
    const ev = ens.evaluateBatch(b);
    for (let e = 0; e < 3; e++) {
      let se = 0;
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < 3; j++) se += (p.nextObsMean[(e * n + i) * 3 + j]! - b.nextObservation[i * 3 + j]!) ** 2;
        se += (p.rewardMean[e * n + i]! - b.reward[i]!) ** 2;
      }
      assert.ok(Math.abs(se / (4 * n) - ev.mse[e]!) < 1e-3 * ev.mse[e]! + 1e-6, `member ${e}: ${se / (4 * n)} vs ${ev.mse[e]}`);
      // and the model fits: its reward error is a small part of the reward's variance
      let rse = 0;
      for (let i = 0; i < n; i++) rse += (p.rewardMean[e * n + i]! - b.reward[i]!) ** 2;
      assert.ok(rse / n < 0.05 * norm.std.reward[0]! ** 2, `member ${e} reward MSE ${rse / n}, variance ${norm.std.reward[0]! ** 2}`);
    }
    // The mode survives a save and load.
    await ens.save(dir);
    const back = await DynamicsEnsemble.load(dir);
    try {
      assert.equal(back.config.targets, 'raw');
      assert.deepEqual(back.predict(b.observation, b.action).rewardMean, p.rewardMean);
    } finally {
      back.dispose();
    }
    // An ensemble saved before the options existed (no targets, no nllReduction in its config) was
    // trained the only way there was then: normalized targets, summed NLL. Not today's defaults.
    const jsonPath = join(dir, 'ensemble.json');
    const saved = JSON.parse(await readFile(jsonPath, 'utf8'));
    delete saved.config.targets;
    delete saved.config.nllReduction;
    delete saved.config.init;
    await writeFile(jsonPath, JSON.stringify(saved));
    const legacy = await DynamicsEnsemble.load(dir);
    try {
      assert.deepEqual([legacy.config.targets, legacy.config.nllReduction, legacy.config.init], ['normalized', 'sum', 'uniform']);
      assert.deepEqual([ENSEMBLE_DEFAULTS.targets, ENSEMBLE_DEFAULTS.nllReduction], ['raw', 'mean']);
    } finally {
      legacy.dispose();
    }
  } finally {
    ens.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});

test('trainEnsemble: empty dataset is a user error; unsubscribing mid-run frees everything; a given normalizer skips the first pass', async () => {
  await assert.rejects(lastValueFrom(from([] as TransitionBatch[]).pipe(trainEnsemble({ members: 2, elites: 1, hidden: [4] }))), UserError);
  const data = linearGaussian(1200, 43);
  const before = tf.memory().numTensors;
  const cfg = { members: 2, elites: 1, hidden: [8], batchSize: 64, maxEpochs: 50, patience: 50, seed: 1 };
  const two = await lastValueFrom(from(data).pipe(trainEnsemble(cfg), take(2), toArray()));
  assert.deepEqual(two.map((e) => e.type), ['epoch', 'epoch']);
  await new Promise((r) => setImmediate(r));
  assert.equal(tf.memory().numTensors, before, 'the abandoned ensemble was disposed');
  let subs = 0;
  const counted = defer(() => {
    subs++;
    return from(data);
  });
  const norm = Normalizer.ofBatch(TransitionBatch.concat(data));
  const evs = await lastValueFrom(counted.pipe(trainEnsemble({ ...cfg, maxEpochs: 2 }, { normalizer: norm }), toArray()));
  const done = evs[evs.length - 1] as EnsembleDoneEvent;
  assert.equal(done.type, 'done');
  assert.equal(done.stoppedBy, 'maxEpochs');
  assert.equal(subs, 2);
  assert.equal(done.ensemble.normalizer, norm);
  done.ensemble.dispose();
  assert.equal(tf.memory().numTensors, before);
});

test('predict in chunks gives the same numbers as row by row (a batch larger than one chunk)', () => {
  const d = { obsDim: 3, actDim: 2 };
  const ens = DynamicsEnsemble.create({ ...SMALL, hidden: [8, 8], weightDecay: undefined }, d, new Rng(41));
  const rng = new Rng(42);
  const n = 9000;
  const obs = rng.fillNormal(new Float32Array(n * 3));
  const act = rng.fillUniform(new Float32Array(n * 2), -1, 1);
  const all = ens.predict(obs, act);
  for (const i of [0, 8191, 8192, 8999]) {
    const one = ens.predict(obs.slice(i * 3, i * 3 + 3), act.slice(i * 2, i * 2 + 2));
    for (let e = 0; e < all.members; e++) {
      for (let j = 0; j < 3; j++) {
        assert.ok(Math.abs(all.nextObsMean[(e * n + i) * 3 + j]! - one.nextObsMean[e * 3 + j]!) < 1e-5, `row ${i} member ${e} dim ${j}`);
        assert.ok(Math.abs(all.nextObsVar[(e * n + i) * 3 + j]! / one.nextObsVar[e * 3 + j]! - 1) < 1e-5);
      }
      assert.ok(Math.abs(all.rewardMean[e * n + i]! - one.rewardMean[e]!) < 1e-5);
    }
  }
  ens.dispose();
});

/** Every number of an ensemble's state (weights, bounds, Adam moments), flattened per tensor. */
function stateArrays(ens: DynamicsEnsemble): Float32Array[] {
  const s = ens.exportMembers(0, ens.members);
  return [...s.params, ...s.m, ...s.v];
}

test('workers 2: the same epochs, weights, Adam state, elites and final ensemble as one thread (up to float rounding)', async () => {
  const data = linearGaussian(3000, 45);
  // 3 blocks an epoch (the last one partial), batches of 64 with a smaller last one; members split 2 + 1.
  const cfg = { members: 3, elites: 2, hidden: [16, 16], batchSize: 64, maxEpochs: 4, patience: 10, shuffleBuffer: 1000, seed: 7 };
  const before = tf.memory().numTensors;
  const run = (workers: number) => lastValueFrom(from(data).pipe(trainEnsemble({ ...cfg, workers }), toArray()));
  const one = await run(1);
  const two = await run(2);
  assert.equal(liveEnsembleWorkers(), 0, 'the workers are gone once the run completes');
  assert.equal(two.length, one.length);
  const close = (a: readonly number[], b: readonly number[], what: string) => {
    assert.equal(a.length, b.length);
    a.forEach((x, i) => assert.ok(Math.abs(x - b[i]!) <= 1e-5 * (1 + Math.abs(b[i]!)), `${what}[${i}]: ${x} vs ${b[i]}`));
  };
  for (let i = 0; i < one.length - 1; i++) {
    const a = one[i] as EnsembleEpochEvent;
    const b = two[i] as EnsembleEpochEvent;
    assert.equal(b.type, 'epoch');
    assert.deepEqual([b.steps, b.trainRows, b.valRows, b.elites, b.improved], [a.steps, a.trainRows, a.valRows, a.elites, a.improved]);
    close(b.trainLoss, a.trainLoss, `epoch ${i} trainLoss`);
    close(b.valLoss, a.valLoss, `epoch ${i} valLoss`);
  }
  const da = one[one.length - 1] as EnsembleDoneEvent;
  const db = two[two.length - 1] as EnsembleDoneEvent;
  try {
    assert.deepEqual([db.epochs, db.stoppedBy, [...db.ensemble.elites], db.ensemble.steps], [da.epochs, da.stoppedBy, [...da.ensemble.elites], da.ensemble.steps]);
    close(db.validation.mse, da.validation.mse, 'final validation');
    const sa = stateArrays(da.ensemble);
    const sb = stateArrays(db.ensemble);
    // the returned members are their best snapshots; the Adam state is the last step's, gathered back
    sa.forEach((a, i) => {
      let scale = 0;
      for (const v of a) scale = Math.max(scale, Math.abs(v));
      for (let k = 0; k < a.length; k++) assert.ok(Math.abs(sb[i]![k]! - a[k]!) <= 1e-4 * scale + 1e-12, `state ${i}[${k}]: ${sb[i]![k]} vs ${a[k]}`);
    });
    assert.equal(db.ensemble.exportMembers(0, 3).optimizerSteps, da.ensemble.exportMembers(0, 3).optimizerSteps);
  } finally {
    da.ensemble.dispose();
    db.ensemble.dispose();
  }
  assert.equal(tf.memory().numTensors, before, 'no tensors leak');
});

test('workers 2: unsubscribing mid-run and a failing source terminate the workers and free everything', async () => {
  const data = linearGaussian(1200, 46);
  const cfg = { members: 2, elites: 1, hidden: [8], batchSize: 64, maxEpochs: 50, patience: 50, shuffleBuffer: 500, seed: 1, workers: 2 };
  const before = tf.memory().numTensors;
  const gone = async () => {
    for (let t = 0; t < 200 && liveEnsembleWorkers() > 0; t++) await new Promise((r) => setTimeout(r, 25));
    assert.equal(liveEnsembleWorkers(), 0, 'every worker thread exited');
    assert.equal(tf.memory().numTensors, before, 'the abandoned ensemble was disposed');
  };
  let sawWorkers = 0;
  const two = await lastValueFrom(from(data).pipe(trainEnsemble(cfg), tap(() => (sawWorkers = Math.max(sawWorkers, liveEnsembleWorkers()))), take(2), toArray()));
  assert.deepEqual(two.map((e) => e.type), ['epoch', 'epoch']);
  assert.equal(sawWorkers, 2, 'two workers trained');
  await gone();
  // the source fails in the third pass (second epoch), mid-training
  let passes = 0;
  const failing = defer(() => {
    passes++;
    return passes < 3 ? from(data) : from(data.slice(0, 1)).pipe(concatWith(throwError(() => new UserError('disk gone'))));
  });
  await assert.rejects(lastValueFrom(failing.pipe(trainEnsemble(cfg))), /disk gone/);
  await gone();
  // one member cannot be split: it trains in the calling thread
  const single = await lastValueFrom(from(data).pipe(trainEnsemble({ ...cfg, members: 1, maxEpochs: 1 }), tap(() => assert.equal(liveEnsembleWorkers(), 0)), toArray()));
  (single[single.length - 1] as EnsembleDoneEvent).ensemble.dispose();
  assert.equal(tf.memory().numTensors, before);
});

test('training state saved after an epoch and resumed continues exactly as the uninterrupted run', async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { saveEnsembleTrainingState, loadEnsembleTrainingState, trainEnsembleFrom } = await import('../operators/ensemble.js');
  const data = linearGaussian(2000, 47);
  const cfg = { members: 3, elites: 2, hidden: [16, 16], batchSize: 64, maxEpochs: 4, patience: 100, shuffleBuffer: 700, seed: 5 };
  const dir = mkdtempSync(join(tmpdir(), 'mopo-ens-resume-'));
  try {
    const straight = (await lastValueFrom(from(data).pipe(trainEnsemble(cfg), toArray()))) as EnsembleTrainingEvent[];
    const a = straight[straight.length - 1] as EnsembleDoneEvent;
    // Second run: save the state after every epoch and stop (as a kill would) once epoch 1 is saved.
    let saved = 0;
    const stop = new Error('stop here');
    const partial = trainEnsembleFrom(from(data), cfg, {
      onEpochState: async (s) => {
        await saveEnsembleTrainingState(join(dir, 'ckpt'), s);
        saved++;
        if (s.epoch === 2) throw stop;
      },
    });
    await assert.rejects(lastValueFrom(partial), (e) => e === stop);
    assert.equal(saved, 2);
    const state = await loadEnsembleTrainingState(join(dir, 'ckpt'));
    assert.ok(state !== null);
    const resumed = (await lastValueFrom(trainEnsembleFrom(from(data), cfg, { resume: state! }).pipe(toArray()))) as EnsembleTrainingEvent[];
    const b = resumed[resumed.length - 1] as EnsembleDoneEvent;
    const epochsB = resumed.filter((e): e is EnsembleEpochEvent => e.type === 'epoch');
    assert.deepEqual(epochsB.map((e) => e.epoch), [2, 3], 'the resumed run starts after the saved epoch');
    assert.equal(b.epochs, 4);
    assert.deepEqual(b.validation.mse, a.validation.mse, 'identical validation');
    const wa = weightsOf(a.ensemble);
    const wb = weightsOf(b.ensemble);
    assert.deepEqual(wb, wa, 'identical weights');
    a.ensemble.dispose();
    b.ensemble.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a resumed training whose cap is lowered to the epochs done, or its patience to the epochs without an improvement, finishes without another epoch, as if capped from the start', async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { saveEnsembleTrainingState, loadEnsembleTrainingState, trainEnsembleFrom } = await import('../operators/ensemble.js');
  const data = linearGaussian(2000, 49);
  // A large step size, so the last epoch is not every member's best: the finish must restore the best weights.
  const cfg = { members: 3, elites: 2, hidden: [16, 16], batchSize: 64, maxEpochs: 6, patience: 100, shuffleBuffer: 700, seed: 7, lr: 0.02 };
  const dir = mkdtempSync(join(tmpdir(), 'mopo-ens-cap-'));
  try {
    const capped = (await lastValueFrom(from(data).pipe(trainEnsemble({ ...cfg, maxEpochs: 3 }), toArray()))) as EnsembleTrainingEvent[];
    const a = capped[capped.length - 1] as EnsembleDoneEvent;
    const stop = new Error('stop here');
    const partial = trainEnsembleFrom(from(data), cfg, {
      onEpochState: async (s) => {
        await saveEnsembleTrainingState(join(dir, 'ckpt'), s);
        if (s.epoch === 3) throw stop;
      },
    });
    await assert.rejects(lastValueFrom(partial), (e) => e === stop);
    const state = (await loadEnsembleTrainingState(join(dir, 'ckpt')))!;
    let passes = 0;
    const workersDuringPass: number[] = [];
    const source = () => {
      passes++;
      workersDuringPass.push(liveEnsembleWorkers());
      return from(data);
    };
    // Asked for two worker threads: with no epoch to train, none is started.
    const events = (await lastValueFrom(trainEnsembleFrom(source, { ...cfg, maxEpochs: 3, workers: 2 }, { resume: state }).pipe(toArray()))) as EnsembleTrainingEvent[];
    assert.deepEqual(events.map((e) => e.type), ['done'], 'no epoch is trained');
    assert.equal(passes, 1, 'one pass, for the held-out rows');
    assert.deepEqual(workersDuringPass, [0], 'no worker thread for a pass that trains nothing');
    const b = events[0] as EnsembleDoneEvent;
    assert.deepEqual([b.epochs, b.stoppedBy], [3, 'maxEpochs']);
    assert.deepEqual(b.validation.mse, a.validation.mse, 'the validation of the run capped from the start');
    assert.deepEqual(b.ensemble.elites, a.ensemble.elites);
    const wa = weightsOf(a.ensemble);
    const wb = weightsOf(b.ensemble);
    assert.deepEqual(wb, wa, "each member's best weights, as the capped run's");
    // The same with the patience lowered to the epochs the state has gone without an improvement
    // (set here: 2): finished at once, by patience, with the same best weights.
    const stale = (await loadEnsembleTrainingState(join(dir, 'ckpt')))!;
    stale.stopping.epochsSinceImprovement = 2;
    const byPatience = (await lastValueFrom(trainEnsembleFrom(source, { ...cfg, patience: 2, workers: 2 }, { resume: stale }).pipe(toArray()))) as EnsembleTrainingEvent[];
    assert.deepEqual(byPatience.map((e) => e.type), ['done'], 'no epoch is trained');
    const c = byPatience[0] as EnsembleDoneEvent;
    assert.deepEqual([c.epochs, c.stoppedBy], [3, 'patience']);
    assert.deepEqual(weightsOf(c.ensemble), wa);
    assert.deepEqual(workersDuringPass, [0, 0], 'no worker thread for it either');
    a.ensemble.dispose();
    b.ensemble.dispose();
    c.ensemble.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadBestSoFar: an unfinished training, looked at now, is the ensemble its finish would hand over', async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { saveEnsembleTrainingState, loadEnsembleTrainingState, loadBestSoFar, trainEnsembleFrom } = await import('../operators/ensemble.js');
  const data = linearGaussian(2000, 48);
  // A large step size, so the last epoch is not every member's best: the best weights must be put back.
  const cfg = { members: 4, elites: 2, hidden: [16, 16], batchSize: 64, maxEpochs: 6, patience: 100, shuffleBuffer: 700, seed: 6, lr: 0.02 };
  const dir = mkdtempSync(join(tmpdir(), 'mopo-ens-sofar-'));
  try {
    // The finished training of 5 epochs, and a longer one whose state is saved after every epoch
    // but the last (the finish follows it): after epoch 4 it had trained exactly the same.
    const done = (await lastValueFrom(from(data).pipe(trainEnsemble({ ...cfg, maxEpochs: 5 })))) as EnsembleDoneEvent;
    await lastValueFrom(trainEnsembleFrom(from(data), cfg, { onEpochState: (s) => saveEnsembleTrainingState(join(dir, 'ckpt'), s) }));
    const state = (await loadEnsembleTrainingState(join(dir, 'ckpt')))!;
    const current = weightsOf(state.ensemble);
    state.ensemble.dispose();
    for (const t of state.best) t.dispose();
    const sofar = (await loadBestSoFar(join(dir, 'ckpt')))!;
    assert.equal(sofar.afterEpoch, 4);
    const w = weightsOf(sofar.ensemble);
    assert.deepEqual(w, weightsOf(done.ensemble), 'the best weights, as the finished training restored them');
    assert.notDeepEqual(w, current, 'not the last epoch\'s weights');
    assert.deepEqual(sofar.ensemble.elites, done.ensemble.elites, 'the same elites');
    assert.equal(await loadBestSoFar(join(dir, 'nothing')), null);
    sofar.ensemble.dispose();
    done.ensemble.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
