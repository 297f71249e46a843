// MOPO end to end on a tiny Pendulum setup: the graph runs, writes its run directory, and a run
// stopped at a checkpoint and resumed reproduces the uninterrupted run's later epochs exactly,
// whichever policy the rollouts use (rolloutLag 1 or 0).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withPendulumDataset, readJsonl } from './pendulumFixture.js';
import { trainDynamicsInto } from '../pipeline/commands/trainDynamics.js';
import type { BackendName } from '../pipeline/backend.js';
import { presetConfig, runMopo, type MopoConfig, type MetricsLine } from '../pipeline/mopo.js';
import { scheduledLr } from '../operators/sacConsumer.js';

function tinyConfig(dataset: string, dynamics: string): MopoConfig {
  const c = presetConfig('quick', 'pendulum', dataset, null);
  c.dynamicsFrom = dynamics;
  c.rollout = { ...c.rollout, batch: 200, horizon: 3, lambda: 1, rolloutEvery: 50 };
  c.sac = { hidden: [32, 32], batchSize: 64 };
  c.learner = { ...c.learner, epochs: 4, epochLength: 50, metricsEvery: 10 };
  c.retainEpochs = 2;
  c.evaluate = { every: 2, episodes: 2 };
  c.checkpointEvery = 2;
  return c;
}

const metrics = (dir: string) => readJsonl<MetricsLine>(join(dir, 'metrics.jsonl'));

test('mopo: a run, and a run stopped at epoch 1 then resumed, agree exactly on the later epochs, with rollouts a round behind (the default) or at each insertion', { timeout: 240_000 }, async () => {
  await withPendulumDataset('mopo-e2e-', { steps: 3000, seed: 0 }, async ({ dir, dataset, backend }) => {
    await trainDynamicsInto(join(dir, 'dyn'), { dataset, read: {}, ensemble: { members: 3, elites: 2, hidden: [32, 32], maxEpochs: 2 }, backend, quiet: true });

    const a = await runMopo(join(dir, 'a'), tinyConfig(dataset, join(dir, 'dyn')), { backend, quiet: true });
    assert.equal(a.epochs, 4);
    assert.equal(a.updates, 200);
    assert.equal(a.stoppedEarly, false);
    assert.ok(a.evaluation && a.evaluation.returns.length === 2);
    for (const f of ['config.json', 'metrics.jsonl', 'learning-curve.svg', 'penalty.svg', 'summary.json', 'checkpoints/latest.json']) assert.ok(existsSync(join(dir, 'a', f)), f);
    const ma = metrics(join(dir, 'a'));
    assert.deepEqual(ma.map((m) => m.epoch), [0, 1, 2, 3]);
    assert.ok(ma.every((m) => m.rollout !== null && m.rollout.rows === 600), 'every round: 200 starts × 3 steps (the pendulum never terminates)');
    assert.ok(ma.every((m) => m.rollout!.penaltyMean > 0 && m.rollout!.rewardMean < m.rollout!.rawRewardMean), 'λ·u lowers the reward');
    assert.equal(ma[3]!.modelBufferSize, 1200, 'the model buffer keeps retainEpochs rounds');
    assert.ok(ma[1]!.evaluation !== null && ma[0]!.evaluation === null);
    // A run of hours must not leak: the learner's tensor count is the same at every epoch's end
    // (updates, rounds received, evaluations and checkpoints all give back what they take).
    const tensors = ma.map((m) => m.memory.learnerTensors);
    assert.ok(tensors.every((n) => n === tensors[0]), `tensors at each epoch's end: ${tensors.join(', ')}`);
    assert.ok(ma.every((m) => m.memory.rssMB > 0 && m.memory.heapUsedMB > 0));

    await stopAtFirstCheckpointThenResume(join(dir, 'b'), tinyConfig(dataset, join(dir, 'dyn')), ma, backend);

    // Rollouts at each round's insertion, with the policy of that moment (rolloutLag 0): round 0 is
    // the same (the initial policy either way), later rounds see a newer policy; a stopped and
    // resumed run agrees exactly with it too.
    const lag0 = () => {
      const c = tinyConfig(dataset, join(dir, 'dyn'));
      c.learner.rolloutLag = 0;
      return c;
    };
    await runMopo(join(dir, 'c'), lag0(), { backend, quiet: true });
    const mc = metrics(join(dir, 'c'));
    assert.equal(mc[0]!.rollout!.penaltyMean, ma[0]!.rollout!.penaltyMean, 'round 0: the initial policy either way');
    assert.notEqual(mc[1]!.rollout!.penaltyMean, ma[1]!.rollout!.penaltyMean, 'round 1: rolled with the policy after epoch 0, not before it');
    await stopAtFirstCheckpointThenResume(join(dir, 'd'), lag0(), mc, backend);

    // The actor's learning rate annealed by a cosine over the 4 epochs (OfflineRL-Kit's recipe):
    // epoch 0 trains at the base rate, as the constant run does, and later epochs at less; a stopped
    // and resumed run sets each epoch's rate again from its number and agrees exactly.
    const cosine = () => {
      const c = tinyConfig(dataset, join(dir, 'dyn'));
      c.learner.actorLrSchedule = 'cosine';
      return c;
    };
    await runMopo(join(dir, 'e'), cosine(), { backend, quiet: true });
    const me = metrics(join(dir, 'e'));
    assert.deepEqual(ma.map((m) => m.actorLr), [3e-4, 3e-4, 3e-4, 3e-4], 'constant: the default rate every epoch');
    assert.deepEqual(me.map((m) => m.actorLr), [0, 1, 2, 3].map((k) => scheduledLr(3e-4, 'cosine', k, 4)));
    assert.ok(Math.abs(me[2]!.actorLr! - 1.5e-4) < 1e-12, 'half the rate halfway');
    assert.deepEqual(me[0]!.sac, ma[0]!.sac, 'epoch 0: the base rate, so the constant run\'s updates');
    assert.notDeepEqual(me[1]!.sac, ma[1]!.sac, 'epoch 1: a lower actor rate changes the updates');
    await stopAtFirstCheckpointThenResume(join(dir, 'f'), cosine(), me, backend);
  });
});

