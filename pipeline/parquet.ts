// Low-level Parquet plumbing shared by operators/readTransitions.ts and operators/writeTransitions.ts.
//
// Decoding and encoding is done by arrow-rs (the `parquet-wasm` package), but only through its
// synchronous whole-buffer entry points (`readParquet`, `readSchema`, `writeParquet`). Streaming is
// ours: we parse the Parquet footer (Thrift compact protocol, below), read one row group's column
// chunks from disk with plain fs reads, and hand arrow-rs a small self-contained "row-group file"
// (magic + those chunks + a footer that lists only that row group, offsets rebased). Writing is the
// mirror image: arrow-rs writes each row group as a complete small file; we append its column
// chunks to the output and write one combined footer at the end. Why not parquet-wasm's own
// streaming (`ParquetFile.fromFile(blob).stream()`, `transformParquetStream`)? Measured, see
// docs/parquet.md: reading through a Node Blob costs more than the decode itself, the async API has
// an offset/limit bug across row groups, and an arrow-rs panic inside its async executor surfaces
// as an uncaught exception that kills the process, whereas in the synchronous calls it is an
// ordinary catchable `WebAssembly.RuntimeError` after which we load a fresh wasm instance.
import { createRequire } from 'node:module';
import { open, type FileHandle } from 'node:fs/promises';
import { tableFromIPC, type RecordBatch, type Schema } from 'apache-arrow';
import type * as ParquetWasm from 'parquet-wasm';
import { UserError } from './errors.js';

// ---------------------------------------------------------------------------------------------
// parquet-wasm loading (a trapped instance is replaced by a fresh one)

export type ParquetWasmModule = typeof ParquetWasm;

const requireCjs = createRequire(import.meta.url);
let wasmModulePath: string | undefined;
let wasmModule: ParquetWasmModule | undefined;

/** The parquet-wasm (arrow-rs) module, node build, loaded synchronously on first use. */
export function parquetWasm(): ParquetWasmModule {
  if (!wasmModule) {
    wasmModulePath ??= requireCjs.resolve('parquet-wasm');
    wasmModule = requireCjs(wasmModulePath) as ParquetWasmModule;
  }
  return wasmModule;
}

/**
 * Drops the current wasm instance so the next parquetWasm() call instantiates a new one. Needed
 * after a trap (a Rust panic inside arrow-rs): the old instance's heap may be inconsistent.
 */
export function resetParquetWasm(): void {
  if (wasmModulePath) delete requireCjs.cache[wasmModulePath];
  wasmModule = undefined;
}

export function isWasmTrap(e: unknown): boolean {
  return e instanceof WebAssembly.RuntimeError;
}

