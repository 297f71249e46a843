// `node dist/scripts/paperResults.js <run-dir>...`: MOPO's table as reproduced here (README
// "Results"). For each MOPO run (finished or still going): task, horizon, λ and penalty, the epochs
// done and the run's status, the last evaluation's D4RL score ± std over its episodes, MOPO's score (the mean of the last
// 10 evaluations, as the reference's d4rl_results.py), the best evaluation and its epoch, the
// learner's hours summed over every epoch across resumes (summary.json only knows the last
// process), and the process memory over the run (RSS at the first and last epoch, and its peak).
// Runs whose configs differ only in the seed are then summed up over seeds: the mean ± std of their
// MOPO scores (the paper's table) and the best seed's (what the reference's d4rl_results.py prints:
// per configuration, the argmax over seeds of the last-10 mean). Runs on ensembles that differ only in
// their training seed count as seeds of one configuration (seedlessConfigKey), as the paper's runs,
// each of which trained its own model.
// Prints Markdown tables; `--json` prints the rows instead.
import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { readJsonLines } from '../pipeline/atomic.js';
import { scoreOfLastEvaluations, taskOfDataset, type MetricsLine } from '../pipeline/mopo.js';
import { bySeed, runStatus, seedLabel, seedlessConfigKey, type RunInfo } from '../pipeline/commands/runs.js';
import { isMain } from '../pipeline/isMain.js';
import { meanStd } from '../operators/evaluate.js';
import { f1, readJson, tableScriptMain } from './tableScript.js';

export interface PaperRow {
  run: string;
  seed: number;
  /** The training seed of the ensemble the run loaded (null: not found, or the run trained its own). */
  ensembleSeed: number | null;
  /** The run's config without its seed and with file names for paths: equal for seeds of one configuration. */
  configKey: string;
  task: string;
  horizon: number;
  lambda: number;
  penalty: string;
  epochs: number;
  plannedEpochs: number;
  /** As `mopo runs ls` says it: running (a live process holds the lock), done, stopped, killed. */
  status: RunInfo['status'];
  last: { epoch: number; score: number; scoreStd: number } | null;
  /** MOPO's score: the mean of the last 10 evaluations (fewer when there are fewer), spread, epochs. */
  score: ReturnType<typeof scoreOfLastEvaluations>;
  best: { epoch: number; score: number } | null;
  /** Σ over epochs of (updates / updates per second) plus evaluation time. */
  learnerHours: number;
  rssMB: { first: number; last: number; max: number } | null;
}

/** A MOPO run's row; null for a directory that is not a MOPO run or has no epoch yet. */
export function readPaperRow(dir: string): PaperRow | null {
  const run = resolve(dir);
  if (!existsSync(join(run, 'config.json')) || !existsSync(join(run, 'metrics.jsonl'))) return null;
  const cfg = readJson<{ dataset?: string; seed?: number; dynamicsFrom?: string; rollout?: { horizon: number; lambda: number; penalty: string }; learner?: { epochs: number; epochLength: number } }>(join(run, 'config.json'));
  if (!cfg.rollout || !cfg.learner || !cfg.dataset) return null;
  const { key: configKey, ensembleSeed } = seedlessConfigKey(cfg, run)!; // cfg is a MOPO run's (checked above)
  const lines = readJsonLines<MetricsLine>(join(run, 'metrics.jsonl'));
  if (lines.length === 0) return null;
  const evals = lines.filter((l) => l.evaluation !== null && l.evaluation.score !== null).map((l) => ({ epoch: l.epoch, score: l.evaluation!.score!, scoreStd: l.evaluation!.scoreStd ?? 0 }));
  const best = evals.reduce<{ epoch: number; score: number } | null>((b, e) => (b === null || e.score > b.score ? { epoch: e.epoch, score: e.score } : b), null);
  let learnerSeconds = 0;
  let previousUpdates = 0;
  for (const l of lines) {
    learnerSeconds += (l.updates - previousUpdates) / l.updatesPerSecond + (l.evaluation?.seconds ?? 0);
    previousUpdates = l.updates;
  }
  const rss = lines.filter((l) => l.memory !== undefined).map((l) => l.memory.rssMB);
  return {
    run,
    seed: cfg.seed ?? 0,
    ensembleSeed,
    configKey,
    task: taskOfDataset(cfg.dataset) ?? basename(cfg.dataset),
    horizon: cfg.rollout.horizon,
    lambda: cfg.rollout.lambda,
    penalty: cfg.rollout.penalty,
    epochs: lines[lines.length - 1]!.epoch + 1,
    plannedEpochs: cfg.learner.epochs,
    status: runStatus(run, true), // it has logged an epoch (lines.length > 0)
    last: evals.length > 0 ? evals[evals.length - 1]! : null,
    score: scoreOfLastEvaluations(lines),
    best,
    learnerHours: learnerSeconds / 3600,
    rssMB: rss.length > 0 ? { first: rss[0]!, last: rss[rss.length - 1]!, max: Math.max(...rss) } : null,
  };
}

