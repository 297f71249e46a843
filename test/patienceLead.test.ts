// scripts/patienceLead.sh with a stand-in CLI (MOPO=…): on a fresh machine the dataset, the ensemble
// on two workers as the official code trains it, its diagnostic, then MOPO on it; run again, nothing;
// after a kill, each step continues from its checkpoint (--resume), not from the start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { standIn, withQueueSandbox } from './queueScriptFixture.js';

// Arguments to calls.log; then the files the real command leaves (what the script checks for).
const STAND_IN = standIn(`case "$1" in
  collect) touch "$out";;
  train-dynamics) mkdir -p "$out" && touch "$out/report.json";;
  diagnose) touch "$run/diagnose-dynamics.json";;
  train) mkdir -p "\${out:-$3}" && echo '{}' > "\${out:-$3}/summary.json";;
esac
`);

const DATA = 'data/datasets/halfcheetah-uniform-random.parquet';

test('patienceLead.sh: from nothing, dataset, ensemble (2 workers, bootstrap, truncated-normal, patience 6), diagnostic, MOPO, MOPO with λ = 0; again, nothing', () => {
  withQueueSandbox('patienceLead.sh', STAND_IN, () => {}, (run, dir) => {
    const first = run();
    assert.equal(first.status, 0, first.stderr);
    assert.deepEqual(first.calls, [
      `collect --env halfcheetah --policy uniform --steps 1000000 --seed 0 --out ${DATA} --quiet`,
      `train-dynamics --dataset ${DATA} --out runs/dyn-hc-uniform-random-patience --workers 2 --resume --resample bootstrap --init truncated-normal --patience 6`,
      'diagnose dynamics --run runs/dyn-hc-uniform-random-patience',
      `train --dataset ${DATA} --dynamics runs/dyn-hc-uniform-random-patience --out runs/mopo-hcur-patience`,
      `train --dataset ${DATA} --dynamics runs/dyn-hc-uniform-random-patience --out runs/mopo-hcur-patience-lambda0 --lambda 0`,
    ]);
    assert.ok(existsSync(join(dir, DATA)));
    const again = run();
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(again.calls, []);
  });
});

test('patienceLead.sh: a MOPO run killed after a checkpoint is resumed, the finished ensemble left alone', () => {
  withQueueSandbox(
    'patienceLead.sh',
    STAND_IN,
    (dir) => {
      mkdirSync(join(dir, 'data', 'datasets'), { recursive: true });
      writeFileSync(join(dir, DATA), '');
      const dyn = join(dir, 'runs', 'dyn-hc-uniform-random-patience');
      mkdirSync(dyn, { recursive: true });
      for (const f of ['report.json', 'diagnose-dynamics.json']) writeFileSync(join(dyn, f), '{}');
      mkdirSync(join(dir, 'runs', 'mopo-hcur-patience', 'checkpoints'), { recursive: true });
      writeFileSync(join(dir, 'runs', 'mopo-hcur-patience', 'checkpoints', 'latest.json'), '{}');
    },
    (run, dir) => {
      const r = run();
      assert.equal(r.status, 0, r.stderr);
      const lambda0 = `train --dataset ${DATA} --dynamics runs/dyn-hc-uniform-random-patience --out runs/mopo-hcur-patience-lambda0 --lambda 0`;
      assert.deepEqual(r.calls, ['train --resume runs/mopo-hcur-patience', lambda0]);
      rmSync(join(dir, 'runs', 'mopo-hcur-patience', 'summary.json'));
      writeFileSync(join(dir, 'runs', 'mopo-hcur-patience', 'summary.json'), '{"stoppedEarly": true}');
      assert.deepEqual(run().calls, ['train --resume runs/mopo-hcur-patience'], 'a run stopped early is continued (and the λ = 0 one, done, left alone)');
    },
  );
});

