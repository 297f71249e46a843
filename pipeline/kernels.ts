// Faster wasm kernels for dense layers, installed once where kernels are registered.
//
// Measured on this machine (tfjs-backend-wasm 4.22, XNNPACK, SIMD, 1 thread): the stock wasm
// `BatchMatMul` / `_FusedMatMul` only reach XNNPACK (~25-30 GFLOP/s) for a plain 2-D product
// (batch 1, no transposes). Every other call (transposeA, transposeB, any rank-3 batch > 1) goes
// to a naive blocked triple loop in C++ at ~1.5-2.5 GFLOP/s, i.e. 10-15x slower. Gradients of a
// dense layer are exactly those forms (dX = dY·Wᵀ, dW = Xᵀ·dY), and a batched ensemble is the
// rank-3 form, so a training step spent almost all its time there.
//
// installFastKernels() re-registers both kernels with wrappers that route every call to the
// XNNPACK path:
//   * a transposed operand is transposed explicitly first (SIMD transpose below, or the wasm
//     Transpose kernel), a memory-bound copy ~50x cheaper than the slow product it avoids;
//   * a rank-3 (or higher) batch is computed as separate 2-D products on *views*: the wasm side
//     identifies tensors by an integer id registered with a memory offset
//     (`tfjs.registerTensor(id, size, offset)`), so a batch slice is registered as a fresh id
//     pointing inside the parent buffer, used, and unregistered (`tfjs.disposeData(id)` only
//     drops the id and the XNNPACK operator cached on it; it never frees memory). No copies;
//   * batch dims broadcast with numpy rules (the stock kernel computes max(batchA, batchB)
//     products but reports the broadcast shape, so e.g. [2,1,m,k]x[1,4,k,n] was wrong);
//   * when M << N (first-layer weight gradients Xᵀ·dZ with X = [batch, 23]) the product is
//     computed as (Bᵀ·Aᵀ)ᵀ: XNNPACK re-packs the B operand of every new operator at ~3 ns per
//     element, so packing 23×256 instead of 256×256 saves more than the extra transposes cost;
//   * `_FusedMatMul` gets the same treatment; its bias may be [N] (handed to XNNPACK), [B…, 1, N]
//     (one bias row per batch member, as views: the ensemble case; the stock kernel rejects it)
//     or anything else broadcastable (added with the Add kernel). The stock slow path also
//     mis-broadcasts a rank-1 bias (bias[min(i*N+j, N-1)]), so transposed fused products were wrong;
//   * XNNPACK caches its packed-weights operator by tensor id only: the same data reshaped to
//     another [k, n] (Reshape shares the id) made the stock kernel abort the wasm module. The
//     wrapper remembers each weight's shape and uses a fresh view id when it changes.
//   * with the SIMD module available, batched products (rank-3 ensembles; not thin ones, n < 4)
//     skip XNNPACK altogether: a hand-assembled SIMD gemm (buildGemm,
//     4x8 register tiles, B read in place) runs on the heap offsets directly. XNNPACK re-packs B
//     for every new operator (~4 ns/element incl. operator create/delete), and in a batched
//     ensemble or a backward pass every B is new, so its ~29 GFLOP/s kernel nets ~20 GFLOP/s
//     there; the gemm runs at ~25-27 with nothing to pack. Measured ensemble training step
//     (7 x 23-200x4-36, batch 256, A/B in one process): ~68 -> ~61 ms. 2-D products (critic,
//     inference, the peak benchmark) keep XNNPACK (see useGemm).
// It also installs hand-assembled WebAssembly SIMD kernels (see the second half of this file)
// for the other slow pieces of a training step: Transpose of the last two axes, Sum over a
// non-last axis (bias gradients), Slice/SplitV/Concat (the stock Slice copies the whole input
// out of the heap on every call), and custom kernels: MopoAdam (one fused pass over all
// parameters, an L2 weight decay folded in), MopoSwishGrad, MopoReluGrad, MopoPolyak (SAC's target
// update), MopoDenseSwish and MopoDenseSwishTrain (a dense swish layer's inference, and its training
// forward pass with the sigmoids, in the native gemm's epilogue where it is built). With the native
// kernels only: MopoGaussianHead (the dynamics ensemble's loss head, native/head.h) and
// MopoGaussianVariance (its predicted variances, for rollouts), and SAC's
// MopoSacSquash (tanh-squashed Gaussian sample and log-probability, native/sac.h), MopoSacLosses
// (TD target, the critics' and actor's output gradients, the loss sums) and MopoSacSquashGrad; and
// MopoMatMulReluGrad (a backward step into a relu layer, dz·Wᵀ with the relu's mask in the gemm's
// epilogue).
//
// Where the native kernels are built (native/, by node-gyp at `npm install`; see kernels.cc), every
// float32 product goes to their gemm instead, on the same heap offsets: the host's AVX-512 or AVX2
// with FMA, which wasm cannot use. Measured at 256x256x256: ~160 GFLOP/s (AVX-512; AVX2 ~80)
// against XNNPACK's ~30. Transposed operands are read through strides (no transpose copies).
//
// installFastKernels() is idempotent; uninstallFastKernels() restores the stock kernels;
// getUnpatchedKernels() / getUnpatchedSimdTargets() give the stock configs and
// withUnpatchedKernels(f, opts) runs f under the stock (or partly patched) kernels, for A/B tests.

import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';

type TensorInfo = tf.TensorInfo;
type KernelFunc = tf.KernelFunc;

/** The parts of the wasm backend's internals used here (see backend_wasm.js in tfjs-backend-wasm). */
export interface WasmBackendInternals {
  wasm: {
    cwrap: (name: string, ret: string | null, args: string[]) => (...args: unknown[]) => unknown;
    HEAPF32: Float32Array;
    HEAPU8: Uint8Array;
    tfjs: {
      registerTensor(id: number, size: number, memoryOffset: number): void;
      disposeData(id: number): void;
      getThreadsCount(): number;
    };
  };
  dataIdMap: {
    get(dataId: object): { id: number; memoryOffset: number; shape: number[]; dtype: string; refCount: number };
    has(dataId: object): boolean;
  };
  dataIdNextNumber: number;
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number): TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
}

// Must match the enum in tfjs-backend-wasm/src/cc/fusable_activations.h (kernels/types.js).
const FUSABLE_ACTIVATION: Record<string, number> = {
  linear: 0,
  relu: 1,
  relu6: 2,
  prelu: 3,
  leakyrelu: 4,
  sigmoid: 5,
  elu: 6,
};

type CBatchMatMul = (
  aId: number, aShape: Uint8Array, aRank: number, bId: number, bShape: Uint8Array, bRank: number,
  transposeA: boolean, transposeB: boolean, outId: number,
) => void;
type CFusedMatMul = (
  aId: number, aShape: Uint8Array, aRank: number, bId: number, bShape: Uint8Array, bRank: number,
  transposeA: boolean, transposeB: boolean, activation: number, biasId: number, preluId: number,
  leakyreluAlpha: number, outId: number,
) => void;

interface Ctx {
  backend: WasmBackendInternals;
  bmm: CBatchMatMul;
  fused: CFusedMatMul;
}

let original: { batchMatMul: tf.KernelConfig; fusedMatMul: tf.KernelConfig } | null = null;
let ctx: Ctx | null = null;
let installed = false;
let gemmEnabled = true;
let nativeEnabled = true;

/** The native addon's exports (native/kernels.cc). */
interface NativeKernels {
  gemm(heap: Uint8Array, aOff: number, rsA: number, csA: number, bOff: number, rsB: number, csB: number, cOff: number, rsC: number,
    m: number, k: number, n: number, biasOff: number, act: number, sOff: number): void;
  gaussianHead(heap: Uint8Array, outOff: number, yOff: number, maxOff: number, minOff: number, E: number, B: number, D: number,
    c: number, dOutOff: number, nllOff: number, sMaxOff: number, sMinOff: number): void;
  gaussianVariance(heap: Uint8Array, outOff: number, maxOff: number, minOff: number, R: number, D: number, muOff: number, varOff: number): void;
  sacSquash(heap: Uint8Array, outOff: number, epsOff: number, baseOff: number, B: number, A: number, lo: number, hi: number,
    aOff: number, logpOff: number, auxOff: number): void;
  sacSquashGrad(heap: Uint8Array, dAOff: number, aOff: number, auxOff: number, logAlphaOff: number, M: number, B: number, A: number,
    dOutOff: number): void;
  sacLosses(heap: Uint8Array, qTOff: number, logpNextOff: number, rOff: number, notDoneOff: number, qOff: number, qPiOff: number,
    logpOff: number, logAlphaOff: number, M: number, B: number, gamma: number, targetEntropy: number, dQOff: number, dMinOff: number,
    gLogAlphaOff: number, statsOff: number): void;
  isa(): string;
}

/** The native kernels, or why there are none (not built, MOPO_NATIVE_KERNELS=0, no AVX2 on this CPU). */
const native: { kernels: NativeKernels | null; why: string } = (() => {
  if (process.env.MOPO_NATIVE_KERNELS === '0') return { kernels: null, why: 'MOPO_NATIVE_KERNELS=0' };
  try {
    const k = createRequire(import.meta.url)('../../native/build/Release/mopo_kernels.node') as NativeKernels;
    return k.isa() === 'none' ? { kernels: null, why: 'this CPU has no AVX2 with FMA' } : { kernels: k, why: '' };
  } catch {
    return { kernels: null, why: 'not built (npm install builds them where a C++ compiler is present)' };
  }
})();

/** The native gemm's instruction set ('avx512', 'avx2'), or null with the reason it is not used. */
export function nativeKernelsInfo(): { isa: string | null; why: string } {
  return native.kernels === null ? { isa: null, why: native.why } : { isa: native.kernels.isa(), why: '' };
}

function getCtx(backend: WasmBackendInternals): Ctx {
  if (ctx !== null && ctx.backend === backend) return ctx;
  const w = backend.wasm;
  ctx = {
    backend,
    bmm: w.cwrap('BatchMatMul', null, [
      'number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number',
    ]) as unknown as CBatchMatMul,
    fused: w.cwrap('_FusedMatMul', null, [
      'number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number',
      'number', 'number', 'number', 'number',
    ]) as unknown as CFusedMatMul,
  };
  return ctx;
}

function shapeBytes(shape: readonly number[]): Uint8Array {
  return new Uint8Array(new Int32Array(shape).buffer);
}

function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Registers a view of `size` floats at byte `offset` under a fresh tensor id. */
function registerView(backend: WasmBackendInternals, offset: number, size: number): number {
  const id = backend.dataIdNextNumber++;
  backend.wasm.tfjs.registerTensor(id, size, offset);
  return id;
}

function runKernel(name: string, backend: WasmBackendInternals, inputs: tf.NamedTensorInfoMap, attrs: object = {}): TensorInfo {
  const k = tf.getKernel(name, 'wasm');
  return k.kernelFunc({ inputs, backend: backend as unknown as object, attrs: attrs as tf.NamedAttrMap }) as TensorInfo;
}

/** Explicit transpose of the last two axes with the wasm Transpose kernel (a new buffer). */
function transposeLast2(backend: WasmBackendInternals, x: TensorInfo): TensorInfo {
  const r = x.shape.length;
  const perm = x.shape.map((_, i) => i);
  perm[r - 2] = r - 1;
  perm[r - 1] = r - 2;
  return runKernel('Transpose', backend, { x }, { perm });
}

/** For each output batch index, the (flattened) batch index into a and into b, numpy broadcasting. */
function broadcastBatchIndex(aBatch: number[], bBatch: number[], outBatch: number[]): { ia: Int32Array; ib: Int32Array } {
  const n = sizeOf(outBatch);
  const ia = new Int32Array(n);
  const ib = new Int32Array(n);
  const r = outBatch.length;
  const pa = new Array<number>(r - aBatch.length).fill(1).concat(aBatch);
  const pb = new Array<number>(r - bBatch.length).fill(1).concat(bBatch);
  // Strides of a and b in their own (padded) batch shapes; 0 where broadcast.
  const sa = new Array<number>(r).fill(0);
  const sb = new Array<number>(r).fill(0);
  let acc = 1;
  for (let d = r - 1; d >= 0; d--) {
    sa[d] = (pa[d] as number) === 1 ? 0 : acc;
    acc *= pa[d] as number;
  }
  acc = 1;
  for (let d = r - 1; d >= 0; d--) {
    sb[d] = (pb[d] as number) === 1 ? 0 : acc;
    acc *= pb[d] as number;
  }
  for (let i = 0; i < n; i++) {
    let rem = i;
    let xa = 0;
    let xb = 0;
    for (let d = r - 1; d >= 0; d--) {
      const od = outBatch[d] as number;
      const c = rem % od;
      rem = (rem - c) / od;
      xa += c * (sa[d] as number);
      xb += c * (sb[d] as number);
    }
    ia[i] = xa;
    ib[i] = xb;
  }
  return { ia, ib };
}

