// MOPO's table as reproduced: per run the last evaluation, MOPO's score (mean of the last 10), the best, learner hours summed
// over every epoch (a run resumed across sessions), memory over the run; not-yet-MOPO dirs left out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { paperTableMarkdown, readPaperRow, seedGroups } from '../scripts/paperResults.js';
import { curvesOverSeeds, runRunsPlot } from '../pipeline/commands/runs.js';

function fakeRun(root: string, name: string, scores: (number | null)[], o: { planned: number; summary?: { epochs: number; stoppedEarly: boolean }; seed?: number; lambda?: number; machine?: string; dynamics?: string }): string {
  const dir = join(root, name);
  mkdirSync(dir);
  const m = o.machine ?? '/d';
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ dataset: `${m}/halfcheetah-medium-replay.parquet`, seed: o.seed ?? 0, dynamicsFrom: o.dynamics ?? `${m}/runs/dyn`, rollout: { horizon: 5, lambda: o.lambda ?? 1, penalty: 'max-aleatoric' }, learner: { epochs: o.planned, epochLength: 1000 } }));
  const lines = scores.map((s, epoch) => ({
    epoch,
    updates: 1000 * (epoch + 1),
    updatesPerSecond: epoch < 2 ? 40 : 20, // 25 s, then 50 s an epoch
    evaluation: s === null ? null : { mean: 100 * s, std: 1, score: s, scoreStd: s / 10, seconds: 10 },
    memory: { rssMB: 500 + 10 * epoch, heapUsedMB: 50, learnerTensors: 40 },
  }));
  writeFileSync(join(dir, 'metrics.jsonl'), lines.map((l) => JSON.stringify(l) + '\n').join('') + '{"epoch": 9, "upd'); // a killed append
  if (o.summary) writeFileSync(join(dir, 'summary.json'), JSON.stringify(o.summary));
  return dir;
}

