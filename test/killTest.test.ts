// The kill test's fast variant (scripts/killTest.ts: SIGKILLs at aimed random moments, a SIGINT and
// a SIGTERM mid-learning, each run checked against an uninterrupted reference), and the states a kill can
// leave that the random kills hit only rarely, set up exactly: a kill during preprocessing (before
// config.json), between the preprocessed shards and their summary, between the ensemble and its
// report, after the training state's removal began, after the last checkpoint but before the
// summary; and a stop request that comes after an epoch's checkpoint decision.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { withPendulumDataset, readJsonl } from './pendulumFixture.js';
import { parsePipeline } from '../pipeline/pipelineFile.js';
import { runPipeline, PIPELINE_FILE } from '../pipeline/runPipeline.js';
import { sweepKilledRun, LOCK_FILE } from '../pipeline/runLock.js';
import { runKillTest, killTestPipeline, findTempFiles, KILL_TEST_DEFAULTS } from '../scripts/killTest.js';

const deadPid = () => spawnSync(process.execPath, ['-e', '0']).pid!;
const lines = (p: string) => readJsonl<{ epoch: number; evaluation: unknown }>(p);
const json = (p: string) => JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;

test('kill test (fast): 3 SIGKILLs at aimed moments, a SIGINT and a SIGTERM mid-learning, a SIGTERM during a checkpoint write, every run equal to the reference', { timeout: 180_000 }, async () => {
  const out = mkdtempSync(join(tmpdir(), 'mopo-kill-'));
  const log: string[] = [];
  try {
    const report = await runKillTest({ ...KILL_TEST_DEFAULTS, kills: 3, seed: 7, epochs: 6, maxKillsPerRun: 3, stopChecks: ['sigint-mid-learning', 'sigterm-mid-learning', 'sigterm-at-checkpoint'], out, log: (m) => log.push(m) });
    const detail = JSON.stringify({ failures: report.failures, stops: report.stops }, null, 1) + '\n' + log.join('\n');
    assert.equal(report.failures.length, 0, detail);
    assert.ok(report.kills >= 3 && report.killsSurvived === report.kills, detail);
    assert.deepEqual(report.stops.map((s) => s.name), ['sigint-mid-learning', 'sigterm-mid-learning', 'sigterm-at-checkpoint']);
    for (const s of report.stops) {
      assert.ok(s.ok && s.exitCode === 130, detail);
      assert.match(s.resumeCommand ?? '', /^mopo \S+ --resume /);
    }
    assert.ok(existsSync(join(out, 'report.json')));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('kill states: resumes from a kill before config.json, a late stop request, cut-off preprocessing/ensemble/summary writes', { timeout: 180_000 }, async () => {
  await withPendulumDataset('mopo-killstates-', { steps: 1500, seed: 3 }, async ({ dir, dataset, backend }) => {
    const doc = { ...killTestPipeline(dataset, 3, 3), checkpointEvery: 3 };
    const run = join(dir, 'run');
    const logs: string[] = [];
    const opts = { backend, quiet: true, log: (m: string) => logs.push(m) };

    // 1. Killed during its preprocessing: pipeline.json is there, config.json is not yet.
    mkdirSync(run);
    writeFileSync(join(run, PIPELINE_FILE), JSON.stringify(parsePipeline(doc, 'kill test').file, null, 2));
    // A stop request that comes after epoch 0's checkpoint decision (as a Ctrl-C while that epoch's
    // plots are written): the run stops at the end of epoch 1, with a checkpoint of epoch 1.
    // (Counted from the SAC stage on: the ensemble's training asks too, after each of its epochs.)
    let calls = 0;
    const sacStarted = () => existsSync(join(run, 'dynamics', 'report.json'));
    const stopped = await runPipeline(run, null, { ...opts, resume: true, stopRequested: () => sacStarted() && ++calls >= 2 });
    assert.ok(existsSync(join(run, 'config.json')), 'config.json written by the resumed run');
    assert.equal(stopped.mopo?.stoppedEarly, true);
    assert.equal(stopped.mopo?.epochs, 2);
    assert.equal((json(join(run, 'checkpoints', 'latest.json')) as { epoch: number }).epoch, 1, 'the checkpoint is of the epoch the run stopped after');
    assert.deepEqual(lines(join(run, 'metrics.jsonl')).map((l) => l.epoch), [0, 1]);
    assert.ok(logs.some((l) => /stopped at the end of epoch 1; its checkpoint is .*checkpoints\/epoch-000001/.test(l)), logs.join('\n'));

    const full = await runPipeline(run, null, { ...opts, resume: true });
    assert.equal(full.mopo?.stoppedEarly, false);
    const metrics = readFileSync(join(run, 'metrics.jsonl'), 'utf8');
    const ensembleSha = (json(join(run, 'dynamics', 'ensemble', 'ensemble.json')).data as { sha256: string }).sha256;
    const summary = json(join(run, 'summary.json'));
    const curve = readFileSync(join(run, 'learning-curve.svg'), 'utf8');

    // 2. Killed after the last checkpoint, before summary.json; and between the preprocessed shards
    //    and their summary; with the ensemble trainer's lock (it ran inside) left behind.
    unlinkSync(join(run, 'summary.json'));
    unlinkSync(join(run, 'learning-curve.svg'));
    unlinkSync(join(run, 'stages', 'preprocess-summary.json'));
    writeFileSync(join(run, 'dynamics', LOCK_FILE), JSON.stringify({ pid: deadPid(), host: hostname(), started: 'x' }));
    const inode = statSync(join(run, 'metrics.jsonl')).ino;
    logs.length = 0;
    const again = await runPipeline(run, null, { ...opts, resume: true });
    assert.equal(again.mopo?.stoppedEarly, false, 'a run resumed at its end is not "stopped early"');
    assert.equal(again.mopo?.epochs, 3);
    assert.deepEqual(json(join(run, 'summary.json')).evaluation, summary.evaluation, 'the summary keeps the last evaluation');
    assert.equal(readFileSync(join(run, 'learning-curve.svg'), 'utf8'), curve, 'and the plots are written');
    assert.equal(again.preprocess?.reused, false, 'shards without their summary are redone');
    assert.ok(existsSync(join(run, 'stages', 'preprocess-summary.json')));
    assert.ok(!existsSync(join(run, 'dynamics', LOCK_FILE)), "the killed trainer's lock is swept");
    assert.equal(readFileSync(join(run, 'metrics.jsonl'), 'utf8'), metrics);
    assert.notEqual(statSync(join(run, 'metrics.jsonl')).ino, inode, 'metrics.jsonl is rewritten by rename, never truncated in place');

    // 3. Killed between the ensemble and its report (its training state still there).
    unlinkSync(join(run, 'dynamics', 'report.json'));
    mkdirSync(join(run, 'dynamics', 'checkpoint'));
    await runPipeline(run, null, { ...opts, resume: true });
    assert.ok(existsSync(join(run, 'dynamics', 'report.json')), 'the ensemble is finished, report included');
    assert.equal((json(join(run, 'dynamics', 'ensemble', 'ensemble.json')).data as { sha256: string }).sha256, ensembleSha);
    assert.ok(!existsSync(join(run, 'dynamics', 'checkpoint')));

    // 4. Killed after the report, during the removal of the training state.
    mkdirSync(join(run, 'dynamics', 'checkpoint.old', 'best'), { recursive: true });
    mkdirSync(join(run, 'dynamics', `.checkpoint.tmp-${deadPid()}-abc`, 'best'), { recursive: true });
    logs.length = 0;
    await runPipeline(run, null, { ...opts, resume: true });
    assert.ok(!existsSync(join(run, 'dynamics', 'checkpoint.old')) && findTempFiles(run).length === 0, 'the removal is finished');
    assert.ok(!logs.some((l) => /training the dynamics ensemble/.test(l)), 'without training again');
    assert.equal(readFileSync(join(run, 'metrics.jsonl'), 'utf8'), metrics);
  });
});

test('sweepKilledRun removes the stale lock of a nested writer, not a live one nor the run\'s own', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mopo-sweeplock-'));
  try {
    mkdirSync(join(dir, 'dynamics'));
    mkdirSync(join(dir, 'other'));
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: process.pid, host: hostname(), started: 'x' }));
    writeFileSync(join(dir, 'dynamics', LOCK_FILE), JSON.stringify({ pid: deadPid(), host: hostname(), started: 'x' }));
    writeFileSync(join(dir, 'other', LOCK_FILE), JSON.stringify({ pid: process.ppid, host: hostname(), started: 'x' }));
    const removed = sweepKilledRun(dir).map((p) => p.slice(dir.length + 1));
    assert.deepEqual(removed, [join('dynamics', LOCK_FILE)]);
    assert.ok(existsSync(join(dir, LOCK_FILE)) && existsSync(join(dir, 'other', LOCK_FILE)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
