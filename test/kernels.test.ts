// The patched wasm kernels (pipeline/kernels.ts) against the stock wasm kernels and the pure-JS
// cpu backend, on random inputs of odd and even shapes. The wasm paths (XNNPACK, the SIMD gemm) are
// tested with the native gemm switched off; the native gemm, where it is built, against them all.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../pipeline/backend.js';
import { avx2Skip, passOnAvx2 } from './avx2Fixture.js';
import { fastKernelsInstalled, hasMopoKernel, kernelStats, nativeKernelsInfo, withUnpatchedKernels } from '../pipeline/kernels.js';
import { Rng } from '../pipeline/random.js';
import { DenseStack } from '../pipeline/mlp.js';

const rng = new Rng(12345, 'kernels-test');

function rand(shape: number[], scale = 1): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(rng.fillNormal(new Float32Array(n), 0, scale), shape, 'float32');
}

/** |a - b| <= atol + rtol * max|b| elementwise, with shapes equal. */
function assertClose(actual: tf.Tensor, expected: tf.Tensor | Float32Array, what: string, rtol = 1e-4): void {
  const e = expected instanceof Float32Array ? expected : (expected.dataSync() as Float32Array);
  if (!(expected instanceof Float32Array)) assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  const a = actual.dataSync();
  assert.equal(a.length, e.length, `${what}: size`);
  let scale = 1;
  for (const v of e) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - e[i]!);
    if (!(d <= rtol * scale)) assert.fail(`${what}: element ${i}: ${a[i]} vs ${e[i]} (|diff| ${d} > ${rtol * scale})`);
  }
}

/** Runs f on the cpu backend (inputs are copied there) and returns its values. */
async function onCpu(f: () => tf.Tensor): Promise<Float32Array> {
  await tf.setBackend('cpu');
  (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false; // no "install tfjs-node" banner
  try {
    const r = f();
    const v = r.dataSync() as Float32Array;
    r.dispose();
    return v;
  } finally {
    await tf.setBackend('wasm');
  }
}

function stock<T>(f: () => T): T {
  return withUnpatchedKernels(f);
}

before(async () => {
  const b = await initBackend({ backend: 'wasm', log: () => undefined });
  assert.equal(b, 'wasm');
  assert.deepEqual(fastKernelsInstalled(), { matmul: true, simd: true, gemm: true, native: nativeKernelsInfo().isa !== null });
});

/** Runs f with every wasm patch (XNNPACK for 2-D products, the SIMD gemm for batched ones) but not the native gemm. */
function wasmPath<T>(f: () => T): T {
  return withUnpatchedKernels(f, { matmul: true, simd: true, gemm: true, native: false });
}

type Engine = { name: string; run: <T>(f: () => T) => T };
/** The patched product engines: the wasm paths, and the native gemm where it is built (checked to be used). */
const engines: Engine[] = [
  { name: 'wasm', run: wasmPath },
  ...(nativeKernelsInfo().isa === null ? [] : [{
    name: 'native',
    run: <T>(f: () => T): T => {
      const before = kernelStats.native;
      const r = f();
      assert.ok(kernelStats.native > before, 'the native gemm should be used');
      return r;
    },
  }]),
];

test('2-D matMul, every transpose combination, odd and even sizes: patched (wasm, native) == stock == cpu', async () => {
  const sizes: Array<[number, number, number]> = [[1, 1, 1], [3, 17, 23], [17, 3, 1], [23, 64, 5], [1, 23, 256], [64, 256, 33]];
  for (const [m, k, n] of sizes) {
    for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const a = rand(ta ? [k, m] : [m, k]);
      const b = rand(tb ? [n, k] : [k, n]);
      const slow = stock(() => tf.matMul(a, b, ta, tb));
      const ref = await onCpu(() => tf.matMul(a, b, ta, tb));
      for (const e of engines) {
        const what = `${e.name} matMul ${m}x${k}x${n} tA=${ta} tB=${tb}`;
        const fast = e.run(() => tf.matMul(a, b, ta, tb));
        assert.deepEqual(fast.shape, [m, n], what);
        assertClose(fast, slow, `${what} vs stock`);
        assertClose(fast, ref, `${what} vs cpu`);
        fast.dispose();
      }
      tf.dispose([a, b, slow]);
    }
  }
});

test('rank-3 batched matMul with transposes: patched (wasm, native) == stock == cpu', async () => {
  for (const [bs, m, k, n] of [[7, 10, 13, 9], [2, 1, 3, 1], [3, 17, 23, 5]] as const) {
    for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const a = rand(ta ? [bs, k, m] : [bs, m, k]);
      const b = rand(tb ? [bs, n, k] : [bs, k, n]);
      const slow = stock(() => tf.matMul(a, b, ta, tb));
      const ref = await onCpu(() => tf.matMul(a, b, ta, tb));
      for (const e of engines) {
        const what = `${e.name} batched ${bs}x(${m}x${k}x${n}) tA=${ta} tB=${tb}`;
        const fast = e.run(() => tf.matMul(a, b, ta, tb));
        assertClose(fast, slow, `${what} vs stock`);
        assertClose(fast, ref, `${what} vs cpu`);
        fast.dispose();
      }
      tf.dispose([a, b, slow]);
    }
  }
});