interface Plan {
  m: number;
  k: number;
  n: number;
  aBatch: number[];
  bBatch: number[];
  outBatch: number[];
}

function plan(a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean): Plan {
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (ra < 2 || rb < 2) throw new Error(`matMul: both operands must have rank >= 2, got shapes ${a.shape} and ${b.shape}`);
  const m = transposeA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const ka = transposeA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const kb = transposeB ? b.shape[rb - 1]! : b.shape[rb - 2]!;
  const n = transposeB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  if (ka !== kb) {
    throw new Error(
      `Error in matMul: inner shapes (${ka}) and (${kb}) of Tensors with shapes ${a.shape} and ` +
        `${b.shape} and transposeA=${transposeA} and transposeB=${transposeB} must match.`,
    );
  }
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const outBatch = tf.broadcast_util.assertAndGetBroadcastShape(aBatch, bBatch);
  return { m, k: ka, n, aBatch, bBatch, outBatch };
}

interface ProductSpec {
  /** Plain (already transposed if needed) row-major operands: a is [..., m, k], b is [..., k, n]. */
  a: TensorInfo;
  b: TensorInfo;
  p: Plan;
  out: TensorInfo;
  /** Fused epilogue handed to XNNPACK per slice (only elementwise ones are slice-safe). */
  activation: number;
  leakyreluAlpha: number;
  /** Bias with exactly n values (one per output column), or null. */
  biasRow: TensorInfo | null;
  /** Per-batch bias rows: bias of shape [...biasBatch, 1, n]; biasBatch broadcasts to outBatch. */
  biasPerBatch: { t: TensorInfo; batch: number[] } | null;
  /** PReLU weights id passed to the single-product C++ call (only used when there is one product). */
  preluId: number;
}

// XNNPACK caches one packed-weights operator per B tensor id (until that id is disposed), keyed
// by id only, not by shape. Reshape shares the id, so the same data used as [k, n] and later as
// [k', n'] would hit a stale operator: the stock kernel then aborts the whole wasm module. We
// remember the (k, n) each B data was used with and route a different shape through a fresh view id.
const weightShapeUsed = new WeakMap<object, string>();

/** The id to pass as B: the tensor's own (cacheable) id, or a fresh view if its shape changed. */
function weightId(be: WasmBackendInternals, b: TensorInfo, k: number, n: number, views: number[]): number {
  const data = be.dataIdMap.get(b.dataId);
  const key = `${k},${n}`;
  const seen = weightShapeUsed.get(b.dataId);
  if (seen === undefined) weightShapeUsed.set(b.dataId, key);
  else if (seen !== key) {
    const id = registerView(be, data.memoryOffset, k * n);
    views.push(id);
    return id;
  }
  return data.id;
}

/** Runs out[i] = a[ia[i]] · b[ib[i]] (+ bias, activation) as plain 2-D XNNPACK products on views. */
function runProducts(c: Ctx, s: ProductSpec): void {
  const be = c.backend;
  const aData = be.dataIdMap.get(s.a.dataId);
  const bData = be.dataIdMap.get(s.b.dataId);
  const outData = be.dataIdMap.get(s.out.dataId);
  const ids: number[] = [];
  try {
    runProductsOn(c, s, aData, bData, outData, ids);
  } finally {
    for (const id of ids) be.wasm.tfjs.disposeData(id);
  }
}

function runProductsOn(c: Ctx, s: ProductSpec, aData: { id: number; memoryOffset: number },
  bData: { id: number; memoryOffset: number }, outData: { id: number; memoryOffset: number }, ids: number[]): void {
  const be = c.backend;
  const { m, k, n, aBatch, bBatch, outBatch } = s.p;
  const aShape = shapeBytes([1, m, k]);
  const bShape = shapeBytes([1, k, n]);
  const nOut = sizeOf(outBatch);
  const simple = s.biasPerBatch === null && s.activation === FUSABLE_ACTIVATION.linear! && s.biasRow === null;
  const biasRowId = s.biasRow === null ? 0 : be.dataIdMap.get(s.biasRow.dataId).id;

  const bWhole = sizeOf(bBatch) === 1 ? weightId(be, s.b, k, n, ids) : 0;
  if (nOut === 1 && sizeOf(aBatch) === 1 && sizeOf(bBatch) === 1 && s.biasPerBatch === null) {
    // One product on the whole buffers: no views needed.
    if (simple) c.bmm(aData.id, aShape, 3, bWhole, bShape, 3, false, false, outData.id);
    else c.fused(aData.id, aShape, 3, bWhole, bShape, 3, false, false, s.activation, biasRowId, s.preluId, s.leakyreluAlpha, outData.id);
    return;
  }

  const { ia, ib } = broadcastBatchIndex(aBatch, bBatch, outBatch);
  let biasIdx: Int32Array | null = null;
  if (s.biasPerBatch !== null) biasIdx = broadcastBatchIndex(s.biasPerBatch.batch, [], outBatch).ia;
  const biasBase = s.biasPerBatch === null ? 0 : be.dataIdMap.get(s.biasPerBatch.t.dataId).memoryOffset;

  const mk = m * k;
  const kn = k * n;
  const mn = m * n;
  // Views of the same a (or b) slice are reused across output batches that broadcast it.
  const aViews = new Map<number, number>();
  const bViews = new Map<number, number>();
  const biasViews = new Map<number, number>();
  const viewOf = (cache: Map<number, number>, base: number, idx: number, size: number): number => {
    let id = cache.get(idx);
    if (id === undefined) {
      id = registerView(be, base + idx * size * 4, size);
      cache.set(idx, id);
      ids.push(id);
    }
    return id;
  };
  for (let i = 0; i < nOut; i++) {
    const aId = sizeOf(aBatch) === 1 ? aData.id : viewOf(aViews, aData.memoryOffset, ia[i]!, mk);
    const bId = sizeOf(bBatch) === 1 ? bWhole : viewOf(bViews, bData.memoryOffset, ib[i]!, kn);
    const outId = registerView(be, outData.memoryOffset + i * mn * 4, mn);
    ids.push(outId);
    if (simple) {
      c.bmm(aId, aShape, 3, bId, bShape, 3, false, false, outId);
    } else {
      const biasId = biasIdx !== null ? viewOf(biasViews, biasBase, biasIdx[i]!, n) : biasRowId;
      c.fused(aId, aShape, 3, bId, bShape, 3, false, false, s.activation, biasId, 0, s.leakyreluAlpha, outId);
    }
  }
}

// Rough costs on this machine (ns): XNNPACK packs the B operand of every new operator at
// ~2.5-4 ns per element (the stock kernels' transpose-on-pack gather), while the SIMD transpose
// moves ~0.4 ns per element (stock Transpose ~1.7); each extra kernel call costs a few µs.
/** Call counters of the patched matMul (for tests and curiosity). */
export const kernelStats = { batchMatMul: 0, swapped: 0, gemm: 0, native: 0 };

const PACK_NS = 3;
const OP_NS = 4000;

/**
 * Whether to compute C = A·B as C = (Bᵀ·Aᵀ)ᵀ instead: that packs Aᵀ (K×M) instead of B (K×N)
 * and needs other transposes. It wins when M is much smaller than N, e.g. the weight gradient of
 * a first layer (Xᵀ·dZ with X = [batch, 23]): packing 23×256 instead of 256×256.
 */
function preferSwapped(p: Plan, tA: boolean, tB: boolean): boolean {
  const T = simdInstalled ? 0.45 : 1.7;
  const { m, k, n } = p;
  const ba = sizeOf(p.aBatch);
  const bb = sizeOf(p.bBatch);
  const no = sizeOf(p.outBatch);
  const normal = bb * (PACK_NS * k * n + OP_NS) + (tA ? T * m * k * ba + OP_NS : 0) + (tB ? T * k * n * bb + OP_NS : 0);
  const swapped = ba * (PACK_NS * k * m + OP_NS) + (tB ? 0 : T * k * n * bb + OP_NS) + (tA ? 0 : T * m * k * ba + OP_NS) +
    T * m * n * no + OP_NS;
  return swapped < 0.8 * normal;
}

/**
 * Whether a product goes to the SIMD `gemm` (no packing, see buildGemm) instead of XNNPACK: batched
 * products (more than one 2-D product; each would need a fresh XNNPACK operator on a view anyway)
 * with n >= 4 (thinner outputs would run in gemm's scalar column loop). 2-D products keep XNNPACK:
 * a plain one may reuse its cached packed weights, and for the transposed 2-D forms of the critic
 * (256 wide) the gemm gained only ~2.5% (4.75 vs 4.88 ms/step) while the benchmark's critic step
 * showed occasional slow runs with it (0.50-0.61 of peak in 5 of 18 runs, none without; a 1 KiB
 * row stride maps a B panel onto few L1 sets), so that is not worth it. Measured (ms, 7-member ensemble layer 256x200x200, forward /
 * dW / dX, in the training step): XNNPACK on views ~7.4 / 7.6 / 7.0, gemm ~5.6 / 5.8 / 5.6.
 * `installFastKernels({ gemm: false })` keeps the XNNPACK route (for A/B comparisons).
 */
function useGemm(p: Plan): boolean {
  return simdInstalled && gemmEnabled && p.n >= 4 && sizeOf(p.outBatch) > 1;
}

type BiasPerBatch = { t: TensorInfo; batch: number[] } | null;

/**
 * Calls run(aOff, bOff, cOff, biasOff) once per output batch index i, with the byte offsets of
 * a[ia[i]], b[ib[i]] (broadcast batch dims), out[i] and its bias row (0 for none): the loop both
 * gemm routes share.
 */
function forEachProduct(backend: WasmBackendInternals, a: TensorInfo, b: TensorInfo, p: Plan, out: TensorInfo,
  biasRow: TensorInfo | null, biasPerBatch: BiasPerBatch, run: (aOff: number, bOff: number, cOff: number, biasOff: number) => void): number {
  const { m, k, n } = p;
  const nOut = sizeOf(p.outBatch);
  const { ia, ib } = broadcastBatchIndex(p.aBatch, p.bBatch, p.outBatch);
  const biasIdx = biasPerBatch === null ? null : broadcastBatchIndex(biasPerBatch.batch, [], p.outBatch).ia;
  const biasBase = biasPerBatch !== null ? offsetOf(backend, biasPerBatch.t) : biasRow !== null ? offsetOf(backend, biasRow) : 0;
  const aOff = offsetOf(backend, a);
  const bOff = offsetOf(backend, b);
  const cOff = offsetOf(backend, out);
  for (let i = 0; i < nOut; i++) {
    run(aOff + ia[i]! * m * k * 4, bOff + ib[i]! * k * n * 4, cOff + i * m * n * 4, biasIdx !== null ? biasBase + biasIdx[i]! * n * 4 : biasBase);
  }
  return nOut;
}

/**
 * out[i] = a[ia[i]]·b[ib[i]] (+ bias row, relu) for every output batch index with the SIMD gemm,
 * straight on the heap (no view ids, no operators). Transposed operands are transposed explicitly
 * first (one cheap SIMD pass each).
 */
function gemmProducts(backend: WasmBackendInternals, a: TensorInfo, tA: boolean, b: TensorInfo, tB: boolean, p: Plan,
  out: TensorInfo, biasRow: TensorInfo | null, biasPerBatch: BiasPerBatch, relu: boolean): void {
  const sx = getSimd(backend)!;
  const bt = tB ? transposeLast2Fast(backend, b) : b;
  // A transposed A could be read in place (rsA = 4, csA = m·4), but measured in the ensemble step
  // the strided splats cost more (dW 7x256x200: ~6.5 vs ~5.8 ms) than one SIMD transpose pass.
  const at = tA ? transposeLast2Fast(backend, a) : a;
  try {
    const { m, k, n } = p;
    kernelStats.gemm += forEachProduct(backend, at, bt, p, out, biasRow, biasPerBatch, (aOff, bOff, cOff, bias) =>
      sx.gemm(aOff, k * 4, 4, bOff, n * 4, cOff, n * 4, m, k, n, bias, relu ? 1 : 0));
  } finally {
    if (bt !== b) backend.disposeData(bt.dataId);
    if (at !== a) backend.disposeData(at.dataId);
  }
}

