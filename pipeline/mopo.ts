// MOPO end to end, as one RxJS graph:
//
//   readTransitions ─► trainEnsemble ─► (ensemble saved in <run>/dynamics)
//   readTransitions ─► real-data buffer (ArrowReplayBuffer)
//   requests ─► rolloutInWorker (rolloutPenalized on the second core) ─► sacConsumer (model buffer,
//        rate limiter, SAC updates on mixed batches) ─► evaluatePolicyEvery (MuJoCo) ─► sinks:
//        metrics.jsonl, plots, checkpoints, progress bar
//
// The run directory (one layout for every run):
//   config.json            the resolved MopoConfig
//   dynamics/              the ensemble's training run (config, metrics, validation.svg, ensemble/)
//   metrics.jsonl          one line per epoch (SAC losses, α, Q, rollout/penalty statistics, buffer
//                          sizes, waits, evaluation when there was one)
//   learning-curve.svg, penalty.svg
//   checkpoints/latest.json → checkpoints/epoch-NNNNNN/{agent/, model-buffer/, state.json, state-*.f32}
//   summary.json           the final evaluation and timings
// A checkpoint directory is complete before latest.json points at it (atomic rename), so a killed
// run resumes from the last complete one.
import { openTransitions } from '../operators/source.js';
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, readdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { Subject, lastValueFrom, tap } from 'rxjs';
import * as tf from '@tensorflow/tfjs';
import type { ReadOptions } from '../operators/readTransitions.js';
import { hasEnsembleTrainingState, resolveEnsembleConfig, type EnsembleConfig } from '../operators/ensemble.js';
import { ArrowReplayBuffer } from '../operators/replayBuffer.js';
import { SacAgent, resolveSacConfig, type SacConfig } from '../operators/sac.js';
import { RateLimiter } from '../operators/rateLimiter.js';
import { resolveRolloutConfig, type RolloutConfig } from '../operators/rollout.js';
import { rolloutInWorker, type RolloutRequest } from '../operators/rolloutWorker.js';
import { replayRollouts, saveRound } from '../operators/rolloutShards.js';
import { RealDataReservoir } from '../operators/reservoir.js';
import { sacConsumer, resolveSacConsumerConfig, type LrSchedule, type RolloutLag, type SacConsumerConfig, type SacConsumerPosition, type SacEpochEvent } from '../operators/sacConsumer.js';
import { evaluatePolicyEvery, evaluationDue, makeEvaluationEnvs, meanStd, type Evaluation } from '../operators/evaluate.js';
import { envSpec, isEnvName, type EnvName } from './envs/env.js';
import { Rng } from './random.js';
import { UserError } from './errors.js';
import { readJsonLines, writeFileAtomic } from './atomic.js';
import { writeTensorCheckpoint, readTensorCheckpoint, type CheckpointKind } from './tensorCheckpoint.js';
import { lineChartSvg } from './plot.js';
import { ProgressBar } from './progress.js';
import { trainDynamicsInto } from './commands/trainDynamics.js';
import { tracePhase } from './runLock.js';

// ---------------------------------------------------------------------------------------------
// Config and presets

export type Task = 'random' | 'medium' | 'medium-replay' | 'medium-expert';
export const TASKS: readonly Task[] = ['random', 'medium', 'medium-replay', 'medium-expert'];
export type Preset = 'paper' | 'quick';

