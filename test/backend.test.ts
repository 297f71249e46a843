// Backend selection (pipeline/backend.ts) and the dense building blocks (pipeline/mlp.ts):
// overrides, errors, fallback, determinism of init + training step, and the hand-written
// backward pass against tf's autodiff.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, parseBackendName, tf } from '../pipeline/backend.js';
import { UserError } from '../pipeline/errors.js';
import { nativeKernelsInfo } from '../pipeline/kernels.js';
import { Adam, DenseStack, trainStep, type DenseStackSpec } from '../pipeline/mlp.js';
import { Rng } from '../pipeline/random.js';

const savedEnv = process.env['MOPO_BACKEND'];
afterEach(() => {
  if (savedEnv === undefined) delete process.env['MOPO_BACKEND'];
  else process.env['MOPO_BACKEND'] = savedEnv;
});

function collect(): { log: (m: string) => void; lines: string[] } {
  const lines: string[] = [];
  return { log: (m) => lines.push(m), lines };
}

test('automatic choice: tfjs-node is not installed here, so wasm; logged once', async () => {
  delete process.env['MOPO_BACKEND'];
  const c = collect();
  assert.equal(await initBackend({ log: c.log }), 'wasm');
  assert.equal(tf.getBackend(), 'wasm');
  assert.equal(await initBackend({ log: c.log }), 'wasm');
  assert.equal(c.lines.length, 1, c.lines.join('\n'));
  assert.match(c.lines[0]!, /^mopo: compute backend wasm \(tfjs 4\.\d+\.\d+, [^,]+, (SIMD, )?1 thread\)$/);
  // The products' engine: the native gemm where it is built, else XNNPACK.
  const isa = nativeKernelsInfo().isa;
  assert.ok(c.lines[0]!.includes(isa === null ? ', XNNPACK,' : `, native ${isa === 'avx512' ? 'AVX-512' : 'AVX2'} gemm,`), c.lines[0]);
});

test('explicit node falls back to wasm with a warning', async () => {
  const c = collect();
  assert.equal(await initBackend({ backend: 'node', log: c.log }), 'wasm');
  assert.ok(c.lines.some((l) => /node is not available.*tfjs-node/.test(l)), c.lines.join('\n'));
});

test('MOPO_BACKEND selects the backend; the option wins over it', async () => {
  process.env['MOPO_BACKEND'] = 'cpu';
  const c = collect();
  assert.equal(await initBackend({ log: c.log }), 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
  assert.equal(await initBackend({ backend: 'wasm', log: c.log }), 'wasm');
  assert.equal(tf.getBackend(), 'wasm');
  // An invalid env value does not matter when the option is given.
  process.env['MOPO_BACKEND'] = 'gpu';
  assert.equal(await initBackend({ backend: 'wasm', log: c.log }), 'wasm');
  // Case and spaces are forgiven.
  process.env['MOPO_BACKEND'] = ' CPU ';
  assert.equal(await initBackend({ log: c.log }), 'cpu');
  assert.equal(await initBackend({ backend: 'wasm', log: c.log }), 'wasm');
});

test('invalid names are UserErrors naming the flag or the variable and the valid values', async () => {
  await assert.rejects(initBackend({ backend: 'gpu', log: () => undefined }), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /--backend/);
    assert.match(e.message, /node, wasm, cpu/);
    assert.match(e.message, /"gpu"/);
    return true;
  });
  process.env['MOPO_BACKEND'] = 'webgl';
  await assert.rejects(initBackend({ log: () => undefined }), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /MOPO_BACKEND/);
    assert.match(e.message, /node, wasm, cpu/);
    return true;
  });
  assert.throws(() => parseBackendName('tensorflow', '--backend'), UserError);
  assert.equal(parseBackendName('Wasm', '--backend'), 'wasm');
});

const SMALL_CRITIC: DenseStackSpec = { sizes: [23, 32, 32, 1], hidden: 'relu' };
const SMALL_ENSEMBLE: DenseStackSpec = { sizes: [23, 20, 20, 36], hidden: 'swish', members: 3 };

