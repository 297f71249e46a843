// The one transition schema every stage speaks (see DESIGN.md "What flows"), and TransitionBatch,
// the typed view of one Arrow RecordBatch of it. A batch's float columns are single contiguous
// Float32Arrays: a batch becomes a tensor, crosses a worker boundary, or lands in a shard as it is.
import {
  Bool,
  Field,
  FixedSizeList,
  Float32,
  Int32,
  RecordBatch,
  Schema,
  Struct,
  makeData,
  type Data,
  type DataType,
} from 'apache-arrow';

export const SCHEMA_VERSION = '1';

/** Column names, in schema order. Optional columns come last. */
export const COLUMNS = {
  observation: 'observation',
  action: 'action',
  reward: 'reward',
  nextObservation: 'next_observation',
  terminal: 'terminal',
  timeout: 'timeout',
  // synthetic (model rollout) rows only
  rawReward: 'raw_reward',
  penalty: 'penalty',
  // collected datasets: which episode a row belongs to and its step within it
  episode: 'episode',
  step: 'step',
} as const;

export type OptionalColumn = 'rawReward' | 'penalty' | 'episode' | 'step';
const OPTIONAL_ORDER: readonly OptionalColumn[] = ['rawReward', 'penalty', 'episode', 'step'];

export interface TransitionDims {
  obsDim: number;
  actDim: number;
  /** Environment name when known (e.g. "halfcheetah"); stored in the schema metadata. */
  env?: string;
}

export interface SchemaOptions extends TransitionDims {
  /** Which optional columns the schema carries. */
  optional?: readonly OptionalColumn[];
}

const vecType = (dim: number) => new FixedSizeList(dim, new Field('item', new Float32(), false));

/** The Arrow schema for transitions of the given dimensions. */
export function transitionSchema(opts: SchemaOptions): Schema {
  checkDims(opts);
  const fields: Field[] = [
    new Field(COLUMNS.observation, vecType(opts.obsDim), false),
    new Field(COLUMNS.action, vecType(opts.actDim), false),
    new Field(COLUMNS.reward, new Float32(), false),
    new Field(COLUMNS.nextObservation, vecType(opts.obsDim), false),
    new Field(COLUMNS.terminal, new Bool(), false),
    new Field(COLUMNS.timeout, new Bool(), false),
  ];
  const optional = new Set(opts.optional ?? []);
  for (const key of OPTIONAL_ORDER) {
    if (!optional.has(key)) continue;
    const type = key === 'episode' || key === 'step' ? new Int32() : new Float32();
    fields.push(new Field(COLUMNS[key], type, false));
  }
  const metadata = new Map<string, string>([
    ['mopo.schema', SCHEMA_VERSION],
    ['obsDim', String(opts.obsDim)],
    ['actDim', String(opts.actDim)],
  ]);
  if (opts.env) metadata.set('env', opts.env);
  return new Schema(fields, metadata);
}

/** Reads obsDim/actDim/env back from a transition schema (metadata first, field types second). */
export function dimsOfSchema(schema: Schema): TransitionDims {
  const obsField = schema.fields.find((f) => f.name === COLUMNS.observation);
  const actField = schema.fields.find((f) => f.name === COLUMNS.action);
  const meta = schema.metadata;
  const obsDim = Number(meta.get('obsDim') ?? (obsField?.type as FixedSizeList | undefined)?.listSize);
  const actDim = Number(meta.get('actDim') ?? (actField?.type as FixedSizeList | undefined)?.listSize);
  const env = meta.get('env');
  return env ? { obsDim, actDim, env } : { obsDim, actDim };
}

function checkDims(d: TransitionDims): void {
  for (const k of ['obsDim', 'actDim'] as const) {
    if (!Number.isInteger(d[k]) || d[k] <= 0) throw new RangeError(`${k} must be a positive integer, got ${d[k]}`);
  }
}

