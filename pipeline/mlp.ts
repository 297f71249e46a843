// Dense-network building blocks for fast training on TensorFlow.js (any backend; tuned for wasm).
//
// API (everything is plain tf.Tensors; no tf.layers, no gradient tape):
//
//   const net = DenseStack.init({ sizes: [23, 256, 256, 1], hidden: 'relu', members?: 7 }, rng)
//       A stack of dense layers. `members` = E makes an ensemble computed as ONE batched
//       computation: weights are [E, in, out], biases [E, 1, out], inputs [E, B, in] (or [B, in],
//       broadcast to every member). Without `members`, weights are [in, out], biases [out] and
//       inputs [B, in]. Weights are drawn from `rng` (W ~ U(-1/sqrt(in), 1/sqrt(in)), the PyTorch
//       default, or with `init: 'truncated-normal'` N(0, (1/(2 sqrt(in)))²) cut at ±2σ, the official
//       MOPO code's BNN, or `init: 'glorot-uniform'` U(±sqrt(6/(in + out))), Keras' default and so
//       softlearning's SAC; biases 0), so one seed gives the same network on every backend.
//   net.predict(x)                -> output (inference only; fused matMul+bias+activation)
//   net.forward(x)                -> { out, cache }      (keeps what backward needs)
//   net.backward(cache, dOut, needDx?) -> { grads, dx? } (grads aligned with net.params())
//   net.inputGrad(cache, dOut, w0?) -> dx                (no weight gradients)
//       Hand-written backpropagation: dW = hᵀ·dz, db = Σ_batch dz, dh = dz·Wᵀ. The input gradient
//       of the first layer is only computed when needDx is true (e.g. actor through a critic);
//       for an ensemble it keeps the member axis [E, B, in] (sum it over axis 0 for a shared input).
//   net.params() / net.setParams(ps)  -> [W1, b1, W2, b2, ...]; setParams disposes the old ones.
//   net.dispose()
//
//   const opt = new Adam(net.params(), { lr: 3e-4 })
//   opt.step(params, grads) -> new params (bias-corrected Adam, like tf.train.adam/torch.optim.Adam);
//       on wasm this is ONE fused kernel pass over all parameters (see kernels.ts `MopoAdam`),
//       elsewhere a short sequence of tf ops per parameter. The optimizer owns its moment tensors.
//
//   trainStep(net, opt, x, lossGrad) -> loss (number | null)
//       forward + lossGrad(out) => { loss, dOut } + backward + Adam, all inside one tf.tidy;
//       replaces the net's parameters. `loss` is read back only if lossGrad returns it and
//       `readLoss` is set (reading forces a sync).
//
// Activations: 'relu' (fused into the matmul's epilogue), 'swish' (z·sigmoid(z)), 'tanh',
// 'linear'. The output layer is linear unless `output` says otherwise.

import * as tf from '@tensorflow/tfjs';
import { Rng } from './random.js';
import { fastKernelsInstalled, hasMopoKernel } from './kernels.js';

export type Activation = 'relu' | 'swish' | 'tanh' | 'linear';

export interface DenseStackSpec {
  /** Layer widths, input first: [in, h1, ..., out]. */
  sizes: number[];
  /** Activation of the hidden layers. */
  hidden: Activation;
  /** Activation of the output layer (default linear). */
  output?: Activation;
  /** Ensemble size: weights become [E, in, out]. Omit for a single network. */
  members?: number;
  /** Weight initialization (see header); default 'uniform'. */
  init?: WeightInit;
}

/** 'uniform' U(±1/√fan-in) (PyTorch's default); 'truncated-normal' σ = 1/(2√fan-in) cut at ±2σ (the official MOPO BNN); 'glorot-uniform' U(±√(6/(fan-in + fan-out))) (Keras' default, so softlearning's SAC). */
export const WEIGHT_INITS = ['uniform', 'truncated-normal', 'glorot-uniform'] as const;
export type WeightInit = (typeof WEIGHT_INITS)[number];

/** What forward() keeps per layer for backward(). */
export interface LayerCache {
  input: tf.Tensor;
  /** Post-activation output (relu, tanh, swish) or null for linear. */
  h: tf.Tensor | null;
  /** sigmoid(z) for swish, else null. */
  s: tf.Tensor | null;
}

export interface ForwardResult {
  out: tf.Tensor;
  cache: LayerCache[];
}

export class DenseStack {
  readonly spec: Required<Omit<DenseStackSpec, 'members'>> & { members: number | null };
  private weights: tf.Tensor[];
  private biases: tf.Tensor[];

