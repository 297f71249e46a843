// Pipeline files: validation errors point at their place in the file, --set overrides, and the
// presets in data/pipelines/ are exactly what `mopo train --preset` runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parsePipeline, applySet, loadPipelineFile, pipelineToMopoConfig, mopoConfigToPipeline } from '../pipeline/pipelineFile.js';
import { presetConfig, resolveMopoConfig, type Task } from '../pipeline/mopo.js';
import { evaluationDue } from '../operators/evaluate.js';
import { UserError } from '../pipeline/errors.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const base = () => ({
  env: 'halfcheetah',
  source: { dataset: 'x.parquet' },
  stages: [{ stage: 'dynamics' }, { stage: 'rollout', horizon: 5, lambda: 0.5 }, { stage: 'sac', epochs: 3 }, { stage: 'evaluate', every: 1 }],
});

function errorOf(doc: unknown): string {
  try {
    parsePipeline(doc, 'p.json');
  } catch (e) {
    assert.ok(e instanceof UserError, String(e));
    return e.message;
  }
  assert.fail('expected a UserError');
}

test('pipeline validation: each error names its path in the file', () => {
  const d1 = base();
  (d1.stages[1] as Record<string, unknown>).lambda = -1;
  assert.equal(errorOf(d1), 'p.json: stages[1].lambda: expected a number ≥ 0');
  const d2 = base();
  (d2.stages[1] as Record<string, unknown>).lamda = 1;
  assert.match(errorOf(d2), /stages\[1\]: unknown field 'lamda'/);
  const d3 = base();
  (d3.stages[2] as Record<string, unknown>).epochs = 2.5;
  assert.match(errorOf(d3), /stages\[2\]\.epochs: expected an integer ≥ 1/);
  assert.match(errorOf({ ...base(), env: 'ant' }), /env: expected one of halfcheetah, hopper, walker2d, pendulum/);
  assert.match(errorOf({ ...base(), stages: [{ stage: 'nope' }] }), /stages\[0\]\.stage: expected one of .*got 'nope'/);
  assert.match(errorOf({ ...base(), stages: [{ stage: 'sac' }, { stage: 'rollout' }, { stage: 'dynamics' }] }), /stages\[1\]: 'rollout' must come before 'sac'/);
  assert.match(errorOf({ ...base(), stages: [{ stage: 'dynamics' }, { stage: 'sac' }] }), /needs the stages dynamics, rollout and sac/);
  const { source: _s, ...noSource } = base();
  assert.match(errorOf(noSource), /source: /);
  assert.match(errorOf({ ...base(), source: { dataset: 3 } }), /source\.dataset: expected the path of a Parquet file or shard directory/);
  assert.match(errorOf({ ...base(), stages: [{ stage: 'normalize' }, ...base().stages] }), /stages\[0\]: 'normalize' rewrites the observations/);
  assert.match(errorOf({ ...base(), stages: [{ stage: 'filterEpisodes', minReturnQuantile: 2 }] }), /stages\[0\]\.minReturnQuantile: expected a number in \[0, 1\]/);
});

