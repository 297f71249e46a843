// Replay from saved stages on a short Pendulum pipeline: from each stage the replayed run
// reproduces the original metrics exactly; a changed config starts at the first changed stage;
// a damaged saved shard is reported by name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withPendulumDataset, readJsonl } from './pendulumFixture.js';
import { parsePipeline, applySet } from '../pipeline/pipelineFile.js';
import { runPipeline } from '../pipeline/runPipeline.js';
import { replayPipeline, firstChangedStage, type ReplayStage } from '../pipeline/commands/replay.js';
import { UserError } from '../pipeline/errors.js';

type Line = { epoch: number; sac: unknown; rollout: { penaltyMean: number } | null; evaluation: { returns: number[] } | null };
const metrics = (run: string) => readJsonl<Line>(join(run, 'metrics.jsonl'));

test('replay from dynamics, rollout and sac reproduces the run; a changed λ reruns from rollout; damage is named', { timeout: 300_000 }, async () => {
  await withPendulumDataset('mopo-replay-', { steps: 2000, seed: 1 }, async ({ dir, dataset, backend }) => {
    const doc = {
      env: 'pendulum',
      seed: 2,
      source: { dataset },
      stages: [
        // A preprocessing stage that changes nothing, so the replay from dynamics reads stages/preprocess.
        { stage: 'scaleReward', scale: 1, shift: 0 },
        { stage: 'dynamics', members: 3, elites: 2, hidden: [32, 32], maxEpochs: 2, workers: 1 },
        { stage: 'rollout', batch: 200, horizon: 3, lambda: 1, every: 40, retainEpochs: 2, tee: true },
        { stage: 'sac', epochs: 3, hidden: [32, 32], batchSize: 64 },
        { stage: 'evaluate', every: 1, episodes: 2 },
      ],
    };
    const original = parsePipeline(doc, 'test pipeline');
    const run = join(dir, 'run');
    const a = await runPipeline(run, original, { backend, quiet: true });
    assert.equal(a.mopo?.epochs, 3);
    assert.equal(readdirSync(join(run, 'stages', 'rollout')).length, 3, 'three rounds saved');
    assert.equal(a.preprocess?.manifest.rows, 2000);
    const again = await runPipeline(join(dir, 'pre-only'), parsePipeline({ ...doc, stages: doc.stages.slice(0, 1) }, 'x'), { backend, quiet: true });
    assert.equal(again.mopo, null, 'a preprocessing-only pipeline stops after its shards');
    assert.equal(again.preprocess?.manifest.configHash, a.preprocess?.manifest.configHash, 'the same source and stages: the same config hash');
    const ma = metrics(run);

    for (const from of ['dynamics', 'rollout', 'sac'] as ReplayStage[]) {
      const out = join(dir, `from-${from}`);
      const r = await runPipeline(out, parsePipeline(await replayPipeline(run, original, from), 'replay'), { backend, quiet: true });
      assert.equal(r.mopo?.epochs, 3);
      assert.equal(existsSync(join(out, 'dynamics', 'ensemble')), from === 'dynamics', `${from}: the ensemble is retrained only from dynamics`);
      const mb = metrics(out);
      for (let k = 0; k < 3; k++) {
        assert.deepEqual(mb[k]!.sac, ma[k]!.sac, `from ${from}, epoch ${k}: SAC metrics`);
        assert.deepEqual(mb[k]!.evaluation?.returns, ma[k]!.evaluation?.returns, `from ${from}, epoch ${k}: evaluation`);
        assert.equal(mb[k]!.rollout?.penaltyMean, ma[k]!.rollout?.penaltyMean, `from ${from}, epoch ${k}: rollout penalty`);
      }
    }

    const changed = structuredClone(doc);
    applySet(changed, 'stages.rollout.lambda=0');
    const next = parsePipeline(changed, 'changed');
    assert.equal(firstChangedStage(original, next), 'rollout');
    const out = join(dir, 'lambda0');
    await runPipeline(out, parsePipeline(await replayPipeline(run, next, 'rollout'), 'replay'), { backend, quiet: true });
    const mc = metrics(out);
    assert.equal(mc[0]!.rollout?.penaltyMean, ma[0]!.rollout?.penaltyMean, 'the same ensemble and rollouts: the same penalties');
    assert.notDeepEqual(mc[2]!.sac, ma[2]!.sac, 'but λ = 0 trains a different learner');

    // A damaged saved round is named, never skipped.
    const round1 = join(run, 'stages', 'rollout', 'round-000001');
    const shard = readdirSync(round1).find((f) => f.endsWith('.arrow'))!;
    const bytes = readFileSync(join(round1, shard));
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(join(round1, shard), bytes);
    await assert.rejects(
      runPipeline(join(dir, 'damaged'), parsePipeline(await replayPipeline(run, original, 'sac'), 'replay'), { backend, quiet: true }),
      (e: unknown) => e instanceof UserError && e.message.includes(shard),
    );
  });
});
