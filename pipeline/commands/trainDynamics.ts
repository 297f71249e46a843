// `mopo train-dynamics`: trains the probabilistic dynamics ensemble on a dataset, streaming the file
// once per epoch, with a progress line per epoch, JSONL metrics, an SVG of the validation losses,
// and a final report (per-member validation MSE and NLL, elites, epochs, wall time).
import { openTransitions } from '../../operators/source.js';
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join, resolve, basename } from 'node:path';
import { lastValueFrom, tap, filter } from 'rxjs';
import { initBackend } from '../backend.js';
import type { ReadOptions } from '../../operators/readTransitions.js';
import { trainEnsembleFrom, resolveEnsembleConfig, saveEnsembleTrainingState, loadEnsembleTrainingState, hasEnsembleTrainingState, type EnsembleConfig, type ModelTargets, type EnsembleDoneEvent, type EnsembleEpochEvent, type EnsembleStoppedEvent } from '../../operators/ensemble.js';
import { readJsonLines, tempPathFor, writeFileAtomic } from '../atomic.js';
import { ProgressBar } from '../progress.js';
import { lineChartSvg } from '../plot.js';
import { InterruptedError, UserError } from '../errors.js';
import { withStopSignals } from '../stopSignals.js';
import { acquireRunLock, sweepKilledRun, tracePhase } from '../runLock.js';
import { readOptionsFrom, type InputArgs } from './inputOptions.js';

export interface TrainDynamicsArgs extends InputArgs {
  dataset: string;
  out?: string | undefined;
  members: number;
  elites: number;
  maxEpochs?: number | undefined;
  patience?: number | undefined;
  seed: number;
  workers: number;
  targets: EnsembleConfig['targets'];
  nllReduction: EnsembleConfig['nllReduction'];
  resample: EnsembleConfig['resample'];
  init: EnsembleConfig['init'];
  resume: boolean;
  backend?: string | undefined;
  quiet: boolean;
}

export async function runTrainDynamics(args: TrainDynamicsArgs): Promise<void> {
  if (!(Number.isInteger(args.elites) && args.elites >= 1 && args.elites <= args.members)) {
    throw new UserError(`--elites must be an integer from 1 to --members (${args.members}), got ${args.elites}`);
  }
  const out = resolve(args.out ?? join('runs', `dynamics-${basename(args.dataset).replace(/\.parquet$/, '')}`));
  const log = args.quiet ? () => {} : (m: string) => process.stderr.write(m + '\n');
  const backend = await initBackend({ ...(args.backend ? { backend: args.backend } : {}), log });
  const report = await withStopSignals('at the end of this epoch, with its state saved', async (stopRequested) => {
    try {
      return await trainDynamicsInto(out, {
        dataset: args.dataset,
        read: readOptionsFrom(args),
        ensemble: { members: args.members, elites: args.elites, ...(args.maxEpochs !== undefined ? { maxEpochs: args.maxEpochs } : {}), ...(args.patience !== undefined ? { patience: args.patience } : {}), seed: args.seed, workers: args.workers, targets: args.targets, nllReduction: args.nllReduction, resample: args.resample, init: args.init },
        backend,
        quiet: args.quiet,
        resume: args.resume,
        stopRequested,
      });
    } catch (e) {
      if (!(e instanceof InterruptedError)) throw e;
      throw new InterruptedError(`${e.message}; continue with: mopo train-dynamics --dataset ${args.dataset} --out ${out} --resume`);
    }
  });
  process.stdout.write(JSON.stringify(report) + '\n');
  log(`run directory ${out}: config.json, metrics.jsonl, validation.svg, ensemble/, report.json`);
}

/** The validation MSE's axis label: it is in the model's output space (ensemble config `targets`). */
export function validationMseLabel(targets: ModelTargets): string {
  return `validation MSE (${targets} Δs, r)`;
}

