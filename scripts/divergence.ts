// `node dist/scripts/divergence.js`: poisons training on purpose and checks that each guard stops
// it within one step, before the bad update is applied, with a message naming the stage:
//   1. the dynamics ensemble, a batch with a NaN target;
//   2. SAC, a batch with a NaN reward, and one with rewards of 1e12 (Q explodes);
//   3. end to end: `mopo train` whose real data holds one reward of 1e9 (the ensemble trained on
//      clean data): the learner stops at the first batch that samples it, and the message names
//      SAC and the last good checkpoint.
// Prints one line per case and exits non-zero if any guard failed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { from } from 'rxjs';
import { initBackend, tf } from '../pipeline/backend.js';
import { Rng } from '../pipeline/random.js';
import { isMain } from '../pipeline/isMain.js';
import { DynamicsEnsemble } from '../operators/ensemble.js';
import { Normalizer } from '../operators/normalize.js';
import { SacAgent } from '../operators/sac.js';
import { TransitionBatch } from '../schemas/transition.js';
import { isDivergenceError } from '../pipeline/divergence.js';
import { pendulumRandomDataset } from '../pipeline/defaultDataset.js';
import { writeTransitionsFile } from '../operators/writeTransitions.js';
import { lastValueFrom, toArray } from 'rxjs';

export interface DivergenceCase {
  name: string;
  ok: boolean;
  detail: string;
}

const snapshot = (ts: readonly tf.Tensor[]) => ts.map((t) => Array.from(t.dataSync()));

/** Poisoned SAC updates tried before a case counts as "no error" (the guard must fire at the first). */
const MAX_POISONED_SAC_UPDATES = 20;

/** Guards on poisoned batches, in process. */
export async function poisonedBatchCases(): Promise<DivergenceCase[]> {
  await initBackend({ log: () => {} });
  const out: DivergenceCase[] = [];
  const rng = new Rng(1, 'divergence');
  const dims = { obsDim: 3, actDim: 1 };

  // 1. Ensemble: a NaN target.
  const data = TransitionBatch.allocate(dims, 64);
  rng.fillNormal(data.observation);
  rng.fillNormal(data.nextObservation);
  rng.fillNormal(data.reward);
  const ens = DynamicsEnsemble.create({ members: 2, elites: 1, hidden: [16] }, dims, rng, Normalizer.ofBatch(data));
  const xs = new Float32Array(2 * 8 * ens.inDim);
  const ys = new Float32Array(2 * 8 * ens.outDim);
  rng.fillNormal(xs);
  rng.fillNormal(ys);
  ens.trainStep(xs, ys);
  const before = snapshot(ens.net.params());
  ys[5] = Number.NaN;
  try {
    ens.trainStep(xs, ys);
    out.push({ name: 'dynamics: NaN target', ok: false, detail: 'no error' });
  } catch (e) {
    const same = JSON.stringify(snapshot(ens.net.params())) === JSON.stringify(before);
    out.push({ name: 'dynamics: NaN target', ok: isDivergenceError(e) && e.stage === 'dynamics' && same, detail: `${(e as Error).message}${same ? '' : ' (weights changed!)'}` });
  }
  ens.dispose();

  // 2. SAC: a NaN reward, and rewards so large that Q leaves any sane range. The guard reads
  // max(|Q|, |TD target|) before applying anything, and the TD target y = r + γ·(…) is ≈ r, so a
  // reward of 1e12 (≫ divergenceQLimit = 1e6) is caught at the first poisoned update, exactly as
  // the NaN is; Q itself never has to climb there. Measured: both stop at that first update (no
  // poisoned update applied). The loop still allows a few more so that a regression (a guard
  // that only watched Q, say) is reported with its count instead of as "no error".
  const snapAgent = (a: SacAgent) => {
    const p = a.parameters();
    return JSON.stringify({ critic: snapshot(p.critic), actor: snapshot(p.actor), target: snapshot(p.target), logAlpha: snapshot([p.logAlpha]) });
  };
  for (const [name, value] of [['SAC: NaN reward', Number.NaN], ['SAC: reward 1e12', 1e12]] as const) {
    const agent = SacAgent.create({ hidden: [16, 16], batchSize: 32 }, dims, new Rng(2, 'sac'));
    const b = TransitionBatch.allocate(dims, 32);
    rng.fillNormal(b.observation);
    rng.fillNormal(b.nextObservation);
    rng.fillUniform(b.action, -1, 1);
    agent.update(b, { metrics: false });
    const clean = agent.updates;
    b.reward.fill(value);
    let err: unknown = null;
    let last = '';
    let same = false;
    for (let i = 0; i < MAX_POISONED_SAC_UPDATES && err === null; i++) {
      last = snapAgent(agent);
      try {
        agent.update(b, { metrics: false });
      } catch (e) {
        err = e;
        same = snapAgent(agent) === last && agent.updates === clean + i;
      }
    }
    const applied = agent.updates - clean;
    const ok = isDivergenceError(err) && err.stage === 'sac' && same && applied === 0;
    const detail = err
      ? `${(err as Error).message} (${applied} poisoned updates applied before the guard${same ? '' : '; weights changed by the rejected update!'})`
      : `no error in ${MAX_POISONED_SAC_UPDATES} poisoned updates`;
    out.push({ name: `${name}: stopped at the first poisoned update`, ok, detail });
    agent.dispose();
  }
  return out;
}

