// `mopo runs ls [dir]` and `mopo runs show <run-dir>`: what runs there are, and for one run, its
// stages and what each saved (rows, config hash, manifest hash, checkpoints, scores).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { readManifest, manifestHash } from '../../operators/shards.js';
import { UserError } from '../errors.js';
import type { ModelTargets } from '../../operators/ensemble.js';
import { readJsonIfExists, readJsonLines, writeFileAtomic } from '../atomic.js';
import { lineChartSvg, type Series } from '../plot.js';
import { PIPELINE_FILE } from '../runPipeline.js';
import { runLockHolder } from '../runLock.js';
import { validationChartSvg, validationMseLabel } from './trainDynamics.js';
import { scoreOfLastEvaluations } from '../mopo.js';
import { meanStd } from '../../operators/evaluate.js';

export interface RunInfo {
  run: string;
  env: string | null;
  epochs: number | null;
  /** The epochs the run's config asks for. */
  plannedEpochs: number | null;
  updates: number | null;
  lastScore: number | null;
  lastReturn: number | null;
  /** The mean score of the last 10 evaluations, as MOPO reports a run (null without a D4RL score). */
  score: ReturnType<typeof scoreOfLastEvaluations>;
  /** running: a live process holds the run's lock; stopped: Ctrl-C or SIGTERM, resumable; killed: ended without a summary, resumable from its last checkpoint. */
  status: 'running' | 'done' | 'stopped' | 'killed' | 'not started';
  checkpoint: string | null;
}


function lastMetrics(run: string): { epoch: number; updates: number; evaluation: { mean: number; score: number | null } | null }[] {
  return readJsonLines(join(run, 'metrics.jsonl'));
}

/** A MOPO run's status (RunInfo.status); `started`: it has logged an epoch (then it is never 'not started'). */
export function runStatus(run: string, started: boolean): RunInfo['status'] {
  if (runLockHolder(run)) return 'running';
  const summary = readJsonIfExists<{ stoppedEarly: boolean }>(join(run, 'summary.json'));
  if (summary) return summary.stoppedEarly ? 'stopped' : 'done';
  return started || existsSync(join(run, 'dynamics')) ? 'killed' : 'not started';
}

export function runInfo(run: string): RunInfo {
  const cfg = readJsonIfExists<{ env?: string; learner?: { epochs?: number } }>(join(run, 'config.json'));
  const latest = readJsonIfExists<{ checkpoint: string }>(join(run, 'checkpoints', 'latest.json'));
  const m = lastMetrics(run);
  const lastEval = [...m].reverse().find((x) => x.evaluation)?.evaluation ?? null;
  const last = m[m.length - 1];
  const status = runStatus(run, m.length > 0);
  return {
    run,
    env: cfg?.env ?? null,
    epochs: last ? last.epoch + 1 : null,
    plannedEpochs: cfg?.learner?.epochs ?? null,
    updates: last ? last.updates : null,
    lastScore: lastEval?.score ?? null,
    lastReturn: lastEval?.mean ?? null,
    score: scoreOfLastEvaluations(m),
    status,
    checkpoint: latest?.checkpoint ?? null,
  };
}

function isRunDir(dir: string): boolean {
  return existsSync(join(dir, PIPELINE_FILE)) || existsSync(join(dir, 'config.json'));
}

/** A `mopo train-dynamics` run: how far its training got. */
interface DynamicsRunInfo {
  run: string;
  kind: 'dynamics';
  dataset: string | null;
  epochs: number;
  bestValidationMse: number | null;
  /** The model's output space, which the validation MSE is in (ensemble config `targets`). */
  targets: ModelTargets;
  status: 'running' | 'done' | 'killed' | 'not started';
  stoppedBy: string | null;
  /** Training wall time so far, summed over the logged epochs (across resumes); null before the first. */
  seconds: number | null;
  /** Epochs in a row without a member improving enough, after the last logged one (stops at patience). */
  epochsSinceImprovement: number | null;
  patience: number | null;
}

