// writeTransitions: an RxJS sink that writes TransitionBatches to one Parquet file, one row group at
// a time, atomically (temp file + rename; nothing is left behind on error or unsubscribe).
//
// Each row group is encoded by arrow-rs (parquet-wasm's synchronous writeParquet) as a complete
// small Parquet file; pipeline/parquet.ts's ParquetStitcher appends its column chunks to the output
// and writes one footer at the end. Everything happens synchronously inside next(), so memory is
// bounded by one row group even when the source is synchronous and cannot be paused.
//
// Physical layout (docs/parquet.md has the measurements): by default the vectors are stored as one
// FLOAT column per dimension (observation_0 … observation_{d-1}, action_*, next_observation_*),
// SNAPPY, PLAIN encoding, no dictionary, 65,536-row groups. arrow-rs decodes such columns ~3×
// faster than list/fixed-size-list columns (no repetition/definition levels), pyarrow and pandas
// read them as ordinary float columns, and readTransitions reassembles the vectors. The schema
// metadata (Arrow schema and Parquet key-value metadata) carries obsDim, actDim and env.
import { closeSync, fsyncSync, openSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { Observable, lastValueFrom, type OperatorFunction } from 'rxjs';
import {
  Bool,
  Field,
  Float32,
  Int32,
  RecordBatch,
  Schema,
  Struct,
  Table,
  makeData,
  tableToIPC,
  type Data,
} from 'apache-arrow';
import { COLUMNS, SCHEMA_VERSION, TransitionBatch, packBits, type OptionalColumn, type TransitionDims } from '../schemas/transition.js';
import { UserError } from '../pipeline/errors.js';
import { tempPathFor } from '../pipeline/atomic.js';
import { MAGIC, ParquetStitcher, errText, withWasm, type ParquetWasmModule } from '../pipeline/parquet.js';

export type Compression = 'snappy' | 'zstd' | 'gzip' | 'lz4' | 'none';

export interface WriteOptions {
  /** Rows per Parquet row group (default 65536). Memory use is about two row groups. */
  rowGroupSize?: number;
  /** Page compression (default 'snappy'; 'zstd' makes ~10% smaller files that read ~4× slower here). */
  compression?: Compression;
  /**
   * 'columns' (default): one float column per vector dimension, fastest to read back.
   * 'fixed-size-list': the project's Arrow schema as is (observation: fixed_size_list<float, obsDim>).
   */
  vectorLayout?: 'columns' | 'fixed-size-list';
  /** Environment name for the metadata (default: the batches' env). */
  env?: string;
  /** Dimensions to use when the source emits no batch at all (else an empty source is an error). */
  dims?: TransitionDims;
  /** Extra key-value metadata. */
  metadata?: Record<string, string>;
}

export interface WriteSummary {
  path: string;
  rows: number;
  /** Size of the written file. */
  bytes: number;
  rowGroups: number;
}

export const DEFAULT_ROW_GROUP_SIZE = 65536;

const COMPRESSION_CODES: Record<Compression, keyof ParquetWasmModule['Compression']> = {
  snappy: 'SNAPPY',
  zstd: 'ZSTD',
  gzip: 'GZIP',
  lz4: 'LZ4_RAW',
  none: 'UNCOMPRESSED',
};

/**
 * Writes every TransitionBatch of the source to `path` and emits one WriteSummary when the source
 * completes (then completes). The file appears (by rename) only once it is complete.
 */
export function writeTransitions(path: string, options: WriteOptions = {}): OperatorFunction<TransitionBatch, WriteSummary> {
  return (source) =>
    new Observable<WriteSummary>((subscriber) => {
      const writer = new TransitionFileWriter(path, options);
      let finished = false;
      const fail = (e: unknown) => {
        finished = true;
        writer.abort();
        subscriber.error(e);
      };
      try {
        writer.open();
      } catch (e) {
        fail(e);
        return;
      }
      const sub = source.subscribe({
        next: (batch) => {
          if (finished) return;
          try {
            writer.write(batch);
          } catch (e) {
            fail(e);
          }
        },
        error: (e) => {
          if (!finished) fail(e);
        },
        complete: () => {
          if (finished) return;
          let summary: WriteSummary;
          try {
            summary = writer.finish();
          } catch (e) {
            fail(e);
            return;
          }
          finished = true;
          subscriber.next(summary);
          subscriber.complete();
        },
      });
      return () => {
        sub.unsubscribe();
        if (!finished) {
          finished = true;
          writer.abort();
        }
      };
    });
}

/** Promise form: writes the whole source to `path`. */
export function writeTransitionsFile(path: string, source: Observable<TransitionBatch>, options: WriteOptions = {}): Promise<WriteSummary> {
  return lastValueFrom(source.pipe(writeTransitions(path, options)));
}

/** The synchronous writer behind the operator (usable directly). */
export class TransitionFileWriter {
  readonly tmpPath: string;
  private fd: number | undefined;
  private readonly stitcher = new ParquetStitcher();
  private pending: TransitionBatch[] = [];
  private pendingRows = 0;
  private dims: TransitionDims | undefined;
  private optional: OptionalColumn[] = [];
  private readonly rowGroupSize: number;
  private readonly layout: 'columns' | 'fixed-size-list';
  private seenFirst = false;

  constructor(
    readonly path: string,
    private readonly options: WriteOptions = {},
  ) {
    this.tmpPath = tempPathFor(path);
    this.rowGroupSize = Math.max(1, Math.floor(options.rowGroupSize ?? DEFAULT_ROW_GROUP_SIZE));
    this.layout = options.vectorLayout ?? 'columns';
    if (options.compression && !(options.compression in COMPRESSION_CODES)) {
      throw new UserError(`${path}: unknown compression '${options.compression}'; use one of ${Object.keys(COMPRESSION_CODES).join(', ')}.`);
    }
    if (options.dims) this.dims = { ...options.dims, ...(options.env ? { env: options.env } : {}) };
  }

  open(): void {
    try {
      this.fd = openSync(this.tmpPath, 'w');
      this.put(MAGIC);
    } catch (e) {
      this.abort();
      throw ioError(this.path, this.tmpPath, e);
    }
  }

  write(batch: TransitionBatch): void {
    if (this.fd === undefined) throw new Error('TransitionFileWriter: not open');
    if (batch.length === 0) return;
    if (!this.seenFirst) {
      this.seenFirst = true;
      const env = this.options.env ?? this.dims?.env ?? batch.env;
      if (this.dims && (this.dims.obsDim !== batch.obsDim || this.dims.actDim !== batch.actDim)) {
        throw new UserError(`${this.path}: batches have obsDim ${batch.obsDim}, actDim ${batch.actDim} but the writer was given obsDim ${this.dims.obsDim}, actDim ${this.dims.actDim}.`);
      }
      this.dims = env ? { obsDim: batch.obsDim, actDim: batch.actDim, env } : { obsDim: batch.obsDim, actDim: batch.actDim };
      this.optional = batch.optionalColumns;
    } else {
      const d = this.dims!;
      if (batch.obsDim !== d.obsDim || batch.actDim !== d.actDim) {
        throw new UserError(`${this.path}: a batch has obsDim ${batch.obsDim}, actDim ${batch.actDim} but earlier batches had ${d.obsDim}, ${d.actDim}; one file holds one shape of transitions.`);
      }
      const opt = batch.optionalColumns;
      if (opt.length !== this.optional.length || opt.some((c, i) => c !== this.optional[i])) {
        throw new UserError(`${this.path}: a batch has optional columns [${opt.join(', ')}] but earlier batches had [${this.optional.join(', ')}]; all batches of one file need the same columns.`);
      }
    }
    this.pending.push(batch);
    this.pendingRows += batch.length;
    while (this.pendingRows >= this.rowGroupSize) this.flush(this.rowGroupSize);
  }

  /** Writes the remaining rows and the footer, then renames the temp file into place. */
  finish(): WriteSummary {
    if (this.fd === undefined) throw new Error('TransitionFileWriter: not open');
    try {
      if (this.pendingRows > 0) this.flush(this.pendingRows);
      let emptyFile: Uint8Array | undefined;
      if (this.stitcher.numRowGroups === 0) {
        if (!this.dims) {
          throw new UserError(`${this.path}: no transitions to write (the input was empty) and no dims were given, so the file's schema is unknown; nothing was written.`);
        }
        emptyFile = this.encode(TransitionBatch.allocate(this.dims, 0, this.optional));
      }
      this.put(this.stitcher.finish(emptyFile));
      fsyncSync(this.fd);
      closeSync(this.fd);
      this.fd = undefined;
      renameSync(this.tmpPath, this.path);
    } catch (e) {
      this.abort();
      throw e instanceof UserError ? e : ioError(this.path, this.tmpPath, e);
    }
    return { path: this.path, rows: this.stitcher.numRows, bytes: statSync(this.path).size, rowGroups: this.stitcher.numRowGroups };
  }

  /** Closes and removes the temp file (idempotent). */
  abort(): void {
    if (this.fd !== undefined) {
      try {
        closeSync(this.fd);
      } catch {
        /* already closed */
      }
      this.fd = undefined;
    }
    try {
      unlinkSync(this.tmpPath);
    } catch {
      /* not there */
    }
    this.pending = [];
    this.pendingRows = 0;
  }

  private put(bytes: Uint8Array): void {
    let off = 0;
    while (off < bytes.length) off += writeSync(this.fd!, bytes, off, bytes.length - off);
  }

  /** Takes the first n pending rows as one row group. */
  private flush(n: number): void {
    const parts: TransitionBatch[] = [];
    let need = n;
    while (need > 0) {
      const b = this.pending[0]!;
      if (b.length <= need) {
        parts.push(b);
        this.pending.shift();
        need -= b.length;
      } else {
        parts.push(b.slice(0, need));
        this.pending[0] = b.slice(need);
        need = 0;
      }
    }
    this.pendingRows -= n;
    let bytes: Uint8Array;
    try {
      bytes = this.encode(parts);
    } catch (e) {
      throw new Error(`${this.path}: encoding a row group failed: ${errText(e)}`, { cause: e });
    }
    try {
      this.put(this.stitcher.append(bytes));
    } catch (e) {
      throw ioError(this.path, this.tmpPath, e);
    }
  }

  /** One complete small Parquet file holding the given rows. */
  private encode(parts: TransitionBatch | TransitionBatch[]): Uint8Array {
    const list = Array.isArray(parts) ? parts : [parts];
    const dims = this.dims!;
    const rb = this.layout === 'columns' ? splitRecordBatch(list, dims, this.optional) : listRecordBatch(list, dims);
    const ipc = tableToIPC(new Table(unshareBuffers(rb)), 'stream');
    const meta = new Map<string, string>([
      ['mopo.schema', SCHEMA_VERSION],
      ['mopo.layout', this.layout],
      ['obsDim', String(dims.obsDim)],
      ['actDim', String(dims.actDim)],
    ]);
    if (dims.env) meta.set('env', dims.env);
    for (const [k, v] of Object.entries(this.options.metadata ?? {})) meta.set(k, v);
    return withWasm((pw) => {
      const props = new pw.WriterPropertiesBuilder()
        .setCompression(pw.Compression[COMPRESSION_CODES[this.options.compression ?? 'snappy']])
        .setDictionaryEnabled(false)
        .setStatisticsEnabled(pw.EnabledStatistics.Chunk)
        .setMaxRowGroupSize(Math.max(1, rb.numRows))
        .setKeyValueMetadata(meta)
        .build();
      return pw.writeParquet(pw.Table.fromIPCStream(ipc), props);
    });
  }
}

function ioError(path: string, tmp: string, e: unknown): Error {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return new UserError(`${path}: cannot create ${tmp}: the directory does not exist. Create it first or choose another output path.`);
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return new UserError(`${path}: cannot write ${tmp}: permission denied. Choose a writable output directory.`);
  if (code === 'ENOSPC' || code === 'EDQUOT') return new UserError(`${path}: the disk is full while writing ${tmp}; nothing was written. Free space or write elsewhere.`);
  if (code === 'EISDIR') return new UserError(`${path}: is a directory; give a file path for the output.`);
  return e instanceof Error ? e : new Error(String(e));
}

const f32Field = (name: string) => new Field(name, new Float32(), false);

/** Row-major n×dim values of several batches → dim column arrays (blocked transpose). */
function splitColumns(parts: readonly TransitionBatch[], pick: (b: TransitionBatch) => Float32Array, dim: number, n: number): Float32Array[] {
  const cols = Array.from({ length: dim }, () => new Float32Array(n));
  let row0 = 0;
  for (const b of parts) {
    const src = pick(b);
    const m = b.length;
    const BLOCK = 2048;
    for (let i0 = 0; i0 < m; i0 += BLOCK) {
      const i1 = Math.min(m, i0 + BLOCK);
      for (let d = 0; d < dim; d++) {
        const col = cols[d]!;
        for (let i = i0, j = i0 * dim + d; i < i1; i++, j += dim) col[row0 + i] = src[j]!;
      }
    }
    row0 += m;
  }
  return cols;
}

function joinScalars<T extends Float32Array | Int32Array | Uint8Array>(parts: readonly TransitionBatch[], pick: (b: TransitionBatch) => T, n: number, make: (n: number) => T): T {
  if (parts.length === 1) return pick(parts[0]!);
  const out = make(n);
  let row = 0;
  for (const b of parts) {
    out.set(pick(b), row);
    row += b.length;
  }
  return out;
}

function splitRecordBatch(parts: readonly TransitionBatch[], dims: TransitionDims, optional: readonly OptionalColumn[]): RecordBatch {
  const n = parts.reduce((s, b) => s + b.length, 0);
  const fields: Field[] = [];
  const children: Data[] = [];
  const addVec = (name: string, pick: (b: TransitionBatch) => Float32Array, dim: number) => {
    splitColumns(parts, pick, dim, n).forEach((col, d) => {
      fields.push(f32Field(`${name}_${d}`));
      children.push(makeData({ type: new Float32(), length: n, data: col }));
    });
  };
  const addF32 = (name: string, pick: (b: TransitionBatch) => Float32Array) => {
    fields.push(f32Field(name));
    children.push(makeData({ type: new Float32(), length: n, data: joinScalars(parts, pick, n, (k) => new Float32Array(k)) }));
  };
  const addBool = (name: string, pick: (b: TransitionBatch) => Uint8Array) => {
    fields.push(new Field(name, new Bool(), false));
    children.push(makeData({ type: new Bool(), length: n, data: packBits(joinScalars(parts, pick, n, (k) => new Uint8Array(k))) }));
  };
  const addI32 = (name: string, pick: (b: TransitionBatch) => Int32Array) => {
    fields.push(new Field(name, new Int32(), false));
    children.push(makeData({ type: new Int32(), length: n, data: joinScalars(parts, pick, n, (k) => new Int32Array(k)) }));
  };
  addVec(COLUMNS.observation, (b) => b.observation, dims.obsDim);
  addVec(COLUMNS.action, (b) => b.action, dims.actDim);
  addF32(COLUMNS.reward, (b) => b.reward);
  addVec(COLUMNS.nextObservation, (b) => b.nextObservation, dims.obsDim);
  addBool(COLUMNS.terminal, (b) => b.terminal);
  addBool(COLUMNS.timeout, (b) => b.timeout);
  for (const k of optional) {
    if (k === 'episode' || k === 'step') addI32(COLUMNS[k], (b) => b[k]!);
    else addF32(COLUMNS[k], (b) => b[k]!);
  }
  const schema = new Schema(fields);
  return new RecordBatch(schema, makeData({ type: new Struct(fields), length: n, nullCount: 0, children }));
}

function listRecordBatch(parts: readonly TransitionBatch[], dims: TransitionDims): RecordBatch {
  const b = TransitionBatch.concat(parts as TransitionBatch[]);
  const rb = b.toRecordBatch();
  return dims.env && !b.env ? new RecordBatch(new Schema(rb.schema.fields, new Map([...rb.schema.metadata, ['env', dims.env]])), rb.data) : rb;
}

/**
 * apache-arrow's IPC writer merges buffers that are views of the same ArrayBuffer when their byte
 * ranges touch or overlap (util/buffer.js collapseContiguousByteRanges), which corrupts the stream
 * when two columns share or overlap memory (e.g. reward and raw_reward being the same array).
 * Copy any buffer whose memory another buffer of the batch also uses.
 */
function unshareBuffers(rb: RecordBatch): RecordBatch {
  const seen = new Map<ArrayBufferLike, Array<[number, number]>>();
  const visit = (d: Data): Data => {
    const children = d.children.map(visit);
    let values = d.values as ArrayBufferView | undefined;
    if (values && values.byteLength > 0) {
      const lo = values.byteOffset;
      const hi = lo + values.byteLength;
      const spans = seen.get(values.buffer) ?? [];
      if (spans.some(([a, b]) => lo <= b && a <= hi)) {
        values = (values as Float32Array).slice();
      } else {
        spans.push([lo, hi]);
        seen.set(values.buffer, spans);
      }
    }
    if (values === d.values && children.every((c, i) => c === d.children[i])) return d;
    return makeData({ type: d.type, length: d.length, nullCount: d.nullCount, data: values, child: children[0], children } as never) as Data;
  };
  const data = visit(rb.data as Data) as Data<Struct>;
  return data === rb.data ? rb : new RecordBatch(rb.schema, data);
}
