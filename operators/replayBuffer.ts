// ArrowReplayBuffer: a FIFO ring of Arrow-layout transition batches with a capacity in rows, the
// buffer behind online SAC and, in MOPO, behind the model buffer (capacity = rollout rows of an
// epoch × retained epochs, 5 in the reference) and the real-data buffer.
//
//   const buf = new ArrowReplayBuffer({ obsDim: 17, actDim: 6, capacity: 1_250_000, optional: ['rawReward', 'penalty'] });
//   buf.append(batch);                         // ≥ chunkRows rows: O(1), held by reference; fewer: copied
//   const b = buf.sample(256, rng, out?);      // uniform with replacement, gathered column by column
//   buf.snapshot();                            // TransitionBatch views, oldest first (-> writeShards)
//   await buf.restore(readShards(dir));        // refill from a stream of batches
//
// Storage is a list of segments, oldest first: each is a TransitionBatch (every column one
// contiguous typed array, exactly the Arrow layout) plus the row range of it still held. Appends
// go at the back; when more than `capacity` rows are held, whole segments are dropped from the
// front and the oldest remaining one is cut by moving its start row, so the capacity is exact in
// rows. Indices in the API are logical: 0 is the oldest row held, size-1 the newest.
//
// Why a hybrid of references and copies:
// - A batch of at least `chunkRows` rows (a 50,000-row rollout, a dataset row group, a shard, a
//   batch transferred from a worker) becomes a segment as it is: no copy, no preallocation. The
//   caller must therefore NOT mutate a batch after appending it (the rollout producer allocates
//   fresh arrays per batch; a transferred buffer belongs to this thread anyway).
// - Smaller appends (online SAC appends one row per env step) would make a segment per row, so
//   they are copied into an open chunk of `chunkRows` preallocated rows, sealed when full. A large
//   append seals the chunk where it stands and the chunk's unused tail becomes the next open
//   chunk, so no storage is wasted. Every segment holds ≥ chunkRows rows except the front one
//   and the two pieces of a chunk split by a large append, so there are O(capacity / chunkRows)
//   segments and a binary search of a few steps finds a row.
//
// A row, once written, is never written again (chunks are not recycled): snapshot() views stay
// valid after later appends, and a segment may be shared with whoever else holds the batch.
// Memory: a partly evicted segment keeps its whole arrays alive until its last row is evicted.
//
// Optional columns (raw_reward, penalty, episode, step) are carried when the buffer is created
// with them: every appended batch must then have them (a batch may carry extra columns the buffer
// does not keep; they are not kept).
//
// Sampling: indices are drawn with Rng.int (no modulo bias), each is mapped to (segment, row) by a
// binary search over the segments' first absolute row, then gathered column by column into the
// contiguous output columns; pass `out` (from allocateSample(), or any batch with at least n rows
// and the buffer's columns) to reuse memory across updates. No per-row objects are made.

import { Observable, from, isObservable, lastValueFrom } from 'rxjs';
import { TransitionBatch, COLUMNS, type OptionalColumn, type TransitionColumns, type TransitionDims } from '../schemas/transition.js';
import { readShards, writeShards, type ShardManifest, type WriteShardsConfig } from './shards.js';
import { UserError } from '../pipeline/errors.js';
import type { Rng } from '../pipeline/random.js';

export interface ReplayBufferOptions extends TransitionDims {
  /** Capacity in transitions (rows). */
  capacity: number;
  /** Optional columns to keep (default none). */
  optional?: readonly OptionalColumn[];
  /**
   * Appends of at least this many rows are held by reference; smaller ones are copied into open
   * chunks of this many rows (default 4096; at most the capacity).
   */
  chunkRows?: number;
}

/** Default rows per open chunk: 4096 rows of halfcheetah (with the optional floats) ≈ 0.7 MB. */
export const DEFAULT_CHUNK_ROWS = 4096;

type AnyRowArray = Float32Array | Uint8Array | Int32Array;
type ColumnKey = 'observation' | 'action' | 'reward' | 'nextObservation' | 'terminal' | 'timeout' | OptionalColumn;