/** `mopo train` end to end on a poisoned Pendulum dataset: the CLI's message names the stage and the checkpoint. */
export async function endToEndCase(): Promise<DivergenceCase> {
  const dir = mkdtempSync(join(tmpdir(), 'mopo-diverge-'));
  const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'pipeline', 'cli.js');
  try {
    // The ensemble learns from the clean data; the learner's real share comes from a copy with one
    // reward of 1e9 (finite, so every reader takes it; far beyond any Pendulum Q), met by chance
    // after some epochs: the stop names the last good checkpoint.
    const batches = await lastValueFrom(pendulumRandomDataset({ steps: 3000, seed: 5 }).pipe(toArray()));
    const clean = join(dir, 'clean.parquet');
    await writeTransitionsFile(clean, from(batches));
    const dyn = spawnSync(process.execPath, [cli, 'train-dynamics', '--dataset', clean, '--members', '3', '--elites', '2', '--max-epochs', '3', '--workers', '1', '--out', join(dir, 'dyn'), '--quiet'], { encoding: 'utf8' });
    if (dyn.status !== 0) return { name: 'mopo train, poisoned real data', ok: false, detail: `train-dynamics failed: ${dyn.stderr}` };
    batches[0]!.reward[1234] = 1e9;
    const dataset = join(dir, 'poisoned.parquet');
    await writeTransitionsFile(dataset, from(batches));
    const run = join(dir, 'run');
    const r = spawnSync(process.execPath, [cli, 'train', '--dataset', dataset, '--dynamics', join(dir, 'dyn'), '--preset', 'quick', '--epochs', '60', '--epoch-length', '40', '--rollout-batch', '200', '--eval-every', '5', '--eval-episodes', '1', '--checkpoint-every', '1', '--out', run, '--quiet'], { encoding: 'utf8', timeout: 240_000 });
    const msg = r.stderr.trim();
    const ok = r.status === 2 && /SAC training diverged: /.test(msg) && /last good checkpoint is .*checkpoints\/epoch-\d+/.test(msg) && !/^\s+at .+:\d+:\d+/m.test(msg);
    return { name: 'mopo train, poisoned real data', ok, detail: `exit ${r.status}: ${msg.split('\n').pop()}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const cases = [...(await poisonedBatchCases()), await endToEndCase()];
  for (const c of cases) process.stdout.write(`${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}\n`);
  const failed = cases.filter((c) => !c.ok).length;
  process.stdout.write(`divergence: ${cases.length} cases, ${cases.length - failed} stopped correctly, ${failed} failures\n`);
  process.exitCode = failed > 0 ? 1 : 0;
}

if (isMain(import.meta.url)) void main();