test('batched matMul broadcasting of batch dims: patched (wasm, native) == cpu (and == stock where stock supports it)', async () => {
  const cases: Array<[number[], number[], boolean]> = [
    [[1, 5, 3], [4, 3, 6], true], // size-1 batch on a: the stock kernel supports this
    [[4, 5, 3], [1, 3, 6], true],
    [[4, 5, 3], [3, 6], false], // rank 3 x rank 2
    [[5, 3], [4, 3, 6], false],
    [[2, 1, 5, 3], [1, 4, 3, 6], false], // general numpy broadcasting
    [[2, 3, 5, 3], [3, 3, 6], false],
  ];
  for (const [sa, sb, stockOk] of cases) {
    const a = rand(sa);
    const b = rand(sb);
    // Reference: broadcast both operands to the full batch shape explicitly (the cpu kernel only
    // broadcasts a flattened size-1 batch), then a plain batched product on cpu.
    const batch = tf.broadcast_util.assertAndGetBroadcastShape(sa.slice(0, -2), sb.slice(0, -2));
    const ref = await onCpu(() => tf.matMul(tf.broadcastTo(a, [...batch, ...sa.slice(-2)]), tf.broadcastTo(b, [...batch, ...sb.slice(-2)])));
    for (const e of engines) {
      const what = `${e.name} matMul [${sa}] x [${sb}]`;
      const fast = e.run(() => tf.matMul(a, b));
      assert.deepEqual(fast.shape, [...batch, sa[sa.length - 2]!, sb[sb.length - 1]!], what);
      assertClose(fast, ref, `${what} vs cpu`);
      if (stockOk) assertClose(fast, stock(() => tf.matMul(a, b)), `${what} vs stock`);
      fast.dispose();
    }
    tf.dispose([a, b]);
  }
});

/** Runs f with the matmul + SIMD patches but the XNNPACK product path instead of the SIMD gemm. */
function xnnPath<T>(f: () => T): T {
  return withUnpatchedKernels(f, { matmul: true, simd: true, gemm: false });
}

test('swapped orientation C = (Bt At)t for thin outputs (M << N), with transposes and broadcasting == cpu (XNNPACK path)', async () => {
  const cases: Array<[number[], number[], boolean, boolean]> = [
    [[256, 23], [256, 256], true, false], // first-layer weight gradient Xt.dZ
    [[23, 256], [256, 256], false, false],
    [[2, 256], [300, 256], false, true],
    [[256, 3], [200, 256], true, true],
    [[1, 5, 64], [3, 64, 128], false, false], // broadcast a over b's batch
    [[3, 64, 5], [3, 64, 128], true, false],
    [[2, 1, 3, 40], [1, 4, 200, 40], false, true], // general broadcasting
  ];
  for (const [sa, sb, ta, tb] of cases) {
    const a = rand(sa);
    const b = rand(sb);
    const what = `matMul [${sa}] x [${sb}] tA=${ta} tB=${tb}`;
    const before = kernelStats.swapped;
    const fast = xnnPath(() => tf.matMul(a, b, ta, tb));
    assert.equal(kernelStats.swapped, before + 1, `${what} should take the swapped path`);
    const batch = tf.broadcast_util.assertAndGetBroadcastShape(sa.slice(0, -2), sb.slice(0, -2));
    const ref = await onCpu(() => tf.matMul(tf.broadcastTo(a, [...batch, ...sa.slice(-2)]), tf.broadcastTo(b, [...batch, ...sb.slice(-2)]), ta, tb));
    assertClose(fast, ref, `${what} vs cpu`);
    tf.dispose([a, b, fast]);
  }
});

test('SIMD gemm: every tile path (row/column tails, k tails), transposes, broadcasting == stock == XNNPACK path == cpu', async () => {
  // m: 4-row blocks plus 0-3 single rows; n: 8-wide tiles, a 4-wide tile, 0-3 scalar columns; k: 4-step loop plus 0-3.
  const cases: Array<[number[], number[]]> = [
    [[2, 1, 4], [2, 4, 4]], [[2, 5, 3], [2, 3, 13]], [[3, 9, 7], [3, 7, 12]], [[2, 4, 23], [23, 36]],
    [[7, 17, 1], [7, 1, 5]], [[2, 23, 64], [2, 64, 17]], [[2, 1, 6, 9], [1, 3, 9, 8]], [[13, 23], [2, 23, 9]],
  ];
  for (const [sa, sb] of cases) {
    for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const tr = (s: number[], t: boolean): number[] => (t ? [...s.slice(0, -2), s[s.length - 1]!, s[s.length - 2]!] : s);
      const a = rand(tr(sa, ta));
      const b = rand(tr(sb, tb));
      const what = `gemm [${sa}] x [${sb}] tA=${ta} tB=${tb}`;
      const before = kernelStats.gemm;
      const fast = wasmPath(() => tf.matMul(a, b, ta, tb));
      assert.ok(kernelStats.gemm > before, `${what} should use the gemm`);
      const batch = tf.broadcast_util.assertAndGetBroadcastShape(sa.slice(0, -2), sb.slice(0, -2));
      const full = (t: tf.Tensor, s: number[]): tf.Tensor => tf.broadcastTo(t, [...batch, ...s.slice(-2)]);
      const ref = await onCpu(() => tf.matMul(full(a, tr(sa, ta)), full(b, tr(sb, tb)), ta, tb));
      assertClose(fast, ref, `${what} vs cpu`);
      const viaXnn = xnnPath(() => tf.matMul(a, b, ta, tb));
      assertClose(fast, viaXnn, `${what} vs XNNPACK path`);
      if (sa.length === sb.length && sa.slice(0, -2).every((d, i) => d === sb[i])) {
        const slow = stock(() => tf.matMul(a, b, ta, tb));
        assertClose(fast, slow, `${what} vs stock`);
        slow.dispose();
      }
      tf.dispose([a, b, fast, viaXnn]);
    }
  }
  // 2-D products (any transposes) keep XNNPACK; thin outputs (n < 4) too.
  const before = kernelStats.gemm;
  wasmPath(() => tf.dispose([tf.matMul(rand([5, 8]), rand([8, 6])), tf.matMul(rand([8, 5]), rand([6, 8]), true, true),
    tf.matMul(rand([3, 5, 8]), rand([3, 8, 3]))]));
  assert.equal(kernelStats.gemm, before);
});

