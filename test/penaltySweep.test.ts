// scripts/penaltySweep.sh with a stand-in CLI (MOPO=…): each penalty's three λ come from the paper
// run's diagnostic, every run once with the sweep's length, the diagnostic on each penalty's best run
// and the table and its figure last; SWEEP_TASKS picks the tasks; run again, nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

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

function sandbox(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mopo-penaltysweep-'));
  mkdirSync(join(dir, 'scripts'));
  for (const f of ['penaltySweep.sh', 'runSteps.sh']) copyFileSync(join(ROOT, 'scripts', f), join(dir, 'scripts', f));
  symlinkSync(join(ROOT, 'dist'), join(dir, 'dist')); // the table script, run as built
  for (const paper of ['mopo-hc-medium-replay-paper', 'mopo-hc-uniform-random-official']) mkdirSync(join(dir, 'runs', paper), { recursive: true });
  writeFileSync(join(dir, 'mopo'), STAND_IN);
  chmodSync(join(dir, 'mopo'), 0o755);
  return dir;
}

function runScript(dir: string, env: Record<string, string>): { status: number | null; stderr: string; calls: string[] } {
  rmSync(join(dir, 'calls.log'), { force: true });
  const r = spawnSync('bash', ['scripts/penaltySweep.sh'], { cwd: dir, env: { ...process.env, MOPO: join(dir, 'mopo'), ...env }, encoding: 'utf8' });
  const calls = existsSync(join(dir, 'calls.log')) ? readFileSync(join(dir, 'calls.log'), 'utf8').trim().split('\n') : [];
  return { status: r.status, stderr: r.stderr, calls };
}

const trainsOf = (calls: string[]) => calls.filter((c) => c.startsWith('train '));
const flagOf = (call: string, f: string) => new RegExp(` --${f} (\\S+)`).exec(call)?.[1];

test('penaltySweep.sh: matched λ from the paper run, SWEEP_EPOCHS long, best runs diagnosed, the table; again, nothing', () => {
  const dir = sandbox();
  try {
    const first = runScript(dir, { SWEEP_TASKS: 'medium-replay', SWEEP_EPOCHS: '7' });
    assert.equal(first.status, 0, first.stderr);
    assert.equal(first.calls[0], 'diagnose penalty --run runs/mopo-hc-medium-replay-paper');
    const trains = trainsOf(first.calls);
    assert.equal(trains.length, 9, first.calls.join('\n'));
    const tried = trains.map((c) => `${flagOf(c, 'penalty')} ${flagOf(c, 'lambda')} ${flagOf(c, 'epochs')} ${flagOf(c, 'dynamics')}`);
    const expected = [
      ['max-aleatoric', [0.5, 1, 2]],
      ['disagreement', [1, 2, 4]],
      ['ensemble-variance', [0.25, 0.5, 1]],
    ] as const;
    assert.deepEqual(tried, expected.flatMap(([p, ls]) => ls.map((l) => `${p} ${l} 7 runs/dyn-hc-medium-replay`)));
    assert.ok(trains.every((c) => flagOf(c, 'dataset') === 'data/datasets/halfcheetah-medium-replay.parquet'));
    // After the runs: the diagnostic on each penalty's best (largest-λ) run, once.
    const diagnosed = first.calls.slice(10).map((c) => flagOf(c, 'run')).sort();
    assert.deepEqual(diagnosed, ['disagreement', 'ensemble-variance', 'max-aleatoric'].map((p) => `runs/sweep-medium-replay-${p}-x2`));
    const table = readFileSync(join(dir, 'runs', 'penalty-table.md'), 'utf8');
    for (const [p, ls] of expected) assert.match(table, new RegExp(`\\| medium-replay \\| ${p} \\|.*\\| ${ls[2]} \\|`));
    assert.match(readFileSync(join(dir, 'runs', 'penalty-sweep.svg'), 'utf8'), /^<svg/, 'the figure beside the table');

    const again = runScript(dir, { SWEEP_TASKS: 'medium-replay', SWEEP_EPOCHS: '7' });
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(again.calls, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('penaltySweep.sh: by default medium-replay, then uniform-random; an unknown task is refused by name', () => {
  const dir = sandbox();
  try {
    const both = runScript(dir, {});
    assert.equal(both.status, 0, both.stderr);
    const trains = trainsOf(both.calls);
    assert.equal(trains.length, 18);
    assert.ok(trains.slice(0, 9).every((c) => flagOf(c, 'out')!.startsWith('runs/sweep-medium-replay-')));
    assert.ok(trains.slice(9).every((c) => flagOf(c, 'out')!.startsWith('runs/sweep-uniform-random-') && flagOf(c, 'epochs') === '50'));

    const bad = runScript(dir, { SWEEP_TASKS: 'medium-replay hopper' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /SWEEP_TASKS: unknown task 'hopper'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
