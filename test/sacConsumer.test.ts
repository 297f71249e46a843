// The MOPO learner against a fake rollout producer: the real/model mixing ratio of every batch,
// the deterministic schedule (round k enters at update k·E), and the learner's wait for a slow
// producer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Subject, lastValueFrom, tap, toArray } from 'rxjs';
import { initBackend } from '../pipeline/backend.js';
import { Rng } from '../pipeline/random.js';
import { TransitionBatch } from '../schemas/transition.js';
import { ArrowReplayBuffer } from '../operators/replayBuffer.js';
import { SacAgent } from '../operators/sac.js';
import { RateLimiter } from '../operators/rateLimiter.js';
import { resolveSacConsumerConfig, sacConsumer, scheduledLr } from '../operators/sacConsumer.js';
import { actorWeightsOf, type RolloutOutput, type RolloutRequest } from '../operators/rolloutWorker.js';
import type { RolloutStats } from '../operators/rollout.js';

const dims = { obsDim: 3, actDim: 1 };
const zero = { mean: 0, std: 0, min: 0, max: 0 };

function roundBatch(round: number, rows: number): TransitionBatch {
  const b = TransitionBatch.allocate(dims, rows, ['rawReward', 'penalty']);
  b.penalty!.fill(round + 1); // marks the round a model row came from
  return b;
}

/** A fake producer's answer to request r: one 100-row batch of round r, then its end, after delayMs. */
function respondLater(out: Subject<RolloutOutput>, r: RolloutRequest, delayMs: number): void {
  setTimeout(() => {
    out.next({ type: 'batch', round: r.round, batch: roundBatch(r.round, 100) });
    out.next({ type: 'round', round: r.round, stats: fakeStats(100), rng: { starts: [], model: [], policy: [] }, busySeconds: 0, waitSeconds: 0 });
  }, delayMs);
}

/** A small agent (batch 20), 100 real rows and an empty model buffer of modelRows. */
async function smallLearner(seed: number, modelRows: number) {
  await initBackend({ log: () => {} });
  const agent = SacAgent.create({ hidden: [8], batchSize: 20 }, dims, new Rng(seed, 'a'));
  const real = new ArrowReplayBuffer({ ...dims, capacity: 100 });
  real.append(TransitionBatch.allocate(dims, 100));
  const model = new ArrowReplayBuffer({ ...dims, capacity: modelRows, optional: ['rawReward', 'penalty'] });
  return { agent, real, model };
}

function fakeStats(rows: number): RolloutStats {
  return { round: 0, step: 0, starts: rows, rows, rowsPerStep: [rows], penaltyPerStep: [0], terminated: 0, terminatedFraction: 0, nonFinite: 0, penalty: zero, rawReward: zero, reward: zero, seconds: { total: 0, policy: 0, predict: 0 } };
}

test('sacConsumer: 5 % real rows in every batch, round k enters at update k·E, and a slow producer makes the learner wait', async () => {
  await initBackend({ log: () => {} });
  const agent = SacAgent.create({ hidden: [16, 16], batchSize: 40 }, dims, new Rng(1, 'a'));
  const real = new ArrowReplayBuffer({ ...dims, capacity: 500 });
  const rb = TransitionBatch.allocate(dims, 500);
  new Rng(2).fillNormal(rb.reward);
  real.append(rb);
  const model = new ArrowReplayBuffer({ ...dims, capacity: 3 * 100, optional: ['rawReward', 'penalty'] });
  const E = 10;
  const limiter = new RateLimiter({ samplesPerInsert: E, minInserts: 1, errorBuffer: E });
  const out = new Subject<RolloutOutput>();
  const requests: RolloutRequest[] = [];
  const seen: { update: number; realRows: number; modelRounds: Set<number>; rawIsReward: boolean }[] = [];
  const update = agent.update.bind(agent);
  agent.update = ((b: TransitionBatch, o?: { metrics?: boolean }) => {
    const realRows = b.penalty!.filter((p) => p === 0).length;
    const rounds = new Set(Array.from(b.penalty!.subarray(realRows), (p) => p - 1));
    let rawIsReward = true;
    for (let i = 0; i < realRows; i++) if (b.rawReward![i] !== b.reward[i]) rawIsReward = false;
    seen.push({ update: agent.updates, realRows, modelRounds: rounds, rawIsReward });
    return update(b, o as { metrics: boolean });
  }) as typeof agent.update;
  const events = await lastValueFrom(
    out.pipe(
      sacConsumer({ epochs: 4, epochLength: E, rolloutEvery: E, realRatio: 0.05, metricsEvery: 5 }, {
        agent,
        real,
        model,
        limiter,
        request: (r) => {
          requests.push(r);
          respondLater(out, r, r.round === 2 ? 1000 : 0); // round 2 is late
        },
      }),
      toArray(),
    ),
  );
  assert.equal(events.length, 4);
  assert.equal(seen.length, 40);
  for (const s of seen) {
    assert.equal(s.realRows, 2, `update ${s.update}: floor(40 · 0.05) real rows`);
    assert.ok(s.rawIsReward, 'real rows carry raw_reward = reward, penalty 0');
    const k = Math.floor(s.update / E);
    assert.ok(Math.max(...s.modelRounds) <= k, `update ${s.update} sees round ${Math.max(...s.modelRounds)} before its time`);
  }
  assert.ok(seen.filter((s) => s.update >= 10 && s.update < 20).some((s) => s.modelRounds.has(1)), 'round 1 is used from update 10');
  assert.deepEqual(requests.map((r) => [r.round, r.step]), [[0, 0], [1, 0], [2, 10], [3, 20]], 'round k+1 is requested when round k enters, none past the end');
  assert.equal(events[3]!.modelBufferSize, 300, 'the model buffer keeps its last 3 rounds');
  assert.ok(events[3]!.learnerWaitSeconds >= 0.3, `the learner waited for the late round: ${events[3]!.learnerWaitSeconds}`);
  assert.ok(events[1]!.producerWaitSeconds > 0, 'the producer idles while no request is outstanding');
  agent.dispose();
});