/**
 * The native gemm's epilogues (native/gemm.h Act); swishSig also writes sigmoid(z) to a second
 * output; reluMask zeroes the product where a second input (laid out as the output) is not > 0.
 */
const NATIVE_ACT = { linear: 0, relu: 1, swish: 2, swishSig: 3, reluMask: 4 } as const;

/**
 * out[i] = act(a[ia[i]]·b[ib[i]] (+ bias row)) for every output batch index with the native gemm,
 * on the heap in place. A transposed operand is read through its strides, so nothing is copied.
 */
function nativeProducts(backend: WasmBackendInternals, a: TensorInfo, tA: boolean, b: TensorInfo, tB: boolean, p: Plan,
  out: TensorInfo, biasRow: TensorInfo | null, biasPerBatch: BiasPerBatch, act: number, side: TensorInfo | null = null): void {
  // `side`, laid out as out (the gemm's S): swishSig's sigmoids (written), or reluMask's h (read).
  const nk = native.kernels!;
  const { m, k, n } = p;
  // Byte strides: A(i,p) at i·rsA + p·csA (a is [m,k], or [k,m] transposed), B(p,j) at p·rsB + j·csB.
  const [rsA, csA] = tA ? [4, m * 4] : [k * 4, 4];
  const [rsB, csB] = tB ? [4, k * 4] : [n * 4, 4];
  const heap = backend.wasm.HEAPU8; // read per call: the heap's buffer changes when wasm memory grows
  // Laid out as out: the same offset from its own start.
  const sShift = side === null ? null : offsetOf(backend, side) - offsetOf(backend, out);
  kernelStats.native += forEachProduct(backend, a, b, p, out, biasRow, biasPerBatch, (aOff, bOff, cOff, bias) =>
    nk.gemm(heap, aOff, rsA, csA, bOff, rsB, csB, cOff, n * 4, m, k, n, bias, act, sShift === null ? 0 : cOff + sShift));
}

function useNative(): boolean {
  return nativeEnabled && native.kernels !== null;
}

function fastBatchMatMul(args: Parameters<KernelFunc>[0]): TensorInfo {
  const backend = args.backend as unknown as WasmBackendInternals;
  const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
  const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return original!.batchMatMul.kernelFunc(args) as TensorInfo;
  const p = plan(a, b, transposeA, transposeB);
  if (p.m === 0 || p.n === 0 || p.k === 0 || sizeOf(p.outBatch) === 0) return original!.batchMatMul.kernelFunc(args) as TensorInfo;
  const c = getCtx(backend);
  const product = (x: TensorInfo, tx: boolean, y: TensorInfo, ty: boolean, q: Plan): TensorInfo => {
    const xt = tx ? transposeLast2Fast(backend, x) : x;
    const yt = ty ? transposeLast2Fast(backend, y) : y;
    const out = backend.makeOutput([...q.outBatch, q.m, q.n], 'float32');
    try {
      runProducts(c, { a: xt, b: yt, p: q, out, activation: 0, leakyreluAlpha: 0, biasRow: null, biasPerBatch: null, preluId: 0 });
    } finally {
      if (xt !== x) backend.disposeData(xt.dataId);
      if (yt !== y) backend.disposeData(yt.dataId);
    }
    return out;
  };
  kernelStats.batchMatMul++;
  if (useNative()) {
    const out = backend.makeOutput([...p.outBatch, p.m, p.n], 'float32');
    nativeProducts(backend, a, transposeA, b, transposeB, p, out, null, null, NATIVE_ACT.linear);
    return out;
  }
  if (useGemm(p)) {
    const out = backend.makeOutput([...p.outBatch, p.m, p.n], 'float32');
    gemmProducts(backend, a, transposeA, b, transposeB, p, out, null, null, false);
    return out;
  }
  if (!preferSwapped(p, transposeA, transposeB)) return product(a, transposeA, b, transposeB, p);
  kernelStats.swapped++;
  // Cᵀ = Bᵀ·Aᵀ: operands swap roles (and batch dims), then one transpose of the result.
  const q: Plan = { m: p.n, k: p.k, n: p.m, aBatch: p.bBatch, bBatch: p.aBatch, outBatch: p.outBatch };
  const ct = product(b, !transposeB, a, !transposeA, q);
  const out = transposeLast2Fast(backend, ct);
  backend.disposeData(ct.dataId);
  return out;
}

function applyActivation(
  backend: WasmBackendInternals, x: TensorInfo, activation: string, alpha: number, prelu: TensorInfo | undefined,
): TensorInfo {
  switch (activation) {
    case 'linear':
      return x;
    case 'relu':
      return runKernel('Relu', backend, { x });
    case 'relu6':
      return runKernel('Relu6', backend, { x });
    case 'sigmoid':
      return runKernel('Sigmoid', backend, { x });
    case 'elu':
      return runKernel('Elu', backend, { x });
    case 'leakyrelu':
      return runKernel('LeakyRelu', backend, { x }, { alpha });
    case 'prelu':
      return runKernel('Prelu', backend, { x, alpha: prelu! });
    default:
      throw new Error(`${activation} activation not yet supported for _FusedMatMul in the wasm backend.`);
  }
}

function fastFusedMatMul(args: Parameters<KernelFunc>[0]): TensorInfo {
  const backend = args.backend as unknown as WasmBackendInternals;
  const { a, b, bias, preluActivationWeights } = args.inputs as {
    a: TensorInfo; b: TensorInfo; bias?: TensorInfo; preluActivationWeights?: TensorInfo;
  };
  const { transposeA, transposeB, activation, leakyreluAlpha } = args.attrs as {
    transposeA: boolean; transposeB: boolean; activation: string; leakyreluAlpha?: number;
  };
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return original!.fusedMatMul.kernelFunc(args) as TensorInfo;
  const act = FUSABLE_ACTIVATION[activation];
  if (act === undefined) throw new Error(`${activation} activation not yet supported for _FusedMatMul in the wasm backend.`);
  const p = plan(a, b, transposeA, transposeB);
  if (p.m === 0 || p.n === 0 || p.k === 0 || sizeOf(p.outBatch) === 0) return original!.fusedMatMul.kernelFunc(args) as TensorInfo;
  const c = getCtx(backend);
  const alpha = leakyreluAlpha ?? 0;
  const nProducts = sizeOf(p.outBatch);

  const { biasRow, biasPerBatch, biasLater } = placeBias(bias, p);
  // The activation can be fused per product when it is elementwise and the bias goes in first.
  const fuseAct = biasLater === null && act !== FUSABLE_ACTIVATION.prelu;
  const singleProduct = nProducts === 1 && sizeOf(p.aBatch) === 1 && sizeOf(p.bBatch) === 1 && biasPerBatch === null;
  const fusePrelu = act === FUSABLE_ACTIVATION.prelu && singleProduct && biasLater === null;

  const gemmAct = act === FUSABLE_ACTIVATION.linear || act === FUSABLE_ACTIVATION.relu;
  if (useNative()) {
    // Bias and relu fused where they can be; anything else after, as the stock kernel would.
    const out = backend.makeOutput([...p.outBatch, p.m, p.n], 'float32');
    const fused = biasLater === null && gemmAct;
    const nativeAct = fused && act === FUSABLE_ACTIVATION.relu ? NATIVE_ACT.relu : NATIVE_ACT.linear;
    nativeProducts(backend, a, transposeA, b, transposeB, p, out, biasRow, biasPerBatch, nativeAct);
    return fused ? out : addBiasAndActivate(backend, out, biasLater, activation, alpha, preluActivationWeights);
  }
  if (biasLater === null && gemmAct && useGemm(p)) {
    const out = backend.makeOutput([...p.outBatch, p.m, p.n], 'float32');
    gemmProducts(backend, a, transposeA, b, transposeB, p, out, biasRow, biasPerBatch, act === FUSABLE_ACTIVATION.relu);
    return out;
  }
  const at = transposeA ? transposeLast2Fast(backend, a) : a;
  const bt = transposeB ? transposeLast2Fast(backend, b) : b;
  const out = backend.makeOutput([...p.outBatch, p.m, p.n], 'float32');
  try {
    runProducts(c, {
      a: at, b: bt, p, out,
      activation: fuseAct || fusePrelu ? act : 0,
      leakyreluAlpha: alpha,
      biasRow,
      biasPerBatch,
      preluId: fusePrelu ? backend.dataIdMap.get(preluActivationWeights!.dataId).id : 0,
    });
  } finally {
    if (at !== a) backend.disposeData(at.dataId);
    if (bt !== b) backend.disposeData(bt.dataId);
  }
  if (fuseAct || fusePrelu) return out;
  return addBiasAndActivate(backend, out, biasLater, activation, alpha, preluActivationWeights);
}

/** The unfused rest of a _FusedMatMul: out + bias (if any), then the activation; frees what it replaces. */
function addBiasAndActivate(backend: WasmBackendInternals, out: TensorInfo, bias: TensorInfo | null, activation: string, alpha: number,
  prelu: TensorInfo | undefined): TensorInfo {
  let res = out;
  if (bias !== null) {
    res = runKernel('Add', backend, { a: out, b: bias });
    backend.disposeData(out.dataId);
  }
  const activated = applyActivation(backend, res, activation, alpha, prelu);
  if (activated !== res) backend.disposeData(res.dataId);
  return activated;
}

/**
 * How a product's bias is applied: one row of n values for every product (biasRow), one row per
 * batch member ([..., 1, n] broadcasting to the output batch: the ensemble case), or, anything else
 * broadcastable, added after the product (biasLater).
 */
function placeBias(bias: TensorInfo | null | undefined, p: Plan): { biasRow: TensorInfo | null; biasPerBatch: BiasPerBatch; biasLater: TensorInfo | null } {
  const none = { biasRow: null, biasPerBatch: null, biasLater: null };
  if (bias == null) return none;
  const bs = bias.shape;
  const r = bs.length;
  const lastIsN = r >= 1 && bs[r - 1] === p.n;
  if (lastIsN && sizeOf(bs) === p.n) return { ...none, biasRow: bias };
  if (lastIsN && r >= 2 && bs[r - 2] === 1 && r - 2 <= p.outBatch.length && broadcastsTo(bs.slice(0, -2), p.outBatch)) {
    return { ...none, biasPerBatch: { t: bias, batch: bs.slice(0, -2) } };
  }
  return { ...none, biasLater: bias };
}

function broadcastsTo(from: number[], to: number[]): boolean {
  if (from.length > to.length) return false;
  for (let i = 1; i <= from.length; i++) {
    const f = from[from.length - i]!;
    if (f !== 1 && f !== to[to.length - i]) return false;
  }
  return true;
}

/** Captures the stock wasm kernels (once). Needs the wasm backend module to be loaded. */
function captureOriginals(): void {
  if (original !== null) return;
  const bmm = tf.getKernel('BatchMatMul', 'wasm');
  const fused = tf.getKernel('_FusedMatMul', 'wasm');
  if (bmm == null || fused == null) throw new Error('installFastKernels: the wasm kernels are not registered (import @tensorflow/tfjs-backend-wasm first)');
  original = { batchMatMul: { ...bmm }, fusedMatMul: { ...fused } };
}

export interface FastKernelOptions {
  /** Patch BatchMatMul and _FusedMatMul (default true). */
  matmul?: boolean;
  /** Install the SIMD Transpose / Sum replacements and the Mopo* custom kernels (default true). */
  simd?: boolean;
  /** With matmul and simd: route batched / transposed products to the SIMD gemm (default true). */
  gemm?: boolean;
  /** With matmul: route every float32 product to the native gemm where it is built (default true). */
  native?: boolean;
}

/**
 * Re-registers the wasm `BatchMatMul` and `_FusedMatMul` kernels with the fast wrappers and
 * (when WebAssembly SIMD is available) replaces `Transpose` (last-two-axes swaps) and `Sum`
 * (reductions over non-last axes) and registers the custom kernels (MopoAdam, MopoSwishGrad, …;
 * MopoGaussianHead and MopoSac* only while the native kernels are enabled). Idempotent. The wasm backend module must be imported; the backend may or may not
 * be initialized yet (the wrappers bind to it lazily on first call).
 */
