// `mopo train`: MOPO end to end (pipeline/mopo.ts) from a preset plus flags, or `--resume <run>`.
// Ctrl-C or SIGTERM stops at the next epoch boundary with a checkpoint and says how to resume; a
// second exits at once (the last complete checkpoint stays valid).
import { openTransitions } from '../../operators/source.js';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve, basename } from 'node:path';
import { firstValueFrom, take } from 'rxjs';
import { initBackend } from '../backend.js';
import { isEnvName, type EnvName } from '../envs/env.js';
import { presetConfig, taskOfDataset, TASKS, type MopoConfig, type Preset, type Task } from '../mopo.js';
import { parsePipeline, mopoConfigToPipeline, type ParsedPipeline } from '../pipelineFile.js';
import { runPipeline } from '../runPipeline.js';
import type { PenaltyKind } from '../../operators/rollout.js';
import type { WeightInit } from '../mlp.js';
import type { LrSchedule, RolloutLag } from '../../operators/sacConsumer.js';
import { InterruptedError, UserError } from '../errors.js';
import { withStopSignals } from '../stopSignals.js';
import { isDivergenceError } from '../divergence.js';
import { readOptionsFrom, type InputArgs } from './inputOptions.js';

export interface TrainArgs extends InputArgs {
  dataset?: string | undefined;
  preset: string;
  task?: Task | undefined;
  out?: string | undefined;
  resume?: string | undefined;
  dynamics?: string | undefined;
  horizon?: number | undefined;
  lambda?: number | undefined;
  penalty?: PenaltyKind | undefined;
  epochs?: number | undefined;
  epochLength?: number | undefined;
  rolloutBatch?: number | undefined;
  realRatio?: number | undefined;
  realBuffer?: number | undefined;
  evalEvery?: number | undefined;
  evalEpisodes?: number | undefined;
  evalLast?: number | undefined;
  targetEntropy?: number | undefined;
  actorLr?: number | undefined;
  alphaLr?: number | undefined;
  actorLrSchedule?: LrSchedule | undefined;
  sacInit?: WeightInit | undefined;
  rolloutLag?: RolloutLag | undefined;
  checkpointEvery?: number | undefined;
  seed: number;
  backend?: string | undefined;
  quiet: boolean;
}

export async function runTrain(args: TrainArgs): Promise<void> {
  const log = args.quiet ? () => {} : (m: string) => process.stderr.write(m + '\n');
  const backend = await initBackend({ ...(args.backend ? { backend: args.backend } : {}), log });
  let runDir: string;
  let config: MopoConfig;
  if (args.resume) {
    runDir = resolve(args.resume);
    for (const flag of ['dataset', 'dynamics', 'horizon', 'lambda', 'penalty', 'epochs', 'epochLength', 'rolloutBatch', 'realRatio', 'realBuffer', 'targetEntropy', 'actorLr', 'alphaLr', 'actorLrSchedule', 'sacInit', 'rolloutLag'] as const) {
      if (args[flag] !== undefined) throw new UserError(`--resume continues a run with its own config.json; drop --${flag.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`);
    }
    config = {} as MopoConfig; // read from the run directory by runMopo
  } else {
    if (!args.dataset) throw new UserError('--dataset is required (a Parquet file of transitions), or --resume <run-dir>');
    if (!existsSync(args.dataset)) throw new UserError(`--dataset ${args.dataset}: no such file`);
    const read = readOptionsFrom(args);
    const first = await firstValueFrom(openTransitions(args.dataset, read).pipe(take(1)), { defaultValue: null });
    if (first === null) throw new UserError(`${args.dataset}: no transitions`);
    const envName = args.env ?? first.env;
    if (!envName) throw new UserError(`${args.dataset} does not record its environment; name it with --env`);
    if (!isEnvName(envName)) throw new UserError(`--env ${envName}: unknown environment`);
    const preset = args.preset as Preset;
    let task: Task | null = null;
    if (args.task !== undefined) task = args.task;
    else if (envName !== 'pendulum') {
      task = taskOfDataset(args.dataset);
      if (task === null) throw new UserError(`cannot tell the D4RL task from the file name ${basename(args.dataset)}; pass --task (${TASKS.join(', ')}) so --preset ${preset} picks its horizon and λ`);
    }
    config = presetConfig(preset, envName as EnvName, resolve(args.dataset), task);
    config.read = read;
    config.seed = args.seed;
    if (args.dynamics) config.dynamicsFrom = resolve(args.dynamics);
    if (args.horizon !== undefined) config.rollout.horizon = args.horizon;
    if (args.lambda !== undefined) config.rollout.lambda = args.lambda;
    if (args.penalty !== undefined) config.rollout.penalty = args.penalty;
    if (args.rolloutBatch !== undefined) config.rollout.batch = args.rolloutBatch;
    if (args.epochs !== undefined) config.learner.epochs = args.epochs;
    if (args.epochLength !== undefined) {
      // One rollout round per epoch, as in the reference loop.
      config.learner.epochLength = args.epochLength;
      config.rollout.rolloutEvery = args.epochLength;
    }
    if (args.realRatio !== undefined) config.learner.realRatio = args.realRatio;
    if (args.realBuffer !== undefined) config.realBufferRows = args.realBuffer;
    if (args.evalEvery !== undefined) config.evaluate.every = args.evalEvery;
    if (args.evalEpisodes !== undefined) config.evaluate.episodes = args.evalEpisodes;
    if (args.evalLast !== undefined) config.evaluate.lastEpochs = args.evalLast;
    if (args.targetEntropy !== undefined) config.sac.targetEntropy = args.targetEntropy;
    if (args.actorLr !== undefined) config.sac.actorLr = args.actorLr;
    if (args.alphaLr !== undefined) config.sac.alphaLr = args.alphaLr;
    if (args.actorLrSchedule !== undefined) config.learner.actorLrSchedule = args.actorLrSchedule;
    if (args.sacInit !== undefined) config.sac.init = args.sacInit;
    if (args.rolloutLag !== undefined) config.learner.rolloutLag = args.rolloutLag;
    if (args.checkpointEvery !== undefined) config.checkpointEvery = args.checkpointEvery;
    runDir = resolve(args.out ?? join('runs', `mopo-${basename(args.dataset).replace(/\.parquet$/i, '')}-${preset}-seed${args.seed}`));
  }

  const parsed = args.resume ? null : parsePipeline(mopoConfigToPipeline(config), 'mopo train (preset and flags)');
  await runPipelineCommand(runDir, parsed, { resume: Boolean(args.resume), quiet: args.quiet, backend, log, command: 'train' });
}