  private constructor(spec: DenseStackSpec, weights: tf.Tensor[], biases: tf.Tensor[]) {
    this.spec = { sizes: spec.sizes.slice(), hidden: spec.hidden, output: spec.output ?? 'linear', members: spec.members ?? null, init: spec.init ?? 'uniform' };
    this.weights = weights;
    this.biases = biases;
  }

  /** Seeded initialization (see header). Uses only `rng`, so it is backend independent. */
  static init(spec: DenseStackSpec, rng: Rng): DenseStack {
    if (spec.sizes.length < 2) throw new Error('DenseStack: sizes needs at least [in, out]');
    const e = spec.members ?? null;
    const weights: tf.Tensor[] = [];
    const biases: tf.Tensor[] = [];
    for (let l = 0; l + 1 < spec.sizes.length; l++) {
      const fanIn = spec.sizes[l]!;
      const fanOut = spec.sizes[l + 1]!;
      const w = new Float32Array((e ?? 1) * fanIn * fanOut);
      const init = spec.init ?? 'uniform';
      if (init === 'uniform') rng.fillUniform(w, -1 / Math.sqrt(fanIn), 1 / Math.sqrt(fanIn));
      else if (init === 'truncated-normal') rng.fillTruncatedNormal(w, 1 / (2 * Math.sqrt(fanIn)));
      else {
        // Per member, as Keras draws each network's own kernel: the member axis is not a fan.
        const limit = Math.sqrt(6 / (fanIn + fanOut));
        rng.fillUniform(w, -limit, limit);
      }
      weights.push(tf.tensor(w, e === null ? [fanIn, fanOut] : [e, fanIn, fanOut], 'float32'));
      biases.push(tf.zeros(e === null ? [fanOut] : [e, 1, fanOut], 'float32'));
    }
    return new DenseStack(spec, weights, biases);
  }

  /** Builds a stack from existing parameter tensors [W1, b1, ...] (takes ownership). */
  static fromParams(spec: DenseStackSpec, params: tf.Tensor[]): DenseStack {
    const w: tf.Tensor[] = [];
    const b: tf.Tensor[] = [];
    for (let i = 0; i < params.length; i += 2) {
      w.push(params[i]!);
      b.push(params[i + 1]!);
    }
    return new DenseStack(spec, w, b);
  }

  get numLayers(): number {
    return this.weights.length;
  }

  /** [W1, b1, W2, b2, ...] (owned by the stack: do not dispose). */
  params(): tf.Tensor[] {
    const out: tf.Tensor[] = [];
    for (let l = 0; l < this.weights.length; l++) out.push(this.weights[l]!, this.biases[l]!);
    return out;
  }

  /** Replaces the parameters (same order as params()); disposes the old ones. */
  setParams(ps: tf.Tensor[]): void {
    if (ps.length !== 2 * this.weights.length) throw new Error(`setParams: expected ${2 * this.weights.length} tensors, got ${ps.length}`);
    const old = this.params();
    for (let l = 0; l < this.weights.length; l++) {
      this.weights[l] = ps[2 * l]!;
      this.biases[l] = ps[2 * l + 1]!;
    }
    for (const t of old) if (!ps.includes(t)) t.dispose();
  }

  /** Number of scalar parameters. */
  numParams(): number {
    return this.params().reduce((s, t) => s + t.size, 0);
  }

  /** Flops of one forward pass for a batch of `batch` rows (per member), matmuls only. */
  forwardFlops(batch: number): number {
    let f = 0;
    const s = this.spec.sizes;
    for (let l = 0; l + 1 < s.length; l++) f += 2 * batch * s[l]! * s[l + 1]!;
    return f * (this.spec.members ?? 1);
  }

  private act(l: number): Activation {
    return l === this.weights.length - 1 ? this.spec.output : this.spec.hidden;
  }