/** Column key and row width (values per row) for every column a buffer keeps. */
interface ColumnLayout {
  key: ColumnKey;
  width: number;
  /** An empty array of the column's type: what a dropped segment's slot points at. */
  empty: AnyRowArray;
}

/** The chunk small appends are copied into: `region` rows [0, fill) are written. */
interface OpenChunk {
  region: TransitionBatch;
  fill: number;
  /** Whether the chunk is the last segment yet (it becomes one when its first row is written). */
  inRing: boolean;
}

export class ArrowReplayBuffer {
  readonly capacity: number;
  readonly obsDim: number;
  readonly actDim: number;
  readonly env: string | undefined;
  readonly optionalColumns: readonly OptionalColumn[];
  readonly chunkRows: number;
  private readonly layout: ColumnLayout[];
  // Segments e in [first, batches.length), oldest first, as parallel arrays. Rows are numbered
  // absolutely (the i-th row ever appended is i), so appends and evictions never renumber: segment
  // e holds absolute rows [los[e], his[e]), and absolute row a is row a - bases[e] of batches[e].
  private batches: TransitionBatch[] = [];
  private bases: number[] = [];
  private los: number[] = [];
  private his: number[] = [];
  /** columns[c][e] = column c of batches[e], so the gather loop indexes one array per column. */
  private columns: AnyRowArray[][];
  private first = 0;
  private open: OpenChunk | null = null;
  private count = 0;
  private appended = 0;
  private idx = new Uint32Array(0);
  private segOf = new Int32Array(0);
  private rowOf = new Int32Array(0);
  private touched = new Float64Array(0);
  private readonly emptyBatch: TransitionBatch;

  constructor(opts: ReplayBufferOptions) {
    if (!Number.isInteger(opts.capacity) || opts.capacity <= 0) {
      throw new UserError(`replay buffer: capacity must be a positive integer, got ${opts.capacity}`);
    }
    const chunkRows = opts.chunkRows ?? Math.min(opts.capacity, DEFAULT_CHUNK_ROWS);
    if (!Number.isInteger(chunkRows) || chunkRows <= 0) {
      throw new UserError(`replay buffer: chunkRows must be a positive integer, got ${opts.chunkRows}`);
    }
    this.capacity = opts.capacity;
    this.chunkRows = Math.min(chunkRows, opts.capacity);
    this.obsDim = opts.obsDim;
    this.actDim = opts.actDim;
    this.env = opts.env;
    this.emptyBatch = TransitionBatch.allocate(opts, 0, [...new Set(opts.optional ?? [])]);
    this.optionalColumns = this.emptyBatch.optionalColumns;
    const widths: [ColumnKey, number][] = [
      ['observation', opts.obsDim],
      ['action', opts.actDim],
      ['reward', 1],
      ['nextObservation', opts.obsDim],
      ['terminal', 1],
      ['timeout', 1],
      ...this.optionalColumns.map((k): [ColumnKey, number] => [k, 1]),
    ];
    this.layout = widths.map(([key, width]) => ({ key, width, empty: this.emptyBatch[key]! }));
    this.columns = this.layout.map(() => []);
  }

  /** Rows currently held (≤ capacity). */
  get size(): number {
    return this.count;
  }

  /** Rows ever appended (including those since evicted): for sample-to-insert ratios. */
  get totalAppended(): number {
    return this.appended;
  }

  get dims(): TransitionDims {
    return this.env ? { obsDim: this.obsDim, actDim: this.actDim, env: this.env } : { obsDim: this.obsDim, actDim: this.actDim };
  }

