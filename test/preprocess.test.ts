// Preprocessing stages on small hand-made batches with exact expected rows and counts:
// dropNonFinite, clipActions, filterEpisodes (quantile over episodes split across batches, one and
// two passes, id boundaries), scaleReward, selectColumns/renameColumns, tee (round trip, cleanup on
// error), and config validation naming the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Observable, concat, defer, from, lastValueFrom, take, tap, throwError, toArray } from 'rxjs';
import { TransitionBatch, type OptionalColumn, type TransitionDims } from '../schemas/transition.js';
import { UserError } from '../pipeline/errors.js';
import { dropNonFinite, keepRows, resolveDropNonFiniteConfig, type DropNonFiniteSummary } from '../operators/dropNonFinite.js';
import { clipActions, resolveClipActionsConfig, type ClipActionsSummary } from '../operators/clipActions.js';
import { episodeBreaks, filterEpisodes, quantile, resolveFilterEpisodesConfig, type FilterEpisodesConfig, type FilterEpisodesSummary } from '../operators/filterEpisodes.js';
import { resolveScaleRewardConfig, scaleReward, type ScaleRewardSummary } from '../operators/scaleReward.js';
import { renameColumns, resolveSelectColumnsConfig, selectColumns, type SelectColumnsSummary } from '../operators/selectColumns.js';
import { resolveTeeConfig, tee } from '../operators/tee.js';
import { readShards, type ShardManifest } from '../operators/shards.js';
import { readTransitions } from '../operators/readTransitions.js';
import { writeTransitionsFile } from '../operators/writeTransitions.js';

const O = 2;
const A = 2;

/**
 * Rows id0 … id0+n−1 with observation [id, 10+id], next [id+0.5, 20+id], action [0.1·id, −0.1·id],
 * reward id, episode ⌊id/4⌋, step id mod 4: every value says which row it came from.
 */
function rows(id0: number, n: number, dims: TransitionDims = { obsDim: O, actDim: A, env: 'test' }, optional: OptionalColumn[] = ['episode', 'step']): TransitionBatch {
  const b = TransitionBatch.allocate(dims, n, optional);
  for (let i = 0; i < n; i++) {
    const id = id0 + i;
    for (let j = 0; j < dims.obsDim; j++) {
      b.observation[i * dims.obsDim + j] = id + 10 * j;
      b.nextObservation[i * dims.obsDim + j] = id + 0.5 + 20 * j;
    }
    for (let j = 0; j < dims.actDim; j++) b.action[i * dims.actDim + j] = (j % 2 ? -0.1 : 0.1) * id;
    b.reward[i] = id;
    if (b.episode) b.episode[i] = id >> 2;
    if (b.step) b.step[i] = id & 3;
  }
  return b;
}

/** The row ids (observation[0]) of a list of batches. */
const ids = (bs: readonly TransitionBatch[]) => bs.flatMap((b) => Array.from({ length: b.length }, (_, i) => b.observation[i * b.obsDim]!));

function once<S>(): { hooks: { onSummary: (s: S) => void }; get: () => S } {
  const got: S[] = [];
  return { hooks: { onSummary: (s) => got.push(s) }, get: () => (assert.equal(got.length, 1, 'onSummary is called exactly once'), got[0]!) };
}

const run = (source: Observable<TransitionBatch>) => lastValueFrom(source.pipe(toArray()));

// ---------------------------------------------------------------------------------------------

