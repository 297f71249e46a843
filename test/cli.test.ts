// The CLI as a user meets it: a subprocess, its exit code, stdout and stderr.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'pipeline', 'cli.js');

export function mopo(args: string[], env: Record<string, string> = {}, timeoutMs = 120_000) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: timeoutMs });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const STACK = /^\s+at .+:\d+:\d+\)?$/m;

/** Runs `body` in a fresh temporary directory (named `prefix`…), removed afterwards whatever happens. */
async function withTempDir<T>(prefix: string, body: (dir: string) => Promise<T>): Promise<T> {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    return await body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** withTempDir with a random-policy Pendulum dataset of `steps` rows collected by the CLI into <dir>/p.parquet (`data`). */
function withPendulumData<T>(prefix: string, steps: number, body: (dir: string, data: string) => Promise<T>): Promise<T> {
  return withTempDir(prefix, async (dir) => {
    const data = join(dir, 'p.parquet');
    const c = mopo(['collect', '--env', 'pendulum', '--steps', String(steps), '--out', data, '--quiet']);
    assert.equal(c.code, 0, c.stderr);
    return body(dir, data);
  });
}

/** Runs the CLI and sends SIGINT once its stderr matches `when`; resolves with the exit code and stderr/stdout. */
async function interruptWhen(args: string[], when: RegExp): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += d));
  const code = await new Promise<number | null>((resolve) => {
    child.stderr.on('data', (d) => {
      stderr += d;
      if (when.test(stderr) && !child.killed) child.kill('SIGINT');
    });
    child.on('exit', (c) => resolve(c));
  });
  return { code, stderr, stdout };
}

test('--help lists every command; each command has its own --help', () => {
  const r = mopo(['--help']);
  assert.equal(r.code, 0, r.stderr);
  for (const c of ['start', 'inspect', 'bench']) assert.match(r.stdout, new RegExp(`mopo ${c}`));
  for (const c of ['start', 'inspect', 'bench']) {
    const h = mopo([c, '--help']);
    assert.equal(h.code, 0, h.stderr);
    assert.match(h.stdout, /Examples:/);
  }
});

