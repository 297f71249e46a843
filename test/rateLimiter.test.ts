import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimiter } from '../operators/rateLimiter.js';

test('rate limiter: minimum inserts before sampling, then a band around samples-per-insert', () => {
  const l = new RateLimiter({ samplesPerInsert: 4, minInserts: 1, errorBuffer: 4 });
  assert.equal(l.canSample(), false, 'nothing inserted yet');
  assert.equal(l.canInsert(), true);
  l.inserted();
  for (let i = 0; i < 4; i++) {
    assert.equal(l.canSample(), true, `sample ${i}`);
    l.sampled();
  }
  assert.equal(l.canSample(), false, 'the learner has used its share of the one insert');
  // diff = inserts·4 − samples must stay in [0, 8]: the producer may run two inserts ahead.
  l.inserted();
  assert.equal(l.canInsert(), true);
  l.inserted();
  assert.equal(l.canInsert(), false, 'a third insert ahead would leave the band');
  assert.equal(l.canSample(8), true);
  assert.equal(l.canSample(9), false);
});

test('rate limiter: a waiting side resumes when the other moves, and its wait time is counted', async () => {
  const l = new RateLimiter({ samplesPerInsert: 2, minInserts: 1, errorBuffer: 2 });
  let resumed = false;
  const p = l.waitToSample().then(() => {
    resumed = true;
  });
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(resumed, false);
  l.inserted();
  await p;
  assert.equal(resumed, true);
  assert.ok(l.stats().sampleWaitSeconds >= 0.02, `${l.stats().sampleWaitSeconds}`);
  l.sampled(2);
  l.inserted();
  l.inserted();
  const q = l.waitToInsert();
  let inserted = false;
  void q.then(() => (inserted = true));
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(inserted, false, 'already two inserts ahead of the samples');
  l.sampled(2);
  await q;
  assert.ok(l.stats().insertWaitSeconds > 0);
  const s = l.getState();
  const m = new RateLimiter({ samplesPerInsert: 2, minInserts: 1, errorBuffer: 2 });
  m.restore(s);
  assert.deepEqual(m.stats(), s);
});

test('rate limiter: a band narrower than one insert is refused', () => {
  assert.throws(() => new RateLimiter({ samplesPerInsert: 10, minInserts: 1, errorBuffer: 1 }), /errorBuffer/);
  assert.throws(() => new RateLimiter({ samplesPerInsert: 0, minInserts: 1, errorBuffer: 1 }), /samplesPerInsert/);
});