test('--set overrides by path, by stage name and by index; values are JSON when they parse', () => {
  const d = base();
  applySet(d, 'stages.rollout.horizon=1');
  applySet(d, 'stages[2].epochs=7');
  applySet(d, 'seed=3');
  applySet(d, 'source.dataset=other.parquet');
  applySet(d, 'stages.dynamics.hidden=[64,64]');
  const p = parsePipeline(d, 'p.json');
  assert.equal(p.rollout?.horizon, 1);
  assert.equal(p.sac?.epochs, 7);
  assert.equal(p.file.seed, 3);
  assert.equal(p.file.source.dataset, 'other.parquet');
  assert.deepEqual(p.dynamics?.hidden, [64, 64]);
  assert.throws(() => applySet(base(), 'stages.nope.x=1'), /no stage 'nope'/);
  assert.throws(() => applySet(base(), 'horizon'), /expected path=value/);
  const bad = base();
  applySet(bad, 'stages.rollout.lambda="high"');
  assert.match(errorOf(bad), /stages\[1\]\.lambda: expected a number ≥ 0/);
  // The ensemble loss other than the official code's (the default), from a pipeline file to the
  // ensemble config and back.
  const off = base();
  applySet(off, 'stages.dynamics.targets=normalized');
  applySet(off, 'stages.dynamics.nllReduction=sum');
  applySet(off, 'stages.dynamics.init="truncated-normal"');
  applySet(off, 'stages.sac.init="glorot-uniform"');
  applySet(off, 'stages.rollout.lag=0');
  applySet(off, 'stages.sac.actorLr=1e-4');
  applySet(off, 'stages.sac.alphaLr=1e-4');
  applySet(off, 'stages.sac.actorLrSchedule=cosine');
  const cfg = pipelineToMopoConfig(parsePipeline(off, 'p.json'));
  assert.deepEqual([cfg.ensemble.targets, cfg.ensemble.nllReduction, cfg.ensemble.init, cfg.sac.init, cfg.learner.rolloutLag], ['normalized', 'sum', 'truncated-normal', 'glorot-uniform', 0]);
  assert.deepEqual([cfg.sac.actorLr, cfg.sac.alphaLr, cfg.learner.actorLrSchedule], [1e-4, 1e-4, 'cosine']);
  const again = pipelineToMopoConfig(parsePipeline(mopoConfigToPipeline(cfg), 'again'));
  assert.deepEqual([again.ensemble, again.sac, again.learner], [cfg.ensemble, cfg.sac, cfg.learner]);
  assert.equal(pipelineToMopoConfig(parsePipeline(base(), 'p.json')).learner.rolloutLag, undefined, 'the default (1) is left out');
  assert.equal(pipelineToMopoConfig(parsePipeline(base(), 'p.json')).learner.actorLrSchedule, undefined, "the default ('constant') is left out");
  const sched = base();
  applySet(sched, 'stages.sac.actorLrSchedule=linear');
  assert.match(errorOf(sched), /stages\[2\]\.actorLrSchedule: expected one of constant, cosine/);
  const lag = base();
  applySet(lag, 'stages.rollout.lag=2');
  assert.match(errorOf(lag), /stages\[1\]\.lag: expected 0 or 1/);
  const wrong = base();
  applySet(wrong, 'stages.dynamics.targets=scaled');
  assert.match(errorOf(wrong), /stages\[0\]\.targets: expected one of normalized, raw/);
});

test('the presets in data/pipelines/ are what mopo train --preset runs, and round-trip', () => {
  const dir = join(ROOT, 'data', 'pipelines');
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  assert.ok(files.length >= 4, files.join(', '));
  for (const f of files) {
    const m = /^halfcheetah-(random|medium|medium-replay)-(paper|quick)\.json$/.exec(f);
    assert.ok(m, `unexpected preset ${f}`);
    const parsed = loadPipelineFile(join(dir, f));
    const dataset = resolve(dir, `../datasets/halfcheetah-${m[1]}.parquet`);
    const want = presetConfig(m[2] as 'paper' | 'quick', 'halfcheetah', dataset, m[1] as Task);
    assert.deepEqual(pipelineToMopoConfig(parsed), want, f);
    assert.deepEqual(pipelineToMopoConfig(parsePipeline(mopoConfigToPipeline(want), 'x')), want, `${f}: config → pipeline → config`);
  }
});

