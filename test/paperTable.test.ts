// scripts/paperTable.sh with a stand-in CLI (MOPO=…) that writes the files each step leaves: on a
// fresh machine every dataset, ensemble (two workers, as the official code trains it), diagnostic
// and MOPO run once and in order; run again, nothing; a failed step stops what comes after it; after
// a kill each step continues from its checkpoint (--resume); on a new machine the runs carried in
// git are restored and continued. And carry.sh, which carries them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { standIn, withQueueSandbox, type QueueTestBody } from './queueScriptFixture.js';

// Arguments to calls.log; then the files the real command leaves (what the script checks for).
const STAND_IN = standIn(`[ "$1" = "$FAIL" ] && exit 1
case "$1" in
  collect) touch "$out";;
  sac) mkdir -p "$out/policy" && touch "$out/replay.parquet" && echo "\${MOPO_NATIVE_KERNELS-native}" > "$out/kernels"
    if [ -n "\${SAC_POLICY:-}" ]; then echo "$SAC_POLICY" > "$out/policy/policy-000054050.f32"; else cp data/policies/halfcheetah-medium/*.f32 "$out/policy/"; fi;;
  train-dynamics) mkdir -p "$out" && touch "$out/report.json";;
  diagnose) touch "$run/diagnose-dynamics.json";;
  train) mkdir -p "\${out:-$3}" && echo '{}' > "\${out:-$3}/summary.json";;
esac
`);

const D = 'data/datasets/halfcheetah-';
const UR = `${D}uniform-random.parquet`;
const MR = `${D}medium-replay.parquet`;
const M = `${D}medium.parquet`;
const OFFICIAL = '--workers 2 --resume --resample bootstrap --init truncated-normal --patience 6';
const mopo = (run: string, data: string, dyn: string, flags = '') => `train --dataset ${data} --dynamics runs/${dyn} --out runs/${run}${flags}`;
const LAMBDA0 = mopo('mopo-hcur-patience-lambda0', UR, 'dyn-hc-uniform-random-patience', ' --lambda 0');
const SEED1 = mopo('mopo-hcur-patience-seed1', UR, 'dyn-hc-uniform-random-patience', ' --seed 1');
const SEED2 = mopo('mopo-hcur-patience-seed2', UR, 'dyn-hc-uniform-random-patience', ' --seed 2');
// halfcheetah-random on a second ensemble (its own seed, as each of the paper's runs trained one).
const ENSEMBLE1 = [
  `train-dynamics --dataset ${UR} --out runs/dyn-hc-uniform-random-patience-seed1 ${OFFICIAL} --seed 1`,
  'diagnose dynamics --run runs/dyn-hc-uniform-random-patience-seed1',
  mopo('mopo-hcur-patience-ens1-seed1', UR, 'dyn-hc-uniform-random-patience-seed1', ' --seed 1'),
];
// OfflineRL-Kit's recipe on ensemble 0; then medium-replay from nothing; then the kit's actor
// learning rate alone; then medium.
const KIT = mopo('mopo-hcur-patience-kit', UR, 'dyn-hc-uniform-random-patience', ' --epochs 3000 --actor-lr 1e-4 --actor-lr-schedule cosine --alpha-lr 1e-4 --target-entropy -6');
const MEDIUM_REPLAY = [
  'sac --env halfcheetah --steps 1000000 --seed 0 --stop-at-return 4000 --save-replay --out runs/halfcheetah-medium --quiet',
  `train-dynamics --dataset ${MR} --out runs/dyn-hc-medium-replay-patience ${OFFICIAL}`,
  'diagnose dynamics --run runs/dyn-hc-medium-replay-patience',
  mopo('mopo-hcmr-patience', MR, 'dyn-hc-medium-replay-patience'),
];
const ACTOR_LR = mopo('mopo-hcur-patience-actorlr', UR, 'dyn-hc-uniform-random-patience', ' --actor-lr 1e-4');
const MEDIUM = [
  `collect --env halfcheetah --policy data/policies/halfcheetah-medium --noise --steps 1000000 --seed 0 --out ${M} --quiet`,
  `train-dynamics --dataset ${M} --out runs/dyn-hc-medium-patience ${OFFICIAL}`,
  'diagnose dynamics --run runs/dyn-hc-medium-patience',
  mopo('mopo-hcm-patience', M, 'dyn-hc-medium-patience'),
];
const AFTER_KIT = [...MEDIUM_REPLAY, ACTOR_LR, ...MEDIUM];

