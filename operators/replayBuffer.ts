// ArrowReplayBuffer: a FIFO ring of transitions over preallocated typed-array columns, the buffer
// behind online SAC and, in MOPO, behind the model buffer (rollouts) and the real-data buffer.
//
//   const buf = new ArrowReplayBuffer({ obsDim: 17, actDim: 6, capacity: 1_000_000, optional: ['rawReward', 'penalty'] });
//   buf.append(batch);                         // O(batch.length): one or two block copies per column
//   const b = buf.sample(256, rng, out?);      // uniform with replacement, gathered column by column
//   buf.snapshot();                            // TransitionBatch views, oldest first (-> writeShards)
//   await buf.restore(readShards(dir));        // refill from a stream of batches
//
// Storage is one TransitionBatch of `capacity` rows (so every column is one contiguous typed
// array, exactly the Arrow layout). `head` is where the next row goes; once the ring is full the
// oldest row is overwritten. Indices in the API are logical: 0 is the oldest row held, size-1 the
// newest.
//
// Optional columns (raw_reward, penalty, episode, step) are carried when the buffer is created
// with them: every appended batch must then have them (a batch may carry extra columns the buffer
// does not keep; they are dropped).
//
// Sampling: indices are drawn with Rng.int (no modulo bias) and gathered into contiguous output
// columns; pass `out` (a TransitionBatch from allocateSample(), or any batch with at least n rows
// and the buffer's columns) to reuse memory across updates. No per-row objects are made.
//
// Gotcha: snapshot() returns views of the live storage. They are valid until the next append;
// write them out (writeShards copies them into IPC bytes) before appending again.

import { Observable, from, isObservable, lastValueFrom } from 'rxjs';
import { TransitionBatch, COLUMNS, type OptionalColumn, type TransitionDims } from '../schemas/transition.js';
import { readShards, writeShards, type ShardManifest, type WriteShardsConfig } from './shards.js';
import { UserError } from '../pipeline/errors.js';
import type { Rng } from '../pipeline/random.js';

export interface ReplayBufferOptions extends TransitionDims {
  /** Capacity in transitions (rows). */
  capacity: number;
  /** Optional columns to keep (default none). */
  optional?: readonly OptionalColumn[];
}

type AnyRowArray = Float32Array | Uint8Array | Int32Array;

/** Column key, row width (values per row) for every column a buffer keeps. */
interface ColumnLayout {
  key: keyof TransitionBatch & string;
  width: number;
}

export class ArrowReplayBuffer {
  readonly capacity: number;
  readonly obsDim: number;
  readonly actDim: number;
  readonly env: string | undefined;
  readonly optionalColumns: readonly OptionalColumn[];
  private readonly store: TransitionBatch;
  private readonly layout: ColumnLayout[];
  private head = 0;
  private count = 0;
  private appended = 0;
  private idx = new Uint32Array(0);

  constructor(opts: ReplayBufferOptions) {
    if (!Number.isInteger(opts.capacity) || opts.capacity <= 0) {
      throw new UserError(`replay buffer: capacity must be a positive integer, got ${opts.capacity}`);
    }
    this.capacity = opts.capacity;
    this.obsDim = opts.obsDim;
    this.actDim = opts.actDim;
    this.env = opts.env;
    const optional = [...new Set(opts.optional ?? [])];
    this.store = TransitionBatch.allocate(opts, opts.capacity, optional);
    this.optionalColumns = this.store.optionalColumns;
    this.layout = [
      { key: 'observation', width: opts.obsDim },
      { key: 'action', width: opts.actDim },
      { key: 'reward', width: 1 },
      { key: 'nextObservation', width: opts.obsDim },
      { key: 'terminal', width: 1 },
      { key: 'timeout', width: 1 },
      ...this.optionalColumns.map((k) => ({ key: k, width: 1 })),
    ];
  }

  /** Rows currently held (≤ capacity). */
  get size(): number {
    return this.count;
  }

  /** Rows ever appended (including those since overwritten): for sample-to-insert ratios. */
  get totalAppended(): number {
    return this.appended;
  }

  get dims(): TransitionDims {
    return this.env ? { obsDim: this.obsDim, actDim: this.actDim, env: this.env } : { obsDim: this.obsDim, actDim: this.actDim };
  }

  /** Physical index of the oldest row. */
  private get start(): number {
    const s = this.head - this.count;
    return s < 0 ? s + this.capacity : s;
  }

  /** Forgets every row (storage is kept). */
  clear(): void {
    this.head = 0;
    this.count = 0;
  }

  private checkBatch(b: TransitionBatch, what: string): void {
    if (b.obsDim !== this.obsDim || b.actDim !== this.actDim) {
      throw new UserError(`replay buffer: ${what} has dims obs ${b.obsDim}/act ${b.actDim}, the buffer holds obs ${this.obsDim}/act ${this.actDim}`);
    }
    for (const k of this.optionalColumns) {
      if (b[k] === undefined) throw new UserError(`replay buffer: ${what} lacks column ${COLUMNS[k]}, which this buffer keeps`);
    }
  }