/** A train-dynamics run's config.json, as far as these commands read it. */
type DynamicsConfig = { job?: string; dataset?: string; ensemble?: { patience?: number; targets?: ModelTargets } };

/** The output space a dynamics run's model (and so its validation MSE) is in; runs from before the option: normalized. */
function dynamicsTargets(cfg: DynamicsConfig | null): ModelTargets {
  return cfg?.ensemble?.targets ?? 'normalized';
}

/** Also a MOPO run's `dynamics/` stage, which is laid out as a train-dynamics run; `cfg` is its config.json. */
function dynamicsRunInfo(run: string, cfg: DynamicsConfig | null): DynamicsRunInfo {
  const report = readJsonIfExists<{ epochs: number; stoppedBy: string; seconds: number; validation: { mse: number[] } }>(join(run, 'report.json'));
  const lines = readJsonLines<{ valMse: number[]; seconds: number; epochsSinceImprovement: number }>(join(run, 'metrics.jsonl'));
  const mses = lines.flatMap((l) => l.valMse);
  const started = lines.length > 0 || existsSync(join(run, 'checkpoint'));
  const status: DynamicsRunInfo['status'] = report ? 'done' : runLockHolder(run) ? 'running' : started ? 'killed' : 'not started';
  return {
    run,
    kind: 'dynamics',
    dataset: cfg?.dataset ?? null,
    epochs: report?.epochs ?? lines.length,
    // The saved ensemble's own validation once finished; the best logged epoch while it trains.
    bestValidationMse: report ? Math.min(...report.validation.mse) : mses.length > 0 ? Math.min(...mses) : null,
    targets: dynamicsTargets(cfg),
    status,
    stoppedBy: report?.stoppedBy ?? null,
    seconds: lines.length > 0 ? Math.round(lines.reduce((sum, l) => sum + l.seconds, 0)) : null,
    epochsSinceImprovement: lines.length > 0 ? lines[lines.length - 1]!.epochsSinceImprovement : null,
    patience: cfg?.ensemble?.patience ?? null,
  };
}

/** Whether a directory is a train-dynamics run (its config.json names the job). */
function isTrainDynamicsRun(dir: string): boolean {
  return readJsonIfExists<DynamicsConfig>(join(dir, 'config.json'))?.job === 'train-dynamics';
}

/** A train-dynamics run directory's info, or null when it is not one. */
function trainDynamicsRun(dir: string): DynamicsRunInfo | null {
  const cfg = readJsonIfExists<DynamicsConfig>(join(dir, 'config.json'));
  return cfg?.job === 'train-dynamics' ? dynamicsRunInfo(dir, cfg) : null;
}

/** What a directory under `runs ls` is: a MOPO run (with or without a pipeline file), a train-dynamics run, or neither. */
function listedRun(dir: string): ((RunInfo & { kind: 'mopo' }) | DynamicsRunInfo) | null {
  if (existsSync(join(dir, PIPELINE_FILE))) return { ...runInfo(dir), kind: 'mopo' };
  const cfg = readJsonIfExists<DynamicsConfig & { learner?: unknown }>(join(dir, 'config.json'));
  if (!cfg) return null;
  if (cfg.job === 'train-dynamics') return dynamicsRunInfo(dir, cfg);
  if (cfg.learner !== undefined) return { ...runInfo(dir), kind: 'mopo' };
  return null;
}

