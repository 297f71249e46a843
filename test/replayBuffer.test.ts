// ArrowReplayBuffer: FIFO order and exact eviction (copied and by-reference appends), gather,
// uniform sampling, shard round trip, block sampling (sampleBlock, gatherBlock, sampleBlockMixed).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { from, lastValueFrom } from 'rxjs';
import { ArrowReplayBuffer } from '../operators/replayBuffer.js';
import { readShards, writeShards } from '../operators/shards.js';
import { TransitionBatch } from '../schemas/transition.js';
import { UserError } from '../pipeline/errors.js';
import { Rng } from '../pipeline/random.js';

const DIMS = { obsDim: 3, actDim: 2, env: 'test' };

/** Rows whose every value encodes the row id k: obs = [k, k+0.25, k+0.5], action = [-k, -k-0.5], ... */
function idBatch(first: number, n: number, optional = true): TransitionBatch {
  const b = TransitionBatch.allocate(DIMS, n, optional ? ['rawReward', 'penalty'] : []);
  for (let i = 0; i < n; i++) {
    const k = first + i;
    for (let j = 0; j < 3; j++) {
      b.observation[i * 3 + j] = k + j * 0.25;
      b.nextObservation[i * 3 + j] = k + 1 + j * 0.25;
    }
    b.action[i * 2] = -k;
    b.action[i * 2 + 1] = -k - 0.5;
    b.reward[i] = k * 10;
    b.terminal[i] = k % 3 === 0 ? 1 : 0;
    b.timeout[i] = k % 5 === 0 ? 1 : 0;
    if (optional) {
      b.rawReward![i] = k * 10 + 1;
      b.penalty![i] = k * 0.5;
    }
  }
  return b;
}

/** Asserts that row i of b is the row with id ids[i], in every column. */
function assertRows(b: TransitionBatch, ids: ArrayLike<number>, optional = true): void {
  assert.equal(b.length, ids.length);
  for (let i = 0; i < ids.length; i++) {
    const k = ids[i]!;
    const row = `row ${i} (id ${k})`;
    for (let j = 0; j < 3; j++) {
      assert.equal(b.observation[i * 3 + j], k + j * 0.25, `${row} observation`);
      assert.equal(b.nextObservation[i * 3 + j], k + 1 + j * 0.25, `${row} next_observation`);
    }
    assert.equal(b.action[i * 2], -k, `${row} action`);
    assert.equal(b.action[i * 2 + 1], -k - 0.5, `${row} action`);
    assert.equal(b.reward[i], k * 10, `${row} reward`);
    assert.equal(b.terminal[i], k % 3 === 0 ? 1 : 0, `${row} terminal`);
    assert.equal(b.timeout[i], k % 5 === 0 ? 1 : 0, `${row} timeout`);
    if (optional) {
      assert.equal(b.rawReward![i], k * 10 + 1, `${row} raw_reward`);
      assert.equal(b.penalty![i], k * 0.5, `${row} penalty`);
    }
  }
}

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
const snapshotIds = (buf: ArrowReplayBuffer) => TransitionBatch.concat(buf.snapshot());

test('FIFO order and wrap-around, one row and many rows at a time', () => {
  const buf = new ArrowReplayBuffer({ ...DIMS, capacity: 10, optional: ['rawReward', 'penalty'] });
  assert.equal(buf.size, 0);
  assert.deepEqual(buf.snapshot(), []);
  buf.append(idBatch(0, 4));
  assert.equal(buf.size, 4);
  assertRows(snapshotIds(buf), range(0, 4));
  for (let k = 4; k < 13; k++) buf.append(idBatch(k, 1)); // single steps, wrapping at 10
  assert.equal(buf.size, 10);
  assert.equal(buf.capacity, 10);
  assert.equal(buf.totalAppended, 13);
  assert.equal(buf.snapshot().length, 2, 'rows 0-9 filled one chunk (sealed, front cut at row 3), rows 10-12 the next');
  assertRows(snapshotIds(buf), range(3, 13));
  buf.append(idBatch(13, 7)); // copied: fills the open chunk and starts another
  assertRows(snapshotIds(buf), range(10, 20));
  buf.append(idBatch(100, 25)); // longer than the capacity: held by reference, only its last 10 rows count
  assertRows(snapshotIds(buf), range(115, 125));
  assert.equal(buf.totalAppended, 45);
  // gather with logical indices (0 = oldest)
  assertRows(buf.gather([0, 9, 4, 4]), [115, 124, 119, 119]);
  assert.throws(() => buf.gather([10]), RangeError);
  buf.clear();
  assert.equal(buf.size, 0);
});

