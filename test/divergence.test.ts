// The divergence script's cases: each guard stops training within one step, before the update is
// applied, naming the stage (and, end to end, the last good checkpoint).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { poisonedBatchCases, endToEndCase } from '../scripts/divergence.js';

test('poisoned batches: the ensemble and SAC guards stop at once, weights untouched', async () => {
  const cases = await poisonedBatchCases();
  assert.equal(cases.length, 3);
  for (const c of cases) assert.ok(c.ok, `${c.name}: ${c.detail}`);
});

test('mopo train with one reward of 1e9 in the real data stops naming SAC and the last good checkpoint', { timeout: 240_000 }, async () => {
  const c = await endToEndCase();
  assert.ok(c.ok, c.detail);
});