export async function runRunsLs(args: { dir: string; json: boolean }): Promise<void> {
  const dir = resolve(args.dir);
  if (!existsSync(dir)) throw new UserError(`${dir}: no such directory`);
  const runs = readdirSync(dir)
    .sort()
    .map((n) => join(dir, n))
    .filter((p) => statSync(p).isDirectory())
    .map(listedRun)
    .filter((r) => r !== null);
  if (args.json) {
    process.stdout.write(JSON.stringify(runs) + '\n');
    return;
  }
  if (runs.length === 0) {
    process.stdout.write(`no runs in ${dir}\n`);
    return;
  }
  for (const r of runs) {
    if (r.kind === 'dynamics') {
      const mse = r.bestValidationMse !== null ? `best val MSE ${r.bestValidationMse.toFixed(4)}${r.targets === 'raw' ? ' (raw units)' : ''}` : 'no epoch yet';
      const hours = r.seconds !== null ? ` (${(r.seconds / 3600).toFixed(1)} h)` : '';
      const stopping = r.status !== 'done' && r.epochsSinceImprovement !== null && r.patience !== null ? ` (${r.epochsSinceImprovement}/${r.patience} epochs without improvement)` : '';
      process.stdout.write(`${r.run}  dynamics  ${r.epochs} epochs${hours}  ${mse}  ${r.status}${r.stoppedBy ? ` (stopped by ${r.stoppedBy})` : stopping}\n`);
      continue;
    }
    const lastTen = r.score && r.score.evaluations > 1 ? ` (last ${r.score.evaluations}: ${r.score.mean.toFixed(1)} ± ${r.score.std.toFixed(1)})` : '';
    const score = r.lastScore !== null ? `score ${r.lastScore.toFixed(1)}${lastTen}` : r.lastReturn !== null ? `return ${r.lastReturn.toFixed(1)}` : 'no evaluation yet';
    const of = r.status !== 'done' && r.plannedEpochs !== null ? ` of ${r.plannedEpochs}` : '';
    process.stdout.write(`${r.run}  ${r.env ?? '?'}  ${r.epochs ?? 0}${of} epochs  ${score}  ${r.status}${r.checkpoint ? `  (checkpoint ${r.checkpoint})` : ''}\n`);
  }
}

function dynamicsStageView(d: DynamicsRunInfo): Record<string, unknown> {
  const { run, epochs, stoppedBy, seconds, bestValidationMse, status, epochsSinceImprovement, patience } = d;
  return { dir: run, status: status === 'done' ? 'done' : status === 'running' ? 'training' : 'training unfinished (resumable)', epochs, stoppedBy, seconds, bestValidationMse, ...(status === 'done' ? {} : { epochsSinceImprovement, patience }) };
}

export async function runRunsShow(args: { run: string; json: boolean }): Promise<void> {
  const run = resolve(args.run);
  if (!isRunDir(run)) throw new UserError(`${run}: not a run directory (no ${PIPELINE_FILE} or config.json)`);
  const dynamicsRun = existsSync(join(run, PIPELINE_FILE)) ? null : trainDynamicsRun(run);
  if (dynamicsRun) {
    if (args.json) process.stdout.write(JSON.stringify(dynamicsRun) + '\n');
    else process.stdout.write(`${run} (train-dynamics): ${dynamicsRun.status}\n  ${'dynamics'.padEnd(10)} ${JSON.stringify(dynamicsStageView(dynamicsRun))}\n`);
    return;
  }
  const info = runInfo(run);
  const stages: Record<string, unknown> = {};
  const pre = join(run, 'stages', 'preprocess');
  if (existsSync(join(pre, 'manifest.json'))) {
    const m = await readManifest(pre);
    stages['preprocess'] = { dir: pre, rows: m.rows, shards: m.shards.length, complete: m.complete, configHash: m.configHash, manifestHash: manifestHash(m) };
  }
  const dyn = dynamicsRunInfo(join(run, 'dynamics'), readJsonIfExists<DynamicsConfig>(join(run, 'dynamics', 'config.json')));
  if (dyn.status !== 'not started') stages['dynamics'] = dynamicsStageView(dyn);
  const ro = join(run, 'stages', 'rollout');
  if (existsSync(ro)) {
    const rounds = readdirSync(ro).filter((n) => /^round-\d+$/.test(n)).sort();
    stages['rollout'] = { dir: ro, roundsSaved: rounds.length, first: rounds[0] ?? null, last: rounds[rounds.length - 1] ?? null };
  }
  stages['sac'] = { epochs: info.epochs, updates: info.updates, lastScore: info.lastScore, lastReturn: info.lastReturn, checkpoint: info.checkpoint, status: info.status };
  const replay = readJsonIfExists<unknown>(join(run, 'replay.json'));
  const out = { ...info, ...(replay ? { replayOf: replay } : {}), stages };
  if (args.json) {
    process.stdout.write(JSON.stringify(out) + '\n');
    return;
  }
  process.stdout.write(`${run} (${info.env ?? '?'}): ${info.status}${replay ? `, a replay of ${JSON.stringify(replay)}` : ''}\n`);
  for (const [name, s] of Object.entries(stages)) process.stdout.write(`  ${name.padEnd(10)} ${JSON.stringify(s)}\n`);
}

