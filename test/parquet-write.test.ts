// writeTransitions: round trips through an independent reader (hyparquet, pure JS) and through
// arrow-rs, our reader on our files, atomicity and cleanup.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetMetadata, parquetRead } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import * as pw from 'parquet-wasm';
import { tableFromIPC } from 'apache-arrow';
import { Observable, Subject, concat, from, lastValueFrom, throwError, toArray } from 'rxjs';
import { DEFAULT_ROW_GROUP_SIZE, writeTransitions, writeTransitionsFile, type WriteOptions } from '../operators/writeTransitions.js';
import { readParquetInfo, readTransitions } from '../operators/readTransitions.js';
import { TransitionBatch, type OptionalColumn } from '../schemas/transition.js';
import { UserError } from '../pipeline/errors.js';
import { Rng } from '../pipeline/random.js';

const dir = mkdtempSync(join(tmpdir(), 'mopo-pq-write-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const DIMS = { obsDim: 17, actDim: 6, env: 'halfcheetah' };

/** Seeded batches of uneven sizes (so row groups are assembled from pieces of several batches). */
function makeBatches(n: number, optional: OptionalColumn[] = [], seed = 1, sizes = [777, 1234, 5000, 64]): TransitionBatch[] {
  const rng = new Rng(seed, 'parquet-write');
  const out: TransitionBatch[] = [];
  let row = 0;
  for (let k = 0; row < n; k++) {
    const m = Math.min(sizes[k % sizes.length]!, n - row);
    const b = TransitionBatch.allocate(DIMS, m, optional);
    rng.fillNormal(b.observation);
    rng.fillNormal(b.action);
    rng.fillNormal(b.reward);
    rng.fillNormal(b.nextObservation);
    for (let i = 0; i < m; i++) {
      b.terminal[i] = rng.next() < 0.05 ? 1 : 0;
      b.timeout[i] = rng.next() < 0.05 ? 1 : 0;
    }
    if (b.rawReward) rng.fillNormal(b.rawReward);
    if (b.penalty) rng.fillUniform(b.penalty, 0, 3);
    if (b.episode) for (let i = 0; i < m; i++) b.episode[i] = Math.floor((row + i) / 1000);
    if (b.step) for (let i = 0; i < m; i++) b.step[i] = (row + i) % 1000;
    out.push(b);
    row += m;
  }
  return out;
}

/** All columns of a Parquet file through hyparquet, by column name (lists as arrays of rows). */
async function hyparquetColumns(path: string): Promise<{ cols: Map<string, unknown[]>; meta: Map<string, string>; rowGroups: number }> {
  const buf = readFileSync(path);
  const file = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const metadata = parquetMetadata(file);
  const cols = new Map<string, unknown[]>();
  const n = Number(metadata.num_rows);
  await parquetRead({
    file,
    metadata,
    compressors,
    onChunk: ({ columnName, columnData, rowStart }) => {
      let col = cols.get(columnName);
      if (!col) cols.set(columnName, (col = new Array(n)));
      for (let i = 0; i < columnData.length; i++) col[rowStart + i] = columnData[i];
    },
  });
  const meta = new Map((metadata.key_value_metadata ?? []).map((kv) => [kv.key, kv.value ?? '']));
  return { cols, meta, rowGroups: metadata.row_groups.length };
}

function assertExact(label: string, got: ArrayLike<unknown>, want: ArrayLike<number>): void {
  assert.equal(got.length, want.length, `${label}: length`);
  for (let i = 0; i < want.length; i++) {
    const g = typeof got[i] === 'boolean' ? Number(got[i]) : Number(got[i]);
    if (!Object.is(g, want[i])) assert.fail(`${label}[${i}]: got ${String(got[i])}, want ${want[i]}`);
  }
}

function tmpLeftovers(): string[] {
  return readdirSync(dir).filter((f) => f.includes('.tmp-'));
}

describe('round trip through an independent reader (hyparquet)', () => {
  const cases: Array<[string, WriteOptions]> = [
    ['default (split float columns, SNAPPY)', { rowGroupSize: 6000 }],
    ['fixed-size-list vectors, ZSTD', { rowGroupSize: 6000, vectorLayout: 'fixed-size-list', compression: 'zstd' }],
    ['uncompressed, one row group', { compression: 'none' }],
    ['gzip', { compression: 'gzip', rowGroupSize: 10000 }],
  ];
  for (const [label, opts] of cases) {
    test(label, async () => {
      const n = 20000;
      const batches = makeBatches(n, ['rawReward', 'penalty', 'episode', 'step']);
      const all = TransitionBatch.concat(batches);
      const path = join(dir, `rt-${label.replace(/\W+/g, '_')}.parquet`);
      const summary = await writeTransitionsFile(path, from(batches), opts);
      assert.equal(summary.rows, n);
      assert.equal(summary.path, path);
      assert.equal(summary.bytes, readFileSync(path).length);
      const expectGroups = Math.ceil(n / (opts.rowGroupSize ?? DEFAULT_ROW_GROUP_SIZE));
      assert.equal(summary.rowGroups, expectGroups);

      const { cols, meta, rowGroups } = await hyparquetColumns(path);
      assert.equal(rowGroups, expectGroups);
      assert.equal(meta.get('obsDim'), '17');
      assert.equal(meta.get('actDim'), '6');
      assert.equal(meta.get('env'), 'halfcheetah');
      const vec = (name: string, dim: number): number[] => {
        if (opts.vectorLayout === 'fixed-size-list') return (cols.get(name) as number[][]).flatMap((r) => Array.from(r));
        const parts = Array.from({ length: dim }, (_, d) => cols.get(`${name}_${d}`) as ArrayLike<number>);
        const out = new Array<number>(n * dim);
        for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) out[i * dim + d] = parts[d]![i]!;
        return out;
      };
      assertExact('observation', vec('observation', 17), all.observation);
      assertExact('action', vec('action', 6), all.action);
      assertExact('next_observation', vec('next_observation', 17), all.nextObservation);
      assertExact('reward', cols.get('reward')!, all.reward);
      assertExact('terminal', cols.get('terminal')!, all.terminal);
      assertExact('timeout', cols.get('timeout')!, all.timeout);
      assertExact('raw_reward', cols.get('raw_reward')!, all.rawReward!);
      assertExact('penalty', cols.get('penalty')!, all.penalty!);
      assertExact('episode', cols.get('episode')!, all.episode!);
      assertExact('step', cols.get('step')!, all.step!);

      // arrow-rs reads the stitched file too (a whole-file read, independent of our row-group path)
      const t = tableFromIPC(pw.readParquet(readFileSync(path)).intoIPCStream());
      assert.equal(t.numRows, n);
      assert.equal(t.schema.metadata.get('obsDim'), '17');

      // and our reader gives back exactly what was written
      const back = TransitionBatch.concat(await lastValueFrom(readTransitions(path).pipe(toArray())));
      for (const k of ['observation', 'action', 'reward', 'nextObservation', 'terminal', 'timeout', 'rawReward', 'penalty', 'episode', 'step'] as const) {
        assertExact(`reader ${k}`, back[k]!, all[k]!);
      }
      assert.equal(back.env, 'halfcheetah');
      assert.equal(tmpLeftovers().length, 0);
    });
  }

  test('columns that share memory (reward and raw_reward the same array) are written correctly', async () => {
    const b = makeBatches(1000, [], 3, [1000])[0]!;
    const shared = new TransitionBatch(b.dims, { ...b.columns, rawReward: b.reward, penalty: b.reward.subarray(0) });
    const path = join(dir, 'shared.parquet');
    await writeTransitionsFile(path, from([shared]), { vectorLayout: 'fixed-size-list' });
    const { cols } = await hyparquetColumns(path);
    assertExact('reward', cols.get('reward')!, b.reward);
    assertExact('raw_reward', cols.get('raw_reward')!, b.reward);
    assertExact('penalty', cols.get('penalty')!, b.reward);
  });

  test('metadata: our reader reports dims and layout of our file', async () => {
    const path = join(dir, 'info.parquet');
    await writeTransitionsFile(path, from(makeBatches(300)), { metadata: { source: 'test' } });
    const info = await readParquetInfo(path);
    assert.deepEqual(info.dims, DIMS);
    assert.equal(info.metadata['mopo.layout'], 'columns');
    assert.equal(info.metadata.source, 'test');
    assert.equal(info.transitions, 300);
    assert.ok(info.storage.every((c) => c.codec === 'SNAPPY'));
    assert.ok(info.storage.filter((c) => c.physicalType === 'FLOAT').every((c) => !c.encodings.includes('RLE_DICTIONARY')));
  });
});

describe('atomic output and cleanup', () => {
  test('the file appears only when complete; no temp file is left', async () => {
    const path = join(dir, 'atomic.parquet');
    const src = new Subject<TransitionBatch>();
    const done = lastValueFrom(src.pipe(writeTransitions(path, { rowGroupSize: 1000 })));
    for (const b of makeBatches(5000)) src.next(b);
    assert.equal(existsSync(path), false, 'no output before completion');
    assert.equal(tmpLeftovers().length, 1, 'a temp file while writing');
    src.complete();
    const s = await done;
    assert.equal(s.rows, 5000);
    assert.equal(s.rowGroups, 5);
    assert.equal(existsSync(path), true);
    assert.equal(tmpLeftovers().length, 0);
  });

  test('a source error leaves no output file and keeps an existing one untouched', async () => {
    const path = join(dir, 'failed.parquet');
    writeFileSync(path, 'previous contents');
    const src = concat(from(makeBatches(3000, [], 1, [1000])), throwError(() => new Error('upstream failed')));
    await assert.rejects(writeTransitionsFile(path, src, { rowGroupSize: 1000 }), /upstream failed/);
    assert.equal(readFileSync(path, 'utf8'), 'previous contents');
    assert.equal(tmpLeftovers().length, 0);
    const fresh = join(dir, 'failed-fresh.parquet');
    await assert.rejects(writeTransitionsFile(fresh, concat(from(makeBatches(10)), throwError(() => new Error('boom')))), /boom/);
    assert.equal(existsSync(fresh), false);
    assert.equal(tmpLeftovers().length, 0);
  });

  test('unsubscribing before completion removes the temp file', async () => {
    const path = join(dir, 'unsub.parquet');
    const src = new Subject<TransitionBatch>();
    const sub = src.pipe(writeTransitions(path, { rowGroupSize: 500 })).subscribe();
    for (const b of makeBatches(2000)) src.next(b);
    assert.equal(tmpLeftovers().length, 1);
    sub.unsubscribe();
    assert.equal(tmpLeftovers().length, 0);
    assert.equal(existsSync(path), false);
  });

  test('batches of different dims are a UserError and leave nothing', async () => {
    const path = join(dir, 'mixed.parquet');
    const other = TransitionBatch.allocate({ obsDim: 3, actDim: 1 }, 10);
    await assert.rejects(writeTransitionsFile(path, from([...makeBatches(100), other])), (e: unknown) => e instanceof UserError && /obsDim 3/.test(e.message));
    assert.equal(existsSync(path), false);
    assert.equal(tmpLeftovers().length, 0);
  });

  test('an empty source is an error unless dims are given (then an empty file with the schema)', async () => {
    const path = join(dir, 'empty.parquet');
    await assert.rejects(writeTransitionsFile(path, from([] as TransitionBatch[])), (e: unknown) => e instanceof UserError && /no transitions/.test(e.message));
    assert.equal(existsSync(path), false);
    const s = await writeTransitionsFile(path, from([] as TransitionBatch[]), { dims: DIMS });
    assert.equal(s.rows, 0);
    const info = await readParquetInfo(path);
    assert.deepEqual(info.dims, DIMS);
    assert.equal((await lastValueFrom(readTransitions(path).pipe(toArray()))).length, 0);
  });

  test('a missing output directory is a UserError naming the path', async () => {
    const path = join(dir, 'no-such-dir', 'x.parquet');
    await assert.rejects(writeTransitionsFile(path, from(makeBatches(10))), (e: unknown) => e instanceof UserError && e.message.includes(path) && /directory does not exist/.test(e.message));
  });

  test('the writer is a sink: its Observable emits one summary and completes', async () => {
    const path = join(dir, 'sink.parquet');
    const out = await lastValueFrom(new Observable<TransitionBatch>((s) => {
      for (const b of makeBatches(100)) s.next(b);
      s.complete();
    }).pipe(writeTransitions(path), toArray()));
    assert.equal(out.length, 1);
    assert.equal(out[0]!.rows, 100);
  });
});