test('unknown flags, missing commands and bad choices exit 2 with a usage hint', () => {
  for (const args of [['inspect', 'x.parquet', '--bogus'], [], ['bench', 'nope'], ['frobnicate'], ['bench', 'dense', '--backend', 'gpu']]) {
    const r = mopo(args);
    assert.equal(r.code, 2, `mopo ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /mopo --help/);
    assert.doesNotMatch(r.stderr, STACK);
  }
  assert.match(mopo(['inspect', 'x.parquet', '--bogus']).stderr, /Unknown argument: bogus/);
});

test('a missing input file is one paragraph naming the file, exit 2, no stack trace', () => {
  const r = mopo(['inspect', '/nonexistent/dir/data.parquet']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /\/nonexistent\/dir\/data\.parquet/);
  assert.doesNotMatch(r.stderr, STACK);
  assert.equal(r.stdout, '');
});

test('an invalid MOPO_BACKEND names the variable and the valid values', () => {
  const r = mopo(['bench', 'dense', '--json', '--seconds', '0.1'], { MOPO_BACKEND: 'tpu' });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /MOPO_BACKEND/);
  assert.match(r.stderr, /node, wasm, cpu/);
  assert.doesNotMatch(r.stderr, STACK);
});

test('collect writes a pendulum dataset, convert tees it to shards; inspect --json reports the same for both', async () => {
  const { existsSync, readdirSync } = await import('node:fs');
  await withTempDir('mopo-cli-', async (dir) => {
    const s = mopo(['collect', '--env', 'pendulum', '--policy', 'uniform', '--steps', '1000', '--seed', '3', '--num-envs', '1', '--out', join(dir, 'pendulum-random.parquet'), '--quiet']);
    assert.equal(s.code, 0, s.stderr);
    const c = mopo(['convert', join(dir, 'pendulum-random.parquet'), join(dir, 'shards'), '--quiet']);
    assert.equal(c.code, 0, c.stderr);
    for (const f of ['pendulum-random.parquet', 'shards/manifest.json', 'shards/shard-00000.arrow']) assert.ok(existsSync(join(dir, f)), f);
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp')), [], 'no temporary files left');
    for (const target of [join(dir, 'pendulum-random.parquet'), join(dir, 'shards')]) {
      const r = mopo(['inspect', target, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout);
      assert.equal(j.rows, 1000);
      assert.equal(j.episodes, 5);
      assert.equal(j.obsDim, 3);
      assert.equal(j.actDim, 1);
      assert.equal(j.terminals, 0);
      assert.equal(j.timeouts, 5);
      assert.deepEqual(j.nonFinite, { observation: 0, action: 0, reward: 0, next_observation: 0 });
      assert.ok(j.reward.max <= 0 && j.reward.min >= -16.3 && j.reward.mean < 0);
    }
  });
});

test('convert refuses non-finite input by default, naming column and row, and leaves no output', async () => {
  const { existsSync, readdirSync } = await import('node:fs');
  const { from } = await import('rxjs');
  const { TransitionBatch } = await import('../schemas/transition.js');
  const { writeTransitionsFile } = await import('../operators/writeTransitions.js');
  await withTempDir('mopo-cli-', async (dir) => {
    const b = TransitionBatch.allocate({ obsDim: 2, actDim: 1 }, 10);
    b.observation[2 * 7 + 1] = Number.NaN;
    b.timeout[9] = 1;
    const input = join(dir, 'nan.parquet');
    await writeTransitionsFile(input, from([b]));
    for (const out of [join(dir, 'out.parquet'), join(dir, 'shards')]) {
      const r = mopo(['convert', input, out, '--quiet']);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /nan\.parquet/);
      assert.match(r.stderr, /observation/);
      assert.match(r.stderr, /row 7/);
      assert.match(r.stderr, /--allow-non-finite/);
      assert.doesNotMatch(r.stderr, STACK);
      assert.equal(existsSync(out), false, `${out} must not exist`);
    }
    assert.deepEqual(readdirSync(dir), ['nan.parquet'], 'no temporary files');
    const ok = mopo(['convert', input, join(dir, 'out.parquet'), '--allow-non-finite', '--quiet']);
    assert.equal(ok.code, 0, ok.stderr);
    const j = JSON.parse(mopo(['inspect', join(dir, 'out.parquet'), '--json']).stdout);
    assert.equal(j.nonFinite.observation, 1);
    assert.equal(j.columns.observation.firstNonFiniteRow, 7);
  });
});

test('env check: every shared reference trajectory passes (exit 0); a perturbed one fails (exit 1)', async (t) => {
  const { existsSync, readFileSync, writeFileSync } = await import('node:fs');
  const refDir = join(dirname(CLI), '..', '..', '..', 'shared', 'reference', 'trajectories');
  if (!existsSync(refDir)) {
    t.skip(`no reference trajectories at ${refDir} (../shared is absent)`);
    return;
  }
  for (const env of ['halfcheetah', 'hopper', 'walker2d']) {
    const r = mopo(['env', 'check', join(refDir, `${env}.json`), '--json']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const j = JSON.parse(r.stdout);
    assert.equal(j.env, env);
    assert.ok(j.maxObsError <= 1e-6 && j.maxRewardError <= 1e-6 && j.terminationsMatch === true);
  }
  await withTempDir('mopo-envcheck-', async (dir) => {
    const traj = JSON.parse(readFileSync(join(refDir, 'hopper.json'), 'utf8'));
    // shift the recorded reward of one step by 1e-3: the check must notice
    const steps = traj.steps ?? traj.rewards;
    if (Array.isArray(traj.rewards)) traj.rewards[5] += 1e-3;
    else if (Array.isArray(steps) && typeof steps[5]?.reward === 'number') steps[5].reward += 1e-3;
    else assert.fail(`unknown trajectory layout: ${Object.keys(traj).join(', ')}`);
    writeFileSync(join(dir, 'bad.json'), JSON.stringify(traj));
    const r = mopo(['env', 'check', join(dir, 'bad.json'), '--json']);
    assert.equal(r.code, 1, r.stderr);
    assert.ok(JSON.parse(r.stdout).maxRewardError > 9e-4);
  });
});

test('sac writes a run directory whose policy collect accepts; a mismatched policy is refused', async () => {
  const { existsSync, readFileSync } = await import('node:fs');
  await withTempDir('mopo-sac-', async (dir) => {
    const r = mopo(['sac', '--env', 'pendulum', '--steps', '400', '--start-steps', '200', '--update-after', '200', '--eval-every', '200', '--eval-episodes', '1', '--out', join(dir, 'run'), '--quiet']);
    assert.equal(r.code, 0, r.stderr);
    for (const f of ['config.json', 'metrics.jsonl', 'learning-curve.svg', 'summary.json', 'checkpoint/sac.json', 'policy/sac.json']) assert.ok(existsSync(join(dir, 'run', f)), f);
    const lines = readFileSync(join(dir, 'run', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.filter((l) => l.kind === 'eval').length, 2);
    assert.equal(JSON.parse(r.stdout).updates, 250); // blocks of 50 at steps 200, 250, …, 400
    const c = mopo(['collect', '--env', 'pendulum', '--policy', join(dir, 'run', 'policy'), '--steps', '500', '--out', join(dir, 'p.parquet'), '--quiet']);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(JSON.parse(mopo(['inspect', join(dir, 'p.parquet'), '--json']).stdout).rows, 500);
    // --stop-at-return ends the run at the first evaluation that reaches it; --save-replay keeps the buffer
    const s2 = mopo(['sac', '--env', 'pendulum', '--steps', '400', '--start-steps', '200', '--update-after', '200', '--eval-every', '200', '--eval-episodes', '1', '--stop-at-return', '-100000', '--save-replay', '--out', join(dir, 'run2'), '--quiet']);
    assert.equal(s2.code, 0, s2.stderr);
    assert.equal(JSON.parse(s2.stdout).stoppedEarly, true);
    const replay = JSON.parse(mopo(['inspect', join(dir, 'run2', 'replay.parquet'), '--json']).stdout);
    assert.equal(replay.rows, 200);
    assert.equal(replay.episodes, 1);
    const bad = mopo(['collect', '--env', 'hopper', '--policy', join(dir, 'run', 'policy'), '--steps', '10', '--out', join(dir, 'h.parquet'), '--quiet']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /maps 3 observations to 1 actions, but hopper has 11 and 3/);
    assert.equal(existsSync(join(dir, 'h.parquet')), false);
  });
});

test('a reader that closes early (mopo runs ls | head -1) ends the command quietly with exit 0', async () => {
  const { spawn } = await import('node:child_process');
  await withTempDir('mopo-epipe-', async (dir) => {
    const child = spawn(process.execPath, [CLI, 'runs', 'ls', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // closed before the command writes: its write meets EPIPE
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((res) => child.on('close', res));
    assert.equal(code, 0, stderr);
    assert.doesNotMatch(stderr, STACK);
  });
});

test('train-dynamics trains, saves the ensemble and reports per-member validation', async () => {
  const { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } = await import('node:fs');
  await withTempDir('mopo-dyn-', async (dir) => {
    mkdirSync(join(dir, 'start'));
    assert.equal(mopo(['collect', '--env', 'pendulum', '--steps', '3000', '--out', join(dir, 'start', 'pendulum-random.parquet'), '--quiet']).code, 0);
    const r = mopo(['train-dynamics', '--dataset', join(dir, 'start', 'pendulum-random.parquet'), '--members', '3', '--elites', '2', '--max-epochs', '2', '--out', join(dir, 'dyn'), '--quiet']);
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout);
    assert.equal(rep.epochs, 2);
    assert.equal(rep.validation.mse.length, 3);
    assert.equal(rep.elites.length, 2);
    assert.ok(rep.validation.rows > 300 && rep.validation.rows < 900, `holdout ≈ 20 % of 3000: ${rep.validation.rows}`);
    for (const f of ['config.json', 'metrics.jsonl', 'validation.svg', 'report.json', 'ensemble/ensemble.json']) assert.ok(existsSync(join(dir, 'dyn', f)), f);
    const ls = mopo(['runs', 'ls', dir, '--json']);
    assert.equal(ls.code, 0, ls.stderr);
    const listed = JSON.parse(ls.stdout) as { run: string; kind: string; epochs: number; status: string; bestValidationMse: number }[];
    assert.deepEqual(listed.map((r) => [r.run, r.kind, r.epochs, r.status]), [[join(dir, 'dyn'), 'dynamics', 2, 'done']], 'the dataset directory is not a run');
    assert.equal(listed[0]!.bestValidationMse, Math.min(...rep.validation.mse.map(Number)), 'the saved ensemble\'s best member');
    // runs plot of a train-dynamics run: each member's validation MSE by epoch; mixed kinds refused.
    const plot = mopo(['runs', 'plot', join(dir, 'dyn'), '--out', join(dir, 'val.svg')]);
    assert.equal(plot.code, 0, plot.stderr);
    const valSvg = readFileSync(join(dir, 'val.svg'), 'utf8');
    assert.equal((valSvg.match(/<polyline/g) ?? []).length, 3, 'one curve a member');
    assert.match(valSvg, />member 2</);
    assert.match(valSvg, />validation MSE \(raw Δs, r\)</, 'the default model predicts raw targets; the axis says so');
    assert.match(readFileSync(join(dir, 'dyn', 'validation.svg'), 'utf8'), />validation MSE \(raw Δs, r\)</);
    // Two runs in different output spaces: the axis does not claim one, each curve names its own.
    cpSync(join(dir, 'dyn'), join(dir, 'dyn-normalized'), { recursive: true });
    const cfg = JSON.parse(readFileSync(join(dir, 'dyn-normalized', 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'dyn-normalized', 'config.json'), JSON.stringify({ ...cfg, ensemble: { ...cfg.ensemble, targets: 'normalized' } }));
    const two = mopo(['runs', 'plot', join(dir, 'dyn'), join(dir, 'dyn-normalized'), '--out', join(dir, 'two.svg')]);
    assert.equal(two.code, 0, two.stderr);
    const twoSvg = readFileSync(join(dir, 'two.svg'), 'utf8');
    assert.match(twoSvg, />validation MSE \(each run in its own space\)</);
    assert.match(twoSvg, />dyn \(raw\)</);
    assert.match(twoSvg, />dyn-normalized \(normalized\)</);
    const mixed = mopo(['runs', 'plot', join(dir, 'dyn'), join(dir, 'start'), '--out', join(dir, 'val.svg')]);
    assert.equal(mixed.code, 2);
    assert.match(mixed.stderr, /start: not a train-dynamics run; plot train-dynamics runs and MOPO runs separately/);
    // The diagnostics on the same run: the held-out rows, the linear baseline, the simulator.
    const d = mopo(['diagnose', 'dynamics', '--run', join(dir, 'dyn'), '--states', '200', '--horizon', '3', '--json', '--quiet']);
    assert.equal(d.code, 0, d.stderr);
    const diag = JSON.parse(d.stdout);
    assert.equal(diag.env, 'pendulum');
    assert.equal(diag.validation.rows, rep.validation.rows, 'the same held-out rows as training');
    assert.ok(diag.validation.linearMse > 0 && Number.isFinite(diag.validation.ratio));
    const close = (a: number, b: number, rel: number) => Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b));
    assert.ok(diag.validation.eliteMeanMse > 0, `eliteMeanMse ${diag.validation.eliteMeanMse}`);
    assert.ok(close(diag.validation.ratio, diag.validation.eliteMeanMse / diag.validation.linearMse, 1e-12), `ratio ${diag.validation.ratio} vs ${diag.validation.eliteMeanMse} / ${diag.validation.linearMse}`);
    // the saved ensemble scored on the same held-out rows gives training's final per-member MSE
    assert.equal(diag.validation.memberMse.length, 3);
    // (bit for bit: the same float32 weights evaluated on the same rows in the same order)
    assert.deepEqual(diag.validation.memberMse, rep.validation.mse);
    assert.equal(diag.simulator.states, 200);
    assert.ok(diag.simulator.datasetAgreementMaxAbs < 1e-4, `the dataset was made by this simulator: ${diag.simulator.datasetAgreementMaxAbs}`);
    assert.equal(diag.simulator.obsRmse.length, 3);
    for (const e of diag.simulator.obsRmse) assert.ok(Number.isFinite(e) && e >= 0, `obsRmse ${diag.simulator.obsRmse}`);
    assert.equal(diag.simulator.memberCalibration.length, 3);
    const shares = [...diag.simulator.memberCalibration, diag.simulator.mixtureCalibration, ...diag.simulator.mixtureCalibrationPerDim, diag.simulator.ideal] as { within1: number; within2: number }[];
    assert.equal(diag.simulator.mixtureCalibrationPerDim.length, 4, '3 next-obs dimensions, then reward');
    for (const c of shares) {
      assert.ok(c.within1 >= 0 && c.within1 <= 1 && c.within2 >= 0 && c.within2 <= 1, `calibration shares in [0, 1]: ${JSON.stringify(c)}`);
      assert.ok(c.within1 <= c.within2, `±1σ is inside ±2σ: ${JSON.stringify(c)}`);
    }
    assert.equal(diag.multiStep.eliteMean.length, 3);
    assert.ok(diag.multiStep.starts > 100);
    for (const f of ['diagnose-dynamics.json', 'diagnose-dynamics.svg']) assert.ok(existsSync(join(dir, 'dyn', f)), f);
    // The default is the official code's loss (raw targets, NLL averaged over dims); the other is
    // recorded in the config too, and the diagnostic scores members in the model's own space
    // (training's numbers again) and says which.
    assert.deepEqual([diag.validation.memberTargets, JSON.parse(readFileSync(join(dir, 'dyn', 'config.json'), 'utf8')).ensemble.nllReduction], ['raw', 'mean']);
    const norm = mopo(['train-dynamics', '--dataset', join(dir, 'start', 'pendulum-random.parquet'), '--members', '3', '--elites', '2', '--max-epochs', '1', '--targets', 'normalized', '--nll-reduction', 'sum', '--init', 'truncated-normal', '--patience', '6', '--out', join(dir, 'dyn-norm'), '--quiet']);
    assert.equal(norm.code, 0, norm.stderr);
    const normRep = JSON.parse(norm.stdout);
    const normCfg = JSON.parse(readFileSync(join(dir, 'dyn-norm', 'config.json'), 'utf8'));
    assert.deepEqual([normCfg.ensemble.targets, normCfg.ensemble.nllReduction, normCfg.ensemble.init, normCfg.ensemble.patience], ['normalized', 'sum', 'truncated-normal', 6]);
    const dNorm = mopo(['diagnose', 'dynamics', '--run', join(dir, 'dyn-norm'), '--states', '50', '--horizon', '2', '--quiet']);
    assert.equal(dNorm.code, 0, dNorm.stderr);
    const memberLine = /member MSE as trained \(normalized Δs and r\) ([\d. ]+)/.exec(dNorm.stdout);
    assert.ok(memberLine, dNorm.stdout);
    assert.deepEqual(memberLine[1]!.trim().split(' ').map(Number), normRep.validation.mse.map((x: number) => Number(x.toFixed(4))));
    const lsBoth = mopo(['runs', 'ls', dir]);
    assert.match(lsBoth.stdout, /dyn {2}dynamics .* best val MSE [\d.]+ \(raw units\)/);
    assert.doesNotMatch(lsBoth.stdout, /dyn-norm {2}dynamics .*raw units/);
    const wrong = mopo(['diagnose', 'dynamics', '--run', join(dir, 'start'), '--quiet']);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /no ensemble here/);
    const bad = mopo(['train-dynamics', '--dataset', join(dir, 'start', 'pendulum-random.parquet'), '--members', '3', '--elites', '4', '--quiet']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--elites must be an integer from 1 to --members \(3\)/);
  });
});

test('start (npm start) on a given small dataset: a quick MOPO run whose last line is the score', async () => {
  const { existsSync } = await import('node:fs');
  await withPendulumData('mopo-start-', 3000, async (dir, data) => {
    // A whole MOPO run (ensemble, 1,000 SAC updates): minutes on a busy shared machine.
    const r = mopo(['start', '--dataset', data, '--out', join(dir, 'run'), '--epochs', '1'], {}, 480_000);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[lines.length - 1]!, /^score: n\/a \(return -?\d+\.\d ± \d+\.\d\)$/, 'pendulum has no D4RL score; the return is printed');
    assert.match(r.stderr, /mopo \[#+\] 100% 1\/1 epochs/);
    for (const f of ['config.json', 'dynamics/ensemble/ensemble.json', 'metrics.jsonl', 'learning-curve.svg', 'summary.json']) assert.ok(existsSync(join(dir, 'run', f)), f);
    // runs ls / runs show: the run, its stages and its last evaluation.
    const ls = mopo(['runs', 'ls', dir]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /\/run {2}pendulum {2}1 epochs {2}return -?\d+\.\d {2}done {2}\(checkpoint epoch-000000\)/);
    const show = mopo(['runs', 'show', join(dir, 'run'), '--json']);
    assert.equal(show.code, 0, show.stderr);
    const info = JSON.parse(show.stdout) as { status: string; stages: Record<string, { epochs?: number; updates?: number }> };
    assert.equal(info.status, 'done');
    assert.deepEqual(Object.keys(info.stages), ['dynamics', 'sac']);
    assert.equal(info.stages['sac']!.updates, 1000);
    const notRun = mopo(['runs', 'show', data]);
    assert.equal(notRun.code, 2);
    assert.match(notRun.stderr, /not a run directory/);
    // runs plot: the run's evaluation curve with a labelled reference line (pendulum: the return).
    const svgPath = join(dir, 'curves.svg');
    const plot = mopo(['runs', 'plot', join(dir, 'run'), '--reference=-150=a target', '--out', svgPath]);
    assert.equal(plot.code, 0, plot.stderr);
    const { readFileSync } = await import('node:fs');
    const svg = readFileSync(svgPath, 'utf8');
    assert.match(svg, /^<svg /);
    assert.match(svg, />run</, 'the run is named in the legend');
    assert.match(svg, />a target</, 'the reference line is labelled');
    assert.match(svg, />return</, 'no D4RL score for pendulum: the return');
    const badRef = mopo(['runs', 'plot', join(dir, 'run'), '--reference', 'high=x', '--out', svgPath]);
    assert.equal(badRef.code, 2);
    assert.match(badRef.stderr, /--reference "high=x": expected <value>=<label>/);
    const noRun = mopo(['runs', 'plot', dir, '--out', svgPath]);
    assert.equal(noRun.code, 2);
    assert.match(noRun.stderr, /no metrics\.jsonl/);
  });
});

test('train-dynamics: Ctrl-C stops after the epoch with its state saved and the resume command; --resume finishes every epoch once', async () => {
  const { existsSync, readFileSync, writeFileSync } = await import('node:fs');
  await withPendulumData('mopo-dyn-int-', 2000, async (dir, data) => {
    const out = join(dir, 'dyn');
    const args = ['train-dynamics', '--dataset', data, '--out', out, '--members', '3', '--elites', '2', '--max-epochs', '4', '--workers', '1'];
    const { code, stderr } = await interruptWhen(args, /epoch 0: /);
    assert.equal(code, 130, stderr);
    assert.match(stderr, /interrupted \(SIGINT\); stopping at the end of this epoch/);
    assert.match(stderr, /the ensemble training stopped after epoch [0-2]; its state is saved in .*checkpoint; continue with: mopo train-dynamics --dataset .* --resume/);
    assert.doesNotMatch(stderr, STACK);
    assert.ok(existsSync(join(out, 'checkpoint')), 'the training state is kept');
    assert.ok(!existsSync(join(out, 'report.json')), 'no report for an unfinished training');
    const over = mopo([...args, '--quiet']);
    assert.notEqual(over.code, 0, 'a new training does not overwrite an unfinished one');
    assert.match(over.stderr, /dyn holds an unfinished ensemble training \(checkpoint\/\); continue it with --resume, or choose another --out/);
    assert.doesNotMatch(over.stderr, STACK);
    // runs show knows a train-dynamics run (it once listed it as a SAC run of 0 updates).
    const unfinished = JSON.parse(mopo(['runs', 'show', out, '--json']).stdout) as { kind: string; status: string; epochs: number; seconds: number | null; epochsSinceImprovement: number; patience: number };
    assert.deepEqual([unfinished.kind, unfinished.status, unfinished.patience], ['dynamics', 'killed', 5]);
    assert.equal(unfinished.epochsSinceImprovement, 0, 'every member improves in its first epochs');
    const secondsBefore = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').reduce((sum, l) => sum + (JSON.parse(l) as { seconds: number }).seconds, 0);
    assert.equal(unfinished.seconds, Math.round(secondsBefore), 'training time so far, from the logged epochs');
    // Epoch 0 as if it had taken 1000 s in an earlier session: the final report must count it.
    const logged = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { seconds: number });
    logged[0]!.seconds = 1000;
    writeFileSync(join(out, 'metrics.jsonl'), logged.map((l) => JSON.stringify(l) + '\n').join(''));
    assert.ok(unfinished.epochs >= 1 && unfinished.epochs <= 3, `epochs ${unfinished.epochs}`);
    const resumed = mopo([...args, '--resume', '--quiet']);
    assert.equal(resumed.code, 0, resumed.stderr);
    const epochs = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { epoch: number }).epoch);
    assert.deepEqual(epochs, epochs.map((_, i) => i), 'every epoch exactly once');
    assert.ok(existsSync(join(out, 'ensemble', 'ensemble.json')));
    assert.ok(!existsSync(join(out, 'checkpoint')), 'the training state is removed when done');
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { seconds: number; validation: { mse: number[] } };
    const secondsAll = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').reduce((sum, l) => sum + (JSON.parse(l) as { seconds: number }).seconds, 0);
    assert.ok(secondsAll >= 1000 && report.seconds >= Math.floor(secondsAll), `the report's wall time (${report.seconds} s) counts the epochs before the resume too (${secondsAll} s)`);
    const shown = mopo(['runs', 'show', out]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /\(train-dynamics\): done\n {2}dynamics +\{.*"status":"done","epochs":4,"stoppedBy":"maxEpochs","seconds":\d+/);
    assert.match(shown.stdout, new RegExp(`"bestValidationMse":${Math.min(...report.validation.mse)}`), 'the saved ensemble\'s validation MSE');
    assert.doesNotMatch(shown.stdout, /sac/);
  });
});

test('train-dynamics --resume --max-epochs at the epochs done: finishes at once with the saved ensemble and its report', async () => {
  const { existsSync, readFileSync } = await import('node:fs');
  await withPendulumData('mopo-dyn-cap-', 2000, async (dir, data) => {
    const out = join(dir, 'dyn');
    const args = ['train-dynamics', '--dataset', data, '--out', out, '--members', '3', '--elites', '2', '--max-epochs', '6', '--workers', '1'];
    const { code, stderr } = await interruptWhen(args, /epoch 0: /);
    assert.equal(code, 130, stderr);
    const before = readFileSync(join(out, 'metrics.jsonl'), 'utf8');
    const done = before.trim().split('\n').length;
    const finished = mopo([...args.slice(0, -4), '--max-epochs', '1', '--resume', '--quiet']);
    assert.equal(finished.code, 0, finished.stderr);
    assert.equal(readFileSync(join(out, 'metrics.jsonl'), 'utf8'), before, 'no epoch trained');
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { epochs: number; stoppedBy: string };
    assert.deepEqual([report.epochs, report.stoppedBy], [done, 'maxEpochs']);
    assert.ok(existsSync(join(out, 'ensemble', 'ensemble.json')));
    assert.ok(!existsSync(join(out, 'checkpoint')), 'the training state is removed');
  });
});

test('train: Ctrl-C stops at the epoch end with a checkpoint and the resume command; --resume finishes; bad flags are one-line errors', async () => {
  const { existsSync, readFileSync } = await import('node:fs');
  await withPendulumData('mopo-train-', 3000, async (dir, data) => {
    const run = join(dir, 'run');
    const args = ['train', '--dataset', data, '--preset', 'quick', '--epochs', '8', '--epoch-length', '40', '--rollout-batch', '500', '--eval-every', '1', '--eval-episodes', '2', '--sac-init', 'glorot-uniform', '--rollout-lag', '0', '--out', run];
    // The SAC epoch line (the ensemble's own epoch lines say "val MSE").
    const { code, stderr, stdout } = await interruptWhen(args, /epoch 0: .*updates\/s/);
    assert.equal(code, 130, stderr);
    assert.match(stderr, /interrupted \(SIGINT\); stopping at the end of this epoch/);
    assert.match(stderr, /continue with: mopo train --resume /);
    assert.doesNotMatch(stderr, STACK);
    assert.ok(existsSync(join(run, 'checkpoints', 'latest.json')));
    const stoppedAt = JSON.parse(readFileSync(join(run, 'checkpoints', 'latest.json'), 'utf8')).epoch as number;
    assert.ok(stoppedAt < 7, `stopped early: ${stoppedAt}`);
    assert.equal(stdout.trim().split('\n').pop()?.startsWith('score: '), true, 'the score of the last evaluation is still printed');
    assert.match(mopo(['runs', 'ls', dir]).stdout, new RegExp(`/run {2}pendulum {2}${stoppedAt + 1} of 8 epochs {2}return -?\\d+\\.\\d {2}stopped`), 'how far of how many');

    const bad = mopo(['train', '--resume', run, '--lambda', '2', '--quiet']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--resume continues a run with its own config\.json; drop --lambda/);
    const again = mopo(['train', ...args.slice(1), '--quiet']);
    assert.equal(again.code, 2, 'a run directory with checkpoints is not overwritten');
    assert.match(again.stderr, /already holds a run with checkpoints; continue it with --resume/);

    const resumed = mopo(['train', '--resume', run, '--quiet']);
    assert.equal(resumed.code, 0, resumed.stderr);
    const resumedConfig = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8'));
    assert.deepEqual([resumedConfig.sac.init, resumedConfig.learner.rolloutLag], ['glorot-uniform', 0], 'the flags are in the config the resume ran');
    assert.match(resumed.stdout.trim().split('\n').pop()!, /^score: n\/a \(return -?\d+\.\d ± \d+\.\d\)$/);
    const lines = readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { epoch: number });
    assert.deepEqual(lines.map((l) => l.epoch), Array.from({ length: 8 }, (_, i) => i), 'every epoch exactly once');

    const missing = mopo(['train', '--dataset', join(dir, 'nope.parquet'), '--quiet']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--dataset .*nope\.parquet: no such file/);
    const penalty = mopo(['train', '--dataset', data, '--penalty', 'bogus', '--quiet']);
    assert.equal(penalty.code, 2);
    assert.match(penalty.stderr, /penalty/);
    const init = mopo(['train', '--dataset', data, '--sac-init', 'glorot', '--quiet']);
    assert.equal(init.code, 2);
    assert.match(init.stderr, /sac-init.*Given: "glorot".*Choices: "uniform", "truncated-normal", "glorot-uniform"/s);
    const task = mopo(['train', '--dataset', data, '--task', 'expert', '--quiet']);
    assert.equal(task.code, 2);
    assert.match(task.stderr, /task.*Given: "expert".*Choices: "random", "medium", "medium-replay", "medium-expert"/s);
    const lag = mopo(['train', '--dataset', data, '--rollout-lag', '2', '--quiet']);
    assert.equal(lag.code, 2);
    assert.match(lag.stderr, /rollout-lag.*Given: 2.*Choices: 0, 1/s);
  });
});