/**
 * The ensemble a MOPO run loaded (its config's dynamicsFrom, a train-dynamics run), as its training
 * config without the seed (and the worker count, which trains the same up to float rounding:
 * test/ensemble.test.ts), and that seed: read from the ensemble run's config.json at that path or,
 * for a run carried from another machine, beside the run (`<runDir>/../<name>`). Null where neither
 * is there.
 */
function loadedEnsemble(dynamicsFrom: string, runDir: string | undefined): { config: unknown; seed: number } | null {
  const places = [dynamicsFrom, ...(runDir === undefined ? [] : [join(dirname(resolve(runDir)), basename(dynamicsFrom))])];
  for (const place of places) {
    const c = readJsonIfExists<{ job?: string; dataset?: string; read?: unknown; ensemble?: { seed?: number; workers?: number } }>(join(place, 'config.json'));
    if (c?.job !== 'train-dynamics' || !c.ensemble || !c.dataset) continue;
    const { seed, workers: _workers, ...ensemble } = c.ensemble;
    return { config: { dataset: basename(c.dataset), read: c.read, ensemble }, seed: seed ?? 0 };
  }
  return null;
}

/**
 * A MOPO run's config without its seeds, paths by file name (a run carried from another machine keeps
 * that machine's absolute paths): equal for the seeds of one configuration. The ensemble it loaded
 * counts by how it was trained, not which draw it is, so runs on ensembles that differ only in
 * their training seed are seeds of one configuration too (as the paper's, each of which trained its
 * own model); `ensembleSeed` is that draw's seed (null when the ensemble is not found: then it counts
 * by its directory's name, or the run trained its own from its seed). `runDir` finds the ensemble beside a
 * carried run. Null for a config (its config.json, parsed) that is not a MOPO run's.
 */
export function seedlessConfigKey(
  cfg: { dataset?: string; seed?: number; dynamicsFrom?: string; rollout?: unknown; learner?: unknown } | null,
  runDir?: string,
): { key: string; seed: number; ensembleSeed: number | null } | null {
  if (cfg === null || !cfg.rollout || !cfg.learner || !cfg.dataset) return null;
  const loaded = cfg.dynamicsFrom ? loadedEnsemble(cfg.dynamicsFrom, runDir) : null;
  const dynamicsFrom = loaded ? loaded.config : cfg.dynamicsFrom ? basename(cfg.dynamicsFrom) : undefined;
  const { seed, ...rest } = { ...cfg, dataset: basename(cfg.dataset), ...(dynamicsFrom !== undefined ? { dynamicsFrom } : {}) };
  return { key: JSON.stringify(rest), seed: seed ?? 0, ensembleSeed: loaded?.seed ?? null };
}

/**
 * How a run is named among the seeds of its configuration: its seed, and its ensemble's where the
 * group's runs loaded more than one draw ("1 (ensemble 1)").
 */
