// `mopo diagnose penalty`: every penalty estimator against the model's true one-step error in
// MuJoCo, at dataset states and model-rollout states of a MOPO run (pipeline/diagnose/penalty.ts).
// Writes <run>/diagnose-penalty.json and <run>/diagnose-penalty.html; prints a table (or the JSON
// summary with --json).
import { join } from 'node:path';
import { initBackend } from '../backend.js';
import { ProgressBar } from '../progress.js';
import { diagnosePenalty, loadPenaltyRun, penaltyReportBase, DIAGNOSE_PENALTY_DEFAULTS, type PenaltyDiagnostics, type Slice } from '../diagnose/penalty.js';

export interface DiagnosePenaltyArgs {
  run: string;
  dynamics?: string | undefined;
  states?: number | undefined;
  starts?: number | undefined;
  referenceRows?: number | undefined;
  bins?: number | undefined;
  w1Samples?: number | undefined;
  seed?: number | undefined;
  json: boolean;
  backend?: string | undefined;
  quiet: boolean;
}

export async function runDiagnosePenalty(args: DiagnosePenaltyArgs): Promise<void> {
  const log = args.quiet ? () => {} : (m: string) => process.stderr.write(m + '\n');
  const run = loadPenaltyRun(args.run, args.dynamics); // a wrong --run or --dynamics fails before the backend loads
  await initBackend({ ...(args.backend ? { backend: args.backend } : {}), log });
  const quietBars = args.quiet || args.json;
  const bars = new Map<string, ProgressBar>();
  const labels = { read: 'reading the dataset', simulate: 'model vs MuJoCo', distance: 'distance from the data' } as const;
  let current: string | null = null;
  const report = await diagnosePenalty(args.run, {
    ...(args.dynamics !== undefined ? { dynamics: args.dynamics } : {}),
    ...(args.states !== undefined ? { states: args.states } : {}),
    ...(args.starts !== undefined ? { starts: args.starts } : {}),
    ...(args.referenceRows !== undefined ? { referenceRows: args.referenceRows } : {}),
    ...(args.bins !== undefined ? { distanceBins: args.bins } : {}),
    ...(args.w1Samples !== undefined ? { w1Samples: args.w1Samples } : {}),
    ...(args.seed !== undefined ? { seed: args.seed } : {}),
    log,
    onProgress: (phase, done, total) => {
      if (current !== phase) {
        if (current) bars.get(current)?.finish();
        current = phase;
      }
      let bar = bars.get(phase);
      if (!bar) {
        bar = new ProgressBar({ label: labels[phase], ...(total !== null ? { total } : {}), unit: phase === 'read' ? 'rows' : 'pairs', quiet: quietBars });
        bars.set(phase, bar);
      }
      bar.update(done);
    },
  });
  for (const b of bars.values()) b.finish();
  if (args.json) {
    const { rows: _rows, ...summary } = report;
    process.stdout.write(JSON.stringify(summary, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)) + '\n');
    return;
  }
  process.stdout.write(formatPenaltyReport(report) + '\n');
  const base = penaltyReportBase(run);
  log(`written ${join(report.run, `${base}.json`)} and ${join(report.run, `${base}.html`)}`);
}

const f3 = (v: number | null) => (v === null || !Number.isFinite(v) ? '   –  ' : (v >= 0 ? ' ' : '') + v.toFixed(3));
const pct = (v: number) => `${(100 * v).toFixed(1).padStart(5)} %`;
const g3 = (v: number | null) => (v === null || !Number.isFinite(v) ? '–' : String(Number(v.toPrecision(3))));

function table(r: PenaltyDiagnostics, s: Slice): string[] {
  const w = Math.max(...r.estimators.map((e) => e.name.length)) + 2;
  const lines = [
    `  ${'estimator'.padEnd(w)}  ρ_S ‖Δ(s′,r)‖  ρ_S W1(s′,r)  ρ_S |Δr|  ρ_P W1(s′,r)  λu≥|Δr|   λu≥W1(r)  λu≥‖Δ(s′,r)‖  λu≥W1(s′,r)  λ95 W1(r)  λ95 ‖Δ(s′,r)‖  λ95 W1(s′,r)`,
  ];
  for (const e of r.estimators) {
    const x = s.estimators[e.name]!;
    lines.push(
      `  ${(e.name + (e.configured ? ' *' : '')).padEnd(w)}  ${f3(x.spearman.transition).padStart(12)}  ${f3(x.spearman.transitionW1).padStart(11)}  ${f3(x.spearman.reward).padStart(8)}  ${f3(x.pearson.transitionW1).padStart(11)}  ${pct(x.coverage.reward)}  ${pct(x.coverage.rewardW1)}  ${pct(x.coverage.transition).padStart(12)}  ${pct(x.coverage.transitionW1).padStart(11)}  ${g3(x.lambdaNeeded.rewardW1.q95).padStart(9)}  ${g3(x.lambdaNeeded.transition.q95).padStart(12)}  ${g3(x.lambdaNeeded.transitionW1.q95).padStart(12)}`,
    );
  }
  return lines;
}

