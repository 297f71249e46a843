// Parquet ingest throughput: Parquet file → readTransitions → TransitionBatches (Arrow-backed).
//
//   benchIngest({ rows?, dir? }) -> { transitionsPerSecond, rows, bytes, ... }
//
// Generates a seeded halfcheetah-shaped dataset (obs 17, act 6; default 1,000,000 transitions)
// with our writer (writeTransitions defaults: one float column per dimension, SNAPPY, 65,536-row
// groups; `vectorLayout` / `compression` select the other layouts) into a temp directory, then streams the whole file through readTransitions `runs` times
// after one warm-up run. transitionsPerSecond is the MEDIAN run (best and every run are reported
// too). The machine is shared and noisy: compare medians of several invocations.
//
// From the CLI: mopo bench ingest [--rows 1000000] [--vector-layout …] [--compression …]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Observable, lastValueFrom } from 'rxjs';
import { readTransitions } from '../operators/readTransitions.js';
import { writeTransitionsFile, type WriteOptions } from '../operators/writeTransitions.js';
import { TransitionBatch } from '../schemas/transition.js';
import { Rng } from '../pipeline/random.js';
import { median } from './stats.js';

export interface IngestBenchResult {
  transitionsPerSecond: number;
  rows: number;
  bytes: number;
  vectorLayout: string;
  compression: string;
  /** How transitionsPerSecond was taken. */
  statistic: 'median';
  bestTransitionsPerSecond: number;
  runsMs: number[];
  batches: number;
  writeTransitionsPerSecond: number;
}

const DIMS = { obsDim: 17, actDim: 6, env: 'halfcheetah' };

/** Seeded halfcheetah-like transitions: smooth observations (AR(1) per dimension), actions in [-1, 1]. */
function generate(rows: number, seed = 0, batch = 65536): Observable<TransitionBatch> {
  return new Observable<TransitionBatch>((sub) => {
    const rng = new Rng(seed, 'bench-ingest');
    const o = DIMS.obsDim;
    const state = new Float32Array(o);
    for (let r = 0; r < rows && !sub.closed; r += batch) {
      const n = Math.min(batch, rows - r);
      const b = TransitionBatch.allocate(DIMS, n);
      for (let i = 0; i < n; i++) {
        const row = r + i;
        if (row % 1000 === 0) state.fill(0);
        b.observation.set(state, i * o);
        for (let d = 0; d < o; d++) state[d] = 0.95 * state[d]! + 0.1 * rng.normal();
        b.nextObservation.set(state, i * o);
        b.timeout[i] = row % 1000 === 999 ? 1 : 0;
      }
      rng.fillUniform(b.action, -1, 1);
      rng.fillNormal(b.reward, 0, 1);
      sub.next(b);
    }
    sub.complete();
  });
}

export interface IngestBenchOptions {
  rows?: number;
  dir?: string;
  runs?: number;
  /** How the generated file stores vectors (default: the writer's default, one column per dimension). */
  vectorLayout?: WriteOptions['vectorLayout'];
  compression?: WriteOptions['compression'];
}

export async function benchIngest(opts: IngestBenchOptions = {}): Promise<IngestBenchResult> {
  const rows = Math.max(1, Math.floor(opts.rows ?? 1_000_000));
  const runs = Math.max(1, Math.floor(opts.runs ?? 5));
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'mopo-bench-ingest-'));
  const path = join(dir, `bench-ingest-${process.pid}-${rows}.parquet`);
  try {
    let t = performance.now();
    const writeOpts: WriteOptions = {};
    if (opts.vectorLayout) writeOpts.vectorLayout = opts.vectorLayout;
    if (opts.compression) writeOpts.compression = opts.compression;
    const summary = await writeTransitionsFile(path, generate(rows), writeOpts);
    const writeMs = performance.now() - t;
    const times: number[] = [];
    let batches = 0;
    for (let r = 0; r <= runs; r++) {
      t = performance.now();
      let n = 0;
      let k = 0;
      await lastValueFrom(
        new Observable<void>((sub) =>
          readTransitions(path).subscribe({
            next: (b) => {
              n += b.length;
              k++;
            },
            error: (e) => sub.error(e),
            complete: () => sub.complete(),
          }),
        ),
        { defaultValue: undefined },
      );
      const ms = performance.now() - t;
      if (n !== rows) throw new Error(`bench ingest: read ${n} transitions, wrote ${rows}`);
      if (r > 0) times.push(ms); // run 0 warms up the JIT and the page cache
      batches = k;
    }
    const mid = median(times);
    const best = Math.min(...times);
    return {
      transitionsPerSecond: Math.round((rows / mid) * 1000),
      rows,
      vectorLayout: opts.vectorLayout ?? 'columns',
      compression: opts.compression ?? 'snappy',
      bytes: summary.bytes,
      statistic: 'median',
      bestTransitionsPerSecond: Math.round((rows / best) * 1000),
      runsMs: times.map((x) => Math.round(x)),
      batches,
      writeTransitionsPerSecond: Math.round((rows / writeMs) * 1000),
    };
  } finally {
    rmSync(path, { force: true });
    if (ownDir) rmSync(dir, { recursive: true, force: true });
  }
}