export function installFastKernels(opts: FastKernelOptions = {}): void {
  gemmEnabled = opts.gemm ?? true;
  nativeEnabled = opts.native ?? true;
  setCustomKernels(NATIVE_ONLY_KERNELS, nativeEnabled && native.kernels !== null);
  if (opts.simd ?? true) installSimdKernels();
  if (installed || !(opts.matmul ?? true)) return;
  captureOriginals();
  const o = original!;
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel({ ...o.batchMatMul, kernelFunc: fastBatchMatMul as unknown as KernelFunc });
  tf.unregisterKernel('_FusedMatMul', 'wasm');
  tf.registerKernel({ ...o.fusedMatMul, kernelFunc: fastFusedMatMul as unknown as KernelFunc });
  installed = true;
}

/** Restores all the stock wasm kernels (and unregisters the Mopo* custom kernels). */
export function uninstallFastKernels(): void {
  uninstallSimdKernels();
  setCustomKernels(NATIVE_ONLY_KERNELS, false);
  if (!installed || original === null) return;
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel(original.batchMatMul);
  tf.unregisterKernel('_FusedMatMul', 'wasm');
  tf.registerKernel(original.fusedMatMul);
  installed = false;
}

/** Which parts are currently installed. */
export function fastKernelsInstalled(): { matmul: boolean; simd: boolean; gemm: boolean; native: boolean } {
  return { matmul: installed, simd: simdInstalled, gemm: gemmEnabled, native: installed && nativeEnabled && native.kernels !== null };
}

/** The stock kernel configs (as registered by tfjs-backend-wasm), for comparison and tests. */
export function getUnpatchedKernels(): { batchMatMul: tf.KernelConfig; fusedMatMul: tf.KernelConfig } {
  captureOriginals();
  return original!;
}

/**
 * Runs `f` with the stock kernels temporarily registered, or with only some of the fast parts
 * (`opts`), and restores the previous state after. For A/B comparisons in tests and benchmarks.
 */
export function withUnpatchedKernels<T>(f: () => T, opts: FastKernelOptions = { matmul: false, simd: false }): T {
  const was = fastKernelsInstalled();
  uninstallFastKernels();
  installFastKernels({ matmul: opts.matmul ?? false, simd: opts.simd ?? false, gemm: opts.gemm ?? true, native: opts.native ?? false });
  try {
    return f();
  } finally {
    uninstallFastKernels();
    installFastKernels(was);
  }
}

// ---------------------------------------------------------------------------------------------
// Hand-assembled WebAssembly SIMD kernels that run directly on the tfjs wasm heap.
//
// The tfjs wasm module exports its linear memory (`asm.memory`), so a second, tiny module that
// imports that memory can read and write tensor buffers in place (addresses = the backend's
// `memoryOffset`s; outputs are allocated with backend.makeOutput as usual). Measured on this
// machine, the stock kernels these replace are slow (ms, median, wasm, incl. ~10 µs dispatch):
//   Transpose last two axes of 7x256x200      0.62 -> 0.16   (4x4 SIMD blocks, 16-column tiles)
//   Sum over axis 1 of 7x256x200 (bias grad)  0.77 -> 0.05   (stock transposes first)
//   SplitV of 7x256x36 into 2 / Concat back   0.57 / 0.79 -> 0.04 / 0.03 (stock Slice copies the
//                                             whole heap range out, then one JS set() per row)
//   Adam as tf ops: ~10 kernels per parameter (Sqrt alone 0.28 Gelem/s) -> MopoAdam, one pass
//   swish gradient: 4 kernels -> MopoSwishGrad;  relu gradient: Step + Mul -> MopoReluGrad
// The module (a few KB) is built below with a minimal encoder, so no toolchain is needed. Without
// WebAssembly SIMD none of this is installed and the stock kernels / tf-op fallbacks are used.

type Code = number[];
const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}
function f32bytes(x: number): number[] {
  return Array.from(new Uint8Array(new Float32Array([x]).buffer));
}
const cat = (...xs: Code[]): Code => ([] as number[]).concat(...xs);
const simd = (opc: number): Code => [0xfd, ...uleb(opc)];

// A small expression DSL: each helper returns the bytecode that leaves its value on the stack.
const W = {
  get: (i: number): Code => [0x20, ...uleb(i)],
  set: (i: number, v: Code): Code => cat(v, [0x21, ...uleb(i)]),
  i32: (n: number): Code => [0x41, ...sleb(n)],
  f32: (x: number): Code => [0x43, ...f32bytes(x)],
  add: (a: Code, b: Code): Code => cat(a, b, [0x6a]),
  sub: (a: Code, b: Code): Code => cat(a, b, [0x6b]),
  mul: (a: Code, b: Code): Code => cat(a, b, [0x6c]),
  and: (a: Code, b: Code): Code => cat(a, b, [0x71]),
  /** signed i32 min */
  min: (a: Code, b: Code): Code => cat(a, b, a, b, [0x48, 0x1b]),
  fload: (addr: Code): Code => cat(addr, [0x2a, 2, 0]),
  fstore: (addr: Code, v: Code): Code => cat(addr, v, [0x38, 2, 0]),
  fadd: (a: Code, b: Code): Code => cat(a, b, [0x92]),
  fsub: (a: Code, b: Code): Code => cat(a, b, [0x93]),
  fmul: (a: Code, b: Code): Code => cat(a, b, [0x94]),
  fdiv: (a: Code, b: Code): Code => cat(a, b, [0x95]),
  fsqrt: (a: Code): Code => cat(a, [0x91]),
  fgt: (a: Code, b: Code): Code => cat(a, b, [0x5e]),
  select: (a: Code, b: Code, cond: Code): Code => cat(a, b, cond, [0x1b]),
  vload: (addr: Code): Code => cat(addr, simd(0x00), [4, 0]),
  vstore: (addr: Code, v: Code): Code => cat(addr, v, simd(0x0b), [4, 0]),
  vsplat: (x: Code): Code => cat(x, simd(0x13)),
  vadd: (a: Code, b: Code): Code => cat(a, b, simd(0xe4)),
  vsub: (a: Code, b: Code): Code => cat(a, b, simd(0xe5)),
  vmul: (a: Code, b: Code): Code => cat(a, b, simd(0xe6)),
  vdiv: (a: Code, b: Code): Code => cat(a, b, simd(0xe7)),
  vsqrt: (a: Code): Code => cat(a, simd(0xe3)),
  vgt: (a: Code, b: Code): Code => cat(a, b, simd(0x44)),
  vand: (a: Code, b: Code): Code => cat(a, b, simd(0x4e)),
  /** i8x16.shuffle of two f32x4 values; lanes 0-3 pick from a, 4-7 from b. */
  vshuf: (a: Code, b: Code, lanes: [number, number, number, number]): Code =>
    cat(a, b, simd(0x0d), lanes.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3])),
  /** for (i = start; i < end; i += step) body   (signed compare; end is re-evaluated). */
  for: (i: number, start: Code, end: Code, step: number, body: Code): Code =>
    cat(start, [0x21, ...uleb(i)], [0x02, 0x40, 0x03, 0x40], W.get(i), end, [0x4e, 0x0d, 1], body,
      W.get(i), W.i32(step), [0x6a, 0x21, ...uleb(i)], [0x0c, 0, 0x0b, 0x0b]),
};

interface WasmFn {
  name: string;
  params: number[];
  locals: number[];
  body: Code;
}