export function seedLabel(run: { seed: number; ensembleSeed: number | null }, group: readonly { ensembleSeed: number | null }[]): string {
  const draws = new Set(group.map((r) => r.ensembleSeed));
  return draws.size > 1 ? `${run.seed} (ensemble ${run.ensembleSeed ?? '?'})` : `${run.seed}`;
}

/** Orders the seeds of a configuration: by seed, then by the ensemble's seed. */
export function bySeed(a: { seed: number; ensembleSeed: number | null }, b: { seed: number; ensembleSeed: number | null }): number {
  return a.seed - b.seed || (a.ensembleSeed ?? -1) - (b.ensembleSeed ?? -1);
}

/** One run's evaluation curve, with its seedless config key (null: not grouped with anything). */
export interface EvaluationCurve {
  name: string;
  key: string | null;
  seed: number;
  ensembleSeed: number | null;
  x: number[];
  y: number[];
  band: number[];
}

/**
 * Curves of runs that differ only in the seed, drawn as one: at every epoch all of them evaluated,
 * the mean over the seeds and, as its band, their std (population, as over episodes); a run with no
 * other seed stays as it is. The group is named by its first run (lowest seed) and its seeds.
 */
export function curvesOverSeeds(curves: readonly EvaluationCurve[]): Series[] {
  const groups = new Map<string, EvaluationCurve[]>();
  const out: (Series | string)[] = [];
  for (const c of curves) {
    if (c.key === null) {
      out.push({ name: c.name, x: c.x, y: c.y, band: c.band });
      continue;
    }
    if (!groups.has(c.key)) {
      groups.set(c.key, []);
      out.push(c.key); // the group's place: where its first run was named
    }
    groups.get(c.key)!.push(c);
  }
  return out.map((o) => {
    if (typeof o !== 'string') return o;
    const g = [...groups.get(o)!].sort(bySeed);
    if (g.length === 1) return { name: g[0]!.name, x: g[0]!.x, y: g[0]!.y, band: g[0]!.band };
    const at = g.map((c) => new Map(c.x.map((e, i) => [e, c.y[i]!])));
    const epochs = g[0]!.x.filter((e) => at.every((m) => m.has(e)));
    const stats = epochs.map((e) => meanStd(at.map((m) => m.get(e)!)));
    return {
      name: `${g[0]!.name} (seeds ${g.map((c) => seedLabel(c, g)).join(', ')}: mean ± std)`,
      x: epochs,
      y: stats.map((s) => s.mean),
      band: stats.map((s) => s.std),
    };
  });
}

/**
 * `mopo runs plot <run>... --out <svg>`: the evaluation curves of several MOPO runs in one chart
 * (D4RL-normalized score when every run has one, else the return), mean ± std over the episodes,
 * each run named by its directory; `references` draws labelled horizontal lines (a paper's score).
 * `overSeeds` draws runs that differ only in the seed as one curve (curvesOverSeeds).
 */