  /** Inference forward pass. */
  predict(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let h = x;
      for (let l = 0; l < this.weights.length; l++) {
        const a = this.act(l);
        if (a === 'swish' && hasMopoKernel('MopoDenseSwish')) {
          // One pass: swish in the product's epilogue (native gemm), no sigmoid or product tensors.
          h = tf.engine().runKernel('MopoDenseSwish', { a: h, b: this.weights[l]!, bias: this.biases[l]! }, {}) as tf.Tensor;
          continue;
        }
        const z = dense(h, this.weights[l]!, this.biases[l]!, a === 'relu');
        h = a === 'swish' ? swish(z) : a === 'tanh' ? tf.tanh(z) : z;
      }
      return h;
    });
  }

  /** Training forward pass: output plus the per-layer cache for backward(). Call inside tf.tidy. */
  forward(x: tf.Tensor): ForwardResult {
    const cache: LayerCache[] = [];
    let h = x;
    for (let l = 0; l < this.weights.length; l++) {
      const a = this.act(l);
      if (a === 'swish' && hasMopoKernel('MopoDenseSwishTrain')) {
        // One pass with the native gemm: z·sigmoid(z) and sigmoid(z) out of the product's epilogue.
        const [hs, s] = tf.engine().runKernel('MopoDenseSwishTrain', { a: h, b: this.weights[l]!, bias: this.biases[l]! }, {}) as unknown as tf.Tensor[];
        cache.push({ input: h, h: hs!, s: s! });
        h = hs!;
        continue;
      }
      const z = dense(h, this.weights[l]!, this.biases[l]!, a === 'relu');
      const c: LayerCache = { input: h, h: null, s: null };
      if (a === 'relu') {
        c.h = z;
        h = z;
      } else if (a === 'swish') {
        const s = tf.sigmoid(z);
        c.s = s;
        h = tf.mul(z, s);
        c.h = h;
      } else if (a === 'tanh') {
        h = tf.tanh(z);
        c.h = h;
      } else {
        h = z;
      }
      cache.push(c);
    }
    return { out: h, cache };
  }

  /**
   * Backpropagates dOut (gradient of the loss w.r.t. the output) through the cached forward pass.
   * Returns gradients aligned with params() and, if needDx, the gradient w.r.t. the input.
   * Call inside tf.tidy.
   */
  backward(cache: LayerCache[], dOut: tf.Tensor, needDx = false): { grads: tf.Tensor[]; dx: tf.Tensor | null } {
    const L = this.weights.length;
    const grads: tf.Tensor[] = new Array<tf.Tensor>(2 * L);
    const ens = this.spec.members !== null;
    let dx: tf.Tensor | null = null;
    let dz = activationGrad(this.act(L - 1), dOut, cache[L - 1]!);
    for (let l = L - 1; l >= 0; l--) {
      const inp = cache[l]!.input;
      // dW = inputᵀ·dz. For an ensemble with a shared 2-D input, broadcast it to every member.
      const inp3 = ens && inp.rank === 2 ? inp.reshape([1, ...inp.shape]) : inp;
      grads[2 * l] = matMul(inp3, dz, true, false);
      grads[2 * l + 1] = ens ? tf.sum(dz, 1, true) : tf.sum(dz, 0);
      if (l > 0) dz = this.gradBelow(l, dz, cache);
      else if (needDx) dx = matMul(dz, this.weights[0]!, false, true);
    }
    return { grads, dx };
  }

  /**
   * The gradient w.r.t. the input alone (no weight gradients): dz·Wᵀ layer by layer. `w0` replaces
   * the first layer's weight (e.g. only its action rows, for ∂Q/∂a). Call inside tf.tidy.
   */
  inputGrad(cache: LayerCache[], dOut: tf.Tensor, w0?: tf.Tensor): tf.Tensor {
    const L = this.weights.length;
    let dz = activationGrad(this.act(L - 1), dOut, cache[L - 1]!);
    for (let l = L - 1; l > 0; l--) dz = this.gradBelow(l, dz, cache);
    return matMul(dz, w0 ?? this.weights[0]!, false, true);
  }

  /**
   * Layer l − 1's dz from layer l's: dz·W_lᵀ through layer l − 1's activation; into a relu, in one
   * product with its mask in the native gemm's epilogue (MopoMatMulReluGrad) where that is there.
   */
  private gradBelow(l: number, dz: tf.Tensor, cache: LayerCache[]): tf.Tensor {
    const below = cache[l - 1]!;
    if (this.act(l - 1) === 'relu' && hasMopoKernel('MopoMatMulReluGrad')) {
      return tf.engine().runKernel('MopoMatMulReluGrad', { dz, w: this.weights[l]!, h: below.h! }, {}) as tf.Tensor;
    }
    return activationGrad(this.act(l - 1), matMul(dz, this.weights[l]!, false, true), below);
  }

  dispose(): void {
    for (const t of this.params()) t.dispose();
    this.weights = [];
    this.biases = [];
  }
}

/**
 * x·W + b (then relu if asked) as one fused kernel call where the backend supports it: a 2-D
 * weight with a rank-1 bias always; a per-member bias [E, 1, out] only on the cpu backend and on
 * wasm with the patched kernels (the stock wasm _FusedMatMul rejects it). Otherwise matMul + add.
 */
