// ArrowReplayBuffer: a FIFO ring of Arrow-layout transition batches with a capacity in rows, the
// buffer behind online SAC and, in MOPO, behind the model buffer (capacity = rollout rows of an
// epoch × retained epochs, 5 in the reference) and the real-data buffer.
//
//   const buf = new ArrowReplayBuffer({ obsDim: 17, actDim: 6, capacity: 1_250_000, optional: ['rawReward', 'penalty'] });
//   buf.append(batch);                         // ≥ chunkRows rows: O(1), held by reference; fewer: copied
//   const b = buf.sample(256, rng, out?);      // uniform with replacement, gathered column by column
//   buf.sampleBlock(1000, 256, rng, stage);    // the batches of 1000 updates at once: stage.slice(u·256, (u+1)·256)
//   ArrowReplayBuffer.sampleBlockMixed([{ buffer: real, rows: 12 }, { buffer: model, rows: 244 }], 1000, rng, stage);
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
//
// Block sampling: a 256-row sample of a large buffer is bound by memory latency (random rows of
// 225 MB miss every cache and the TLB), which is not small next to a SAC update. Between two
// appends the rows held do not change, so the batches of many updates can be drawn at once:
// sampleBlock(K, n, rng, stage) draws all K·n indices, sorts the (index, output row) pairs by
// index (LSD radix sort, 11-bit digits), and copies column by column, segment by segment, in
// index order — every column is read front to back — each row to its (batch, row) place in one
// staging batch, whose per-update batches are zero-copy slices. Wide columns are copied in chunks
// of 1024 rows: a tight pass that loads each row's cache lines (so the misses overlap), then an
// unrolled copy compiled per row width (twice the speed of a loop; see wideCopier). About a third
// of the per-batch cost of sample() at 1.25M rows (bench/buffer.ts, sampleBlockMsPerBatch).
// sampleBlock consumes exactly the draws of K successive sample(n, rng) calls and writes the same
// rows, so the two are interchangeable; ArrowReplayBuffer.sampleBlockMixed does the same for
// batches mixing several buffers (MOPO's real and model data), with the draws of the per-batch
// loop. The staging batch is a copy: appends after the call do not change it, so a block must be
// used up before the buffers change if it is to stand for the per-batch loop. Scratch: 20 bytes
// per sampled row (indices and sort buffers), kept by the buffer for the next block.

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

/** Where a block's batches go in the staging batch (sampleBlock, gatherBlock). */
export interface SampleBlockOptions {
  /**
   * Rows per batch in the output, B (default rowsPerBatch): batch u occupies output rows
   * [u·B, (u+1)·B), so per-update batches are out.slice(u·B, (u+1)·B). At least outOffset + rowsPerBatch.
   */
  outRowsPerBatch?: number;
  /** Where this buffer's rows start within each batch's B rows (default 0). */
  outOffset?: number;
}