test('SIMD gemm fused: bias [n] / [B, 1, n] / broadcast batch, linear and relu, == stock-free references', async () => {
  for (const [sa, sb, sbias] of [
    [[3, 13, 23], [3, 23, 36], [3, 1, 36]], [[3, 13, 23], [3, 23, 36], [36]], [[1, 6, 5], [3, 5, 9], [3, 1, 9]],
    [[23, 7], [4, 7, 10], [4, 1, 10]], [[2, 23, 7], [7, 10], [10]],
  ] as Array<[number[], number[], number[]]>) {
    for (const act of ['linear', 'relu'] as const) {
      for (const tb of [false, true]) {
        const a = rand(sa);
        const b = rand(tb ? [...sb.slice(0, -2), sb[sb.length - 1]!, sb[sb.length - 2]!] : sb);
        const bias = rand(sbias);
        const what = `gemm fused ${act} [${sa}] x [${sb}] + [${sbias}] tB=${tb}`;
        const f = (): tf.Tensor => tf.fused.matMul({ a, b, transposeB: tb, bias, activation: act });
        const before = kernelStats.gemm;
        const fast = wasmPath(f);
        assert.ok(kernelStats.gemm > before, `${what} should use the gemm`);
        const batch = tf.broadcast_util.assertAndGetBroadcastShape(sa.slice(0, -2), sb.slice(0, -2));
        const ref = await onCpu(() => {
          const bb = tf.broadcastTo(b, [...batch, ...b.shape.slice(-2)]);
          const z = tf.add(tf.matMul(tf.broadcastTo(a, [...batch, ...sa.slice(-2)]), bb, false, tb), bias);
          return act === 'relu' ? tf.relu(z) : z;
        });
        assertClose(fast, ref, `${what} vs cpu`);
        const viaXnn = xnnPath(f);
        assertClose(fast, viaXnn, `${what} vs XNNPACK path`);
        tf.dispose([a, b, bias, fast, viaXnn]);
      }
    }
  }
});

test('the same weight data reshaped to another shape does not hit a stale XNNPACK operator', async () => {
  const w = rand([8, 6]);
  const x = rand([5, 8]);
  const x2 = rand([5, 16]);
  const r1 = tf.matMul(x, w); // caches an operator on w's id as an 8x6 matrix
  const r2 = tf.matMul(x2, tf.reshape(w, [16, 3])); // same id, other shape
  assertClose(r1, await onCpu(() => tf.matMul(x, w)), 'first use');
  assertClose(r2, await onCpu(() => tf.matMul(x2, tf.reshape(w, [16, 3]))), 'reshaped use');
  tf.dispose([w, x, x2, r1, r2]);
});

test('fused matMul: bias shapes x activations x transposes, wasm and native == cpu', async () => {
  const acts = ['linear', 'relu', 'relu6', 'sigmoid', 'elu', 'leakyrelu', 'prelu'] as const;
  const [m, k, n] = [9, 17, 23];
  for (const batch of [null, 3] as const) {
    const biasShapes: number[][] = batch === null ? [[n], [m, n], [1]] : [[n], [batch, 1, n], [batch, m, n]];
    for (const biasShape of biasShapes) {
      for (const act of acts) {
        for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
          const pre = batch === null ? [] : [batch];
          const a = rand([...pre, ...(ta ? [k, m] : [m, k])]);
          const b = rand([...pre, ...(tb ? [n, k] : [k, n])]);
          const bias = rand(biasShape);
          const alpha = act === 'prelu' ? rand([n], 0.3) : undefined;
          const what = `fused ${act} batch=${batch} bias=[${biasShape}] tA=${ta} tB=${tb}`;
          const f = (): tf.Tensor => tf.fused.matMul({
            a, b, transposeA: ta, transposeB: tb, bias, activation: act,
            ...(alpha !== undefined ? { preluActivationWeights: alpha } : {}), leakyreluAlpha: 0.1,
          });
          const ref = await onCpu(f);
          for (const e of engines) {
            const fast = e.run(f);
            assertClose(fast, ref, `${e.name} ${what}`);
            fast.dispose();
          }
          tf.dispose([a, b, bias]);
          if (alpha !== undefined) alpha.dispose();
        }
      }
    }
  }
});