export function dense(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, relu: boolean): tf.Tensor {
  const be = tf.getBackend();
  if (direct(x, w)) {
    return tf.engine().runKernel('_FusedMatMul', { a: x, b: w, bias: b }, { transposeA: false, transposeB: false, activation: relu ? 'relu' : 'linear' }) as tf.Tensor;
  }
  const fuse = b.rank === 1 || be === 'cpu' || (be === 'wasm' && fastKernelsInstalled().matmul);
  if (fuse) return tf.fused.matMul({ a: x, b: w, bias: b, activation: relu ? 'relu' : 'linear' });
  return tf.tidy(() => {
    const z = tf.add(tf.matMul(x, w), b);
    return relu ? tf.relu(z) : z;
  });
}

/**
 * True where the product kernels can be called directly: the patched wasm kernels take operands of
 * any rank, and the ops' wrappers (reshapes to rank 3 and back; the fused op's custom-gradient
 * closure, unused here: gradients are written by hand) cost about as much as a small product's
 * kernel. Measured: 4-5 % of a SAC update (A/B in one process). Empty operands keep the ops.
 */
function direct(a: tf.Tensor, b: tf.Tensor): boolean {
  return tf.getBackend() === 'wasm' && fastKernelsInstalled().matmul && a.size > 0 && b.size > 0;
}

/** a·b, either transposed (tf.matMul's semantics; the kernel called directly where it can be). */
export function matMul(a: tf.Tensor, b: tf.Tensor, transposeA: boolean, transposeB: boolean): tf.Tensor {
  if (direct(a, b)) return tf.engine().runKernel('BatchMatMul', { a, b }, { transposeA, transposeB }) as tf.Tensor;
  return tf.matMul(a, b, transposeA, transposeB);
}

/** swish(z) = z·sigmoid(z). */
export function swish(z: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(z, tf.sigmoid(z)));
}

/** dL/dz from dL/dh for the activation of a layer (uses the forward cache). */
export function activationGrad(a: Activation, dh: tf.Tensor, c: LayerCache): tf.Tensor {
  switch (a) {
    case 'linear':
      return dh;
    case 'relu':
      if (hasMopoKernel('MopoReluGrad')) return tf.engine().runKernel('MopoReluGrad', { dy: dh, h: c.h! }, {}) as tf.Tensor;
      return tf.mul(dh, tf.step(c.h!));
    case 'tanh':
      // 1 - tanh²
      return tf.mul(dh, tf.sub(1, tf.square(c.h!)));
    case 'swish': {
      if (hasMopoKernel('MopoSwishGrad')) {
        return tf.engine().runKernel('MopoSwishGrad', { dy: dh, s: c.s!, h: c.h! }, {}) as tf.Tensor;
      }
      // swish'(z) = s + h·(1 - s) with s = sigmoid(z), h = z·s.
      const s = c.s!;
      return tf.mul(dh, tf.add(s, tf.mul(c.h!, tf.sub(1, s))));
    }
  }
}

export interface AdamOptions {
  lr?: number;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
}

/**
 * Adam (bias-corrected, as tf.train.adam and torch.optim.Adam):
 *   m ← β1·m + (1-β1)·g;  v ← β2·v + (1-β2)·g²;  p ← p − lr·(m/(1-β1ᵗ)) / (sqrt(v/(1-β2ᵗ)) + ε)
 * The moments are owned here (one pair per parameter tensor, same shapes).
 */
export class Adam {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  private t = 0;
  private m: tf.Tensor[];
  private v: tf.Tensor[];

  constructor(params: tf.Tensor[], opts: AdamOptions = {}) {
    this.lr = opts.lr ?? 1e-3;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.epsilon = opts.epsilon ?? 1e-8;
    this.m = params.map((p) => tf.zeros(p.shape, 'float32'));
    this.v = params.map((p) => tf.zeros(p.shape, 'float32'));
  }

  get iterations(): number {
    return this.t;
  }