/** One buffer's share of every batch of sampleBlockMixed. */
export interface BlockPart {
  buffer: ArrowReplayBuffer;
  /** Rows of each batch drawn from `buffer` (0: the part is skipped, the buffer may be empty). */
  rows: number;
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
  // Block sampling scratch (grown on demand, kept): drawn indices, the radix sort's key/payload
  // ping-pong arrays, and the row within its segment of every sorted index.
  private blockIdx = new Uint32Array(0);
  private sortKeyA = new Uint32Array(0);
  private sortKeyB = new Uint32Array(0);
  private sortDstA = new Uint32Array(0);
  private sortDstB = new Uint32Array(0);
  private readonly radixCounts = new Uint32Array(RADIX_BUCKETS);
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
    return new TransitionBatch(this.dims, b.columnsWith(this.optionalColumns));
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
   * Samples the batches of `batches` updates at once: batch u (0 ≤ u < batches) gets rowsPerBatch
   * rows drawn uniformly with replacement from the rows held, written to output rows
   * u·B + outOffset + i (i < rowsPerBatch; B = opts.outRowsPerBatch, default rowsPerBatch), so
   * out.slice(u·B, (u+1)·B) is batch u. `out` (default: a new batch of batches·B rows with this
   * buffer's columns) must have this buffer's dims and columns and at least batches·B rows; the
   * other rows, and columns of out the buffer does not keep, are left untouched.
   *
   * Rng draws: exactly those of `batches` successive sample(rowsPerBatch, rng) calls, i.e. the
   * index of row i of batch u is the (u·rowsPerBatch + i)-th rng.int(size) of the call (batch
   * order), and the rows written are those sample() would write. Arguments are checked before
   * anything is drawn. The rows are then gathered in sorted memory order (see the header).
   */
  sampleBlock(batches: number, rowsPerBatch: number, rng: Rng, out?: TransitionBatch, opts: SampleBlockOptions = {}): TransitionBatch {
    const g = this.checkBlock(batches, rowsPerBatch, out, opts);
    if (this.count === 0) throw new Error('replay buffer: cannot sample from an empty buffer');
    const total = batches * rowsPerBatch;
    if (this.blockIdx.length < total) this.blockIdx = new Uint32Array(total);
    drawIndices(rng, this.count, this.blockIdx, 0, total);
    return this.gatherBlockN(this.blockIdx, batches, rowsPerBatch, out, g.rowsPerOut, g.offset);
  }

  /**
   * gather() for a block: indices[u·rowsPerBatch + i] (logical, 0 = oldest) goes to output row
   * u·B + outOffset + i, with the layout of sampleBlock (indices.length must be a multiple of
   * rowsPerBatch). sampleBlock(K, n, rng, out, opts) ≡ gatherBlock(the K·n draws in batch order, n, out, opts).
   */
  gatherBlock(indices: ArrayLike<number>, rowsPerBatch: number, out?: TransitionBatch, opts: SampleBlockOptions = {}): TransitionBatch {
    if (!(Number.isInteger(rowsPerBatch) && rowsPerBatch > 0)) throw new RangeError(`gatherBlock: rowsPerBatch must be a positive integer, got ${rowsPerBatch}`);
    if (indices.length % rowsPerBatch !== 0) throw new RangeError(`gatherBlock: ${indices.length} indices are not whole batches of ${rowsPerBatch}`);
    const batches = indices.length / rowsPerBatch;
    const g = this.checkBlock(batches, rowsPerBatch, out, opts);
    const total = indices.length;
    const size = this.count;
    if (this.blockIdx.length < total) this.blockIdx = new Uint32Array(total);
    for (let j = 0; j < total; j++) {
      const k = indices[j]!;
      if (!(k >= 0 && k < size && k % 1 === 0)) throw new RangeError(`replay buffer: index ${k} out of range [0, ${size})`);
      this.blockIdx[j] = k;
    }
    return this.gatherBlockN(this.blockIdx, batches, rowsPerBatch, out, g.rowsPerOut, g.offset);
  }

  /**
   * Samples `batches` batches mixing several buffers (MOPO: real and model data) into one staging
   * batch: batch u is out rows [u·B, (u+1)·B) with B = Σ parts[p].rows, parts[p]'s rows at offset
   * Σ_{q<p} parts[q].rows within it. The rng draws are those of the per-batch loop
   * `for u: for p: parts[p].buffer.sample(parts[p].rows, rng, batch_u, offset_p)` (batch by batch,
   * part by part), and so are the rows. Parts with 0 rows draw nothing (their buffer may be empty).
   * `out` (default: a new batch with every part's optional columns) needs batches·B rows and the
   * columns of every buffer; columns a part's buffer does not keep are left untouched in its rows
   * (e.g. real rows' raw_reward and penalty, for the caller to fill).
   */
  static sampleBlockMixed(parts: readonly BlockPart[], batches: number, rng: Rng, out?: TransitionBatch): TransitionBatch {
    if (parts.length === 0) throw new RangeError('sampleBlockMixed: no parts');
    let B = 0;
    for (const { rows } of parts) {
      if (!(Number.isInteger(rows) && rows >= 0)) throw new RangeError(`sampleBlockMixed: rows must be non-negative integers, got ${rows}`);
      B += rows;
    }
    if (B === 0) throw new RangeError('sampleBlockMixed: the parts have no rows');
    const offsets: number[] = [];
    let off = 0;
    for (const { buffer, rows } of parts) {
      offsets.push(off);
      buffer.checkBlock(batches, rows, out, { outRowsPerBatch: B, outOffset: off });
      if (rows > 0 && buffer.size === 0) throw new Error('replay buffer: cannot sample from an empty buffer');
      off += rows;
    }
    const first = parts[0]!.buffer;
    for (const { buffer } of parts) {
      if (buffer !== first && (buffer.obsDim !== first.obsDim || buffer.actDim !== first.actDim)) {
        throw new UserError(`sampleBlockMixed: buffers hold dims obs ${buffer.obsDim}/act ${buffer.actDim} and obs ${first.obsDim}/act ${first.actDim}`);
      }
    }
    const dst = out ?? TransitionBatch.allocate(first.dims, batches * B, [...new Set(parts.flatMap((p) => p.buffer.optionalColumns))]);
    // Index arrays: each part's own scratch, or a fresh one when a buffer appears in two parts.
    const idx: Uint32Array[] = parts.map(({ buffer, rows }, p) => {
      const total = batches * rows;
      if (parts.findIndex((q) => q.buffer === buffer) !== p) return new Uint32Array(total);
      if (buffer.blockIdx.length < total) buffer.blockIdx = new Uint32Array(total);
      return buffer.blockIdx;
    });
    for (let u = 0; u < batches; u++) {
      for (let p = 0; p < parts.length; p++) {
        const { buffer, rows } = parts[p]!;
        if (rows > 0) drawIndices(rng, buffer.count, idx[p]!, u * rows, rows);
      }
    }
    for (let p = 0; p < parts.length; p++) {
      const { buffer, rows } = parts[p]!;
      if (rows > 0) buffer.gatherBlockN(idx[p]!, batches, rows, dst, B, offsets[p]!);
    }
    return dst;
  }

  /** Checks a block's arguments and output batch (nothing is drawn before this passes). */
  private checkBlock(batches: number, rowsPerBatch: number, out: TransitionBatch | undefined, opts: SampleBlockOptions): { rowsPerOut: number; offset: number } {
    if (!(Number.isInteger(batches) && batches >= 0)) throw new RangeError(`sampleBlock: batches must be a non-negative integer, got ${batches}`);
    if (!(Number.isInteger(rowsPerBatch) && rowsPerBatch >= 0)) throw new RangeError(`sampleBlock: rowsPerBatch must be a non-negative integer, got ${rowsPerBatch}`);
    const offset = opts.outOffset ?? 0;
    const rowsPerOut = opts.outRowsPerBatch ?? rowsPerBatch;
    if (!(Number.isInteger(offset) && offset >= 0)) throw new RangeError(`sampleBlock: outOffset must be a non-negative integer, got ${offset}`);
    if (!(Number.isInteger(rowsPerOut) && rowsPerOut >= offset + rowsPerBatch)) {
      throw new RangeError(`sampleBlock: outRowsPerBatch (${rowsPerOut}) must be an integer ≥ outOffset + rowsPerBatch (${offset} + ${rowsPerBatch})`);
    }
    if (this.count > MAX_BLOCK_ROWS) throw new RangeError(`sampleBlock: block sampling handles up to ${MAX_BLOCK_ROWS} rows, the buffer holds ${this.count}`);
    if (batches * rowsPerOut > MAX_BLOCK_ROWS) throw new RangeError(`sampleBlock: ${batches} batches of ${rowsPerOut} rows exceed ${MAX_BLOCK_ROWS} rows`);
    if (out !== undefined) {
      this.checkBatch(out, 'the output batch');
      if (out.length < batches * rowsPerOut) {
        throw new RangeError(`replay buffer: output batch has ${out.length} rows, a block of ${batches} batches of ${rowsPerOut} rows needs ${batches * rowsPerOut}`);
      }
    }
    return { rowsPerOut, offset };
  }

  /**
   * The block gather: indices[u·n + i] (valid logical indices) → output row u·B + offset + i. Sorts the (index, output
   * row) pairs by index (LSD radix sort), so the indices of each segment form a run, then copies
   * column by column, run by run, in index order: every column is read front to back.
   */
  private gatherBlockN(indices: Uint32Array, batches: number, n: number, out: TransitionBatch | undefined, B: number, offset: number): TransitionBatch {
    const dst = out ?? this.allocateSample(batches * B);
    const total = batches * n;
    if (total === 0) return dst;
    const size = this.count;
    if (this.sortKeyA.length < total) {
      this.sortKeyA = new Uint32Array(total);
      this.sortKeyB = new Uint32Array(total);
      this.sortDstA = new Uint32Array(total);
      this.sortDstB = new Uint32Array(total);
    }
    const { keys, dst: dstRows } = radixSortPairs(indices, batches, n, B, offset, size, this.radixCounts, this.sortKeyA, this.sortDstA, this.sortKeyB, this.sortDstB);
    // Segment e holds logical indices [los[e], his[e]) - oldest: a run of the sorted keys, found by
    // binary search. Logical index k of the run is row k + delta of the segment's arrays.
    const oldest = this.appended - size;
    let s0 = 0;
    for (let e = this.first; e < this.los.length && s0 < total; e++) {
      const s1 = lowerBound(keys, s0, total, this.his[e]! - oldest);
      if (s1 === s0) continue;
      const delta = oldest - this.bases[e]!;
      for (let c = 0; c < this.layout.length; c++) {
        const { key, width } = this.layout[c]!;
        const from = this.columns[c]![e]!;
        const to = dst[key]!;
        if (width === 1) {
          // One value per row: the sorted reads of a run are close to a sequential scan.
          scatterNarrow(to, from, keys, dstRows, s0, s1, delta);
          continue;
        }
        // Wide rows (observations, actions: Float32) are sparser: a tight first pass over a chunk
        // loads every cache line of its rows, so the misses overlap, and the copy reads from cache.
        const copy = wideCopier(width);
        for (let c0 = s0; c0 < s1; c0 += BLOCK_CHUNK) {
          const c1 = Math.min(s1, c0 + BLOCK_CHUNK);
          touchSink[0] += touchSorted(from as Float32Array, keys, c0, c1, delta, width);
          copy(to as Float32Array, from as Float32Array, keys, dstRows, c0, c1, delta, width);
        }
      }
      s0 = s1;
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

/** Radix sort digit: 11 bits (2048 counters, 8 KB: in L1), two passes for buffers up to 4M rows. */
const RADIX_BITS = 11;
const RADIX_BUCKETS = 1 << RADIX_BITS;
/** Output rows of one block (indices and output rows are sorted as Uint32). */
const MAX_BLOCK_ROWS = 2 ** 32 - 1;
/** Sorted rows per touch-then-copy chunk of a wide column: ≤ 1024 × 2 cache lines = 128 KB, in L2. */
const BLOCK_CHUNK = 1024;

/**
 * idx[at, at+count) = the next `count` rng.int(size) draws, in order: the same draws as rng.int
 * (rejection of x ≥ limit = ⌊2^32 / size⌋·size, then x mod size) with the limit computed once.
 */
function drawIndices(rng: Rng, size: number, idx: Uint32Array, at: number, count: number): void {
  const limit = Math.floor(0x100000000 / size) * size;
  for (let i = 0; i < count; i++) {
    let x = rng.nextUint32();
    while (x >= limit) x = rng.nextUint32();
    idx[at + i] = x % size;
  }
}

/**
 * LSD radix sort of the pairs (indices[u·n + i], u·B + offset + i) by index (< size), stable.
 * Returns whichever of the ping-pong arrays holds the result.
 */
function radixSortPairs(
  indices: Uint32Array,
  batches: number,
  n: number,
  B: number,
  offset: number,
  size: number,
  counts: Uint32Array,
  keyA: Uint32Array,
  dstA: Uint32Array,
  keyB: Uint32Array,
  dstB: Uint32Array,
): { keys: Uint32Array; dst: Uint32Array } {
  const total = batches * n;
  const passes = Math.max(1, Math.ceil(Math.log2(size) / RADIX_BITS));
  const mask = RADIX_BUCKETS - 1;
  // Pass 0 reads the indices in batch order and makes the output rows.
  counts.fill(0);
  for (let j = 0; j < total; j++) counts[indices[j]! & mask]!++;
  prefixSum(counts);
  for (let u = 0, j = 0; u < batches; u++) {
    let row = u * B + offset;
    for (let i = 0; i < n; i++, j++, row++) {
      const k = indices[j]!;
      const d = counts[k & mask]!++;
      keyA[d] = k;
      dstA[d] = row;
    }
  }
  let srcK = keyA;
  let srcD = dstA;
  let toK = keyB;
  let toD = dstB;
  for (let p = 1; p < passes; p++) {
    const shift = p * RADIX_BITS;
    counts.fill(0);
    for (let j = 0; j < total; j++) counts[(srcK[j]! >>> shift) & mask]!++;
    prefixSum(counts);
    for (let j = 0; j < total; j++) {
      const k = srcK[j]!;
      const d = counts[(k >>> shift) & mask]!++;
      toK[d] = k;
      toD[d] = srcD[j]!;
    }
    [srcK, toK] = [toK, srcK];
    [srcD, toD] = [toD, srcD];
  }
  return { keys: srcK, dst: srcD };
}

/** Counts → exclusive prefix sums (bucket starts). */
function prefixSum(counts: Uint32Array): void {
  let sum = 0;
  for (let b = 0; b < counts.length; b++) {
    const c = counts[b]!;
    counts[b] = sum;
    sum += c;
  }
}

/** First s in [lo, hi) with keys[s] ≥ x (hi if none); keys ascending. */
function lowerBound(keys: Uint32Array, lo: number, hi: number, x: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Where touchSorted's sums go, so the loads are not optimized away. */
const touchSink = new Float64Array(1);

/** Loads one value per 16 floats (64 bytes) and the last value of each row keys[s] + delta, s in [s0, s1). */
function touchSorted(from: Float32Array, keys: Uint32Array, s0: number, s1: number, delta: number, width: number): number {
  let acc = 0;
  for (let s = s0; s < s1; s++) {
    const i = (keys[s]! + delta) * width;
    const end = i + width - 1;
    acc += from[end]!;
    for (let k = i; k < end; k += 16) acc += from[k]!;
  }
  return acc;
}

/** For s in [s0, s1): row keys[s] + delta of `from` (width values) → row dstRows[s] of `to`. */
type WideCopy = (to: Float32Array, from: Float32Array, keys: Uint32Array, dstRows: Uint32Array, s0: number, s1: number, delta: number, width: number) => void;

function scatterWide(to: Float32Array, from: Float32Array, keys: Uint32Array, dstRows: Uint32Array, s0: number, s1: number, delta: number, width: number): void {
  for (let s = s0; s < s1; s++) {
    let i = (keys[s]! + delta) * width;
    let o = dstRows[s]! * width;
    for (let c = 0; c < width; c++) to[o++] = from[i++]!;
  }
}

/**
 * scatterWide with the width a constant and the row copy unrolled, compiled once per width: twice
 * as fast as the loop (V8 neither unrolls it nor folds the width in). The generated source holds
 * nothing but the integer width. Falls back to the loop for wide rows (> 64 values) or where code
 * generation from strings is disabled (--disallow-code-generation-from-strings).
 */
const copiers = new Map<number, WideCopy>();
function wideCopier(width: number): WideCopy {
  let f = copiers.get(width);
  if (f === undefined) {
    f = scatterWide;
    if (Number.isInteger(width) && width > 1 && width <= 64) {
      let body = '';
      for (let c = 0; c < width; c++) body += `to[o + ${c}] = from[i + ${c}];`;
      try {
        f = new Function('to', 'from', 'keys', 'dstRows', 's0', 's1', 'delta', `'use strict'; for (let s = s0; s < s1; s++) { const i = (keys[s] + delta) * ${width}; const o = dstRows[s] * ${width}; ${body} }`) as WideCopy;
      } catch {
        f = scatterWide;
      }
    }
    copiers.set(width, f);
  }
  return f;
}

/** For s in [s0, s1): row keys[s] + delta of `from` → row dstRows[s] of `to` (one-value columns). */
function scatterNarrow(to: AnyRowArray, from: AnyRowArray, keys: Uint32Array, dstRows: Uint32Array, s0: number, s1: number, delta: number): void {
  for (let s = s0; s < s1; s++) to[dstRows[s]!] = from[keys[s]! + delta]!;
}
