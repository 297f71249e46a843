// `mopo diagnose dynamics`: the trained ensemble against a linear baseline and the real simulator
// (pipeline/diagnose/dynamics.ts). Reads a train-dynamics run directory (or an ensemble directory),
// writes diagnose-dynamics.json and an SVG of the open-loop error growth beside it.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { initBackend } from '../backend.js';
import { DynamicsEnsemble, hasEnsembleTrainingState, loadBestSoFar } from '../../operators/ensemble.js';
import { diagnoseDynamics, type DynamicsDiagnostics } from '../diagnose/dynamics.js';
import { writeFileAtomic } from '../atomic.js';
import { lineChartSvg } from '../plot.js';
import { ProgressBar } from '../progress.js';
import { UserError } from '../errors.js';
import { readOptionsFrom, type InputArgs } from './inputOptions.js';
import type { ReadOptions } from '../../operators/readTransitions.js';

export interface DiagnoseDynamicsArgs extends InputArgs {
  run: string;
  dataset?: string | undefined;
  states: number;
  horizon: number;
  seed: number;
  json: boolean;
  backend?: string | undefined;
  quiet: boolean;
}

/**
 * The ensemble of a run (run/ensemble, or the directory itself when it holds one); for a training
 * still going (or killed), its best weights so far, so a run of hours can be looked at on the way.
 */
function ensembleSourceOf(run: string): { dir: string; unfinished: boolean } {
  if (existsSync(join(run, 'ensemble', 'ensemble.json'))) return { dir: join(run, 'ensemble'), unfinished: false };
  if (existsSync(join(run, 'ensemble.json'))) return { dir: run, unfinished: false };
  if (hasEnsembleTrainingState(join(run, 'checkpoint'))) return { dir: join(run, 'checkpoint'), unfinished: true };
  throw new UserError(`${run}: no ensemble here (expected ${join(run, 'ensemble', 'ensemble.json')}, or an unfinished training's checkpoint/); pass a directory made by mopo train-dynamics`);
}

async function loadEnsembleOf(source: { dir: string; unfinished: boolean }): Promise<{ ensemble: DynamicsEnsemble; afterEpoch: number | null }> {
  if (!source.unfinished) return { ensemble: await DynamicsEnsemble.load(source.dir), afterEpoch: null };
  const sofar = await loadBestSoFar(source.dir);
  if (!sofar) throw new UserError(`${source.dir}: no saved training state in it (a training killed before its first epoch ended); nothing to diagnose yet`);
  return sofar;
}

/**
 * The dataset the run was trained on and how it was read (e.g. only its first rows, as mopo train's
 * quick preset does), from its config.json, unless --dataset says otherwise.
 */
function datasetOf(run: string, given: string | undefined): { dataset: string; read: ReadOptions } {
  if (given) return { dataset: given, read: {} };
  const cfgPath = join(run, 'config.json');
  if (existsSync(cfgPath)) {
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as { dataset?: unknown; read?: ReadOptions };
    if (typeof cfg.dataset === 'string') return { dataset: cfg.dataset, read: cfg.read ?? {} };
  }
  throw new UserError(`${run}: no config.json naming the dataset; pass --dataset <parquet> (the one the ensemble was trained on)`);
}

