import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Table, tableFromIPC, tableToIPC } from 'apache-arrow';
import { COLUMNS, TransitionBatch, dimsOfSchema, transitionSchema } from '../schemas/transition.js';
import { Rng } from '../pipeline/random.js';

test('the transition schema carries the columns, types and dims', () => {
  const s = transitionSchema({ obsDim: 17, actDim: 6, env: 'halfcheetah', optional: ['rawReward', 'penalty'] });
  assert.deepEqual(
    s.fields.map((f) => f.name),
    [COLUMNS.observation, COLUMNS.action, COLUMNS.reward, COLUMNS.nextObservation, COLUMNS.terminal, COLUMNS.timeout, COLUMNS.rawReward, COLUMNS.penalty],
  );
  assert.equal(String(s.fields[0]!.type), 'FixedSizeList[17]<Float32>');
  assert.equal(String(s.fields[1]!.type), 'FixedSizeList[6]<Float32>');
  assert.equal(String(s.fields[4]!.type), 'Bool');
  assert.deepEqual(dimsOfSchema(s), { obsDim: 17, actDim: 6, env: 'halfcheetah' });
  assert.throws(() => transitionSchema({ obsDim: 0, actDim: 6 }), /obsDim must be a positive integer/);
});

test('a batch survives Arrow IPC with every value, and reading it back is zero-copy for floats', () => {
  const rng = new Rng(7);
  const b = TransitionBatch.allocate({ obsDim: 4, actDim: 3, env: 'pendulum' }, 50, ['rawReward', 'penalty']);
  rng.fillNormal(b.observation);
  rng.fillNormal(b.nextObservation);
  rng.fillNormal(b.action);
  rng.fillNormal(b.reward);
  rng.fillNormal(b.rawReward!);
  rng.fillNormal(b.penalty!);
  for (let i = 0; i < 50; i++) {
    b.terminal[i] = i % 7 === 0 ? 1 : 0;
    b.timeout[i] = i % 11 === 0 ? 1 : 0;
  }
  const rb = b.toRecordBatch();
  // building the record batch shares the float buffers
  const obsChild = rb.getChild(COLUMNS.observation)!.data[0]!.children[0]!;
  assert.equal((obsChild.values as Float32Array).buffer, b.observation.buffer);

  const table = tableFromIPC(tableToIPC(new Table(rb)));
  const back = TransitionBatch.fromRecordBatch(table.batches[0]!);
  const readObs = table.getChild(COLUMNS.observation)!.data[0]!.children[0]!.values as Float32Array;
  assert.equal(back.observation.buffer, readObs.buffer, 'fromRecordBatch views the Arrow buffer');
  for (const k of ['observation', 'nextObservation', 'action', 'reward', 'terminal', 'timeout', 'rawReward', 'penalty'] as const) {
    assert.deepEqual(back[k], b[k], k);
  }
  assert.equal(back.env, 'pendulum');

  // a sliced record batch views the right rows, including the bit-packed flags
  const sliced = TransitionBatch.fromRecordBatch(table.batches[0]!.slice(13, 30));
  assert.deepEqual(sliced.observation, b.observation.slice(13 * 4, 30 * 4));
  assert.deepEqual(sliced.terminal, b.terminal.slice(13, 30));
  assert.deepEqual(sliced.timeout, b.timeout.slice(13, 30));
});

test('slice views rows; concat joins and checks dims', () => {
  const b = TransitionBatch.allocate({ obsDim: 2, actDim: 1 }, 10);
  for (let i = 0; i < 20; i++) b.observation[i] = i;
  const s = b.slice(3, 6);
  assert.equal(s.length, 3);
  assert.deepEqual(Array.from(s.observation), [6, 7, 8, 9, 10, 11]);
  s.observation[0] = 100;
  assert.equal(b.observation[6], 100, 'slice is a view');
  const c = TransitionBatch.concat([b.slice(0, 2), b.slice(8)]);
  assert.deepEqual(Array.from(c.observation), [0, 1, 2, 3, 16, 17, 18, 19]);
  assert.throws(() => TransitionBatch.concat([b, TransitionBatch.allocate({ obsDim: 3, actDim: 1 }, 1)]), /dims differ/);
  assert.throws(() => new TransitionBatch({ obsDim: 2, actDim: 1 }, { ...b.columns, action: new Float32Array(3) }), /column action has 3 values, expected 10 rows × 1/);
});

test('one seed gives the same draws; different streams differ; state restores', () => {
  const a = new Rng(42, 'x');
  const b = new Rng(42, 'x');
  const c = new Rng(42, 'y');
  const da = Array.from({ length: 100 }, () => a.next());
  const db = Array.from({ length: 100 }, () => b.next());
  const dc = Array.from({ length: 100 }, () => c.next());
  assert.deepEqual(da, db);
  assert.notDeepEqual(da, dc);
  const st = a.getState();
  const n1 = [a.normal(), a.normal(), a.int(10)];
  a.setState(st);
  assert.deepEqual([a.normal(), a.normal(), a.int(10)], n1);
  // uniform draws look uniform (mean ≈ 0.5 within 4 standard errors)
  const r = new Rng(1);
  let s = 0;
  const n = 100000;
  for (let i = 0; i < n; i++) s += r.next();
  assert.ok(Math.abs(s / n - 0.5) < 4 * Math.sqrt(1 / 12 / n));
  const p = new Rng(3).permutation(1000);
  assert.deepEqual(Array.from(p).sort((x, y) => x - y), Array.from({ length: 1000 }, (_, i) => i));
});