/** The committed medium policy, which the SAC run that makes medium-replay must reproduce. */
const committedPolicy = (dir: string) => {
  mkdirSync(join(dir, 'data', 'policies', 'halfcheetah-medium'), { recursive: true });
  writeFileSync(join(dir, 'data', 'policies', 'halfcheetah-medium', 'policy-000054050.f32'), 'the committed weights');
};
const withPaperTable = (setup: (dir: string) => void, body: QueueTestBody) =>
  withQueueSandbox('paperTable.sh', STAND_IN, (dir) => {
    committedPolicy(dir);
    setup(dir);
  }, body);
/** The uniform-random dataset, ensemble and first MOPO run already there, as after the lead's sessions. */
const urDone = (dir: string) => {
  mkdirSync(join(dir, 'data', 'datasets'), { recursive: true });
  writeFileSync(join(dir, UR), '');
  const dyn = join(dir, 'runs', 'dyn-hc-uniform-random-patience');
  mkdirSync(dyn, { recursive: true });
  for (const f of ['report.json', 'diagnose-dynamics.json']) writeFileSync(join(dyn, f), '{}');
};

test('paperTable.sh: from nothing, every step once and in order; again, nothing', () => {
  withPaperTable(() => {}, (run, dir) => {
    const first = run();
    assert.equal(first.status, 0, first.stderr);
    assert.deepEqual(first.calls, [
      `collect --env halfcheetah --policy uniform --steps 1000000 --seed 0 --out ${UR} --quiet`,
      `train-dynamics --dataset ${UR} --out runs/dyn-hc-uniform-random-patience ${OFFICIAL}`,
      'diagnose dynamics --run runs/dyn-hc-uniform-random-patience',
      mopo('mopo-hcur-patience', UR, 'dyn-hc-uniform-random-patience'),
      LAMBDA0,
      SEED1,
      SEED2,
      KIT,
      ...AFTER_KIT,
      ...ENSEMBLE1,
    ]);
    for (const f of [UR, MR, M]) assert.ok(existsSync(join(dir, f)), f);
    assert.equal(readFileSync(join(dir, 'runs', 'halfcheetah-medium', 'kernels'), 'utf8').trim(), '0', 'the SAC run on the wasm kernels, as the committed policy was made');
    const again = run();
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(again.calls, []);
  });
});

test('paperTable.sh: a failed SAC run stops the medium-replay and medium work and every later MOPO run', () => {
  withPaperTable(urDone, (run, dir) => {
    const r = run({ FAIL: 'sac' });
    assert.equal(r.status, 1);
    assert.deepEqual(r.calls, [mopo('mopo-hcur-patience', UR, 'dyn-hc-uniform-random-patience'), LAMBDA0, SEED1, SEED2, KIT, MEDIUM_REPLAY[0]]);
    assert.ok(!existsSync(join(dir, MR)));
  });
});

test('paperTable.sh: a SAC run whose policy is not the committed one gives no medium-replay dataset and stops the queue, saying why', () => {
  withPaperTable(urDone, (run, dir) => {
    const r = run({ SAC_POLICY: 'other weights' });
    assert.equal(r.status, 1);
    assert.deepEqual(r.calls, [mopo('mopo-hcur-patience', UR, 'dyn-hc-uniform-random-patience'), LAMBDA0, SEED1, SEED2, KIT, MEDIUM_REPLAY[0]]);
    assert.match(r.stderr, /runs\/halfcheetah-medium\/policy differs from the committed data\/policies\/halfcheetah-medium\/policy-000054050\.f32/);
    assert.ok(!existsSync(join(dir, MR)));
  });
});