/** Runs fn against the wasm module; a trap resets the instance before the error propagates. */
export function withWasm<T>(fn: (pw: ParquetWasmModule) => T): T {
  try {
    return fn(parquetWasm());
  } catch (e) {
    if (isWasmTrap(e)) resetParquetWasm();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Thrift compact protocol: a generic, lossless tree codec (enough to edit Parquet footers)

export const CT = {
  STOP: 0,
  TRUE: 1,
  FALSE: 2,
  BYTE: 3,
  I16: 4,
  I32: 5,
  I64: 6,
  DOUBLE: 7,
  BINARY: 8,
  LIST: 9,
  SET: 10,
  MAP: 11,
  STRUCT: 12,
} as const;

export interface TList {
  kind: 'list';
  elemType: number;
  set: boolean;
  items: TValue[];
}
export interface TMap {
  kind: 'map';
  keyType: number;
  valueType: number;
  entries: Array<[TValue, TValue]>;
}
export interface TDouble {
  kind: 'double';
  bytes: Uint8Array;
}
/** Integers: BYTE/I16/I32 as number, I64 as bigint; booleans inside lists keep their raw byte. */
export type TValue = boolean | number | bigint | Uint8Array | TStruct | TList | TMap | TDouble;

export interface TField {
  id: number;
  type: number;
  value: TValue;
}

export class TStruct {
  fields: TField[];
  constructor(fields: TField[] = []) {
    this.fields = fields;
  }
  get(id: number): TValue | undefined {
    return this.fields.find((f) => f.id === id)?.value;
  }
  set(id: number, type: number, value: TValue): this {
    const f = this.fields.find((x) => x.id === id);
    if (f) {
      f.type = type;
      f.value = value;
    } else {
      this.fields.push({ id, type, value });
      this.fields.sort((a, b) => a.id - b.id);
    }
    return this;
  }
  delete(id: number): this {
    this.fields = this.fields.filter((f) => f.id !== id);
    return this;
  }
  clone(): TStruct {
    return new TStruct(this.fields.map((f) => ({ id: f.id, type: f.type, value: cloneValue(f.value) })));
  }
  /** A copy whose field list is new but whose values are shared (for replacing whole fields). */
  shallow(): TStruct {
    return new TStruct(this.fields.map((f) => ({ ...f })));
  }
  /** Field accessors with the Parquet-typical shapes. */
  int(id: number): number | undefined {
    const v = this.get(id);
    if (typeof v === 'bigint') return Number(v);
    return typeof v === 'number' ? v : undefined;
  }
  str(id: number): string | undefined {
    const v = this.get(id);
    return v instanceof Uint8Array ? utf8.decode(v) : undefined;
  }
  struct(id: number): TStruct | undefined {
    const v = this.get(id);
    return v instanceof TStruct ? v : undefined;
  }
  list(id: number): TValue[] | undefined {
    const v = this.get(id);
    return v && typeof v === 'object' && 'kind' in v && v.kind === 'list' ? v.items : undefined;
  }
}

function cloneValue(v: TValue): TValue {
  if (v instanceof TStruct) return v.clone();
  if (v instanceof Uint8Array) return v.slice();
  if (typeof v === 'object') {
    if (v.kind === 'list') return { ...v, items: v.items.map(cloneValue) };
    if (v.kind === 'map') return { ...v, entries: v.entries.map(([k, x]) => [cloneValue(k), cloneValue(x)] as [TValue, TValue]) };
    return { kind: 'double', bytes: v.bytes.slice() };
  }
  return v;
}

const utf8 = new TextDecoder('utf-8');
const utf8enc = new TextEncoder();

export class ThriftError extends Error {}

class ThriftReader {
  pos: number;
  private depth = 0;
  constructor(
    private readonly buf: Uint8Array,
    start = 0,
  ) {
    this.pos = start;
  }
  private byte(): number {
    if (this.pos >= this.buf.length) throw new ThriftError('unexpected end of Thrift data');
    return this.buf[this.pos++]!;
  }
  private uvarint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.byte();
      result += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return result;
      mul *= 128;
    }
    throw new ThriftError('varint too long');
  }
  private uvarint64(): bigint {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      const b = this.byte();
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
    throw new ThriftError('varint too long');
  }
  private zigzag(): number {
    const n = this.uvarint();
    return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
  }
  private zigzag64(): bigint {
    const n = this.uvarint64();
    return (n >> 1n) ^ -(n & 1n);
  }
  private bytes(n: number): Uint8Array {
    if (n < 0 || this.pos + n > this.buf.length) throw new ThriftError(`Thrift binary field of ${n} bytes runs past the end`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  private size(): number {
    const n = this.uvarint();
    if (n > this.buf.length - this.pos) throw new ThriftError(`Thrift container of ${n} elements is larger than the data`);
    return n;
  }

  value(type: number, inList: boolean): TValue {
    switch (type) {
      case CT.TRUE:
      case CT.FALSE:
        return inList ? this.byte() : type === CT.TRUE;
      case CT.BYTE: {
        const b = this.byte();
        return b > 127 ? b - 256 : b;
      }
      case CT.I16:
      case CT.I32:
        return this.zigzag();
      case CT.I64:
        return this.zigzag64();
      case CT.DOUBLE:
        return { kind: 'double', bytes: this.bytes(8).slice() };
      case CT.BINARY:
        return this.bytes(this.size()).slice();
      case CT.LIST:
      case CT.SET: {
        const h = this.byte();
        let n = h >> 4;
        if (n === 15) n = this.size();
        const elemType = h & 0x0f;
        const items: TValue[] = [];
        this.enter();
        for (let i = 0; i < n; i++) items.push(this.value(elemType, true));
        this.depth--;
        return { kind: 'list', elemType, set: type === CT.SET, items };
      }
      case CT.MAP: {
        const n = this.size();
        if (n === 0) return { kind: 'map', keyType: 0, valueType: 0, entries: [] };
        const kv = this.byte();
        const keyType = kv >> 4;
        const valueType = kv & 0x0f;
        const entries: Array<[TValue, TValue]> = [];
        this.enter();
        for (let i = 0; i < n; i++) entries.push([this.value(keyType, true), this.value(valueType, true)]);
        this.depth--;
        return { kind: 'map', keyType, valueType, entries };
      }
      case CT.STRUCT:
        return this.struct();
      default:
        throw new ThriftError(`unknown Thrift type ${type}`);
    }
  }
  private enter(): void {
    if (++this.depth > 64) throw new ThriftError('Thrift data nested too deeply');
  }
  struct(): TStruct {
    this.enter();
    const fields: TField[] = [];
    let last = 0;
    for (;;) {
      const h = this.byte();
      if (h === CT.STOP) break;
      const type = h & 0x0f;
      const delta = h >> 4;
      const id = delta === 0 ? this.zigzag() : last + delta;
      last = id;
      fields.push({ id, type, value: this.value(type, false) });
    }
    this.depth--;
    return new TStruct(fields);
  }
}

class ThriftWriter {
  private buf = new Uint8Array(1024);
  private len = 0;
  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
  private byte(b: number): void {
    this.ensure(1);
    this.buf[this.len++] = b & 0xff;
  }
  private uvarint(n: number): void {
    while (n >= 128) {
      this.byte((n % 128) | 0x80);
      n = Math.floor(n / 128);
    }
    this.byte(n);
  }
  private uvarint64(n: bigint): void {
    while (n >= 128n) {
      this.byte(Number(n & 0x7fn) | 0x80);
      n >>= 7n;
    }
    this.byte(Number(n));
  }
  private zigzag(n: number): void {
    this.uvarint(n >= 0 ? n * 2 : -n * 2 - 1);
  }
  private zigzag64(n: bigint): void {
    this.uvarint64(n >= 0n ? n << 1n : (-n << 1n) - 1n);
  }
  private raw(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  value(type: number, v: TValue, inList: boolean): void {
    switch (type) {
      case CT.TRUE:
      case CT.FALSE:
        if (inList) this.byte(typeof v === 'number' ? v : v ? 1 : 2);
        return; // in a struct the value lives in the field header
      case CT.BYTE:
        this.byte(Number(v));
        return;
      case CT.I16:
      case CT.I32:
        this.zigzag(Number(v));
        return;
      case CT.I64:
        this.zigzag64(BigInt(v as number | bigint));
        return;
      case CT.DOUBLE:
        this.raw((v as TDouble).bytes);
        return;
      case CT.BINARY: {
        const b = v as Uint8Array;
        this.uvarint(b.length);
        this.raw(b);
        return;
      }
      case CT.LIST:
      case CT.SET: {
        const l = v as TList;
        if (l.items.length < 15) this.byte((l.items.length << 4) | l.elemType);
        else {
          this.byte(0xf0 | l.elemType);
          this.uvarint(l.items.length);
        }
        for (const x of l.items) this.value(l.elemType, x, true);
        return;
      }
      case CT.MAP: {
        const m = v as TMap;
        this.uvarint(m.entries.length);
        if (m.entries.length === 0) return;
        this.byte((m.keyType << 4) | m.valueType);
        for (const [k, x] of m.entries) {
          this.value(m.keyType, k, true);
          this.value(m.valueType, x, true);
        }
        return;
      }
      case CT.STRUCT:
        this.struct(v as TStruct);
        return;
      default:
        throw new ThriftError(`unknown Thrift type ${type}`);
    }
  }
  struct(s: TStruct): void {
    let last = 0;
    for (const f of s.fields) {
      let type = f.type;
      if (type === CT.TRUE || type === CT.FALSE) type = f.value ? CT.TRUE : CT.FALSE;
      const delta = f.id - last;
      if (delta > 0 && delta <= 15) this.byte((delta << 4) | type);
      else {
        this.byte(type);
        this.zigzag(f.id);
      }
      last = f.id;
      this.value(type, f.value, false);
    }
    this.byte(CT.STOP);
  }
  bytes(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

export function decodeThriftStruct(buf: Uint8Array, start = 0): { value: TStruct; end: number } {
  const r = new ThriftReader(buf, start);
  const value = r.struct();
  return { value, end: r.pos };
}

export function encodeThriftStruct(s: TStruct): Uint8Array {
  const w = new ThriftWriter();
  w.struct(s);
  return w.bytes();
}

// ---------------------------------------------------------------------------------------------
// Parquet footer model

export const MAGIC = new Uint8Array([0x50, 0x41, 0x52, 0x31]); // "PAR1"
const MAGIC_ENCRYPTED = new Uint8Array([0x50, 0x41, 0x52, 0x45]); // "PARE"

export const CODEC_NAMES = ['UNCOMPRESSED', 'SNAPPY', 'GZIP', 'LZO', 'BROTLI', 'LZ4', 'ZSTD', 'LZ4_RAW'];
export const ENCODING_NAMES: Record<number, string> = {
  0: 'PLAIN',
  2: 'PLAIN_DICTIONARY',
  3: 'RLE',
  4: 'BIT_PACKED',
  5: 'DELTA_BINARY_PACKED',
  6: 'DELTA_LENGTH_BYTE_ARRAY',
  7: 'DELTA_BYTE_ARRAY',
  8: 'RLE_DICTIONARY',
  9: 'BYTE_STREAM_SPLIT',
};
export const PHYSICAL_TYPE_NAMES = ['BOOLEAN', 'INT32', 'INT64', 'INT96', 'FLOAT', 'DOUBLE', 'BYTE_ARRAY', 'FIXED_LEN_BYTE_ARRAY'];

// Thrift field ids (parquet.thrift)
const FMD = { version: 1, schema: 2, numRows: 3, rowGroups: 4, keyValue: 5, createdBy: 6 } as const;
const RG = { columns: 1, totalByteSize: 2, numRows: 3, sortingColumns: 4, fileOffset: 5, totalCompressedSize: 6, ordinal: 7 } as const;
const CC = { filePath: 1, fileOffset: 2, metaData: 3, offsetIndexOffset: 4, offsetIndexLength: 5, columnIndexOffset: 6, columnIndexLength: 7, cryptoMetadata: 8 } as const;
const CMD = {
  type: 1,
  encodings: 2,
  path: 3,
  codec: 4,
  numValues: 5,
  uncompressed: 6,
  compressed: 7,
  dataPageOffset: 9,
  indexPageOffset: 10,
  dictionaryPageOffset: 11,
  bloomFilterOffset: 14,
  bloomFilterLength: 15,
} as const;

export interface ColumnChunkInfo {
  /** Leaf index in the schema (= position in the row group's column list). */
  leaf: number;
  path: string[];
  physicalType: string;
  codec: string;
  encodings: string[];
  numValues: number;
  /** Byte range of the chunk's pages in the file. */
  start: number;
  length: number;
  uncompressedBytes: number;
}

export interface RowGroupInfo {
  index: number;
  numRows: number;
  /** Index of the group's first row in the file. */
  firstRow: number;
  compressedBytes: number;
  uncompressedBytes: number;
  columns: ColumnChunkInfo[];
}

export interface SchemaNode {
  name: string;
  /** Parquet physical type for leaves. */
  physicalType?: string;
  repetition?: 'REQUIRED' | 'OPTIONAL' | 'REPEATED';
  children: SchemaNode[];
  /** Leaf indices below (or at) this node. */
  leaves: number[];
  /** This node's span [start, end) in the footer's flat SchemaElement list. */
  elements: [number, number];
}

function chunkRange(md: TStruct): { start: number; length: number } {
  const data = md.int(CMD.dataPageOffset) ?? 0;
  const dict = md.int(CMD.dictionaryPageOffset);
  const start = dict !== undefined && dict > 0 && dict < data ? dict : data;
  return { start, length: md.int(CMD.compressed) ?? 0 };
}

/** A decoded Parquet footer (FileMetaData) with the accessors this project needs. */
export class ParquetFooter {
  readonly rowGroups: RowGroupInfo[];
  readonly numRows: number;
  readonly keyValue: Map<string, string>;
  readonly createdBy: string | undefined;
  readonly schemaRoot: SchemaNode;
  readonly leafCount: number;

  constructor(readonly meta: TStruct) {
    this.numRows = count(meta.int(FMD.numRows), 'the row count');
    this.createdBy = meta.str(FMD.createdBy);
    this.keyValue = new Map();
    for (const kv of meta.list(FMD.keyValue) ?? []) {
      if (kv instanceof TStruct) this.keyValue.set(kv.str(1) ?? '', kv.str(2) ?? '');
    }
    const { root, leafCount, repeated } = buildSchemaTree(meta.list(FMD.schema) ?? []);
    this.schemaRoot = root;
    this.leafCount = leafCount;
    this.rowGroups = [];
    let firstRow = 0;
    (meta.list(FMD.rowGroups) ?? []).forEach((rgv, index) => {
      if (!(rgv instanceof TStruct)) throw new ThriftError(`row group ${index} is not a struct`);
      const rg = rgv;
      const numRows = count(rg.int(RG.numRows), `row group ${index}'s row count`);
      const columns: ColumnChunkInfo[] = [];
      const chunks = rg.list(RG.columns) ?? [];
      if (chunks.length !== leafCount) throw new ThriftError(`row group ${index} has ${chunks.length} column chunks but the schema has ${leafCount} columns`);
      chunks.forEach((ccv, leaf) => {
        const md = ccv instanceof TStruct ? ccv.struct(CC.metaData) : undefined;
        if (!md) throw new ThriftError(`row group ${index} column ${leaf} has no metadata (encrypted or external column chunks are not supported)`);
        const { start, length } = chunkRange(md);
        count(start, `row group ${index} column ${leaf}'s offset`);
        count(length, `row group ${index} column ${leaf}'s size`);
        // every row has one entry (value or null) in a column outside lists, at least one inside:
        // a row count the column chunks contradict would make a reader drop rows silently
        const values = count(md.int(CMD.numValues), `row group ${index} column ${leaf}'s value count`);
        if (md.int(CMD.numValues) !== undefined && (repeated[leaf] ? values < numRows : values !== numRows)) {
          const path = (md.list(CMD.path) ?? []).map((x) => (x instanceof Uint8Array ? utf8.decode(x) : '?')).join('.');
          throw new ThriftError(`row group ${index} says it has ${numRows} rows but its column ${path || leaf} holds ${values} values`);
        }
        columns.push({
          leaf,
          path: (md.list(CMD.path) ?? []).map((p) => utf8.decode(p as Uint8Array)),
          physicalType: PHYSICAL_TYPE_NAMES[md.int(CMD.type) ?? -1] ?? `type ${md.int(CMD.type)}`,
          codec: CODEC_NAMES[md.int(CMD.codec) ?? -1] ?? `codec ${md.int(CMD.codec)}`,
          encodings: (md.list(CMD.encodings) ?? []).map((e) => ENCODING_NAMES[e as number] ?? `encoding ${e}`),
          numValues: md.int(CMD.numValues) ?? 0,
          start,
          length,
          uncompressedBytes: md.int(CMD.uncompressed) ?? 0,
        });
      });
      this.rowGroups.push({
        index,
        numRows,
        firstRow,
        compressedBytes: columns.reduce((s, c) => s + c.length, 0),
        uncompressedBytes: rg.int(RG.totalByteSize) ?? 0,
        columns,
      });
      firstRow += numRows;
    });
    if (meta.int(FMD.numRows) !== undefined && firstRow !== this.numRows) throw new ThriftError(`the file says it has ${this.numRows} rows but its row groups hold ${firstRow}`);
  }

  /** Top-level field name → leaf indices. */
  get topLevel(): Map<string, number[]> {
    return new Map(this.schemaRoot.children.map((c) => [c.name, c.leaves]));
  }
}

/** A count or offset from the footer: a non-negative safe integer, else the footer is damaged. */
function count(v: number | undefined, what: string): number {
  if (v === undefined) return 0;
  if (!(Number.isSafeInteger(v) && v >= 0)) throw new ThriftError(`${what} is ${v}`);
  return v;
}

function buildSchemaTree(elements: TValue[]): { root: SchemaNode; leafCount: number; repeated: boolean[] } {
  let i = 0;
  let leaf = 0;
  /** Per leaf: inside a list (a REPEATED node on its path)? */
  const repeated: boolean[] = [];
  const REP = ['REQUIRED', 'OPTIONAL', 'REPEATED'] as const;
  const walk = (inList: boolean): SchemaNode => {
    const el = elements[i++];
    if (!(el instanceof TStruct)) throw new ThriftError('bad schema element');
    const nChildren = el.int(5) ?? 0;
    const node: SchemaNode = { name: el.str(4) ?? '', children: [], leaves: [], elements: [i - 1, i] };
    const rep = el.int(3);
    if (rep !== undefined) node.repetition = REP[rep];
    const below = inList || (i > 1 && node.repetition === 'REPEATED');
    if (nChildren === 0 && i > 1) {
      node.physicalType = PHYSICAL_TYPE_NAMES[el.int(1) ?? -1];
      repeated.push(below);
      node.leaves.push(leaf++);
      return node;
    }
    for (let k = 0; k < nChildren; k++) {
      if (i >= elements.length) throw new ThriftError('schema has fewer elements than its num_children say');
      const child = walk(below);
      node.children.push(child);
      node.leaves.push(...child.leaves);
    }
    node.elements[1] = i;
    return node;
  };
  if (elements.length === 0) throw new ThriftError('empty schema');
  const root = walk(false);
  return { root, leafCount: leaf, repeated };
}

/** Shifts every absolute file offset of a column chunk by delta; drops page-index and bloom references. */
function rebaseColumnChunk(cc: TStruct, delta: number): TStruct {
  const out = cc.shallow();
  const md = cc.struct(CC.metaData)!.shallow();
  out.set(CC.metaData, CT.STRUCT, md);
  for (const id of [CMD.dataPageOffset, CMD.indexPageOffset, CMD.dictionaryPageOffset]) {
    const v = md.get(id);
    if (typeof v === 'bigint' && v > 0n) md.set(id, CT.I64, v + BigInt(delta));
  }
  md.delete(CMD.bloomFilterOffset).delete(CMD.bloomFilterLength);
  const fo = out.get(CC.fileOffset);
  if (typeof fo === 'bigint' && fo > 0n) out.set(CC.fileOffset, CT.I64, fo + BigInt(delta));
  for (const id of [CC.offsetIndexOffset, CC.offsetIndexLength, CC.columnIndexOffset, CC.columnIndexLength]) out.delete(id);
  return out;
}

function footerBytes(meta: TStruct): Uint8Array {
  const body = encodeThriftStruct(meta);
  const out = new Uint8Array(body.length + 8);
  out.set(body, 0);
  new DataView(out.buffer).setUint32(body.length, body.length, true);
  out.set(MAGIC, body.length + 4);
  return out;
}

/** A complete Parquet file holding only the schema and metadata (no row groups): for readSchema(). */
export function schemaOnlyFile(footer: ParquetFooter, withArrowHint = true): Uint8Array {
  const meta = footer.meta.shallow();
  meta.set(FMD.numRows, CT.I64, 0n).set(FMD.rowGroups, CT.LIST, { kind: 'list', elemType: CT.STRUCT, set: false, items: [] });
  if (!withArrowHint) {
    const kv = (meta.list(FMD.keyValue) ?? []).filter((x) => !(x instanceof TStruct && x.str(1) === 'ARROW:schema'));
    meta.set(FMD.keyValue, CT.LIST, { kind: 'list', elemType: CT.STRUCT, set: false, items: kv });
  }
  const f = footerBytes(meta);
  const out = new Uint8Array(4 + f.length);
  out.set(MAGIC, 0);
  out.set(f, 4);
  return out;
}

export interface ByteRange {
  /** Position in the source file. */
  src: number;
  /** Position in the row-group file. */
  dst: number;
  length: number;
}

/**
 * Plans a self-contained Parquet file holding row group `g` of `footer`, restricted to the given
 * top-level columns: the schema and the row group list only those, and the embedded Arrow schema
 * ("ARROW:schema", a type hint that must match the columns) is left out, so arrow-rs derives the
 * Arrow types from the Parquet types (fixed-size lists then read as lists). arrow-rs decodes every
 * column of the file it is given, so dropping the others is what keeps them from being read.
 * Returns the buffer with the footer in place and the byte ranges to copy in from the source file.
 */
export function planRowGroupFile(footer: ParquetFooter, g: number, columns: readonly string[] | null): { buffer: Uint8Array; ranges: ByteRange[]; chunks: Array<{ column: ColumnChunkInfo; dst: number }> } {
  const rg = (footer.meta.list(FMD.rowGroups)![g] as TStruct).shallow();
  const ccs = rg.list(RG.columns)!;
  const info = footer.rowGroups[g]!;
  const byName = new Map(footer.schemaRoot.children.map((c) => [c.name, c]));
  const fields = (columns ?? [...byName.keys()]).map((c) => {
    const node = byName.get(c);
    if (!node) throw new Error(`no top-level column ${c}`);
    return node;
  });
  fields.sort((a, b) => a.elements[0] - b.elements[0]);
  const elements = footer.meta.list(FMD.schema)!;
  const root = (elements[0] as TStruct).clone().set(5, CT.I32, fields.length);
  const newElements: TValue[] = [root];
  const leaves: number[] = [];
  for (const f of fields) {
    newElements.push(...elements.slice(f.elements[0], f.elements[1]));
    leaves.push(...f.leaves);
  }
  const ranges: ByteRange[] = [];
  let pos = 4;
  const newCcs: TValue[] = [];
  const order = leaves.map((l) => info.columns[l]!);
  const dst = new Map<number, number>();
  for (const c of [...order].sort((a, b) => a.start - b.start)) {
    const last = ranges[ranges.length - 1];
    if (last && last.src + last.length === c.start && last.dst + last.length === pos) last.length += c.length;
    else ranges.push({ src: c.start, dst: pos, length: c.length });
    dst.set(c.leaf, pos);
    pos += c.length;
  }
  for (const c of order) newCcs.push(rebaseColumnChunk(ccs[c.leaf] as TStruct, dst.get(c.leaf)! - c.start));
  rg.set(RG.columns, CT.LIST, { kind: 'list', elemType: CT.STRUCT, set: false, items: newCcs });
  if (rg.get(RG.fileOffset) !== undefined) rg.set(RG.fileOffset, CT.I64, 4n);
  if (rg.get(RG.ordinal) !== undefined) rg.set(RG.ordinal, CT.I16, 0);
  rg.delete(RG.sortingColumns); // its column indices refer to the full schema
  const meta = footer.meta.shallow();
  meta
    .set(FMD.numRows, CT.I64, BigInt(info.numRows))
    .set(FMD.rowGroups, CT.LIST, { kind: 'list', elemType: CT.STRUCT, set: false, items: [rg] })
    .set(FMD.schema, CT.LIST, { kind: 'list', elemType: CT.STRUCT, set: false, items: newElements });
  const kv = (meta.list(FMD.keyValue) ?? []).filter((x) => !(x instanceof TStruct && x.str(1) === 'ARROW:schema'));
  meta.set(FMD.keyValue, CT.LIST, { kind: 'list', elemType: CT.STRUCT, set: false, items: kv });
  const orders = meta.list(7); // column_orders: one per leaf
  if (orders) meta.set(7, CT.LIST, { kind: 'list', elemType: CT.STRUCT, set: false, items: leaves.map((l) => orders[l]!).filter((x) => x !== undefined) });
  const f = footerBytes(meta);
  const buffer = new Uint8Array(pos + f.length);
  buffer.set(MAGIC, 0);
  buffer.set(f, pos);
  return { buffer, ranges, chunks: order.map((c) => ({ column: c, dst: dst.get(c.leaf)! })) };
}

/** How far each codec can expand data (format limits, rounded up); beyond PAGE_FLOOR a page's claim is checked against it. */
const CODEC_EXPANSION: Record<string, number> = { UNCOMPRESSED: 1, SNAPPY: 32, GZIP: 1100, LZ4: 256, LZ4_RAW: 256 };
const PAGE_FLOOR = 64 * 1024 * 1024;
/** Fewest bytes a plain-encoded value of each physical type takes. */
const VALUE_BYTES: Record<string, number> = { BOOLEAN: 1 / 8, INT32: 4, INT64: 8, INT96: 12, FLOAT: 4, DOUBLE: 8, BYTE_ARRAY: 4, FIXED_LEN_BYTE_ARRAY: 1 };

/**
 * Walks the page headers of a column chunk (in `buf` at `at`) before arrow-rs sees them: pages
 * must tile the chunk, the data pages' value counts must add up to the chunk's, and no page may
 * claim more uncompressed bytes than its codec can produce from its compressed bytes (above 64
 * MiB): arrow-rs allocates the claimed size up front, so one damaged header could otherwise make
 * it take gigabytes for a page of a few bytes. Returns what is wrong, or undefined.
 */
export function checkPages(buf: Uint8Array, at: number, c: ColumnChunkInfo): string | undefined {
  const end = at + c.length;
  const ratio = CODEC_EXPANSION[c.codec] ?? 4096;
  let pos = at;
  let values = 0;
  for (let page = 0; pos < end; page++) {
    let h: { value: TStruct; end: number };
    try {
      h = decodeThriftStruct(buf.subarray(0, end), pos);
    } catch (e) {
      return `the header of page ${page} (byte ${c.start + pos - at} of the file) cannot be decoded (${errText(e)})`;
    }
    const comp = h.value.int(3);
    const unc = h.value.int(2);
    if (comp === undefined || unc === undefined || !(Number.isSafeInteger(comp) && comp >= 0 && Number.isSafeInteger(unc) && unc >= 0)) {
      return `page ${page} has sizes ${comp} (compressed) and ${unc} (uncompressed)`;
    }
    if (h.end + comp > end) return `page ${page} (${comp} bytes) runs past the end of its column chunk`;
    if (unc > PAGE_FLOOR && unc > ratio * comp) return `page ${page} claims ${unc} bytes uncompressed from ${comp} bytes of ${c.codec}, more than that codec can produce`;
    const header = h.value.struct(5) ?? h.value.struct(8); // data page (v1 / v2)
    if (header) values += header.int(1) ?? 0;
    const dict = h.value.struct(7);
    const n = dict?.int(1) ?? 0;
    // a dictionary's values are stored plain: each takes at least its type's width
    if (n < 0 || n * (VALUE_BYTES[c.physicalType] ?? 1) > unc) return `its dictionary page claims ${n} values in ${unc} bytes`;
    pos = h.end + comp;
  }
  if (values !== c.numValues) return `its data pages hold ${values} values but the file's metadata says ${c.numValues}`;
  return undefined;
}

/**
 * Joins complete Parquet files (one row group or more each, same schema, as written by
 * parquet-wasm's writeParquet) into one file: their column chunks are appended, the footer lists
 * all row groups with rebased offsets. Page indexes and bloom filters of the parts are dropped.
 */
export class ParquetStitcher {
  private meta: TStruct | undefined;
  private readonly rowGroups: TStruct[] = [];
  private pos = 4;
  private rows = 0;

  /** Bytes written so far (magic + appended chunks). */
  get position(): number {
    return this.pos;
  }
  get numRows(): number {
    return this.rows;
  }
  get numRowGroups(): number {
    return this.rowGroups.length;
  }

  /** The bytes to append to the output for this part (a view into `part`). */
  append(part: Uint8Array): Uint8Array {
    const footer = readFooterFromBuffer(part);
    this.meta ??= footer.meta;
    let lo = Infinity;
    let hi = 4;
    for (const rg of footer.rowGroups) {
      for (const c of rg.columns) {
        lo = Math.min(lo, c.start);
        hi = Math.max(hi, c.start + c.length);
      }
    }
    if (lo === Infinity) return part.subarray(0, 0);
    const delta = this.pos - lo;
    (footer.meta.list(FMD.rowGroups) ?? []).forEach((rgv, i) => {
      const rg = (rgv as TStruct).shallow();
      const ccs = (rg.list(RG.columns) ?? []).map((cc) => rebaseColumnChunk(cc as TStruct, delta));
      rg.set(RG.columns, CT.LIST, { kind: 'list', elemType: CT.STRUCT, set: false, items: ccs });
      const fo = rg.get(RG.fileOffset);
      if (typeof fo === 'bigint') rg.set(RG.fileOffset, CT.I64, fo + BigInt(delta));
      if (rg.get(RG.ordinal) !== undefined) rg.set(RG.ordinal, CT.I16, this.rowGroups.length);
      this.rowGroups.push(rg);
      this.rows += footer.rowGroups[i]!.numRows;
    });
    this.pos += hi - lo;
    return part.subarray(lo, hi);
  }

  /** Footer bytes (metadata + length + magic) closing the file. */
  finish(emptyFileFallback?: Uint8Array): Uint8Array {
    let meta = this.meta;
    if (!meta) {
      if (!emptyFileFallback) throw new Error('ParquetStitcher.finish: nothing appended');
      meta = readFooterFromBuffer(emptyFileFallback).meta;
    }
    meta = meta.shallow();
    meta.set(FMD.numRows, CT.I64, BigInt(this.rows)).set(FMD.rowGroups, CT.LIST, { kind: 'list', elemType: CT.STRUCT, set: false, items: this.rowGroups });
    return footerBytes(meta);
  }
}

export function readFooterFromBuffer(buf: Uint8Array): ParquetFooter {
  if (buf.length < 12) throw new ThriftError('buffer too small for a Parquet file');
  const len = new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getUint32(buf.length - 8, true);
  const start = buf.length - 8 - len;
  if (start < 4) throw new ThriftError('footer length exceeds the data');
  return new ParquetFooter(decodeThriftStruct(buf.subarray(start, buf.length - 8)).value);
}

// ---------------------------------------------------------------------------------------------
// Reading a file on disk

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function describeStart(head: Uint8Array): string {
  const s = utf8.decode(head.subarray(0, 8));
  if (head[0] === 0x50 && head[1] === 0x4b) return ' It looks like a ZIP archive (e.g. a NumPy .npz): convert it to Parquet first.';
  if (head[0] === 0x89 && s.slice(1, 4) === 'HDF') return ' It looks like an HDF5 file (e.g. a D4RL .hdf5): convert it to Parquet first (pyarrow: pq.write_table).';
  if (s.startsWith('ARROW1')) return ' It is an Arrow IPC (Feather) file, not Parquet: write it with pyarrow.parquet.write_table instead.';
  if (head[0] === 0x1f && head[1] === 0x8b) return ' It is gzip-compressed: decompress it first.';
  if (head[0] === 0x93 && s.slice(1, 6) === 'NUMPY') return ' It is a NumPy .npy file: convert it to Parquet first.';
  if (head.every((b) => b === 0x09 || b === 0x0a || b === 0x0d || (b >= 0x20 && b < 0x7f))) return ' It looks like a text file (CSV/JSON?): convert it to Parquet first.';
  return '';
}

async function readFully(fh: FileHandle, dst: Uint8Array, position: number): Promise<void> {
  let off = 0;
  while (off < dst.length) {
    const { bytesRead } = await fh.read(dst, off, dst.length - off, position + off);
    if (bytesRead === 0) throw new Error(`unexpected end of file at byte ${position + off}`);
    off += bytesRead;
  }
}

export interface ReadRowGroupOptions {
  /** Top-level column names to decode (others are not read from disk). */
  columns: string[];
  /** Rows to skip at the start of the group and the most rows to return. */
  offset?: number;
  limit?: number;
  /** Rows per Arrow record batch. */
  batchSize?: number;
}

/** An open Parquet file: validated footer, Arrow schema, row-group reads through arrow-rs. */
export class ParquetSource {
  private constructor(
    readonly path: string,
    private fh: FileHandle | undefined,
    readonly size: number,
    readonly footer: ParquetFooter,
    readonly schema: Schema,
  ) {}

  /** Opens and validates a Parquet file; every user-caused failure is a UserError naming the file. */
  static async open(path: string): Promise<ParquetSource> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      throw openError(path, e);
    }
    try {
      const st = await fh.stat();
      if (st.isDirectory()) throw new UserError(`${path}: is a directory, not a Parquet file. Pass the path of a .parquet file.`);
      const size = st.size;
      const head = new Uint8Array(Math.min(size, 8));
      if (size > 0) await readFully(fh, head, 0);
      if (size < 12 && head.length >= 4 && sameBytes(head.subarray(0, 4), MAGIC)) {
        throw new UserError(`${path}: the Parquet file is truncated: it starts like Parquet but has only ${size} bytes and no footer. It was probably cut short while being copied, downloaded or written: copy or write it again.`);
      }
      if (size < 12 || !sameBytes(head.subarray(0, 4), MAGIC)) {
        if (size === 0) throw new UserError(`${path}: the file is empty (0 bytes), not a Parquet file. Re-create or re-download it.`);
        throw new UserError(`${path}: not a Parquet file (it does not start with the Parquet magic bytes "PAR1").${describeStart(head)}`);
      }
      const tail = new Uint8Array(8);
      await readFully(fh, tail, size - 8);
      if (sameBytes(tail.subarray(4), MAGIC_ENCRYPTED)) {
        throw new UserError(`${path}: the Parquet file is encrypted (footer magic "PARE"); encrypted Parquet is not supported. Write it without encryption.`);
      }
      if (!sameBytes(tail.subarray(4), MAGIC)) {
        throw new UserError(`${path}: the Parquet file is truncated or damaged: it starts like Parquet but does not end with the footer magic "PAR1" (${size} bytes). It was probably cut short while being copied, downloaded or written: copy or write it again.`);
      }
      const footerLen = new DataView(tail.buffer).getUint32(0, true);
      if (footerLen > size - 12) {
        throw new UserError(`${path}: the Parquet footer claims ${footerLen} bytes but the file has only ${size}: the file is truncated or damaged. Copy or write it again.`);
      }
      const fbuf = new Uint8Array(footerLen);
      await readFully(fh, fbuf, size - 8 - footerLen);
      let footer: ParquetFooter;
      try {
        footer = new ParquetFooter(decodeThriftStruct(fbuf).value);
      } catch (e) {
        throw new UserError(`${path}: the Parquet footer (file metadata, last ${footerLen + 8} bytes) cannot be decoded (${errText(e)}): the file is damaged. Copy or write it again.`);
      }
      for (const rg of footer.rowGroups) {
        for (const c of rg.columns) {
          if (c.start < 4 || c.start + c.length > size - 8 - footerLen) {
            throw new UserError(`${path}: row group ${rg.index}, column ${c.path.join('.')}: its data (bytes ${c.start}–${c.start + c.length}) lies outside the file's data section (${size} bytes): the file is truncated or damaged. Copy or write it again.`);
          }
        }
      }
      let schema: Schema;
      const arrowSchema = (hint: boolean) => tableFromIPC(withWasm((pw) => pw.readSchema(schemaOnlyFile(footer, hint)).intoIPCStream())).schema;
      try {
        schema = arrowSchema(true);
      } catch (e) {
        try {
          // an embedded Arrow schema (ARROW:schema) that arrow-rs cannot apply: type from Parquet alone
          schema = arrowSchema(false);
        } catch {
          throw new UserError(`${path}: the Parquet schema cannot be converted to Arrow (${errText(e)}). The file may be damaged or use a type this reader does not support.`);
        }
      }
      return new ParquetSource(path, fh, size, footer, schema);
    } catch (e) {
      await fh.close().catch(() => undefined);
      throw e;
    }
  }

  get numRows(): number {
    return this.footer.numRows;
  }
  get rowGroups(): RowGroupInfo[] {
    return this.footer.rowGroups;
  }

  /** Leaf indices for a set of top-level columns. */
  leavesOf(columns: readonly string[]): number[] {
    const top = this.footer.topLevel;
    const out: number[] = [];
    for (const c of columns) {
      const l = top.get(c);
      if (!l) throw new Error(`no top-level column ${c}`);
      out.push(...l);
    }
    return out.sort((a, b) => a - b);
  }

  /** The bytes of a self-contained Parquet file holding row group g (only the listed columns' data). */
  async rowGroupFile(g: number, columns: readonly string[]): Promise<Uint8Array> {
    if (!this.fh) throw new Error(`${this.path}: source is closed`);
    const { buffer, ranges, chunks } = planRowGroupFile(this.footer, g, columns);
    for (const r of ranges) await readFully(this.fh, buffer.subarray(r.dst, r.dst + r.length), r.src);
    for (const { column, dst } of chunks) {
      const bad = checkPages(buffer, dst, column);
      if (bad) {
        const rg = this.footer.rowGroups[g]!;
        throw new UserError(
          `${this.path}: row group ${g} (rows ${rg.firstRow}–${rg.firstRow + rg.numRows - 1}), column ${column.path.join('.')}: ${bad}. The file's data is corrupted (a damaged copy or an interrupted write). Copy or write the file again; to use the readable part, limit the rows read to before row ${rg.firstRow}.`,
        );
      }
    }
    return buffer;
  }

  /**
   * Decodes (part of) row group g into Arrow record batches. Decoding errors (corrupt pages, wasm
   * traps) become a UserError naming the row group and, after re-reading column by column, the
   * column that fails.
   */
  async readRowGroup(g: number, opts: ReadRowGroupOptions): Promise<RecordBatch[]> {
    const file = await this.rowGroupFile(g, opts.columns);
    const readerOpts = (columns: string[]) => ({
      columns,
      batchSize: Math.max(1, opts.batchSize ?? 65536),
      ...(opts.offset ? { offset: opts.offset } : {}),
      ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
    });
    const rg = this.footer.rowGroups[g]!;
    let batches: RecordBatch[];
    try {
      const ipc = withWasm((pw) => pw.readParquet(file, readerOpts(opts.columns)).intoIPCStream());
      batches = tableFromIPC(ipc).batches;
    } catch (e) {
      // Find the column(s) that fail on their own, for the message.
      // arrow-rs decodes every column of the file it is given, so each column gets its own file.
      const bad: string[] = [];
      for (const c of opts.columns) {
        try {
          const one = await this.rowGroupFile(g, [c]);
          withWasm((pw) => pw.readParquet(one, readerOpts([c])).free());
        } catch {
          bad.push(c);
        }
      }
      const where = `row group ${g} (rows ${rg.firstRow}–${rg.firstRow + rg.numRows - 1})`;
      const cols = bad.length ? `, column${bad.length > 1 ? 's' : ''} ${bad.join(', ')}` : '';
      const trap = isWasmTrap(e) ? ' (the decoder aborted)' : '';
      throw new UserError(
        `${this.path}: cannot decode ${where}${cols}: ${errText(e)}${trap}. The file's data is corrupted (a damaged copy or an interrupted write). Copy or write the file again; to use the readable part, limit the rows read to before row ${rg.firstRow}.`,
      );
    }
    // pages holding fewer rows than the footer says would otherwise go unnoticed
    const want = Math.min(opts.limit ?? Infinity, Math.max(0, rg.numRows - (opts.offset ?? 0)));
    const got = batches.reduce((s, b) => s + b.numRows, 0);
    if (got !== want) {
      throw new UserError(
        `${this.path}: row group ${g} (rows ${rg.firstRow}–${rg.firstRow + rg.numRows - 1}) decodes to ${got} rows where ${want} were expected: its pages and the file's metadata disagree. The file's data is corrupted (a damaged copy or an interrupted write). Copy or write the file again; to use the readable part, limit the rows read to before row ${rg.firstRow}.`,
      );
    }
    return batches;
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }
}

function openError(path: string, e: unknown): UserError {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return new UserError(`${path}: no such file. Check the path (relative paths start from ${process.cwd()}).`);
  if (code === 'EACCES' || code === 'EPERM') return new UserError(`${path}: permission denied. Make the file readable for this user.`);
  if (code === 'EISDIR') return new UserError(`${path}: is a directory, not a Parquet file. Pass the path of a .parquet file.`);
  return new UserError(`${path}: cannot open the file (${errText(e)}).`);
}

export function errText(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.replace(/\s+/g, ' ').trim().replace(/\.$/, '');
}

// ---------------------------------------------------------------------------------------------
// Small helpers for messages

/** Levenshtein distance (case-insensitive). */
export function editDistance(a: string, b: string): number {
  a = a.toLowerCase();
  b = b.toLowerCase();
  const prev = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

/** Names from `have` closest to any of `wanted` (distance ≤ max(2, 40% of the length)), best first. */
export function closestNames(wanted: readonly string[], have: readonly string[], limit = 3): string[] {
  const scored = have
    .map((h) => {
      const base = h.replace(/[_.]?\d+$/, '');
      let d = Infinity;
      let ok = false;
      for (const w of wanted) {
        const lw = w.toLowerCase();
        const lh = base.toLowerCase();
        // one name a prefix of the other ("obs" / "observations") counts as close
        const prefix = Math.min(lw.length, lh.length) >= 3 && (lh.startsWith(lw) || lw.startsWith(lh)) ? 1 : Infinity;
        const dw = Math.min(editDistance(w, h), editDistance(w, base), prefix);
        d = Math.min(d, dw);
        if (dw <= Math.max(2, Math.floor(0.4 * w.length))) ok = true;
      }
      return { h, d, ok };
    })
    .filter((x) => x.ok)
    .sort((a, b) => a.d - b.d);
  return scored.slice(0, limit).map((x) => x.h);
}

export function utf8Bytes(s: string): Uint8Array {
  return utf8enc.encode(s);
}