/** Runs `config` in `runDir`, stops it at its first checkpoint (epoch 1, as Ctrl-C there would), resumes it, and checks its epochs against the uninterrupted run's metrics. */
async function stopAtFirstCheckpointThenResume(runDir: string, config: MopoConfig, uninterrupted: MetricsLine[], backend: BackendName): Promise<void> {
  // Stop as soon as the first checkpoint (epoch 1) exists, as Ctrl-C there would.
  const b1 = await runMopo(runDir, config, {
    backend,
    quiet: true,
    stopRequested: () => existsSync(join(runDir, 'checkpoints', 'latest.json')),
  });
  assert.equal(b1.stoppedEarly, true);
  assert.equal(b1.epochs, 2);
  await assert.rejects(runMopo(runDir, config, { backend, quiet: true }), /--resume/);
  const b2 = await runMopo(runDir, {} as MopoConfig, { backend, quiet: true, resume: true });
  assert.equal(b2.epochs, 4);
  const mb = metrics(runDir);
  assert.deepEqual(mb.map((m) => m.epoch), [0, 1, 2, 3]);
  for (const k of [0, 1, 2, 3]) {
    assert.deepEqual(mb[k]!.sac, uninterrupted[k]!.sac, `epoch ${k}: SAC metrics`);
    assert.equal(mb[k]!.rollout!.penaltyMean, uninterrupted[k]!.rollout!.penaltyMean, `epoch ${k}: penalty`);
    assert.equal(mb[k]!.actorLr, uninterrupted[k]!.actorLr, `epoch ${k}: the actor's learning rate`);
    assert.deepEqual(mb[k]!.evaluation?.returns ?? null, uninterrupted[k]!.evaluation?.returns ?? null, `epoch ${k}: evaluation`);
  }
}

