// The divergence script's cases: each guard stops training within one step, before the update is
// applied, naming the stage (and, end to end, the last good checkpoint).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { poisonedBatchCases, endToEndCase } from '../scripts/divergence.js';

test('poisoned batches: the ensemble and SAC guards stop at once, weights untouched', async () => {
  const cases = await poisonedBatchCases();
  assert.equal(cases.length, 3);
  // Each case snapshots the weights before every update and compares them with the last snapshot
  // when the guard throws; the SAC cases also require that no poisoned update was applied (the
  // 1e12 reward is caught through its TD target, not after Q has crept up to the limit).
  assert.deepEqual(cases.map((c) => c.name), ['dynamics: NaN target', 'SAC: NaN reward: stopped at the first poisoned update', 'SAC: reward 1e12: stopped at the first poisoned update']);
  for (const c of cases) assert.ok(c.ok, `${c.name}: ${c.detail}`);
  for (const c of cases.slice(1)) assert.match(c.detail, /at update 2; the update was not applied.*\(0 poisoned updates applied before the guard\)$/, c.detail);
  assert.match(cases[2]!.detail, /TD target reached 1\.00e\+12/);
});

test('mopo train with one reward of 1e9 in the real data stops naming SAC and the last good checkpoint', { timeout: 240_000 }, async () => {
  const c = await endToEndCase();
  assert.ok(c.ok, c.detail);
});