test('fused matMul with a rank-1 bias and no transpose matches the stock XNNPACK path exactly-ish', () => {
  const a = rand([31, 19]);
  const b = rand([19, 7]);
  const bias = rand([7]);
  for (const act of ['linear', 'relu', 'sigmoid'] as const) {
    const fast = wasmPath(() => tf.fused.matMul({ a, b, bias, activation: act }));
    const slow = stock(() => tf.fused.matMul({ a, b, bias, activation: act }));
    assertClose(fast, slow, `fused ${act} vs stock`, 1e-6);
    tf.dispose([fast, slow]);
  }
  tf.dispose([a, b, bias]);
});

test('Transpose (last two axes via SIMD, other perms via stock) == stock', () => {
  for (const shape of [[1, 1], [4, 4], [5, 7], [3, 17, 23], [2, 3, 1, 9], [7, 33, 18], [64, 256]]) {
    const x = rand(shape);
    const r = shape.length;
    const perms: number[][] = [shape.map((_, i) => i).map((i) => (i === r - 2 ? r - 1 : i === r - 1 ? r - 2 : i))];
    if (r >= 3) perms.push([r - 1, ...shape.slice(0, -1).map((_, i) => i)]);
    for (const perm of perms) {
      const fast = tf.transpose(x, perm);
      const slow = stock(() => tf.transpose(x, perm));
      assertClose(fast, slow, `transpose [${shape}] perm [${perm}]`, 0);
      tf.dispose([fast, slow]);
    }
    x.dispose();
  }
  const xi = tf.tensor2d([[1, 2, 3], [4, 5, 6]], [2, 3], 'int32');
  assert.deepEqual(Array.from(tf.transpose(xi).dataSync()), [1, 4, 2, 5, 3, 6]);
});

test('Sum over every axis set, keepDims or not == stock == cpu', async () => {
  for (const shape of [[5, 7], [256, 3], [3, 17, 23], [2, 3, 1, 9]]) {
    const x = rand(shape);
    const r = shape.length;
    const axesSets: number[][] = [];
    for (let a0 = 0; a0 < r; a0++) for (let a1 = a0; a1 < r; a1++) axesSets.push(Array.from({ length: a1 - a0 + 1 }, (_, i) => a0 + i));
    if (r >= 3) axesSets.push([0, r - 1]); // non-contiguous: stock path
    for (const axes of axesSets) {
      for (const keep of [false, true]) {
        const what = `sum [${shape}] axes [${axes}] keepDims=${keep}`;
        const fast = tf.sum(x, axes, keep);
        const slow = stock(() => tf.sum(x, axes, keep));
        assertClose(fast, slow, `${what} vs stock`);
        assertClose(fast, await onCpu(() => tf.sum(x, axes, keep)), `${what} vs cpu`);
        tf.dispose([fast, slow]);
      }
    }
    x.dispose();
  }
});

test('Slice, SplitV and Concat (float32 and int32) == stock', () => {
  const x = rand([3, 5, 7, 9]);
  const xi = tf.cast(tf.mul(x, 100), 'int32');
  const slices: Array<[number[], number[]]> = [
    [[0, 0, 0, 0], [3, 5, 7, 9]], [[1, 0, 0, 0], [1, 5, 7, 9]], [[0, 1, 2, 3], [2, 3, 4, 5]],
    [[2, 4, 6, 8], [1, 1, 1, 1]], [[0, 0, 0, 4], [-1, -1, -1, -1]], [[1, 2, 0, 0], [2, 2, 7, 9]],
  ];
  for (const t of [x, xi]) {
    for (const [b, s] of slices) {
      const fast = tf.slice(t, b, s);
      const slow = stock(() => tf.slice(t, b, s));
      assert.deepEqual(fast.shape, slow.shape);
      assert.deepEqual(Array.from(fast.dataSync()), Array.from(slow.dataSync()), `slice ${t.dtype} [${b}] [${s}]`);
      tf.dispose([fast, slow]);
    }
  }
  const y = rand([7, 33, 36]);
  for (let ax = 0; ax < 3; ax++) {
    const sizes = [1, 2, y.shape[ax]! - 3];
    const parts = tf.split(y, sizes, ax);
    const ref = stock(() => tf.split(y, sizes, ax));
    parts.forEach((p, i) => assertClose(p, ref[i]!, `split axis ${ax} part ${i}`, 0));
    const joined = tf.concat(parts, ax);
    assertClose(joined, y, `concat axis ${ax}`, 0);
    assertClose(joined, stock(() => tf.concat(ref, ax)), `concat axis ${ax} vs stock`, 0);
    tf.dispose([...parts, ...ref, joined]);
  }
  const r1 = tf.slice(tf.range(0, 10), 2, 5);
  assert.deepEqual(Array.from(r1.dataSync()), [2, 3, 4, 5, 6]);
  tf.dispose([x, xi, y, r1]);
});