test('mopo: a checkpoint carried without its model-buffer shards resumes with an empty model buffer, refilled round by round; one inside a round refuses', { timeout: 240_000 }, async () => {
  await withPendulumDataset('mopo-carry-', { steps: 3000, seed: 2 }, async ({ dir, dataset, backend }) => {
    await trainDynamicsInto(join(dir, 'dyn'), { dataset, read: {}, ensemble: { members: 3, elites: 2, hidden: [32, 32], maxEpochs: 1, workers: 1 }, backend, quiet: true });
    const run = join(dir, 'a');
    await runMopo(run, tinyConfig(dataset, join(dir, 'dyn')), { backend, quiet: true, stopRequested: () => existsSync(join(run, 'checkpoints', 'latest.json')) });
    const ckpt = join(run, 'checkpoints', 'epoch-000001');
    assert.ok(existsSync(join(ckpt, 'model-buffer')));
    rmSync(join(ckpt, 'model-buffer'), { recursive: true });

    // The same checkpoint, moved inside a round: the learner would sample the buffer it lost.
    const inside = join(dir, 'inside');
    cpSync(run, inside, { recursive: true });
    const statePath = join(inside, 'checkpoints', 'epoch-000001', 'state.json');
    const state = JSON.parse(readFileSync(statePath, 'utf8')) as { position: { updates: number } };
    state.position.updates += 25;
    writeFileSync(statePath, JSON.stringify(state));
    await assert.rejects(runMopo(inside, {} as MopoConfig, { backend, quiet: true, resume: true }), /model-buffer: missing, and the checkpoint is inside a round \(update 125, a round every 50\)/);

    const logs: string[] = [];
    const b = await runMopo(run, {} as MopoConfig, { backend, quiet: true, resume: true, log: (m) => logs.push(m) });
    assert.equal(b.epochs, 4);
    assert.ok(logs.some((l) => /no model-buffer\/ \(a carried checkpoint\); the model buffer starts empty/.test(l)), logs.join('\n'));
    const m = metrics(run);
    assert.deepEqual(m.map((x) => x.epoch), [0, 1, 2, 3]);
    assert.deepEqual(m.map((x) => x.modelBufferSize), [600, 1200, 600, 1200], 'epoch 2 has only its own round; epoch 3 retainEpochs rounds again');
  });
});

test('mopo: a real-data budget below the dataset samples a refreshed reservoir, and a resumed run rebuilds it exactly', { timeout: 240_000 }, async () => {
  await withPendulumDataset('mopo-reservoir-', { steps: 3000, seed: 4 }, async ({ dir, dataset, backend }) => {
    await trainDynamicsInto(join(dir, 'dyn'), { dataset, read: {}, ensemble: { members: 3, elites: 2, hidden: [32, 32], maxEpochs: 1, workers: 1 }, backend, quiet: true });
    const cfg = () => ({ ...tinyConfig(dataset, join(dir, 'dyn')), realBufferRows: 500 });
    const logs: string[] = [];
    await runMopo(join(dir, 'a'), cfg(), { backend, quiet: true, log: (m) => logs.push(m) });
    assert.ok(logs.some((l) => /3000 rows exceed --real-buffer 500: .*uniform reservoir of 500 rows, refreshed with 30 rows/.test(l)), logs.join('\n'));
    await runMopo(join(dir, 'b'), cfg(), { backend, quiet: true, stopRequested: () => existsSync(join(dir, 'b', 'checkpoints', 'latest.json')) });
    await runMopo(join(dir, 'b'), {} as MopoConfig, { backend, quiet: true, resume: true });
    const ma = metrics(join(dir, 'a'));
    const mb = metrics(join(dir, 'b'));
    for (const k of [0, 1, 2, 3]) assert.deepEqual(mb[k]!.sac, ma[k]!.sac, `epoch ${k}`);
  });
});