test('append checks dims and the optional columns the buffer keeps', () => {
  const buf = new ArrowReplayBuffer({ ...DIMS, capacity: 8, optional: ['penalty'] });
  assert.throws(() => buf.append(idBatch(0, 2, false)), UserError);
  assert.throws(() => buf.append(TransitionBatch.allocate({ obsDim: 4, actDim: 2 }, 1, ['penalty'])), UserError);
  const plain = new ArrowReplayBuffer({ ...DIMS, capacity: 8 });
  plain.append(idBatch(0, 3)); // extra columns are dropped
  assert.deepEqual(plain.snapshot()[0]!.optionalColumns, []);
  assertRows(plain.gather([2, 0]), [2, 0], false);
  assert.throws(() => new ArrowReplayBuffer({ ...DIMS, capacity: 0 }), UserError);
  assert.throws(() => new ArrowReplayBuffer({ ...DIMS, capacity: 4 }).sample(1, new Rng(1)), /empty/);
});

test('sample gathers the right rows into a reused output batch', () => {
  const buf = new ArrowReplayBuffer({ ...DIMS, capacity: 50, optional: ['rawReward', 'penalty'] });
  buf.append(idBatch(0, 80)); // wrapped: ids 30..79
  const rng = new Rng(5, 'gather');
  const out = buf.allocateSample(64);
  const obsArray = out.observation;
  for (let round = 0; round < 3; round++) {
    const state = rng.getState();
    const got = buf.sample(64, rng, out);
    assert.equal(got, out, 'the output batch is reused');
    assert.equal(got.observation, obsArray);
    // the same draws, redone by hand
    const again = new Rng(0);
    again.setState(state);
    const ids = Array.from({ length: 64 }, () => 30 + again.int(50));
    assertRows(got, ids);
  }
  // into the middle of a larger batch (mixed sampling from two buffers)
  const big = buf.allocateSample(10);
  const r2 = new Rng(9);
  buf.sample(4, r2, big, 6);
  assert.equal(big.reward[0], 0, 'rows before the offset are untouched');
  assert.ok(big.reward[6]! >= 300 && big.reward[9]! >= 300);
  assert.throws(() => buf.sample(5, r2, big, 6), RangeError);
});

test('sampling is uniform over the rows held (chi-square)', () => {
  const size = 40;
  const buf = new ArrowReplayBuffer({ ...DIMS, capacity: size });
  buf.append(idBatch(0, size + 17, false)); // wrapped, so logical and physical order differ
  const rng = new Rng(2024, 'uniform');
  const counts = new Float64Array(size);
  const draws = 200_000;
  const out = buf.allocateSample(1000);
  for (let k = 0; k < draws / 1000; k++) {
    buf.sample(1000, rng, out);
    for (let i = 0; i < 1000; i++) counts[out.reward[i]! / 10 - 17]!++;
  }
  const expected = draws / size;
  let chi2 = 0;
  for (const c of counts) chi2 += (c - expected) ** 2 / expected;
  // 39 degrees of freedom: P(chi2 > 72) ≈ 1e-3. A biased sampler (e.g. one that never draws the
  // newest row, or favours the low indices) lands far above.
  assert.ok(chi2 < 72, `chi-square ${chi2.toFixed(1)} over ${size - 1} dof`);
  assert.ok(counts.every((c) => c > 0));
});