/** Plain typed arrays for every column of a batch. Flags are 0/1 bytes. */
export interface TransitionColumns {
  observation: Float32Array;
  action: Float32Array;
  reward: Float32Array;
  nextObservation: Float32Array;
  terminal: Uint8Array;
  timeout: Uint8Array;
  rawReward?: Float32Array;
  penalty?: Float32Array;
  episode?: Int32Array;
  step?: Int32Array;
}

/**
 * A batch of transitions: typed-array columns plus dimensions. Built from typed arrays (no per-row
 * objects) or from an Arrow RecordBatch (zero-copy views of its float columns).
 */
export class TransitionBatch {
  readonly length: number;
  readonly obsDim: number;
  readonly actDim: number;
  readonly env: string | undefined;
  readonly observation: Float32Array;
  readonly action: Float32Array;
  readonly reward: Float32Array;
  readonly nextObservation: Float32Array;
  readonly terminal: Uint8Array;
  readonly timeout: Uint8Array;
  readonly rawReward: Float32Array | undefined;
  readonly penalty: Float32Array | undefined;
  readonly episode: Int32Array | undefined;
  readonly step: Int32Array | undefined;

  constructor(dims: TransitionDims, cols: TransitionColumns) {
    checkDims(dims);
    const n = cols.reward.length;
    const expect = (name: string, arr: ArrayLike<number> | undefined, width: number) => {
      if (arr !== undefined && arr.length !== n * width) {
        throw new RangeError(`TransitionBatch: column ${name} has ${arr.length} values, expected ${n} rows × ${width} = ${n * width}`);
      }
    };
    expect(COLUMNS.observation, cols.observation, dims.obsDim);
    expect(COLUMNS.nextObservation, cols.nextObservation, dims.obsDim);
    expect(COLUMNS.action, cols.action, dims.actDim);
    expect(COLUMNS.terminal, cols.terminal, 1);
    expect(COLUMNS.timeout, cols.timeout, 1);
    expect(COLUMNS.rawReward, cols.rawReward, 1);
    expect(COLUMNS.penalty, cols.penalty, 1);
    expect(COLUMNS.episode, cols.episode, 1);
    expect(COLUMNS.step, cols.step, 1);
    this.length = n;
    this.obsDim = dims.obsDim;
    this.actDim = dims.actDim;
    this.env = dims.env;
    this.observation = cols.observation;
    this.action = cols.action;
    this.reward = cols.reward;
    this.nextObservation = cols.nextObservation;
    this.terminal = cols.terminal;
    this.timeout = cols.timeout;
    this.rawReward = cols.rawReward;
    this.penalty = cols.penalty;
    this.episode = cols.episode;
    this.step = cols.step;
  }

  /** Zero-filled batch of n rows, for writers that fill columns in place. */
  static allocate(dims: TransitionDims, n: number, optional: readonly OptionalColumn[] = []): TransitionBatch {
    const has = new Set(optional);
    const cols: TransitionColumns = {
      observation: new Float32Array(n * dims.obsDim),
      action: new Float32Array(n * dims.actDim),
      reward: new Float32Array(n),
      nextObservation: new Float32Array(n * dims.obsDim),
      terminal: new Uint8Array(n),
      timeout: new Uint8Array(n),
    };
    if (has.has('rawReward')) cols.rawReward = new Float32Array(n);
    if (has.has('penalty')) cols.penalty = new Float32Array(n);
    if (has.has('episode')) cols.episode = new Int32Array(n);
    if (has.has('step')) cols.step = new Int32Array(n);
    return new TransitionBatch(dims, cols);
  }

  get dims(): TransitionDims {
    return this.env ? { obsDim: this.obsDim, actDim: this.actDim, env: this.env } : { obsDim: this.obsDim, actDim: this.actDim };
  }

  /** Optional columns this batch carries. */
  get optionalColumns(): OptionalColumn[] {
    return OPTIONAL_ORDER.filter((k) => this[k] !== undefined);
  }

  get columns(): TransitionColumns {
    return this.columnsWith(this.optionalColumns);
  }

