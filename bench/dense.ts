// Dense-layer throughput on the selected TensorFlow.js backend.
//
//   benchDense({ seconds?, backend? }) -> { backend, products, peakGflops, critic: { gflops, ratio }, ensemble: { gflops, ratio },
//                                           wasm?, nativeSpeedup? }
//
// peak      plain 256x256x256 matMul (2*256^3 flops per call): warm-up, then the median of many
//           timings of 4 back-to-back calls, the last one waited for with dataSync.
// critic    one full training step (forward, backward, Adam) of the SAC critic shape
//           23 -> 256 -> 256 -> 1 (ReLU), batch 256, MSE loss.
// ensemble  one full training step of a 7-member dynamics ensemble computed as ONE batched
//           computation (weights [7, in, out]): 23 -> 200 x4 (swish) -> 36 (mean and log-variance
//           of 17 state deltas + 1 reward), batch 256 per member, Gaussian NLL loss.
// With the native gemm (pipeline/kernels.ts) the three are also measured on the wasm kernels alone,
// interleaved round by round, as `wasm`, with `nativeSpeedup` = native / wasm for each.
// Flops count matmuls only: forward 2*B*in*out per layer, backward 2x forward (dX and dW), so a
// step is 3x forward. ratio = gflops / peakGflops, all measured in the same run and interleaved
// in rounds (the machine is shared and noisy: compare ratios, not absolute numbers).
//
// From the CLI: mopo bench dense [--seconds 6] [--backend wasm] [--variants]
// (--variants also times each matMul form and the training steps without the SIMD gemm, with only
// the matmul patch and with the stock wasm kernels).

import { initBackend, tf } from '../pipeline/backend.js';
import { fastKernelsInstalled, nativeKernelsInfo, withUnpatchedKernels, type FastKernelOptions } from '../pipeline/kernels.js';
import { Adam, DenseStack, trainStep, type LossAndGrad } from '../pipeline/mlp.js';
import { Rng } from '../pipeline/random.js';
import { median, round3 } from './stats.js';

export interface DenseFigures {
  peakGflops: number;
  critic: { gflops: number; ratio: number };
  ensemble: { gflops: number; ratio: number };
}

export interface DenseBenchResult extends DenseFigures {
  backend: string;
  /** What computes the products: 'native avx512' / 'native avx2' (native/kernels.cc) or 'wasm'. */
  products: string;
  /** With the native gemm: the same figures on the wasm kernels, interleaved in the same run, and the speedups. */
  wasm?: DenseFigures;
  nativeSpeedup?: { peak: number; critic: number; ensemble: number };
}

/** 'native <isa>' when the native gemm computes the products, else 'wasm'. */
export function productEngine(): string {
  const isa = nativeKernelsInfo().isa;
  return fastKernelsInstalled().native && isa !== null ? `native ${isa}` : 'wasm';
}

/** Runs f on the wasm kernels only (every wasm patch, not the native gemm): the comparison the benchmarks make. */
export function onWasmKernels<T>(f: () => T): T {
  return withUnpatchedKernels(f, { matmul: true, simd: true, gemm: true, native: false });
}

const BATCH = 256;
export const CRITIC_SIZES = [23, 256, 256, 1];
export const ENSEMBLE_SIZES = [23, 200, 200, 200, 200, 36];
export const ENSEMBLE_MEMBERS = 7;

/** A training-step fixture: network, optimizer, fixed batch and loss. */
export interface StepFixture {
  net: DenseStack;
  opt: Adam;
  flops: number;
  step(): void;
  dispose(): void;
}