/** Each member's validation MSE by epoch, on a log axis (it falls by a decade or more). */
export function validationChartSvg(title: string, epochs: readonly { epoch: number; valMse: number[] }[], targets: ModelTargets): string {
  const members = epochs[0]?.valMse.length ?? 0;
  return lineChartSvg({
    title,
    xLabel: 'epoch',
    yLabel: validationMseLabel(targets),
    yScale: 'log',
    series: Array.from({ length: members }, (_, m) => ({ name: `member ${m}`, x: epochs.map((e) => e.epoch), y: epochs.map((e) => e.valMse[m]!) })),
  });
}

export interface TrainDynamicsReport {
  dataset: string;
  epochs: number;
  stoppedBy: string;
  /** Wall time of the whole training, summed over its epochs across resumes, plus the final save. */
  seconds: number;
  elites: number[];
  validation: { rows: number; mse: number[]; nll: number[] };
}

/**
 * Trains the ensemble on `dataset` into the directory `out` (the layout mopo train-dynamics makes,
 * and mopo train's <run>/dynamics): config.json, metrics.jsonl (one line per epoch), validation.svg,
 * ensemble/, report.json. Shows a progress bar on stderr unless quiet.
 */
export async function trainDynamicsInto(
  out: string,
  opts: { dataset: string; read: ReadOptions; ensemble: Partial<EnsembleConfig>; backend: string; quiet: boolean; resume?: boolean; stopRequested?: () => boolean },
): Promise<TrainDynamicsReport> {
  mkdirSync(out, { recursive: true });
  const log = opts.quiet ? () => {} : (m: string) => process.stderr.write(m + '\n');
  const lock = acquireRunLock(out, log);
  try {
    sweepKilledRun(out);
    return await trainDynamicsLocked(out, opts, log);
  } finally {
    lock.release();
  }
}

