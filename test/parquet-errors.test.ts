// Every way a user's file can be wrong ends in a UserError whose one-paragraph message names the
// file, where (column / row group / row) and what to do.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pw from 'parquet-wasm';
import { Bool, Field, Float32, List, RecordBatch, Schema, Struct, Table, makeData, tableToIPC, type Data, type DataType } from 'apache-arrow';
import { concat, from, lastValueFrom, throwError, toArray } from 'rxjs';
import { readParquetInfo, readTransitions, type ReadOptions } from '../operators/readTransitions.js';
import { writeTransitionsFile } from '../operators/writeTransitions.js';
import { ParquetSource, isWasmTrap, withWasm } from '../pipeline/parquet.js';
import { UserError } from '../pipeline/errors.js';
import { TransitionBatch } from '../schemas/transition.js';
import { Rng } from '../pipeline/random.js';

const dir = mkdtempSync(join(tmpdir(), 'mopo-pq-err-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const rng = new Rng(42, 'parquet-errors');
const N = 2000;

type Col = [string, Data];
const f32 = (v: ArrayLike<number>) => makeData({ type: new Float32(), length: v.length, data: Float32Array.from(v) });
const bool = (v: ArrayLike<number>) => {
  const bits = new Uint8Array((v.length + 7) >> 3);
  for (let i = 0; i < v.length; i++) if (v[i]) bits[i >> 3]! |= 1 << (i & 7);
  return makeData({ type: new Bool(), length: v.length, data: bits });
};
function list(values: ArrayLike<number>, lengths: ArrayLike<number>): Data {
  const off = new Int32Array(lengths.length + 1);
  for (let i = 0; i < lengths.length; i++) off[i + 1] = off[i]! + lengths[i]!;
  return makeData({ type: new List(new Field('item', new Float32(), true)), length: lengths.length, nullCount: 0, valueOffsets: off, child: f32(values) });
}
const vec = (dim: number, n = N, mutate?: (v: Float32Array) => void) => {
  const v = rng.fillNormal(new Float32Array(n * dim));
  mutate?.(v);
  return list(v, new Array(n).fill(dim));
};
function write(name: string, cols: Col[], props?: pw.WriterProperties): string {
  const fields = cols.map(([n, d]) => new Field(n, d.type as DataType, true));
  const rb = new RecordBatch(new Schema(fields), makeData({ type: new Struct(fields), length: cols[0]![1].length, nullCount: 0, children: cols.map((c) => c[1]) }));
  const path = join(dir, name);
  writeFileSync(path, pw.writeParquet(pw.Table.fromIPCStream(tableToIPC(new Table(rb), 'stream')), props ?? null));
  return path;
}
const good = (): Col[] => [
  ['observations', vec(5)],
  ['actions', vec(2)],
  ['rewards', f32(rng.fillNormal(new Float32Array(N)))],
  ['next_observations', vec(5)],
  ['terminals', bool(new Uint8Array(N))],
  ['timeouts', bool(new Uint8Array(N))],
];
const replace = (cols: Col[], name: string, col: Col | null): Col[] => cols.flatMap((c) => (c[0] === name ? (col ? [col] : []) : [c]));

/** Reads the whole file and expects a UserError whose message matches every pattern. */
async function expectUserError(path: string, patterns: RegExp[], opts: ReadOptions = {}): Promise<string> {
  let err: unknown;
  try {
    await lastValueFrom(readTransitions(path, opts).pipe(toArray()));
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof UserError, `expected a UserError, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  const msg = err.message;
  assert.ok(msg.includes(path), `message names the file: ${msg}`);
  assert.ok(!msg.includes('\n'), `one paragraph: ${msg}`);
  for (const p of patterns) assert.match(msg, p);
  return msg;
}

describe('files that are not readable Parquet', () => {
  test('a missing file', async () => {
    await expectUserError(join(dir, 'nope.parquet'), [/no such file/, /Check the path/]);
  });

  test('a directory', async () => {
    await expectUserError(dir, [/directory/]);
  });

  test('a file that is not Parquet (CSV)', async () => {
    const path = join(dir, 'data.parquet');
    writeFileSync(path, 'observation,action,reward\n1,2,3\n4,5,6\n');
    await expectUserError(path, [/not a Parquet file/, /text file/, /convert it to Parquet/]);
  });

  test('an HDF5 file and an empty file', async () => {
    const h5 = join(dir, 'd4rl.hdf5');
    writeFileSync(h5, Buffer.concat([Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(100)]));
    await expectUserError(h5, [/not a Parquet file/, /HDF5/]);
    const empty = join(dir, 'empty.parquet');
    writeFileSync(empty, '');
    await expectUserError(empty, [/empty/]);
  });

  test('a truncated file', async () => {
    const src = readFileSync(write('whole.parquet', good()));
    for (const keep of [src.length - 1, src.length - 100, Math.floor(src.length / 2), 10]) {
      const path = join(dir, `truncated-${keep}.parquet`);
      writeFileSync(path, src.subarray(0, keep));
      await expectUserError(path, [/truncated/, /(copy|write) it again/i]);
    }
  });

  test('a damaged footer', async () => {
    const src = Buffer.from(readFileSync(write('footer.parquet', good())));
    const len = src.readUInt32LE(src.length - 8);
    for (let i = 0; i < 24; i++) src[src.length - 8 - len + 10 + i] ^= 0x5a;
    const path = join(dir, 'footer-bad.parquet');
    writeFileSync(path, src);
    await expectUserError(path, [/footer|damaged|truncated/]);
  });

  test('a corrupted data page names the row group and the column, and the reader recovers', async () => {
    const path0 = write('pages.parquet', good(), new pw.WriterPropertiesBuilder().setCompression(pw.Compression.SNAPPY).setMaxRowGroupSize(500).build());
    const src = await ParquetSource.open(path0);
    const chunk = src.rowGroups[2]!.columns.find((c) => c.path[0] === 'rewards')!;
    await src.close();
    for (const [offset, len] of [
      [0, 4], // page header
      [20, 16], // header / start of the compressed data
    ] as const) {
      const bytes = Buffer.from(readFileSync(path0));
      for (let i = 0; i < len; i++) bytes[chunk.start + offset + i] ^= 0xa5;
      const path = join(dir, `corrupt-${offset}.parquet`);
      writeFileSync(path, bytes);
      const msg = await expectUserError(path, [/row group 2/, /rows 1000–1499/, /column rewards\b/, /corrupted/, /again/]);
      assert.doesNotMatch(msg, /observations/, 'only the damaged column is blamed');
      // rows before the damaged row group still read
      const head = await lastValueFrom(readTransitions(path, { rows: { end: 1000 } }).pipe(toArray()));
      assert.equal(TransitionBatch.concat(head).length, 1000);
    }
    const ok = await lastValueFrom(readTransitions(path0).pipe(toArray()));
    assert.equal(TransitionBatch.concat(ok).length, N);
  });
});

describe('columns', () => {
  test('missing reward, observation or action', async () => {
    for (const [drop, role] of [
      ['rewards', 'reward'],
      ['observations', 'observation'],
      ['actions', 'action'],
    ] as const) {
      const path = write(`missing-${role}.parquet`, replace(good(), drop, null));
      const msg = await expectUserError(path, [new RegExp(`no ${role} column found`), /The file's columns are: /]);
      assert.ok(msg.includes('next_observations'), 'lists the columns present');
      await assert.rejects(readParquetInfo(path), UserError);
    }
  });

  test('misnamed columns get the closest names suggested', async () => {
    const path = write('misnamed.parquet', replace(replace(good(), 'observations', ['observatons', vec(5)]), 'rewards', ['rewardz', f32(new Float32Array(N))]));
    await expectUserError(path, [/no reward column found/, /Closest names in the file: 'rewardz'/, /columns: \{ reward: 'rewardz' \}/]);
    const path2 = write('misnamed2.parquet', replace(good(), 'observations', ['observatons', vec(5)]));
    await expectUserError(path2, [/no observation column found/, /'observatons'/]);
    // and the suggestion works
    const b = await lastValueFrom(readTransitions(path2, { columns: { observation: 'observatons' } }).pipe(toArray()));
    assert.equal(TransitionBatch.concat(b).length, N);
  });

  test('a mapping to a column that does not exist', async () => {
    const path = write('mapping.parquet', good());
    await expectUserError(path, [/'obs' not found/, /Closest names in the file: 'observations'/], { columns: { observation: 'obs' } });
  });

  test('per-dimension columns with a gap', async () => {
    const cols: Col[] = [0, 1, 3].map((d) => [`obs_${d}`, f32(new Float32Array(N))]);
    const path = write('gap.parquet', [...cols, ...replace(good(), 'observations', null)]);
    await expectUserError(path, [/no observation column found/, /missing index 2/]);
  });

  test('no next_observation and nothing that marks episode ends', async () => {
    const path = write('nonext.parquet', replace(replace(good(), 'next_observations', null), 'timeouts', null));
    await expectUserError(path, [/no next_observation column found/, /cannot be derived/, /episode id, timeouts or dones/]);
  });

  test('wrong column types', async () => {
    const path = write('types.parquet', replace(good(), 'rewards', ['rewards', list(new Float32Array(N * 2), new Array(N).fill(2))]));
    await expectUserError(path, [/rewards/, /trajectories/], { layout: 'transitions' });
  });
});

describe('inconsistent dimensions', () => {
  test('list lengths vary between rows', async () => {
    const lengths = new Array(N).fill(5);
    lengths[1234] = 4;
    const path = write('ragged.parquet', replace(good(), 'observations', ['observations', list(new Float32Array(N * 5 - 1), lengths)]));
    await expectUserError(path, [/column observations/, /row 1234 has 4 values/, /have 5/, /fix or drop/]);
  });

  test('observation and next_observation dims differ', async () => {
    const path = write('dims.parquet', replace(good(), 'next_observations', ['next_observations', vec(4)]));
    await expectUserError(path, [/observation \(observations\) has 5 dimensions/, /next_observation \(next_observations\) has 4/]);
  });

  test('metadata dims disagree with the data', async () => {
    const cols = good();
    const fields = cols.map(([n, d]) => new Field(n, d.type as DataType, true));
    const rb = new RecordBatch(new Schema(fields, new Map([['obsDim', '6']])), makeData({ type: new Struct(fields), length: N, nullCount: 0, children: cols.map((c) => c[1]) }));
    const path = join(dir, 'metadims.parquet');
    writeFileSync(path, pw.writeParquet(pw.Table.fromIPCStream(tableToIPC(new Table(rb), 'stream'))));
    await expectUserError(path, [/hold 5 values per row/, /metadata \(obsDim\) says 6/]);
  });

  test('trajectory rows whose lists disagree', async () => {
    const T = [10, 12, 7];
    const total = T.reduce((a, b) => a + b, 0);
    const nestedObs = (steps: number[]) => {
      const inner = list(rng.fillNormal(new Float32Array(steps.reduce((a, b) => a + b, 0) * 3)), new Array(steps.reduce((a, b) => a + b, 0)).fill(3));
      const off = new Int32Array(steps.length + 1);
      steps.forEach((s, i) => (off[i + 1] = off[i]! + s));
      return makeData({ type: new List(new Field('item', inner.type, true)), length: steps.length, nullCount: 0, valueOffsets: off, child: inner });
    };
    const path = write('traj-bad.parquet', [
      ['observations', nestedObs([11, 13, 9])], // episode row 2 has T+2 observations
      ['actions', nestedObs(T)],
      ['rewards', list(new Float32Array(total), T)],
    ]);
    await expectUserError(path, [/episode row 2/, /observations has 9 steps but rewards has 7/, /T or T\+1 observations/]);
  });
});

describe('non-finite values', () => {
  test('NaN in an observation list is rejected with column and row; allowNonFinite lets it through', async () => {
    const path = write('nan.parquet', replace(good(), 'observations', ['observations', vec(5, N, (v) => (v[1500 * 5 + 3] = NaN))]));
    await expectUserError(path, [/column observations \(observation\)/, /non-finite value \(NaN or null\)/, /row 1500, dimension 3/, /allowNonFinite: true/]);
    const b = TransitionBatch.concat(await lastValueFrom(readTransitions(path, { allowNonFinite: true }).pipe(toArray())));
    assert.ok(Number.isNaN(b.observation[1500 * 5 + 3]));
  });

  test('Infinity in a per-dimension column names that column', async () => {
    const o = Array.from({ length: 5 }, (_, d) => {
      const v = rng.fillNormal(new Float32Array(N));
      if (d === 2) v[777] = -Infinity;
      return [`obs_${d}`, f32(v)] as Col;
    });
    const path = write('inf.parquet', [...o, ...replace(good(), 'observations', null)]);
    await expectUserError(path, [/column obs_2 \(observation\)/, /-Infinity/, /row 777/]);
  });

  test('NaN reward and NaN in a trajectory', async () => {
    const r = rng.fillNormal(new Float32Array(N));
    r[42] = NaN;
    await expectUserError(write('nanr.parquet', replace(good(), 'rewards', ['rewards', f32(r)])), [/column rewards \(reward\)/, /row 42\b/]);
    const T = [4, 6];
    const obs = (n: number, bad: number) => {
      const v = rng.fillNormal(new Float32Array(n * 2));
      if (bad >= 0) v[bad] = Infinity;
      return list(v, [T[0]! * 2 + 2, T[1]! * 2 + 2]);
    };
    const path = write('traj-inf.parquet', [
      ['observations', obs(T[0]! + T[1]! + 2, (T[0]! + 1 + 3) * 2 + 1)],
      ['actions', list(new Float32Array(10), T)],
      ['rewards', list(new Float32Array(10), T)],
    ]);
    await expectUserError(path, [/column observations/, /episode row 1, step 3, dimension 1/], { obsDim: 2 });
  });
});

describe('writing', () => {
  test('a failed write leaves no output file', async () => {
    const path = join(dir, 'out.parquet');
    const b = TransitionBatch.allocate({ obsDim: 3, actDim: 1 }, 100);
    await assert.rejects(writeTransitionsFile(path, concat(from([b, b]), throwError(() => new Error('stage failed')))), /stage failed/);
    assert.equal(existsSync(path), false);
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp-')), []);
  });
});

describe('decoder aborts', () => {
  test('a trap inside arrow-rs (a Rust panic) is caught and a fresh wasm instance serves the next read', async () => {
    // BYTE_STREAM_SPLIT on a boolean column makes arrow-rs 56 panic ("unreachable"): a real trap.
    const fields = [new Field('b', new Bool(), false)];
    const rb = new RecordBatch(new Schema(fields), makeData({ type: new Struct(fields), length: 8, nullCount: 0, children: [bool([1, 0, 1, 0, 1, 0, 1, 0])] }));
    const ipc = tableToIPC(new Table(rb), 'stream');
    let trapped: unknown;
    try {
      withWasm((m) => m.writeParquet(m.Table.fromIPCStream(ipc), new m.WriterPropertiesBuilder().setEncoding(m.Encoding.BYTE_STREAM_SPLIT).setDictionaryEnabled(false).build()));
    } catch (e) {
      trapped = e;
    }
    assert.ok(isWasmTrap(trapped), `expected a WebAssembly.RuntimeError, got ${String(trapped)}`);
    const path = write('after-trap.parquet', good());
    const b = await lastValueFrom(readTransitions(path).pipe(toArray()));
    assert.equal(TransitionBatch.concat(b).length, N);
  });
});