export async function runRunsPlot(args: { runs: string[]; out: string; references: string[]; title?: string | undefined; overSeeds?: boolean }): Promise<void> {
  if (args.runs.some((r) => isTrainDynamicsRun(resolve(r)))) {
    if (args.overSeeds) throw new UserError('--over-seeds groups MOPO runs by seed; train-dynamics runs are plotted without it');
    return plotDynamicsRuns(args);
  }
  type Line = { epoch: number; evaluation: { mean: number; std: number; score: number | null; scoreStd: number | null } | null };
  const runs = args.runs.map((r) => {
    const run = resolve(r);
    if (!existsSync(join(run, 'metrics.jsonl'))) throw new UserError(`${run}: no metrics.jsonl (not a MOPO run, or not started)`);
    const evals = readJsonLines<Line>(join(run, 'metrics.jsonl')).filter((l) => l.evaluation !== null);
    if (evals.length === 0) throw new UserError(`${run}: no evaluation yet`);
    return { run, evals };
  });
  const useScore = runs.every((c) => c.evals.every((l) => l.evaluation!.score !== null));
  const curves: EvaluationCurve[] = runs.map(({ run, evals }) => {
    const k = args.overSeeds ? seedlessConfigKey(readJsonIfExists(join(run, 'config.json')), run) : null;
    return {
      name: basename(run),
      key: k?.key ?? null,
      seed: k?.seed ?? 0,
      ensembleSeed: k?.ensembleSeed ?? null,
      x: evals.map((l) => l.epoch),
      y: evals.map((l) => (useScore ? l.evaluation!.score! : l.evaluation!.mean)),
      band: evals.map((l) => (useScore ? l.evaluation!.scoreStd! : l.evaluation!.std)),
    };
  });
  const hlines = args.references.map((spec) => {
    const eq = spec.indexOf('=');
    const y = Number(eq < 0 ? spec : spec.slice(0, eq));
    if (!Number.isFinite(y)) throw new UserError(`--reference ${JSON.stringify(spec)}: expected <value>=<label>, e.g. --reference "35.4=MOPO paper"`);
    return { y, label: eq < 0 ? String(y) : spec.slice(eq + 1) };
  });
  const series = args.overSeeds ? curvesOverSeeds(curves) : curves.map(({ name, x, y, band }) => ({ name, x, y, band }));
  const svg = lineChartSvg({
    title: args.title ?? 'Evaluation in MuJoCo (deterministic policy)',
    xLabel: 'epoch',
    yLabel: useScore ? 'D4RL-normalized score' : 'return',
    series,
    hlines,
  });
  await writeFileAtomic(resolve(args.out), svg);
  const n = runs.length;
  process.stderr.write(`written ${resolve(args.out)} (${n} run${n > 1 ? 's' : ''}${series.length < n ? ` as ${series.length} curve${series.length > 1 ? 's' : ''} over seeds` : ''}, ${useScore ? 'score' : 'return'})\n`);
}

/**
 * `runs plot` of train-dynamics runs, finished or still training: one run, each member's validation
 * MSE by epoch (its validation.svg, drawn now); several, each run's best member by epoch.
 */
async function plotDynamicsRuns(args: { runs: string[]; out: string; title?: string | undefined }): Promise<void> {
  const runs = args.runs.map((r) => resolve(r));
  const other = runs.find((r) => !isTrainDynamicsRun(r));
  if (other !== undefined) throw new UserError(`${other}: not a train-dynamics run; plot train-dynamics runs and MOPO runs separately`);
  const curves = runs.map((run) => {
    const epochs = readJsonLines<{ epoch: number; valMse: number[] }>(join(run, 'metrics.jsonl'));
    if (epochs.length === 0) throw new UserError(`${run}: no epoch logged yet`);
    return { name: basename(run), epochs, targets: dynamicsTargets(readJsonIfExists<DynamicsConfig>(join(run, 'config.json'))) };
  });
  // Runs whose models predict in different spaces share an axis only with the space named per run.
  const mixed = new Set(curves.map((c) => c.targets)).size > 1;
  const svg =
    curves.length === 1
      ? validationChartSvg(args.title ?? `Dynamics ensemble ${curves[0]!.name}`, curves[0]!.epochs, curves[0]!.targets)
      : lineChartSvg({
          title: args.title ?? 'Dynamics ensembles: best member',
          xLabel: 'epoch',
          yLabel: mixed ? 'validation MSE (each run in its own space)' : validationMseLabel(curves[0]!.targets),
          yScale: 'log',
          series: curves.map((c) => ({ name: mixed ? `${c.name} (${c.targets})` : c.name, x: c.epochs.map((e) => e.epoch), y: c.epochs.map((e) => Math.min(...e.valMse)) })),
        });
  await writeFileAtomic(resolve(args.out), svg);
  process.stderr.write(`written ${resolve(args.out)} (${curves.length} train-dynamics run${curves.length > 1 ? 's' : ''}, validation MSE)\n`);
}
