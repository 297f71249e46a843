// SAC: hand-written gradients against tfjs autodiff, action scaling, terminal vs timeout,
// checkpoints (exact restore, policy loading, damage), and a short online Pendulum run.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend, tf } from '../pipeline/backend.js';
import { Rng } from '../pipeline/random.js';
import { UserError } from '../pipeline/errors.js';
import { TransitionBatch } from '../schemas/transition.js';
import { from, lastValueFrom, toArray } from 'rxjs';
import { SAC_UPDATE_PARTS, SacAgent, sacUpdates, loadPolicy, resolveSacConfig, trainSacOnline, evaluatePolicy, sacUpdateFlops, type SacConfig, type SacEnv, type SacUpdateInputs } from '../operators/sac.js';
import { PENDULUM, pendulumObserve, pendulumStep, type PendulumState } from '../pipeline/envs/pendulum.js';
import { weightStats } from './weightStats.js';
import { avx2Skip, passOnAvx2 } from './avx2Fixture.js';
import { hasMopoKernel, nativeKernelsInfo, withUnpatchedKernels } from '../pipeline/kernels.js';

before(async () => {
  await initBackend({ log: () => undefined });
});

// ---------------------------------------------------------------------------------------------
// Reference SAC losses written plainly with tf ops; tf.grads differentiates them.

function refMlp(ps: tf.Tensor[], x: tf.Tensor, members: number | null): tf.Tensor {
  let h = members === null ? x : tf.stack(new Array<tf.Tensor>(members).fill(x));
  const L = ps.length / 2;
  for (let l = 0; l < L; l++) {
    h = tf.add(tf.matMul(h, ps[2 * l]!), ps[2 * l + 1]!);
    if (l < L - 1) h = tf.relu(h);
  }
  return h;
}

function refSample(out: tf.Tensor, eps: tf.Tensor, cfg: SacConfig): { a: tf.Tensor; logp: tf.Tensor } {
  const [mean, lsRaw] = tf.split(out, 2, 1) as [tf.Tensor, tf.Tensor];
  const ls = tf.clipByValue(lsRaw, cfg.logStdMin, cfg.logStdMax);
  const u = tf.add(mean, tf.mul(tf.exp(ls), eps));
  const a = tf.tanh(u);
  const logN = tf.sub(tf.sub(tf.mul(tf.square(eps), -0.5), ls), 0.5 * Math.log(2 * Math.PI));
  const corr = tf.mul(tf.sub(tf.sub(Math.log(2), u), tf.softplus(tf.mul(u, -2))), 2); // log(1 - tanh²u)
  return { a, logp: tf.sum(tf.sub(logN, corr), 1) };
}

function refGradients(agent: SacAgent, inp: SacUpdateInputs): { critic: Float32Array[]; actor: Float32Array[]; logAlpha: number } {
  const cfg = agent.config;
  const B = inp.reward.length;
  const O = agent.obsDim;
  const A = agent.actDim;
  const { actor, critic, target, logAlpha } = agent.parameters();
  return tf.tidy(() => {
    const s = tf.tensor(inp.observation, [B, O]);
    const a = tf.tensor(inp.action, [B, A]);
    const r = tf.tensor(inp.reward, [B]);
    const s2 = tf.tensor(inp.nextObservation, [B, O]);
    const notDone = tf.tensor(inp.notDone, [B]);
    const eps = tf.tensor(inp.eps, [B, A]);
    const eps2 = tf.tensor(inp.epsNext, [B, A]);
    const alpha = tf.exp(logAlpha);
    // critic: Σ_i ½ mean (Q_i - y)², y without gradient
    const next = refSample(refMlp(actor, s2, null), eps2, cfg);
    const qT = refMlp(target, tf.concat([s2, next.a], 1), 2).reshape([2, B]);
    const y = tf.add(r, tf.mul(tf.mul(notDone, tf.sub(tf.minimum(qT.slice([0, 0], [1, B]), qT.slice([1, 0], [1, B])).reshape([B]), tf.mul(alpha, next.logp))), cfg.gamma));
    const criticLoss = (...ps: tf.Tensor[]) => {
      const q = refMlp(ps, tf.concat([s, a], 1), 2).reshape([2, B]);
      return tf.mul(tf.sum(tf.mean(tf.square(tf.sub(q, y)), 1)), 0.5) as tf.Scalar;
    };
    const gc = tf.grads(criticLoss)(critic);
    // actor: mean(α log π - min_i Q_i(s, ã))
    const actorLoss = (...ps: tf.Tensor[]) => {
      const cur = refSample(refMlp(ps, s, null), eps, cfg);
      const q = refMlp(critic, tf.concat([s, cur.a], 1), 2).reshape([2, B]);
      const qMin = tf.minimum(q.slice([0, 0], [1, B]), q.slice([1, 0], [1, B])).reshape([B]);
      return tf.mean(tf.sub(tf.mul(alpha, cur.logp), qMin)) as tf.Scalar;
    };
    const ga = tf.grads(actorLoss)(actor);
    // temperature: -mean(log α (log π + H̄)), log π without gradient
    const logp = refSample(refMlp(actor, s, null), eps, cfg).logp;
    const gl = tf.grad((la: tf.Tensor) => tf.neg(tf.mean(tf.mul(la, tf.add(logp, agent.targetEntropy)))) as tf.Scalar)(logAlpha);
    return {
      critic: gc.map((t) => t.dataSync() as Float32Array),
      actor: ga.map((t) => t.dataSync() as Float32Array),
      logAlpha: gl.dataSync()[0]!,
    };
  });
}