test('sacConsumer: rolloutLag 0 asks for round k at update k·E with the policy of that moment; a run resumed from it with lag 1 asks ahead again', async () => {
  const { agent, real, model } = await smallLearner(4, 300);
  const E = 10;
  const config = { epochs: 4, epochLength: E, rolloutEvery: E, realRatio: 0.05, metricsEvery: 5 };
  const out = new Subject<RolloutOutput>();
  const asked: { round: number; step: number; updatesThen: number; weightsAreCurrent: boolean }[] = [];
  const request = (r: RolloutRequest) => {
    const now = actorWeightsOf(agent);
    const weightsAreCurrent = r.actorWeights.every((w, i) => w.length === now[i]!.length && w.every((v, j) => v === now[i]![j]));
    asked.push({ round: r.round, step: r.step, updatesThen: agent.updates, weightsAreCurrent });
    respondLater(out, r, 0);
  };
  const events = await lastValueFrom(
    out.pipe(sacConsumer({ ...config, rolloutLag: 0 }, { agent, real, model, limiter: new RateLimiter({ samplesPerInsert: E, minInserts: 1, errorBuffer: E }), request }), toArray()),
  );
  assert.equal(events.length, 4);
  assert.deepEqual(asked.map((a) => [a.round, a.step, a.updatesThen]), [[0, 0, 0], [1, 10, 10], [2, 20, 20], [3, 30, 30]], 'round k is asked for at update k·E, not a round ahead');
  assert.ok(asked.every((a) => a.weightsAreCurrent), 'each request carries the actor as it is at that moment');
  const at2 = events[1]!.position;
  assert.equal(at2.pending, null, 'nothing is in flight at an epoch end with lag 0');

  // Resumed with lag 1 from that position: round 2 is asked for at its insertion (nothing was in
  // flight), and round 3 right after, a round ahead.
  asked.length = 0;
  const limiter = new RateLimiter({ samplesPerInsert: E, minInserts: 1, errorBuffer: E });
  const resumed = await lastValueFrom(out.pipe(sacConsumer({ ...config, rolloutLag: 1 }, { agent, real, model, limiter, request, resume: at2 }), toArray()));
  assert.deepEqual(resumed.map((e) => e.epoch), [2, 3]);
  assert.deepEqual(asked.map((a) => [a.round, a.step]), [[2, 20], [3, 20]]);
  assert.throws(() => sacConsumer({ ...config, rolloutLag: 2 as 0 }, { agent, real, model, limiter, request }), /rolloutLag must be 0 or 1, got 2/);
  agent.dispose();
});

test('sacConsumer: a producer error is reported only after the work held downstream has finished', async () => {
  const { agent, real, model } = await smallLearner(3, 200);
  const E = 10;
  const limiter = new RateLimiter({ samplesPerInsert: E, minInserts: 1, errorBuffer: E });
  const out = new Subject<RolloutOutput>();
  let heldFinished = false;
  const failure = lastValueFrom(
    out.pipe(
      sacConsumer({ epochs: 4, epochLength: E, rolloutEvery: E, realRatio: 0.05, metricsEvery: 5 }, {
        agent,
        real,
        model,
        limiter,
        request: (r) => respondLater(out, r, 0),
      }),
      tap((e) => {
        if (e.epoch !== 0) return;
        // A checkpoint write still going when the producer fails.
        e.hold(new Promise<void>((r) => setTimeout(() => ((heldFinished = true), r()), 300)));
        setTimeout(() => out.error(new Error('producer failed')), 10);
      }),
    ),
  );
  await assert.rejects(failure, (e: unknown) => {
    assert.ok(heldFinished, 'the error arrived while the held write was still going');
    return (e as Error).message === 'producer failed';
  });
  agent.dispose();
});

test('scheduledLr: constant keeps the base rate; cosine is torch\'s CosineAnnealingLR stepped after each epoch', () => {
  assert.equal(scheduledLr(1e-4, 'constant', 2999, 3000), 1e-4);
  assert.equal(scheduledLr(1e-4, 'cosine', 0, 3000), 1e-4);
  assert.ok(Math.abs(scheduledLr(1e-4, 'cosine', 1500, 3000) - 5e-5) < 1e-18, 'half the base rate halfway');
  // (1 + cos(π/4)) / 2 = 0.8535533905932737, by hand
  assert.ok(Math.abs(scheduledLr(1, 'cosine', 750, 3000) - 0.8535533905932737) < 1e-15);
  // the last epoch: (1 − cos(π/3000)) / 2 ≈ (π/3000)² / 4 = 2.7416e-7 of the base rate
  assert.ok(Math.abs(scheduledLr(1, 'cosine', 2999, 3000) / 2.7416e-7 - 1) < 1e-3);
  assert.throws(() => resolveSacConsumerConfig({ actorLrSchedule: 'linear' as never }), /actorLrSchedule must be constant or cosine, got "linear"/);
});