function encodeModule(fns: WasmFn[]): Uint8Array<ArrayBuffer> {
  const vec = (items: Code[]): Code => cat(uleb(items.length), ...items);
  const str = (s: string): Code => cat(uleb(s.length), Array.from(Buffer.from(s, 'utf8')));
  const section = (id: number, body: Code): Code => cat([id], uleb(body.length), body);
  const types = fns.map((f) => cat([0x60], vec(f.params.map((t) => [t])), [0]));
  const imports = [cat(str('env'), str('memory'), [0x02, 0x00], uleb(0))];
  const funcs = fns.map((_, i) => uleb(i));
  const exports = fns.map((f, i) => cat(str(f.name), [0x00], uleb(i)));
  const codes = fns.map((f) => {
    const groups: Code[] = [];
    for (const t of f.locals) groups.push([1, t]);
    const body = cat(vec(groups), f.body, [0x0b]);
    return cat(uleb(body.length), body);
  });
  return new Uint8Array(cat(
    [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    section(1, vec(types)),
    section(2, vec(imports)),
    section(3, vec(funcs)),
    section(7, vec(exports)),
    section(10, vec(codes)),
  ));
}

/** Elementwise kernel over byte length nb: vector loop of 16 bytes then a scalar tail. */
function elementwise(name: string, nPtrs: number, nScalars: number, extraLocals: number[],
  pre: Code, vec: (i: number) => Code, scalar: (i: number) => Code): WasmFn {
  const nb = nPtrs;
  const i = nPtrs + 1 + nScalars;
  const n16 = i + 1;
  return {
    name,
    params: [...new Array<number>(nPtrs + 1).fill(I32), ...new Array<number>(nScalars).fill(F32)],
    locals: [I32, I32, ...extraLocals],
    body: cat(
      pre,
      W.set(n16, W.and(W.get(nb), W.i32(~15))),
      W.for(i, W.i32(0), W.get(n16), 16, vec(i)),
      W.for(i, W.get(n16), W.get(nb), 4, scalar(i)),
    ),
  };
}

/**
 * gemm(a, rsA, csA, b, ldb, c, ldc, m, k, n, bias, relu):
 *   C[i, j] = (bias ? bias[j] : 0) + Σ_k A[i, k]·B[k, j]   (then max(0, ·) if relu)
 * with A[i, k] at a + i·rsA + k·csA (so a transposed A is just other strides), B row-major with row
 * stride ldb, C row-major with row stride ldc, bias a row of n floats (0 = none); strides in bytes.
 * Register tiles of 4 rows x 8 columns (then 4 x 4, then single columns), rows left over one at a
 * time; per k step one splat of A per row and two B vectors, multiply + add. No packing at all:
 * B is read in place (its 8-column panel is re-read from L1/L2 for every row block), which is
 * what makes it win over XNNPACK for operands used once (see header: ~4 ns/element to pack).
 */
function buildGemm(): WasmFn {
  const MR = 4;
  const P = { a: 0, rsA: 1, csA: 2, b: 3, ldb: 4, c: 5, ldc: 6, m: 7, k: 8, n: 9, bias: 10, relu: 11 };
  const locals: number[] = [];
  let next = 12;
  const local = (t: number): number => {
    locals.push(t);
    return next++;
  };
  const i0 = local(I32), j = local(I32), kk = local(I32), k4 = local(I32), kEnd = local(I32), pb = local(I32), cb = local(I32);
  const sacc = local(F32);
  const pa: number[] = [];
  for (let q = 0; q < MR; q++) pa.push(local(I32));
  const acc: number[][] = [];
  for (let q = 0; q < MR; q++) acc.push([local(V128), local(V128)]);
  const bv = [local(V128), local(V128)];
  const sv = local(V128);
  const zero = local(V128);
  const loadSplat = (addr: Code): Code => cat(addr, simd(0x09), [2, 0]);
  const vload = (addr: Code, off: number): Code => cat(addr, simd(0x00), [4], uleb(off));
  const vstore = (addr: Code, off: number, v: Code): Code => cat(addr, v, simd(0x0b), [4], uleb(off));
  const vmax0 = (v: Code): Code => cat(W.get(zero), v, simd(0xeb)); // f32x4.pmax(0, v) = 0 < v ? v : 0
  const ifElse = (cond: Code, a: Code, b: Code): Code => cat(cond, [0x04, 0x40], a, [0x05], b, [0x0b]);
  const ifElseF = (cond: Code, a: Code, b: Code): Code => cat(cond, [0x04, F32], a, [0x05], b, [0x0b]);
  const jBytes = (): Code => W.mul(W.get(j), W.i32(4));
  const tile = (mr: number, nv: number): Code => {
    const init: Code[] = [];
    for (let q = 0; q < mr; q++) {
      for (let v = 0; v < nv; v++) {
        init.push(ifElse(W.get(P.bias), W.set(acc[q]![v]!, vload(W.add(W.get(P.bias), jBytes()), 16 * v)), W.set(acc[q]![v]!, W.get(zero))));
      }
    }
    const step = (): Code => {
      const out: Code[] = [];
      for (let v = 0; v < nv; v++) out.push(W.set(bv[v]!, vload(W.get(pb), 16 * v)));
      for (let q = 0; q < mr; q++) {
        out.push(W.set(sv, loadSplat(W.add(W.get(pa[q]!), W.get(kk)))));
        for (let v = 0; v < nv; v++) out.push(W.set(acc[q]![v]!, W.vadd(W.get(acc[q]![v]!), W.vmul(W.get(sv), W.get(bv[v]!)))));
      }
      out.push(W.set(kk, W.add(W.get(kk), W.get(P.csA))), W.set(pb, W.add(W.get(pb), W.get(P.ldb))));
      return cat(...out);
    };
    const stores: Code[] = [];
    for (let q = 0; q < mr; q++) {
      for (let v = 0; v < nv; v++) {
        const addr = W.add(W.add(W.get(cb), W.mul(W.i32(q), W.get(P.ldc))), jBytes());
        stores.push(ifElse(W.get(P.relu), vstore(addr, 16 * v, vmax0(W.get(acc[q]![v]!))), vstore(addr, 16 * v, W.get(acc[q]![v]!))));
      }
    }
    // kk runs over k·csA bytes (csA may be 4 or a row stride), 4 steps per iteration, then the rest.
    const loop = (end: number, body: Code): Code =>
      cat([0x02, 0x40, 0x03, 0x40], W.get(kk), W.get(end), [0x4e, 0x0d, 1], body, [0x0c, 0, 0x0b, 0x0b]);
    return cat(
      ...init,
      W.set(pb, W.add(W.get(P.b), jBytes())),
      W.set(kk, W.i32(0)),
      loop(k4, cat(step(), step(), step(), step())),
      loop(kEnd, step()),
      ...stores,
    );
  };
  const scalarCol = (mr: number): Code => {
    const out: Code[] = [];
    for (let q = 0; q < mr; q++) {
      out.push(
        W.set(sacc, ifElseF(W.get(P.bias), W.fload(W.add(W.get(P.bias), jBytes())), W.f32(0))),
        W.set(pb, W.add(W.get(P.b), jBytes())),
        W.set(kk, W.i32(0)),
        cat([0x02, 0x40, 0x03, 0x40], W.get(kk), W.get(kEnd), [0x4e, 0x0d, 1],
          W.set(sacc, W.fadd(W.get(sacc), W.fmul(W.fload(W.add(W.get(pa[q]!), W.get(kk))), W.fload(W.get(pb))))),
          W.set(kk, W.add(W.get(kk), W.get(P.csA))),
          W.set(pb, W.add(W.get(pb), W.get(P.ldb))),
          [0x0c, 0, 0x0b, 0x0b]),
        W.fstore(W.add(W.add(W.get(cb), W.mul(W.i32(q), W.get(P.ldc))), jBytes()),
          ifElseF(W.get(P.relu), W.select(W.get(sacc), W.f32(0), W.fgt(W.get(sacc), W.f32(0))), W.get(sacc))),
      );
    }
    return cat(...out);
  };
  const rowBlock = (mr: number): Code => cat(
    ...Array.from({ length: mr }, (_, q) => W.set(pa[q]!, W.add(W.get(P.a), W.mul(W.add(W.get(i0), W.i32(q)), W.get(P.rsA))))),
    W.set(cb, W.add(W.get(P.c), W.mul(W.get(i0), W.get(P.ldc)))),
    W.for(j, W.i32(0), W.sub(W.get(P.n), W.i32(7)), 8, tile(mr, 2)),
    // j is left at the first column not covered by 8-wide tiles.
    cat(W.get(j), W.sub(W.get(P.n), W.i32(3)), [0x48, 0x04, 0x40], tile(mr, 1), W.set(j, W.add(W.get(j), W.i32(4))), [0x0b]),
    W.for(j, W.get(j), W.get(P.n), 1, scalarCol(mr)),
  );
  return {
    name: 'gemm',
    params: new Array<number>(12).fill(I32),
    locals,
    body: cat(
      W.set(zero, W.vsplat(W.f32(0))),
      W.set(kEnd, W.mul(W.get(P.k), W.get(P.csA))),
      W.set(k4, W.mul(W.and(W.get(P.k), W.i32(-4)), W.get(P.csA))),
      W.for(i0, W.i32(0), W.sub(W.get(P.m), W.i32(MR - 1)), MR, rowBlock(MR)),
      W.for(i0, W.get(i0), W.get(P.m), 1, rowBlock(1)),
    ),
  };
}

function buildSimdModule(): Uint8Array<ArrayBuffer> {
  const at = (p: number, i: number): Code => W.add(W.get(p), W.get(i));
  // adam(p, g, m, v, po, mo, vo, nbytes, lrc, b1, b2, ic2, eps, wd); lrc = lr/(1-b1^t), ic2 = 1/(1-b2^t);
  // the gradient taken is g + wd·p (an L2 weight decay folded in: no pass of its own)
  const A = { p: 0, g: 1, m: 2, v: 3, po: 4, mo: 5, vo: 6, lrc: 8, b1: 9, b2: 10, ic2: 11, eps: 12, wd: 13 };
  const [vlrc, vb1, v1b1, vb2, v1b2, vic2, veps, gv, mv, vv, vwd] = [16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26];
  const [gs, ms, vs] = [27, 28, 29];
  const adam = elementwise('adam', 7, 6, [V128, V128, V128, V128, V128, V128, V128, V128, V128, V128, V128, F32, F32, F32],
    cat(
      W.set(vlrc, W.vsplat(W.get(A.lrc))),
      W.set(vb1, W.vsplat(W.get(A.b1))),
      W.set(v1b1, W.vsplat(W.fsub(W.f32(1), W.get(A.b1)))),
      W.set(vb2, W.vsplat(W.get(A.b2))),
      W.set(v1b2, W.vsplat(W.fsub(W.f32(1), W.get(A.b2)))),
      W.set(vic2, W.vsplat(W.get(A.ic2))),
      W.set(veps, W.vsplat(W.get(A.eps))),
      W.set(vwd, W.vsplat(W.get(A.wd))),
    ),
    (i) => cat(
      W.set(gv, W.vadd(W.vload(at(A.g, i)), W.vmul(W.get(vwd), W.vload(at(A.p, i))))),
      W.set(mv, W.vadd(W.vmul(W.get(vb1), W.vload(at(A.m, i))), W.vmul(W.get(v1b1), W.get(gv)))),
      W.set(vv, W.vadd(W.vmul(W.get(vb2), W.vload(at(A.v, i))), W.vmul(W.get(v1b2), W.vmul(W.get(gv), W.get(gv))))),
      W.vstore(at(A.mo, i), W.get(mv)),
      W.vstore(at(A.vo, i), W.get(vv)),
      W.vstore(at(A.po, i), W.vsub(W.vload(at(A.p, i)),
        W.vdiv(W.vmul(W.get(vlrc), W.get(mv)), W.vadd(W.vsqrt(W.vmul(W.get(vv), W.get(vic2))), W.get(veps))))),
    ),
    (i) => cat(
      W.set(gs, W.fadd(W.fload(at(A.g, i)), W.fmul(W.get(A.wd), W.fload(at(A.p, i))))),
      W.set(ms, W.fadd(W.fmul(W.get(A.b1), W.fload(at(A.m, i))), W.fmul(W.fsub(W.f32(1), W.get(A.b1)), W.get(gs)))),
      W.set(vs, W.fadd(W.fmul(W.get(A.b2), W.fload(at(A.v, i))), W.fmul(W.fsub(W.f32(1), W.get(A.b2)), W.fmul(W.get(gs), W.get(gs))))),
      W.fstore(at(A.mo, i), W.get(ms)),
      W.fstore(at(A.vo, i), W.get(vs)),
      W.fstore(at(A.po, i), W.fsub(W.fload(at(A.p, i)),
        W.fdiv(W.fmul(W.get(A.lrc), W.get(ms)), W.fadd(W.fsqrt(W.fmul(W.get(vs), W.get(A.ic2))), W.get(A.eps))))),
    ),
  );
  // swishgrad(dy, s, h, out, nbytes): out = dy * (s + h*(1-s))
  const one = 7;
  const swishGrad = elementwise('swishgrad', 4, 0, [V128],
    W.set(one, W.vsplat(W.f32(1))),
    (i) => W.vstore(at(3, i), W.vmul(W.vload(at(0, i)),
      W.vadd(W.vload(at(1, i)), W.vmul(W.vload(at(2, i)), W.vsub(W.get(one), W.vload(at(1, i))))))),
    (i) => W.fstore(at(3, i), W.fmul(W.fload(at(0, i)),
      W.fadd(W.fload(at(1, i)), W.fmul(W.fload(at(2, i)), W.fsub(W.f32(1), W.fload(at(1, i))))))),
  );
  // relugrad(dy, h, out, nbytes): out = h > 0 ? dy : 0
  const zero = 6;
  const reluGrad = elementwise('relugrad', 3, 0, [V128],
    W.set(zero, W.vsplat(W.f32(0))),
    (i) => W.vstore(at(2, i), W.vand(W.vload(at(0, i)), W.vgt(W.vload(at(1, i)), W.get(zero)))),
    (i) => W.fstore(at(2, i), W.select(W.fload(at(0, i)), W.f32(0), W.fgt(W.fload(at(1, i)), W.f32(0)))),
  );
  // colsum(src, dst, outer, rows, rowBytes): dst[o, :] = sum_r src[o, r, :]   (rows >= 1)
  const C = { src: 0, dst: 1, outer: 2, rows: 3, rb: 4, o: 5, r: 6, c: 7, s0: 8, d: 9, rp: 10, c16: 11 };
  const colsum: WasmFn = {
    name: 'colsum',
    params: [I32, I32, I32, I32, I32],
    locals: [I32, I32, I32, I32, I32, I32, I32],
    body: cat(
      W.set(C.c16, W.and(W.get(C.rb), W.i32(~15))),
      W.for(C.o, W.i32(0), W.get(C.outer), 1, cat(
        W.set(C.s0, W.add(W.get(C.src), W.mul(W.mul(W.get(C.o), W.get(C.rows)), W.get(C.rb)))),
        W.set(C.d, W.add(W.get(C.dst), W.mul(W.get(C.o), W.get(C.rb)))),
        W.for(C.c, W.i32(0), W.get(C.c16), 16, W.vstore(at(C.d, C.c), W.vload(at(C.s0, C.c)))),
        W.for(C.c, W.get(C.c16), W.get(C.rb), 4, W.fstore(at(C.d, C.c), W.fload(at(C.s0, C.c)))),
        W.for(C.r, W.i32(1), W.get(C.rows), 1, cat(
          W.set(C.rp, W.add(W.get(C.s0), W.mul(W.get(C.r), W.get(C.rb)))),
          W.for(C.c, W.i32(0), W.get(C.c16), 16,
            W.vstore(at(C.d, C.c), W.vadd(W.vload(at(C.d, C.c)), W.vload(at(C.rp, C.c))))),
          W.for(C.c, W.get(C.c16), W.get(C.rb), 4,
            W.fstore(at(C.d, C.c), W.fadd(W.fload(at(C.d, C.c)), W.fload(at(C.rp, C.c))))),
        )),
      )),
    ),
  };
  // transpose(src, dst, rows, cols, batch): dst[b, j, i] = src[b, i, j]
  const T = { src: 0, dst: 1, rows: 2, cols: 3, batch: 4, b: 5, i: 6, j: 7, sb: 8, db: 9, r4: 10, c4: 11,
    cb: 12, rb: 13, a: 14, d: 15, jb: 16, je: 17, r0: 18, r1: 19, r2: 20, r3: 21, t0: 22, t1: 23, t2: 24, t3: 25 };
  const el = (base: number, idx: Code): Code => W.add(W.get(base), W.mul(idx, W.i32(4)));
  const scalarT = (i: Code, j: Code): Code =>
    W.fstore(el(T.db, W.add(W.mul(j, W.get(T.rows)), i)), W.fload(el(T.sb, W.add(W.mul(i, W.get(T.cols)), j))));
  const transpose: WasmFn = {
    name: 'transpose',
    params: [I32, I32, I32, I32, I32],
    locals: [I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, V128, V128, V128, V128, V128, V128, V128, V128],
    body: cat(
      W.set(T.r4, W.and(W.get(T.rows), W.i32(~3))),
      W.set(T.c4, W.and(W.get(T.cols), W.i32(~3))),
      W.set(T.cb, W.mul(W.get(T.cols), W.i32(4))),
      W.set(T.rb, W.mul(W.get(T.rows), W.i32(4))),
      W.for(T.b, W.i32(0), W.get(T.batch), 1, cat(
        W.set(T.sb, W.add(W.get(T.src), W.mul(W.mul(W.get(T.b), W.get(T.rows)), W.get(T.cb)))),
        W.set(T.db, W.add(W.get(T.dst), W.mul(W.mul(W.get(T.b), W.get(T.rows)), W.get(T.cb)))),
        // Column blocks of 16 keep the 16 destination rows being filled resident in L1 (a
        // power-of-two row stride would otherwise thrash a few cache sets).
        W.for(T.jb, W.i32(0), W.get(T.c4), 16, cat(
        W.set(T.je, W.min(W.add(W.get(T.jb), W.i32(16)), W.get(T.c4))),
        W.for(T.i, W.i32(0), W.get(T.r4), 4, W.for(T.j, W.get(T.jb), W.get(T.je), 4, cat(
          W.set(T.a, el(T.sb, W.add(W.mul(W.get(T.i), W.get(T.cols)), W.get(T.j)))),
          W.set(T.r0, W.vload(W.get(T.a))),
          W.set(T.r1, W.vload(W.add(W.get(T.a), W.get(T.cb)))),
          W.set(T.r2, W.vload(W.add(W.get(T.a), W.mul(W.get(T.cb), W.i32(2))))),
          W.set(T.r3, W.vload(W.add(W.get(T.a), W.mul(W.get(T.cb), W.i32(3))))),
          W.set(T.t0, W.vshuf(W.get(T.r0), W.get(T.r1), [0, 4, 1, 5])),
          W.set(T.t1, W.vshuf(W.get(T.r0), W.get(T.r1), [2, 6, 3, 7])),
          W.set(T.t2, W.vshuf(W.get(T.r2), W.get(T.r3), [0, 4, 1, 5])),
          W.set(T.t3, W.vshuf(W.get(T.r2), W.get(T.r3), [2, 6, 3, 7])),
          W.set(T.d, el(T.db, W.add(W.mul(W.get(T.j), W.get(T.rows)), W.get(T.i)))),
          W.vstore(W.get(T.d), W.vshuf(W.get(T.t0), W.get(T.t2), [0, 1, 4, 5])),
          W.vstore(W.add(W.get(T.d), W.get(T.rb)), W.vshuf(W.get(T.t0), W.get(T.t2), [2, 3, 6, 7])),
          W.vstore(W.add(W.get(T.d), W.mul(W.get(T.rb), W.i32(2))), W.vshuf(W.get(T.t1), W.get(T.t3), [0, 1, 4, 5])),
          W.vstore(W.add(W.get(T.d), W.mul(W.get(T.rb), W.i32(3))), W.vshuf(W.get(T.t1), W.get(T.t3), [2, 3, 6, 7])),
        ))))),
        W.for(T.i, W.i32(0), W.get(T.rows), 1, W.for(T.j, W.get(T.c4), W.get(T.cols), 1, scalarT(W.get(T.i), W.get(T.j)))),
        W.for(T.i, W.get(T.r4), W.get(T.rows), 1, W.for(T.j, W.i32(0), W.get(T.c4), 1, scalarT(W.get(T.i), W.get(T.j)))),
      )),
    ),
  };
  // copy2d(src, srcStrideBytes, dst, dstStrideBytes, rows, rowBytes): strided row copy (rowBytes % 4 == 0)
  const K = { src: 0, ss: 1, dst: 2, ds: 3, rows: 4, rb: 5, r: 6, c: 7, c16: 8, sp: 9, dp: 10 };
  const copy2d: WasmFn = {
    name: 'copy2d',
    params: [I32, I32, I32, I32, I32, I32],
    locals: [I32, I32, I32, I32, I32],
    body: cat(
      W.set(K.c16, W.and(W.get(K.rb), W.i32(~15))),
      W.for(K.r, W.i32(0), W.get(K.rows), 1, cat(
        W.set(K.sp, W.add(W.get(K.src), W.mul(W.get(K.r), W.get(K.ss)))),
        W.set(K.dp, W.add(W.get(K.dst), W.mul(W.get(K.r), W.get(K.ds)))),
        W.for(K.c, W.i32(0), W.get(K.c16), 16, W.vstore(at(K.dp, K.c), W.vload(at(K.sp, K.c)))),
        W.for(K.c, W.get(K.c16), W.get(K.rb), 4, W.fstore(at(K.dp, K.c), W.fload(at(K.sp, K.c)))),
      )),
    ),
  };
  // polyak(t, c, out, nbytes, tau): out = t + tau·(c − t)   (a target network's soft update)
  const vtau = 7; // params 0–4, then the loop index and its end
  const polyak = elementwise('polyak', 3, 1, [V128],
    W.set(vtau, W.vsplat(W.get(4))),
    (i) => W.vstore(at(2, i), W.vadd(W.vload(at(0, i)), W.vmul(W.get(vtau), W.vsub(W.vload(at(1, i)), W.vload(at(0, i)))))),
    (i) => W.fstore(at(2, i), W.fadd(W.fload(at(0, i)), W.fmul(W.get(4), W.fsub(W.fload(at(1, i)), W.fload(at(0, i)))))),
  );
  return encodeModule([adam, swishGrad, reluGrad, colsum, transpose, copy2d, buildGemm(), polyak]);
}

interface SimdExports {
  adam(p: number, g: number, m: number, v: number, po: number, mo: number, vo: number, nb: number,
    lrc: number, b1: number, b2: number, ic2: number, eps: number, wd: number): void;
  swishgrad(dy: number, s: number, h: number, out: number, nb: number): void;
  relugrad(dy: number, h: number, out: number, nb: number): void;
  polyak(t: number, c: number, out: number, nb: number, tau: number): void;
  colsum(src: number, dst: number, outer: number, rows: number, rowBytes: number): void;
  transpose(src: number, dst: number, rows: number, cols: number, batch: number): void;
  copy2d(src: number, srcStride: number, dst: number, dstStride: number, rows: number, rowBytes: number): void;
  gemm(a: number, rsA: number, csA: number, b: number, ldb: number, c: number, ldc: number, m: number, k: number, n: number,
    bias: number, relu: number): void;
}

let simdFor: { backend: WasmBackendInternals; exports: SimdExports } | null = null;
let simdFailed = false;

/** Instantiates the SIMD module on the backend's memory (once per backend); null if impossible. */
function getSimd(backend: WasmBackendInternals): SimdExports | null {
  if (simdFor !== null && simdFor.backend === backend) return simdFor.exports;
  if (simdFailed) return null;
  try {
    const asm = (backend.wasm as unknown as { asm?: Record<string, unknown> }).asm ?? {};
    const memory = Object.values(asm).find((v) => v instanceof WebAssembly.Memory) as WebAssembly.Memory | undefined;
    if (memory === undefined) throw new Error('wasm memory is not exported');
    const mod = new WebAssembly.Module(buildSimdModule());
    const inst = new WebAssembly.Instance(mod, { env: { memory } });
    simdFor = { backend, exports: inst.exports as unknown as SimdExports };
    return simdFor.exports;
  } catch {
    simdFailed = true;
    return null;
  }
}

/** True when the SIMD module can be built here (WebAssembly SIMD is available). */
export function simdKernelsAvailable(): boolean {
  try {
    return WebAssembly.validate(buildSimdModule());
  } catch {
    return false;
  }
}

const offsetOf = (be: WasmBackendInternals, t: TensorInfo): number => be.dataIdMap.get(t.dataId).memoryOffset;

/** Transpose of the last two axes: SIMD kernel when available, else the wasm Transpose kernel. */
function transposeLast2Fast(backend: WasmBackendInternals, x: TensorInfo): TensorInfo {
  const s = getSimd(backend);
  const r = x.shape.length;
  if (!simdInstalled || s === null || x.dtype !== 'float32' || sizeOf(x.shape) === 0) return transposeLast2(backend, x);
  const rows = x.shape[r - 2]!;
  const cols = x.shape[r - 1]!;
  const outShape = [...x.shape.slice(0, -2), cols, rows];
  const out = backend.makeOutput(outShape, 'float32');
  s.transpose(offsetOf(backend, x), offsetOf(backend, out), rows, cols, sizeOf(x.shape.slice(0, -2)));
  return out;
}

function fastTranspose(args: Parameters<KernelFunc>[0]): TensorInfo {
  const backend = args.backend as unknown as WasmBackendInternals;
  const { x } = args.inputs as { x: TensorInfo };
  const { perm } = args.attrs as { perm: number[] };
  const r = x.shape.length;
  const swapsLast2 = r >= 2 && perm.length === r && perm[r - 2] === r - 1 && perm[r - 1] === r - 2 &&
    perm.slice(0, -2).every((p, i) => p === i);
  if (swapsLast2 && x.dtype === 'float32' && getSimd(backend) !== null && sizeOf(x.shape) > 0) {
    return transposeLast2Fast(backend, x);
  }
  return originalTranspose!.kernelFunc(args) as TensorInfo;
}

function fastSum(args: Parameters<KernelFunc>[0]): TensorInfo {
  const backend = args.backend as unknown as WasmBackendInternals;
  const { x } = args.inputs as { x: TensorInfo };
  const { axis, keepDims } = args.attrs as { axis: number | number[]; keepDims: boolean };
  const s = getSimd(backend);
  const r = x.shape.length;
  if (s !== null && x.dtype === 'float32' && r >= 2 && sizeOf(x.shape) > 0) {
    const axes = tf.util.parseAxisParam(axis, x.shape).slice().sort((p, q) => p - q);
    const contiguous = axes.length > 0 && axes.every((a, i) => i === 0 || a === axes[i - 1]! + 1);
    const first = axes[0]!;
    const last = axes[axes.length - 1]!;
    if (contiguous && last < r - 1) {
      const outer = sizeOf(x.shape.slice(0, first));
      const rows = sizeOf(x.shape.slice(first, last + 1));
      const inner = sizeOf(x.shape.slice(last + 1));
      const outShape = keepDims ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !axes.includes(i));
      const out = backend.makeOutput(outShape, 'float32');
      s.colsum(offsetOf(backend, x), offsetOf(backend, out), outer, rows, inner * 4);
      return out;
    }
  }
  return originalSum!.kernelFunc(args) as TensorInfo;
}