  /**
   * Appends the rows of `batch` (oldest first), overwriting the oldest rows once full. A batch
   * longer than the capacity leaves only its last `capacity` rows. O(batch.length).
   */
  append(batch: TransitionBatch): void {
    this.checkBatch(batch, 'an appended batch');
    const n = batch.length;
    if (n === 0) return;
    this.appended += n;
    const skip = Math.max(0, n - this.capacity);
    let src = skip;
    let left = n - skip;
    while (left > 0) {
      const run = Math.min(left, this.capacity - this.head);
      for (const { key, width } of this.layout) {
        const from = batch[key] as AnyRowArray;
        const to = this.store[key] as AnyRowArray;
        to.set(from.subarray(src * width, (src + run) * width) as never, this.head * width);
      }
      src += run;
      left -= run;
      this.head += run;
      if (this.head === this.capacity) this.head = 0;
      this.count = Math.min(this.capacity, this.count + run);
    }
  }

  /** n indices uniform in [0, size) (logical: 0 = oldest), with replacement. */
  sampleIndices(n: number, rng: Rng, out?: Uint32Array): Uint32Array {
    if (this.count === 0) throw new Error('replay buffer: cannot sample from an empty buffer');
    const idx = out ?? new Uint32Array(n);
    if (idx.length < n) throw new RangeError(`sampleIndices: out holds ${idx.length} indices, need ${n}`);
    const size = this.count;
    for (let i = 0; i < n; i++) idx[i] = rng.int(size);
    return idx;
  }

  /** A batch of n rows with this buffer's dims and columns, for sample()/gather() to fill. */
  allocateSample(n: number): TransitionBatch {
    return TransitionBatch.allocate(this.dims, n, this.optionalColumns);
  }

  /**
   * Uniformly samples n rows (with replacement) into `out` at row `outOffset` (a new batch when
   * out is omitted). Returns out, or the new batch.
   */
  sample(n: number, rng: Rng, out?: TransitionBatch, outOffset = 0): TransitionBatch {
    if (this.idx.length < n) this.idx = new Uint32Array(n);
    const idx = this.sampleIndices(n, rng, this.idx);
    return this.gatherN(idx, n, out, outOffset);
  }

  /** Copies the rows at logical `indices` into `out` from row `outOffset` (a new batch when omitted). */
  gather(indices: ArrayLike<number>, out?: TransitionBatch, outOffset = 0): TransitionBatch {
    return this.gatherN(indices, indices.length, out, outOffset);
  }

  private gatherN(indices: ArrayLike<number>, n: number, out: TransitionBatch | undefined, outOffset: number): TransitionBatch {
    const dst = out ?? this.allocateSample(n);
    if (out !== undefined) {
      this.checkBatch(out, 'the output batch');
      if (outOffset < 0 || outOffset + n > out.length) {
        throw new RangeError(`replay buffer: output batch has ${out.length} rows, cannot write ${n} rows at ${outOffset}`);
      }
    }
    const size = this.count;
    const start = this.start;
    const cap = this.capacity;
    // Physical row of every logical index, computed once for all columns (in place when the
    // indices are this.idx: element i is read before it is written).
    if (this.idx.length < n) this.idx = new Uint32Array(n);
    const phys = this.idx;
    for (let i = 0; i < n; i++) {
      const j = indices[i]!;
      if (!(j >= 0 && j < size)) throw new RangeError(`replay buffer: index ${j} out of range [0, ${size})`);
      const p = start + j;
      phys[i] = p >= cap ? p - cap : p;
    }
    for (const { key, width } of this.layout) {
      const from = this.store[key] as AnyRowArray;
      const to = dst[key] as AnyRowArray;
      if (width === 1) {
        for (let i = 0; i < n; i++) to[outOffset + i] = from[phys[i]!]!;
      } else {
        let o = outOffset * width;
        for (let i = 0; i < n; i++) {
          const s = phys[i]! * width;
          for (let c = 0; c < width; c++) to[o + c] = from[s + c]!;
          o += width;
        }
      }
    }
    return dst;
  }

  /**
   * The rows held, oldest first, as at most two views of the storage (valid until the next
   * append). Feed them to writeShards; restore() reads them back.
   */
  snapshot(): TransitionBatch[] {
    if (this.count === 0) return [];
    const start = this.start;
    if (start + this.count <= this.capacity) return [this.store.slice(start, start + this.count)];
    return [this.store.slice(start, this.capacity), this.store.slice(0, this.head)];
  }

  /**
   * Clears the buffer and appends every batch of `source` (an Observable such as readShards(dir),
   * an iterable or an async iterable). Resolves to the number of rows read.
   */
  async restore(source: Observable<TransitionBatch> | Iterable<TransitionBatch> | AsyncIterable<TransitionBatch>): Promise<number> {
    this.clear();
    let rows = 0;
    const take = (b: TransitionBatch) => {
      this.append(b);
      rows += b.length;
    };
    if (isObservable(source)) {
      await new Promise<void>((resolve, reject) => {
        const sub = source.subscribe({
          next: (b) => {
            try {
              take(b);
            } catch (e) {
              reject(e);
              queueMicrotask(() => sub.unsubscribe());
            }
          },
          error: reject,
          complete: resolve,
        });
      });
    } else if (Symbol.asyncIterator in source) {
      for await (const b of source as AsyncIterable<TransitionBatch>) take(b);
    } else {
      for (const b of source as Iterable<TransitionBatch>) take(b);
    }
    return rows;
  }

  /** Writes snapshot() as an Arrow shard set (see operators/shards.ts). */
  writeShards(config: Omit<WriteShardsConfig, 'stage'> & { stage?: string }): Promise<ShardManifest> {
    return lastValueFrom(from(this.snapshot()).pipe(writeShards({ stage: 'replay-buffer', ...config })));
  }

  /** restore(readShards(dir)). */
  readShards(dir: string): Promise<number> {
    return this.restore(readShards(dir));
  }
}