/** Seeded init + `steps` training steps; returns all parameters and the losses. */
function runTraining(spec: DenseStackSpec, seed: number, steps: number): { params: Float32Array[]; losses: number[] } {
  const rng = new Rng(seed, 'test-mlp');
  const net = DenseStack.init(spec, rng);
  const opt = new Adam(net.params(), { lr: 1e-2 });
  const e = spec.members ?? null;
  const inDim = spec.sizes[0]!;
  const outDim = spec.sizes[spec.sizes.length - 1]!;
  const bshape = (d: number): number[] => (e === null ? [16, d] : [e, 16, d]);
  const size = (s: number[]): number => s.reduce((a, b) => a * b, 1);
  const x = tf.tensor(rng.fillNormal(new Float32Array(size(bshape(inDim)))), bshape(inDim));
  const y = tf.tensor(rng.fillNormal(new Float32Array(size(bshape(outDim)))), bshape(outDim));
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    const l = trainStep(net, opt, x, (out) => {
      const d = tf.sub(out, y);
      return { loss: tf.mean(tf.square(d)), dOut: tf.mul(d, 2 / y.size) };
    }, true);
    losses.push(l!);
  }
  const params = net.params().map((p) => p.dataSync() as Float32Array);
  net.dispose();
  opt.dispose();
  tf.dispose([x, y]);
  return { params, losses };
}

test('determinism: same seed -> identical init and training steps; other seed -> different', async () => {
  await initBackend({ backend: 'wasm', log: () => undefined });
  for (const spec of [SMALL_CRITIC, SMALL_ENSEMBLE]) {
    const r1 = runTraining(spec, 42, 3);
    const r2 = runTraining(spec, 42, 3);
    const r3 = runTraining(spec, 43, 3);
    assert.deepEqual(r1.losses, r2.losses);
    r1.params.forEach((p, i) => assert.deepEqual(p, r2.params[i]!, `param ${i}`));
    assert.notDeepEqual(r1.params[0], r3.params[0]);
    assert.ok(r1.losses[2]! < r1.losses[0]!, `loss should go down: ${r1.losses}`);
  }
});

test('seeded init is backend independent and a training step agrees across wasm and cpu', async () => {
  for (const spec of [SMALL_CRITIC, SMALL_ENSEMBLE]) {
    await initBackend({ backend: 'wasm', log: () => undefined });
    const w0 = runTraining(spec, 7, 0);
    const w = runTraining(spec, 7, 2);
    await initBackend({ backend: 'cpu', log: () => undefined });
    const c0 = runTraining(spec, 7, 0);
    const c = runTraining(spec, 7, 2);
    await initBackend({ backend: 'wasm', log: () => undefined });
    w0.params.forEach((p, i) => assert.deepEqual(p, c0.params[i]!, `init param ${i}`));
    w.params.forEach((p, i) => {
      const q = c.params[i]!;
      for (let j = 0; j < p.length; j++) assert.ok(Math.abs(p[j]! - q[j]!) < 1e-4, `param ${i}[${j}]: ${p[j]} vs ${q[j]}`);
    });
  }
});