function assertClose(actual: Float32Array, expected: Float32Array, what: string, rtol = 2e-4): void {
  assert.equal(actual.length, expected.length, `${what}: size`);
  let scale = 1e-6;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  let maxDiff = 0;
  for (let i = 0; i < actual.length; i++) maxDiff = Math.max(maxDiff, Math.abs(actual[i]! - expected[i]!));
  assert.ok(maxDiff <= rtol * scale, `${what}: max |diff| ${maxDiff.toExponential(2)} > ${rtol} × max |expected| ${scale.toExponential(2)}`);
}

function randomInputs(rng: Rng, B: number, O: number, A: number): SacUpdateInputs {
  const n = (k: number, s = 1) => rng.fillNormal(new Float32Array(k), 0, s);
  return {
    observation: n(B * O),
    action: rng.fillUniform(new Float32Array(B * A), -0.99, 0.99),
    reward: n(B),
    nextObservation: n(B * O),
    notDone: Float32Array.from({ length: B }, (_, i) => (i % 3 === 1 ? 0 : 1)),
    eps: n(B * A),
    epsNext: n(B * A),
  };
}

function randomBatch(rng: Rng, B: number, O: number, A: number, low = -1, high = 1): TransitionBatch {
  const b = TransitionBatch.allocate({ obsDim: O, actDim: A }, B);
  rng.fillNormal(b.observation);
  rng.fillNormal(b.nextObservation);
  rng.fillUniform(b.action, low, high);
  rng.fillNormal(b.reward);
  return b;
}

const noNative = nativeKernelsInfo().isa === null ? `native kernels: ${nativeKernelsInfo().why}` : false;

/** f with the update's elementwise parts as tf ops (every fast kernel but the native ones). */
function onTfOps<T>(f: () => T): T {
  return withUnpatchedKernels(f, { matmul: true, simd: true, gemm: true, native: false });
}