test('paper results: last evaluation, mean of the last 10, best, learner hours over all epochs, memory, running runs marked', () => {
  const root = mkdtempSync(join(tmpdir(), 'mopo-paper-'));
  try {
    const done = readPaperRow(fakeRun(root, 'done', [null, 10, null, 30, 20, 40, 50, 60], { planned: 8, summary: { epochs: 8, stoppedEarly: false } }))!;
    assert.equal(done.task, 'medium-replay');
    assert.deepEqual([done.epochs, done.status], [8, 'done']);
    assert.deepEqual(done.last, { epoch: 7, score: 60, scoreStd: 6 });
    assert.deepEqual(done.score, { mean: 35, std: Math.sqrt((25 ** 2 + 5 ** 2 + 15 ** 2 + 5 ** 2 + 15 ** 2 + 25 ** 2) / 6), evaluations: 6, fromEpoch: 1, toEpoch: 7 }, 'fewer than 10: all of them');
    assert.deepEqual(done.best, { epoch: 7, score: 60 });
    // 2 epochs at 25 s + 6 at 50 s + 6 evaluations of 10 s.
    assert.ok(Math.abs(done.learnerHours - (2 * 25 + 6 * 50 + 6 * 10) / 3600) < 1e-12, `${done.learnerHours}`);
    assert.deepEqual(done.rssMB, { first: 500, last: 570, max: 570 });

    const running = readPaperRow(fakeRun(root, 'running', [null, 5, 70, 1], { planned: 1000, summary: { epochs: 4, stoppedEarly: true } }))!;
    assert.equal(running.status, 'stopped', 'stopped by Ctrl-C, resumable');
    assert.deepEqual(running.best, { epoch: 2, score: 70 });
    assert.equal(running.score?.mean, (5 + 70 + 1) / 3);
    const long = readPaperRow(fakeRun(root, 'long', Array.from({ length: 15 }, (_, i) => (i < 5 ? 1000 : i)), { planned: 15 }))!;
    assert.deepEqual([long.score?.mean, long.score?.evaluations, long.score?.fromEpoch], [9.5, 10, 5], 'the last 10 only');
    assert.equal(long.status, 'killed', 'no summary and no live process holding its lock');

    assert.equal(readPaperRow(join(root, 'missing')), null);
    mkdirSync(join(root, 'dyn'));
    writeFileSync(join(root, 'dyn', 'config.json'), JSON.stringify({ job: 'train-dynamics', dataset: '/d/x.parquet' }));
    writeFileSync(join(root, 'dyn', 'metrics.jsonl'), '{"epoch":0}\n');
    assert.equal(readPaperRow(join(root, 'dyn')), null, 'a train-dynamics run is not a MOPO run');

    const md = paperTableMarkdown([done, running]);
    assert.match(md, /\| done \| medium-replay \| 5, 1 \(max-aleatoric\) \| 8 \| 60\.0 ± 6\.0 \| 35\.0 ± 17\.1 \(1–7\) \| 60\.0 \(7\) \| 0\.1 \| 500 → 570 MB \(570\) \|/);
    assert.match(md, /\| running \| medium-replay \| .* \| 4 of 1000 \(stopped\) \| 1\.0 ± 0\.1 \| 25\.3 ± 31\.6 \(1–3\) \| 70\.0 \(2\) \|/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('paper results over seeds: runs differing only in the seed (paths by file name) give mean ± std of their scores and the best seed, as d4rl_results.py', () => {
  const root = mkdtempSync(join(tmpdir(), 'mopo-paper-seeds-'));
  try {
    const done = { planned: 2, summary: { epochs: 2, stoppedEarly: false } };
    const rows = [
      readPaperRow(fakeRun(root, 's0', [30, 32], { ...done, seed: 0 }))!, // score 31
      readPaperRow(fakeRun(root, 's1', [36, 38], { ...done, seed: 1, machine: '/other/machine' }))!, // 37, carried from elsewhere
      readPaperRow(fakeRun(root, 's2', [24, 26], { planned: 2, seed: 2 }))!, // 25, not finished (no summary)
      readPaperRow(fakeRun(root, 'lambda0', [40, 40], { ...done, seed: 0, lambda: 0 }))!, // another configuration, one seed
    ];
    const groups = seedGroups(rows);
    assert.equal(groups.length, 1, 'λ 0 has one seed: no group');
    const g = groups[0]!;
    assert.deepEqual([g.seeds, g.scores, g.epochs, g.complete], [[0, 1, 2], [31, 37, 25], [2, 2, 2], false]);
    assert.equal(g.mean, 31);
    assert.ok(Math.abs(g.std - Math.sqrt((0 + 36 + 36) / 3)) < 1e-12);
    assert.deepEqual([g.best.seed, g.best.score], [1, 37]);
    const md = paperTableMarkdown(rows);
    assert.match(md, /\| medium-replay \| 5, 1 \(max-aleatoric\) \| 0: 31\.0 \(2\), 1: 37\.0 \(2\), 2: 25\.0 \(2\) \| 31\.0 ± 4\.9 \(not all done\) \| 37\.0 \(seed 1\) \|/);
    assert.equal(seedGroups(rows.slice(0, 1)).length, 0);
    assert.doesNotMatch(paperTableMarkdown(rows.slice(0, 1)), /over seeds/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('runs ls: a MOPO run shows its last evaluation and, once it has several, the mean of the last 10 as MOPO reports it; running only while its lock is held', async () => {
  const { spawnSync } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const { runInfo } = await import('../pipeline/commands/runs.js');
  const root = mkdtempSync(join(tmpdir(), 'mopo-runs-score-'));
  try {
    const run = fakeRun(root, 'long', Array.from({ length: 15 }, (_, i) => (i < 5 ? 1000 : i)), { planned: 20 });
    assert.deepEqual(runInfo(run).score, { mean: 9.5, std: Math.sqrt(8.25), evaluations: 10, fromEpoch: 5, toEpoch: 14 });
    fakeRun(root, 'one', [null, 7], { planned: 20 });
    const cli = fileURLToPath(new URL('../pipeline/cli.js', import.meta.url));
    const ls = spawnSync(process.execPath, [cli, 'runs', 'ls', root], { encoding: 'utf8' });
    assert.equal(ls.status, 0, ls.stderr);
    assert.match(ls.stdout, /\/long {2}\? {2}15 of 20 epochs {2}score 14\.0 \(last 10: 9\.5 ± 2\.9\) {2}killed/);
    assert.match(ls.stdout, /\/one {2}\? {2}2 of 20 epochs {2}score 7\.0 {2}killed/, 'one evaluation: nothing to average');
    // A live process holding the run's lock: running; a lock left by a dead one: still killed.
    const { hostname } = await import('node:os');
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    writeFileSync(join(run, 'LOCK'), JSON.stringify({ pid: process.pid, host: hostname(), started: '2026-11-26T00:00:00Z' }));
    writeFileSync(join(root, 'one', 'LOCK'), JSON.stringify({ pid: dead, host: hostname(), started: '2026-11-26T00:00:00Z' }));
    const ls2 = spawnSync(process.execPath, [cli, 'runs', 'ls', root], { encoding: 'utf8' });
    assert.match(ls2.stdout, /\/long {2}.* {2}running/);
    assert.match(ls2.stdout, /\/one {2}.* {2}killed/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('runs plot --over-seeds: seeds of one configuration as one curve, the mean over seeds ± their std at the epochs all evaluated', async () => {
  // By hand: seeds 0 and 1 share a configuration; 1 has evaluated one epoch more; "other" stays alone.
  const series = curvesOverSeeds([
    { name: 'a-seed1', key: 'k', seed: 1, ensembleSeed: null, x: [0, 9, 19], y: [4, 10, 30], band: [1, 1, 1] },
    { name: 'other', key: null, seed: 0, ensembleSeed: null, x: [0, 9], y: [7, 8], band: [0.5, 0.5] },
    { name: 'a', key: 'k', seed: 0, ensembleSeed: null, x: [0, 9], y: [2, 20], band: [1, 1] },
  ]);
  assert.deepEqual(series.map((s) => s.name), ['a (seeds 0, 1: mean ± std)', 'other']);
  assert.deepEqual([series[0]!.x, series[0]!.y, series[0]!.band], [[0, 9], [3, 15], [1, 5]]);
  assert.deepEqual([series[1]!.y, series[1]!.band], [[7, 8], [0.5, 0.5]]);

  const root = mkdtempSync(join(tmpdir(), 'mopo-plot-seeds-'));
  try {
    const runs = [
      fakeRun(root, 'r', [30, 32], { planned: 2, seed: 0 }),
      fakeRun(root, 'r-seed1', [36, 38], { planned: 2, seed: 1, machine: '/carried/from/elsewhere' }),
      fakeRun(root, 'r-lambda0', [40, 40], { planned: 2, seed: 0, lambda: 0 }),
    ];
    const out = join(root, 'seeds.svg');
    await runRunsPlot({ runs, out, references: [], overSeeds: true });
    const svg = readFileSync(out, 'utf8');
    assert.match(svg, /r \(seeds 0, 1: mean ± std\)/);
    assert.match(svg, />r-lambda0</);
    assert.doesNotMatch(svg, />r-seed1</);
    await runRunsPlot({ runs, out, references: [] });
    assert.match(readFileSync(out, 'utf8'), />r-seed1</, 'without --over-seeds every run is its own curve');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

/** A train-dynamics run's config.json in <root>/<name>, as trainDynamics writes it. */
function fakeEnsemble(root: string, name: string, o: { seed: number; workers?: number; patience?: number; machine?: string }): string {
  const dir = join(root, name);
  mkdirSync(dir);
  const ensemble = { members: 7, elites: 5, patience: o.patience ?? 6, resample: 'bootstrap', seed: o.seed, workers: o.workers ?? 2 };
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ job: 'train-dynamics', dataset: `${o.machine ?? '/d'}/halfcheetah-medium-replay.parquet`, read: {}, ensemble }));
  return dir;
}

test('paper results over seeds: runs on ensembles that differ only in their training seed (or worker count) are seeds of one configuration, named with the ensemble\'s seed; an ensemble trained otherwise is another configuration', async () => {
  const root = mkdtempSync(join(tmpdir(), 'mopo-paper-ensembles-'));
  try {
    const e0 = fakeEnsemble(root, 'dyn', { seed: 0 });
    fakeEnsemble(root, 'dyn-seed1', { seed: 1, workers: 1, machine: '/other' });
    const e5 = fakeEnsemble(root, 'dyn-patience5', { seed: 0, patience: 5 });
    const done = { planned: 2, summary: { epochs: 2, stoppedEarly: false } };
    const rows = [
      readPaperRow(fakeRun(root, 's0', [30, 32], { ...done, seed: 0, dynamics: e0 }))!, // 31
      readPaperRow(fakeRun(root, 's1', [36, 38], { ...done, seed: 1, dynamics: e0 }))!, // 37
      // Carried from another machine: its ensemble's path is that machine's; found beside the run by name.
      readPaperRow(fakeRun(root, 'e1s1', [33, 35], { ...done, seed: 1, dynamics: '/other/runs/dyn-seed1', machine: '/other' }))!, // 34
      readPaperRow(fakeRun(root, 'p5', [20, 20], { ...done, seed: 0, dynamics: e5 }))!,
      readPaperRow(fakeRun(root, 'p5s1', [22, 22], { ...done, seed: 1, dynamics: e5 }))!,
    ];
    assert.deepEqual(rows.map((r) => r.ensembleSeed), [0, 0, 1, 0, 0]);
    const groups = seedGroups(rows);
    assert.equal(groups.length, 2, 'the patience-5 ensemble is another configuration');
    const g = groups.find((x) => x.runs.length === 3)!;
    assert.deepEqual([g.labels, g.scores], [['0 (ensemble 0)', '1 (ensemble 0)', '1 (ensemble 1)'], [31, 37, 34]]);
    assert.equal(g.mean, 34);
    assert.deepEqual([g.best.label, g.best.score], ['1 (ensemble 0)', 37]);
    assert.deepEqual(groups.find((x) => x.runs.length === 2)!.labels, ['0', '1'], 'one ensemble: plain seeds');
    assert.match(paperTableMarkdown(rows), /\| 0 \(ensemble 0\): 31\.0 \(2\), 1 \(ensemble 0\): 37\.0 \(2\), 1 \(ensemble 1\): 34\.0 \(2\) \| 34\.0 ± 2\.4 \| 37\.0 \(seed 1 \(ensemble 0\)\) \|/);
    // And in the plot: one curve for the three.
    const out = join(root, 'seeds.svg');
    await runRunsPlot({ runs: rows.slice(0, 3).map((r) => r.run), out, references: [], overSeeds: true });
    assert.match(readFileSync(out, 'utf8'), /s0 \(seeds 0 \(ensemble 0\), 1 \(ensemble 0\), 1 \(ensemble 1\): mean ± std\)/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