/** SAC critic shape, MSE to a fixed target. */
export function makeCriticFixture(seed = 1): StepFixture {
  const rng = new Rng(seed, 'bench-critic');
  const net = DenseStack.init({ sizes: CRITIC_SIZES, hidden: 'relu' }, rng);
  const opt = new Adam(net.params(), { lr: 3e-4 });
  const x = tf.tensor(rng.fillNormal(new Float32Array(BATCH * 23)), [BATCH, 23]);
  const y = tf.tensor(rng.fillNormal(new Float32Array(BATCH)), [BATCH, 1]);
  const lossGrad = (q: tf.Tensor): LossAndGrad => {
    const d = tf.sub(q, y);
    return { loss: tf.mean(tf.square(d)), dOut: tf.mul(d, 2 / BATCH) };
  };
  return {
    net, opt, flops: 3 * net.forwardFlops(BATCH),
    step: () => void trainStep(net, opt, x, lossGrad),
    dispose: () => { net.dispose(); opt.dispose(); x.dispose(); y.dispose(); },
  };
}

/**
 * Gaussian negative log-likelihood (up to constants) of targets y under N(mu, exp(logvar)) where
 * out = [mu | logvar] along the last axis: mean((mu-y)^2 * exp(-logvar) + logvar), and its gradient.
 */
export function gaussianNll(out: tf.Tensor, y: tf.Tensor): LossAndGrad {
  const k = out.shape[out.rank - 1]! / 2;
  const [mu, lv] = tf.split(out, [k, k], out.rank - 1) as [tf.Tensor, tf.Tensor];
  const inv = tf.exp(tf.neg(lv));
  const d = tf.sub(mu, y);
  const d2inv = tf.mul(tf.square(d), inv);
  const cnt = y.size;
  const dmu = tf.mul(tf.mul(d, inv), 2 / cnt);
  const dlv = tf.mul(tf.sub(1, d2inv), 1 / cnt);
  return { loss: tf.mean(tf.add(d2inv, lv)), dOut: tf.concat([dmu, dlv], out.rank - 1) };
}

/** 7-member batched dynamics ensemble, Gaussian NLL. */
export function makeEnsembleFixture(seed = 1): StepFixture {
  const rng = new Rng(seed, 'bench-ensemble');
  const E = ENSEMBLE_MEMBERS;
  const net = DenseStack.init({ sizes: ENSEMBLE_SIZES, hidden: 'swish', members: E }, rng);
  const opt = new Adam(net.params(), { lr: 1e-3 });
  const x = tf.tensor(rng.fillNormal(new Float32Array(E * BATCH * 23)), [E, BATCH, 23]);
  const y = tf.tensor(rng.fillNormal(new Float32Array(E * BATCH * 18)), [E, BATCH, 18]);
  return {
    net, opt, flops: 3 * net.forwardFlops(BATCH),
    step: () => void trainStep(net, opt, x, (out) => gaussianNll(out, y)),
    dispose: () => { net.dispose(); opt.dispose(); x.dispose(); y.dispose(); },
  };
}

/**
 * The same two training steps written the naive way (tf.variable, autodiff via
 * optimizer.minimize, tf.train.adam), for comparison: it profits from the kernel patches too,
 * but keeps tfjs's per-op overhead (tape, ~10 ops per parameter in Adam, unfused bias/activation).
 */