export function formatPenaltyReport(r: PenaltyDiagnostics): string {
  const o = r.overall;
  const policy = r.policy.source === 'checkpoint' ? `policy ${r.policy.dir}${r.policy.epoch !== null ? ` (epoch ${r.policy.epoch})` : ''}` : 'policy: a freshly initialized random one (the run has no checkpoint yet)';
  const lines = [
    `${r.run}: ${r.env}, λ ${r.lambda}, horizon ${r.horizon}, the run's penalty ${r.penalty}/${r.penaltyMembers} (*); ${policy}`,
    ...(r.ensemble.override ? [`ensemble ${r.ensemble.dir} (--dynamics), in place of the run's`] : []),
    `${r.states.dataset} dataset + ${r.states.rollout} rollout pairs (${r.states.rolloutStarts} starts, per step ${r.states.rolloutPerStep.join('/')}) against MuJoCo` +
      (r.states.skippedInexact + r.states.skippedNonFinite > 0 ? `; skipped ${r.states.skippedInexact} inexact, ${r.states.skippedNonFinite} non-finite` : ''),
    ...(r.rolloutRewards ? [`rollouts as SAC sees them (a step): model reward ${g3(r.rolloutRewards.model)}, penalty u ${g3(r.rolloutRewards.penalty)}, r − λu ${g3(r.rolloutRewards.penalized)}`] : []),
    `true error (mean): ‖Δs′‖ ${g3(o.error.obs.mean)}, |Δr| ${g3(o.error.reward.mean)}, W1(r) ${g3(o.error.rewardW1.mean)}, W1(s′,r) ${g3(o.error.transitionW1.mean)}; distance from the data (median) ${g3(o.distance.median)}`,
    `overall (ρ_S Spearman, ρ_P Pearson; λu≥e: share where the bound holds at λ ${r.lambda}; λ95: λ for 95 %):`,
    ...table(r, o),
  ];
  if (r.byStep.length > 1) {
    const conf = r.estimators.find((e) => e.configured) ?? r.estimators[0]!;
    lines.push(`per rollout step, ${conf.name}: ρ_S ‖Δ(s′,r)‖ ${r.byStep.map((s) => f3(s.estimators[conf.name]!.spearman.transition).trim()).join(' → ')}; ρ_S W1(s′,r) ${r.byStep.map((s) => f3(s.estimators[conf.name]!.spearman.transitionW1).trim()).join(' → ')}; λu≥W1(r) ${r.byStep.map((s) => pct(s.estimators[conf.name]!.coverage.rewardW1).trim()).join(' → ')}; mean ‖Δ(s′,r)‖ ${r.byStep.map((s) => g3(s.error.transition.mean)).join(' → ')}; mean u ${r.byStep.map((s) => g3(s.estimators[conf.name]!.mean)).join(' → ')}`);
  }
  if (r.byDistance.length > 1) {
    const conf = r.estimators.find((e) => e.configured) ?? r.estimators[0]!;
    lines.push(`per distance bin (near → far), ${conf.name}: ρ_S ‖Δ(s′,r)‖ ${r.byDistance.map((s) => f3(s.estimators[conf.name]!.spearman.transition).trim()).join(' → ')}; ρ_S W1(s′,r) ${r.byDistance.map((s) => f3(s.estimators[conf.name]!.spearman.transitionW1).trim()).join(' → ')}; λu≥W1(r) ${r.byDistance.map((s) => pct(s.estimators[conf.name]!.coverage.rewardW1).trim()).join(' → ')}; mean ‖Δ(s′,r)‖ ${r.byDistance.map((s) => g3(s.error.transition.mean)).join(' → ')}; mean u ${r.byDistance.map((s) => g3(s.estimators[conf.name]!.mean)).join(' → ')}`);
  }
  return lines.join('\n');
}

export { DIAGNOSE_PENALTY_DEFAULTS };
