// `node dist/scripts/penaltyTable.js <run-dir>...`: the penalty experiment's table (README "Which
// uncertainty tracks the real model error?"). Groups finished MOPO runs by task and penalty, lists
// each λ tried with its score (MOPO's: the mean of the last 10 evaluations), picks the best λ per
// penalty, and sets beside it what `mopo diagnose penalty` measured on that best run for the same estimator: Spearman correlation
// with the true next-state error and with the reward W1, and how often λ·u covered the next-state
// error. Prints a Markdown table; `--json` prints the rows instead; `--svg <file>` also draws each
// penalty's score against λ·ū, the penalty its runs' rollouts actually subtracted a step, which puts
// estimators of different scales on one axis.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readJsonLines } from '../pipeline/atomic.js';
import { scoreOfLastEvaluations, taskOfDataset, type MetricsLine } from '../pipeline/mopo.js';
import { lineChartSvg, PALETTE } from '../pipeline/plot.js';
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
  /** λ × the mean penalty of its rollout rounds: what the penalty took off the reward a step; null without rounds. */
  lambdaU: number | null;
}

export interface PenaltyRow {
  task: string;
  penalty: string;
  /** Every run of the group (each λ tried), λ ascending. */
  tried: SweepRun[];
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
  const lines = readJsonLines<MetricsLine>(join(run, 'metrics.jsonl'));
  const score = scoreOfLastEvaluations(lines);
  const penalties = lines.flatMap((l) => (l.rollout ? [l.rollout.penaltyMean] : []));
  return {
    run,
    task: taskOfDataset(cfg.dataset) ?? cfg.dataset,
    penalty: cfg.rollout.penalty,
    lambda: cfg.rollout.lambda,
    epochs: summary.epochs,
    score: score?.mean ?? null,
    scoreStd: score?.std ?? null,
    lambdaU: penalties.length ? (cfg.rollout.lambda * penalties.reduce((s, x) => s + x, 0)) / penalties.length : null,
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
    rows.push({ task: best.task, penalty: best.penalty, tried: sorted, best, diagnostic });
  }
  return rows.sort((a, b) => a.task.localeCompare(b.task) || a.penalty.localeCompare(b.penalty));
}

const f2 = (x: number) => x.toFixed(2);

export function penaltyTableMarkdown(rows: readonly PenaltyRow[]): string {
  const lines = [
    '| task | penalty | epochs | λ tried: score | best λ | score at best λ (mean ± std of the last 10 evaluations) | λ·ū a step at best λ | Spearman u vs next-state error | Spearman u vs reward W1 | λ·u ≥ next-state error |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const tried = r.tried.map((t) => `${t.lambda}: ${f1(t.score)}`).join(', ');
    const d = r.diagnostic;
    const score = `${f1(r.best.score)}${r.best.scoreStd !== null ? ` ± ${f1(r.best.scoreStd)}` : ''}`;
    const lu = r.best.lambdaU === null ? 'n/a' : f2(r.best.lambdaU);
    // The runs' length: the tasks' halves of a sweep may differ (random's curve climbs for longer).
    const ep = [Math.min(...r.tried.map((t) => t.epochs)), Math.max(...r.tried.map((t) => t.epochs))];
    const epochs = ep[0] === ep[1] ? `${ep[0]}` : `${ep[0]}–${ep[1]}`;
    lines.push(`| ${r.task} | ${r.penalty} | ${epochs} | ${tried} | ${r.best.lambda} | ${score} | ${lu} | ${d ? f2(d.spearmanObs) : 'n/a'} | ${d ? f2(d.spearmanRewardW1) : 'n/a'} | ${d ? `${(100 * d.coverageObs).toFixed(0)} %` : 'n/a'} |`);
  }
  return lines.join('\n') + '\n';
}

/**
 * Score (± the spread of its last 10 evaluations) against λ·ū, a line per task and penalty: one
 * colour per penalty, so a penalty reads the same on every task, and the tasks after the first dashed.
 */
export function penaltySweepSvg(rows: readonly PenaltyRow[]): string {
  const penalties = [...new Set(rows.map((r) => r.penalty))];
  const tasks = [...new Set(rows.map((r) => r.task))];
  const series = rows.map((r) => {
    const pts = r.tried.filter((t) => t.score !== null && t.lambdaU !== null).sort((a, b) => a.lambdaU! - b.lambdaU!);
    return {
      name: `${r.task}, ${r.penalty}`,
      x: pts.map((t) => t.lambdaU!),
      y: pts.map((t) => t.score!),
      band: pts.map((t) => t.scoreStd ?? 0),
      color: PALETTE[penalties.indexOf(r.penalty) % PALETTE.length]!,
      dashed: tasks.indexOf(r.task) > 0,
    };
  });
  return lineChartSvg({
    title: 'MOPO by penalty: score against the penalty taken off the reward',
    xLabel: 'λ·ū: mean penalty subtracted a step on the run\'s rollouts',
    yLabel: 'D4RL score (mean ± std of the last 10 evaluations)',
    series,
  });
}

if (isMain(import.meta.url)) {
  tableScriptMain({ script: 'penaltyTable', kind: 'finished MOPO runs', read: readSweepRun, rows: penaltyRows, markdown: penaltyTableMarkdown, svg: penaltySweepSvg });
}