test('paperTable.sh: a MOPO run killed after a checkpoint is resumed, the finished ensemble left alone', () => {
  withPaperTable(
    (dir) => {
      urDone(dir);
      mkdirSync(join(dir, 'runs', 'mopo-hcur-patience', 'checkpoints'), { recursive: true });
      writeFileSync(join(dir, 'runs', 'mopo-hcur-patience', 'checkpoints', 'latest.json'), '{}');
    },
    (run, dir) => {
      const r = run();
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(r.calls, ['train --resume runs/mopo-hcur-patience', LAMBDA0, SEED1, SEED2, KIT, ...AFTER_KIT, ...ENSEMBLE1]);
      writeFileSync(join(dir, 'runs', 'mopo-hcur-patience', 'summary.json'), '{"stoppedEarly": true}');
      assert.deepEqual(run().calls, ['train --resume runs/mopo-hcur-patience'], 'a run stopped early is continued (the later ones, done, left alone)');
    },
  );
});

test('paperTable.sh on a new machine: the runs carried in git (data/carry) are restored and continued, the datasets made again', () => {
  withPaperTable(
    (dir) => {
      const dyn = join(dir, 'data', 'carry', 'dyn-hc-uniform-random-patience');
      mkdirSync(join(dyn, 'ensemble'), { recursive: true });
      for (const f of ['report.json', 'diagnose-dynamics.json', 'ensemble/ensemble.json']) writeFileSync(join(dyn, f), '{}');
      const done = join(dir, 'data', 'carry', 'mopo-hcur-patience');
      mkdirSync(done, { recursive: true });
      writeFileSync(join(done, 'summary.json'), '{}');
      const ckpt = join(dir, 'data', 'carry', 'mopo-hcur-patience-lambda0', 'checkpoints');
      mkdirSync(join(ckpt, 'epoch-000399', 'agent'), { recursive: true });
      writeFileSync(join(ckpt, 'latest.json'), '{"checkpoint": "epoch-000399"}');
    },
    (run, dir) => {
      const r = run();
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(r.calls, [
        `collect --env halfcheetah --policy uniform --steps 1000000 --seed 0 --out ${UR} --quiet`,
        'train --resume runs/mopo-hcur-patience-lambda0',
        SEED1,
        SEED2,
        KIT,
        ...AFTER_KIT,
        ...ENSEMBLE1,
      ]);
      assert.ok(existsSync(join(dir, 'runs', 'dyn-hc-uniform-random-patience', 'ensemble', 'ensemble.json')));
      assert.ok(existsSync(join(dir, 'runs', 'mopo-hcur-patience-lambda0', 'checkpoints', 'epoch-000399', 'agent')));
      // A run already on the machine is newer than the carried one: left as it is.
      const latest = join(dir, 'runs', 'mopo-hcur-patience-lambda0', 'checkpoints', 'latest.json');
      writeFileSync(latest, '{"checkpoint": "epoch-000409"}');
      rmSync(join(dir, 'runs', 'mopo-hcur-patience-lambda0', 'summary.json'));
      assert.deepEqual(run().calls, ['train --resume runs/mopo-hcur-patience-lambda0']);
      assert.match(readFileSync(latest, 'utf8'), /epoch-000409/);
    },
  );
});

test('paperTable.sh: ENSEMBLE_MAX_EPOCHS caps every ensemble', () => {
  withPaperTable(() => {}, (run) => {
    const r = run({ ENSEMBLE_MAX_EPOCHS: '28' });
    assert.equal(r.status, 0, r.stderr);
    const trainings = r.calls.filter((c) => c.startsWith('train-dynamics'));
    assert.equal(trainings.length, 4);
    for (const c of trainings) assert.match(c, / --resume --max-epochs 28 --resample bootstrap /);
  });
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
