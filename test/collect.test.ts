import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lastValueFrom, toArray } from 'rxjs';
import { collectTransitions, uniformPolicy } from '../operators/collect.js';
import { TransitionBatch } from '../schemas/transition.js';
import { Rng } from '../pipeline/random.js';
import { lineChartSvg, ticks } from '../pipeline/plot.js';

test('collect: exact step count, contiguous episodes with ids and steps, flags from the env', async () => {
  const policy = uniformPolicy([-1, -1, -1], [1, 1, 1], new Rng(1));
  const batches = await lastValueFrom(collectTransitions({ env: 'hopper', steps: 3000, seed: 2, numEnvs: 4, batchSize: 500 }, policy).pipe(toArray()));
  const b = TransitionBatch.concat(batches);
  assert.equal(b.length, 3000);
  assert.ok(batches.every((x) => x.length <= 500));
  // each episode's rows are contiguous, steps count 0,1,2,… and the last row ends it
  const seen = new Set<number>();
  for (let i = 0; i < b.length; i++) {
    const ep = b.episode![i]!;
    const first = i === 0 || b.episode![i - 1] !== ep;
    if (first) {
      assert.ok(!seen.has(ep), `episode ${ep} appears in two places`);
      seen.add(ep);
      assert.equal(b.step![i], 0);
    } else assert.equal(b.step![i], b.step![i - 1]! + 1);
    const last: boolean = i === b.length - 1 || b.episode![i + 1] !== ep;
    assert.equal(last, b.terminal[i]! + b.timeout[i]! > 0, `row ${i}: flags mark exactly the episode ends`);
    if (!last) assert.deepEqual(b.nextObservation.subarray(i * 11, i * 11 + 11), b.observation.subarray((i + 1) * 11, (i + 2) * 11));
  }
  assert.ok(b.terminal.reduce((s, x) => s + x, 0) > 10, 'random hopper episodes fall');
  // the same seed collects the same data
  const again = TransitionBatch.concat(await lastValueFrom(collectTransitions({ env: 'hopper', steps: 3000, seed: 2, numEnvs: 4, batchSize: 500 }, uniformPolicy([-1, -1, -1], [1, 1, 1], new Rng(1))).pipe(toArray())));
  assert.deepEqual(again.observation, b.observation);
});

test('SVG line chart: nice ticks, one polyline per series, escaped labels', () => {
  assert.deepEqual(ticks(0, 10, 5), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(ticks(-1250, -150, 5), [-1250, -1000, -750, -500, -250]);
  const svg = lineChartSvg({ title: 'a < b', xLabel: 'steps', yLabel: 'return', series: [{ name: 's', x: [0, 1, 2], y: [1, 3, 2], band: [0.1, 0.2, 0.1] }], hlines: [{ y: 2.5, label: 'target' }] });
  assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.equal((svg.match(/<polyline/g) ?? []).length, 1);
  assert.match(svg, /a &lt; b/);
  assert.match(svg, /<\/svg>\n$/);
  // A log y axis: decades as ticks, equal ratios at equal distances, a zero clamped, not NaN.
  const logSvg = lineChartSvg({ title: 'loss', xLabel: 'epoch', yLabel: 'mse', yScale: 'log', series: [{ name: 'm', x: [0, 1, 2, 3], y: [0.1, 0.01, 0.001, 0] }] });
  assert.deepEqual([...logSvg.matchAll(/text-anchor="end">([^<]+)</g)].map((m) => m[1]), ['0.001', '0.01', '0.1']);
  const cy = [...logSvg.matchAll(/<circle cx="[\d.]+" cy="([\d.]+)"/g)].map((m) => Number(m[1]));
  assert.ok(Math.abs(cy[1]! - cy[0]! - (cy[2]! - cy[1]!)) < 0.2, `equal steps per decade: ${cy}`);
  assert.equal(cy[3], cy[2], 'the zero sits at the smallest positive value');
  assert.doesNotMatch(logSvg, /NaN/);
  // A title too long to centre over the plot is moved right so that it starts inside the image.
  const title = 'Dynamics ensembles (best member): random to early stopping, medium training';
  const long = lineChartSvg({ title, xLabel: 'epoch', yLabel: 'mse', series: [{ name: 'm', x: [0, 1], y: [1, 2] }] });
  const x = Number(/<text x="([\d.]+)" y="22" text-anchor="middle" font-size="15">Dynamics/.exec(long)![1]);
  assert.ok(x - (title.length * 15 * 0.55) / 2 >= 8, `title centre ${x}`);
  assert.match(svg, /<text x="280" y="22" text-anchor="middle" font-size="15">a &lt; b/, 'a short one stays over the plot');
  // The legend makes room for its longest name (about 7 px a character) instead of running off the
  // image, and the image widens for it rather than narrowing the plot below 480 px.
  const name = 'penalized reward r̂ − λu, a long series name';
  const wide = lineChartSvg({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name, x: [0, 1], y: [1, 2] }] });
  const lx = Number(new RegExp(`<text x="([\\d.]+)" y="[\\d.]+">${name}<`).exec(wide)![1]);
  const width = Number(/^<svg [^>]*width="(\d+)"/.exec(wide)![1]);
  assert.ok(lx + 7 * name.length <= width, `legend text from x ${lx} in an image ${width} wide`);
  assert.ok(lx - 70 >= 480, `plot ${lx - 70} px wide`);
  assert.match(svg, /^<svg [^>]*width="720"/, 'a short legend keeps the usual 720 px');
});