test('hand-written backward == tf autodiff (critic and ensemble shapes, both backends)', async () => {
  for (const be of ['wasm', 'cpu'] as const) {
    await initBackend({ backend: be, log: () => undefined });
    for (const spec of [SMALL_CRITIC, SMALL_ENSEMBLE, { sizes: [5, 7, 3], hidden: 'tanh' } as DenseStackSpec]) {
      const rng = new Rng(3, 'grad-check');
      const net = DenseStack.init(spec, rng);
      // Non-zero biases so that their gradients matter.
      net.setParams(net.params().map((p, i) => (i % 2 === 1 ? tf.randomNormal(p.shape, 0, 0.5, 'float32', 5) : tf.clone(p))));
      const e = spec.members ?? null;
      const xs = e === null ? [9, spec.sizes[0]!] : [e, 9, spec.sizes[0]!];
      const x = tf.tensor(rng.fillNormal(new Float32Array(xs.reduce((a, b) => a * b, 1))), xs);
      const target = tf.randomNormal([...xs.slice(0, -1), spec.sizes[spec.sizes.length - 1]!], 0, 1, 'float32', 9);
      const loss = (out: tf.Tensor): tf.Scalar => tf.mean(tf.square(tf.sub(out, target)));
      const mineAll = tf.tidy(() => {
        const { out, cache } = net.forward(x);
        const dOut = tf.mul(tf.sub(out, target), 2 / target.size);
        const { grads, dx } = net.backward(cache, dOut, true);
        return [...grads, dx!];
      });
      const mine = { grads: mineAll.slice(0, -1), dx: mineAll[mineAll.length - 1]! };
      const auto = tf.grads((...ps: tf.Tensor[]) => {
        let h = ps[ps.length - 1]!;
        const L = (ps.length - 1) / 2;
        for (let l = 0; l < L; l++) {
          const z = tf.add(tf.matMul(h, ps[2 * l]!), ps[2 * l + 1]!);
          const act = l === L - 1 ? 'linear' : spec.hidden;
          h = act === 'relu' ? tf.relu(z) : act === 'swish' ? tf.mul(z, tf.sigmoid(z)) : act === 'tanh' ? tf.tanh(z) : z;
        }
        return loss(h);
      })([...net.params(), x]);
      const pairs: Array<[tf.Tensor, tf.Tensor, string]> = mine.grads.map((g, i) => [g, auto[i]!, `${be} ${spec.hidden} grad ${i}`]);
      pairs.push([mine.dx!, auto[auto.length - 1]!, `${be} ${spec.hidden} dx`]);
      for (const [g, r, what] of pairs) {
        assert.deepEqual(g.shape, r.shape, what);
        const a = g.dataSync();
        const b = r.dataSync();
        let scale = 1e-6;
        for (const v of b) scale = Math.max(scale, Math.abs(v));
        for (let j = 0; j < a.length; j++) assert.ok(Math.abs(a[j]! - b[j]!) <= 2e-4 * scale, `${what}[${j}]: ${a[j]} vs ${b[j]}`);
      }
      tf.dispose([...mine.grads, mine.dx!, ...auto, x, target]);
      net.dispose();
    }
  }
  await initBackend({ backend: 'wasm', log: () => undefined });
});

test('ensemble with a shared 2-D input == the same input tiled per member', async () => {
  await initBackend({ backend: 'wasm', log: () => undefined });
  const net = DenseStack.init(SMALL_ENSEMBLE, new Rng(11, 'shared'));
  const x2 = tf.randomNormal([10, 23], 0, 1, 'float32', 4);
  const x3 = tf.tile(tf.expandDims(x2, 0), [3, 1, 1]);
  const run = (x: tf.Tensor): tf.Tensor[] => tf.tidy(() => {
    const { out, cache } = net.forward(x);
    return [out, ...net.backward(cache, tf.mul(out, 0.1)).grads];
  });
  const a = run(x2);
  const b = run(x3);
  a.forEach((t, i) => {
    assert.deepEqual(t.shape, b[i]!.shape, `tensor ${i}`);
    const p = t.dataSync();
    const q = b[i]!.dataSync();
    for (let j = 0; j < p.length; j++) assert.ok(Math.abs(p[j]! - q[j]!) <= 1e-5 * (1 + Math.abs(q[j]!)), `tensor ${i}[${j}]`);
  });
  tf.dispose([...a, ...b, x2, x3]);
  net.dispose();
});

test('a training step leaks no tensors', async () => {
  await initBackend({ backend: 'wasm', log: () => undefined });
  const rng = new Rng(1, 'leak');
  const net = DenseStack.init(SMALL_ENSEMBLE, rng);
  const opt = new Adam(net.params());
  const x = tf.randomNormal([3, 8, 23]);
  const y = tf.randomNormal([3, 8, 36]);
  const lg = (out: tf.Tensor) => ({ dOut: tf.sub(out, y) });
  trainStep(net, opt, x, lg);
  const n0 = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) trainStep(net, opt, x, lg);
  assert.equal(tf.memory().numTensors, n0);
  net.dispose();
  opt.dispose();
  tf.dispose([x, y]);
});