export interface MopoConfig {
  env: EnvName;
  dataset: string;
  read: ReadOptions;
  seed: number;
  /** A trained ensemble to use (a train-dynamics run or ensemble directory); null: train one into <run>/dynamics. */
  dynamicsFrom: string | null;
  ensemble: Partial<EnsembleConfig>;
  /** Train the ensemble on the first this many rows only (null: all; the quick preset's shortcut). */
  ensembleRows: number | null;
  rollout: Omit<RolloutConfig, 'env' | 'seed'>;
  sac: Partial<SacConfig>;
  /** rolloutLag and actorLrSchedule are left out for their defaults (1, 'constant'); see SacConsumerConfig. */
  learner: Omit<SacConsumerConfig, 'seed' | 'rolloutEvery' | 'rolloutLag' | 'actorLrSchedule'> & { rolloutLag?: RolloutLag; actorLrSchedule?: LrSchedule };
  /** Rounds of rollouts the model buffer keeps. */
  retainEpochs: number;
  /** lastEpochs: also evaluate after each of the final this many epochs (operators/evaluate.ts). */
  evaluate: { every: number; episodes: number; lastEpochs?: number };
  /** Checkpoint every this many epochs (and at the end or on a stop). */
  checkpointEvery: number;
  /** Tee every inserted rollout round to <run>/stages/rollout (operators/rolloutShards.ts). */
  teeRollouts?: boolean;
  /** Train from the rounds saved by an earlier run (its stages/rollout) instead of computing rollouts. */
  rolloutsFrom?: string | null;
  /** Most real transitions held for SAC's real share (null: all); beyond it, a refreshed reservoir. */
  realBufferRows?: number | null;
}

/** MOPO.md's per-task (h, λ) from the official configs. */
const PAPER_H_LAMBDA: Record<'halfcheetah' | 'hopper' | 'walker2d', Record<Task, [number, number]>> = {
  halfcheetah: { random: [5, 0.5], medium: [1, 1], 'medium-replay': [5, 1], 'medium-expert': [5, 5] },
  hopper: { random: [5, 1], medium: [5, 5], 'medium-replay': [5, 1], 'medium-expert': [5, 1] },
  walker2d: { random: [1, 1], medium: [5, 5], 'medium-replay': [1, 1], 'medium-expert': [1, 2] },
};

/** The task a dataset file name says (halfcheetah-medium-replay.parquet → medium-replay), or null. */
export function taskOfDataset(path: string): Task | null {
  const name = basename(path).replace(/\.parquet$/i, '');
  for (const t of [...TASKS].sort((a, b) => b.length - a.length)) if (name.endsWith(t)) return t;
  return null;
}

export function presetConfig(preset: Preset, env: EnvName, dataset: string, task: Task | null): MopoConfig {
  const base: MopoConfig = {
    env,
    dataset,
    read: {},
    seed: 0,
    dynamicsFrom: null,
    // MOPO.md's reference ensemble, written out so a preset file shows it. Both cores are free while
    // it trains (the rollout worker starts after it), so its members are split over two threads.
    ensemble: { members: 7, elites: 5, hidden: [200, 200, 200, 200], targets: 'raw', nllReduction: 'mean', maxEpochs: 1000, patience: 5, workers: 2 },
    ensembleRows: null,
    rollout: { batch: 50_000, horizon: 5, lambda: 1, penalty: 'max-aleatoric', penaltyMembers: 'all', rolloutEvery: 1000 },
    sac: { hidden: [256, 256], batchSize: 256, gamma: 0.99, tau: 0.005, actorLr: 3e-4, criticLr: 3e-4 },
    learner: { realRatio: 0.05, epochLength: 1000, epochs: 1000, metricsEvery: 50 },
    retainEpochs: 5,
    // Scored as the reference does (d4rl_results.py): the mean of the last 10 evaluations, one an epoch.
    evaluate: { every: 10, episodes: 10, lastEpochs: 10 },
    checkpointEvery: 10,
  };
  if (env !== 'pendulum') {
    const t = task ?? 'random';
    const [h, lambda] = PAPER_H_LAMBDA[env][t];
    base.rollout = { ...base.rollout, horizon: h, lambda };
    // MOPO's D4RL configs (examples/config/d4rl/base.py) set the entropy target to −3 for every task,
    // not SAC's usual −|A| (−6 for HalfCheetah and Walker2d; Hopper's −3 is the same).
    base.sac = { ...base.sac, targetEntropy: -3 };
  }
  if (preset === 'quick') {
    // Minutes, not hours: the ensemble on 100k rows for 3 epochs, small rollout rounds, 5 epochs.
    base.ensembleRows = 100_000;
    base.ensemble = { ...base.ensemble, maxEpochs: 3 };
    base.rollout = { ...base.rollout, batch: 10_000 };
    base.learner = { ...base.learner, epochs: 5 };
    base.evaluate = { every: 5, episodes: 5, lastEpochs: 1 };
    base.checkpointEvery = 5;
  }
  return base;
}

