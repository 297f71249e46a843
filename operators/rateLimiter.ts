// RateLimiter: keeps a producer (rollouts) and a consumer (SAC updates) within a band around a
// target samples-per-insert ratio, as DeepMind Reverb's SampleToInsertRatio limiter does:
//
//   diff = inserts · samplesPerInsert − samples
//   sampling is allowed when inserts ≥ minInserts and diff − 1 ≥ minDiff
//   inserting is allowed when diff + samplesPerInsert ≤ maxDiff
//   with minDiff = samplesPerInsert · minInserts − errorBuffer, maxDiff = that + 2 · errorBuffer
//
// so the side that gets ahead waits. Units are whatever the caller counts (rows, rounds, updates).
// Both sides are in one thread here (the learner owns the limiter and asks the rollout worker for
// a round only when an insert is allowed), so waiting is a promise that the other side's call
// resolves; the time each side spends waiting is accumulated for the run's metrics.

export interface RateLimiterConfig {
  /** Target samples per insert (in the caller's units). */
  samplesPerInsert: number;
  /** Inserts needed before the first sample. */
  minInserts: number;
  /** Half-width of the allowed band around the target, in samples. */
  errorBuffer: number;
}

export interface RateLimiterStats {
  inserts: number;
  samples: number;
  /** Seconds the sampler / inserter spent blocked in waitToSample / waitToInsert. */
  sampleWaitSeconds: number;
  insertWaitSeconds: number;
}

export class RateLimiter {
  readonly config: Readonly<RateLimiterConfig>;
  private insertsN = 0;
  private samplesN = 0;
  private sampleWait = 0;
  private insertWait = 0;
  private readonly minDiff: number;
  private readonly maxDiff: number;
  private waiters: { kind: 'sample' | 'insert'; n: number; resolve: () => void }[] = [];

  constructor(config: RateLimiterConfig) {
    const { samplesPerInsert: spi, minInserts, errorBuffer } = config;
    if (!(spi > 0)) throw new RangeError(`RateLimiter: samplesPerInsert must be > 0, got ${spi}`);
    if (!(Number.isInteger(minInserts) && minInserts >= 1)) throw new RangeError(`RateLimiter: minInserts must be an integer ≥ 1, got ${minInserts}`);
    // A band narrower than one insert would let neither side move.
    if (!(errorBuffer >= spi / 2)) throw new RangeError(`RateLimiter: errorBuffer (${errorBuffer}) must be at least samplesPerInsert / 2 (${spi / 2})`);
    this.config = Object.freeze({ ...config });
    this.minDiff = spi * minInserts - errorBuffer;
    this.maxDiff = spi * minInserts + errorBuffer;
  }

  private get diff(): number {
    return this.insertsN * this.config.samplesPerInsert - this.samplesN;
  }

  canSample(n = 1): boolean {
    return this.insertsN >= this.config.minInserts && this.diff - n >= this.minDiff;
  }

  canInsert(n = 1): boolean {
    return this.diff + n * this.config.samplesPerInsert <= this.maxDiff;
  }

  /** Records n samples (the caller checked canSample or awaited waitToSample). */
  sampled(n = 1): void {
    this.samplesN += n;
    this.wake();
  }

  /** Records n inserts. */
  inserted(n = 1): void {
    this.insertsN += n;
    this.wake();
  }

  /** Resolves when n samples are allowed; the time blocked counts as sampler wait. */
  waitToSample(n = 1): Promise<void> {
    return this.wait('sample', n);
  }

  /** Resolves when n inserts are allowed; the time blocked counts as inserter wait. */
  waitToInsert(n = 1): Promise<void> {
    return this.wait('insert', n);
  }

  /** Adds time a side spent waiting outside the limiter (e.g. for data in flight). */
  addWait(kind: 'sample' | 'insert', seconds: number): void {
    if (kind === 'sample') this.sampleWait += seconds;
    else this.insertWait += seconds;
  }

  stats(): RateLimiterStats {
    return { inserts: this.insertsN, samples: this.samplesN, sampleWaitSeconds: this.sampleWait, insertWaitSeconds: this.insertWait };
  }

  /** The counters, to checkpoint; restore() puts them back (wait times too). */
  getState(): RateLimiterStats {
    return this.stats();
  }

  restore(s: RateLimiterStats): void {
    this.insertsN = s.inserts;
    this.samplesN = s.samples;
    this.sampleWait = s.sampleWaitSeconds;
    this.insertWait = s.insertWaitSeconds;
  }

  private wait(kind: 'sample' | 'insert', n: number): Promise<void> {
    if (kind === 'sample' ? this.canSample(n) : this.canInsert(n)) return Promise.resolve();
    const t0 = performance.now();
    return new Promise<void>((resolve) => {
      this.waiters.push({
        kind,
        n,
        resolve: () => {
          this.addWait(kind, (performance.now() - t0) / 1000);
          resolve();
        },
      });
    });
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const still: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (w.kind === 'sample' ? this.canSample(w.n) : this.canInsert(w.n)) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }
}