export function makeNaiveFixture(kind: 'critic' | 'ensemble', seed = 1): StepFixture {
  const rng = new Rng(seed, `bench-naive-${kind}`);
  const ens = kind === 'ensemble';
  const sizes = ens ? ENSEMBLE_SIZES : CRITIC_SIZES;
  const E = ENSEMBLE_MEMBERS;
  const vars: tf.Variable[] = [];
  for (let l = 0; l + 1 < sizes.length; l++) {
    const fanIn = sizes[l]!;
    const fanOut = sizes[l + 1]!;
    const bound = 1 / Math.sqrt(fanIn);
    const wShape = ens ? [E, fanIn, fanOut] : [fanIn, fanOut];
    vars.push(tf.variable(tf.tensor(rng.fillUniform(new Float32Array(wShape.reduce((a, b) => a * b, 1)), -bound, bound), wShape)));
    vars.push(tf.variable(tf.zeros(ens ? [E, 1, fanOut] : [fanOut])));
  }
  const xShape = ens ? [E, BATCH, 23] : [BATCH, 23];
  const yShape = ens ? [E, BATCH, 18] : [BATCH, 1];
  const x = tf.tensor(rng.fillNormal(new Float32Array(xShape.reduce((a, b) => a * b, 1))), xShape);
  const y = tf.tensor(rng.fillNormal(new Float32Array(yShape.reduce((a, b) => a * b, 1))), yShape);
  const opt = tf.train.adam(ens ? 1e-3 : 3e-4);
  const L = vars.length / 2;
  const loss = (): tf.Scalar => {
    let h: tf.Tensor = x;
    for (let l = 0; l < L; l++) {
      const z = tf.add(tf.matMul(h, vars[2 * l]!), vars[2 * l + 1]!);
      h = l === L - 1 ? z : ens ? tf.mul(z, tf.sigmoid(z)) : tf.relu(z);
    }
    if (!ens) return tf.mean(tf.square(tf.sub(h, y)));
    const [mu, lv] = tf.split(h, 2, 2) as [tf.Tensor, tf.Tensor];
    return tf.mean(tf.add(tf.mul(tf.square(tf.sub(mu, y)), tf.exp(tf.neg(lv))), lv));
  };
  let flops = 0;
  for (let l = 0; l + 1 < sizes.length; l++) flops += 2 * BATCH * sizes[l]! * sizes[l + 1]!;
  flops *= 3 * (ens ? E : 1);
  const fake = { params: () => vars } as unknown as DenseStack;
  return {
    net: fake, opt: null as unknown as Adam, flops,
    step: () => tf.tidy(() => void opt.minimize(loss, false, vars)),
    dispose: () => { tf.dispose([...vars, x, y]); opt.dispose(); },
  };
}

function sync(f: StepFixture): void {
  f.net.params()[0]!.dataSync();
}

/**
 * Milliseconds per call of f, from k back-to-back calls whose last result is read with dataSync
 * (so all the work is really done; reading the output once per k calls keeps the copy-out from
 * dominating small kernels).
 */
function timeTensor(f: () => tf.Tensor, k = 4): number {
  const t0 = performance.now();
  for (let i = 0; i < k - 1; i++) f().dispose();
  const r = f();
  r.dataSync();
  const ms = performance.now() - t0;
  r.dispose();
  return ms / k;
}

function timeStep(f: StepFixture): number {
  const t0 = performance.now();
  f.step();
  sync(f);
  return performance.now() - t0;
}

/** Operands of the peak measurement: a plain 256×256·256×256 matMul (2·256³ flops a call). */
export class PeakMatMul {
  static readonly FLOPS = 2 * 256 ** 3;
  private readonly a = tf.tensor(new Rng(7, 'bench-a').fillNormal(new Float32Array(256 * 256)), [256, 256]);
  private readonly b = tf.tensor(new Rng(7, 'bench-b').fillNormal(new Float32Array(256 * 256)), [256, 256]);
  /** Milliseconds of one product (data read back, so the time is real). */
  timeMs(): number {
    return timeTensor(() => tf.matMul(this.a, this.b));
  }
  dispose(): void {
    this.a.dispose();
    this.b.dispose();
  }
}

/** The dense peak alone: GFLOP/s of the plain 256³ matMul, median over `seconds` of timings. */
export function measurePeakGflops(seconds = 1): number {
  const peak = new PeakMatMul();
  try {
    for (let i = 0; i < 5; i++) peak.timeMs();
    const ms: number[] = [];
    const deadline = performance.now() + seconds * 1000;
    do ms.push(peak.timeMs());
    while (performance.now() < deadline || ms.length < 5);
    return PeakMatMul.FLOPS / (median(ms) * 1e6);
  } finally {
    peak.dispose();
  }
}

