// readTransitions on files written by an independent writer: arrow-rs's own writeParquet (through
// parquet-wasm, not our writer), with the encodings and layouts users' files have.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pw from 'parquet-wasm';
import {
  Bool,
  Field,
  FixedSizeList,
  Float32,
  Float64,
  Int32,
  Int64,
  Int8,
  LargeList,
  List,
  RecordBatch,
  Schema,
  Struct,
  Table,
  makeData,
  tableToIPC,
  type Data,
  type DataType,
} from 'apache-arrow';
import { firstValueFrom, lastValueFrom, take, toArray } from 'rxjs';
import { readParquetInfo, readTransitions, type ReadOptions } from '../operators/readTransitions.js';
import { ParquetSource } from '../pipeline/parquet.js';
import { TransitionBatch } from '../schemas/transition.js';
import { Rng } from '../pipeline/random.js';

const dir = mkdtempSync(join(tmpdir(), 'mopo-pq-read-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// ---- reference data -------------------------------------------------------------------------

interface Ref {
  n: number;
  obsDim: number;
  actDim: number;
  obs: Float64Array;
  act: Float64Array;
  reward: Float64Array;
  next: Float64Array;
  terminal: Uint8Array;
  timeout: Uint8Array;
  episode: Int32Array;
}

function makeRef(n: number, obsDim = 17, actDim = 6, seed = 7): Ref {
  const rng = new Rng(seed, 'parquet-read');
  const fill = (k: number) => Float64Array.from({ length: k }, () => rng.normal());
  const terminal = new Uint8Array(n);
  const timeout = new Uint8Array(n);
  const episode = new Int32Array(n);
  let ep = 0;
  for (let i = 0; i < n; i++) {
    episode[i] = ep;
    if (rng.next() < 0.02) {
      terminal[i] = 1;
      ep++;
    } else if (rng.next() < 0.02) {
      timeout[i] = 1;
      ep++;
    }
  }
  return { n, obsDim, actDim, obs: fill(n * obsDim), act: fill(n * actDim), reward: fill(n), next: fill(n * obsDim), terminal, timeout, episode };
}

// ---- Arrow column builders (independent of schemas/transition.ts) -----------------------------

type Col = [name: string, data: Data, nullable?: boolean];
const f32 = (v: ArrayLike<number>) => makeData({ type: new Float32(), length: v.length, data: Float32Array.from(v) });
const f64 = (v: ArrayLike<number>) => makeData({ type: new Float64(), length: v.length, data: Float64Array.from(v) });
const i32 = (v: ArrayLike<number>) => makeData({ type: new Int32(), length: v.length, data: Int32Array.from(v) });
const i8 = (v: ArrayLike<number>) => makeData({ type: new Int8(), length: v.length, data: Int8Array.from(v) });
const i64 = (v: ArrayLike<number>) => makeData({ type: new Int64(), length: v.length, data: BigInt64Array.from(Array.from(v), (x) => BigInt(x)) });
function bool(v: ArrayLike<number>): Data {
  const bits = new Uint8Array((v.length + 7) >> 3);
  for (let i = 0; i < v.length; i++) if (v[i]) bits[i >> 3]! |= 1 << (i & 7);
  return makeData({ type: new Bool(), length: v.length, data: bits });
}
function listOf(child: Data, lengths: ArrayLike<number>, large = false, nullableItem = true): Data {
  const off = large ? new BigInt64Array(lengths.length + 1) : new Int32Array(lengths.length + 1);
  for (let i = 0; i < lengths.length; i++) (off as Int32Array)[i + 1] = (large ? ((off as BigInt64Array)[i]! + BigInt(lengths[i]!)) : (off as Int32Array)[i]! + lengths[i]!) as never;
  const item = new Field('item', child.type, nullableItem);
  const type = large ? new LargeList(item) : new List(item);
  return makeData({ type, length: lengths.length, nullCount: 0, valueOffsets: off, child } as never) as Data;
}
const vecList = (values: ArrayLike<number>, dim: number, precision: 32 | 64 = 32, large = false) =>
  listOf(precision === 32 ? f32(values) : f64(values), new Array(values.length / dim).fill(dim), large);
function vecFsl(values: ArrayLike<number>, dim: number, precision: 32 | 64 = 32): Data {
  const child = precision === 32 ? f32(values) : f64(values);
  const type = new FixedSizeList(dim, new Field('item', child.type, true));
  return makeData({ type, length: values.length / dim, nullCount: 0, child });
}
function splitCols(prefix: string, values: ArrayLike<number>, dim: number, precision: 32 | 64 = 32): Col[] {
  const n = values.length / dim;
  return Array.from({ length: dim }, (_, d) => {
    const col = Float64Array.from({ length: n }, (_, i) => values[i * dim + d]!);
    return [`${prefix}${d}`, precision === 32 ? f32(col) : f64(col)] as Col;
  });
}

function writeFile(name: string, cols: Col[], props?: () => pw.WriterProperties, metadata?: Record<string, string>): string {
  const fields = cols.map(([n, d, nullable]) => new Field(n, d.type as DataType, nullable ?? true));
  const length = cols[0]![1].length;
  const schema = new Schema(fields, new Map(Object.entries(metadata ?? {})));
  const rb = new RecordBatch(schema, makeData({ type: new Struct(fields), length, nullCount: 0, children: cols.map((c) => c[1]) }));
  const bytes = pw.writeParquet(pw.Table.fromIPCStream(tableToIPC(new Table(rb), 'stream')), props ? props() : null);
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

const builder = () => new pw.WriterPropertiesBuilder();
const PROPS: Record<string, () => pw.WriterProperties> = {
  'zstd+dictionary': () => builder().setCompression(pw.Compression.ZSTD).setDictionaryEnabled(true).build(),
  snappy: () => builder().setCompression(pw.Compression.SNAPPY).build(),
  gzip: () => builder().setCompression(pw.Compression.GZIP).setDictionaryEnabled(false).build(),
  'data page v2': () => builder().setWriterVersion(pw.WriterVersion.V2).setCompression(pw.Compression.SNAPPY).setDictionaryEnabled(true).build(),
  'lz4_raw, small pages': () => builder().setCompression(pw.Compression.LZ4_RAW).setDataPageSizeLimit(4096).setMaxRowGroupSize(700).build(),
  'arrow-rs defaults': () => builder().build(),
};

// ---- comparison -------------------------------------------------------------------------------

function assertClose(label: string, got: ArrayLike<number>, want: ArrayLike<number>): void {
  assert.equal(got.length, want.length, `${label}: length ${got.length} != ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    const w = Math.fround(want[i]!);
    if (!Object.is(got[i], w)) assert.fail(`${label}[${i}]: got ${got[i]}, want ${w}`);
  }
}

async function readAll(path: string, opts: ReadOptions = {}): Promise<TransitionBatch> {
  const batches = await lastValueFrom(readTransitions(path, opts).pipe(toArray()));
  assert.ok(batches.length > 0, 'no batches');
  return TransitionBatch.concat(batches);
}

function assertMatches(b: TransitionBatch, ref: Ref, rows: [number, number] = [0, ref.n]): void {
  const [s, e] = rows;
  const { obsDim: o, actDim: a } = ref;
  assert.equal(b.length, e - s);
  assert.equal(b.obsDim, o);
  assert.equal(b.actDim, a);
  assertClose('observation', b.observation, ref.obs.subarray(s * o, e * o));
  assertClose('action', b.action, ref.act.subarray(s * a, e * a));
  assertClose('reward', b.reward, ref.reward.subarray(s, e));
  assertClose('next_observation', b.nextObservation, ref.next.subarray(s * o, e * o));
  assert.deepEqual([...b.terminal], [...ref.terminal.subarray(s, e)], 'terminal');
  assert.deepEqual([...b.timeout], [...ref.timeout.subarray(s, e)], 'timeout');
}

// ---- transitions layout -----------------------------------------------------------------------

const N = 3000;
const ref = makeRef(N);

describe('transitions layout, encodings and compressions (arrow-rs writer)', () => {
  for (const [label, props] of Object.entries(PROPS)) {
    test(`D4RL names, list<float>, ${label}`, async () => {
      const path = writeFile(`d4rl-${label.replace(/\W+/g, '_')}.parquet`, [
        ['observations', vecList(ref.obs, 17)],
        ['actions', vecList(ref.act, 6)],
        ['rewards', f32(ref.reward)],
        ['next_observations', vecList(ref.next, 17)],
        ['terminals', bool(ref.terminal)],
        ['timeouts', bool(ref.timeout)],
      ], props);
      assertMatches(await readAll(path), ref);
      const info = await readParquetInfo(path);
      assert.equal(info.layout, 'transitions');
      assert.deepEqual(info.dims, { obsDim: 17, actDim: 6 });
      if (label === 'zstd+dictionary') {
        assert.ok(info.storage.some((c) => c.encodings.includes('RLE_DICTIONARY')), `dictionary encoding used: ${JSON.stringify(info.storage)}`);
        assert.ok(info.storage.every((c) => c.codec === 'ZSTD'));
      }
      if (label === 'lz4_raw, small pages') assert.ok(info.rowGroups.length >= 4);
    });
  }
});

describe('transitions layout, vector storage and names', () => {
  test('singular names, list<double> vectors, double reward, int flags', async () => {
    const path = writeFile('singular-f64.parquet', [
      ['observation', vecList(ref.obs, 17, 64)],
      ['action', vecList(ref.act, 6, 64)],
      ['reward', f64(ref.reward)],
      ['next_observation', vecList(ref.next, 17, 64)],
      ['terminal', i8(ref.terminal)],
      ['timeout', i32(ref.timeout)],
    ], PROPS.snappy);
    assertMatches(await readAll(path), ref);
  });

  test('fixed-size lists, large lists, float flags, done column', async () => {
    const path = writeFile('fsl.parquet', [
      ['obs', vecFsl(ref.obs, 17)],
      ['act', vecList(ref.act, 6, 32, true)],
      ['rew', f32(ref.reward)],
      ['next_obs', vecFsl(ref.next, 17, 64)],
      ['done', f32(ref.terminal)],
      ['timeouts', f64(ref.timeout)],
    ], PROPS['zstd+dictionary']);
    const warnings: string[] = [];
    assertMatches(await readAll(path, { onWarning: (w) => warnings.push(w) }), ref);
    assert.ok(warnings.some((w) => /done is read as terminal/.test(w)), warnings.join('\n'));
  });

  test('one scalar column per dimension: obs_0…, next_obs_0…, act_0…', async () => {
    const path = writeFile('split.parquet', [
      ...splitCols('obs_', ref.obs, 17),
      ...splitCols('act_', ref.act, 6, 64),
      ['reward', f32(ref.reward)],
      ...splitCols('next_obs_', ref.next, 17),
      ['terminal', bool(ref.terminal)],
      ['timeout', bool(ref.timeout)],
    ], PROPS['data page v2']);
    assertMatches(await readAll(path), ref);
    const info = await readParquetInfo(path);
    assert.equal((info.columns.observation as string[]).length, 17);
    assert.equal((info.columns.observation as string[])[16], 'obs_16');
  });

  test('one scalar column per dimension: observations_0…, action_0…, next_observations_0…', async () => {
    const path = writeFile('split2.parquet', [
      ...splitCols('observations_', ref.obs, 17),
      ...splitCols('action_', ref.act, 6),
      ['rewards', f32(ref.reward)],
      ...splitCols('next_observations_', ref.next, 17),
      ['terminals', bool(ref.terminal)],
      ['timeouts', bool(ref.timeout)],
    ], PROPS.gzip);
    assertMatches(await readAll(path), ref);
  });

  test('list<float> with regular offsets is taken without copying rows (a view of the Arrow buffer)', async () => {
    const path = writeFile('view.parquet', [
      ['observations', vecList(ref.obs, 17)],
      ['actions', vecList(ref.act, 6)],
      ['rewards', f32(ref.reward)],
      ['next_observations', vecList(ref.next, 17)],
      ['terminals', bool(ref.terminal)],
      ['timeouts', bool(ref.timeout)],
    ]);
    const b = await firstValueFrom(readTransitions(path));
    assert.ok(b.observation.buffer.byteLength > b.observation.byteLength, 'observation is a view into a larger Arrow buffer');
    assert.equal(b.observation.buffer, b.action.buffer, 'observation and action share the decoded Arrow buffer');
  });

  test('column mapping overrides auto-detection (names, per-dimension list, prefix)', async () => {
    const path = writeFile('custom.parquet', [
      ...splitCols('s', ref.obs, 17),
      ['u', vecList(ref.act, 6)],
      ['r', f32(ref.reward)],
      ...splitCols('s2_', ref.next, 17),
      ['end', bool(ref.terminal)],
      ['cut', bool(ref.timeout)],
    ]);
    const b = await readAll(path, {
      columns: {
        observation: Array.from({ length: 17 }, (_, d) => `s${d}`),
        action: 'u',
        reward: 'r',
        next_observation: 's2_',
        terminal: 'end',
        timeout: 'cut',
      },
    });
    assertMatches(b, ref);
  });

  test('schema metadata env/obsDim/actDim, env option, episode/step columns', async () => {
    const step = Int32Array.from({ length: N }, (_, i) => i % 1000);
    const path = writeFile(
      'meta.parquet',
      [
        ['observations', vecList(ref.obs, 17)],
        ['actions', vecList(ref.act, 6)],
        ['rewards', f32(ref.reward)],
        ['next_observations', vecList(ref.next, 17)],
        ['terminals', bool(ref.terminal)],
        ['timeouts', bool(ref.timeout)],
        ['episode_id', i64(ref.episode)],
        ['step', i32(step)],
      ],
      PROPS.snappy,
      { env: 'halfcheetah', obsDim: '17', actDim: '6' },
    );
    const b = await readAll(path);
    assertMatches(b, ref);
    assert.equal(b.env, 'halfcheetah');
    assert.deepEqual([...b.episode!], [...ref.episode]);
    assert.deepEqual([...b.step!], [...step]);
    assert.equal((await readAll(path, { env: 'hopper' })).env, 'hopper');
  });

  test('missing terminal/timeout columns read as zeros, with a warning', async () => {
    const path = writeFile('noflags.parquet', [
      ['observations', vecList(ref.obs, 17)],
      ['actions', vecList(ref.act, 6)],
      ['rewards', f32(ref.reward)],
      ['next_observations', vecList(ref.next, 17)],
    ]);
    const warnings: string[] = [];
    const b = await readAll(path, { onWarning: (w) => warnings.push(w) });
    assertMatches(b, { ...ref, terminal: new Uint8Array(N), timeout: new Uint8Array(N) });
    assert.equal(warnings.filter((w) => /no terminal column/.test(w)).length, 1, warnings.join('\n'));
    assert.equal(warnings.filter((w) => /no timeout column/.test(w)).length, 1, warnings.join('\n'));
  });

  test('1-dimensional action stored as a plain float column', async () => {
    const r1 = makeRef(500, 3, 1, 11);
    const path = writeFile('act1.parquet', [
      ['observations', vecList(r1.obs, 3)],
      ['actions', f32(r1.act)],
      ['rewards', f32(r1.reward)],
      ['next_observations', vecList(r1.next, 3)],
      ['terminals', bool(r1.terminal)],
      ['timeouts', bool(r1.timeout)],
    ]);
    assertMatches(await readAll(path), r1);
  });
});

describe('next_observation derived from the following row', () => {
  /** Expected transitions: row i → row i+1 within an episode; episode-final rows dropped, their predecessors marked timeout. */
  function expected(r: Ref, useEpisode: boolean) {
    const keep: number[] = [];
    const isEnd = (i: number) => i === r.n - 1 || r.terminal[i] === 1 || r.timeout[i] === 1 || (useEpisode && r.episode[i] !== r.episode[i + 1]);
    for (let i = 0; i < r.n; i++) if (!isEnd(i)) keep.push(i);
    const o = r.obsDim;
    const obs = keep.flatMap((i) => [...r.obs.subarray(i * o, (i + 1) * o)]);
    const next = keep.flatMap((i) => [...r.obs.subarray((i + 1) * o, (i + 2) * o)]);
    const act = keep.flatMap((i) => [...r.act.subarray(i * r.actDim, (i + 1) * r.actDim)]);
    const timeout = keep.map((i) => (isEnd(i + 1) ? 1 : 0));
    return { keep, obs, next, act, reward: keep.map((i) => r.reward[i]!), timeout };
  }

  for (const batchSize of [65536, 97]) {
    test(`D4RL observations + terminals + timeouts, no next_observations (batchSize ${batchSize})`, async () => {
      const path = writeFile('derive.parquet', [
        ['observations', vecList(ref.obs, 17)],
        ['actions', vecList(ref.act, 6)],
        ['rewards', f32(ref.reward)],
        ['terminals', bool(ref.terminal)],
        ['timeouts', bool(ref.timeout)],
      ], () => builder().setMaxRowGroupSize(1000).build());
      const warnings: string[] = [];
      const b = await readAll(path, { batchSize, onWarning: (w) => warnings.push(w) });
      const e = expected(ref, false);
      assert.equal(b.length, e.keep.length);
      assertClose('observation', b.observation, e.obs);
      assertClose('next_observation', b.nextObservation, e.next);
      assertClose('action', b.action, e.act);
      assertClose('reward', b.reward, e.reward);
      assert.deepEqual([...b.terminal], new Array(e.keep.length).fill(0));
      assert.deepEqual([...b.timeout], e.timeout);
      assert.ok(warnings.some((w) => /following row/.test(w)));
      assert.ok(warnings.some((w) => /terminal; add a next_observations column/.test(w)), warnings.join('\n'));
    });
  }

  test('episode id column marks episode ends', async () => {
    const r = { ...ref, terminal: new Uint8Array(N), timeout: new Uint8Array(N) };
    const path = writeFile('derive-ep.parquet', [
      ['obs', vecFsl(r.obs, 17)],
      ['actions', vecList(r.act, 6)],
      ['rewards', f32(r.reward)],
      ['episode', i32(r.episode)],
    ], () => builder().setMaxRowGroupSize(333).build());
    const b = await readAll(path, { batchSize: 50 });
    const e = expected(r, true);
    assertClose('observation', b.observation, e.obs);
    assertClose('next_observation', b.nextObservation, e.next);
    assert.deepEqual([...b.timeout], e.timeout);
    assert.deepEqual([...b.episode!], e.keep.map((i) => r.episode[i]!));
  });
});

// ---- trajectory layout ------------------------------------------------------------------------

interface Traj {
  T: number[];
  obs: number[][][]; // episode → step (T+1) → dim
  act: number[][][];
  rew: number[][];
  term: number[][];
  tout: number[][];
}

function makeTraj(episodes: number, o: number, a: number, seed = 5): Traj {
  const rng = new Rng(seed, 'traj');
  const t: Traj = { T: [], obs: [], act: [], rew: [], term: [], tout: [] };
  for (let e = 0; e < episodes; e++) {
    const T = 1 + rng.int(60);
    const vec = (k: number) => Array.from({ length: k }, () => Math.fround(rng.normal()));
    t.T.push(T);
    t.obs.push(Array.from({ length: T + 1 }, () => vec(o)));
    t.act.push(Array.from({ length: T }, () => vec(a)));
    t.rew.push(vec(T));
    const terminal = e % 3 === 0;
    t.term.push(Array.from({ length: T }, (_, s) => (terminal && s === T - 1 ? 1 : 0)));
    t.tout.push(Array.from({ length: T }, (_, s) => (!terminal && s === T - 1 ? 1 : 0)));
  }
  return t;
}

function nestedList(rows: number[][][], dim: number, inner: 'list' | 'fsl' | 'flat', precision: 32 | 64 = 32): Data {
  const flat = rows.flatMap((r) => r.flat());
  const values = precision === 32 ? f32(flat) : f64(flat);
  if (inner === 'flat') return listOf(values, rows.map((r) => r.length * dim));
  const innerData = inner === 'fsl' ? makeData({ type: new FixedSizeList(dim, new Field('item', values.type, true)), length: flat.length / dim, nullCount: 0, child: values }) : listOf(values, new Array(flat.length / dim).fill(dim));
  return listOf(innerData, rows.map((r) => r.length));
}
const scalarList = (rows: number[][], make: (v: number[]) => Data) => listOf(make(rows.flat()), rows.map((r) => r.length));

describe('trajectory layout (one episode a row)', () => {
  const E = 40;
  const tr = makeTraj(E, 11, 3);

  /** Expected transitions; `dropLast`: observations have T entries and no next_observations. */
  function check(b: TransitionBatch, t: Traj, dropLast: boolean, episodeIds?: number[]) {
    let w = 0;
    for (let e = 0; e < t.T.length; e++) {
      const c = dropLast ? t.T[e]! - 1 : t.T[e]!;
      for (let s = 0; s < c; s++, w++) {
        const o = b.obsDim;
        assertClose(`obs e${e} s${s}`, b.observation.subarray(w * o, (w + 1) * o), t.obs[e]![s]!);
        assertClose(`next e${e} s${s}`, b.nextObservation.subarray(w * o, (w + 1) * o), t.obs[e]![s + 1]!);
        assertClose(`act e${e} s${s}`, b.action.subarray(w * b.actDim, (w + 1) * b.actDim), t.act[e]![s]!);
        assert.equal(b.reward[w], t.rew[e]![s]);
        const last = s === c - 1;
        const terminal = dropLast ? 0 : t.term[e]![s]!;
        assert.equal(b.terminal[w], terminal, `terminal e${e} s${s}`);
        assert.equal(b.timeout[w], last && !terminal ? 1 : 0, `timeout e${e} s${s}`);
        assert.equal(b.episode![w], episodeIds ? episodeIds[e] : e);
        assert.equal(b.step![w], s);
      }
    }
    assert.equal(b.length, w);
  }

  test('list<list<float>> observations with T+1 entries (final next_observation), ZSTD', async () => {
    const path = writeFile('traj.parquet', [
      ['observations', nestedList(tr.obs, 11, 'list')],
      ['actions', nestedList(tr.act, 3, 'list')],
      ['rewards', scalarList(tr.rew, f32)],
      ['terminals', scalarList(tr.term, bool)],
      ['timeouts', scalarList(tr.tout, bool)],
    ], () => builder().setCompression(pw.Compression.ZSTD).setMaxRowGroupSize(7).build());
    check(await readAll(path, { batchSize: 100 }), tr, false);
    assert.equal((await readParquetInfo(path)).layout, 'trajectories');
  });

  test('list<fixed_size_list<double>> observations, dones column, episode ids, no timeouts', async () => {
    const ids = Array.from({ length: E }, (_, e) => 1000 + 2 * e);
    const path = writeFile('traj-fsl.parquet', [
      ['observations', nestedList(tr.obs, 11, 'fsl', 64)],
      ['actions', nestedList(tr.act, 3, 'fsl')],
      ['rewards', scalarList(tr.rew, f64)],
      ['dones', scalarList(tr.term, f32)],
      ['episode_id', i64(ids)],
    ], PROPS['data page v2']);
    check(await readAll(path), tr, false, ids);
  });

  test('flattened list<float> with dims from metadata; T observations → last step dropped', async () => {
    const obsT = tr.obs.map((r) => r.slice(0, -1));
    const t2 = { ...tr, obs: tr.obs };
    const path = writeFile(
      'traj-flat.parquet',
      [
        ['observations', nestedList(obsT, 11, 'flat')],
        ['actions', nestedList(tr.act, 3, 'flat')],
        ['rewards', scalarList(tr.rew, f32)],
        ['terminals', scalarList(tr.term, i8)],
      ],
      PROPS.snappy,
      { obsDim: '11', actDim: '3' },
    );
    check(await readAll(path), t2, true);
  });

  test('T observations plus next_observations keeps every step; flattened dims given as options', async () => {
    const obsT = tr.obs.map((r) => r.slice(0, -1));
    const nextT = tr.obs.map((r) => r.slice(1));
    const path = writeFile('traj-next.parquet', [
      ['observations', nestedList(obsT, 11, 'flat')],
      ['actions', nestedList(tr.act, 3, 'flat')],
      ['rewards', scalarList(tr.rew, f32)],
      ['next_observations', nestedList(nextT, 11, 'flat')],
      ['terminals', scalarList(tr.term, bool)],
      ['timeouts', scalarList(tr.tout, bool)],
    ]);
    check(await readAll(path, { obsDim: 11, actDim: 3 }), tr, false);
  });

  test('rows range counts transitions across episodes', async () => {
    const path = join(dir, 'traj.parquet');
    const all = await readAll(path);
    const part = await readAll(path, { rows: { start: 123, end: 456 }, batchSize: 50 });
    assert.equal(part.length, 333);
    assert.deepEqual([...part.observation], [...all.observation.subarray(123 * 11, 456 * 11)]);
    assert.deepEqual([...part.step!], [...all.step!.subarray(123, 456)]);
  });
});

// ---- streaming options ------------------------------------------------------------------------

describe('streaming', () => {
  const path = writeFile('multi-rg.parquet', [
    ['observations', vecList(ref.obs, 17)],
    ['actions', vecList(ref.act, 6)],
    ['rewards', f32(ref.reward)],
    ['next_observations', vecList(ref.next, 17)],
    ['terminals', bool(ref.terminal)],
    ['timeouts', bool(ref.timeout)],
  ], () => builder().setMaxRowGroupSize(500).setCompression(pw.Compression.SNAPPY).build());

  test('a multi-row-group file streams in several batches, none crossing a row group', async () => {
    const info = await readParquetInfo(path);
    assert.equal(info.rowGroups.length, 6);
    assert.equal(info.transitions, N);
    const batches = await lastValueFrom(readTransitions(path).pipe(toArray()));
    assert.equal(batches.length, 6);
    assert.ok(batches.every((b) => b.length === 500));
    assertMatches(TransitionBatch.concat(batches), ref);
  });

  test('batchSize bounds the batch length', async () => {
    const batches = await lastValueFrom(readTransitions(path, { batchSize: 128 }).pipe(toArray()));
    assert.ok(batches.every((b) => b.length <= 128 && b.length > 0));
    assert.equal(batches.length, 6 * Math.ceil(500 / 128));
    assertMatches(TransitionBatch.concat(batches), ref);
  });

  test('rows range reads exactly [start, end) across row groups', async () => {
    for (const [s, e] of [
      [0, 1],
      [499, 501],
      [730, 2222],
      [2999, 3000],
      [2500, 99999],
    ] as const) {
      const b = await readAll(path, { rows: { start: s, end: e }, batchSize: 200 });
      assertMatches(b, ref, [s, Math.min(e, N)]);
    }
    const none = await lastValueFrom(readTransitions(path, { rows: { start: 3000 } }).pipe(toArray()));
    assert.equal(none.length, 0);
  });

  test('cold: every subscription reads the file again', async () => {
    const p2 = join(dir, 'cold.parquet');
    const cols = (r: Ref): Col[] => [
      ['observations', vecList(r.obs, 17)],
      ['actions', vecList(r.act, 6)],
      ['rewards', f32(r.reward)],
      ['next_observations', vecList(r.next, 17)],
    ];
    writeFileSync(p2, Buffer.from(pw.writeParquet(pw.Table.fromIPCStream(tableToIPC(tableOf(cols(ref)), 'stream')))));
    const obs$ = readTransitions(p2);
    const first = TransitionBatch.concat(await lastValueFrom(obs$.pipe(toArray())));
    const again = TransitionBatch.concat(await lastValueFrom(obs$.pipe(toArray())));
    assert.deepEqual([...again.reward], [...first.reward]);
    const other = makeRef(10, 17, 6, 99);
    writeFileSync(p2, Buffer.from(pw.writeParquet(pw.Table.fromIPCStream(tableToIPC(tableOf(cols(other)), 'stream')))));
    const third = TransitionBatch.concat(await lastValueFrom(obs$.pipe(toArray())));
    assert.equal(third.length, 10);
    assertClose('reward after rewrite', third.reward, other.reward);
  });

  test('unsubscribing early stops reading', async () => {
    // A test-only spy on the row-group decoder (and on close, which the reader calls when its loop
    // has ended), restored afterwards.
    const proto = ParquetSource.prototype;
    const { readRowGroup, close } = proto;
    const reads: number[] = [];
    let closedCb: () => void = () => {};
    let closed = new Promise<void>((r) => (closedCb = r));
    proto.readRowGroup = function (this: ParquetSource, g, opts) {
      // data reads only: the plan's one-row peeks (limit 1) that learn the vector sizes are left out
      if (this.path === path && !(opts.limit === 1 && opts.batchSize === 1)) reads.push(g);
      return readRowGroup.call(this, g, opts);
    };
    proto.close = async function (this: ParquetSource) {
      await close.call(this);
      if (this.path === path) closedCb();
    };
    try {
      // the spy sees every row group of a full read
      await lastValueFrom(readTransitions(path, { batchSize: 100 }).pipe(toArray()));
      await closed;
      assert.deepEqual(reads, [0, 1, 2, 3, 4, 5]);
      reads.length = 0;
      closed = new Promise<void>((r) => (closedCb = r));
      const b = await firstValueFrom(readTransitions(path, { batchSize: 100 }).pipe(take(1)));
      assert.equal(b.length, 100);
      // wait until the reader has closed the file (its loop is over), then count the decodes:
      // the first row group only, of 6
      await Promise.race([closed, new Promise((_, rej) => setTimeout(() => rej(new Error('the reader did not close the file after unsubscribe')), 10_000).unref())]);
      assert.deepEqual(reads, [0], `row groups decoded after take(1): ${reads.join(', ')}`);
    } finally {
      proto.readRowGroup = readRowGroup;
      proto.close = close;
    }
  });
});

function tableOf(cols: Col[]): Table {
  const fields = cols.map(([n, d]) => new Field(n, d.type as DataType, true));
  return new Table(new RecordBatch(new Schema(fields), makeData({ type: new Struct(fields), length: cols[0]![1].length, nullCount: 0, children: cols.map((c) => c[1]) })));
}