test('MopoAdam, MopoSwishGrad, MopoReluGrad, MopoPolyak == their tf-op formulas (odd sizes for the scalar tails)', () => {
  assert.ok(hasMopoKernel('MopoAdam') && hasMopoKernel('MopoSwishGrad') && hasMopoKernel('MopoReluGrad') && hasMopoKernel('MopoPolyak'));
  for (const shape of [[1], [3], [5], [17, 3], [7, 1, 23], [256, 23]]) {
    const p = rand(shape);
    const g = rand(shape);
    const m = rand(shape, 0.1);
    const v = tf.abs(rand(shape, 0.1));
    const lr = 1e-3;
    const b1 = 0.9;
    const b2 = 0.999;
    const eps = 1e-8;
    const t = 3;
    const c1 = 1 - b1 ** t;
    const c2 = 1 - b2 ** t;
    const outs = tf.engine().runKernel('MopoAdam', { p0: p, g0: g, m0: m, v0: v }, { n: 1, lr, beta1: b1, beta2: b2, epsilon: eps, c1, c2 }) as unknown as tf.Tensor[];
    const mRef = tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1));
    const vRef = tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2));
    const pRef = tf.sub(p, tf.div(tf.mul(mRef, lr / c1), tf.add(tf.sqrt(tf.div(vRef, c2)), eps)));
    assertClose(outs[0]!, pRef, `adam p [${shape}]`, 1e-6);
    assertClose(outs[1]!, mRef, `adam m [${shape}]`, 1e-6);
    assertClose(outs[2]!, vRef, `adam v [${shape}]`, 1e-6);
    // An L2 weight decay folded in: the step on g + wd·p, the same as tf-op Adam given that gradient.
    const wd = 0.05;
    const dec = tf.engine().runKernel('MopoAdam', { p0: p, g0: g, m0: m, v0: v }, { n: 1, lr, beta1: b1, beta2: b2, epsilon: eps, c1, c2, decay: [wd] }) as unknown as tf.Tensor[];
    const gd = tf.add(g, tf.mul(p, wd));
    const mDec = tf.add(tf.mul(m, b1), tf.mul(gd, 1 - b1));
    const vDec = tf.add(tf.mul(v, b2), tf.mul(tf.square(gd), 1 - b2));
    assertClose(dec[0]!, tf.sub(p, tf.div(tf.mul(mDec, lr / c1), tf.add(tf.sqrt(tf.div(vDec, c2)), eps))), `adam decay p [${shape}]`, 1e-6);
    assertClose(dec[1]!, mDec, `adam decay m [${shape}]`, 1e-6);
    assertClose(dec[2]!, vDec, `adam decay v [${shape}]`, 1e-6);
    tf.dispose([...dec, gd, mDec, vDec]);

    const dy = rand(shape);
    const z = rand(shape, 3);
    const s = tf.sigmoid(z);
    const h = tf.mul(z, s);
    const sg = tf.engine().runKernel('MopoSwishGrad', { dy, s, h }, {}) as tf.Tensor;
    assertClose(sg, tf.mul(dy, tf.mul(s, tf.add(1, tf.mul(z, tf.sub(1, s))))), `swish grad [${shape}]`, 1e-5);
    const rg = tf.engine().runKernel('MopoReluGrad', { dy, h: z }, {}) as tf.Tensor;
    assertClose(rg, tf.mul(dy, tf.step(z)), `relu grad [${shape}]`, 0);
    const [pk0, pk1] = tf.engine().runKernel('MopoPolyak', { t0: p, c0: g, t1: m, c1: v }, { n: 2, tau: 0.005 }) as unknown as tf.Tensor[];
    assertClose(pk0!, tf.add(p, tf.mul(tf.sub(g, p), 0.005)), `polyak [${shape}]`, 1e-6);
    assertClose(pk1!, tf.add(m, tf.mul(tf.sub(v, m), 0.005)), `polyak (second tensor) [${shape}]`, 1e-6);
    tf.dispose([pk0!, pk1!]);
    tf.dispose([p, g, m, v, ...outs, mRef, vRef, pRef, dy, z, s, h, sg, rg]);
  }
});