/** Runs of one configuration over seeds (two or more, each with a score). */
export interface SeedGroup {
  runs: string[];
  seeds: number[];
  /** How each run is named: its seed, and its ensemble's where the group loaded more than one (seedLabel). */
  labels: string[];
  task: string;
  horizon: number;
  lambda: number;
  penalty: string;
  /** Each run's MOPO score (mean of its last 10 evaluations), in the order of `runs`. */
  scores: number[];
  /** Over the seeds' scores (population std, as numpy's default). */
  mean: number;
  std: number;
  /** The seed with the highest score: what the reference's d4rl_results.py prints for the configuration. */
  best: { run: string; seed: number; label: string; score: number };
  /** Each run's epochs done and planned; complete when every run is done. */
  epochs: number[];
  complete: boolean;
}

export function seedGroups(rows: readonly PaperRow[]): SeedGroup[] {
  const byKey = new Map<string, PaperRow[]>();
  for (const r of rows) if (r.score !== null) byKey.set(r.configKey, [...(byKey.get(r.configKey) ?? []), r]);
  const groups: SeedGroup[] = [];
  for (const g of byKey.values()) {
    if (new Set(g.map((r) => `${r.seed}/${r.ensembleSeed}`)).size < 2) continue;
    const sorted = [...g].sort(bySeed);
    const labels = sorted.map((r) => seedLabel(r, sorted));
    const scores = sorted.map((r) => r.score!.mean);
    const { mean, std } = meanStd(scores);
    const b = scores.indexOf(Math.max(...scores));
    const r0 = sorted[0]!;
    groups.push({
      runs: sorted.map((r) => r.run), seeds: sorted.map((r) => r.seed), labels, task: r0.task, horizon: r0.horizon, lambda: r0.lambda, penalty: r0.penalty,
      scores, mean, std, best: { run: sorted[b]!.run, seed: sorted[b]!.seed, label: labels[b]!, score: scores[b]! },
      epochs: sorted.map((r) => r.epochs), complete: sorted.every((r) => r.status === 'done'),
    });
  }
  return groups;
}

export function seedGroupsMarkdown(groups: readonly SeedGroup[]): string {
  if (groups.length === 0) return '';
  const lines = [
    '| task | h, λ (penalty) | seeds: MOPO\'s score (epochs) | mean ± std over seeds | best seed (the reference\'s d4rl_results.py) |',
    '|---|---|---|---|---|',
  ];
  for (const g of groups) {
    const each = g.labels.map((s, i) => `${s}: ${f1(g.scores[i]!)} (${g.epochs[i]})`).join(', ');
    lines.push(`| ${g.task} | ${g.horizon}, ${g.lambda} (${g.penalty}) | ${each} | ${f1(g.mean)} ± ${f1(g.std)}${g.complete ? '' : ' (not all done)'} | ${f1(g.best.score)} (seed ${g.best.label}) |`);
  }
  return lines.join('\n') + '\n';
}

export function paperTableMarkdown(rows: readonly PaperRow[]): string {
  const lines = [
    '| run | task | h, λ (penalty) | epochs | last score ± std | score as MOPO reports it: mean ± std of the last 10 evaluations (epochs) | best (epoch) | learner hours | RSS first → last (peak) |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const epochs = r.status === 'done' ? `${r.epochs}` : `${r.epochs} of ${r.plannedEpochs} (${r.status})`;
    const last = r.last ? `${f1(r.last.score)} ± ${f1(r.last.scoreStd)}` : 'n/a';
    const best = r.best ? `${f1(r.best.score)} (${r.best.epoch})` : 'n/a';
    const rss = r.rssMB ? `${r.rssMB.first} → ${r.rssMB.last} MB (${r.rssMB.max})` : 'n/a';
    const score = r.score ? `${f1(r.score.mean)} ± ${f1(r.score.std)} (${r.score.fromEpoch}–${r.score.toEpoch})` : 'n/a';
    lines.push(`| ${basename(r.run)} | ${r.task} | ${r.horizon}, ${r.lambda} (${r.penalty}) | ${epochs} | ${last} | ${score} | ${best} | ${r.learnerHours.toFixed(1)} | ${rss} |`);
  }
  const groups = seedGroupsMarkdown(seedGroups(rows));
  return lines.join('\n') + '\n' + (groups === '' ? '' : '\n' + groups);
}

if (isMain(import.meta.url)) {
  tableScriptMain({ script: 'paperResults', kind: 'MOPO runs with an epoch yet', read: readPaperRow, rows: (r) => r, markdown: paperTableMarkdown });
}