test('snapshot -> writeShards -> readShards -> restore round trip', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mopo-replay-'));
  try {
    const buf = new ArrowReplayBuffer({ ...DIMS, capacity: 100, optional: ['rawReward', 'penalty'] });
    buf.append(idBatch(0, 60));
    buf.append(idBatch(60, 77)); // wrapped: ids 37..136
    const manifest = await lastValueFrom(from(buf.snapshot()).pipe(writeShards({ dir, stage: 'replay', rowsPerShard: 30 })));
    assert.equal(manifest.rows, 100);
    const back = new ArrowReplayBuffer({ ...DIMS, capacity: 100, optional: ['rawReward', 'penalty'] });
    back.append(idBatch(1000, 5)); // restore replaces what was there
    assert.equal(await back.restore(readShards(dir)), 100);
    assert.equal(back.size, 100);
    const a = snapshotIds(buf);
    const b = snapshotIds(back);
    assertRows(b, range(37, 137));
    for (const k of ['observation', 'action', 'reward', 'nextObservation', 'terminal', 'timeout', 'rawReward', 'penalty'] as const) {
      assert.deepEqual(b[k], a[k], k);
    }
    // a smaller buffer keeps the newest rows, like appending them would
    const small = new ArrowReplayBuffer({ ...DIMS, capacity: 16, optional: ['penalty'] });
    await small.readShards(dir);
    assertRows(small.gather(range(0, 16)), range(121, 137), false);
    // convenience writer
    const dir2 = join(dir, 'again');
    const m2 = await small.writeShards({ dir: dir2 });
    assert.equal(m2.rows, 16);
    assert.equal(m2.stage, 'replay-buffer');
    // a buffer that keeps a column the shards lack refuses them
    const needs = new ArrowReplayBuffer({ ...DIMS, capacity: 16, optional: ['rawReward'] });
    await assert.rejects(needs.readShards(dir2), UserError);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** The buffer holds ids firstId… oldest first: by snapshot() and by gather() of every logical index. */
function assertHeld(buf: ArrowReplayBuffer, firstId: number, optional = true): void {
  const ids = range(firstId, firstId + buf.size);
  assertRows(snapshotIds(buf), ids, optional);
  assertRows(buf.gather(range(0, buf.size)), ids, optional);
}

test('eviction is exact in rows with mixed big (by reference) and small (copied) appends', () => {
  const cap = 100;
  const buf = new ArrowReplayBuffer({ ...DIMS, capacity: cap, chunkRows: 8, optional: ['rawReward', 'penalty'] });
  assert.equal(buf.chunkRows, 8);
  const rng = new Rng(77, 'mixed');
  // sizes straddle chunkRows (8) and include batches longer than the capacity
  const sizes = [1, 1, 3, 8, 2, 30, 7, 7, 7, 1, 64, 5, 9, 150, 1, 2, 3, 99, 100, 101, 4];
  for (let r = 0; r < 60; r++) sizes.push(rng.next() < 0.5 ? 1 + rng.int(7) : 8 + rng.int(60));
  let total = 0;
  for (const n of sizes) {
    buf.append(idBatch(total, n));
    total += n;
    assert.equal(buf.size, Math.min(total, cap), `after ${total} rows`);
    assert.equal(buf.totalAppended, total);
    assertHeld(buf, Math.max(0, total - cap));
    // logical indices: 0 = oldest, size-1 = newest
    assertRows(buf.gather([0, buf.size - 1]), [total - buf.size, total - 1]);
    // a bounded number of segments: each holds ≥ chunkRows rows except the front one, the open
    // chunk and the two pieces of a chunk split by a big append
    assert.ok(buf.snapshot().length <= (3 * cap) / 8 + 3, `${buf.snapshot().length} segments`);
  }
  buf.clear();
  assert.equal(buf.size, 0);
  assert.deepEqual(buf.snapshot(), []);
  buf.append(idBatch(5000, 3));
  assertHeld(buf, 5000);
});

test('a batch of at least chunkRows rows is held by reference; smaller ones are copied', () => {
  const buf = new ArrowReplayBuffer({ ...DIMS, capacity: 1000, chunkRows: 16, optional: ['penalty'] });
  const small = idBatch(0, 5);
  const big = idBatch(5, 40); // carries raw_reward too, which this buffer does not keep
  buf.append(small);
  buf.append(big);
  buf.append(idBatch(45, 3));
  const segs = buf.snapshot();
  assert.equal(segs.length, 3);
  assert.notEqual(segs[0]!.observation.buffer, small.observation.buffer, 'small appends are copied');
  for (const k of ['observation', 'action', 'reward', 'nextObservation', 'terminal', 'timeout', 'penalty'] as const) {
    assert.equal(segs[1]![k]!.buffer, big[k]!.buffer, `${k}: same underlying buffer`);
    assert.equal(segs[1]![k]!.byteOffset, big[k]!.byteOffset);
    assert.equal(segs[1]![k]!.length, big[k]!.length);
  }
  assert.deepEqual(segs[1]!.optionalColumns, ['penalty'], 'columns the buffer does not keep are left out');
  assert.equal(segs[1]!.env, 'test');
  // the chunk sealed by the big append hands its unused tail to the next small append: same storage
  assert.equal(segs[2]!.observation.buffer, segs[0]!.observation.buffer);
  assertHeld(buf, 0, false);
  // rows are never rewritten: earlier snapshot views survive later appends, evictions and clear()
  const before = TransitionBatch.concat(segs);
  for (let k = 48; k < 2100; k += 7) buf.append(idBatch(k, 7));
  buf.clear();
  buf.append(idBatch(9000, 3));
  assertRows(TransitionBatch.concat(segs), range(0, 48), false);
  assert.deepEqual(TransitionBatch.concat(segs).observation, before.observation);
});

test('sampling is uniform over a buffer of mixed segments (chi-square)', () => {
  const size = 60;
  const buf = new ArrowReplayBuffer({ ...DIMS, capacity: size, chunkRows: 10 });
  // a partly evicted referenced batch at the front, then chunks of single rows, a referenced
  // batch, a chunk sealed early, and a partly filled open chunk
  let id = 0;
  const add = (n: number) => {
    buf.append(idBatch(id, n, false));
    id += n;
  };
  add(25);
  for (let i = 0; i < 13; i++) add(1);
  add(12);
  add(3);
  add(20);
  add(4);
  add(1);
  assert.equal(buf.size, size);
  const oldest = id - size;
  assert.ok(buf.snapshot().length >= 5);
  const rng = new Rng(31, 'uniform-mixed');
  const counts = new Float64Array(size);
  const draws = 300_000;
  const out = buf.allocateSample(1000);
  for (let k = 0; k < draws / 1000; k++) {
    buf.sample(1000, rng, out);
    for (let i = 0; i < 1000; i++) counts[out.reward[i]! / 10 - oldest]!++;
  }
  const expected = draws / size;
  let chi2 = 0;
  for (const c of counts) chi2 += (c - expected) ** 2 / expected;
  // 59 degrees of freedom: P(chi2 > 98) ≈ 1e-3
  assert.ok(chi2 < 98, `chi-square ${chi2.toFixed(1)} over ${size - 1} dof`);
});

test('mixed segments survive snapshot -> shards -> restore, restored shard batches are held by reference', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mopo-replay-mixed-'));
  try {
    const opt = ['rawReward', 'penalty'] as const;
    const buf = new ArrowReplayBuffer({ ...DIMS, capacity: 120, chunkRows: 16, optional: opt });
    let id = 0;
    for (const n of [50, 3, 3, 1, 40, 9, 17, 2, 2, 30]) {
      buf.append(idBatch(id, n));
      id += n;
    }
    assert.equal(buf.size, 120);
    const m = await buf.writeShards({ dir, rowsPerShard: 40 });
    assert.equal(m.rows, 120);
    const back = new ArrowReplayBuffer({ ...DIMS, capacity: 120, chunkRows: 16, optional: opt });
    assert.equal(await back.readShards(dir), 120);
    assertHeld(back, id - 120);
    const rng1 = new Rng(3);
    const rng2 = new Rng(3);
    assert.deepEqual(back.sample(300, rng1).observation, buf.sample(300, rng2).observation);
    // restore through an iterable; segments ≥ chunkRows keep the arrays they came in
    const src = buf.snapshot();
    const again = new ArrowReplayBuffer({ ...DIMS, capacity: 120, chunkRows: 16, optional: opt });
    assert.equal(await again.restore(src), 120);
    const bigIn = src.filter((b) => b.length >= 16);
    const segs = again.snapshot();
    for (const b of bigIn) assert.ok(segs.some((s) => s.observation.buffer === b.observation.buffer && s.observation.byteOffset === b.observation.byteOffset));
    assertHeld(again, id - 120);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('errors: dims, missing columns (both append paths), output batch, indices, options', () => {
  const buf = new ArrowReplayBuffer({ ...DIMS, capacity: 64, chunkRows: 4, optional: ['rawReward', 'penalty'] });
  assert.throws(() => buf.append(idBatch(0, 2, false)), /lacks column raw_reward/); // copied path
  assert.throws(() => buf.append(idBatch(0, 20, false)), /lacks column raw_reward/); // by-reference path
  assert.throws(() => buf.append(TransitionBatch.allocate({ obsDim: 3, actDim: 1 }, 20, ['rawReward', 'penalty'])), UserError);
  assert.throws(() => buf.append(TransitionBatch.allocate({ obsDim: 2, actDim: 2 }, 1, ['rawReward', 'penalty'])), UserError);
  assert.equal(buf.size, 0, 'a refused batch leaves the buffer as it was');
  assert.equal(buf.totalAppended, 0);
  buf.append(idBatch(0, 10));
  assert.throws(() => buf.sample(4, new Rng(1), TransitionBatch.allocate(DIMS, 4)), /output batch lacks column raw_reward/);
  assert.throws(() => buf.sample(4, new Rng(1), TransitionBatch.allocate({ obsDim: 5, actDim: 2 }, 4, ['rawReward', 'penalty'])), UserError);
  assert.throws(() => buf.gather([-1]), RangeError);
  assert.throws(() => buf.gather([1.5]), RangeError);
  assert.throws(() => buf.gather([NaN]), RangeError);
  assert.throws(() => buf.sampleIndices(8, new Rng(1), new Uint32Array(4)), RangeError);
  assert.throws(() => new ArrowReplayBuffer({ ...DIMS, capacity: 8, chunkRows: 0 }), UserError);
  assert.throws(() => new ArrowReplayBuffer({ ...DIMS, capacity: 2.5 }), UserError);
  assert.equal(new ArrowReplayBuffer({ ...DIMS, capacity: 8, chunkRows: 100 }).chunkRows, 8, 'a chunk is at most the capacity');
  assertHeld(buf, 0);
});

// ---- block sampling ----

const OPT = ['rawReward', 'penalty'] as const;
const ALL_KEYS = ['observation', 'action', 'reward', 'nextObservation', 'terminal', 'timeout', 'rawReward', 'penalty'] as const;

/** A buffer of mixed segments: a partly evicted referenced batch, copied chunks, referenced batches, an open chunk. */
function mixedBuffer(capacity: number, chunkRows: number, optional = true): { buf: ArrowReplayBuffer; oldest: number } {
  const buf = new ArrowReplayBuffer({ ...DIMS, capacity, chunkRows, ...(optional ? { optional: OPT } : {}) });
  let id = 0;
  const add = (n: number) => {
    buf.append(idBatch(id, n, optional));
    id += n;
  };
  add(capacity); // evicted in part below: the front segment is cut
  for (let i = 0; i < chunkRows + 3; i++) add(1);
  add(chunkRows * 3 + 1);
  add(2);
  add(chunkRows);
  add(5);
  assert.equal(buf.size, capacity);
  assert.ok(buf.snapshot().length >= 5, `${buf.snapshot().length} segments`);
  return { buf, oldest: id - capacity };
}

/** A batch whose every value is `v` (a sentinel for rows/columns that must stay untouched). */
function filled(rows: number, v: number, optional: readonly ('rawReward' | 'penalty')[] = OPT): TransitionBatch {
  const b = TransitionBatch.allocate(DIMS, rows, optional);
  for (const k of ALL_KEYS) b[k]?.fill(v);
  return b;
}

function copyOf(b: TransitionBatch): TransitionBatch {
  const c = TransitionBatch.allocate(b.dims, b.length, b.optionalColumns);
  for (const k of [...ALL_KEYS, 'episode', 'step'] as const) (c[k] as Float32Array | undefined)?.set(b[k] as Float32Array);
  return c;
}

/** The reference: `count` rng.int(size) draws in order, from a copy of the rng state. */
function referenceDraws(state: number[], size: number, count: number): number[] {
  const r = new Rng(0);
  r.setState(state);
  return Array.from({ length: count }, () => r.int(size));
}

function rngAfter(state: number[], size: number, count: number): number[] {
  const r = new Rng(0);
  r.setState(state);
  for (let i = 0; i < count; i++) r.int(size);
  return r.getState();
}

test('sampleBlock = gather() of the indices drawn in batch order = successive sample() calls', () => {
  const { buf, oldest } = mixedBuffer(300, 16);
  const K = 37;
  const n = 11;
  const rng = new Rng(12, 'block');
  const state = rng.getState();
  const got = buf.sampleBlock(K, n, rng);
  assert.equal(got.length, K * n);
  // documented draw order: row i of batch u is the (u·n + i)-th rng.int(size)
  const idx = referenceDraws(state, buf.size, K * n);
  assertRows(got, idx.map((j) => oldest + j));
  const ref = buf.gather(idx);
  for (const k of ALL_KEYS) assert.deepEqual(got[k], ref[k], k);
  assert.deepEqual(rng.getState(), rngAfter(state, buf.size, K * n), 'exactly K·n draws consumed');
  // the same rows and rng state as K successive sample(n) calls
  const loopRng = new Rng(0);
  loopRng.setState(state);
  for (let u = 0; u < K; u++) {
    const b = buf.sample(n, loopRng);
    const slice = got.slice(u * n, (u + 1) * n);
    for (const k of ALL_KEYS) assert.deepEqual(slice[k], b[k], `batch ${u} ${k}`);
  }
  assert.deepEqual(loopRng.getState(), rng.getState());
  // gatherBlock of the same indices gives the same batch
  const again = buf.gatherBlock(idx, n);
  for (const k of ALL_KEYS) assert.deepEqual(again[k], got[k], k);
});

test('sampleBlock into slots of a reused staging batch; the other rows and columns are untouched', () => {
  const { buf, oldest } = mixedBuffer(200, 8);
  const K = 9;
  const B = 13;
  const n = 7;
  const off = 4;
  // the staging batch carries episode/step, which the buffer does not keep, and spare rows at the end
  const stage = TransitionBatch.allocate(DIMS, K * B + 3, ['rawReward', 'penalty', 'episode', 'step']);
  for (const k of [...ALL_KEYS, 'episode', 'step'] as const) stage[k]!.fill(-7);
  const rng = new Rng(4, 'slots');
  const state = rng.getState();
  const obs = stage.observation;
  const before = copyOf(stage); // what must stay
  assert.equal(buf.sampleBlock(K, n, rng, stage, { outRowsPerBatch: B, outOffset: off }), stage);
  assert.equal(stage.observation, obs, 'written in place');
  const idx = referenceDraws(state, buf.size, K * n);
  for (let u = 0; u < K; u++) {
    const batch = stage.slice(u * B, (u + 1) * B);
    assert.equal(batch.observation.buffer, stage.observation.buffer, 'per-update batches are views');
    assertRows(batch.slice(off, off + n), idx.slice(u * n, (u + 1) * n).map((j) => oldest + j));
    for (const row of [...range(0, off), ...range(off + n, B)]) {
      const r = u * B + row;
      for (const k of ALL_KEYS) {
        const w = k === 'observation' || k === 'nextObservation' ? 3 : k === 'action' ? 2 : 1;
        assert.deepEqual(stage[k]!.subarray(r * w, (r + 1) * w), before[k]!.subarray(r * w, (r + 1) * w), `batch ${u} row ${row} ${k} untouched`);
      }
    }
  }
  for (const k of ['episode', 'step'] as const) assert.ok(stage[k]!.every((v) => v === -7), `${k} untouched`);
  for (let r = K * B; r < K * B + 3; r++) assert.equal(stage.reward[r], -7, 'rows past the block untouched');
});

test('interleaved real/model slots: sampleBlockMixed = the per-update loop, two sampleBlock calls = their documented draws', () => {
  // real data keeps no optional columns, the model buffer keeps raw_reward and penalty (as in MOPO)
  const { buf: real, oldest: realOldest } = mixedBuffer(500, 32, false);
  const { buf: model, oldest: modelOldest } = mixedBuffer(300, 16);
  const K = 25;
  const nReal = 3;
  const nModel = 13;
  const B = nReal + nModel;
  const parts = [
    { buffer: real, rows: nReal },
    { buffer: model, rows: nModel },
  ];
  // 1. sampleBlockMixed against the loop sacConsumer runs now: per update, real then model
  const rng = new Rng(99, 'mopo/sampling');
  const state = rng.getState();
  const stage = filled(K * B, -3);
  assert.equal(ArrowReplayBuffer.sampleBlockMixed(parts, K, rng, stage), stage);
  const loopRng = new Rng(0);
  loopRng.setState(state);
  const out = filled(B, -3);
  for (let u = 0; u < K; u++) {
    real.sample(nReal, loopRng, out, 0);
    model.sample(nModel, loopRng, out, nReal);
    const batch = stage.slice(u * B, (u + 1) * B);
    for (const k of ALL_KEYS) assert.deepEqual(batch[k], out[k], `batch ${u} ${k}`);
    // real rows' raw_reward and penalty are left to the caller
    for (let i = 0; i < nReal; i++) assert.ok(batch.rawReward![i] === -3 && batch.penalty![i] === -3);
  }
  assert.deepEqual(rng.getState(), loopRng.getState(), 'the same draws, in the same order');
  // the rows are the drawn ones: interleaved draws, real ids then model ids in every batch
  const r = new Rng(0);
  r.setState(state);
  for (let u = 0; u < K; u++) {
    const realIds = Array.from({ length: nReal }, () => realOldest + r.int(real.size));
    const modelIds = Array.from({ length: nModel }, () => modelOldest + r.int(model.size));
    const batch = stage.slice(u * B, (u + 1) * B);
    assertRows(batch.slice(0, nReal), realIds, false);
    assertRows(batch.slice(nReal, B), modelIds);
  }
  // 2. the same slots by two sampleBlock calls: all real draws (batch order), then all model draws
  const rng2 = new Rng(5);
  const s2 = rng2.getState();
  const stage2 = filled(K * B, -3);
  real.sampleBlock(K, nReal, rng2, stage2, { outRowsPerBatch: B, outOffset: 0 });
  model.sampleBlock(K, nModel, rng2, stage2, { outRowsPerBatch: B, outOffset: nReal });
  const r2 = new Rng(0);
  r2.setState(s2);
  const realIdx = Array.from({ length: K * nReal }, () => r2.int(real.size));
  const modelIdx = Array.from({ length: K * nModel }, () => r2.int(model.size));
  assert.deepEqual(rng2.getState(), r2.getState());
  const stage3 = filled(K * B, -3);
  real.gatherBlock(realIdx, nReal, stage3, { outRowsPerBatch: B, outOffset: 0 });
  model.gatherBlock(modelIdx, nModel, stage3, { outRowsPerBatch: B, outOffset: nReal });
  for (const k of ALL_KEYS) assert.deepEqual(stage2[k], stage3[k], k);
  for (let u = 0; u < K; u++) {
    const batch = stage2.slice(u * B, (u + 1) * B);
    assertRows(batch.slice(0, nReal), realIdx.slice(u * nReal, (u + 1) * nReal).map((j) => realOldest + j), false);
    assertRows(batch.slice(nReal, B), modelIdx.slice(u * nModel, (u + 1) * nModel).map((j) => modelOldest + j));
  }
  // 3. a part with no rows draws nothing, and its buffer may be empty
  const empty = new ArrowReplayBuffer({ ...DIMS, capacity: 10 });
  const rng4 = new Rng(8);
  const s4 = rng4.getState();
  const only = ArrowReplayBuffer.sampleBlockMixed([{ buffer: empty, rows: 0 }, { buffer: model, rows: 4 }], 6, rng4);
  assert.equal(only.length, 24);
  assert.deepEqual(only.optionalColumns, ['rawReward', 'penalty']);
  assertRows(only, referenceDraws(s4, model.size, 24).map((j) => modelOldest + j));
});

test('sampleBlock from larger buffers: two and three radix passes', () => {
  // 5000 rows: indices of 13 bits, two 11-bit passes
  const { buf, oldest } = mixedBuffer(5000, 512);
  const rng = new Rng(1, 'radix');
  const state = rng.getState();
  const got = buf.sampleBlock(40, 100, rng);
  assertRows(got, referenceDraws(state, buf.size, 4000).map((j) => oldest + j));
  // 2^22 + 5 rows (1-dim columns, the reward holds the row id): 23-bit indices, three passes
  const size = 2 ** 22 + 5;
  const dims = { obsDim: 1, actDim: 1 };
  const big = new ArrowReplayBuffer({ ...dims, capacity: size });
  const b = TransitionBatch.allocate(dims, size - 100);
  for (let i = 0; i < b.length; i++) b.reward[i] = i;
  const tail = TransitionBatch.allocate(dims, 100);
  for (let i = 0; i < 100; i++) tail.reward[i] = size - 100 + i;
  big.append(b);
  big.append(tail); // copied into a chunk: two segments
  const r2 = new Rng(2, 'radix3');
  const s2 = r2.getState();
  const blk = big.sampleBlock(50, 200, r2);
  const want = referenceDraws(s2, size, 10_000);
  for (let i = 0; i < want.length; i++) assert.equal(blk.reward[i], want[i], `row ${i}`);
  // indices that differ only in the third digit (bit 22 and up), among random ones
  const picks = [2 ** 22 + 4, 7, 2 ** 22, size - 1, 2 ** 22 - 1, 0, 2 ** 22 + 4, 2 ** 11, ...want.slice(0, 992)];
  const g = big.gatherBlock(picks, 8, undefined, { outRowsPerBatch: 9, outOffset: 1 });
  assert.equal(g.length, 125 * 9);
  for (let i = 0; i < picks.length; i++) assert.equal(g.reward[Math.floor(i / 8) * 9 + 1 + (i % 8)], picks[i], `pick ${i}`);
});

test('sampleBlock with rows wider than the unrolled copies (the loop fallback)', () => {
  const dims = { obsDim: 70, actDim: 2 };
  const buf = new ArrowReplayBuffer({ ...dims, capacity: 300, chunkRows: 32 });
  const rng = new Rng(3, 'wide');
  for (const n of [100, 5, 5, 64, 200]) {
    const b = TransitionBatch.allocate(dims, n);
    rng.fillNormal(b.observation);
    rng.fillNormal(b.nextObservation);
    rng.fillNormal(b.action);
    rng.fillNormal(b.reward);
    buf.append(b);
  }
  const state = rng.getState();
  const got = buf.sampleBlock(20, 9, rng);
  const ref = buf.gather(referenceDraws(state, buf.size, 180));
  for (const k of ['observation', 'action', 'reward', 'nextObservation', 'terminal', 'timeout'] as const) assert.deepEqual(got[k], ref[k], k);
});

test('sampleBlock is uniform over the rows held, in every slot (chi-square)', () => {
  const size = 60;
  const { buf, oldest } = mixedBuffer(size, 10, false);
  const rng = new Rng(2025, 'block-uniform');
  const K = 500;
  const n = 40;
  const counts = new Float64Array(size);
  // per slot position: first vs second half of each batch, to catch a sort that leaks into slots
  const halves = [new Float64Array(size), new Float64Array(size)];
  const out = buf.allocateSample(K * n);
  for (let rep = 0; rep < 15; rep++) {
    buf.sampleBlock(K, n, rng, out);
    for (let j = 0; j < K * n; j++) {
      const id = out.reward[j]! / 10 - oldest;
      counts[id]!++;
      halves[(j % n) < n / 2 ? 0 : 1]![id]!++;
    }
  }
  const chi2 = (c: Float64Array) => {
    const total = c.reduce((a, b) => a + b, 0);
    const expected = total / size;
    return c.reduce((a, x) => a + (x - expected) ** 2 / expected, 0);
  };
  // 59 degrees of freedom: P(chi2 > 98) ≈ 1e-3
  assert.ok(chi2(counts) < 98, `chi-square ${chi2(counts).toFixed(1)}`);
  for (const h of halves) assert.ok(chi2(h) < 98, `slot half chi-square ${chi2(h).toFixed(1)}`);
});

test('block sampling errors: arguments, output batch, indices, empty buffers; nothing is drawn on an error', () => {
  const { buf } = mixedBuffer(100, 8);
  const rng = new Rng(6);
  const state = rng.getState();
  const stage = buf.allocateSample(40);
  const other = new ArrowReplayBuffer({ obsDim: 4, actDim: 2, capacity: 5 });
  other.append(TransitionBatch.allocate({ obsDim: 4, actDim: 2 }, 5));
  const bad: [string, () => unknown, RegExp | typeof UserError | typeof RangeError][] = [
    ['negative batches', () => buf.sampleBlock(-1, 4, rng, stage), /batches must be a non-negative integer/],
    ['fractional batches', () => buf.sampleBlock(1.5, 4, rng, stage), /batches must be a non-negative integer/],
    ['NaN rows', () => buf.sampleBlock(2, NaN, rng, stage), /rowsPerBatch must be a non-negative integer/],
    ['negative offset', () => buf.sampleBlock(2, 4, rng, stage, { outOffset: -1, outRowsPerBatch: 8 }), /outOffset/],
    ['slot overflows its batch', () => buf.sampleBlock(2, 4, rng, stage, { outOffset: 5, outRowsPerBatch: 8 }), /outRowsPerBatch \(8\) must be an integer ≥ outOffset \+ rowsPerBatch/],
    ['fewer rows per batch than sampled', () => buf.sampleBlock(2, 4, rng, stage, { outRowsPerBatch: 3 }), /outRowsPerBatch/],
    ['output too small', () => buf.sampleBlock(6, 4, rng, stage, { outRowsPerBatch: 8 }), /output batch has 40 rows, a block of 6 batches of 8 rows needs 48/],
    ['output lacks a kept column', () => buf.sampleBlock(2, 4, rng, TransitionBatch.allocate(DIMS, 8)), /output batch lacks column raw_reward/],
    ['output of other dims', () => buf.sampleBlock(2, 4, rng, TransitionBatch.allocate({ obsDim: 4, actDim: 2 }, 8, OPT)), UserError],
    ['empty buffer', () => new ArrowReplayBuffer({ ...DIMS, capacity: 5 }).sampleBlock(2, 2, rng), /empty/],
    ['mixed: no parts', () => ArrowReplayBuffer.sampleBlockMixed([], 2, rng), /no parts/],
    ['mixed: no rows', () => ArrowReplayBuffer.sampleBlockMixed([{ buffer: buf, rows: 0 }], 2, rng), /no rows/],
    ['mixed: negative rows', () => ArrowReplayBuffer.sampleBlockMixed([{ buffer: buf, rows: -2 }, { buffer: buf, rows: 4 }], 2, rng), /non-negative/],
    ['mixed: empty buffer with rows', () => ArrowReplayBuffer.sampleBlockMixed([{ buffer: buf, rows: 2 }, { buffer: new ArrowReplayBuffer({ ...DIMS, capacity: 5 }), rows: 1 }], 2, rng), /empty/],
    ['mixed: dims differ', () => ArrowReplayBuffer.sampleBlockMixed([{ buffer: buf, rows: 2 }, { buffer: other, rows: 1 }], 2, rng), /buffers hold dims obs 4\/act 2 and obs 3\/act 2/],
    ['mixed: output too small', () => ArrowReplayBuffer.sampleBlockMixed([{ buffer: buf, rows: 2 }, { buffer: buf, rows: 3 }], 9, rng, stage), /needs 45/],
  ];
  for (const [what, f, err] of bad) {
    assert.throws(f, err as never, what);
    assert.deepEqual(rng.getState(), state, `${what}: no draw consumed`);
  }
  // gatherBlock checks the indices (logical, integer, in range) and whole batches
  assert.throws(() => buf.gatherBlock([0, 1, 2], 2), /not whole batches/);
  assert.throws(() => buf.gatherBlock([0, 1], 0), /rowsPerBatch must be a positive integer/);
  assert.throws(() => buf.gatherBlock([0, 100], 2), /index 100 out of range \[0, 100\)/);
  assert.throws(() => buf.gatherBlock([-1, 0], 1), RangeError);
  assert.throws(() => buf.gatherBlock([0.5, 0], 1), RangeError);
  assert.throws(() => buf.gatherBlock([NaN, 0], 1), RangeError);
  // zero batches or zero rows: nothing drawn, nothing written
  const before = stage.reward.slice();
  assert.equal(buf.sampleBlock(0, 4, rng, stage).length, 40);
  assert.equal(buf.sampleBlock(5, 0, rng, stage, { outRowsPerBatch: 8 }), stage);
  assert.equal(buf.sampleBlock(0, 4, rng).length, 0);
  assert.deepEqual(stage.reward, before);
  assert.deepEqual(rng.getState(), state);
  // a block sampled, then the buffer changes: the staging batch is a copy and stays as it was
  const got = buf.sampleBlock(5, 8, rng, stage).reward.slice();
  buf.append(idBatch(10_000, 200));
  assert.deepEqual(stage.reward.subarray(0, 40), got);
});