const is4Byte = (dtype: string): boolean => dtype === 'float32' || dtype === 'int32';

/** Strided copy of x[begin : begin+size] into out (4-byte dtypes), as few copy2d calls as possible. */
function sliceInto(s: SimdExports, be: WasmBackendInternals, x: TensorInfo, begin: number[], size: number[], out: TensorInfo): void {
  const r = x.shape.length;
  const src = offsetOf(be, x);
  const dst = offsetOf(be, out);
  const total = sizeOf(size);
  if (total === 0) return;
  if (r <= 1 || tf.slice_util.isSliceContinous(x.shape, begin, size)) {
    const strides = tf.util.computeStrides(x.shape);
    const flat = r === 0 ? 0 : begin.reduce((acc, b, d) => acc + b * (d < r - 1 ? strides[d]! : 1), 0);
    s.copy2d(src + flat * 4, 0, dst, 0, 1, total * 4);
    return;
  }
  const strides = tf.util.computeStrides(x.shape); // length r-1
  const inner = size[r - 1]!;
  const rows = size[r - 2]!;
  const rowStride = r >= 2 ? (r - 2 < strides.length ? strides[r - 2]! : 1) : 1;
  const outerDims = size.slice(0, r - 2);
  const nOuter = sizeOf(outerDims);
  const idx = new Array<number>(outerDims.length).fill(0);
  let outOff = 0;
  for (let o = 0; o < nOuter; o++) {
    let base = begin[r - 1]! + begin[r - 2]! * rowStride;
    for (let d = 0; d < outerDims.length; d++) base += (begin[d]! + idx[d]!) * strides[d]!;
    s.copy2d(src + base * 4, rowStride * 4, dst + outOff * 4, inner * 4, rows, inner * 4);
    outOff += rows * inner;
    for (let d = outerDims.length - 1; d >= 0; d--) {
      if (++idx[d]! < outerDims[d]!) break;
      idx[d] = 0;
    }
  }
}