  /** The required columns and the optional ones named in `optional` (views, no copy). */
  columnsWith(optional: readonly OptionalColumn[]): TransitionColumns {
    const c: TransitionColumns = {
      observation: this.observation,
      action: this.action,
      reward: this.reward,
      nextObservation: this.nextObservation,
      terminal: this.terminal,
      timeout: this.timeout,
    };
    for (const k of optional) (c as unknown as Record<string, unknown>)[k] = this[k];
    return c;
  }

  get schema(): Schema {
    return transitionSchema({ ...this.dims, optional: this.optionalColumns });
  }

  /** Rows [start, end) as views (no copy). */
  slice(start: number, end = this.length): TransitionBatch {
    start = Math.max(0, Math.min(start, this.length));
    end = Math.max(start, Math.min(end, this.length));
    const o = this.obsDim;
    const a = this.actDim;
    const cols: TransitionColumns = {
      observation: this.observation.subarray(start * o, end * o),
      action: this.action.subarray(start * a, end * a),
      reward: this.reward.subarray(start, end),
      nextObservation: this.nextObservation.subarray(start * o, end * o),
      terminal: this.terminal.subarray(start, end),
      timeout: this.timeout.subarray(start, end),
    };
    if (this.rawReward) cols.rawReward = this.rawReward.subarray(start, end);
    if (this.penalty) cols.penalty = this.penalty.subarray(start, end);
    if (this.episode) cols.episode = this.episode.subarray(start, end);
    if (this.step) cols.step = this.step.subarray(start, end);
    return new TransitionBatch(this.dims, cols);
  }

  /** Concatenates batches of the same dims and columns into one (copies once). */
  static concat(batches: readonly TransitionBatch[]): TransitionBatch {
    if (batches.length === 0) throw new RangeError('TransitionBatch.concat: no batches');
    const first = batches[0]!;
    if (batches.length === 1) return first;
    const n = batches.reduce((s, b) => s + b.length, 0);
    const out = TransitionBatch.allocate(first.dims, n, first.optionalColumns);
    let row = 0;
    for (const b of batches) {
      if (b.obsDim !== first.obsDim || b.actDim !== first.actDim) {
        throw new RangeError(`TransitionBatch.concat: dims differ (${b.obsDim}/${b.actDim} vs ${first.obsDim}/${first.actDim})`);
      }
      out.observation.set(b.observation, row * first.obsDim);
      out.action.set(b.action, row * first.actDim);
      out.reward.set(b.reward, row);
      out.nextObservation.set(b.nextObservation, row * first.obsDim);
      out.terminal.set(b.terminal, row);
      out.timeout.set(b.timeout, row);
      for (const k of first.optionalColumns) {
        const src = b[k];
        if (!src) throw new RangeError(`TransitionBatch.concat: a batch lacks column ${COLUMNS[k]}`);
        (out[k] as Float32Array | Int32Array).set(src as Float32Array & Int32Array, row);
      }
      row += b.length;
    }
    return out;
  }

  /** The batch as an Arrow RecordBatch; float and int columns are shared, not copied. */
  toRecordBatch(): RecordBatch {
    const schema = this.schema;
    const n = this.length;
    const children: Data[] = schema.fields.map((f) => {
      switch (f.name) {
        case COLUMNS.observation:
          return vecData(f.type as FixedSizeList, this.observation, n);
        case COLUMNS.nextObservation:
          return vecData(f.type as FixedSizeList, this.nextObservation, n);
        case COLUMNS.action:
          return vecData(f.type as FixedSizeList, this.action, n);
        case COLUMNS.reward:
          return makeData({ type: new Float32(), length: n, data: this.reward });
        case COLUMNS.terminal:
          return makeData({ type: new Bool(), length: n, data: packBits(this.terminal) });
        case COLUMNS.timeout:
          return makeData({ type: new Bool(), length: n, data: packBits(this.timeout) });
        case COLUMNS.rawReward:
          return makeData({ type: new Float32(), length: n, data: this.rawReward! });
        case COLUMNS.penalty:
          return makeData({ type: new Float32(), length: n, data: this.penalty! });
        case COLUMNS.episode:
          return makeData({ type: new Int32(), length: n, data: this.episode! });
        case COLUMNS.step:
          return makeData({ type: new Int32(), length: n, data: this.step! });
        default:
          throw new Error(`unknown transition column ${f.name}`);
      }
    });
    const struct = makeData({ type: new Struct(schema.fields), length: n, nullCount: 0, children });
    return new RecordBatch(schema, struct);
  }

