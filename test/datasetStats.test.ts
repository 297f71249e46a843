import { test } from 'node:test';
import assert from 'node:assert/strict';
import { from, lastValueFrom } from 'rxjs';
import { RunningMoments, datasetStats } from '../operators/datasetStats.js';
import { TransitionBatch } from '../schemas/transition.js';
import { pendulumRandomDataset } from '../pipeline/defaultDataset.js';
import { Rng } from '../pipeline/random.js';

function naive(values: Float32Array, dim: number) {
  const n = values.length / dim;
  const mean = new Array<number>(dim).fill(0);
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) mean[j]! += values[i * dim + j]!;
  for (let j = 0; j < dim; j++) mean[j]! /= n;
  const v = new Array<number>(dim).fill(0);
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) v[j]! += (values[i * dim + j]! - mean[j]!) ** 2;
  return { mean, std: v.map((x) => Math.sqrt(x / n)) };
}

test('moments merged from shards equal one pass over the whole, and are stable at a large offset', () => {
  const rng = new Rng(5);
  const dim = 4;
  const all = new Float32Array(30000 * dim);
  // a large common offset with a small spread: the naive sum-of-squares formula loses it
  for (let i = 0; i < all.length; i++) all[i] = 1e4 + rng.normal() * 0.01 * ((i % dim) + 1);
  const whole = new RunningMoments(dim);
  whole.update(all);
  const parts = [0, 7000, 7001, 19000, 30000];
  const merged = new RunningMoments(dim);
  for (let p = 0; p + 1 < parts.length; p++) {
    const m = new RunningMoments(dim);
    m.update(all.subarray(parts[p]! * dim, parts[p + 1]! * dim));
    merged.merge(m);
  }
  const ref = naive(all, dim);
  for (let j = 0; j < dim; j++) {
    assert.ok(Math.abs(merged.mean[j]! - whole.mean[j]!) < 1e-9, 'merged mean = whole mean');
    assert.ok(Math.abs(merged.std()[j]! - whole.std()[j]!) < 1e-9, 'merged std = whole std');
    assert.ok(Math.abs(whole.mean[j]! - ref.mean[j]!) < 1e-7);
    assert.ok(Math.abs(whole.std()[j]! / ref.std[j]! - 1) < 1e-6, `std dim ${j}: ${whole.std()[j]} vs ${ref.std[j]}`);
  }
  assert.equal(merged.rows, 30000);
});

test('non-finite values are counted with their first row and kept out of the moments', () => {
  const m = new RunningMoments(2);
  m.update(new Float32Array([1, 2, 3, 4]));
  m.update(new Float32Array([Number.NaN, 6, 5, Number.POSITIVE_INFINITY]));
  assert.equal(m.nonFinite, 2);
  assert.equal(m.firstNonFiniteRow, 2);
  assert.deepEqual(Array.from(m.mean), [3, 4]);
  assert.deepEqual(Array.from(m.max), [5, 6]);
});

test('datasetStats counts episodes, flags and returns from the stream', async () => {
  // 3 episodes of the 200-step pendulum time limit, streamed in odd batch sizes
  const stats = await lastValueFrom(pendulumRandomDataset({ steps: 600, seed: 1, batchSize: 77 }).pipe(datasetStats()));
  assert.equal(stats.rows, 600);
  assert.equal(stats.episodes, 3);
  assert.equal(stats.timeouts, 3);
  assert.equal(stats.terminals, 0);
  assert.equal(stats.obsDim, 3);
  assert.equal(stats.actDim, 1);
  assert.equal(stats.env, 'pendulum');
  assert.equal(stats.episodeLengths?.mean, 200);
  assert.ok(stats.reward.max <= 0 && stats.reward.min >= -16.3, 'pendulum rewards lie in [-16.27, 0]');
  assert.ok(Math.abs(stats.episodeReturns!.mean * 3 - stats.reward.mean * 600) < 1e-3);
  const cos = stats.columns['observation']!;
  assert.ok(cos.max[0]! <= 1 && cos.min[0]! >= -1);

  // without an episode column, terminal/timeout flags delimit episodes
  const b = TransitionBatch.allocate({ obsDim: 1, actDim: 1 }, 5);
  b.reward.set([1, 2, 3, 4, 5]);
  b.terminal[1] = 1;
  b.timeout[3] = 1;
  const s2 = await lastValueFrom(from([b]).pipe(datasetStats()));
  assert.equal(s2.episodes, 3);
  assert.deepEqual([s2.episodeReturns!.min, s2.episodeReturns!.max], [3, 7]);
});
