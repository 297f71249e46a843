// Normalizer: merged shard statistics equal one pass, a constant column, applying it gives mean≈0
// std≈1, JSON round trip, non-finite data rejected, and the input batch is left untouched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { from, lastValueFrom, toArray } from 'rxjs';
import { Normalizer, computeNormalizer, normalize, MIN_STD, type ModelBatch } from '../operators/normalize.js';
import { TransitionBatch } from '../schemas/transition.js';
import { Rng } from '../pipeline/random.js';
import { UserError } from '../pipeline/errors.js';

const O = 3;
const A = 2;

/** Rows with distinct scales per column; observation column 1 and action column 0 are constant. */
function makeBatch(rng: Rng, n: number): TransitionBatch {
  const b = TransitionBatch.allocate({ obsDim: O, actDim: A }, n);
  for (let i = 0; i < n; i++) {
    b.observation[i * O] = 100 + 5 * rng.normal();
    b.observation[i * O + 1] = 7; // constant
    b.observation[i * O + 2] = 0.01 * rng.normal();
    b.action[i * A] = -1; // constant
    b.action[i * A + 1] = rng.uniform(-1, 1);
    for (let j = 0; j < O; j++) b.nextObservation[i * O + j] = b.observation[i * O + j]! + (j + 1) * 0.1 * rng.normal() + j;
    b.reward[i] = 3 + 2 * rng.normal();
  }
  return b;
}

function colStats(values: Float32Array, width: number, j: number): { mean: number; std: number } {
  const n = values.length / width;
  let m = 0;
  for (let i = 0; i < n; i++) m += values[i * width + j]!;
  m /= n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (values[i * width + j]! - m) ** 2;
  return { mean: m, std: Math.sqrt(v / n) };
}

test('normalizer merged from shards equals one streaming pass; JSON round trip keeps it mergeable', async () => {
  const rng = new Rng(3);
  const batches = [makeBatch(rng, 500), makeBatch(rng, 1), makeBatch(rng, 777), makeBatch(rng, 300)];
  const whole = await lastValueFrom(from(batches).pipe(computeNormalizer()));
  assert.equal(whole.rows, 1578);
  const a = await lastValueFrom(from(batches.slice(0, 2)).pipe(computeNormalizer()));
  const b = await lastValueFrom(from(batches.slice(2)).pipe(computeNormalizer()));
  const merged = Normalizer.fromJSON(JSON.parse(JSON.stringify(a))).merge(b);
  assert.equal(merged.rows, whole.rows);
  for (const g of ['observation', 'action', 'delta', 'reward'] as const) {
    for (let j = 0; j < whole.mean[g].length; j++) {
      assert.ok(Math.abs(merged.mean[g][j]! - whole.mean[g][j]!) <= 1e-6 * (1 + Math.abs(whole.mean[g][j]!)), `${g}[${j}] mean`);
      assert.ok(Math.abs(merged.std[g][j]! / whole.std[g][j]! - 1) < 1e-5, `${g}[${j}] std`);
    }
  }
  // against a direct computation on the concatenation
  const all = TransitionBatch.concat(batches);
  const ref = colStats(all.reward, 1, 0);
  assert.ok(Math.abs(whole.mean.reward[0]! - ref.mean) < 1e-4);
  assert.ok(Math.abs(whole.std.reward[0]! / ref.std - 1) < 1e-5);
  const delta = new Float32Array(all.nextObservation.length);
  for (let i = 0; i < delta.length; i++) delta[i] = all.nextObservation[i]! - all.observation[i]!;
  for (let j = 0; j < O; j++) {
    const r = colStats(delta, O, j);
    assert.ok(Math.abs(whole.mean.delta[j]! - r.mean) < 1e-4, `delta mean ${j}`);
    assert.ok(Math.abs(whole.std.delta[j]! / r.std - 1) < 1e-4, `delta std ${j}`);
  }
  // an exact JSON round trip
  const again = Normalizer.fromJSON(JSON.parse(JSON.stringify(whole)));
  assert.deepEqual(again.toJSON(), whole.toJSON());
});

test('a zero-std column uses std 1 (only centered); tiny stds too', async () => {
  const n = await lastValueFrom(from([makeBatch(new Rng(4), 400)]).pipe(computeNormalizer()));
  assert.equal(n.std.observation[1], 1);
  assert.equal(n.mean.observation[1], 7);
  assert.equal(n.std.action[0], 1);
  assert.equal(n.mean.action[0], -1);
  assert.ok(n.std.observation[2]! > MIN_STD && n.std.observation[2]! < 0.02, 'a small but real std is kept');
  const mb = n.toModelBatch(makeBatch(new Rng(4), 400));
  for (let i = 0; i < mb.length; i++) {
    assert.equal(mb.inputs[i * (O + A) + 1], 0);
    assert.equal(mb.inputs[i * (O + A) + O], 0);
  }
  // a column whose spread is below MIN_STD
  const b = makeBatch(new Rng(5), 10);
  for (let i = 0; i < 10; i++) b.observation[i * O + 1] = 7 + (i % 2) * 1e-7;
  assert.equal(Normalizer.ofBatch(b).std.observation[1], 1);
});

