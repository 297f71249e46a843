// scripts/penaltySweep.sh with a stand-in CLI (MOPO=…): each penalty's three λ come from the paper
// run's diagnostic, every run once with the sweep's length, the diagnostic on each penalty's best run
// and the table and its figure last; SWEEP_TASKS picks the tasks; run again, nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, withQueueSandbox, type QueueTestBody } from './queueScriptFixture.js';

// The paper run's diagnostic gives the estimators' means 2 (max-aleatoric), 1 (disagreement) and
// 4 (ensemble-variance) at λ 1, so the matched λ are 1, 2 and 0.5 times ½, 1, 2. A run's
// evaluations all score its λ, so each penalty's best λ is its largest.
const STAND_IN = `#!/bin/bash
echo "$*" >> calls.log
args=("$@"); declare -A flag
for ((i = 0; i < \${#args[@]}; i++)); do
  case "\${args[$i]}" in --*) flag[\${args[$i]}]=\${args[$((i + 1))]};; esac
done
case "$1 $2" in
  "diagnose penalty")
    run=\${flag[--run]}; [ -d "$run" ] || exit 1
    est() { printf '"%s/all": {"mean": %s, "spearman": {"obs": 0.8, "rewardW1": 0.9}, "coverage": {"obs": 0.5}}' "$1" "$2"; }
    printf '{"lambda": 1, "overall": {"estimators": {%s, %s, %s}}}' "$(est max-aleatoric 2)" "$(est disagreement 1)" "$(est ensemble-variance 4)" > "$run/diagnose-penalty.json";;
  train\\ *)
    out=\${flag[--out]}; mkdir -p "$out"
    printf '{"dataset": "%s", "rollout": {"penalty": "%s", "lambda": %s}}' "\${flag[--dataset]}" "\${flag[--penalty]}" "\${flag[--lambda]}" > "$out/config.json"
    for ((e = 0; e < \${flag[--epochs]}; e++)); do printf '{"epoch": %d, "evaluation": {"score": %s}}\\n' $e "\${flag[--lambda]}"; done > "$out/metrics.jsonl"
    printf '{"epochs": %s, "stoppedEarly": false}' "\${flag[--epochs]}" > "$out/summary.json";;
esac
`;

// The paper runs' directories (the stand-in diagnoses them), and the built table script.
const withSweep = (body: QueueTestBody) =>
  withQueueSandbox(
    'penaltySweep.sh',
    STAND_IN,
    (dir) => {
      symlinkSync(join(ROOT, 'dist'), join(dir, 'dist')); // run as built, through a link
      for (const paper of ['mopo-hcmr-patience', 'mopo-hcur-patience']) mkdirSync(join(dir, 'runs', paper), { recursive: true });
    },
    body,
  );

const trainsOf = (calls: string[]) => calls.filter((c) => c.startsWith('train '));
const flagOf = (call: string, f: string) => new RegExp(` --${f} (\\S+)`).exec(call)?.[1];

test('penaltySweep.sh: matched λ from the paper run, SWEEP_EPOCHS long, best runs diagnosed, the table; again, nothing', () => {
  withSweep((run, dir) => {
    const first = run({ SWEEP_TASKS: 'medium-replay', SWEEP_EPOCHS: '7' });
    assert.equal(first.status, 0, first.stderr);
    assert.equal(first.calls[0], 'diagnose penalty --run runs/mopo-hcmr-patience');
    const trains = trainsOf(first.calls);
    assert.equal(trains.length, 9, first.calls.join('\n'));
    const tried = trains.map((c) => `${flagOf(c, 'penalty')} ${flagOf(c, 'lambda')} ${flagOf(c, 'epochs')} ${flagOf(c, 'dynamics')}`);
    const expected = [
      ['max-aleatoric', [0.5, 1, 2]],
      ['disagreement', [1, 2, 4]],
      ['ensemble-variance', [0.25, 0.5, 1]],
    ] as const;
    assert.deepEqual(tried, expected.flatMap(([p, ls]) => ls.map((l) => `${p} ${l} 7 runs/dyn-hc-medium-replay-patience`)));
    assert.ok(trains.every((c) => flagOf(c, 'dataset') === 'data/datasets/halfcheetah-medium-replay.parquet'));
    // After the runs: the diagnostic on each penalty's best (largest-λ) run, once.
    const diagnosed = first.calls.slice(10).map((c) => flagOf(c, 'run')).sort();
    assert.deepEqual(diagnosed, ['disagreement', 'ensemble-variance', 'max-aleatoric'].map((p) => `runs/sweep-medium-replay-${p}-x2`));
    const table = readFileSync(join(dir, 'runs', 'penalty-table.md'), 'utf8');
    for (const [p, ls] of expected) assert.match(table, new RegExp(`\\| medium-replay \\| ${p} \\|.*\\| ${ls[2]} \\|`));
    assert.match(readFileSync(join(dir, 'runs', 'penalty-sweep.svg'), 'utf8'), /^<svg/, 'the figure beside the table');

    const again = run({ SWEEP_TASKS: 'medium-replay', SWEEP_EPOCHS: '7' });
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(again.calls, []);
  });
});

test('penaltySweep.sh: by default medium-replay (20 epochs), then uniform-random (30); an unknown task is refused by name', () => {
  withSweep((run) => {
    const both = run({});
    assert.equal(both.status, 0, both.stderr);
    const trains = trainsOf(both.calls);
    assert.equal(trains.length, 18);
    assert.ok(trains.slice(0, 9).every((c) => flagOf(c, 'out')!.startsWith('runs/sweep-medium-replay-') && flagOf(c, 'epochs') === '20'));
    assert.ok(trains.slice(9).every((c) => flagOf(c, 'out')!.startsWith('runs/sweep-uniform-random-') && flagOf(c, 'epochs') === '30'));

    const bad = run({ SWEEP_TASKS: 'medium-replay hopper' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /SWEEP_TASKS: unknown task 'hopper'/);
  });
});