test('dropNonFinite drops rows with NaN/±Infinity, counts per column, keeps optional columns', async () => {
  const a = rows(0, 5);
  a.observation[1 * O + 1] = NaN;
  a.action[3 * A] = Infinity;
  a.reward[3] = NaN;
  a.nextObservation[4 * O] = -Infinity;
  a.nextObservation[4 * O + 1] = -Infinity;
  const b = rows(5, 2); // both rows dropped: no batch is emitted for it
  b.reward[0] = NaN;
  b.observation[1 * O + 1] = NaN;
  const c = rows(7, 2);
  const aBefore = a.observation.slice();
  const s = once<DropNonFiniteSummary>();
  const out = await run(from([a, b, c]).pipe(dropNonFinite({}, s.hooks)));
  assert.equal(out.length, 2);
  assert.deepEqual(ids(out), [0, 2, 7, 8]);
  assert.equal(out[1], c, 'a clean batch passes as it is');
  assert.deepEqual(Array.from(out[0]!.reward), [0, 2]);
  assert.deepEqual(Array.from(out[0]!.action), [0, -0, 0.2, -0.2].map(Math.fround));
  assert.deepEqual(Array.from(out[0]!.nextObservation), [0.5, 20.5, 2.5, 22.5]);
  assert.deepEqual(Array.from(out[0]!.step!), [0, 2]);
  assert.deepEqual(Array.from(out[0]!.episode!), [0, 0]);
  assert.equal(out[0]!.env, 'test');
  assert.deepEqual(a.observation, aBefore, 'the input is not modified');
  assert.deepEqual(s.get(), {
    rowsIn: 9,
    rowsOut: 4,
    rowsDropped: 5,
    rowsByColumn: { observation: 2, action: 1, reward: 2, nextObservation: 1 },
    valuesByColumn: { observation: 2, action: 1, reward: 2, nextObservation: 2 },
    firstDroppedRow: 1,
  });

  // only the listed columns are checked
  const r = once<DropNonFiniteSummary>();
  const onlyReward = await run(from([a, b, c]).pipe(dropNonFinite({ columns: ['reward'] }, r.hooks)));
  assert.deepEqual(ids(onlyReward), [0, 1, 2, 4, 6, 7, 8]);
  assert.deepEqual(r.get().rowsByColumn, { reward: 2 });

  // keepRows: runs of kept rows, all columns
  const k = keepRows(rows(0, 6), Uint8Array.from([1, 1, 0, 1, 0, 1]));
  assert.deepEqual(ids([k]), [0, 1, 3, 5]);
  assert.deepEqual(Array.from(k.step!), [0, 1, 3, 1]);
});