test('patienceLead.sh on a new machine: the runs carried in git (data/carry) are restored and continued, the dataset made again', () => {
  withQueueSandbox(
    'patienceLead.sh',
    STAND_IN,
    (dir) => {
      const dyn = join(dir, 'data', 'carry', 'dyn-hc-uniform-random-patience');
      mkdirSync(join(dyn, 'ensemble'), { recursive: true });
      for (const f of ['report.json', 'diagnose-dynamics.json', 'ensemble/ensemble.json']) writeFileSync(join(dyn, f), '{}');
      const ckpt = join(dir, 'data', 'carry', 'mopo-hcur-patience', 'checkpoints');
      mkdirSync(join(ckpt, 'epoch-000399', 'agent'), { recursive: true });
      writeFileSync(join(ckpt, 'latest.json'), '{"checkpoint": "epoch-000399"}');
    },
    (run, dir) => {
      const r = run();
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(r.calls, [
        `collect --env halfcheetah --policy uniform --steps 1000000 --seed 0 --out ${DATA} --quiet`,
        'train --resume runs/mopo-hcur-patience',
        `train --dataset ${DATA} --dynamics runs/dyn-hc-uniform-random-patience --out runs/mopo-hcur-patience-lambda0 --lambda 0`,
      ]);
      assert.ok(existsSync(join(dir, 'runs', 'dyn-hc-uniform-random-patience', 'ensemble', 'ensemble.json')));
      assert.ok(existsSync(join(dir, 'runs', 'mopo-hcur-patience', 'checkpoints', 'epoch-000399', 'agent')));
      // A run already on the machine is newer than the carried one: left as it is.
      writeFileSync(join(dir, 'runs', 'mopo-hcur-patience', 'checkpoints', 'latest.json'), '{"checkpoint": "epoch-000409"}');
      rmSync(join(dir, 'runs', 'mopo-hcur-patience', 'summary.json'));
      assert.deepEqual(run().calls, ['train --resume runs/mopo-hcur-patience']);
      assert.match(readFileSync(join(dir, 'runs', 'mopo-hcur-patience', 'checkpoints', 'latest.json'), 'utf8'), /epoch-000409/);
    },
  );
});

test('carry.sh save: a run copied to data/carry without its model-buffer shards, saved rollouts and lock; usage errors', () => {
  withQueueSandbox(
    'carry.sh',
    STAND_IN,
    (dir) => {
      const run = join(dir, 'runs', 'mopo-x');
      const ckpt = join(run, 'checkpoints', 'epoch-000009');
      for (const d of ['agent', 'model-buffer']) mkdirSync(join(ckpt, d), { recursive: true });
      mkdirSync(join(run, 'stages', 'rollout'), { recursive: true });
      for (const f of ['checkpoints/latest.json', 'checkpoints/epoch-000009/state.json', 'checkpoints/epoch-000009/agent/w.f32', 'checkpoints/epoch-000009/model-buffer/shard-0.arrow', 'stages/rollout/round-0.arrow', 'config.json', 'metrics.jsonl']) {
        writeFileSync(join(run, f), 'x');
      }
      writeFileSync(join(run, 'LOCK'), JSON.stringify({ pid: 2 ** 22 + 7 })); // no such process: a stale lock
    },
    (run, dir) => {
      const r = run({}, ['save', 'mopo-x']);
      assert.equal(r.status, 0, r.stderr);
      const carried = join(dir, 'data', 'carry', 'mopo-x');
      for (const f of ['checkpoints/latest.json', 'checkpoints/epoch-000009/state.json', 'checkpoints/epoch-000009/agent/w.f32', 'config.json', 'metrics.jsonl']) assert.ok(existsSync(join(carried, f)), f);
      for (const f of ['checkpoints/epoch-000009/model-buffer', 'stages', 'LOCK']) assert.ok(!existsSync(join(carried, f)), f);
      assert.ok(existsSync(join(dir, 'runs', 'mopo-x', 'checkpoints', 'epoch-000009', 'model-buffer')), 'the run itself is untouched');
      const missing = run({}, ['save', 'mopo-y']);
      assert.equal(missing.status, 1);
      assert.match(missing.stderr, /carry: no runs\/mopo-y/);
      assert.equal(run({}, []).status, 2);
      assert.equal(run({}, ['save']).status, 2);
    },
  );
});
