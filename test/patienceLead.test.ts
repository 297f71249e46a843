// scripts/patienceLead.sh with a stand-in CLI (MOPO=…): on a fresh machine the dataset, the ensemble
// on two workers as the official code trains it, its diagnostic, then MOPO on it; run again, nothing;
// after a kill, each step continues from its checkpoint (--resume), not from the start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
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

test('patienceLead.sh: from nothing, dataset, ensemble (2 workers, bootstrap, truncated-normal), diagnostic, MOPO; again, nothing', () => {
  withQueueSandbox('patienceLead.sh', STAND_IN, () => {}, (run, dir) => {
    const first = run();
    assert.equal(first.status, 0, first.stderr);
    assert.deepEqual(first.calls, [
      `collect --env halfcheetah --policy uniform --steps 1000000 --seed 0 --out ${DATA} --quiet`,
      `train-dynamics --dataset ${DATA} --out runs/dyn-hc-uniform-random-patience --workers 2 --resume --resample bootstrap --init truncated-normal`,
      'diagnose dynamics --run runs/dyn-hc-uniform-random-patience',
      `train --dataset ${DATA} --dynamics runs/dyn-hc-uniform-random-patience --out runs/mopo-hcur-patience`,
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
      assert.deepEqual(r.calls, ['train --resume runs/mopo-hcur-patience']);
      rmSync(join(dir, 'runs', 'mopo-hcur-patience', 'summary.json'));
      writeFileSync(join(dir, 'runs', 'mopo-hcur-patience', 'summary.json'), '{"stoppedEarly": true}');
      assert.deepEqual(run().calls, ['train --resume runs/mopo-hcur-patience'], 'a run stopped early is continued');
    },
  );
});