export async function runDiagnoseDynamics(args: DiagnoseDynamicsArgs): Promise<void> {
  const run = resolve(args.run);
  const source = ensembleSourceOf(run);
  const { dataset, read: recorded } = datasetOf(run, args.dataset);
  const log = args.quiet ? () => {} : (m: string) => process.stderr.write(m + '\n');
  await initBackend({ ...(args.backend ? { backend: args.backend } : {}), log });
  const { ensemble, afterEpoch } = await loadEnsembleOf(source);
  // An unfinished training's figures go beside, not over, the final ones (which queues wait for).
  const name = afterEpoch === null ? 'diagnose-dynamics' : `diagnose-dynamics-after-epoch-${afterEpoch}`;
  if (afterEpoch !== null) log(`${run}: training unfinished; diagnosing its best weights after epoch ${afterEpoch}`);
  const bar = new ProgressBar({ label: 'diagnose', total: ensemble.normalizer.rows, unit: 'rows', quiet: args.quiet || args.json });
  let report: DynamicsDiagnostics;
  try {
    report = await diagnoseDynamics(ensemble, {
      dataset,
      read: { ...recorded, ...readOptionsFrom(args) },
      ...(args.env ? { env: args.env } : {}),
      states: args.states,
      horizon: args.horizon,
      seed: args.seed,
      onProgress: (rows) => bar.update(rows),
    });
  } finally {
    ensemble.dispose();
  }
  bar.finish();
  if (afterEpoch !== null) report.unfinished = { afterEpoch };
  await writeFileAtomic(join(run, `${name}.json`), JSON.stringify(report, null, 2) + '\n');
  const ms = report.multiStep;
  if (ms.starts > 0) {
    const steps = ms.eliteMean.map((s) => s.step);
    await writeFileAtomic(
      join(run, `${name}.svg`),
      lineChartSvg({
        title: `Open-loop model error vs MuJoCo (${ms.starts} held-out starts)`,
        xLabel: 'step',
        yLabel: 'observation RMSE / obs std',
        series: [
          { name: 'elite mean', x: steps, y: ms.eliteMean.map((s) => s.obsRmseOverStd) },
          { name: 'random elite, sampled', x: steps, y: ms.sampled.map((s) => s.obsRmseOverStd) },
        ],
      }),
    );
  }
  if (args.json) {
    process.stdout.write(JSON.stringify(report) + '\n');
    return;
  }
  process.stdout.write(formatReport(report) + '\n');
  log(`written ${join(run, `${name}.json`)}${ms.starts > 0 ? ` and ${name}.svg` : ''}`);
}

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;

function formatReport(r: DynamicsDiagnostics): string {
  const v = r.validation;
  const s = r.simulator;
  const lines = [
    ...(r.unfinished ? [`training unfinished: the best weights after epoch ${r.unfinished.afterEpoch}`] : []),
    `dataset ${r.dataset} (${r.env}, ${r.rows} rows), ${r.members} members, elites ${r.elites.join(',')}`,
    `validation (${v.rows} held-out rows):`,
    `  member MSE as trained (${v.memberTargets} Δs and r) ${v.memberMse.map((x) => x.toFixed(4)).join(' ')}`,
    `  normalized Δs and r: elite-mean MSE ${v.eliteMeanMse.toFixed(4)}, linear least squares ${v.linearMse.toFixed(4)}, ratio ${v.ratio.toFixed(3)}`,
    `one step against MuJoCo (${s.states} states${s.skippedInexact ? `, ${s.skippedInexact} skipped: clipped velocities` : ''}; dataset agrees with the simulator to ${s.datasetAgreementMaxAbs.toExponential(1)}):`,
    `  RMSE / std(Δs) per dim ${s.obsRmseOverDeltaStd.map((x) => x.toFixed(3)).join(' ')}; reward RMSE ${s.rewardRmse.toFixed(4)} (${s.rewardRmseOverStd.toFixed(3)} std)`,
    `  within ±1σ / ±2σ (ideal ${pct(s.ideal.within1)} / ${pct(s.ideal.within2)}): mixture ${pct(s.mixtureCalibration.within1)} / ${pct(s.mixtureCalibration.within2)}; members ${s.memberCalibration.map((c) => `${pct(c.within1)}/${pct(c.within2)}`).join(', ')}`,
    `open loop over ${r.multiStep.horizon} steps (${r.multiStep.starts} starts), observation RMSE / std per step:`,
    `  elite mean ${r.multiStep.eliteMean.map((e) => e.obsRmseOverStd.toFixed(3)).join(' → ')}`,
    `  sampled    ${r.multiStep.sampled.map((e) => e.obsRmseOverStd.toFixed(3)).join(' → ')}`,
  ];
  return lines.join('\n');
}