function fastSlice(args: Parameters<KernelFunc>[0]): TensorInfo {
  const backend = args.backend as unknown as WasmBackendInternals;
  const { x } = args.inputs as { x: TensorInfo };
  const s = getSimd(backend);
  if (s === null || !is4Byte(x.dtype)) return originalSlice!.kernelFunc(args) as TensorInfo;
  const { begin, size } = args.attrs as { begin: number | number[]; size: number | number[] };
  const [b, sz] = tf.slice_util.parseSliceParams(x as unknown as tf.Tensor, begin, size);
  const out = backend.makeOutput(sz, x.dtype);
  sliceInto(s, backend, x, b, sz, out);
  return out;
}

function fastSplitV(args: Parameters<KernelFunc>[0]): TensorInfo[] {
  const backend = args.backend as unknown as WasmBackendInternals;
  const { x } = args.inputs as { x: TensorInfo };
  const s = getSimd(backend);
  if (s === null || !is4Byte(x.dtype)) return originalSplitV!.kernelFunc(args) as TensorInfo[];
  const { numOrSizeSplits, axis } = args.attrs as { numOrSizeSplits: number | number[]; axis: number };
  const ax = tf.util.parseAxisParam(axis, x.shape)[0]!;
  const sizes = tf.backend_util.prepareSplitSize(x as unknown as tf.Tensor, numOrSizeSplits, ax);
  const begin = new Array<number>(x.shape.length).fill(0);
  return sizes.map((len) => {
    const size = x.shape.slice();
    size[ax] = len;
    const out = backend.makeOutput(size, x.dtype);
    sliceInto(s, backend, x, begin.slice(), size, out);
    begin[ax]! += len;
    return out;
  });
}

function fastConcat(args: Parameters<KernelFunc>[0]): TensorInfo {
  const backend = args.backend as unknown as WasmBackendInternals;
  const inputs = args.inputs as unknown as TensorInfo[];
  const s = getSimd(backend);
  const dtype = inputs[0]?.dtype;
  const nonEmpty = inputs.filter((t) => sizeOf(t.shape) > 0);
  if (s === null || dtype === undefined || !is4Byte(dtype) || nonEmpty.length < 2 || inputs.some((t) => t.dtype !== dtype)) {
    return originalConcat!.kernelFunc(args) as TensorInfo;
  }
  const ax = tf.util.parseAxisParam((args.attrs as { axis: number }).axis, inputs[0]!.shape)[0]!;
  tf.backend_util.assertParamsConsistent(inputs.map((t) => t.shape), ax);
  const outShape = tf.backend_util.computeOutShape(inputs.map((t) => t.shape), ax);
  const out = backend.makeOutput(outShape, dtype);
  const outer = sizeOf(outShape.slice(0, ax));
  const inners = nonEmpty.map((t) => sizeOf(t.shape.slice(ax)));
  const total = inners.reduce((a, b) => a + b, 0);
  const dst = offsetOf(backend, out);
  let off = 0;
  nonEmpty.forEach((t, i) => {
    s.copy2d(offsetOf(backend, t), inners[i]! * 4, dst + off * 4, total * 4, outer, inners[i]! * 4);
    off += inners[i]!;
  });
  return out;
}

/** MopoAdam: inputs p0..p{n-1}, g*, m*, v*; attrs n, lr, beta1, beta2, epsilon, c1, c2, and decay
 *  (per parameter: the gradient taken is g + decay·p; absent, 0). Outputs [p'0..p'{n-1}, m'0.., v'0..]. */
function mopoAdam(args: Parameters<KernelFunc>[0]): TensorInfo[] {
  const backend = args.backend as unknown as WasmBackendInternals;
  const s = getSimd(backend)!;
  const inputs = args.inputs as Record<string, TensorInfo>;
  const { n, lr, beta1, beta2, epsilon, c1, c2 } = args.attrs as Record<string, number>;
  const decay = (args.attrs as { decay?: number[] }).decay;
  const ps: TensorInfo[] = [];
  const ms: TensorInfo[] = [];
  const vs: TensorInfo[] = [];
  for (let i = 0; i < n!; i++) {
    const p = inputs[`p${i}`]!;
    const po = backend.makeOutput(p.shape, 'float32');
    const mo = backend.makeOutput(p.shape, 'float32');
    const vo = backend.makeOutput(p.shape, 'float32');
    s.adam(offsetOf(backend, p), offsetOf(backend, inputs[`g${i}`]!), offsetOf(backend, inputs[`m${i}`]!),
      offsetOf(backend, inputs[`v${i}`]!), offsetOf(backend, po), offsetOf(backend, mo), offsetOf(backend, vo),
      sizeOf(p.shape) * 4, lr! / c1!, beta1!, beta2!, 1 / c2!, epsilon!, decay?.[i] ?? 0);
    ps.push(po);
    ms.push(mo);
    vs.push(vo);
  }
  return [...ps, ...ms, ...vs];
}

/** MopoPolyak: inputs t0..t{n-1} (target parameters), c0.. (the online ones); attrs n, tau. Outputs t + tau·(c − t) each. */
function mopoPolyak(args: Parameters<KernelFunc>[0]): TensorInfo[] {
  const backend = args.backend as unknown as WasmBackendInternals;
  const s = getSimd(backend)!;
  const inputs = args.inputs as Record<string, TensorInfo>;
  const { n, tau } = args.attrs as { n: number; tau: number };
  const outs: TensorInfo[] = [];
  for (let i = 0; i < n; i++) {
    const t = inputs[`t${i}`]!;
    const o = backend.makeOutput(t.shape, 'float32');
    s.polyak(offsetOf(backend, t), offsetOf(backend, inputs[`c${i}`]!), offsetOf(backend, o), sizeOf(t.shape) * 4, tau);
    outs.push(o);
  }
  return outs;
}

/** MopoSwishGrad: inputs dy, s = sigmoid(z), h = z·s; output dy·(s + h·(1-s)). */
function mopoSwishGrad(args: Parameters<KernelFunc>[0]): TensorInfo {
  const backend = args.backend as unknown as WasmBackendInternals;
  const s = getSimd(backend)!;
  const { dy, s: sg, h } = args.inputs as { dy: TensorInfo; s: TensorInfo; h: TensorInfo };
  const out = backend.makeOutput(dy.shape, 'float32');
  s.swishgrad(offsetOf(backend, dy), offsetOf(backend, sg), offsetOf(backend, h), offsetOf(backend, out), sizeOf(dy.shape) * 4);
  return out;
}

/**
 * A dense swish layer, z = a·b + bias with a [..., m, k], b [..., k, n], bias ([n] or [..., 1, n]):
 * [h] with h = swish(z) (MopoDenseSwish, inference), or [h, s] with s = sigmoid(z) and h = z·s
 * (MopoDenseSwishTrain, a training forward pass, whose backward, MopoSwishGrad, needs both). With
 * the native gemm they come out of the product's epilogue in one pass; otherwise the fused product,
 * then Sigmoid and Multiply.
 */
function denseSwish(args: Parameters<KernelFunc>[0], kernel: string, withSigmoid: boolean): TensorInfo[] {
  const backend = args.backend as unknown as WasmBackendInternals;
  const { a, b, bias } = args.inputs as { a: TensorInfo; b: TensorInfo; bias: TensorInfo };
  const p = plan(a, b, false, false);
  const { biasRow, biasPerBatch, biasLater } = placeBias(bias, p);
  if (biasLater !== null) {
    throw new Error(`${kernel}: bias of shape [${bias.shape}] is neither [${p.n}] nor [..., 1, ${p.n}] for a product of shape [${[...p.outBatch, p.m, p.n]}]`);
  }
  if (a.dtype === 'float32' && b.dtype === 'float32' && useNative() && p.m > 0 && p.k > 0 && sizeOf(p.outBatch) > 0) {
    const h = backend.makeOutput([...p.outBatch, p.m, p.n], 'float32');
    if (!withSigmoid) {
      nativeProducts(backend, a, false, b, false, p, h, biasRow, biasPerBatch, NATIVE_ACT.swish);
      return [h];
    }
    const sg = backend.makeOutput([...p.outBatch, p.m, p.n], 'float32');
    nativeProducts(backend, a, false, b, false, p, h, biasRow, biasPerBatch, NATIVE_ACT.swishSig, sg);
    return [h, sg];
  }
  const z = runKernel('_FusedMatMul', backend, { a, b, bias }, { transposeA: false, transposeB: false, activation: 'linear', leakyreluAlpha: 0 });
  const sg = runKernel('Sigmoid', backend, { x: z });
  const h = runKernel('Multiply', backend, { a: z, b: sg });
  backend.disposeData(z.dataId);
  if (withSigmoid) return [h, sg];
  backend.disposeData(sg.dataId);
  return [h];
}

const mopoDenseSwish = (args: Parameters<KernelFunc>[0]): TensorInfo => denseSwish(args, 'MopoDenseSwish', false)[0]!;
const mopoDenseSwishTrain = (args: Parameters<KernelFunc>[0]): TensorInfo[] => denseSwish(args, 'MopoDenseSwishTrain', true);

/**
 * MopoGaussianHead (registered only with the native kernels): the ensemble's Gaussian head in one
 * pass (native/head.h; the formulas in operators/ensemble.ts lossAndGrads). Inputs out [E, B, 2D]
 * (μ | raw log-variance), y [E, B, D], maxLV and minLV (D values each); attr c, the NLL's scale.
 * Outputs [dOut [E, B, 2D], nll [E], sMax [1, D], sMin [1, D]].
 */
function mopoGaussianHead(args: Parameters<KernelFunc>[0]): TensorInfo[] {
  const backend = args.backend as unknown as WasmBackendInternals;
  const { out, y, maxLV, minLV } = args.inputs as { out: TensorInfo; y: TensorInfo; maxLV: TensorInfo; minLV: TensorInfo };
  const { c } = args.attrs as { c: number };
  const [E, B, D2] = out.shape as [number, number, number];
  const D = D2 / 2;
  const f32 = [out, y, maxLV, minLV].every((t) => t.dtype === 'float32');
  if (!f32 || out.shape.length !== 3 || !Number.isInteger(D) || y.shape.join() !== [E, B, D].join() || sizeOf(maxLV.shape) !== D || sizeOf(minLV.shape) !== D) {
    throw new Error(`MopoGaussianHead: out [${out.shape}], y [${y.shape}], bounds [${maxLV.shape}] and [${minLV.shape}] do not make [E, B, 2D], [E, B, D], D and D (float32)`);
  }
  const dOut = backend.makeOutput(out.shape, 'float32');
  const nll = backend.makeOutput([E], 'float32');
  const sMax = backend.makeOutput([1, D], 'float32');
  const sMin = backend.makeOutput([1, D], 'float32');
  const o = (t: TensorInfo) => offsetOf(backend, t);
  native.kernels!.gaussianHead(backend.wasm.HEAPU8, o(out), o(y), o(maxLV), o(minLV), E, B, D, c, o(dOut), o(nll), o(sMax), o(sMin));
  return [dOut, nll, sMax, sMin];
}

/**
 * MopoGaussianVariance (native only): the ensemble's predicted Gaussians for inference (native/head.h
 * headVariance; the tf-op formulas are operators/ensemble.ts heads() and e^lv). Inputs out [E, n, 2D]
 * (μ | raw log-variance), maxLV and minLV (D values each). Outputs [μ [E, n, D], e^lv [E, n, D]].
 */
function mopoGaussianVariance(args: Parameters<KernelFunc>[0]): TensorInfo[] {
  const backend = args.backend as unknown as WasmBackendInternals;
  const inputs = args.inputs as { out: TensorInfo; maxLV: TensorInfo; minLV: TensorInfo };
  const shape = inputs.out.shape;
  const D = shape[shape.length - 1]! / 2;
  if (!Number.isInteger(D) || shape.length < 2) throw new Error(`MopoGaussianVariance: out [${shape}] is not [..., 2D]`);
  const lead = shape.slice(0, -1);
  float32Shapes('MopoGaussianVariance', inputs, { out: [...lead, 2 * D], maxLV: [D], minLV: [D] });
  const mu = backend.makeOutput([...lead, D], 'float32');
  const variance = backend.makeOutput([...lead, D], 'float32');
  const o = (t: TensorInfo) => offsetOf(backend, t);
  native.kernels!.gaussianVariance(backend.wasm.HEAPU8, o(inputs.out), o(inputs.maxLV), o(inputs.minLV), sizeOf(lead), D, o(mu), o(variance));
  return [mu, variance];
}