test('dropNonFinite after readTransitions({ allowNonFinite: true }) and renameColumns', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mopo-pre-'));
  try {
    const path = join(dir, 'nan.parquet');
    const b = rows(0, 4, { obsDim: O, actDim: A }, []);
    b.observation[2 * O] = NaN;
    await writeTransitionsFile(path, from([b]));
    await assert.rejects(run(readTransitions(path)), UserError, 'without allowNonFinite the reader refuses NaN');
    const s = once<DropNonFiniteSummary>();
    const columns = renameColumns({ observation: 'observation', reward: 'reward' });
    const out = await run(readTransitions(path, { allowNonFinite: true, columns }).pipe(dropNonFinite({}, s.hooks)));
    assert.deepEqual(ids(out), [0, 1, 3]);
    assert.equal(s.get().rowsDropped, 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------

test('clipActions clips into [low, high], counts values, leaves NaN and the input alone', async () => {
  const b = rows(0, 4);
  b.action.set([0, 0, -2, 0.7, 1.5, 0.5, NaN, -Infinity]);
  const before = b.action.slice();
  const clean = rows(10, 2);
  clean.action.fill(0.25);
  const s = once<ClipActionsSummary>();
  const out = await run(from([b, clean]).pipe(clipActions({ low: -1, high: [1, 0.5] }, s.hooks)));
  assert.deepEqual(Array.from(out[0]!.action), [0, 0, -1, 0.5, 1, 0.5, NaN, -1]);
  assert.deepEqual(b.action, before, 'the input is not modified');
  assert.equal(out[0]!.observation, b.observation, 'other columns are shared');
  assert.equal(out[0]!.episode, b.episode);
  assert.equal(out[1], clean, 'nothing to clip: the batch passes as it is');
  assert.deepEqual(s.get(), { rowsIn: 6, rowsOut: 6, clippedValues: 4, clippedRows: 3, belowLow: 2, aboveHigh: 2, clippedPerDim: [2, 2], low: [-1, -1], high: [1, 0.5] });

  // bounds from the environment (hopper: 3 dims in [-1, 1]); an explicit bound overrides it
  assert.deepEqual(resolveClipActionsConfig({ env: 'hopper' }), { env: 'hopper', low: [-1, -1, -1], high: [1, 1, 1] });
  assert.deepEqual(resolveClipActionsConfig({ env: 'hopper', low: 0 }), { env: 'hopper', low: 0, high: [1, 1, 1] });
  const h = rows(0, 2, { obsDim: 11, actDim: 3, env: 'hopper' });
  h.action.set([2, -2, 0.5, 0, 0, 0]);
  const ho = await run(from([h]).pipe(clipActions({ env: 'hopper' })));
  assert.deepEqual(Array.from(ho[0]!.action), [1, -1, 0.5, 0, 0, 0]);

  // bounds that do not fit the data
  await assert.rejects(run(from([b]).pipe(clipActions({ low: [-1, -1, -1], high: 1 }))), (e: unknown) => e instanceof UserError && /low has 3 bounds but the actions have 2/.test(e.message));
  await assert.rejects(run(from([rows(0, 1, { obsDim: 17, actDim: 6, env: 'walker2d' })]).pipe(clipActions({ env: 'hopper' }))), (e: unknown) => e instanceof UserError && /hopper's but the data is from walker2d/.test(e.message));
});

// ---------------------------------------------------------------------------------------------
// Six episodes with known returns, 18 rows. Endings: terminal, timeout, terminal, timeout, terminal,
// unfinished. Returns: E0 3, E1 8, E2 1, E3 10, E4 5, E5 6 (sorted 1 3 5 6 8 10).

const EPISODES: { rewards: number[]; end: 'terminal' | 'timeout' | 'open' }[] = [
  { rewards: [1, 1, 1], end: 'terminal' },
  { rewards: [2, 2, 2, 2], end: 'timeout' },
  { rewards: [0.5, 0.5], end: 'terminal' },
  { rewards: [1, 2, 3, 4, 0], end: 'timeout' },
  { rewards: [5], end: 'terminal' },
  { rewards: [2, 2, 2], end: 'open' },
];
const ROWS_OF = [
  [0, 1, 2],
  [3, 4, 5, 6],
  [7, 8],
  [9, 10, 11, 12, 13],
  [14],
  [15, 16, 17],
];

/** The 18 rows split into batches of the given sizes (no episode column: flags delimit). */
function episodeBatches(sizes: number[]): TransitionBatch[] {
  const all = rows(0, 18, { obsDim: O, actDim: A }, []);
  let r = 0;
  for (const ep of EPISODES) {
    for (const x of ep.rewards) all.reward[r++] = x;
    if (ep.end === 'terminal') all.terminal[r - 1] = 1;
    if (ep.end === 'timeout') all.timeout[r - 1] = 1;
  }
  const out: TransitionBatch[] = [];
  let start = 0;
  for (const n of sizes) {
    out.push(all.slice(start, start + n));
    start += n;
  }
  assert.equal(start, 18);
  return out;
}

/** A cold source over the batches that counts its subscriptions. */
function counted(batches: TransitionBatch[]): { source: Observable<TransitionBatch>; subscriptions: () => number } {
  let n = 0;
  return {
    source: defer(() => {
      n++;
      return from(batches);
    }),
    subscriptions: () => n,
  };
}

const keptRows = (...episodes: number[]) => episodes.flatMap((e) => ROWS_OF[e]!);

test('filterEpisodes by return quantile: two passes, episodes across batch boundaries, exact threshold', async () => {
  assert.deepEqual(Array.from(episodeBreaks(episodeBatches([18])[0]!)), [3, 7, 9, 14, 15]);
  assert.equal(quantile([10, 1, 8, 3, 6, 5, NaN], 0.5), 5.5, 'linear interpolation over finite values');
  assert.equal(quantile([10, 1, 8, 3, 6, 5], 0.4), 5, 'exact at an order statistic');

  const sizes = [2, 5, 4, 7]; // E0 spans batches 0/1, E1 ends at a batch end, E3 spans batches 2/3
  const cases: { q: number; kept: number[]; threshold: number }[] = [
    { q: 0.5, kept: [1, 3, 5], threshold: 5.5 },
    { q: 0.4, kept: [1, 3, 4, 5], threshold: 5 },
    { q: 1, kept: [3], threshold: 10 },
    { q: 0, kept: [0, 1, 2, 3, 4, 5], threshold: 1 },
  ];
  for (const { q, kept, threshold } of cases) {
    const src = counted(episodeBatches(sizes));
    const s = once<FilterEpisodesSummary>();
    const out = await run(src.source.pipe(filterEpisodes({ minReturnQuantile: q }, s.hooks)));
    assert.deepEqual(ids(out), keptRows(...kept), `q = ${q}`);
    assert.equal(src.subscriptions(), 2, 'the quantile takes two passes over the cold source');
    const sum = s.get();
    assert.equal(sum.returnThreshold, threshold);
    assert.equal(sum.passes, 2);
    assert.equal(sum.episodesIn, 6);
    assert.equal(sum.episodesKept, kept.length);
    assert.equal(sum.dropped.lowReturn, 6 - kept.length);
    assert.equal(sum.rowsIn, 18);
    assert.equal(sum.rowsOut, keptRows(...kept).length);
  }

  // with a length rule too: E4 (1 row) fails minLength first; the quantile is over all episodes
  const s = once<FilterEpisodesSummary>();
  const out = await run(from(episodeBatches(sizes)).pipe(filterEpisodes({ minReturnQuantile: 0.4, minLength: 2 }, s.hooks)));
  assert.deepEqual(ids(out), keptRows(1, 3, 5));
  assert.deepEqual(s.get().dropped, { tooShort: 1, tooLong: 0, nonFiniteReturn: 0, lowReturn: 2 });
  // flags and optional columns survive
  assert.equal(out.reduce((t, b) => t + b.timeout.reduce((x, y) => x + y, 0), 0), 2);
});

test('filterEpisodes in one pass (length, absolute return) equals the two-pass result for every batch split', async () => {
  const splits = [[18], [2, 5, 4, 7], [1, 2, 3, 4, 5, 3], Array<number>(18).fill(1), [7, 11]];
  const configs: { cfg: Partial<FilterEpisodesConfig>; kept: number[] }[] = [
    { cfg: { minReturn: 5.5 }, kept: [1, 3, 5] },
    { cfg: { maxLength: 3 }, kept: [0, 2, 4, 5] },
    { cfg: { minLength: 3, maxLength: 4 }, kept: [0, 1, 5] },
    { cfg: { minLength: 2, minReturn: 2 }, kept: [0, 1, 3, 5] },
  ];
  for (const split of splits) {
    for (const { cfg, kept } of configs) {
      const src = counted(episodeBatches(split));
      const s = once<FilterEpisodesSummary>();
      const out = await run(src.source.pipe(filterEpisodes(cfg, s.hooks)));
      assert.deepEqual(ids(out), keptRows(...kept), `${JSON.stringify(cfg)} split ${split}`);
      // the row contents travel with the ids
      const all = out.length ? TransitionBatch.concat(out) : undefined;
      if (all) for (let i = 0; i < all.length; i++) assert.equal(all.nextObservation[i * O + 1], all.observation[i * O]! + 20.5);
      assert.equal(src.subscriptions(), 1);
      assert.equal(s.get().passes, 1);
      assert.equal(s.get().episodesKept, kept.length);
    }
    const two = await run(from(episodeBatches(split)).pipe(filterEpisodes({ minReturnQuantile: 0.5 })));
    assert.deepEqual(ids(two), keptRows(1, 3, 5), `two passes, split ${split}`);
  }
  const s = once<FilterEpisodesSummary>();
  await run(from(episodeBatches([18])).pipe(filterEpisodes({ minLength: 3, maxLength: 4 }, s.hooks)));
  assert.deepEqual(s.get().dropped, { tooShort: 2, tooLong: 1, nonFiniteReturn: 0, lowReturn: 0 });
});

test('filterEpisodes: episode id changes end episodes; non-finite returns; a source that changes fails', async () => {
  // no flags at all: ids 0 0 1 1 1 2 delimit episodes of 2, 3 and 1 rows
  const b = rows(0, 6);
  b.episode!.set([0, 0, 1, 1, 1, 2]);
  for (const split of [[6], [2, 4], [3, 3], [1, 1, 1, 1, 1, 1]]) {
    const parts: TransitionBatch[] = [];
    let at = 0;
    for (const n of split) parts.push(b.slice(at, (at += n)));
    const out = await run(from(parts).pipe(filterEpisodes({ minLength: 2 })));
    assert.deepEqual(ids(out), [0, 1, 2, 3, 4], `split ${split}`);
    const longest = await run(from(parts).pipe(filterEpisodes({ minReturnQuantile: 1 })));
    assert.deepEqual(ids(longest), [2, 3, 4], `returns 1, 9, 5: split ${split}`);
  }

  // a NaN reward: that episode fails the return rule and is left out of the quantile
  const nan = episodeBatches([18]);
  nan[0]!.reward[16] = NaN; // E5
  const s = once<FilterEpisodesSummary>();
  const out = await run(from(nan).pipe(filterEpisodes({ minReturnQuantile: 0.5 }, s.hooks)));
  assert.equal(s.get().returnThreshold, 5, 'quantile of 1 3 5 8 10');
  assert.deepEqual(ids(out), keptRows(1, 3, 4));
  assert.equal(s.get().dropped.nonFiniteReturn, 1);
  // without a return rule a NaN return does not matter
  assert.deepEqual(ids(await run(from(nan).pipe(filterEpisodes({ minLength: 1 })))), keptRows(0, 1, 2, 3, 4, 5));

  // a "source" that is not re-readable: the second pass sees other data
  let call = 0;
  const hot = defer(() => from(call++ === 0 ? episodeBatches([18]) : episodeBatches([9, 9]).slice(0, 1)));
  await assert.rejects(run(hot.pipe(filterEpisodes({ minReturnQuantile: 0.5 }))), (e: unknown) => e instanceof UserError && /second pass/.test(e.message));
});

// ---------------------------------------------------------------------------------------------

test('scaleReward: scale·reward + shift, raw_reward untouched', async () => {
  const b = rows(0, 4, { obsDim: O, actDim: A }, ['rawReward', 'penalty']);
  b.reward.set([1, -2, NaN, 0.1]);
  b.rawReward!.set([7, 7, 7, 7]);
  const s = once<ScaleRewardSummary>();
  const out = await run(from([b]).pipe(scaleReward({ scale: 2, shift: 1 }, s.hooks)));
  assert.deepEqual(Array.from(out[0]!.reward), [3, -3, NaN, Math.fround(2 * Math.fround(0.1) + 1)]);
  assert.equal(out[0]!.rawReward, b.rawReward, 'raw_reward is the same array');
  assert.equal(out[0]!.penalty, b.penalty);
  assert.deepEqual(Array.from(b.reward), [1, -2, NaN, Math.fround(0.1)], 'the input is not modified');
  const sum = s.get();
  assert.deepEqual(sum.before, { min: -2, max: 1, mean: (1 - 2 + Math.fround(0.1)) / 3 });
  assert.equal(sum.after!.min, -3);
  assert.equal(sum.rowsOut, 4);
  const same = await run(from([b]).pipe(scaleReward({})));
  assert.equal(same[0], b, 'scale 1, shift 0 passes batches as they are');
});

// ---------------------------------------------------------------------------------------------

test('selectColumns keeps observation dimensions in the given order and the listed optional columns', async () => {
  const dims = { obsDim: 3, actDim: A, env: 'test' };
  const b = rows(0, 2, dims);
  const s = once<SelectColumnsSummary>();
  const out = await run(from([b]).pipe(selectColumns({ observationDims: [2, 0], keepOptional: ['step'] }, s.hooks)));
  const o = out[0]!;
  assert.equal(o.obsDim, 2);
  assert.deepEqual(Array.from(o.observation), [20, 0, 21, 1]);
  assert.deepEqual(Array.from(o.nextObservation), [40.5, 0.5, 41.5, 1.5]);
  assert.equal(o.action, b.action);
  assert.equal(o.step, b.step);
  assert.equal(o.episode, undefined);
  assert.equal(o.env, undefined, 'a narrowed observation is no longer the environment’s');
  assert.deepEqual(o.schema.fields.map((f) => f.name), ['observation', 'action', 'reward', 'next_observation', 'terminal', 'timeout', 'step']);
  assert.deepEqual(s.get(), { rowsIn: 2, rowsOut: 2, obsDimIn: 3, obsDimOut: 2, droppedOptional: ['episode'], droppedEnv: 'test' });

  const ident = await run(from([b]).pipe(selectColumns({ observationDims: [0, 1, 2] })));
  assert.equal(ident[0]!.observation, b.observation);
  assert.equal(ident[0]!.env, 'test');
  const none = await run(from([b]).pipe(selectColumns({ keepOptional: [] })));
  assert.deepEqual(none[0]!.optionalColumns, []);
  await assert.rejects(run(from([b]).pipe(selectColumns({ observationDims: [0, 3] }))), (e: unknown) => e instanceof UserError && /observationDims\[1\] = 3/.test(e.message));

  // renaming is the reader's columns option
  assert.deepEqual(renameColumns({ observation: 'obs', next_observation: ['n0', 'n1'], terminal: 'done' }), { observation: 'obs', next_observation: ['n0', 'n1'], terminal: 'done' });
  assert.throws(() => renameColumns({ nextObservation: 'x' } as never), (e: unknown) => e instanceof UserError && /nextObservation: unknown role \(the role is spelled 'next_observation'\)/.test(e.message));
  assert.throws(() => renameColumns({ observation: 'o', next_observation: 'o' }), (e: unknown) => e instanceof UserError && /next_observation: column 'o' is already given to observation/.test(e.message));
  assert.throws(() => renameColumns({ action: ['a0', ''] }), (e: unknown) => e instanceof UserError && /action\[1\]/.test(e.message));
});

// ---------------------------------------------------------------------------------------------

test('tee passes batches through, completes after the shard set is complete, and round-trips', async () => {
  const root = await mkdtemp(join(tmpdir(), 'mopo-tee-'));
  try {
    const dir = join(root, 'clean');
    const batches = [rows(0, 5), rows(5, 3), rows(8, 4)];
    const manifests: ShardManifest[] = [];
    let completeSawManifest: boolean | undefined;
    const passed: TransitionBatch[] = [];
    await new Promise<void>((resolve, reject) => {
      from(batches)
        .pipe(tee({ dir, stage: 'dropNonFinite', config: { columns: ['reward'] }, seed: 7, inputs: ['abc'], rowsPerShard: 6 }, { onSummary: (m) => manifests.push(m) }))
        .subscribe({
          next: (b) => passed.push(b),
          error: reject,
          complete: () => {
            // the downstream's complete comes after the final manifest is on disk
            readFile(join(dir, 'manifest.json'), 'utf8').then((t) => {
              completeSawManifest = (JSON.parse(t) as ShardManifest).complete;
              resolve();
            }, reject);
          },
        });
    });
    assert.deepEqual(passed, batches);
    assert.ok(passed.every((b, i) => b === batches[i]), 'batches pass through unchanged (same objects)');
    assert.equal(completeSawManifest, true);
    assert.equal(manifests.length, 1);
    const m = manifests[0]!;
    assert.equal(m.complete, true);
    assert.equal(m.stage, 'dropNonFinite');
    assert.deepEqual(m.config, { columns: ['reward'] });
    assert.equal(m.seed, 7);
    assert.deepEqual(m.inputs, ['abc']);
    assert.equal(m.rows, 12);
    assert.deepEqual(m.shards.map((x) => x.rows), [8, 4]);
    const back = TransitionBatch.concat(await run(readShards(dir)));
    const want = TransitionBatch.concat(batches);
    assert.deepEqual(back.observation, want.observation);
    assert.deepEqual(back.action, want.action);
    assert.deepEqual(back.reward, want.reward);
    assert.deepEqual(back.nextObservation, want.nextObservation);
    assert.deepEqual(back.episode, want.episode);
    assert.deepEqual(back.step, want.step);
    assert.equal(back.env, 'test');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('tee: an upstream error or an early unsubscribe leaves no shard set', async () => {
  const root = await mkdtemp(join(tmpdir(), 'mopo-tee-'));
  try {
    const dir = join(root, 'partial');
    const boom = new Error('upstream failed');
    const passed: TransitionBatch[] = [];
    await assert.rejects(
      lastValueFrom(concat(from([rows(0, 5), rows(5, 5)]), throwError(() => boom)).pipe(tee({ dir, rowsPerShard: 4 }), tap((b) => passed.push(b)))),
      (e: unknown) => e === boom,
    );
    assert.equal(passed.length, 2);
    assert.equal(existsSync(dir), false, 'the error arrives after the partial set (and its directory) was removed');

    // take(1) unsubscribes early: the writer's queued writes and then its cleanup run in the
    // background (the directory may not even exist yet), so wait until it stays absent for 200 ms
    const dir2 = join(root, 'early');
    await lastValueFrom(from([rows(0, 5), rows(5, 5)]).pipe(tee({ dir: dir2, rowsPerShard: 4 }), take(1)));
    for (let absent = 0, i = 0; absent < 10 && i < 200; i++) {
      absent = existsSync(dir2) ? 0 : absent + 1;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(existsSync(dir2), false);
    await assert.rejects(stat(join(dir2, 'manifest.json')));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------

test('every stage: an empty source gives zero counts; an early unsubscribe gives no summary', async () => {
  const stages = [
    (h: { onSummary: (s: unknown) => void }) => dropNonFinite({}, h),
    (h: { onSummary: (s: unknown) => void }) => clipActions({ low: -1, high: 1 }, h),
    (h: { onSummary: (s: unknown) => void }) => filterEpisodes({ minLength: 2 }, h),
    (h: { onSummary: (s: unknown) => void }) => filterEpisodes({ minReturnQuantile: 0.5 }, h),
    (h: { onSummary: (s: unknown) => void }) => scaleReward({ scale: 2 }, h),
    (h: { onSummary: (s: unknown) => void }) => selectColumns({ observationDims: [1] }, h),
  ];
  for (const stage of stages) {
    const s = once<{ rowsIn: number; rowsOut: number }>();
    assert.deepEqual(await run(from<TransitionBatch[]>([]).pipe(stage(s.hooks as never))), []);
    assert.equal(s.get().rowsIn, 0);
    assert.equal(s.get().rowsOut, 0);
    const calls: unknown[] = [];
    const first = await lastValueFrom(from(episodeBatches([3, 4, 11])).pipe(stage({ onSummary: (x) => calls.push(x) }), take(1)));
    assert.ok(first.length > 0);
    assert.equal(calls.length, 0);
  }
});

// ---------------------------------------------------------------------------------------------

test('config validation: defaults, and UserErrors that name the field', () => {
  const fails = (f: () => unknown, re: RegExp) => assert.throws(f, (e: unknown) => e instanceof UserError && re.test(e.message), String(re));

  assert.deepEqual(resolveDropNonFiniteConfig({}), { columns: ['observation', 'action', 'reward', 'nextObservation'] });
  fails(() => resolveDropNonFiniteConfig({ columns: ['observation', 'obs' as never] }), /^dropNonFinite config: columns\[1\]: expected one of .*got 'obs'/);
  fails(() => resolveDropNonFiniteConfig({ columns: [] }), /columns: expected a non-empty list/);
  fails(() => resolveDropNonFiniteConfig({ colums: ['reward'] } as never), /colums: unknown field/);

  fails(() => resolveClipActionsConfig({}), /clipActions config: low: required/);
  fails(() => resolveClipActionsConfig({ low: [-1, 'a' as never], high: 1 }), /low\[1\]: expected a finite number, got 'a'/);
  fails(() => resolveClipActionsConfig({ low: 1, high: 0 }), /high: must be ≥ low \(1\), got 0/);
  fails(() => resolveClipActionsConfig({ low: [0, 0], high: [1, -1] }), /high\[1\]: must be ≥ low/);
  fails(() => resolveClipActionsConfig({ env: 'cartpole' }), /env: expected one of halfcheetah, hopper/);
  fails(() => resolveClipActionsConfig({ env: 'hopper', low: [-1, -1] }), /low: hopper has 3 action dimensions, got 2/);
  fails(() => clipActions({ low: 0 }), /high: required/); // the factory checks its config when the pipeline is built

  fails(() => resolveFilterEpisodesConfig({}), /set at least one of minLength, maxLength, minReturn, minReturnQuantile/);
  fails(() => resolveFilterEpisodesConfig({ minReturnQuantile: 1.5 }), /minReturnQuantile: expected a number in \[0, 1\], got 1.5/);
  fails(() => resolveFilterEpisodesConfig({ minLength: 0 }), /minLength: expected an integer ≥ 1, got 0/);
  fails(() => resolveFilterEpisodesConfig({ minLength: 5, maxLength: 3 }), /maxLength: must be ≥ minLength/);
  fails(() => resolveFilterEpisodesConfig({ minReturn: Number.NaN }), /minReturn: expected a finite number/);
  fails(() => resolveFilterEpisodesConfig({ minLenght: 3 } as never), /minLenght: unknown field/);

  assert.deepEqual(resolveScaleRewardConfig({}), { scale: 1, shift: 0 });
  fails(() => resolveScaleRewardConfig({ scale: 0 }), /scaleReward config: scale: expected a finite non-zero number, got 0/);
  fails(() => resolveScaleRewardConfig({ shift: '1' as never }), /shift: expected a finite number, got '1'/);

  fails(() => resolveSelectColumnsConfig({ observationDims: [0, -1] }), /selectColumns config: observationDims\[1\]: expected an integer ≥ 0, got -1/);
  fails(() => resolveSelectColumnsConfig({ observationDims: [1, 1] }), /observationDims\[1\]: dimension 1 is listed twice/);
  fails(() => resolveSelectColumnsConfig({ keepOptional: ['raw_reward' as never] }), /keepOptional\[0\]: expected one of rawReward, penalty, episode, step/);

  assert.deepEqual(resolveTeeConfig({ dir: 'x' }), { dir: 'x', stage: 'tee', inputs: [], rowsPerShard: 262_144 });
  fails(() => resolveTeeConfig({}), /tee config: dir: expected a directory path/);
  fails(() => resolveTeeConfig({ dir: 'x', rowsPerShard: 0 }), /rowsPerShard: expected an integer ≥ 1, got 0/);
  fails(() => resolveTeeConfig({ dir: 'x', inputs: ['a', 3 as never] }), /inputs\[1\]/);
  fails(() => resolveTeeConfig({ dir: 'x', config: { n: 1n } as never }), /config: must be JSON-serializable/);
});
