// `mopo diagnose penalty`: the statistics with exact answers (erf, the W₁ of a Gaussian mixture to a
// point against Monte Carlo, Pearson and tie-corrected Spearman), the scatter plot, an end-to-end
// run on a tiny Pendulum MOPO run (JSON + self-contained HTML; a run without a checkpoint falls back
// to a random policy), and the page rendered by headless Chromium when it is installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync, existsSync, readFileSync, statSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { withPendulumDataset } from './pendulumFixture.js';
import { parsePipeline } from '../pipeline/pipelineFile.js';
import { runPipeline } from '../pipeline/runPipeline.js';
import { UserError } from '../pipeline/errors.js';
import { Rng } from '../pipeline/random.js';
import { scatterSvg, logTicks } from '../pipeline/plot.js';
import {
  erf,
  normalCdf,
  gaussianAbsDeviation,
  w1MixtureToPoint,
  pearson,
  spearman,
  averageRanks,
  quantile,
  diagnosePenalty,
  TRUE_ERRORS,
  type PenaltyDiagnostics,
} from '../pipeline/diagnose/penalty.js';

const close = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (tol ${tol})`);

test('erf and Φ match reference values', () => {
  const ref: Array<[number, number]> = [
    [0, 0],
    [0.1, 0.1124629160182849],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [2, 0.9953222650189527],
    [2.9, 0.9999589021219005],
    [3, 0.9999779095030014],
    [3.5, 0.9999992569016276],
    [5, 0.9999999999984626],
  ];
  for (const [x, v] of ref) {
    close(erf(x), v, 1e-14, `erf(${x})`);
    close(erf(-x), -v, 1e-14, `erf(${-x})`);
  }
  close(1 - erf(4), 1.541725790028002e-8, 5e-16, 'erfc(4) (absolute: 1 − erf rounds)');
  close(normalCdf(1.959963984540054), 0.975, 1e-12, 'Φ(1.96)');
});

test('W1 of a Gaussian mixture to a point: closed form against Monte Carlo', () => {
  // Special cases first: σ = 0 is |μ − r|; μ = r is σ·√(2/π); far away it tends to |μ − r|.
  close(gaussianAbsDeviation(1.5, 0, -0.5), 2, 1e-15, 'σ = 0');
  close(gaussianAbsDeviation(2, 3, 2), 3 * Math.sqrt(2 / Math.PI), 1e-14, 'μ = r');
  close(gaussianAbsDeviation(100, 1, 0), 100, 1e-12, 'far');
  close(gaussianAbsDeviation(-100, 1, 0), 100, 1e-12, 'far, negative');
  const rng = new Rng(7, 'w1-mc');
  const cases = [
    { mu: [0.3], sd: [1.2], r: 0.1 },
    { mu: [-1, 0.5, 2], sd: [0.3, 1, 0.05], r: 0.4 },
    { mu: [5, 5.2, 4.9, 5.1, 5.05], sd: [0.01, 0.2, 0.5, 0.02, 1], r: -3 },
    { mu: [0, 0], sd: [1, 4], r: 1 },
  ];
  for (const c of cases) {
    const N = 400_000;
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < N; i++) {
      const k = rng.int(c.mu.length);
      const v = Math.abs(c.mu[k]! + c.sd[k]! * rng.normal() - c.r);
      s += v;
      s2 += v * v;
    }
    const mc = s / N;
    const se = Math.sqrt((s2 / N - mc * mc) / N);
    const exact = w1MixtureToPoint(c.mu, c.sd, c.r);
    assert.ok(Math.abs(exact - mc) < 4 * se + 1e-12, `mixture ${JSON.stringify(c)}: closed form ${exact}, Monte Carlo ${mc} ± ${se}`);
  }
  // Weights: a weighted mixture equals the weighted average of the components.
  const w = w1MixtureToPoint([0, 3], [1, 0.5], 1, [0.25, 0.75]);
  close(w, 0.25 * gaussianAbsDeviation(0, 1, 1) + 0.75 * gaussianAbsDeviation(3, 0.5, 1), 1e-15, 'weights');
});

test('Pearson and Spearman (ties get average ranks) on known data', () => {
  close(pearson([1, 2, 3, 4, 5], [2, 4, 5, 4, 5])!, 0.7745966692414834, 1e-12, 'pearson');
  assert.deepEqual(Array.from(averageRanks([3, 1, 4, 1, 5])), [3, 1.5, 4, 1.5, 5]);
  assert.deepEqual(Array.from(averageRanks([2, 2, 2])), [2, 2, 2]);
  // scipy.stats.spearmanr([1, 2, 2, 3], [1, 3, 2, 4]) = 0.9486832980505138
  close(spearman([1, 2, 2, 3], [1, 3, 2, 4])!, 0.9486832980505138, 1e-12, 'spearman with ties');
  // scipy.stats.spearmanr([1, 1, 2, 2, 3], [5, 5, 4, 4, 1]) = -1 (ties on both sides, monotone decreasing)
  close(spearman([1, 1, 2, 2, 3], [5, 5, 4, 4, 1])!, -1, 1e-12, 'spearman, ties both sides');
  // Invariant under a monotone transform; Pearson is not.
  const x = [0.1, 0.5, 1, 2, 3, 5, 8];
  close(spearman(x, x.map(Math.exp))!, 1, 1e-12, 'monotone');
  assert.ok(pearson(x, x.map(Math.exp))! < 0.95);
  assert.equal(pearson([1, 1, 1], [1, 2, 3]), null, 'a constant side has no correlation');
  assert.equal(spearman([1, 2], [2, 1]), null, 'fewer than 3 pairs');
  assert.equal(quantile([1, 2, 3, 4], 0.5), 2.5);
  assert.equal(quantile([1, 2, 3, 4], 1), 4);
  assert.equal(quantile([], 0.5), null);
});

test('scatterSvg: log axes drop non-positive points and say so; reference line; escaping', () => {
  const svg = scatterSvg({
    title: 'u < e',
    xLabel: 'u',
    yLabel: 'e',
    xScale: 'log',
    yScale: 'log',
    series: [
      { name: 'a', x: [0.01, 0.1, 1, 10], y: [0.02, 0.3, 0, 5] },
      { name: 'b', x: [1, 2], y: [Number.NaN, 1] },
    ],
    lines: [{ slope: 1, label: 'y = x' }],
  });
  assert.ok(svg.startsWith('<svg'));
  assert.ok(svg.includes('u &lt; e'));
  assert.equal((svg.match(/<circle cx="[\d.]+" cy="[\d.]+" r="2"\/>/g) ?? []).length, 4, 'four drawable points');
  assert.ok(svg.includes('2 points ≤ 0 or non-finite not shown'));
  assert.ok(svg.includes('stroke-dasharray="5 4"'), 'the reference line');
  assert.ok(!svg.includes('NaN'));
  assert.deepEqual(logTicks(0.001, 10), [0.001, 0.01, 0.1, 1, 10]);
  assert.deepEqual(logTicks(0.5, 20), [0.5, 1, 2, 5, 10, 20]);
  assert.deepEqual(logTicks(1, 10), [1, 2, 5, 10]);
});

function chromiumPath(): string | null {
  for (const name of ['chromium', 'chromium-browser']) {
    const r = spawnSync('which', [name], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  return null;
}

test('diagnose penalty end to end on a tiny Pendulum MOPO run: JSON, self-contained HTML, random-policy fallback', { timeout: 120_000 }, async (t) => {
  await withPendulumDataset('mopo-penalty-', { steps: 2000, seed: 1 }, async ({ dir, dataset, backend }) => {
    const doc = {
      env: 'pendulum',
      seed: 3,
      source: { dataset },
      stages: [
        { stage: 'dynamics', members: 3, elites: 2, hidden: [32, 32], maxEpochs: 2, workers: 1 },
        { stage: 'rollout', batch: 100, horizon: 3, lambda: 1, every: 30 },
        { stage: 'sac', epochs: 2, hidden: [32, 32], batchSize: 64 },
        { stage: 'evaluate', every: 2, episodes: 1 },
      ],
    };
    const run = join(dir, 'run');
    await runPipeline(run, parsePipeline(doc, 'test pipeline'), { backend, quiet: true });
    assert.ok(existsSync(join(run, 'checkpoints', 'latest.json')));

    const r = await diagnosePenalty(run, { states: 150, starts: 80, referenceRows: 1000, w1Samples: 20, seed: 1 });
    const onDisk = JSON.parse(readFileSync(join(run, 'diagnose-penalty.json'), 'utf8')) as PenaltyDiagnostics;
    assert.equal(onDisk.overall.n, r.overall.n);
    assert.equal(r.policy.source, 'checkpoint');
    assert.equal(r.env, 'pendulum');
    assert.equal(r.lambda, 1);
    // 3 members, 2 elites: every kind over all members and over the elites; the run's one marked.
    assert.deepEqual(r.estimators.map((e) => e.name), ['max-aleatoric/all', 'max-aleatoric/elites', 'disagreement/all', 'disagreement/elites', 'ensemble-variance/all', 'ensemble-variance/elites']);
    assert.deepEqual(r.estimators.filter((e) => e.configured).map((e) => e.name), ['max-aleatoric/all']);
    // The pendulum never terminates and its state is always observable: every pair is simulated.
    assert.equal(r.states.dataset, 150);
    assert.deepEqual(r.states.rolloutPerStep, [80, 80, 80]);
    assert.equal(r.states.rollout, 240);
    // What SAC sees from the rollouts: r − λ·u with the run's λ (1), u the run's estimator on the same rows.
    const rr = r.rolloutRewards!;
    assert.ok(Math.abs(rr.penalized - (rr.model - 1 * rr.penalty)) < 1e-4 * (1 + Math.abs(rr.model)), JSON.stringify(rr));
    assert.ok(Math.abs(rr.penalty - r.bySource.rollout!.estimators['max-aleatoric/all']!.mean) < 1e-4 * rr.penalty, `${rr.penalty} vs ${r.bySource.rollout!.estimators['max-aleatoric/all']!.mean}`);
    assert.equal(r.states.skippedInexact + r.states.skippedNonFinite, 0);
    assert.equal(r.overall.n, 390);
    assert.deepEqual(r.byStep.map((s) => [s.step, s.n]), [[1, 80], [2, 80], [3, 80]]);
    assert.equal(r.byDistance.length, 5);
    assert.equal(r.byDistance.reduce((s, b) => s + b.n, 0), 390, 'the distance bins partition the pairs');
    assert.equal(r.rows.source.length, 390);
    for (const e of r.estimators) {
      const s = r.overall.estimators[e.name]!;
      for (const err of TRUE_ERRORS) {
        for (const v of [s.pearson[err], s.spearman[err]]) assert.ok(v === null || (v >= -1 && v <= 1), `${e.name}/${err}: correlation ${v}`);
        assert.ok(s.coverage[err] >= 0 && s.coverage[err] <= 1);
      }
      assert.ok(r.rows.estimators[e.name]!.every((u) => u >= 0));
    }
    // Errors: W₁ ≥ |mean error| (Jensen), per pair; distances ≥ 0, rollouts farther than the data on average.
    const E = r.rows.errors;
    for (let i = 0; i < r.rows.source.length; i++) {
      assert.ok(E.rewardW1[i]! >= E.reward[i]! * (1 - 1e-5) - 1e-9, `pair ${i}: W1(r) ${E.rewardW1[i]} < |Δr| ${E.reward[i]}`);
      assert.ok(E.transition[i]! >= E.obs[i]! * (1 - 1e-5));
      assert.ok(r.rows.distance[i]! >= 0);
    }
    assert.ok(r.byStep[2]!.distance.mean > r.bySource.dataset!.distance.mean, `step 3 (${r.byStep[2]!.distance.mean}) farther from the data than dataset states (${r.bySource.dataset!.distance.mean})`);

    // The page: self-contained (no script, no external resource), with the plots inline.
    const htmlPath = join(run, 'diagnose-penalty.html');
    const html = readFileSync(htmlPath, 'utf8');
    const svgs = (html.match(/<svg /g) ?? []).length;
    assert.equal(svgs, 6 * 2 + 6 + 6, 'two scatter plots an estimator, six charts over the horizon and six over distance');
    assert.ok(!/<script|<link|<img|src=|url\(/i.test(html), 'no script or external resource');
    assert.deepEqual([...new Set(html.match(/https?:\/\/[^"'\s)]+/g) ?? [])], ['http://www.w3.org/2000/svg'], 'no URL but the SVG namespace');
    assert.ok(html.includes('max-aleatoric/all *'));

    await t.test('headless Chromium renders the page', { skip: chromiumPath() === null ? 'chromium is not installed' : false }, () => {
      const chromium = chromiumPath()!;
      const profile = join(dir, 'chromium-profile');
      mkdirSync(profile);
      const common = ['--headless', '--disable-gpu', '--no-sandbox', '--disable-dev-shm-usage', `--user-data-dir=${profile}`, '--window-size=1200,2000'];
      const dom = spawnSync(chromium, [...common, '--dump-dom', `file://${htmlPath}`], { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024 });
      assert.equal(dom.status, 0, `chromium --dump-dom failed: ${dom.stderr}`);
      assert.equal((dom.stdout.match(/<svg /g) ?? []).length, svgs, 'every SVG in the rendered DOM');
      assert.ok((dom.stdout.match(/<circle /g) ?? []).length > 100, 'the scatter points in the DOM');
      assert.ok(dom.stdout.includes('Does the penalty bound the model error?'));
      const png = join(dir, 'page.png');
      const shot = spawnSync(chromium, [...common, `--screenshot=${png}`, `file://${htmlPath}`], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(shot.status, 0, `chromium --screenshot failed: ${shot.stderr}`);
      assert.ok(existsSync(png) && statSync(png).size > 20_000, 'a non-trivial screenshot');
    });

    // --dynamics: another ensemble in place of the run's, its report beside the run's own. Given the
    // run's own ensemble, it must measure exactly what the run's diagnosis did.
    const other = await diagnosePenalty(run, { states: 150, starts: 80, referenceRows: 1000, w1Samples: 20, seed: 1, dynamics: join(run, 'dynamics') });
    assert.equal(other.ensemble.override, true);
    assert.equal(r.ensemble.override, false);
    assert.deepEqual(other.overall, r.overall, 'the same ensemble, the same figures');
    assert.deepEqual(other.rolloutRewards, r.rolloutRewards);
    const otherOnDisk = JSON.parse(readFileSync(join(run, 'diagnose-penalty-dynamics.json'), 'utf8')) as PenaltyDiagnostics;
    assert.equal(otherOnDisk.ensemble.dir, join(run, 'dynamics', 'ensemble'));
    assert.ok(existsSync(join(run, 'diagnose-penalty-dynamics.html')));
    assert.equal(JSON.parse(readFileSync(join(run, 'diagnose-penalty.json'), 'utf8')).ensemble.override, false, "the run's own report is left alone");
    await assert.rejects(diagnosePenalty(run, { dynamics: join(dir, 'no-ensemble') }), (e: unknown) => e instanceof UserError && e.message.includes('--dynamics') && e.message.includes('no-ensemble'));

    // Without a checkpoint: a freshly initialized policy, said so.
    rmSync(join(run, 'checkpoints'), { recursive: true, force: true });
    const fresh = await diagnosePenalty(run, { states: 30, starts: 20, referenceRows: 500, w1Samples: 10, write: false });
    assert.equal(fresh.policy.source, 'random');
    assert.equal(fresh.overall.n, 30 + 3 * 20);

    // Errors name the file or the flag.
    await assert.rejects(diagnosePenalty(dir), (e: unknown) => e instanceof UserError && e.message.includes('config.json'));
    await assert.rejects(diagnosePenalty(run, { states: -1 }), (e: unknown) => e instanceof UserError && e.message.includes('--states'));
    await assert.rejects(diagnosePenalty(join(dir, 'nope')), (e: unknown) => e instanceof UserError && e.message.includes('--run'));
  });
});
