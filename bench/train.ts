// `mopo bench train`: SAC updates/s of the MOPO learner with the rollouts running in their worker
// thread, against SAC updates alone (bench sac) in the same process. The target is a ratio ≥ 0.9:
// the rollouts ride on the second core instead of slowing the learner.
//
// The setup keeps the paper's proportions at a quarter of the scale, so a round (12,500 start states
// × 5 model steps with the 7 × 4 × 200 ensemble) takes about as long as the 250 updates it feeds,
// as 50,000 × 5 does against 1000 updates: halfcheetah sizes, a synthetic 50k-row dataset, an
// untrained ensemble (the same arithmetic as a trained one). The first epoch (worker start, first
// round) is warm-up; the rest is measured. `--rows 50000` is the paper's full scale (1000 updates a
// round, a 1.25M-row model buffer).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Subject, lastValueFrom, tap, from } from 'rxjs';
import { initBackend } from '../pipeline/backend.js';
import { Rng } from '../pipeline/random.js';
import { TransitionBatch } from '../schemas/transition.js';
import { writeTransitionsFile } from '../operators/writeTransitions.js';
import { DynamicsEnsemble } from '../operators/ensemble.js';
import { Normalizer } from '../operators/normalize.js';
import { ArrowReplayBuffer } from '../operators/replayBuffer.js';
import { SacAgent } from '../operators/sac.js';
import { RateLimiter } from '../operators/rateLimiter.js';
import { rolloutInWorker, type RolloutRequest } from '../operators/rolloutWorker.js';
import { sacConsumer, type SacEpochEvent } from '../operators/sacConsumer.js';
import { benchSac } from './sac.js';
import { round3 } from './stats.js';

export interface TrainBenchResult {
  backend: string;
  updatesPerSecond: number;
  sacAloneUpdatesPerSecond: number;
  ratio: number;
  learnerWaitFraction: number;
  producerWaitFraction: number;
  rolloutBatch: number;
  horizon: number;
  updatesPerRound: number;
  measuredUpdates: number;
}

const DIMS = { obsDim: 17, actDim: 6, env: 'halfcheetah' } as const;

function syntheticDataset(rows: number, rng: Rng): TransitionBatch {
  const b = TransitionBatch.allocate(DIMS, rows);
  rng.fillNormal(b.observation);
  rng.fillUniform(b.action, -1, 1);
  for (let i = 0; i < b.observation.length; i++) b.nextObservation[i] = b.observation[i]! + 0.1 * rng.normal();
  rng.fillNormal(b.reward);
  return b;
}

export async function benchTrain(opts: { backend?: string; rolloutBatch?: number; updatesPerRound?: number; epochs?: number } = {}): Promise<TrainBenchResult> {
  const backend = await initBackend(opts.backend !== undefined ? { backend: opts.backend } : {});
  const rolloutBatch = opts.rolloutBatch ?? 12_500;
  // The paper's proportion at any scale: 50 start states per update (50,000 per 1000).
  const E = opts.updatesPerRound ?? Math.max(1, Math.round(rolloutBatch / 50));
  const epochs = opts.epochs ?? 6;
  const horizon = 5;
  const dir = mkdtempSync(join(tmpdir(), 'mopo-bench-train-'));
  const rng = new Rng(3, 'bench-train');
  const data = syntheticDataset(50_000, rng);
  const dataset = join(dir, 'data.parquet');
  await writeTransitionsFile(dataset, from([data]));
  const ensemble = DynamicsEnsemble.create({}, DIMS, rng, Normalizer.ofBatch(data));
  await ensemble.save(join(dir, 'ensemble'));
  ensemble.dispose();
  const real = new ArrowReplayBuffer({ ...DIMS, capacity: data.length });
  real.append(data);
  const model = new ArrowReplayBuffer({ ...DIMS, capacity: 5 * rolloutBatch * horizon, optional: ['rawReward', 'penalty'] });
  const agent = SacAgent.create({}, DIMS, rng);
  const limiter = new RateLimiter({ samplesPerInsert: E, minInserts: 1, errorBuffer: E });
  const requests = new Subject<RolloutRequest>();
  const events: SacEpochEvent[] = [];
  const stamps: number[] = [];
  try {
    await lastValueFrom(
      requests.pipe(
        rolloutInWorker({ env: 'halfcheetah', batch: rolloutBatch, horizon, lambda: 1, rolloutEvery: E }, { ensembleDir: join(dir, 'ensemble'), dataset, sac: agent.config, backend }),
        sacConsumer({ epochs, epochLength: E, rolloutEvery: E, metricsEvery: 50 }, { agent, real, model, limiter, request: (r) => requests.next(r) }),
        tap((e) => {
          events.push({ ...e });
          stamps.push(performance.now());
        }),
      ),
    );
  } finally {
    requests.complete();
    agent.dispose();
  }
  // Measured: from the end of epoch 0 to the end of the last one.
  const first = events[0]!;
  const last = events[events.length - 1]!;
  const seconds = (stamps[stamps.length - 1]! - stamps[0]!) / 1000;
  const measuredUpdates = last.updates - first.updates;
  const updatesPerSecond = measuredUpdates / seconds;
  const learnerWait = last.learnerWaitSeconds - first.learnerWaitSeconds;
  const producerWait = last.producerWaitSeconds - first.producerWaitSeconds;
  rmSync(dir, { recursive: true, force: true });
  const alone = await benchSac({ seconds: 6 });
  return {
    backend,
    updatesPerSecond: round3(updatesPerSecond),
    sacAloneUpdatesPerSecond: alone.updatesPerSecond,
    ratio: round3(updatesPerSecond / alone.updatesPerSecond),
    learnerWaitFraction: round3(learnerWait / seconds),
    producerWaitFraction: round3(producerWait / seconds),
    rolloutBatch,
    horizon,
    updatesPerRound: E,
    measuredUpdates,
  };
}
