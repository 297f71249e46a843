// scripts/paperTable.sh on a fresh machine, with a stand-in CLI (MOPO=…) that writes the files each
// step leaves: every dataset, ensemble, diagnostic and MOPO run once and in order; run again, nothing;
// a failed step stops what depends on it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { standIn, withQueueSandbox, type QueueTestBody } from './queueScriptFixture.js';

// Arguments to calls.log; then the files the real command leaves (what the script checks for).
const STAND_IN = standIn(`[ "$1" = "$FAIL" ] && exit 1
case "$1" in
  collect) touch "$out";;
  sac) mkdir -p "$out" && touch "$out/replay.parquet";;
  train-dynamics) mkdir -p "$out" && touch "$out/report.json";;
  diagnose) touch "$run/diagnose-dynamics.json";;
  train) mkdir -p "$out" && echo '{}' > "$out/summary.json";;
esac
`);

const outOf = (call: string) => / --(?:out|run) (\S+)/.exec(call)?.[1] ?? '';
const before = (calls: string[], a: string, b: string) => {
  const i = calls.findIndex((c) => outOf(c) === a);
  const j = calls.findIndex((c) => outOf(c) === b);
  assert.ok(i >= 0 && j >= 0 && i < j, `${a} before ${b} in\n${calls.join('\n')}`);
};

// A fresh machine: no datasets, no runs. FAIL names a command the stand-in fails.
const withPaperTable = (body: QueueTestBody) =>
  withQueueSandbox('paperTable.sh', STAND_IN, (dir) => mkdirSync(join(dir, 'data', 'datasets'), { recursive: true }), body);

test('paperTable.sh: from nothing, every step once and in order; again, nothing to do', () => {
  withPaperTable((run, dir) => {
    const first = run();
    assert.equal(first.status, 0);
    assert.equal(first.calls.length, 13, first.calls.join('\n'));
    const D = 'data/datasets/halfcheetah-';
    for (const f of ['uniform-random', 'medium', 'medium-replay']) assert.ok(existsSync(join(dir, `${D}${f}.parquet`)), f);
    before(first.calls, 'runs/halfcheetah-medium', 'runs/dyn-hc-medium-replay'); // the SAC run's replay is the dataset
    before(first.calls, 'runs/dyn-hc-medium-replay', 'runs/dyn-hc-medium');
    for (const dyn of ['uniform-random-official', 'medium-replay', 'medium']) {
      const trained = first.calls.findIndex((c) => c.startsWith('train-dynamics') && outOf(c) === `runs/dyn-hc-${dyn}`);
      const diagnosed = first.calls.findIndex((c) => c.startsWith('diagnose dynamics') && outOf(c) === `runs/dyn-hc-${dyn}`);
      assert.ok(trained >= 0 && diagnosed > trained, `${dyn} trained, then diagnosed`);
    }
    const firstMopo = first.calls.findIndex((c) => c.startsWith('train '));
    const lastEnsemble = first.calls.map((c) => c.startsWith('train-dynamics') || c.startsWith('diagnose')).lastIndexOf(true);
    assert.ok(lastEnsemble < firstMopo, 'MOPO starts after every ensemble and diagnostic');
    before(first.calls, 'runs/mopo-hc-uniform-random-official', 'runs/mopo-hc-medium-replay-paper');
    before(first.calls, 'runs/mopo-hc-uniform-random-official-lambda0', 'runs/mopo-hc-medium-paper');
    assert.ok(first.calls.some((c) => outOf(c) === 'runs/mopo-hc-uniform-random-official-lambda0' && / --lambda 0$/.test(c)));

    const again = run();
    assert.equal(again.status, 0);
    assert.deepEqual(again.calls, []);
  });
});

test('paperTable.sh: a failed SAC run stops the medium-replay and medium work and every MOPO run', () => {
  withPaperTable((run, dir) => {
    const r = run({ FAIL: 'sac' });
    assert.equal(r.status, 1);
    assert.ok(r.calls.some((c) => c.startsWith('sac ')));
    assert.ok(!r.calls.some((c) => c.startsWith('train ') || outOf(c).startsWith('runs/dyn-hc-medium')), r.calls.join('\n'));
    assert.ok(!existsSync(join(dir, 'data/datasets/halfcheetah-medium-replay.parquet')));
  });
});