export async function benchDense(opts: { seconds?: number; backend?: string } = {}): Promise<DenseBenchResult> {
  const backend = await initBackend(opts.backend !== undefined ? { backend: opts.backend } : {});
  const seconds = opts.seconds ?? 4;
  const peak = new PeakMatMul();
  const critic = makeCriticFixture();
  const ensemble = makeEnsembleFixture();
  try {
    // Warm-up (XNNPACK operator creation, heap growth, JIT).
    for (let i = 0; i < 5; i++) peak.timeMs();
    for (let i = 0; i < 3; i++) timeStep(critic);
    for (let i = 0; i < 2; i++) timeStep(ensemble);
    const products = productEngine();
    const compare = products !== 'wasm';
    if (compare) onWasmKernels(() => { for (let i = 0; i < 3; i++) { peak.timeMs(); timeStep(critic); timeStep(ensemble); } });
    type Times = { peak: number[]; critic: number[]; ensemble: number[] };
    const round = (t: Times): void => {
      for (let i = 0; i < 3; i++) t.peak.push(peak.timeMs());
      for (let i = 0; i < 5; i++) t.critic.push(timeStep(critic));
      t.ensemble.push(timeStep(ensemble));
    };
    const fast: Times = { peak: [], critic: [], ensemble: [] };
    const wasm: Times = { peak: [], critic: [], ensemble: [] };
    const deadline = performance.now() + seconds * 1000 * (compare ? 2 : 1);
    // Interleaved rounds so that noise hits all the measurements alike.
    do {
      round(fast);
      if (compare) onWasmKernels(() => round(wasm));
    } while (performance.now() < deadline || fast.ensemble.length < 3);
    const figures = (t: Times): DenseFigures => {
      const gf = (flops: number, ms: number): number => flops / (ms * 1e6);
      const peakGflops = gf(PeakMatMul.FLOPS, median(t.peak));
      const c = gf(critic.flops, median(t.critic));
      const e = gf(ensemble.flops, median(t.ensemble));
      return {
        peakGflops: round3(peakGflops),
        critic: { gflops: round3(c), ratio: round3(c / peakGflops) },
        ensemble: { gflops: round3(e), ratio: round3(e / peakGflops) },
      };
    };
    const f = figures(fast);
    if (!compare) return { backend, products, ...f };
    const w = figures(wasm);
    return {
      backend, products, ...f, wasm: w,
      nativeSpeedup: {
        peak: round3(f.peakGflops / w.peakGflops),
        critic: round3(f.critic.gflops / w.critic.gflops),
        ensemble: round3(f.ensemble.gflops / w.ensemble.gflops),
      },
    };
  } finally {
    peak.dispose();
    critic.dispose();
    ensemble.dispose();
  }
}

export interface VariantTiming {
  name: string;
  flops: number;
  /** Median ms per kernel setting: native = the native gemm (where built), fast = all wasm patches,
   *  xnnpack = all but the SIMD gemm (products via XNNPACK), matmulOnly = matmul patch only, stock = none. */
  ms: Record<string, number>;
}

/**
 * Times each matMul form and the two training steps under four kernel settings (all fast
 * kernels, all but the SIMD gemm, only the matmul patch, stock wasm kernels). wasm backend only.
 */