  /** Forgets every row. Arrays already handed out (snapshot views) are left intact. */
  clear(): void {
    this.batches = [];
    this.bases = [];
    this.los = [];
    this.his = [];
    this.columns = this.layout.map(() => []);
    this.first = 0;
    this.open = null;
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
   * Appends the rows of `batch` (oldest first), evicting the oldest rows beyond the capacity. A
   * batch of at least chunkRows rows is held by reference in O(1) (do not mutate it afterwards);
   * a smaller one is copied. A batch longer than the capacity leaves only its last `capacity` rows.
   */
  append(batch: TransitionBatch): void {
    this.checkBatch(batch, 'an appended batch');
    const n = batch.length;
    if (n === 0) return;
    if (n >= this.chunkRows) {
      this.sealOpen();
      const kept = this.keptView(batch);
      this.pushSegment(kept, this.appended);
      this.his[this.his.length - 1] = this.appended + n;
    } else {
      this.copyIn(batch);
    }
    this.appended += n;
    this.count += n;
    this.evict();
  }

  /** The batch with only the columns this buffer keeps and its dims (views, no copy). */
  private keptView(b: TransitionBatch): TransitionBatch {
    const cols: TransitionColumns = {
      observation: b.observation,
      action: b.action,
      reward: b.reward,
      nextObservation: b.nextObservation,
      terminal: b.terminal,
      timeout: b.timeout,
    };
    for (const k of this.optionalColumns) (cols as unknown as Record<string, unknown>)[k] = b[k];
    return new TransitionBatch(this.dims, cols);
  }

  /** Adds an empty segment at the back whose row 0 is absolute row `base`. */
  private pushSegment(batch: TransitionBatch, base: number): void {
    this.batches.push(batch);
    this.bases.push(base);
    this.los.push(base);
    this.his.push(base);
    for (let c = 0; c < this.layout.length; c++) this.columns[c]!.push(batch[this.layout[c]!.key]!);
  }

  /** Ends the open chunk where it stands; its unused tail becomes the next open chunk. */
  private sealOpen(): void {
    const open = this.open;
    if (open === null || !open.inRing) return;
    this.open = open.fill < open.region.length ? { region: open.region.slice(open.fill), fill: 0, inRing: false } : null;
  }

  /** Copies a small batch into open chunks (the rows are counted by append). */
  private copyIn(batch: TransitionBatch): void {
    const n = batch.length;
    let src = 0;
    let abs = this.appended;
    while (src < n) {
      let open = this.open;
      if (open === null || open.fill === open.region.length) {
        open = this.open = { region: TransitionBatch.allocate(this.dims, this.chunkRows, this.optionalColumns), fill: 0, inRing: false };
      }
      if (!open.inRing) {
        this.pushSegment(open.region, abs);
        open.inRing = true;
      }
      const run = Math.min(n - src, open.region.length - open.fill);
      for (const { key, width } of this.layout) {
        copyRows(open.region[key]!, batch[key]!, src * width, open.fill * width, run * width);
      }
      open.fill += run;
      src += run;
      abs += run;
      this.his[this.his.length - 1] = abs;
    }
  }

  /** Drops rows from the front until at most `capacity` are held. */
  private evict(): void {
    let excess = this.count - this.capacity;
    if (excess <= 0) return;
    this.count = this.capacity;
    while (excess > 0) {
      const e = this.first;
      const held = this.his[e]! - this.los[e]!;
      if (held > excess) {
        this.los[e]! += excess;
        break;
      }
      // Whole segment: drop the references now so its memory can go, compact the lists later.
      excess -= held;
      this.batches[e] = this.emptyBatch;
      for (let c = 0; c < this.layout.length; c++) this.columns[c]![e] = this.layout[c]!.empty;
      this.first++;
    }
    // The last segment always keeps ≥ 1 row (excess < count), so the open chunk is never dropped.
    if (this.first >= 16 && this.first * 2 >= this.batches.length) {
      const k = this.first;
      this.batches.splice(0, k);
      this.bases.splice(0, k);
      this.los.splice(0, k);
      this.his.splice(0, k);
      for (const col of this.columns) col.splice(0, k);
      this.first = 0;
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
    if (out !== undefined) {
      this.checkBatch(out, 'the output batch');
      if (outOffset < 0 || outOffset + n > out.length) {
        throw new RangeError(`replay buffer: output batch has ${out.length} rows, cannot write ${n} rows at ${outOffset}`);
      }
    }
    // (segment, row) of every index, found once for all columns.
    if (this.segOf.length < n) {
      this.segOf = new Int32Array(n);
      this.rowOf = new Int32Array(n);
    }
    const segOf = this.segOf;
    const rowOf = this.rowOf;
    const size = this.count;
    const oldest = this.appended - size;
    const los = this.los;
    const bases = this.bases;
    const last = los.length - 1;
    for (let i = 0; i < n; i++) {
      const j = indices[i]!;
      if (!(j >= 0 && j < size && j % 1 === 0)) throw new RangeError(`replay buffer: index ${j} out of range [0, ${size})`);
      const a = oldest + j;
      // Last segment whose first row is ≤ a.
      let lo = this.first;
      let hi = last;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (los[mid]! <= a) lo = mid;
        else hi = mid - 1;
      }
      segOf[i] = lo;
      rowOf[i] = a - bases[lo]!;
    }
    const dst = out ?? this.allocateSample(n);
    // Random rows of a large buffer miss every cache level (and the TLB). Copying a wide row
    // (17 floats) element by element leaves the CPU one row's misses at a time; a first tight pass
    // that loads one value per cache line of every wide row lets those misses overlap, and the
    // copy then reads from cache (a third less time per 256-row sample from 1.25M rows, bench/buffer.ts).
    if (this.touched.length < n) this.touched = new Float64Array(n);
    for (let c = 0; c < this.layout.length; c++) {
      const { width } = this.layout[c]!;
      if (width > 1) touchRows(this.touched, this.columns[c]! as Float32Array[], segOf, rowOf, n, width);
    }
    for (let c = 0; c < this.layout.length; c++) {
      const { key, width } = this.layout[c]!;
      // Columns wider than one value are observation, next_observation and action: Float32, so the
      // wide copy stays monomorphic.
      if (width > 1) gatherWide(dst[key] as Float32Array, this.columns[c]! as Float32Array[], segOf, rowOf, n, width, outOffset);
      else gatherNarrow(dst[key]!, this.columns[c]!, segOf, rowOf, n, outOffset);
    }
    return dst;
  }

  /**
   * The rows held, oldest first, as views of the segments (appended batches and chunks). Rows are
   * never rewritten, so the views stay valid. Feed them to writeShards; restore() reads them back.
   */
  snapshot(): TransitionBatch[] {
    const out: TransitionBatch[] = [];
    for (let e = this.first; e < this.batches.length; e++) {
      const base = this.bases[e]!;
      const b = this.batches[e]!;
      const lo = this.los[e]! - base;
      const hi = this.his[e]! - base;
      out.push(lo === 0 && hi === b.length ? b : b.slice(lo, hi));
    }
    return out;
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

/** to[dst, dst+len) = from[src, src+len); a plain loop for short runs (no subarray objects). */
function copyRows(to: AnyRowArray, from: AnyRowArray, src: number, dst: number, len: number): void {
  if (len <= 64) {
    for (let i = 0; i < len; i++) to[dst + i] = from[src + i]!;
  } else {
    to.set(from.subarray(src, src + len) as never, dst);
  }
}

/** One load per 16 floats (64 bytes) of each row, and its last value, into `sink`. */
function touchRows(sink: Float64Array, segs: readonly Float32Array[], segOf: Int32Array, rowOf: Int32Array, n: number, width: number): void {
  for (let i = 0; i < n; i++) {
    const from = segs[segOf[i]!]!;
    const s = rowOf[i]! * width;
    const end = s + width - 1;
    let acc = from[end]!;
    for (let k = s; k < end; k += 16) acc += from[k]!;
    sink[i] = acc;
  }
}

/** Row rowOf[i] of segment segOf[i] of a width-wide column → row outOffset+i of `to`, for i < n. */
function gatherWide(to: Float32Array, segs: readonly Float32Array[], segOf: Int32Array, rowOf: Int32Array, n: number, width: number, outOffset: number): void {
  let o = outOffset * width;
  for (let i = 0; i < n; i++) {
    const from = segs[segOf[i]!]!;
    let s = rowOf[i]! * width;
    for (let c = 0; c < width; c++) to[o++] = from[s++]!;
  }
}

/** The same for a one-value column (of any of the row array types). */
function gatherNarrow(to: AnyRowArray, segs: readonly AnyRowArray[], segOf: Int32Array, rowOf: Int32Array, n: number, outOffset: number): void {
  for (let i = 0; i < n; i++) to[outOffset + i] = segs[segOf[i]!]![rowOf[i]!]!;
}