  /**
   * Views a RecordBatch of the transition schema as a TransitionBatch. Float and int columns are
   * zero-copy views of the Arrow buffers; the two Bool columns are unpacked to bytes.
   */
  static fromRecordBatch(rb: RecordBatch, envFallback?: string): TransitionBatch {
    const dims = dimsOfSchema(rb.schema);
    if (!dims.env && envFallback) dims.env = envFallback;
    const n = rb.numRows;
    const child = (name: string): Data => {
      const idx = rb.schema.fields.findIndex((f) => f.name === name);
      if (idx < 0) throw new RangeError(`record batch has no column ${name}`);
      return rb.data.children[idx] as Data;
    };
    const has = (name: string) => rb.schema.fields.some((f) => f.name === name);
    const cols: TransitionColumns = {
      observation: vecValues(child(COLUMNS.observation), dims.obsDim),
      action: vecValues(child(COLUMNS.action), dims.actDim),
      reward: floatValues(child(COLUMNS.reward)),
      nextObservation: vecValues(child(COLUMNS.nextObservation), dims.obsDim),
      terminal: unpackBits(child(COLUMNS.terminal)),
      timeout: unpackBits(child(COLUMNS.timeout)),
    };
    if (has(COLUMNS.rawReward)) cols.rawReward = floatValues(child(COLUMNS.rawReward));
    if (has(COLUMNS.penalty)) cols.penalty = floatValues(child(COLUMNS.penalty));
    if (has(COLUMNS.episode)) cols.episode = intValues(child(COLUMNS.episode));
    if (has(COLUMNS.step)) cols.step = intValues(child(COLUMNS.step));
    if (cols.reward.length !== n) throw new RangeError(`record batch reward column has ${cols.reward.length} rows, expected ${n}`);
    return new TransitionBatch(dims, cols);
  }
}

function vecData(type: FixedSizeList, values: Float32Array, n: number): Data {
  const child = makeData({ type: new Float32(), length: n * type.listSize, data: values });
  return makeData({ type, length: n, nullCount: 0, child });
}

function vecValues(d: Data, dim: number): Float32Array {
  // arrow-js slices value buffers when it slices Data (only bitmaps keep using the offset), and
  // slices a FixedSizeList's child with it, so values start at index 0.
  const inner = d.children[0] as Data<DataType> | undefined;
  if (!inner || !(inner.values instanceof Float32Array)) throw new RangeError('expected FixedSizeList<Float32>');
  return (inner.values as Float32Array).subarray(0, d.length * dim);
}

function floatValues(d: Data): Float32Array {
  if (!(d.values instanceof Float32Array)) throw new RangeError('expected Float32 column');
  return (d.values as Float32Array).subarray(0, d.length);
}

function intValues(d: Data): Int32Array {
  if (!(d.values instanceof Int32Array)) throw new RangeError('expected Int32 column');
  return (d.values as Int32Array).subarray(0, d.length);
}

/** 0/1 bytes → Arrow's LSB-first bitmap. */
export function packBits(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array((bytes.length + 7) >> 3);
  for (let i = 0; i < bytes.length; i++) if (bytes[i]) out[i >> 3]! |= 1 << (i & 7);
  return out;
}

/** Arrow Bool column → 0/1 bytes. */
export function unpackBits(d: Data): Uint8Array {
  const bits = d.values as Uint8Array;
  const out = new Uint8Array(d.length);
  const off = d.offset;
  for (let i = 0; i < d.length; i++) {
    const j = i + off;
    out[i] = (bits[j >> 3]! >> (j & 7)) & 1;
  }
  return out;
}