export async function benchVariants(opts: { seconds?: number } = {}): Promise<VariantTiming[]> {
  await initBackend({ backend: 'wasm' });
  const budget = (opts.seconds ?? 20) * 1000;
  const settings: Array<[string, FastKernelOptions]> = [
    ...(nativeKernelsInfo().isa !== null ? [['native', { matmul: true, simd: true, native: true }] as [string, FastKernelOptions]] : []),
    ['fast', { matmul: true, simd: true, native: false }],
    ['xnnpack', { matmul: true, simd: true, gemm: false, native: false }],
    ['matmulOnly', { matmul: true, simd: false }],
    ['stock', { matmul: false, simd: false }],
  ];
  const rng = new Rng(3, 'bench-variants');
  const T = (shape: number[]): tf.Tensor => tf.tensor(rng.fillNormal(new Float32Array(shape.reduce((p, q) => p * q, 1))), shape);
  const a = T([256, 256]);
  const b = T([256, 256]);
  const h = T([7, 256, 200]);
  const w = T([7, 200, 200]);
  const dz = T([7, 256, 200]);
  const mm: Array<[string, number, () => tf.Tensor]> = [
    ['matMul 256x256x256', 2 * 256 ** 3, () => tf.matMul(a, b)],
    ['matMul 256^3 transposeA', 2 * 256 ** 3, () => tf.matMul(a, b, true, false)],
    ['matMul 256^3 transposeB', 2 * 256 ** 3, () => tf.matMul(a, b, false, true)],
    ['matMul 256^3 transposeA+B', 2 * 256 ** 3, () => tf.matMul(a, b, true, true)],
    ['batched 7x(256x200 @ 200x200)', 7 * 2 * 256 * 200 * 200, () => tf.matMul(h, w)],
    ['batched dW 7x(256x200)^T @ (256x200)', 7 * 2 * 256 * 200 * 200, () => tf.matMul(h, dz, true, false)],
    ['batched dX 7x(256x200) @ (200x200)^T', 7 * 2 * 256 * 200 * 200, () => tf.matMul(dz, w, false, true)],
    ['Transpose 7x256x200 (last two axes)', 0, () => tf.transpose(h, [0, 2, 1])],
    ['Sum 7x256x200 over axis 1', 0, () => tf.sum(dz, 1, true)],
  ];
  const out: VariantTiming[] = [];
  const per = budget / (mm.length + 8) / settings.length;
  for (const [name, flops, f] of mm) {
    const ms: Record<string, number> = {};
    for (const [sname, so] of settings) {
      ms[sname] = withUnpatchedKernels(() => {
        for (let i = 0; i < 2; i++) timeTensor(f);
        const ts: number[] = [];
        const end = performance.now() + per;
        do ts.push(timeTensor(f));
        while (performance.now() < end && ts.length < 100);
        return median(ts);
      }, so);
    }
    out.push({ name, flops, ms });
  }
  const steps: Array<[string, () => StepFixture]> = [
    ['critic step', () => makeCriticFixture()],
    ['ensemble step', () => makeEnsembleFixture()],
    ['naive critic step (autodiff, tf.train.adam)', () => makeNaiveFixture('critic')],
    ['naive ensemble step (autodiff, tf.train.adam)', () => makeNaiveFixture('ensemble')],
  ];
  for (const [name, make] of steps) {
    const ms: Record<string, number> = {};
    let flops = 0;
    for (const [sname, so] of settings) {
      ms[sname] = withUnpatchedKernels(() => {
        const fx = make();
        flops = fx.flops;
        try {
          for (let i = 0; i < 2; i++) timeStep(fx);
          const ts: number[] = [];
          const end = performance.now() + 2 * per;
          do ts.push(timeStep(fx));
          while (performance.now() < end || ts.length < 3);
          return median(ts);
        } finally {
          fx.dispose();
        }
      }, so);
    }
    out.push({ name, flops, ms });
  }
  for (const t of [a, b, h, w, dz]) t.dispose();
  return out;
}

/** The per-variant timings as text lines (for `mopo bench dense --variants`). */
export async function variantsReport(seconds?: number): Promise<string[]> {
  const rows = await benchVariants(seconds !== undefined ? { seconds: seconds * 5 } : {});
  const lines = rows.map((r) => {
    const cells = Object.entries(r.ms).map(([k, v]) => `${k} ${v.toFixed(3)} ms${r.flops > 0 ? ` (${(r.flops / v / 1e6).toFixed(1)} GF/s)` : ''}`);
    return `${r.name.padEnd(40)} ${cells.join(' | ')}`;
  });
  lines.push(`fast kernels installed: ${JSON.stringify(fastKernelsInstalled())}`);
  return lines;
}