  /**
   * Returns the updated parameters (new tensors, kept out of any enclosing tidy). decay[i], when
   * given, is an L2 weight decay on params[i] (the gradient taken is grads[i] + decay[i]·params[i]),
   * applied here so that it costs no pass of its own.
   */
  step(params: tf.Tensor[], grads: tf.Tensor[], decay?: readonly number[]): tf.Tensor[] {
    if (params.length !== this.m.length || grads.length !== this.m.length || (decay !== undefined && decay.length !== this.m.length)) {
      throw new Error(`Adam.step: expected ${this.m.length} params, grads (and decays), got ${params.length}, ${grads.length}${decay ? ` and ${decay.length}` : ''}`);
    }
    this.t++;
    const c1 = 1 - Math.pow(this.beta1, this.t);
    const c2 = 1 - Math.pow(this.beta2, this.t);
    const n = params.length;
    let outs: tf.Tensor[];
    if (hasMopoKernel('MopoAdam')) {
      const inputs: Record<string, tf.Tensor> = {};
      for (let i = 0; i < n; i++) {
        inputs[`p${i}`] = params[i]!;
        inputs[`g${i}`] = grads[i]!;
        inputs[`m${i}`] = this.m[i]!;
        inputs[`v${i}`] = this.v[i]!;
      }
      outs = tf.engine().runKernel('MopoAdam', inputs, {
        n, lr: this.lr, beta1: this.beta1, beta2: this.beta2, epsilon: this.epsilon, c1, c2, ...(decay ? { decay: [...decay] } : {}),
      }) as unknown as tf.Tensor[];
    } else {
      outs = tf.tidy(() => {
        const ps: tf.Tensor[] = [];
        const ms: tf.Tensor[] = [];
        const vs: tf.Tensor[] = [];
        for (let i = 0; i < n; i++) {
          const g = decay?.[i] ? tf.add(grads[i]!, tf.mul(params[i]!, decay[i]!)) : grads[i]!;
          const m = tf.add(tf.mul(this.m[i]!, this.beta1), tf.mul(g, 1 - this.beta1));
          const v = tf.add(tf.mul(this.v[i]!, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
          const upd = tf.div(tf.mul(m, this.lr / c1), tf.add(tf.sqrt(tf.div(v, c2)), this.epsilon));
          ps.push(tf.sub(params[i]!, upd));
          ms.push(m);
          vs.push(v);
        }
        return [...ps, ...ms, ...vs];
      });
    }
    const newP = outs.slice(0, n);
    const newM = outs.slice(n, 2 * n);
    const newV = outs.slice(2 * n, 3 * n);
    for (const t of [...newP, ...newM, ...newV]) tf.keep(t);
    for (const t of this.m) t.dispose();
    for (const t of this.v) t.dispose();
    this.m = newM;
    this.v = newV;
    return newP;
  }

  /** Step count and moments (owned by the optimizer: do not dispose), for checkpoints. */
  getState(): { t: number; m: readonly tf.Tensor[]; v: readonly tf.Tensor[] } {
    return { t: this.t, m: this.m, v: this.v };
  }

  /** Restores a saved state; takes ownership of m and v (shapes must match the parameters). */
  setState(state: { t: number; m: tf.Tensor[]; v: tf.Tensor[] }): void {
    if (state.m.length !== this.m.length || state.v.length !== this.v.length) {
      throw new Error(`Adam.setState: expected ${this.m.length} moment tensors, got ${state.m.length} and ${state.v.length}`);
    }
    state.m.forEach((t, i) => {
      if (t.shape.join() !== this.m[i]!.shape.join()) throw new Error(`Adam.setState: moment ${i} has shape [${t.shape}], expected [${this.m[i]!.shape}]`);
    });
    tf.dispose([...this.m, ...this.v]);
    this.t = state.t;
    this.m = state.m;
    this.v = state.v;
  }

  dispose(): void {
    for (const t of [...this.m, ...this.v]) t.dispose();
    this.m = [];
    this.v = [];
  }
}

export interface LossAndGrad {
  /** Scalar loss tensor (optional; only read back when asked). */
  loss?: tf.Tensor;
  /** Gradient of the loss w.r.t. the network output. */
  dOut: tf.Tensor;
}

/**
 * One training step: forward, loss gradient, backward, Adam; replaces net's params.
 * Returns the loss as a number when readLoss is true (forces a sync), else null.
 */
export function trainStep(
  net: DenseStack, opt: Adam, x: tf.Tensor, lossGrad: (out: tf.Tensor) => LossAndGrad, readLoss = false,
): number | null {
  let lossT: tf.Tensor | null = null;
  const newParams = tf.tidy(() => {
    const { out, cache } = net.forward(x);
    const lg = lossGrad(out);
    if (readLoss && lg.loss !== undefined) lossT = tf.keep(lg.loss);
    const { grads } = net.backward(cache, lg.dOut);
    return opt.step(net.params(), grads);
  });
  net.setParams(newParams);
  if (lossT === null) return null;
  const l = (lossT as tf.Tensor).dataSync()[0]!;
  (lossT as tf.Tensor).dispose();
  return l;
}
