// The penalty experiment's table: runs grouped by task and penalty, the best λ by MOPO's score (the
// mean of the last 10 evaluations), the
// diagnostic of the best run for its own estimator, unfinished runs left out; λ·ū from the rollout
// rounds; the figure, and the command line's --svg.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { penaltyRows, penaltySweepSvg, penaltyTableMarkdown, readSweepRun, type SweepRun } from '../scripts/penaltyTable.js';

const SCRIPT = fileURLToPath(new URL('../scripts/penaltyTable.js', import.meta.url));

function fakeRun(root: string, name: string, o: { dataset: string; penalty: string; lambda: number; score: number; epochs?: number; stoppedEarly?: boolean; spearman?: number; penaltyMeans?: number[] }): string {
  const dir = join(root, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ dataset: o.dataset, rollout: { penalty: o.penalty, lambda: o.lambda } }));
  writeFileSync(join(dir, 'summary.json'), JSON.stringify({ epochs: o.epochs ?? 50, stoppedEarly: o.stoppedEarly ?? false }));
  // 50 epochs evaluated every 10 and each of the last 10: the score is the mean of epochs 40–49
  // (o.score ± 1.5 alternating), the earlier ones far off so that taking them would show.
  const evaluated = [9, 19, 29, 39, ...Array.from({ length: 10 }, (_, i) => 40 + i)];
  const lines: object[] = evaluated.map((epoch) => ({ epoch, rollout: null, evaluation: { score: epoch < 40 ? -100 : o.score + (epoch % 2 ? 1.5 : -1.5) } }));
  // Rounds' penalties on epochs without an evaluation (the mean is over rounds, not evaluations).
  (o.penaltyMeans ?? []).forEach((penaltyMean, i) => lines.push({ epoch: i, rollout: { penaltyMean }, evaluation: null }));
  writeFileSync(join(dir, 'metrics.jsonl'), lines.map((l) => JSON.stringify(l) + '\n').join(''));
  if (o.spearman !== undefined) {
    const est = { spearman: { obs: o.spearman, rewardW1: o.spearman / 2 }, coverage: { obs: 0.25 } };
    writeFileSync(join(dir, 'diagnose-penalty.json'), JSON.stringify({ overall: { estimators: { [`${o.penalty}/all`]: est, 'other/all': { spearman: { obs: -1, rewardW1: -1 }, coverage: { obs: 0 } } } } }));
  }
  return dir;
}

