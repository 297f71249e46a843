// One seeded generator family drives every random draw in the project (initializers, sampling,
// shuffles), so one seed reproduces a run on the same backend. xoshiro128** is small, fast in
// 32-bit JS arithmetic, and its whole state (4 words) can be saved in a checkpoint.

/** splitmix32: expands one seed (or a seed plus a stream name) into well-mixed state words. */
function splitmix32(state: number): [number, number] {
  state = (state + 0x9e3779b9) | 0;
  let z = state;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return [state, z >>> 0];
}

/** FNV-1a hash of a string, used to derive independent named streams from one seed. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spareNormal: number | null = null;

  constructor(seed: number, stream = '') {
    let st = (seed >>> 0) ^ hashString(stream);
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [next, out] = splitmix32(st);
      st = next;
      words.push(out);
    }
    [this.s0, this.s1, this.s2, this.s3] = words as [number, number, number, number];
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** A child generator for a named sub-stream: deterministic given this seed and the name. */
  static derive(seed: number, stream: string): Rng {
    return new Rng(seed, stream);
  }

  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform in [lo, hi). */
  uniform(lo = 0, hi = 1): number {
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [0, n), without modulo bias. */
  int(n: number): number {
    if (n <= 0 || !Number.isFinite(n)) throw new RangeError(`Rng.int: n must be a positive integer, got ${n}`);
    if (n <= 0x100000000) {
      const limit = Math.floor(0x100000000 / n) * n;
      for (;;) {
        const x = this.nextUint32();
        if (x < limit) return x % n;
      }
    }
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box-Muller, caching the second draw). */
  normal(): number {
    if (this.spareNormal !== null) {
      const v = this.spareNormal;
      this.spareNormal = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Fill a Float32Array with uniform [lo, hi) draws. */
  fillUniform(out: Float32Array, lo = 0, hi = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = lo + (hi - lo) * this.next();
    return out;
  }

  /** Fill a Float32Array with N(mean, std²) draws. */
  fillNormal(out: Float32Array, mean = 0, std = 1): Float32Array {
    // The same draws as calling normal() per element (a pending spare first, then pairs), with
    // both values of each Box-Muller pair used in place: half the calls, twice the speed.
    let i = 0;
    const n = out.length;
    if (n > 0 && this.spareNormal !== null) out[i++] = mean + std * this.normal();
    for (; i + 1 < n; i += 2) {
      let u = 0;
      while (u === 0) u = this.next();
      const v = this.next();
      const r = Math.sqrt(-2 * Math.log(u));
      out[i] = mean + std * (r * Math.cos(2 * Math.PI * v));
      out[i + 1] = mean + std * (r * Math.sin(2 * Math.PI * v));
    }
    if (i < n) out[i] = mean + std * this.normal();
    return out;
  }

  /**
   * Fill with N(0, std²) draws truncated at ±2·std by redrawing, as TensorFlow's
   * truncated_normal (the official MOPO code's weight initializer).
   */
  fillTruncatedNormal(out: Float32Array, std: number): Float32Array {
    for (let i = 0; i < out.length; i++) {
      let z = this.normal();
      while (Math.abs(z) > 2) z = this.normal();
      out[i] = std * z;
    }
    return out;
  }

  /** In-place Fisher-Yates shuffle. */
  shuffle<T extends { length: number; [i: number]: unknown }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }

  /** A seeded permutation of 0..n-1. */
  permutation(n: number): Uint32Array {
    const p = new Uint32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p);
  }

  /** The whole generator state, for checkpoints. */
  getState(): number[] {
    return [this.s0, this.s1, this.s2, this.s3, this.spareNormal ?? Number.NaN];
  }

  setState(state: readonly number[]): void {
    if (state.length !== 5) throw new Error(`Rng.setState: expected 5 numbers, got ${state.length}`);
    [this.s0, this.s1, this.s2, this.s3] = state.slice(0, 4).map((x) => x >>> 0) as [number, number, number, number];
    const spare = state[4] as number;
    this.spareNormal = Number.isNaN(spare) ? null : spare;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