function float32Shapes(name: string, inputs: Record<string, TensorInfo>, want: Record<string, number[]>): void {
  for (const [k, shape] of Object.entries(want)) {
    const t = inputs[k];
    if (t === undefined || t.dtype !== 'float32' || sizeOf(t.shape) !== sizeOf(shape) || shape.some((d) => !(d > 0))) {
      const got = Object.entries(inputs).map(([n, x]) => `${n} [${x.shape}] ${x.dtype}`).join(', ');
      throw new Error(`${name}: expected ${Object.entries(want).map(([n, s]) => `${n} [${s}]`).join(', ')} (float32); got ${got}`);
    }
  }
}

/**
 * MopoSacSquash (native only): SAC's tanh-squashed Gaussian sample and log-probability (native/sac.h;
 * the tf-op formulas in operators/sac.ts gradients()). Inputs out [B, 2A] (mean | raw log σ), eps
 * [B, A], base [B, 1]; attrs lo, hi (the log σ clip). Outputs [a [B, A], logp [B, 1], aux [B, 2A] =
 * (σ·ε | 1 where log σ is within the clip, else 0)].
 */
function mopoSacSquash(args: Parameters<KernelFunc>[0]): TensorInfo[] {
  const backend = args.backend as unknown as WasmBackendInternals;
  const inputs = args.inputs as { out: TensorInfo; eps: TensorInfo; base: TensorInfo };
  const { lo, hi } = args.attrs as { lo: number; hi: number };
  const [B, A2] = inputs.out.shape as [number, number];
  const A = A2 / 2;
  if (inputs.out.shape.length !== 2 || !Number.isInteger(A)) throw new Error(`MopoSacSquash: out [${inputs.out.shape}] is not [B, 2A]`);
  float32Shapes('MopoSacSquash', inputs, { out: [B, 2 * A], eps: [B, A], base: [B, 1] });
  const a = backend.makeOutput([B, A], 'float32');
  const logp = backend.makeOutput([B, 1], 'float32');
  const aux = backend.makeOutput([B, 2 * A], 'float32');
  const o = (t: TensorInfo) => offsetOf(backend, t);
  native.kernels!.sacSquash(backend.wasm.HEAPU8, o(inputs.out), o(inputs.eps), o(inputs.base), B, A, lo, hi, o(a), o(logp), o(aux));
  return [a, logp, aux];
}

/**
 * MopoSacSquashGrad (native only): the actor's output gradient through the squash. Inputs dA
 * [M, B, A] (∂L/∂ã per critic member, summed here), a [B, A] and aux [B, 2A] from MopoSacSquash,
 * logAlpha [1]. Output dOut [B, 2A] (see native/kernels.cc SacSquashGrad).
 */
function mopoSacSquashGrad(args: Parameters<KernelFunc>[0]): TensorInfo {
  const backend = args.backend as unknown as WasmBackendInternals;
  const inputs = args.inputs as { dA: TensorInfo; a: TensorInfo; aux: TensorInfo; logAlpha: TensorInfo };
  const [M, B, A] = inputs.dA.shape as [number, number, number];
  if (inputs.dA.shape.length !== 3) throw new Error(`MopoSacSquashGrad: dA [${inputs.dA.shape}] is not [M, B, A]`);
  float32Shapes('MopoSacSquashGrad', inputs, { dA: [M, B, A], a: [B, A], aux: [B, 2 * A], logAlpha: [1] });
  const dOut = backend.makeOutput([B, 2 * A], 'float32');
  const o = (t: TensorInfo) => offsetOf(backend, t);
  native.kernels!.sacSquashGrad(backend.wasm.HEAPU8, o(inputs.dA), o(inputs.a), o(inputs.aux), o(inputs.logAlpha), M, B, A, o(dOut));
  return dOut;
}

/**
 * MopoSacLosses (native only): SAC's TD target, the critics' and the actor's output gradients, the
 * temperature's gradient and the loss sums, in one pass. Inputs qT, q, qPi [M, B, 1] (target critics
 * on (s', a'), critics on (s, a), critics on (s, ã)), logpNext, r, notDone, logp [B, 1], logAlpha
 * [1]; attrs gamma, targetEntropy. Outputs [dQ [M, B, 1], dMin [M, B, 1], gLogAlpha [1], stats [6]]
 * (see native/kernels.cc SacLosses).
 */
function mopoSacLosses(args: Parameters<KernelFunc>[0]): TensorInfo[] {
  const backend = args.backend as unknown as WasmBackendInternals;
  const inputs = args.inputs as Record<'qT' | 'logpNext' | 'r' | 'notDone' | 'q' | 'qPi' | 'logp' | 'logAlpha', TensorInfo>;
  const { gamma, targetEntropy } = args.attrs as { gamma: number; targetEntropy: number };
  const [M, B] = inputs.q.shape as [number, number];
  const col = [B, 1];
  float32Shapes('MopoSacLosses', inputs, { qT: [M, B, 1], q: [M, B, 1], qPi: [M, B, 1], logpNext: col, r: col, notDone: col, logp: col, logAlpha: [1] });
  const dQ = backend.makeOutput([M, B, 1], 'float32');
  const dMin = backend.makeOutput([M, B, 1], 'float32');
  const gLogAlpha = backend.makeOutput([1], 'float32');
  const stats = backend.makeOutput([6], 'float32');
  const o = (t: TensorInfo) => offsetOf(backend, t);
  native.kernels!.sacLosses(backend.wasm.HEAPU8, o(inputs.qT), o(inputs.logpNext), o(inputs.r), o(inputs.notDone), o(inputs.q), o(inputs.qPi),
    o(inputs.logp), o(inputs.logAlpha), M, B, gamma, targetEntropy, o(dQ), o(dMin), o(gLogAlpha), o(stats));
  return [dQ, dMin, gLogAlpha, stats];
}

/**
 * MopoMatMulReluGrad (native only): a backward step through a dense layer into the relu before it,
 * dz' = (dz·wᵀ) ⊙ [h > 0], in the product's epilogue (no dh tensor, no pass of its own): dz
 * [..., m, k], w [..., n, k] (the layer's weights [in, out], read transposed), h [..., m, n] the
 * previous layer's relu output, exactly the output's shape. The same as BatchMatMul (transposeB)
 * then MopoReluGrad, bit for bit.
 */
function mopoMatMulReluGrad(args: Parameters<KernelFunc>[0]): TensorInfo {
  const backend = args.backend as unknown as WasmBackendInternals;
  const { dz, w, h } = args.inputs as Record<'dz' | 'w' | 'h', TensorInfo>;
  const p = plan(dz, w, false, true);
  const shape = [...p.outBatch, p.m, p.n];
  if (dz.dtype !== 'float32' || w.dtype !== 'float32' || h.dtype !== 'float32' || h.shape.length !== shape.length || h.shape.some((d, i) => d !== shape[i]) || sizeOf(shape) === 0 || p.k === 0) {
    throw new Error(`MopoMatMulReluGrad: expected float32 dz [..., m, k], w [..., n, k] and h of the product's shape [${shape}]; got dz [${dz.shape}] ${dz.dtype}, w [${w.shape}] ${w.dtype}, h [${h.shape}] ${h.dtype}`);
  }
  const out = backend.makeOutput(shape, 'float32');
  nativeProducts(backend, dz, false, w, true, p, out, null, null, NATIVE_ACT.reluMask, h);
  return out;
}

/** The custom kernels that exist only with the native addon, registered while it is enabled. */
const NATIVE_ONLY_KERNELS: Array<[string, KernelFunc]> = [
  ['MopoGaussianHead', mopoGaussianHead as unknown as KernelFunc],
  ['MopoGaussianVariance', mopoGaussianVariance as unknown as KernelFunc],
  ['MopoSacSquash', mopoSacSquash as unknown as KernelFunc],
  ['MopoSacSquashGrad', mopoSacSquashGrad as unknown as KernelFunc],
  ['MopoSacLosses', mopoSacLosses as unknown as KernelFunc],
  ['MopoMatMulReluGrad', mopoMatMulReluGrad as unknown as KernelFunc],
];

/** Registers (on) or unregisters the custom wasm kernels in `list`; idempotent. */
function setCustomKernels(list: ReadonlyArray<[string, KernelFunc]>, on: boolean): void {
  for (const [kernelName, kernelFunc] of list) {
    const there = tf.getKernel(kernelName, 'wasm') != null;
    if (on && !there) tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc });
    if (!on && there) tf.unregisterKernel(kernelName, 'wasm');
  }
}

/** MopoReluGrad: inputs dy, h (relu output or pre-activation); output h > 0 ? dy : 0. */
function mopoReluGrad(args: Parameters<KernelFunc>[0]): TensorInfo {
  const backend = args.backend as unknown as WasmBackendInternals;
  const s = getSimd(backend)!;
  const { dy, h } = args.inputs as { dy: TensorInfo; h: TensorInfo };
  const out = backend.makeOutput(dy.shape, 'float32');
  s.relugrad(offsetOf(backend, dy), offsetOf(backend, h), offsetOf(backend, out), sizeOf(dy.shape) * 4);
  return out;
}

let originalTranspose: tf.KernelConfig | null = null;
let originalSum: tf.KernelConfig | null = null;
let originalSlice: tf.KernelConfig | null = null;
let originalSplitV: tf.KernelConfig | null = null;
let originalConcat: tf.KernelConfig | null = null;
const REPLACED: Array<[string, () => tf.KernelConfig | null, (k: tf.KernelConfig) => void, KernelFunc]> = [
  ['Transpose', () => originalTranspose, (k) => (originalTranspose = k), fastTranspose as unknown as KernelFunc],
  ['Sum', () => originalSum, (k) => (originalSum = k), fastSum as unknown as KernelFunc],
  ['Slice', () => originalSlice, (k) => (originalSlice = k), fastSlice as unknown as KernelFunc],
  ['SplitV', () => originalSplitV, (k) => (originalSplitV = k), fastSplitV as unknown as KernelFunc],
  ['Concat', () => originalConcat, (k) => (originalConcat = k), fastConcat as unknown as KernelFunc],
];
let simdInstalled = false;
const MOPO_KERNELS: Array<[string, KernelFunc]> = [
  ['MopoAdam', mopoAdam as unknown as KernelFunc],
  ['MopoPolyak', mopoPolyak as unknown as KernelFunc],
  ['MopoSwishGrad', mopoSwishGrad as unknown as KernelFunc],
  ['MopoReluGrad', mopoReluGrad as unknown as KernelFunc],
  ['MopoDenseSwish', mopoDenseSwish as unknown as KernelFunc],
  ['MopoDenseSwishTrain', mopoDenseSwishTrain as unknown as KernelFunc],
];

function installSimdKernels(): void {
  if (simdInstalled || !simdKernelsAvailable()) return;
  for (const [name, get, set, kernelFunc] of REPLACED) {
    if (get() === null) set({ ...tf.getKernel(name, 'wasm') });
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({ ...get()!, kernelFunc });
  }
  setCustomKernels(MOPO_KERNELS, true);
  simdInstalled = true;
}

function uninstallSimdKernels(): void {
  if (!simdInstalled) return;
  for (const [name, get] of REPLACED) {
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel(get()!);
  }
  setCustomKernels(MOPO_KERNELS, false);
  simdInstalled = false;
}

/** The stock kernels replaced by SIMD versions, by name (empty before the first install). */
export function getUnpatchedSimdTargets(): Record<string, tf.KernelConfig> {
  const out: Record<string, tf.KernelConfig> = {};
  for (const [name, get] of REPLACED) {
    const k = get();
    if (k !== null) out[name] = k;
  }
  return out;
}

/** True when the custom kernel `name` (MopoAdam, MopoGaussianHead, …) can run on the current backend. */
export function hasMopoKernel(name: string): boolean {
  const be = tf.getBackend();
  return be !== undefined && be !== null && tf.getKernel(name, be) != null;
}