/**
 * Runs a pipeline (mopo train builds one from a preset, mopo run reads one) with Ctrl-C (and SIGTERM) handling:
 * the first stops at the end of the epoch with a checkpoint, a second exits at once. The last
 * stdout line is the score of the last evaluation.
 */
export async function runPipelineCommand(runDir: string, parsed: ParsedPipeline | null, o: { resume: boolean; quiet: boolean; backend: string; log: (m: string) => void; command: 'train' | 'run' }): Promise<void> {
  const resumeWith = `mopo ${o.command} --resume ${runDir}`;
  await withStopSignals('at the end of this epoch with a checkpoint', async (stopRequested) => {
    let result: Awaited<ReturnType<typeof runPipeline>>;
    try {
      result = await runPipeline(runDir, parsed, { resume: o.resume, quiet: o.quiet, backend: o.backend, stopRequested, log: o.log });
    } catch (e) {
      if (e instanceof InterruptedError) throw new InterruptedError(`${e.message}; continue with: ${resumeWith}`);
      if (!isDivergenceError(e)) throw e;
      // Name the last good checkpoint: the bad update was never applied, so it is intact.
      const latest = join(runDir, 'checkpoints', 'latest.json');
      const where = existsSync(latest) ? (JSON.parse(readFileSync(latest, 'utf8')) as { checkpoint: string; epoch: number }) : null;
      const dynState = join(runDir, 'dynamics', 'checkpoint');
      let next: string;
      if (e.stage === 'dynamics' && existsSync(dynState)) next = `the ensemble's last good epoch is saved in ${dynState}: fix the cause and continue with ${resumeWith}`;
      else if (where) next = `the last good checkpoint is ${join(runDir, 'checkpoints', where.checkpoint)} (after epoch ${where.epoch}): fix the cause and continue with ${resumeWith}`;
      else next = 'there is no checkpoint yet: fix the cause and start again';
      throw new UserError(`${e.message}. The run stopped; ${next}`);
    }
    const summary = result.mopo;
    if (summary === null) {
      o.log(`run directory ${runDir}: pipeline.json, stages/ (no MOPO stages in this pipeline)`);
      return;
    }
    if (summary.stoppedEarly) o.log(`stopped after epoch ${summary.epochs - 1}; continue with: ${resumeWith}`);
    o.log(`run directory ${runDir}: pipeline.json, config.json, dynamics/, metrics.jsonl, learning-curve.svg, penalty.svg, checkpoints/, summary.json`);
    const ev = summary.evaluation;
    const s = summary.score;
    if (s && s.evaluations > 1) o.log(`score as MOPO reports it (mean of the last ${s.evaluations} evaluations, epochs ${s.fromEpoch}–${s.toEpoch}): ${s.mean.toFixed(1)} ± ${s.std.toFixed(1)}`);
    if (ev) {
      const score = ev.score !== null ? ev.score.toFixed(1) : 'n/a';
      process.stdout.write(`score: ${score} (return ${ev.mean.toFixed(1)} ± ${ev.std.toFixed(1)})\n`);
    }
    if (stopRequested()) process.exitCode = 130;
  });
}
