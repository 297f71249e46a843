// `node dist/scripts/penaltyTable.js <run-dir>...`: the penalty experiment's table (README "Which
// uncertainty tracks the real model error?"). Groups finished MOPO runs by task and penalty, lists
// each λ tried with its score (MOPO's: the mean of the last 10 evaluations), picks the best λ per
// penalty, and sets beside it what `mopo diagnose penalty` measured on that best run for the same estimator: Spearman correlation
// with the true next-state error and with the reward W1, and how often λ·u covered the next-state
// error. Prints a Markdown table; `--json` prints the rows instead.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readJsonLines } from '../pipeline/atomic.js';
import { scoreOfLastEvaluations, taskOfDataset, type MetricsLine } from '../pipeline/mopo.js';
import { isMain } from '../pipeline/isMain.js';
import { f1, readJson, tableScriptMain } from './tableScript.js';

export interface SweepRun {
  run: string;
  task: string;
  penalty: string;
  lambda: number;
  epochs: number;
  /** Mean and std of the last 10 evaluations' scores. */
  score: number | null;
  scoreStd: number | null;
}

export interface PenaltyRow {
  task: string;
  penalty: string;
  /** Every λ tried, ascending, with its score. */
  tried: { lambda: number; score: number | null }[];
  best: SweepRun;
  /** From <best>/diagnose-penalty.json, for the estimator `<penalty>/all`; null when not diagnosed. */
  diagnostic: { spearmanObs: number; spearmanRewardW1: number; coverageObs: number } | null;
}

/** A finished run's task, penalty, λ and score; null for a directory that is not one. */
export function readSweepRun(dir: string): SweepRun | null {
  const run = resolve(dir);
  if (!['summary.json', 'config.json', 'metrics.jsonl'].every((f) => existsSync(join(run, f)))) return null;
  const cfg = readJson<{ dataset: string; rollout: { penalty: string; lambda: number } }>(join(run, 'config.json'));
  const summary = readJson<{ epochs: number; stoppedEarly: boolean }>(join(run, 'summary.json'));
  if (summary.stoppedEarly) return null;
  const score = scoreOfLastEvaluations(readJsonLines<MetricsLine>(join(run, 'metrics.jsonl')));
  return {
    run,
    task: taskOfDataset(cfg.dataset) ?? cfg.dataset,
    penalty: cfg.rollout.penalty,
    lambda: cfg.rollout.lambda,
    epochs: summary.epochs,
    score: score?.mean ?? null,
    scoreStd: score?.std ?? null,
  };
}

export function penaltyRows(runs: readonly SweepRun[]): PenaltyRow[] {
  const groups = new Map<string, SweepRun[]>();
  for (const r of runs) {
    const k = `${r.task}\u0000${r.penalty}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  const rows: PenaltyRow[] = [];
  for (const g of groups.values()) {
    const sorted = [...g].sort((a, b) => a.lambda - b.lambda);
    const best = sorted.reduce((b, r) => ((r.score ?? -Infinity) > (b.score ?? -Infinity) ? r : b));
    const diagPath = join(best.run, 'diagnose-penalty.json');
    let diagnostic: PenaltyRow['diagnostic'] = null;
    if (existsSync(diagPath)) {
      type Est = { spearman: Record<string, number>; coverage: Record<string, number> };
      const est = readJson<{ overall: { estimators: Record<string, Est> } }>(diagPath).overall.estimators[`${best.penalty}/all`];
      if (est) diagnostic = { spearmanObs: est.spearman.obs!, spearmanRewardW1: est.spearman.rewardW1!, coverageObs: est.coverage.obs! };
    }
    rows.push({ task: best.task, penalty: best.penalty, tried: sorted.map((r) => ({ lambda: r.lambda, score: r.score })), best, diagnostic });
  }
  return rows.sort((a, b) => a.task.localeCompare(b.task) || a.penalty.localeCompare(b.penalty));
}

const f2 = (x: number) => x.toFixed(2);

export function penaltyTableMarkdown(rows: readonly PenaltyRow[]): string {
  const lines = [
    '| task | penalty | λ tried: score | best λ | score at best λ (mean ± std of the last 10 evaluations) | Spearman u vs next-state error | Spearman u vs reward W1 | λ·u ≥ next-state error |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const tried = r.tried.map((t) => `${t.lambda}: ${f1(t.score)}`).join(', ');
    const d = r.diagnostic;
    const score = `${f1(r.best.score)}${r.best.scoreStd !== null ? ` ± ${f1(r.best.scoreStd)}` : ''}`;
    lines.push(`| ${r.task} | ${r.penalty} | ${tried} | ${r.best.lambda} | ${score} | ${d ? f2(d.spearmanObs) : 'n/a'} | ${d ? f2(d.spearmanRewardW1) : 'n/a'} | ${d ? `${(100 * d.coverageObs).toFixed(0)} %` : 'n/a'} |`);
  }
  return lines.join('\n') + '\n';
}

if (isMain(import.meta.url)) {
  tableScriptMain({ script: 'penaltyTable', kind: 'finished MOPO runs', read: readSweepRun, rows: penaltyRows, markdown: penaltyTableMarkdown });
}