for (const [variant, mode] of [['default clip', 'fused'], ['narrow log-std clip (both bounds active)', 'fused'], ['default clip', 'tf ops'], ['narrow log-std clip (both bounds active)', 'tf ops']] as const) {
  test(`hand-written gradients match tfjs autodiff (${variant}; squash and losses as ${mode === 'fused' ? 'native kernels' : 'tf ops'})`, { skip: mode === 'fused' ? noNative : false }, () => (mode === 'fused' ? (f: () => void) => f() : onTfOps)(() => {
    assert.equal(hasMopoKernel('MopoSacLosses'), mode === 'fused');
    const O = 4;
    const A = 3;
    const B = 7;
    const narrow = variant !== 'default clip';
    const rng = new Rng(narrow ? 11 : 7, 'sac-grad');
    // Large τ and a few real updates first, so target ≠ critic and α ≠ 1.
    const agent = SacAgent.create({ hidden: [16, 12], tau: 0.5, gamma: 0.9, initialAlpha: 0.3, ...(narrow ? { logStdMin: -0.05, logStdMax: 0.04 } : {}) }, { obsDim: O, actDim: A }, rng);
    try {
      for (let i = 0; i < 3; i++) agent.update(randomBatch(rng, B, O, A), { metrics: false });
      const inp = randomInputs(rng, B, O, A);
      const mine = agent.computeGradients(inp);
      const ref = refGradients(agent, inp);
      mine.critic.forEach((g, i) => assertClose(g, ref.critic[i]!, `critic param ${i}`));
      mine.actor.forEach((g, i) => assertClose(g, ref.actor[i]!, `actor param ${i}`));
      assert.ok(Math.abs(mine.logAlpha - ref.logAlpha) <= 1e-4 * Math.max(1, Math.abs(ref.logAlpha)), `log α grad ${mine.logAlpha} vs ${ref.logAlpha}`);
      assert.ok(ref.actor.some((g) => g.some((v) => v !== 0)), 'the actor gradient is not trivially zero');
      if (narrow) {
        // Some log-std outputs are clipped: their gradient rows must vanish in both.
        const out = tf.tidy(() => agent.actorPolicy.actor.predict(tf.tensor(inp.observation, [B, O])).dataSync());
        let clipped = 0;
        for (let i = 0; i < B; i++) for (let j = 0; j < A; j++) {
          const ls = out[i * 2 * A + A + j]!;
          if (ls < -0.05 || ls > 0.04) clipped++;
        }
        assert.ok(clipped > 0 && clipped < B * A, `clip active for some outputs (${clipped} of ${B * A})`);
      }
    } finally {
      agent.dispose();
    }
  }));
}

test('MopoSacSquash, MopoSacLosses, MopoSacSquashGrad (native) == their tf-op forms, saturated tanh, both clips, ties; bad shapes refused', { skip: noNative }, () => {
  const rng = new Rng(5, 'sac-parts');
  const B = 37;
  const A = 6;
  const M = 2;
  const t = (shape: number[], scale = 1) => tf.tensor(rng.fillNormal(new Float32Array(shape.reduce((x, y) => x * y, 1)), 0, scale), shape);
  const close = (got: tf.Tensor, want: tf.Tensor, what: string, rtol = 2e-6) => {
    assert.deepEqual(got.shape, want.shape, `${what}: shape`);
    const g = got.dataSync();
    const w = want.dataSync();
    for (let i = 0; i < g.length; i++) assert.ok(Math.abs(g[i]! - w[i]!) <= rtol * Math.max(1, Math.abs(w[i]!)), `${what}[${i}]: ${g[i]} vs ${w[i]}`);
  };
  const { tf: ref, fused } = SAC_UPDATE_PARTS;
  if (process.env.MOPO_NATIVE_ISA !== undefined) assert.equal(nativeKernelsInfo().isa, process.env.MOPO_NATIVE_ISA);
  tf.tidy(() => {
    // Means to ±40 (tanh saturated, softplus at both ends) and raw log σ far past both clip bounds.
    const out = tf.concat([t([B, A], 12), t([B, A], 10)], 1);
    const eps = t([B, A]);
    const base = t([B, 1], 3);
    const lo = -5;
    const hi = 1;
    const want = ref.squash(out, eps, base, lo, hi);
    const got = fused.squash(out, eps, base, lo, hi);
    close(got.a, want.a, 'a', 1e-6);
    close(got.logp, want.logp, 'log π', 1e-5);
    close(got.aux, want.aux, 'aux (σε | in clip)');
    const inClip = want.aux.slice([0, A], [B, A]).dataSync();
    assert.ok(inClip.some((v) => v === 0) && inClip.some((v) => v === 1), 'some log σ clipped, some not');

    const qPi = t([M, B, 1], 5).bufferSync();
    for (let b = 0; b < B; b += 4) qPi.set(qPi.get(0, b, 0), 1, b, 0); // ties: the first member takes the gradient
    const x = {
      qT: t([M, B, 1], 5), logpNext: t([B, 1], 3), r: t([B, 1]), notDone: tf.tensor(Array.from({ length: B }, (_, i) => (i % 5 === 0 ? 0 : 1)), [B, 1]),
      q: t([M, B, 1], 5), qPi: qPi.toTensor(), logp: want.logp, logAlpha: tf.tensor([-1.3]),
    };
    const lw = ref.losses(x, 0.99, -3);
    const lg = fused.losses(x, 0.99, -3);
    close(lg.dQ, lw.dQ, 'dQ');
    close(lg.dMin, lw.dMin, 'dMin');
    close(lg.gLogAlpha, lw.gLogAlpha, 'g log α', 1e-5);
    close(lg.stats, lw.stats, 'stats', 1e-5);

    const dA = t([M, B, A], 0.1);
    close(fused.squashGrad(dA, got, x.logAlpha), ref.squashGrad(dA, want, x.logAlpha), 'dOut', 1e-5);

    assert.throws(() => fused.squash(tf.zeros([B, 7]), eps, base, lo, hi), /MopoSacSquash: out \[37,7\] is not \[B, 2A\]/);
    assert.throws(() => fused.squash(out, tf.zeros([B, 5]), base, lo, hi), /MopoSacSquash: expected out \[37,12\], eps \[37,6\]/);
    assert.throws(() => fused.losses({ ...x, r: tf.zeros([B + 1, 1]) }, 0.99, -3), /MopoSacLosses: expected .* r \[37,1\]/);
    assert.throws(() => fused.squashGrad(tf.zeros([M, B, 5]), got, x.logAlpha), /MopoSacSquashGrad: expected dA \[2,37,5\], a \[37,5\]/);
  });
});