test('patched kernels free their temporaries (no tensor or heap-id leaks)', () => {
  const a = rand([3, 20, 30]);
  const b = rand([3, 40, 30]);
  const bias = rand([3, 1, 40]);
  const run = (): void => {
    tf.tidy(() => {
      tf.matMul(a, b, false, true);
      tf.fused.matMul({ a, b, transposeB: true, bias, activation: 'relu' });
      tf.sum(tf.transpose(a, [0, 2, 1]), 1);
      tf.concat(tf.split(a, [10, 20], 2), 2);
    });
  };
  for (const e of engines) {
    e.run(run);
    const before = tf.memory().numTensors;
    const ids = (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
    for (let i = 0; i < 5; i++) e.run(run);
    assert.equal(tf.memory().numTensors, before, e.name);
    assert.equal((tf.backend() as unknown as { numDataIds(): number }).numDataIds(), ids, e.name);
  }
  tf.dispose([a, b, bias]);
});

test('native gemm: k past one packed block, several row blocks, partial panels, bias and relu == cpu', { skip: nativeKernelsInfo().isa === null ? `native kernels: ${nativeKernelsInfo().why}` : false }, async () => {
  if (process.env.MOPO_NATIVE_ISA !== undefined) assert.equal(nativeKernelsInfo().isa, process.env.MOPO_NATIVE_ISA);
  // k 600 = 256 + 256 + 88 (accumulating blocks, the bias and relu on the last only); m 205 = 96 + 96 + 13
  // (row blocks, a short last tile); n 37, 200, 1 (a last panel at most one vector wide, computed one
  // vector wide, at either ISA's width) and 57 (a last panel wider than one vector, partly filled).
  for (const [m, k, n] of [[205, 600, 37], [13, 257, 200], [1, 300, 1], [29, 300, 57]] as const) {
    for (const [ta, tb] of [[false, false], [true, true], [false, true]] as const) {
      const a = rand(ta ? [k, m] : [m, k], 0.2);
      const b = rand(tb ? [n, k] : [k, n], 0.2);
      const bias = rand([n]);
      const f = (): tf.Tensor => tf.fused.matMul({ a, b, transposeA: ta, transposeB: tb, bias, activation: 'relu' });
      const before = kernelStats.native;
      const fast = f();
      assert.equal(kernelStats.native, before + 1);
      assertClose(fast, await onCpu(f), `native ${m}x${k}x${n} tA=${ta} tB=${tb}`);
      tf.dispose([a, b, bias, fast]);
    }
  }
});

test('native gemm: the AVX2 path (MOPO_NATIVE_ISA=avx2) passes the same checks', { skip: avx2Skip }, () => {
  passOnAvx2(import.meta.url, 'native gemm: k past|^MopoDenseSwish|^MopoGaussianHead|^MopoGaussianVariance|^MopoMatMulReluGrad', 6);
});

test('MopoDenseSwish (a dense swish layer) == swish(a·b + bias), MopoDenseSwishTrain == [swish, sigmoid] of it, on cpu, native and wasm; extremes finite; a bad bias refused', async () => {
  const cases: Array<[number[], number[], number[]]> = [
    [[37, 23], [23, 200], [200]], // a plain layer
    [[7, 37, 200], [7, 200, 36], [7, 1, 36]], // an ensemble layer, bias per member
    [[37, 23], [7, 23, 200], [7, 1, 200]], // the ensemble's first layer: one input for every member
    [[5, 300], [300, 3], [3]], // k past a packed block; a thin output
  ];
  for (const [sa, sb, sbias] of cases) {
    const a = rand(sa);
    const b = rand(sb, 0.3);
    const bias = rand(sbias);
    const batch = tf.broadcast_util.assertAndGetBroadcastShape(sa.slice(0, -2), sb.slice(0, -2));
    const z = () => tf.add(tf.matMul(tf.broadcastTo(a, [...batch, ...sa.slice(-2)]), tf.broadcastTo(b, [...batch, ...sb.slice(-2)])), bias);
    const ref = await onCpu(() => tf.mul(z(), tf.sigmoid(z())));
    const refSig = await onCpu(() => tf.sigmoid(z()));
    const shape = [...batch, sa[sa.length - 2]!, sb[sb.length - 1]!];
    for (const e of engines) {
      const h = e.run(() => tf.engine().runKernel('MopoDenseSwish', { a, b, bias }, {}) as tf.Tensor);
      assert.deepEqual(h.shape, shape);
      assertClose(h, ref, `${e.name} MopoDenseSwish [${sa}] x [${sb}] + [${sbias}]`, 1e-5);
      const [ht, st] = e.run(() => tf.engine().runKernel('MopoDenseSwishTrain', { a, b, bias }, {}) as unknown as tf.Tensor[]);
      assert.deepEqual([ht!.shape, st!.shape], [shape, shape]);
      assertClose(ht!, ref, `${e.name} MopoDenseSwishTrain h [${sa}] x [${sb}] + [${sbias}]`, 1e-5);
      assertClose(st!, refSig, `${e.name} MopoDenseSwishTrain s [${sa}] x [${sb}] + [${sbias}]`, 1e-5);
      tf.dispose([h, ht!, st!]);
    }
    tf.dispose([a, b, bias, ref, refSig]);
  }
  // Pre-activations far past where e^-z overflows a float: swish(z) → z for z ≫ 0, → 0 for z ≪ 0.
  const a = tf.tensor2d([[1], [-1], [0.5], [-0.5], [0]]);
  const b = tf.tensor2d([[200, 90, 1e-3]]);
  const zero = tf.zeros([3]);
  const sigmoidOf = (z: number): number => 1 / (1 + Math.exp(-z));
  const swishOf = (z: number): number => z * sigmoidOf(z);
  for (const e of engines) {
    const h = e.run(() => tf.engine().runKernel('MopoDenseSwish', { a, b, bias: zero }, {}) as tf.Tensor).arraySync() as number[][];
    const [ht, st] = e.run(() => tf.engine().runKernel('MopoDenseSwishTrain', { a, b, bias: zero }, {}) as unknown as tf.Tensor[]).map((t) => t.arraySync() as number[][]);
    const near = (got: number, want: number) => Number.isFinite(got) && Math.abs(got - want) <= 1e-6 * Math.max(1, Math.abs(want));
    [1, -1, 0.5, -0.5, 0].forEach((x, i) => [200, 90, 1e-3].forEach((w, j) => {
      const z = x * w;
      assert.ok(near(h[i]![j]!, swishOf(z)), `${e.name} swish(${z}) = ${h[i]![j]} vs ${swishOf(z)}`);
      assert.ok(near(ht![i]![j]!, swishOf(z)), `${e.name} train swish(${z}) = ${ht![i]![j]} vs ${swishOf(z)}`);
      assert.ok(near(st![i]![j]!, sigmoidOf(z)), `${e.name} sigmoid(${z}) = ${st![i]![j]} vs ${sigmoidOf(z)}`);
    }));
  }
  for (const k of ['MopoDenseSwish', 'MopoDenseSwishTrain']) assert.throws(() => tf.engine().runKernel(k, { a, b, bias: tf.zeros([2, 3]) }, {}), /bias of shape \[2,3\]/);
  tf.dispose([a, b, zero]);
});

test('MopoMatMulReluGrad (native only) == BatchMatMul (transposeB) then MopoReluGrad, bit for bit: k past one block, partial panels, batched, h with zeros, negatives and NaN; absent without the native gemm; a bad h refused', { skip: nativeKernelsInfo().isa === null ? `native kernels: ${nativeKernelsInfo().why}` : false }, () => {
  assert.ok(hasMopoKernel('MopoMatMulReluGrad'));
  assert.equal(wasmPath(() => hasMopoKernel('MopoMatMulReluGrad')), false, 'registered only with the native gemm');
  // [batch…, m, k] · [batch…, n, k]ᵀ: k 300 = 256 + 44 (the mask on the last block only); n 57, 37, 1
  // and 200 (partial panels at both widths, one column, full panels); dz's batch broadcast.
  for (const [dzShape, wShape] of [[[5, 7], [3, 7]], [[13, 300], [57, 300]], [[2, 29, 23], [2, 37, 23]], [[25, 33], [1, 33]], [[1, 9, 40], [2, 200, 40]]] as const) {
    const dz = rand([...dzShape]);
    const w = rand([...wShape]);
    const ref = tf.matMul(dz, w, false, true);
    // h: a third exactly 0, a third negative, NaN at every 11th, the rest positive.
    const hv = rng.fillNormal(new Float32Array(ref.size));
    for (let i = 0; i < hv.length; i++) hv[i] = i % 11 === 5 ? NaN : i % 3 === 0 ? 0 : i % 3 === 1 ? -Math.abs(hv[i]!) : Math.abs(hv[i]!) + 1e-3;
    const h = tf.tensor(hv, ref.shape, 'float32');
    const want = tf.engine().runKernel('MopoReluGrad', { dy: ref, h }, {}) as tf.Tensor;
    const got = tf.engine().runKernel('MopoMatMulReluGrad', { dz, w, h }, {}) as tf.Tensor;
    assert.deepEqual(got.shape, want.shape);
    assert.deepEqual(Array.from(got.dataSync()), Array.from(want.dataSync()), `[${dzShape}]·[${wShape}]ᵀ`);
    const zeros = Array.from(got.dataSync()).filter((v) => v === 0).length;
    assert.ok(zeros >= hv.length / 2, 'the mask zeroed where h is not > 0');
    tf.dispose([dz, w, ref, h, want, got]);
  }
  const [dz, w] = [tf.zeros([4, 3]), tf.zeros([5, 3])];
  assert.throws(() => tf.engine().runKernel('MopoMatMulReluGrad', { dz, w, h: tf.zeros([5, 4]) }, {}), /h of the product's shape \[4,5\]/);
  tf.dispose([dz, w]);
});

test('MopoMatMulReluGrad in DenseStack.backward and inputGrad: the same gradients as without it, bit for bit (relu stack, two members)', { skip: nativeKernelsInfo().isa === null ? `native kernels: ${nativeKernelsInfo().why}` : false }, () => {
  const net = DenseStack.init({ sizes: [23, 40, 33, 1], hidden: 'relu', members: 2 }, new Rng(3, 'relu-mask'));
  const x = rand([2, 17, 23]);
  const dOut = rand([2, 17, 1]);
  const run = () => tf.tidy(() => {
    const { cache } = net.forward(x);
    const { grads, dx } = net.backward(cache, dOut, true);
    return [...grads, dx!, net.inputGrad(cache, dOut)].map((t) => Array.from(t.dataSync()));
  });
  const before = tf.engine().state.numTensors;
  const fused = run();
  assert.equal(tf.engine().state.numTensors, before, 'nothing leaked');
  const config = tf.getKernel('MopoMatMulReluGrad', 'wasm')!;
  tf.unregisterKernel('MopoMatMulReluGrad', 'wasm');
  let plain: number[][];
  try {
    plain = run();
  } finally {
    tf.registerKernel(config);
  }
  assert.equal(fused.length, 8);
  for (let i = 0; i < fused.length; i++) assert.deepEqual(fused[i], plain[i], `output ${i}`);
  assert.deepEqual(fused[6], fused[7], 'inputGrad == backward\'s dx');
  tf.dispose([x, dOut]);
  net.dispose();
});

test('MopoGaussianHead (native only) == the ensemble head\'s tf-op formulas, bounds far in and out of range; absent without the native gemm; bad shapes refused', { skip: nativeKernelsInfo().isa === null ? `native kernels: ${nativeKernelsInfo().why}` : false }, async () => {
  assert.ok(hasMopoKernel('MopoGaussianHead'));
  assert.equal(wasmPath(() => hasMopoKernel('MopoGaussianHead')), false, 'registered only with the native gemm');
  for (const [E, B, D] of [[2, 5, 3], [3, 17, 18], [1, 7, 37]] as const) {
    const mu = rand([E, B, D]);
    // Raw log-variances from deep inside the bounds to far past both (softplus and σ at their extremes).
    const raw = tf.mul(rand([E, B, D]), tf.tensor1d(Array.from({ length: D }, (_, j) => [1, 8, 40][j % 3]!)));
    const out = tf.concat([mu, raw], 2);
    const y = rand([E, B, D]);
    const maxLV = tf.add(rand([1, D], 0.3), 0.5);
    const minLV = tf.sub(rand([1, D], 0.3), 6);
    const c = 1 / (B * D);
    const ref = (k: number) => onCpu(() => {
      const a = tf.sub(maxLV, raw);
      const b = tf.sub(tf.sub(maxLV, tf.softplus(a)), minLV);
      const lv = tf.add(minLV, tf.softplus(b));
      const inv = tf.exp(tf.neg(lv));
      const d = tf.sub(mu, y);
      const d2inv = tf.mul(tf.square(d), inv);
      const g = tf.mul(tf.sub(1, d2inv), c);
      const gsb = tf.mul(g, tf.sigmoid(b));
      const draw = tf.mul(gsb, tf.sigmoid(a));
      const flat = (t: tf.Tensor) => tf.sum(tf.reshape(t, [-1, D]), 0, true);
      return [
        () => tf.concat([tf.mul(tf.mul(d, inv), 2 * c), draw], 2),
        () => tf.mul(tf.sum(tf.add(d2inv, lv), [1, 2]), c),
        () => flat(tf.sub(gsb, draw)),
        () => flat(tf.sub(g, gsb)),
      ][k]!();
    });
    const got = tf.engine().runKernel('MopoGaussianHead', { out, y, maxLV, minLV }, { c }) as unknown as tf.Tensor[];
    const shapes = [[E, B, 2 * D], [E], [1, D], [1, D]];
    for (let k = 0; k < 4; k++) {
      assert.deepEqual(got[k]!.shape, shapes[k], `output ${k} shape`);
      assertClose(got[k]!, await ref(k), `MopoGaussianHead [${E}, ${B}, ${D}] output ${k}`, 2e-5);
    }
    tf.dispose([mu, raw, out, y, maxLV, minLV, ...got]);
  }
  const t = tf.zeros([2, 3, 8]);
  assert.throws(() => tf.engine().runKernel('MopoGaussianHead', { out: t, y: tf.zeros([2, 3, 3]), maxLV: tf.zeros([1, 4]), minLV: tf.zeros([1, 4]) }, { c: 1 }), /do not make \[E, B, 2D\]/);
  t.dispose();
});

test('MopoGaussianVariance (native only) == [μ, e^lv] by the ensemble head\'s tf-op formulas, raw far past both bounds; absent without the native gemm; a bad shape refused', { skip: nativeKernelsInfo().isa === null ? `native kernels: ${nativeKernelsInfo().why}` : false }, async () => {
  assert.ok(hasMopoKernel('MopoGaussianVariance'));
  assert.equal(wasmPath(() => hasMopoKernel('MopoGaussianVariance')), false, 'registered only with the native gemm');
  // Rows past one 512-row block of the kernel's scratch, and D that is no multiple of a vector.
  for (const [E, B, D] of [[2, 5, 3], [3, 700, 18], [1, 9, 37]] as const) {
    const mu = rand([E, B, D]);
    const raw = tf.mul(rand([E, B, D]), tf.tensor1d(Array.from({ length: D }, (_, j) => [1, 8, 40][j % 3]!)));
    const out = tf.concat([mu, raw], 2);
    const maxLV = tf.add(rand([1, D], 0.3), 0.5);
    const minLV = tf.sub(rand([1, D], 0.3), 6);
    const variance = await onCpu(() => {
      const lv1 = tf.sub(maxLV, tf.softplus(tf.sub(maxLV, raw)));
      return tf.exp(tf.add(minLV, tf.softplus(tf.sub(lv1, minLV))));
    });
    const got = tf.engine().runKernel('MopoGaussianVariance', { out, maxLV, minLV }, {}) as unknown as tf.Tensor[];
    assert.deepEqual(got[0]!.shape, [E, B, D]);
    assert.deepEqual(Array.from(got[0]!.dataSync()), Array.from(mu.dataSync()), 'μ copied as it is');
    assert.deepEqual(got[1]!.shape, [E, B, D]);
    const v = got[1]!.dataSync();
    for (let i = 0; i < v.length; i++) assert.ok(Math.abs(v[i]! - variance[i]!) <= 2e-6 * variance[i]!, `[${E}, ${B}, ${D}] e^lv[${i}]: ${v[i]} vs ${variance[i]}`);
    tf.dispose([mu, raw, out, maxLV, minLV, ...got]);
  }
  assert.throws(() => tf.engine().runKernel('MopoGaussianVariance', { out: tf.zeros([2, 3, 7]), maxLV: tf.zeros([1, 3]), minLV: tf.zeros([1, 3]) }, {}), /out \[2,3,7\] is not \[\.\.\., 2D\]/);
});

test('native gemm flushes denormals within its call only (FTZ/DAZ, as TensorFlow on CPUs)', { skip: nativeKernelsInfo().isa === null ? `native kernels: ${nativeKernelsInfo().why}` : false }, () => {
  const a = tf.tensor2d([[1e-20, 1]]);
  const b = tf.tensor2d([[1e-20], [0]]);
  const c = tf.matMul(a, b); // 1e-40: a float32 denormal
  assert.equal(c.dataSync()[0], 0);
  const d = wasmPath(() => tf.matMul(a, b)); // the wasm kernels keep IEEE denormals
  assert.ok(Math.abs(d.dataSync()[0]! - 1e-40) < 1e-42, String(d.dataSync()[0]));
  const e = tf.mul(tf.scalar(1e-20), tf.scalar(1e-20)); // after the native call, the thread's mode is back
  assert.ok(e.dataSync()[0]! > 0, 'denormal arithmetic outside the gemm');
  tf.dispose([a, b, c, d, e]);
});