async function trainDynamicsLocked(
  out: string,
  opts: { dataset: string; read: ReadOptions; ensemble: Partial<EnsembleConfig>; backend: string; quiet: boolean; resume?: boolean; stopRequested?: () => boolean },
  log: (m: string) => void,
): Promise<TrainDynamicsReport> {
  // The training state is saved after every epoch (checkpoint/), so a run of hours survives a kill.
  const checkpointDir = join(out, 'checkpoint');
  const reportPath = join(out, 'report.json');
  // report.json is the last file of a finished training; only the removal of the training state
  // comes after it. Resuming a finished training finishes that removal (a kill can land between).
  if (opts.resume && existsSync(reportPath) && existsSync(join(out, 'ensemble', 'ensemble.json'))) {
    await removeTrainingState(checkpointDir);
    return JSON.parse(readFileSync(reportPath, 'utf8')) as TrainDynamicsReport;
  }
  const resume = opts.resume ? await loadEnsembleTrainingState(checkpointDir) : null;
  if (!opts.resume && hasEnsembleTrainingState(checkpointDir)) {
    throw new UserError(`${out} holds an unfinished ensemble training (checkpoint/); continue it with --resume, or choose another --out`);
  }
  // A resumed run keeps its own config, except the thread count (speed only, not results) and, when
  // given, the epoch cap and the patience: lowering either to where the training is finishes it now
  // with each member's best weights (a time budget), raising it lets an unfinished training go further.
  const keep = {
    ...(opts.ensemble.workers !== undefined ? { workers: opts.ensemble.workers } : {}),
    ...(opts.ensemble.maxEpochs !== undefined ? { maxEpochs: opts.ensemble.maxEpochs } : {}),
    ...(opts.ensemble.patience !== undefined ? { patience: opts.ensemble.patience } : {}),
  };
  const config = resume ? resolveEnsembleConfig({ ...resume.ensemble.config, ...keep }) : resolveEnsembleConfig(opts.ensemble);
  if (resume) log(`resuming the ensemble training in ${out} after epoch ${resume.epoch - 1} (its own config)`);
  else if (opts.resume) log(`${out}: no checkpoint to resume; starting from the beginning`);
  await writeFileAtomic(join(out, 'config.json'), JSON.stringify({ job: 'train-dynamics', dataset: resolve(opts.dataset), read: opts.read, ensemble: config, backend: opts.backend }, null, 2) + '\n');
  const metricsPath = join(out, 'metrics.jsonl');
  const epochs: EnsembleEpochEvent[] = resume ? readJsonLines<EnsembleEpochEvent>(metricsPath).filter((e) => e.epoch < resume.epoch) : [];
  await writeFileAtomic(metricsPath, epochs.map((e) => JSON.stringify(e) + '\n').join(''));
  // No total: early stopping decides when it ends (maxEpochs is only a cap), so no ETA either.
  const bar = new ProgressBar({ label: 'train-dynamics', unit: 'epochs', quiet: opts.quiet, initial: resume?.epoch ?? 0 });
  let lastEpochAt = performance.now();
  const done = (await lastValueFrom(
    trainEnsembleFrom(() => openTransitions(opts.dataset, opts.read), config, {
      ...(resume ? { resume } : {}),
      ...(opts.stopRequested ? { stopRequested: opts.stopRequested } : {}),
      onEpochState: async (state) => {
        tracePhase(`dynamics-checkpoint ${state.epoch}`);
        await saveEnsembleTrainingState(checkpointDir, state);
        tracePhase('dynamics');
      },
    }).pipe(
      tap((e) => {
        if (e.type !== 'epoch') return;
        epochs.push(e);
        lastEpochAt = performance.now();
        appendFileSync(metricsPath, JSON.stringify(e) + '\n');
        const best = Math.min(...e.valMse);
        bar.update(e.epoch + 1, `best val MSE ${best.toFixed(4)}, ${e.epochsSinceImprovement}/${config.patience} epochs without a > ${100 * config.improvementThreshold} % improvement (stops at ${config.patience}, or after epoch ${config.maxEpochs})`);
        if (!opts.quiet && !process.stderr.isTTY) log(`epoch ${e.epoch}: val MSE ${e.valMse.map((x) => x.toFixed(4)).join(' ')}; elites ${e.elites.join(',')}`);
      }),
      filter((e): e is EnsembleDoneEvent | EnsembleStoppedEvent => e.type !== 'epoch'),
    ),
  )) as EnsembleDoneEvent | EnsembleStoppedEvent;
  if (done.type === 'stopped') {
    bar.finish(`interrupted after epoch ${done.epochs - 1}`);
    throw new InterruptedError(`the ensemble training stopped after epoch ${done.epochs - 1}; its state is saved in ${checkpointDir}`);
  }
  bar.finish(`stopped by ${done.stoppedBy} after ${done.epochs} epochs`);
  tracePhase('dynamics-save');
  await done.ensemble.save(join(out, 'ensemble'));
  await writeFileAtomic(join(out, 'validation.svg'), validationChartSvg(`Dynamics ensemble on ${basename(opts.dataset)}`, epochs, config.targets));
  const report: TrainDynamicsReport = {
    dataset: opts.dataset,
    epochs: done.epochs,
    stoppedBy: done.stoppedBy,
    // A run of hours is resumed across sessions: the epochs' own times, not this process's.
    seconds: Math.round(epochs.reduce((sum, e) => sum + e.seconds, 0) + (performance.now() - lastEpochAt) / 1000),
    elites: done.ensemble.elites.slice(),
    validation: { rows: done.validation.rows, mse: done.validation.mse, nll: done.validation.nll },
  };
  await writeFileAtomic(reportPath, JSON.stringify(report, null, 2) + '\n');
  await removeTrainingState(checkpointDir);
  done.ensemble.dispose();
  return report;
}

/**
 * Removes the training state (checkpoint/, and checkpoint.old/.new of an interrupted swap): each is
 * renamed to a temporary name first, so a kill during the removal leaves either the whole state or
 * a temporary directory that the next run's sweep removes, never half a state.
 */
async function removeTrainingState(checkpointDir: string): Promise<void> {
  for (const d of [checkpointDir, `${checkpointDir}.old`, `${checkpointDir}.new`]) {
    if (!existsSync(d)) continue;
    const tmp = tempPathFor(d);
    renameSync(d, tmp);
    rmSync(tmp, { recursive: true, force: true });
  }
}
