import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../pipeline/backend.js';
import { batchToTensors } from '../pipeline/tensors.js';
import { TransitionBatch } from '../schemas/transition.js';
import { Rng } from '../pipeline/random.js';

test('a batch becomes tensors of the right shapes with the same values', async () => {
  await initBackend({ backend: 'wasm', log: () => {} });
  const b = TransitionBatch.allocate({ obsDim: 17, actDim: 6 }, 33);
  const rng = new Rng(11);
  rng.fillNormal(b.observation);
  rng.fillNormal(b.nextObservation);
  rng.fillNormal(b.action);
  rng.fillNormal(b.reward);
  b.terminal[5] = 1;
  const t = batchToTensors(b);
  assert.deepEqual(t.observation.shape, [33, 17]);
  assert.deepEqual(t.action.shape, [33, 6]);
  assert.deepEqual(t.reward.shape, [33]);
  assert.deepEqual(t.observation.dataSync(), b.observation);
  assert.deepEqual(t.nextObservation.dataSync(), b.nextObservation);
  assert.deepEqual(t.action.dataSync(), b.action);
  assert.equal(t.terminal.dataSync()[5], 1);
  assert.equal(tf.sum(t.terminal).dataSync()[0], 1);
  tf.dispose(Object.values(t));
});