test('a full disk mid-write: one clear line, exit 2, no output and no temporary file left', async () => {
  const { readdirSync, existsSync } = await import('node:fs');
  const preload = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures', 'enospc.mjs');
  await withPendulumData('mopo-enospc-', 20000, async (dir, data) => {
    for (const out of [join(dir, 'out.parquet'), join(dir, 'shards')]) {
      const r = spawnSync(process.execPath, ['--import', preload, CLI, 'convert', data, out, '--quiet'], { encoding: 'utf8', env: { ...process.env, MOPO_DISK_BUDGET: '100000' } });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /^mopo: .*the disk is full.*(nothing was written|Nothing partial was kept)/);
      assert.doesNotMatch(r.stderr, STACK);
      if (out.endsWith('.parquet')) assert.ok(!existsSync(out), 'no output file');
      const left = readdirSync(dir).filter((f) => f.includes('.tmp'));
      assert.deepEqual(left, [], 'no temporary file');
      if (existsSync(join(dir, 'shards'))) assert.deepEqual(readdirSync(join(dir, 'shards')), [], 'no partial shard set');
    }
  });
});

test('every option and positional of every command and subcommand has a description in --help', async () => {
  const { helpText } = await import('../pipeline/cli.js');
  // Command names from a help's "Commands:" block ("  mopo runs ls [dir]   …" → "ls").
  const subcommands = (help: string, path: string[]): string[] => {
    const block = help.split(/\n\n/).find((b) => b.startsWith('Commands:'));
    if (!block) return [];
    const prefix = ['mopo', ...path].join(' ') + ' ';
    return block
      .split('\n')
      .slice(1)
      .map((l) => l.trim())
      .filter((l) => l.startsWith(prefix))
      .map((l) => l.slice(prefix.length).split(/\s+/)[0]!);
  };
  const missing: string[] = [];
  const seen: string[] = [];
  const walk = async (path: string[]): Promise<void> => {
    const help = await helpText(path);
    seen.push(path.join(' '));
    // An entry without a description goes straight from its name (indented 2 or 6, in the first
    // column; deeper lines are wrapped descriptions) to the bracketed type, on one line.
    for (const line of help.split('\n')) {
      const m = /^(?: {2}| {6})(-\w, --[\w-]+|--[\w-]+|\w[\w-]*)\s+\[(?:string|number|boolean|array)\]/.exec(line);
      if (m) missing.push(`mopo ${path.join(' ')}: ${m[1]}`);
    }
    for (const c of subcommands(help, path)) await walk([...path, c]);
  };
  await walk([]);
  assert.ok(seen.length >= 20, `walked only ${seen.join(', ')}`);
  for (const c of ['train', 'runs plot', 'diagnose penalty', 'bench', 'env check']) assert.ok(seen.includes(c), `${c} was not reached: ${seen.join(', ')}`);
  assert.deepEqual(missing, [], 'options without a description');
});