test("the paper preset takes MOPO's D4RL settings: entropy target −3, scored over each of the last 10 epochs", () => {
  const paper = presetConfig('paper', 'halfcheetah', 'd.parquet', 'random');
  assert.equal(resolveMopoConfig(paper).sac.targetEntropy, -3, 'examples/config/d4rl/base.py, not −|A| = −6');
  assert.equal(resolveMopoConfig(presetConfig('quick', 'pendulum', 'd.parquet', null)).sac.targetEntropy, null, "elsewhere SAC's −|A|");
  const due = Array.from({ length: 1000 }, (_, e) => e).filter((e) => evaluationDue(e, paper.evaluate, 999));
  assert.deepEqual(due.slice(-12), [979, 989, 990, 991, 992, 993, 994, 995, 996, 997, 998, 999]);
  assert.equal(due.length, 99 + 10);
  assert.deepEqual([0, 1, 2, 3, 4].filter((e) => evaluationDue(e, { every: 10 }, 4)), [4], 'by default the last epoch only');
  // Both reach a run's config through the pipeline file, and a bad value names its place.
  const doc = mopoConfigToPipeline(paper);
  assert.deepEqual(pipelineToMopoConfig(parsePipeline(doc, 'x')).sac.targetEntropy, -3);
  const stages = doc.stages as { stage: string; lastEpochs?: number }[];
  stages.find((x) => x.stage === 'evaluate')!.lastEpochs = 0;
  assert.match(errorOf(doc), /stages\[3\]\.lastEpochs: expected an integer ≥ 1/);
});

test('a preprocessing pipeline: dropNonFinite sees the non-finite rows, tee writes its stage, an unchanged rerun reuses the shards', async () => {
  const { mkdtempSync, rmSync, existsSync, readFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { from } = await import('rxjs');
  const { TransitionBatch } = await import('../schemas/transition.js');
  const { writeTransitionsFile } = await import('../operators/writeTransitions.js');
  const { runPipeline } = await import('../pipeline/runPipeline.js');
  const { readManifest } = await import('../operators/shards.js');
  const { initBackend } = await import('../pipeline/backend.js');
  const backend = await initBackend({ log: () => {} });
  const dir = mkdtempSync(join(tmpdir(), 'mopo-pre-'));
  try {
    const b = TransitionBatch.allocate({ obsDim: 3, actDim: 1, env: 'pendulum' }, 100);
    for (let i = 0; i < 100; i++) b.reward[i] = -i;
    b.observation[3 * 10] = Number.NaN;
    b.reward[20] = Number.POSITIVE_INFINITY;
    for (let i = 9; i < 100; i += 10) b.timeout[i] = 1;
    const dataset = join(dir, 'd.parquet');
    await writeTransitionsFile(dataset, from([b])); // the writer keeps what it is given; readers refuse non-finite rows unless told
    const doc = {
      env: 'pendulum',
      source: { dataset },
      stages: [{ stage: 'dropNonFinite' }, { stage: 'tee', name: 'clean' }, { stage: 'scaleReward', scale: 0.5 }],
    };
    const r1 = await runPipeline(join(dir, 'run'), parsePipeline(doc, 'p'), { backend, quiet: true });
    assert.equal(r1.mopo, null);
    assert.equal(r1.preprocess?.reused, false);
    assert.equal(r1.preprocess?.manifest.rows, 98, 'two non-finite rows dropped');
    const clean = await readManifest(join(dir, 'run', 'stages', 'clean'));
    assert.equal(clean.rows, 98);
    assert.ok(clean.complete);
    const summary = JSON.parse(readFileSync(join(dir, 'run', 'stages', 'preprocess-summary.json'), 'utf8')) as { stage: string; summary: { rowsDropped?: number } }[];
    assert.equal(summary.find((s) => s.stage === 'dropNonFinite')?.summary.rowsDropped, 2);
    const r2 = await runPipeline(join(dir, 'run2'), parsePipeline(doc, 'p'), { backend, quiet: true });
    assert.equal(r2.preprocess?.reused, false, 'another run directory computes its own');
    assert.ok(existsSync(join(dir, 'run2', 'stages', 'preprocess', 'manifest.json')));
    const r3 = await runPipeline(join(dir, 'run'), parsePipeline(doc, 'p'), { backend, quiet: true });
    assert.equal(r3.preprocess?.reused, true, 'the same run directory and config: reused');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
