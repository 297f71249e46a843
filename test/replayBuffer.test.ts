// ArrowReplayBuffer: FIFO order and wrap-around, gather, uniform sampling, shard round trip.

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
  assert.equal(buf.snapshot().length, 2, 'a wrapped ring snapshots as two views');
  assertRows(snapshotIds(buf), range(3, 13));
  buf.append(idBatch(13, 7)); // a batch that itself wraps around the end
  assertRows(snapshotIds(buf), range(10, 20));
  buf.append(idBatch(100, 25)); // longer than the capacity: only its last 10 rows stay
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