test('MopoSac*: the AVX2 path (MOPO_NATIVE_ISA=avx2) passes the same check', { skip: avx2Skip }, () => {
  passOnAvx2(import.meta.url, '^MopoSacSquash, MopoSacLosses', 1);
});

test('updates with the native squash and losses follow the tf-op updates: metrics and weights after 30 updates', { skip: noNative }, () => {
  const run = () => {
    const rng = new Rng(3, 'sac-ab');
    const agent = SacAgent.create({ hidden: [32, 32] }, { obsDim: 5, actDim: 3 }, rng);
    const ms = [];
    for (let i = 0; i < 30; i++) ms.push(agent.update(randomBatch(rng, 64, 5, 3)));
    const w = agent.parameters().actor.concat(agent.parameters().critic).map((p) => p.dataSync().slice() as Float32Array);
    agent.dispose();
    return { ms, w };
  };
  const fused = run();
  const ops = onTfOps(run);
  for (let i = 0; i < fused.ms.length; i++) {
    for (const k of ['criticLoss', 'actorLoss', 'alpha', 'entropy', 'qMean'] as const) {
      const a = fused.ms[i]![k];
      const b = ops.ms[i]![k];
      assert.ok(Math.abs(a - b) <= 1e-3 * Math.max(1, Math.abs(b)), `update ${i + 1} ${k}: ${a} vs ${b}`);
    }
  }
  fused.w.forEach((w, i) => assertClose(w, ops.w[i]!, `parameter ${i} after 30 updates`, 1e-3));
});

test('config defaults are the reference and are validated', () => {
  const c = resolveSacConfig({}, 6);
  assert.deepEqual(c.hidden, [256, 256]);
  assert.equal(c.gamma, 0.99);
  assert.equal(c.tau, 0.005);
  assert.equal(c.actorLr, 3e-4);
  assert.equal(c.criticLr, 3e-4);
  assert.equal(c.alphaLr, 3e-4);
  assert.equal(c.batchSize, 256);
  assert.equal(c.logStdMin, -20);
  assert.equal(c.logStdMax, 2);
  assert.deepEqual(c.actionLow, [-1, -1, -1, -1, -1, -1]);
  const agent = SacAgent.create({}, { obsDim: 17, actDim: 6 }, new Rng(1));
  assert.equal(agent.targetEntropy, -6);
  assert.ok(Math.abs(agent.alpha - 1) < 1e-7);
  assert.ok(sacUpdateFlops(agent.config, agent, 256) > 5e8);
  agent.dispose();
  assert.throws(() => resolveSacConfig({ gamma: 1.5 }, 1), UserError);
  assert.throws(() => resolveSacConfig({ actionLow: [1], actionHigh: [0] }, 1), UserError);
  assert.throws(() => resolveSacConfig({ actionLow: [-1, -1] }, 1), UserError);
  assert.equal(c.init, 'uniform');
  assert.throws(() => resolveSacConfig({ init: 'glorot' as never }, 1), /init must be one of uniform, truncated-normal, glorot-uniform \(got "glorot"\)/);
});