/** Checks a config (UserError naming the field) and returns the stage configs it implies. */
export function resolveMopoConfig(c: MopoConfig) {
  if (!isEnvName(c.env)) throw new UserError(`config.env: unknown environment ${JSON.stringify(c.env)}`);
  const rollout = resolveRolloutConfig({ ...c.rollout, env: c.env, seed: c.seed });
  const learner = resolveSacConsumerConfig({ ...c.learner, rolloutEvery: rollout.rolloutEvery, seed: c.seed });
  const spec = envSpec(c.env);
  const sac = resolveSacConfig(c.sac, spec.actDim);
  const ensemble = resolveEnsembleConfig({ seed: c.seed, ...c.ensemble });
  if (!Number.isInteger(c.retainEpochs) || c.retainEpochs < 1) throw new UserError(`config.retainEpochs must be a positive integer, got ${c.retainEpochs}`);
  if (!Number.isInteger(c.checkpointEvery) || c.checkpointEvery < 1) throw new UserError(`config.checkpointEvery must be a positive integer, got ${c.checkpointEvery}`);
  if (c.ensembleRows !== null && !(Number.isInteger(c.ensembleRows) && c.ensembleRows > 1)) throw new UserError(`config.ensembleRows must be an integer > 1 or null, got ${c.ensembleRows}`);
  return { rollout, learner, sac, ensemble, spec };
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

const STATE_KIND: CheckpointKind = { headerFile: 'state.json', format: 'mopo-run-state', what: 'run checkpoint' };

interface StateJson {
  epoch: number;
  position: Omit<SacConsumerPosition, 'pending'> & { pending: { round: number; step: number } | null };
}

async function writeCheckpoint(runDir: string, e: SacEpochEvent, model: ArrowReplayBuffer): Promise<string> {
  const root = join(runDir, 'checkpoints');
  const name = `epoch-${String(e.epoch).padStart(6, '0')}`;
  const dir = join(root, name);
  tracePhase(`checkpoint ${e.epoch}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  await e.agent.saveCheckpoint(join(dir, 'agent'));
  await model.writeShards({ dir: join(dir, 'model-buffer'), stage: 'model-buffer' });
  const { pending, ...pos } = e.position;
  const tensors = (pending?.actorWeights ?? []).map((w, i) => [`pending/${i}`, tf.tensor1d(w)] as const);
  try {
    await writeTensorCheckpoint<StateJson>(dir, STATE_KIND, 'state', e.epoch, tensors, { epoch: e.epoch, position: { ...pos, pending: pending && { round: pending.round, step: pending.step } } });
  } finally {
    tensors.forEach(([, t]) => t.dispose());
  }
  await writeFileAtomic(join(root, 'latest.json'), JSON.stringify({ checkpoint: name, epoch: e.epoch, updates: e.updates }) + '\n');
  for (const old of readdirSync(root)) if (old !== name && old.startsWith('epoch-')) rmSync(join(root, old), { recursive: true, force: true });
  return dir;
}

interface LoadedCheckpoint {
  dir: string;
  epoch: number;
  position: SacConsumerPosition;
}

async function readLatestCheckpoint(runDir: string): Promise<LoadedCheckpoint | null> {
  const latest = join(runDir, 'checkpoints', 'latest.json');
  if (!existsSync(latest)) return null;
  const { checkpoint } = JSON.parse(readFileSync(latest, 'utf8')) as { checkpoint: string };
  const dir = join(runDir, 'checkpoints', checkpoint);
  const { json, get } = await readTensorCheckpoint<StateJson>(dir, STATE_KIND);
  const actorWeights: Float32Array[] = [];
  for (let i = 0; json.tensors.some((t) => t.name === `pending/${i}`); i++) {
    const t = get(`pending/${i}`);
    actorWeights.push((t.dataSync() as Float32Array).slice());
    t.dispose();
  }
  const position: SacConsumerPosition = { ...json.position, pending: json.position.pending && { ...json.position.pending, actorWeights } };
  return { dir, epoch: json.epoch, position };
}

// ---------------------------------------------------------------------------------------------
// The run

export interface MopoRunOptions {
  /** Continue from the run directory's last checkpoint (config.json there wins). */
  resume?: boolean;
  quiet?: boolean;
  backend: string;
  /** Polled at epoch boundaries: true stops the run there with a checkpoint. */
  stopRequested?: () => boolean;
  log?: (m: string) => void;
}

export interface MopoSummary {
  env: string;
  dataset: string;
  epochs: number;
  updates: number;
  stoppedEarly: boolean;
  evaluation: Evaluation | null;
  /** The run's score as MOPO reports it: the mean of its last 10 scored evaluations (`scoreOfLastEvaluations`); null without a D4RL score. */
  score: ReturnType<typeof scoreOfLastEvaluations>;
  /** This process's times (a run resumed across sessions: metrics.jsonl holds every epoch's rate). */
  seconds: { total: number; dynamics: number; learner: number };
  waits: { learnerFraction: number; producerFraction: number };
  runDir: string;
}

export async function runMopo(runDirIn: string, configIn: MopoConfig, opts: MopoRunOptions): Promise<MopoSummary> {
  const runDir = resolve(runDirIn);
  const log = opts.log ?? (() => {});
  const t0 = performance.now();
  let config = configIn;
  let checkpoint: LoadedCheckpoint | null = null;
  const cfgPath = join(runDir, 'config.json');
  if (opts.resume) {
    if (existsSync(cfgPath)) config = JSON.parse(readFileSync(cfgPath, 'utf8')) as MopoConfig;
    // A run stopped before it got here (during its preprocessing): the config its pipeline gives.
    else if (configIn?.env === undefined) throw new UserError(`${runDir}: no config.json here; --resume needs a run directory made by mopo train`);
    checkpoint = await readLatestCheckpoint(runDir);
    if (checkpoint === null) log(`${runDir}: no checkpoint yet; starting the learner from the beginning`);
    else log(`resuming ${runDir} from ${checkpoint.dir} (epoch ${checkpoint.epoch}, ${checkpoint.position.updates} updates)`);
  } else if (existsSync(join(runDir, 'checkpoints', 'latest.json'))) {
    throw new UserError(`${runDir} already holds a run with checkpoints; continue it with --resume, or choose another --out`);
  }
  const { rollout, learner, sac, ensemble: ensembleCfg, spec } = resolveMopoConfig(config);
  mkdirSync(runDir, { recursive: true });
  if (!opts.resume || !existsSync(cfgPath)) await writeFileAtomic(cfgPath, JSON.stringify(config, null, 2) + '\n');

  // 1. The ensemble: given, already trained in this run, or trained now (not needed when the rollouts are replayed).
  const tDyn = performance.now();
  let ensembleDir = '';
  if (config.rolloutsFrom) {
    if (!existsSync(config.rolloutsFrom)) throw new UserError(`${config.rolloutsFrom}: no saved rollouts there (a run with the rollout stage's "tee": true saves them)`);
  } else if (config.dynamicsFrom) {
    const d = resolve(config.dynamicsFrom);
    ensembleDir = existsSync(join(d, 'ensemble', 'ensemble.json')) ? join(d, 'ensemble') : d;
    if (!existsSync(join(ensembleDir, 'ensemble.json'))) throw new UserError(`--dynamics ${config.dynamicsFrom}: no ensemble there (expected ensemble/ensemble.json from mopo train-dynamics)`);
  } else {
    ensembleDir = join(runDir, 'dynamics', 'ensemble');
    const dynDir = join(runDir, 'dynamics');
    // Trained when its report is there (trainDynamicsInto writes it last; ensemble/ comes before it).
    const trained = existsSync(join(dynDir, 'report.json')) && existsSync(join(ensembleDir, 'ensemble.json'));
    const unfinished = hasEnsembleTrainingState(join(dynDir, 'checkpoint'));
    if (!trained || unfinished) {
      if (!trained) log(`training the dynamics ensemble on ${config.dataset}${config.ensembleRows ? ` (first ${config.ensembleRows} rows)` : ''}`);
      const read: ReadOptions = config.ensembleRows ? { ...config.read, rows: { start: 0, end: config.ensembleRows } } : config.read;
      tracePhase('dynamics');
      // A finished training whose state was not yet removed (a kill): this only removes it.
      await trainDynamicsInto(dynDir, { dataset: config.dataset, read, ensemble: ensembleCfg, backend: opts.backend, quiet: opts.quiet ?? false, resume: unfinished, ...(opts.stopRequested ? { stopRequested: opts.stopRequested } : {}) });
    }
  }
  const dynamicsSeconds = (performance.now() - tDyn) / 1000;

  // 2. The real data: held by reference in the replay buffer's ring, or, beyond the budget, a
  //    uniform reservoir refreshed from the stream at every round (operators/reservoir.ts).
  tracePhase('first-round');
  const budget = config.realBufferRows ?? Number.POSITIVE_INFINITY;
  const filled = await RealDataReservoir.fill(config.dataset, config.read, budget, config.seed);
  const realRows = filled.reservoir ? filled.reservoir.info.datasetRows : filled.batches.reduce((s, b) => s + b.length, 0);
  if (realRows === 0) throw new UserError(`${config.dataset}: no transitions`);
  const dims = { obsDim: filled.dims.obsDim, actDim: filled.dims.actDim, env: config.env };
  if (dims.obsDim !== spec.obsDim || dims.actDim !== spec.actDim) {
    throw new UserError(`${config.dataset}: ${dims.obsDim}-dim observations and ${dims.actDim}-dim actions, but ${config.env} has ${spec.obsDim} and ${spec.actDim}; pass the matching --env`);
  }
  const reservoir = filled.reservoir;
  // The reservoir's store is refreshed in place, so the buffer must hold it by reference (chunkRows 1).
  const real = new ArrowReplayBuffer({ ...dims, capacity: reservoir ? reservoir.info.budget : realRows, ...(reservoir ? { chunkRows: 1 } : {}) });
  if (reservoir) {
    real.append(reservoir.store);
    const i = reservoir.info;
    log(`real data: ${i.datasetRows} rows exceed --real-buffer ${i.budget}: SAC samples the real share from a uniform reservoir of ${i.budget} rows, refreshed with ${i.chunk} rows of the stream at every round (a full cycle every ${i.refreshesPerCycle} rounds)`);
    if (checkpoint) await reservoir.catchUp(checkpoint.position.rounds - 1);
  } else for (const b of filled.batches) real.append(b);
  filled.batches.length = 0;

  // 3. Learner state: fresh or from the checkpoint.
  const agent = checkpoint ? await SacAgent.loadCheckpoint(join(checkpoint.dir, 'agent')) : SacAgent.create(sac, dims, new Rng(config.seed, 'mopo/sac'));
  const model = new ArrowReplayBuffer({ ...dims, capacity: config.retainEpochs * rollout.batch * rollout.horizon, optional: ['rawReward', 'penalty'] });
  if (checkpoint) {
    const shards = join(checkpoint.dir, 'model-buffer');
    // A checkpoint carried to another machine in git (scripts/carry.sh) leaves its model buffer
    // behind (hundreds of MB): the run goes on from the round being inserted, and the buffer is
    // whole again after retainEpochs rounds.
    if (existsSync(shards)) await model.readShards(shards);
    else if (checkpoint.position.updates % rollout.rolloutEvery !== 0) {
      throw new UserError(`${shards}: missing, and the checkpoint is inside a round (update ${checkpoint.position.updates}, a round every ${rollout.rolloutEvery}), where the learner samples the buffer as it was; restore the directory, or resume from a checkpoint at a round's start`);
    } else log(`${checkpoint.dir}: no model-buffer/ (a carried checkpoint); the model buffer starts empty and holds ${config.retainEpochs} epochs' rollouts again after ${config.retainEpochs} rounds`);
  }
  const limiter = new RateLimiter({ samplesPerInsert: rollout.rolloutEvery, minInserts: 1, errorBuffer: rollout.rolloutEvery });

  const metricsPath = join(runDir, 'metrics.jsonl');
  const startEpoch = checkpoint ? checkpoint.epoch + 1 : 0;
  await keepMetricsBefore(metricsPath, startEpoch);
  const history = readMetrics(metricsPath);

  const evalEnvs = await makeEvaluationEnvs({ env: config.env, episodes: config.evaluate.episodes });
  const bar = new ProgressBar({ label: 'mopo', total: learner.epochs, unit: 'epochs', quiet: opts.quiet ?? false, initial: startEpoch });
  const requests = new Subject<RolloutRequest>();
  let last: (SacEpochEvent & { evaluation: Evaluation | null }) | null = null;
  // A resumed run's bar shows the score of its last evaluation before the resume, not "–".
  let lastEvaluation: Evaluation | null = [...history].reverse().find((m) => m.evaluation !== null)?.evaluation ?? null;
  // A stop (Ctrl-C) ends the run only after an epoch whose checkpoint is written. The sink below
  // decides per epoch whether to write one (scheduled, last, or a stop requested by then); a stop
  // requested after that decision ends the run after this epoch if it got a checkpoint anyway, else
  // after the next one (which then gets one), never after an epoch without one.
  let stopAfterThisEpoch = false;
  let epochCheckpoint: { epoch: number; dir: string } | null = null;
  const stopNow = (): boolean => {
    const stop = stopAfterThisEpoch || (epochCheckpoint !== null && (opts.stopRequested?.() ?? false));
    if (stop && epochCheckpoint && epochCheckpoint.epoch < learner.epochs - 1) log(`stopped at the end of epoch ${epochCheckpoint.epoch}; its checkpoint is ${epochCheckpoint.dir}`);
    return stop;
  };
  const tLearn = performance.now();
  try {
    await lastValueFrom(
      requests.pipe(
        config.rolloutsFrom ? replayRollouts(config.rolloutsFrom) : rolloutInWorker(rollout, {
          ensembleDir,
          dataset: config.dataset,
          read: config.read,
          sac: agent.config,
          backend: opts.backend,
          ...(checkpoint?.position.rolloutRng ? { rng: checkpoint.position.rolloutRng } : {}),
          onReady: (i) => log(`rollout worker: ${i.startStates} start states${i.reservoir ? ` (a uniform reservoir of the dataset's ${i.datasetRows} rows)` : ''}`),
        }),
        sacConsumer(learner, {
          agent,
          real,
          model,
          limiter,
          request: (r) => requests.next(r),
          ...(checkpoint ? { resume: checkpoint.position } : {}),
          ...(opts.stopRequested ? { stopRequested: stopNow } : {}),
          ...(config.teeRollouts || reservoir
            ? {
                onRoundInserted: async (done, batches) => {
                  if (reservoir && done.round >= 1) await reservoir.refresh(done.round);
                  if (config.teeRollouts) {
                    tracePhase(`round-write ${done.round}`);
                    await saveRound(join(runDir, 'stages', 'rollout'), done, batches);
                  }
                  tracePhase('learning');
                },
              }
            : {}),
        }),
        tap((e) => {
          if (evaluationDue(e.epoch, config.evaluate, learner.epochs - 1)) tracePhase(`evaluate ${e.epoch}`);
        }),
        evaluatePolicyEvery({ env: config.env, ...config.evaluate, seed: config.seed + 1_000_000 }, evalEnvs, { lastEpoch: learner.epochs - 1 }),
        tap((e) => {
          last = e;
          tracePhase(`epoch-end ${e.epoch}`);
          if (e.evaluation) lastEvaluation = e.evaluation;
          const line = metricsLine(e);
          appendFileSync(metricsPath, JSON.stringify(line) + '\n');
          history.push(line);
          if (e.evaluation) e.hold(writePlots(runDir, history, config.env));
          const stopping = opts.stopRequested?.() ?? false;
          stopAfterThisEpoch = stopping;
          epochCheckpoint = null;
          if ((e.epoch + 1) % config.checkpointEvery === 0 || e.epoch === learner.epochs - 1 || stopping) {
            e.hold(writeCheckpoint(runDir, e, model).then((dir) => (epochCheckpoint = { epoch: e.epoch, dir })));
          }
          const score = lastEvaluation ? (lastEvaluation.score !== null ? `score ${lastEvaluation.score.toFixed(1)}` : `return ${lastEvaluation.mean.toFixed(0)}`) : 'score –';
          bar.update(e.epoch + 1, `${score}, ${e.updatesPerSecond.toFixed(1)} upd/s, penalty ${e.rollout ? e.rollout.penalty.mean.toFixed(3) : '–'}`);
          if (!(opts.quiet ?? false) && !process.stderr.isTTY && e.evaluation) {
            log(`epoch ${e.epoch}: ${score} (return ${e.evaluation.mean.toFixed(1)} ± ${e.evaluation.std.toFixed(1)}), ${e.updatesPerSecond.toFixed(1)} updates/s`);
          }
        }),
      ),
      { defaultValue: undefined },
    );
  } finally {
    requests.complete();
    agent.dispose();
    for (const e of evalEnvs) e.close();
  }
  const end = last as (SacEpochEvent & { evaluation: Evaluation | null }) | null;
  const learnerSeconds = (performance.now() - tLearn) / 1000;
  // Epochs done over all invocations: a run killed after its last checkpoint but before its summary
  // resumes at the end and runs no epoch; its evaluation and plots are those of the epochs before.
  const epochsDone = end ? end.epoch + 1 : startEpoch;
  const stoppedEarly = epochsDone < learner.epochs;
  bar.finish(stoppedEarly ? 'stopped' : 'done', { complete: !stoppedEarly });
  tracePhase('finish');
  if (end === null && history.length > 0) await writePlots(runDir, history, config.env);
  const summary: MopoSummary = {
    env: config.env,
    dataset: config.dataset,
    epochs: epochsDone,
    updates: end ? end.updates : checkpoint?.position.updates ?? 0,
    stoppedEarly,
    evaluation: lastEvaluation,
    score: scoreOfLastEvaluations(history),
    seconds: { total: (performance.now() - t0) / 1000, dynamics: dynamicsSeconds, learner: learnerSeconds },
    // Over this invocation (the counters are cumulative across resumes).
    waits: end
      ? {
          learnerFraction: (end.learnerWaitSeconds - (checkpoint?.position.limiter.sampleWaitSeconds ?? 0)) / learnerSeconds,
          producerFraction: (end.producerWaitSeconds - (checkpoint?.position.producer.waitSeconds ?? 0)) / learnerSeconds,
        }
      : { learnerFraction: 0, producerFraction: 0 },
    runDir,
  };
  await writeFileAtomic(join(runDir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  return summary;
}

// ---------------------------------------------------------------------------------------------
// Metrics and plots

export interface MetricsLine {
  epoch: number;
  updates: number;
  sac: SacEpochEvent['sac'];
  /** The actor's learning rate in the epoch (absent in runs before learning-rate schedules). */
  actorLr?: number;
  rollout: null | { rows: number; penaltyMean: number; penaltyStd: number; penaltyMax: number; rawRewardMean: number; rewardMean: number; terminatedFraction: number; nonFinite: number; seconds: number };
  modelBufferSize: number;
  updatesPerSecond: number;
  learnerWaitSeconds: number;
  producerWaitSeconds: number;
  producerBusySeconds: number;
  evaluation: Evaluation | null;
  /**
   * The process at the epoch's end (machine-dependent, so left out when runs are compared): a run of
   * hours must hold steady; RSS includes the rollout worker's thread and its wasm memory.
   */
  memory: { rssMB: number; heapUsedMB: number; learnerTensors: number };
}

/**
 * A run's score as MOPO reports it (the reference's scripts/d4rl_results.py, LAST_K = 10): the mean
 * D4RL score of its last `k` evaluations (fewer when it has fewer; the paper preset evaluates each of
 * the final 10 epochs), their spread, and the epochs they span. Null before any scored evaluation.
 */
export function scoreOfLastEvaluations(lines: readonly { epoch: number; evaluation: { score: number | null } | null }[], k = 10): { mean: number; std: number; evaluations: number; fromEpoch: number; toEpoch: number } | null {
  const evals = lines.filter((l) => l.evaluation !== null && l.evaluation.score !== null).slice(-k);
  if (evals.length === 0) return null;
  const scores = evals.map((l) => l.evaluation!.score!);
  const { mean, std } = meanStd(scores);
  return { mean, std, evaluations: scores.length, fromEpoch: evals[0]!.epoch, toEpoch: evals[evals.length - 1]!.epoch };
}

function metricsLine(e: SacEpochEvent & { evaluation: Evaluation | null }): MetricsLine {
  const r = e.rollout;
  return {
    epoch: e.epoch,
    updates: e.updates,
    sac: e.sac,
    actorLr: e.actorLr,
    rollout: r && {
      rows: r.rows,
      penaltyMean: r.penalty.mean,
      penaltyStd: r.penalty.std,
      penaltyMax: r.penalty.max,
      rawRewardMean: r.rawReward.mean,
      rewardMean: r.reward.mean,
      terminatedFraction: r.terminatedFraction,
      nonFinite: r.nonFinite,
      seconds: r.seconds.total,
    },
    modelBufferSize: e.modelBufferSize,
    updatesPerSecond: e.updatesPerSecond,
    learnerWaitSeconds: e.learnerWaitSeconds,
    producerWaitSeconds: e.producerWaitSeconds,
    producerBusySeconds: e.producerBusySeconds,
    evaluation: e.evaluation,
    memory: (() => {
      const m = process.memoryUsage();
      return { rssMB: Math.round(m.rss / 2 ** 20), heapUsedMB: Math.round(m.heapUsed / 2 ** 20), learnerTensors: tf.memory().numTensors };
    })(),
  };
}

/** The complete lines of metrics.jsonl (a run killed mid-append leaves a partial last line; it is dropped). */
const readMetrics = (path: string): MetricsLine[] => readJsonLines<MetricsLine>(path);

/** A resumed run rewrites the epochs after its checkpoint: drop their lines first (atomically: a kill keeps the old file). */
async function keepMetricsBefore(path: string, epoch: number): Promise<void> {
  if (!existsSync(path)) return;
  const kept = readMetrics(path).filter((m) => m.epoch < epoch);
  await writeFileAtomic(path, kept.map((m) => JSON.stringify(m) + '\n').join(''));
}

async function writePlots(runDir: string, history: MetricsLine[], env: string): Promise<void> {
  const evals = history.filter((m) => m.evaluation !== null);
  const useScore = env !== 'pendulum';
  await writeFileAtomic(
    join(runDir, 'learning-curve.svg'),
    lineChartSvg({
      title: `MOPO on ${env}: deterministic policy in MuJoCo`,
      xLabel: 'epoch',
      yLabel: useScore ? 'D4RL-normalized score' : 'return',
      series: [
        {
          name: useScore ? 'score (mean ± std)' : 'return (mean ± std)',
          x: evals.map((m) => m.epoch),
          y: evals.map((m) => (useScore ? m.evaluation!.score! : m.evaluation!.mean)),
          band: evals.map((m) => (useScore ? m.evaluation!.scoreStd! : m.evaluation!.std)),
        },
      ],
    }),
  );
  const withRollout = history.filter((m) => m.rollout !== null);
  await writeFileAtomic(
    join(runDir, 'penalty.svg'),
    lineChartSvg({
      title: 'Model rollouts: penalty and rewards per round',
      xLabel: 'epoch',
      yLabel: 'mean over the round',
      series: [
        { name: 'penalty u(s, a)', x: withRollout.map((m) => m.epoch), y: withRollout.map((m) => m.rollout!.penaltyMean) },
        { name: 'model reward r̂', x: withRollout.map((m) => m.epoch), y: withRollout.map((m) => m.rollout!.rawRewardMean) },
        { name: 'penalized reward r̂ − λu', x: withRollout.map((m) => m.epoch), y: withRollout.map((m) => m.rollout!.rewardMean) },
      ],
    }),
  );
}