test('penalty table: best λ per task and penalty, its diagnostic, unfinished runs left out', () => {
  const root = mkdtempSync(join(tmpdir(), 'mopo-ptable-'));
  try {
    const r = '/d/halfcheetah-random.parquet';
    const m = '/d/halfcheetah-medium-replay.parquet';
    const dirs = [
      fakeRun(root, 'a', { dataset: r, penalty: 'max-aleatoric', lambda: 1, score: 20, epochs: 30 }), // a shorter run: the epochs column shows the range
      fakeRun(root, 'b', { dataset: r, penalty: 'max-aleatoric', lambda: 0.25, score: 30, spearman: 0.6, penaltyMeans: [1, 3] }),
      fakeRun(root, 'c', { dataset: r, penalty: 'max-aleatoric', lambda: 0.5, score: 25 }),
      fakeRun(root, 'd', { dataset: r, penalty: 'disagreement', lambda: 2, score: 10 }),
      fakeRun(root, 'e', { dataset: r, penalty: 'disagreement', lambda: 4, score: 99, stoppedEarly: true }),
      fakeRun(root, 'f', { dataset: m, penalty: 'max-aleatoric', lambda: 1, score: 40, spearman: 0.3 }),
    ];
    const runs = dirs.map(readSweepRun).filter((x): x is SweepRun => x !== null);
    assert.equal(runs.length, 5, 'the stopped run is left out');
    const rows = penaltyRows(runs);
    assert.deepEqual(rows.map((x) => [x.task, x.penalty, x.best.lambda]), [
      ['medium-replay', 'max-aleatoric', 1],
      ['random', 'disagreement', 2],
      ['random', 'max-aleatoric', 0.25],
    ]);
    const ma = rows[2]!;
    assert.deepEqual(ma.tried.map((t) => t.lambda), [0.25, 0.5, 1], 'λ ascending');
    assert.deepEqual(ma.diagnostic, { spearmanObs: 0.6, spearmanRewardW1: 0.3, coverageObs: 0.25 }, 'its own estimator, not another');
    assert.equal(rows[1]!.diagnostic, null, 'not diagnosed: n/a');
    const md = penaltyTableMarkdown(rows);
    assert.equal(runs.find((x) => x.lambda === 0.25)!.lambdaU, 0.5, 'λ 0.25 × the rounds\' mean penalty 2');
    assert.equal(runs.find((x) => x.lambda === 2)!.lambdaU, null, 'no rounds: none');
    assert.match(md, /\| random \| max-aleatoric \| 30–50 \| 0\.25: 30\.0, 0\.5: 25\.0, 1: 20\.0 \| 0\.25 \| 30\.0 ± 1\.5 \| 0\.50 \| 0\.60 \| 0\.30 \| 25 % \|/);
    assert.match(md, /\| random \| disagreement \| 50 \| 2: 10\.0 \| 2 \| 10\.0 ± 1\.5 \| n\/a \| n\/a \| n\/a \| n\/a \|/);
    assert.equal(readSweepRun(join(root, 'missing')), null);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('penalty figure: a line per task and penalty through its runs with λ·ū, by λ·ū; --svg writes it', () => {
  const root = mkdtempSync(join(tmpdir(), 'mopo-ptable-'));
  try {
    const m = '/d/halfcheetah-medium-replay.parquet';
    const dirs = [
      fakeRun(root, 'a', { dataset: m, penalty: 'disagreement', lambda: 2, score: 30, penaltyMeans: [1] }),
      fakeRun(root, 'b', { dataset: m, penalty: 'disagreement', lambda: 1, score: 35, penaltyMeans: [1] }),
      fakeRun(root, 'c', { dataset: m, penalty: 'max-aleatoric', lambda: 1, score: 40, penaltyMeans: [2] }),
      fakeRun(root, 'd', { dataset: m, penalty: 'max-aleatoric', lambda: 0.5, score: 45 }), // no rounds: not drawn
      fakeRun(root, 'e', { dataset: '/d/halfcheetah-uniform-random.parquet', penalty: 'max-aleatoric', lambda: 0.5, score: 20, penaltyMeans: [1] }),
    ];
    const rows = penaltyRows(dirs.map(readSweepRun).filter((x): x is SweepRun => x !== null));
    const svg = penaltySweepSvg(rows);
    assert.match(svg, /medium-replay, disagreement/);
    assert.match(svg, /medium-replay, max-aleatoric/);
    assert.equal(svg.match(/<circle /g)?.length, 4, 'the four runs with rounds');
    const lines = svg.match(/<polyline [^>]*>/g) ?? [];
    assert.equal(lines.length, 3);
    // A penalty keeps its colour on every task; the second task's lines are dashed.
    const stroke = (l: string) => /stroke="([^"]+)"/.exec(l)![1];
    const [mrDis, mrMa, urMa] = lines as [string, string, string];
    assert.notEqual(stroke(mrDis), stroke(mrMa));
    assert.equal(stroke(urMa), stroke(mrMa), 'max-aleatoric: one colour on both tasks');
    assert.ok(!mrMa.includes('stroke-dasharray') && urMa.includes('stroke-dasharray'), 'the second task dashed');

    const out = join(root, 'sweep.svg');
    const cli = spawnSync(process.execPath, [SCRIPT, ...dirs, '--svg', out], { encoding: 'utf8' });
    assert.equal(cli.status, 0, cli.stderr);
    assert.equal(readFileSync(out, 'utf8'), svg);
    assert.equal(cli.stdout, penaltyTableMarkdown(rows), 'every directory read, the first too');
    const plain = spawnSync(process.execPath, [SCRIPT, ...dirs], { encoding: 'utf8' });
    assert.equal(plain.stdout, penaltyTableMarkdown(rows), 'without --svg, every directory read too');
    const bare = spawnSync(process.execPath, [SCRIPT, ...dirs, '--svg'], { encoding: 'utf8' });
    assert.equal(bare.status, 2);
    assert.match(bare.stderr, /--svg needs a file/);
    assert.ok(!existsSync(join(root, '--svg')));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