test("init 'glorot-uniform': actor and both critics drawn in ±√(6/(fan-in + fan-out)) as Keras' default, layer by layer", () => {
  const dims = { obsDim: 17, actDim: 6 };
  const agent = SacAgent.create({ init: 'glorot-uniform' }, dims, new Rng(2));
  const plain = SacAgent.create({}, dims, new Rng(2));
  try {
    const kernels = (a: SacAgent) => [...a.parameters().actor, ...a.parameters().critic].filter((_, i) => i % 2 === 0);
    const sizes = [[17, 256], [256, 256], [256, 12], [23, 256], [256, 256], [256, 1]];
    const gl = kernels(agent);
    const un = kernels(plain);
    assert.equal(gl.length, sizes.length);
    gl.forEach((w, l) => {
      const [fanIn, fanOut] = sizes[l]!;
      const limit = Math.sqrt(6 / (fanIn! + fanOut!));
      const { max, std } = weightStats(w.dataSync());
      assert.ok(max <= limit && max > 0.98 * limit, `layer ${l}: max |w| ${max} against the limit ${limit}`);
      assert.ok(Math.abs(std / (limit / Math.sqrt(3)) - 1) < 0.05, `layer ${l}: std ${std}, uniform's ${limit / Math.sqrt(3)}`);
      // Not the default: U(±1/√fan-in) differs everywhere but where fan-in + fan-out = 6·fan-in.
      const umax = weightStats(un[l]!.dataSync()).max;
      assert.ok(umax <= 1 / Math.sqrt(fanIn!) && Math.abs(umax - limit) > 0.01 * limit, `layer ${l}: default max ${umax}`);
    });
  } finally {
    agent.dispose();
    plain.dispose();
  }
});

test('act: batched, within the env bounds, deterministic = scaled tanh(mean)', () => {
  const agent = SacAgent.create({ hidden: [8, 8], actionLow: [-2, 0], actionHigh: [2, 10] }, { obsDim: 3, actDim: 2 }, new Rng(3));
  try {
    const n = 50;
    const obs = new Rng(4).fillNormal(new Float32Array(n * 3), 0, 3);
    const a = agent.act(obs, n, false);
    assert.equal(a.length, n * 2);
    for (let i = 0; i < n; i++) {
      assert.ok(a[2 * i]! >= -2 && a[2 * i]! <= 2);
      assert.ok(a[2 * i + 1]! >= 0 && a[2 * i + 1]! <= 10);
    }
    const d = agent.act(obs, n, true);
    const out = tf.tidy(() => agent.actorPolicy.actor.predict(tf.tensor(obs, [n, 3])).dataSync());
    for (let i = 0; i < n; i++) {
      assert.ok(Math.abs(d[2 * i]! - 2 * Math.tanh(out[4 * i]!)) < 1e-5);
      assert.ok(Math.abs(d[2 * i + 1]! - 5 * (Math.tanh(out[4 * i + 1]!) + 1)) < 1e-5);
    }
    assert.deepEqual(agent.act(obs, n, true), d, 'deterministic actions do not draw noise');
    assert.notDeepEqual(agent.act(obs, n, false), a, 'stochastic actions do');
  } finally {
    agent.dispose();
  }
});

test('terminal masks the bootstrap, timeout does not', () => {
  const rng = new Rng(21);
  const base = randomBatch(rng, 32, 3, 2);
  const variant = (flag: 'none' | 'timeout' | 'terminal') => {
    const copy = TransitionBatch.allocate(base.dims, base.length);
    copy.observation.set(base.observation);
    copy.action.set(base.action);
    copy.reward.set(base.reward);
    copy.nextObservation.set(base.nextObservation);
    if (flag === 'timeout') copy.timeout.fill(1);
    if (flag === 'terminal') copy.terminal.fill(1);
    const agent = SacAgent.create({ hidden: [8, 8] }, { obsDim: 3, actDim: 2 }, new Rng(5));
    agent.update(copy, { metrics: false });
    const w = agent.parameters().critic.map((t) => Array.from(t.dataSync()));
    agent.dispose();
    return w;
  };
  const none = variant('none');
  assert.deepEqual(variant('timeout'), none);
  assert.notDeepEqual(variant('terminal'), none);
});

