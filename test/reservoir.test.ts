import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Observable } from 'rxjs';
import { TransitionBatch } from '../schemas/transition.js';
import { writeTransitionsFile } from '../operators/writeTransitions.js';
import { RealDataReservoir } from '../operators/reservoir.js';

test('real-data reservoir: a fitting dataset is kept whole; a larger one is a uniform sample of the budget, renewed as the stream cycles', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mopo-res-'));
  try {
    const N = 20_000;
    const path = join(dir, 'd.parquet');
    await writeTransitionsFile(
      path,
      new Observable<TransitionBatch>((s) => {
        for (let start = 0; start < N; start += 3000) {
          const n = Math.min(3000, N - start);
          const b = TransitionBatch.allocate({ obsDim: 1, actDim: 1 }, n);
          for (let i = 0; i < n; i++) b.reward[i] = start + i; // the row's own index
          s.next(b);
        }
        s.complete();
      }),
    );
    const whole = await RealDataReservoir.fill(path, {}, N, 0);
    assert.equal(whole.reservoir, null);
    assert.equal(whole.batches.reduce((a, b) => a + b.length, 0), N);

    const { reservoir } = await RealDataReservoir.fill(path, {}, 2000, 0, 10);
    assert.ok(reservoir);
    const held = () => new Set(Array.from(reservoir.store.reward));
    const first = held();
    assert.equal(first.size, 2000, 'distinct rows');
    const late = [...first].filter((r) => r >= N / 2).length;
    assert.ok(late > 850 && late < 1150, `uniform over the stream, not its head: ${late} of 2000 from the second half`);
    let replaced = 0;
    for (let k = 1; k <= 10; k++) replaced += await reservoir.refresh(k);
    assert.ok(replaced > 1700 && replaced < 2300, `one cycle renews about the budget: ${replaced}`);
    const kept = [...held()].filter((r) => first.has(r)).length;
    assert.ok(kept < 1000, `after one cycle most slots hold other rows (kept ${kept})`);
    const again = (await RealDataReservoir.fill(path, {}, 2000, 0, 10)).reservoir!;
    await again.catchUp(10);
    assert.deepEqual(again.store.reward, reservoir.store.reward, 'rebuilt exactly from the round number');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