test('normalize(): inputs and targets have mean≈0 and std≈1; the source batch is unchanged', async () => {
  const rng = new Rng(6);
  const batches = [makeBatch(rng, 600), makeBatch(rng, 400)];
  const copies = batches.map((b) => b.observation.slice());
  const norm = await lastValueFrom(from(batches).pipe(computeNormalizer()));
  const out: ModelBatch[] = await lastValueFrom(from(batches).pipe(normalize(norm), toArray()));
  assert.equal(out.length, 2);
  const inputs = new Float32Array(1000 * (O + A));
  const targets = new Float32Array(1000 * (O + 1));
  inputs.set(out[0]!.inputs);
  inputs.set(out[1]!.inputs, out[0]!.inputs.length);
  targets.set(out[0]!.targets);
  targets.set(out[1]!.targets, out[0]!.targets.length);
  const constant = new Set([1, O]); // observation 1, action 0
  for (let j = 0; j < O + A; j++) {
    const s = colStats(inputs, O + A, j);
    assert.ok(Math.abs(s.mean) < 1e-4, `input ${j} mean ${s.mean}`);
    if (constant.has(j)) assert.equal(s.std, 0);
    else assert.ok(Math.abs(s.std - 1) < 1e-4, `input ${j} std ${s.std}`);
  }
  for (let j = 0; j < O + 1; j++) {
    const s = colStats(targets, O + 1, j);
    assert.ok(Math.abs(s.mean) < 1e-4, `target ${j} mean ${s.mean}`);
    assert.ok(Math.abs(s.std - 1) < 1e-4, `target ${j} std ${s.std}`);
  }
  batches.forEach((b, i) => assert.deepEqual(b.observation, copies[i]));
  // the inverse: target·σ + μ is Δs
  const b0 = batches[0]!;
  const t = out[0]!.targets;
  const dj = 2;
  const back = t[5 * (O + 1) + dj]! * norm.std.delta[dj]! + norm.mean.delta[dj]!;
  assert.ok(Math.abs(back - (b0.nextObservation[5 * O + dj]! - b0.observation[5 * O + dj]!)) < 1e-4);
});

test('non-finite values and empty streams are user errors; dims must match', async () => {
  const b = makeBatch(new Rng(7), 20);
  b.reward[13] = Number.NaN;
  await assert.rejects(lastValueFrom(from([makeBatch(new Rng(8), 5), b]).pipe(computeNormalizer())), (e: unknown) => e instanceof UserError && /reward.*row 18/.test((e as Error).message));
  await assert.rejects(lastValueFrom(from([] as TransitionBatch[]).pipe(computeNormalizer())), UserError);
  const n = Normalizer.identity({ obsDim: 2, actDim: 2 });
  await assert.rejects(lastValueFrom(from([makeBatch(new Rng(9), 3)]).pipe(normalize(n))), UserError);
});

test('normalizeTransitions (the normalize stage): two passes, observations standardized, actions kept, the normalizer reported', async () => {
  const { normalizeTransitions } = await import('../operators/normalize.js');
  const { Observable, lastValueFrom, toArray } = await import('rxjs');
  const rng = new (await import('../pipeline/random.js')).Rng(9, 'nt');
  const batches = [0, 1, 2].map(() => {
    const b = TransitionBatch.allocate({ obsDim: 2, actDim: 1 }, 500);
    for (let i = 0; i < 500; i++) {
      b.observation[2 * i] = 3 + 2 * rng.normal();
      b.observation[2 * i + 1] = -1 + 0.5 * rng.normal();
      b.nextObservation[2 * i] = b.observation[2 * i]! + 1;
      b.nextObservation[2 * i + 1] = b.observation[2 * i + 1]!;
      b.action[i] = rng.uniform(-1, 1);
    }
    return b;
  });
  // a deep copy of every input column, compared after the run
  const copyOf = (b: TransitionBatch) => ({ length: b.length, ...Object.fromEntries(Object.entries(b.columns).map(([k, v]) => [k, v === undefined ? undefined : Array.from(v as ArrayLike<number>)])) });
  const inputs = batches.map(copyOf);
  let subscriptions = 0;
  const source = new Observable<TransitionBatch>((s) => {
    subscriptions++;
    batches.forEach((b) => s.next(b));
    s.complete();
  });
  let summary: { rows: number; normalizer: { obsDim: number } } | null = null;
  const out = await lastValueFrom(source.pipe(normalizeTransitions({}, { onSummary: (x) => (summary = x) }), toArray()));
  assert.equal(subscriptions, 2);
  const obs = out.flatMap((b) => Array.from(b.observation));
  for (const j of [0, 1]) {
    const col = obs.filter((_, i) => i % 2 === j);
    const mean = col.reduce((a, b) => a + b, 0) / col.length;
    const sd = Math.sqrt(col.reduce((a, b) => a + (b - mean) ** 2, 0) / col.length);
    assert.ok(Math.abs(mean) < 1e-4 && Math.abs(sd - 1) < 1e-3, `dim ${j}: mean ${mean}, std ${sd}`);
  }
  assert.deepEqual(out[1]!.action, batches[1]!.action, 'actions untouched by default');
  assert.notEqual(out[0]!.observation, batches[0]!.observation, 'new arrays');
  assert.deepEqual(batches.map(copyOf), inputs, 'the input is not modified');
  assert.equal(summary!.rows, 1500);
  assert.equal(summary!.normalizer.obsDim, 2);
});
