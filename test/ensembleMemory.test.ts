// Bounded memory: trainEnsembleFrom streams a Parquet file once per epoch, so its peak memory must not
// grow with the dataset. Two child processes under a small V8 heap cap train on generated files of N
// and N/4 rows; both must finish, and the peak RSS of the larger run must stay close to the smaller
// one's. RSS, not only the heap: the rows live in Float32Arrays outside the V8 heap, so a run that
// kept every batch would stay under the heap cap (measured with 0.5M and 2M rows: 42 and 43 MB heap)
// while its RSS grew with the data (258 and 571 MB, against 182 and 183 MB without keeping them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { writeTransitionsFile } from '../operators/writeTransitions.js';
import { pendulumRandomDataset } from '../pipeline/defaultDataset.js';

/** URL of a compiled project module, for the child script in the temp dir. */
const dist = (p: string) => new URL(`../${p}`, import.meta.url).href;

/** V8 heap cap of the children (MB): below the dataset's size as arrays, let alone as JS objects. */
const HEAP_CAP_MB = 64;
const ROWS = 2_400_000;
/** Bytes of one pendulum row as a TransitionBatch: 4·(3 obs + 1 act + 3 next obs + 1 reward) + 2 flags + 8 (episode, step). */
const ROW_BYTES = 42;

interface ChildReport {
  maxRss: number;
  peakHeap: number;
  epochs: number;
  trainRows: number;
  seconds: number;
}

// The child: trains 2 epochs (tiny network, small shuffle block) in one thread (the worker split adds
// a constant ~140 MB, two more tfjs instances, and more GC noise: not what this test is about) and
// reports its peak RSS (getrusage) and the largest heapUsed seen at each batch.
const CHILD = `
const { lastValueFrom, tap, toArray } = await import(${JSON.stringify(import.meta.resolve('rxjs'))});
const { initBackend } = await import(${JSON.stringify(dist('pipeline/backend.js'))});
const { readTransitions } = await import(${JSON.stringify(dist('operators/readTransitions.js'))});
const { trainEnsembleFrom } = await import(${JSON.stringify(dist('operators/ensemble.js'))});
const file = process.argv[process.argv.length - 1];
await initBackend({ log: () => {} });
let peakHeap = 0;
const sample = () => { peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed); };
const t0 = performance.now();
const config = { members: 2, elites: 1, hidden: [8], batchSize: 4096, maxEpochs: 2, shuffleBuffer: 8192, seed: 0, workers: 1 };
const events = await lastValueFrom(trainEnsembleFrom(() => readTransitions(file).pipe(tap(sample)), config).pipe(tap(sample), toArray()));
const done = events[events.length - 1];
process.stdout.write(JSON.stringify({ maxRss: process.resourceUsage().maxRSS * 1024, peakHeap, epochs: done.epochs, trainRows: events[0].trainRows, seconds: (performance.now() - t0) / 1000 }));
done.ensemble.dispose();
`;

async function trainInChild(script: string, file: string): Promise<ChildReport> {
  const { stdout } = await promisify(execFile)(process.execPath, [`--max-old-space-size=${HEAP_CAP_MB}`, script, file], { timeout: 90_000 });
  return JSON.parse(stdout) as ChildReport;
}

test(`trainEnsembleFrom on a Parquet file trains with bounded memory under a ${HEAP_CAP_MB} MB heap cap (peak RSS does not grow with the rows)`, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mopo-ens-mem-'));
  try {
    const script = join(dir, 'train.mjs');
    await writeFile(script, CHILD);
    const mb = (x: number) => (x / 2 ** 20).toFixed(1);
    const runs: Array<{ rows: number; report: ChildReport }> = [];
    for (const rows of [ROWS / 4, ROWS]) {
      const file = join(dir, `pendulum-${rows}.parquet`);
      await writeTransitionsFile(file, pendulumRandomDataset({ steps: rows, seed: 1 }), { rowGroupSize: 16384 });
      const report = await trainInChild(script, file);
      assert.equal(report.epochs, 2);
      assert.ok(report.trainRows > rows - 1200 && report.trainRows < rows - 800, `trainRows ${report.trainRows} of ${rows}`);
      assert.ok(report.peakHeap < HEAP_CAP_MB * 2 ** 20);
      runs.push({ rows, report });
      console.log(`ensemble memory: ${rows} rows: peak RSS ${mb(report.maxRss)} MB, peak heap ${mb(report.peakHeap)} MB, ${report.seconds.toFixed(1)} s`);
    }
    const [small, large] = runs as [(typeof runs)[0], (typeof runs)[0]];
    assert.ok(ROWS * ROW_BYTES > 1.2 * HEAP_CAP_MB * 2 ** 20, 'the dataset is bigger than the heap cap');
    // Holding the extra rows would add (ROWS − ROWS/4)·ROW_BYTES = 76 MB; allow half of it for noise
    // (when dead ArrayBuffers are collected: up to ±10 MB between identical runs here).
    const extra = (large.rows - small.rows) * ROW_BYTES;
    const growth = large.report.maxRss - small.report.maxRss;
    assert.ok(growth < 0.5 * extra, `peak RSS grew by ${mb(growth)} MB from ${small.rows} to ${large.rows} rows (the extra rows are ${mb(extra)} MB)`);
    assert.ok(large.report.maxRss < 1.25 * small.report.maxRss, `peak RSS ${mb(large.report.maxRss)} MB vs ${mb(small.report.maxRss)} MB`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