test('sacUpdates operator: one update per batch, metrics every k, no tensor leak', async () => {
  const before = tf.memory().numTensors;
  const rng = new Rng(31);
  const agent = SacAgent.create({ hidden: [8, 8] }, { obsDim: 3, actDim: 2 }, rng);
  const batches = Array.from({ length: 5 }, () => randomBatch(rng, 16, 3, 2));
  const out = await lastValueFrom(from(batches).pipe(sacUpdates(agent, { metricsEvery: 2 }), toArray()));
  assert.deepEqual(out.map((m) => m.updates), [2, 4]);
  assert.ok(out.every((m) => Number.isFinite(m.criticLoss) && m.alpha < 1 && m.entropy !== 0));
  assert.equal(agent.updates, 5);
  agent.dispose();
  assert.equal(tf.memory().numTensors, before);
});

// ---------------------------------------------------------------------------------------------
// Checkpoints

test('checkpoint restores the agent exactly; the actor loads as a policy', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mopo-sac-'));
  try {
    const rng = new Rng(8, 'ckpt');
    const dims = { obsDim: 5, actDim: 2 };
    const agent = SacAgent.create({ hidden: [16, 16], actionLow: [-2, -1], actionHigh: [2, 3] }, dims, rng);
    const data = new Rng(9);
    for (let i = 0; i < 4; i++) agent.update(randomBatch(data, 16, 5, 2, -1, 2), { metrics: false });
    agent.rng.normal(); // leaves a cached spare normal in the Rng
    await agent.saveCheckpoint(dir);
    for (let i = 0; i < 2; i++) agent.update(randomBatch(data, 16, 5, 2), { metrics: false });
    await agent.saveCheckpoint(dir); // the second save replaces the first data file
    const files = (await readdir(dir)).sort();
    assert.deepEqual(files, ['sac-000000006.f32', 'sac.json']);

    const back = await SacAgent.loadCheckpoint(dir);
    try {
      assert.equal(back.updates, 6);
      assert.deepEqual(back.config, agent.config);
      const words = (st: number[]) => st.map((v, i) => (i < 4 ? v >>> 0 : v));
      assert.ok(!Number.isNaN(agent.rng.getState()[4]), 'a spare normal is part of the saved state');
      assert.deepEqual(words(back.rng.getState()), words(agent.rng.getState()));
      const pa = agent.parameters();
      const pb = back.parameters();
      for (const k of ['actor', 'critic', 'target'] as const) {
        pa[k].forEach((t, i) => assert.deepEqual(pb[k][i]!.dataSync(), t.dataSync(), `${k} ${i}`));
      }
      assert.deepEqual(pb.logAlpha.dataSync(), pa.logAlpha.dataSync());
      // Same next update on both (same batch, same noise from the restored Rng): identical results,
      // which also needs identical Adam moments and step counts.
      const batch = randomBatch(data, 16, 5, 2);
      const ma = agent.update(batch);
      const mb = back.update(batch);
      assert.deepEqual(mb, ma);
      const qa = agent.parameters();
      const qb = back.parameters();
      for (const k of ['actor', 'critic', 'target'] as const) {
        qa[k].forEach((t, i) => assert.deepEqual(qb[k][i]!.dataSync(), t.dataSync(), `${k} ${i} after an update`));
      }
      const obs = new Rng(10).fillNormal(new Float32Array(4 * 5));
      assert.deepEqual(back.act(obs, 4, false), agent.act(obs, 4, false));

      // The full checkpoint and a policy-only one both load as policies.
      await agent.saveCheckpoint(dir);
      const p1 = await loadPolicy(dir);
      assert.deepEqual(p1.act(obs, 4, true), agent.act(obs, 4, true));
      p1.dispose();
      const pdir = join(dir, 'policy');
      await agent.savePolicy(pdir);
      const p2 = await loadPolicy(pdir, { rng: new Rng(1) });
      assert.deepEqual(p2.act(obs, 4, true), agent.act(obs, 4, true));
      const a2 = p2.act(obs, 4, false);
      for (let i = 0; i < 4; i++) assert.ok(a2[2 * i]! >= -2 && a2[2 * i]! <= 2 && a2[2 * i + 1]! >= -1 && a2[2 * i + 1]! <= 3);
      p2.dispose();
      await assert.rejects(SacAgent.loadCheckpoint(pdir), UserError);

      // Damage is detected.
      const dataFile = (await readdir(dir)).find((f) => f.endsWith('.f32'))!;
      const bytes = await readFile(join(dir, dataFile));
      bytes[100] ^= 1;
      await writeFile(join(dir, dataFile), bytes);
      await assert.rejects(SacAgent.loadCheckpoint(dir), /checksum/);
      await assert.rejects(loadPolicy(join(dir, 'missing')), UserError);
    } finally {
      back.dispose();
      agent.dispose();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Online training on the pendulum

/** Pendulum-v1 through the SacEnv interface. */
class PendulumAdapter implements SacEnv {
  readonly obsDim = PENDULUM.obsDim;
  readonly actDim = PENDULUM.actDim;
  readonly actionLow = [-PENDULUM.maxTorque];
  readonly actionHigh = [PENDULUM.maxTorque];
  private readonly state: PendulumState = { theta: 0, thetaDot: 0 };
  private t = 0;

  reset(seed: number): Float32Array {
    const rng = new Rng(seed, 'pendulum-reset');
    this.state.theta = rng.uniform(-Math.PI, Math.PI);
    this.state.thetaDot = rng.uniform(-1, 1);
    this.t = 0;
    const o = new Float32Array(3);
    pendulumObserve(this.state, o);
    return o;
  }

  step(action: Float32Array) {
    const reward = pendulumStep(this.state, action[0]!);
    this.t++;
    const observation = new Float32Array(3);
    pendulumObserve(this.state, observation);
    return { observation, reward, terminated: false, truncated: this.t >= PENDULUM.timeLimit };
  }
}

test('online SAC on the pendulum: swings up within 2,500 steps', async () => {
  // Test-sized settings (64-wide nets, batch 128, lr 1e-3, 3 updates per step) so it runs in
  // ~15 s; the reference settings reach an average of about -160 by 5,000 steps (see the report).
  const evalEnv = new PendulumAdapter();
  const seeds = Array.from({ length: 10 }, (_, i) => 1000 + i);
  const rng = new Rng(77);
  const random = { act: (_o: ArrayLike<number>, n: number) => rng.fillUniform(new Float32Array(n), -2, 2) };
  const randomMean = evaluatePolicy(random, evalEnv, seeds).reduce((a, b) => a + b, 0) / seeds.length;
  const critic: number[] = [];
  const episodes: number[] = [];
  const tensorsBefore = tf.memory().numTensors;
  const res = await trainSacOnline({
    env: new PendulumAdapter(),
    evalEnv,
    steps: 2500,
    startSteps: 500,
    updateAfter: 500,
    updateEvery: 50,
    updatesPerStep: 3,
    evalEvery: 2500,
    evalEpisodes: 10,
    seed: 3,
    config: { hidden: [64, 64], batchSize: 128, actorLr: 1e-3, criticLr: 1e-3, alphaLr: 1e-3 },
    metricsEvery: 100,
    onMetrics: (e) => {
      if (e.kind === 'update') critic.push(e.criticLoss);
      if (e.kind === 'episode') episodes.push(e.return);
    },
  });
  try {
    assert.equal(res.episodes, 12);
    assert.equal(episodes.length, 12);
    assert.equal(res.buffer.size, 2500);
    assert.equal(res.updates, 41 * 150); // blocks of 50 × 3 at steps 500, 550, ..., 2500
    const final = res.evals.at(-1)!;
    assert.equal(final.step, 2500);
    // Random torques average about -1250 here; seeds 3-6 measured -199, -147, -136, -147 at 2,500
    // steps (-640 to -1460 with one update per step, i.e. these bounds fail for a weak learner).
    assert.ok(final.meanReturn > -500 && final.meanReturn > randomMean + 500, `eval mean ${final.meanReturn.toFixed(1)} vs random ${randomMean.toFixed(1)}`);
    assert.ok(critic.length === 61 && critic.every(Number.isFinite));
  } finally {
    res.agent.dispose();
  }
  assert.equal(tf.memory().numTensors, tensorsBefore, 'no tensors leak');
});
