// `mopo bench memory`: every stage before the replay buffer streams, so its memory is bounded by its
// batch and buffers, not by the dataset. Shown on a dataset far bigger than the V8 heap: peak RSS of
// the same work on N and on 10·N transitions, each in a child process with a capped heap.
//
//   benchMemory({ rows?, smallRows?, cacheDir?, fullEnsemble? }) ->
//     { rows, peakRssMB: { "1M", "10M" }, ratio, underOneGiB, phases: { "1M": {…}, "10M": {…} }, heapCapMB, synthetic, … }
//
// The datasets are SYNTHETIC (halfcheetah dims, obs 17 / act 6): a seeded generator streams batches
// into our Parquet writer (65,536-row groups, one float column per dimension), with one non-finite
// value in every batch so the cleaning stage has rows to drop. They are written once into the cache
// directory (default data/bench/) and reused: 10M rows are 1.6 GB of floats.
//
// Each child (node --max-old-space-size=512, this file) runs, in one process:
//   ingestCleanStatsNormalizeTee  openTransitions(allowNonFinite) → dropNonFinite → share →
//                                 forkJoin(datasetStats, normalizeTransitions → tee to shards);
//                                 the statistics ride on normalize's first pass (its second pass
//                                 re-reads the cold source, as it must)
//   ensembleEpoch                 trainEnsembleFrom(openTransitions(the tee'd shards)), one epoch
//                                 (plus its normalizer pass). The network is narrow by default
//                                 (7 × [32, 32]): what is measured is the data path (shard reads,
//                                 normalization, shuffle block, holdout), which does not depend on
//                                 the width; the reference 7 × 4×200 (--full-ensemble) takes ~45 min
//                                 an epoch on 10M rows here.
// RSS, not only the heap: the rows live in Float32Arrays outside the V8 heap, so a stage that kept
// every batch would stay under the heap cap while its RSS grew with the data. The child samples RSS
// and heapUsed every 50 ms and at every batch (training runs synchronously for seconds between
// batches, starving the timer); the headline peak is the kernel's high-water mark (getrusage).
//
// From the CLI: mopo bench memory [--rows 10000000] [--full-ensemble] [--cache-dir data/bench]
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Observable, forkJoin, lastValueFrom, reduce, share, tap, toArray } from 'rxjs';
import { initBackend } from '../pipeline/backend.js';
import { Rng } from '../pipeline/random.js';
import { isMain } from '../pipeline/isMain.js';
import { UserError } from '../pipeline/errors.js';
import { TransitionBatch } from '../schemas/transition.js';
import { openTransitions } from '../operators/source.js';
import { dropNonFinite, type DropNonFiniteSummary } from '../operators/dropNonFinite.js';
import { datasetStats } from '../operators/datasetStats.js';
import { normalizeTransitions } from '../operators/normalize.js';
import { tee } from '../operators/tee.js';
import type { ShardManifest } from '../operators/shards.js';
import { writeTransitionsFile } from '../operators/writeTransitions.js';
import { trainEnsembleFrom, type EnsembleConfig, type EnsembleDoneEvent, type EnsembleEpochEvent } from '../operators/ensemble.js';
import { round3 } from './stats.js';

const DIMS = { obsDim: 17, actDim: 6, env: 'halfcheetah' } as const;
/** Heap cap of the children (MB): a tenth of the big dataset's floats. */
export const HEAP_CAP_MB = 512;
/** The issue's targets: big/small peak RSS within 1.5×, and the big run under 1 GiB. */
const TARGET = { ratioMax: 1.5, rssMaxMB: 1024 };
const EPISODE = 1000;
const BATCH = 65_536;
/** Bumped when the generator changes, so a cached file of the old one is not reused. */
const GENERATOR_VERSION = 1;
const NARROW: Partial<EnsembleConfig> = { members: 7, elites: 5, hidden: [32, 32], maxEpochs: 1, workers: 1, seed: 0 };
const REFERENCE: Partial<EnsembleConfig> = { members: 7, elites: 5, hidden: [200, 200, 200, 200], maxEpochs: 1, workers: 1, seed: 0 };
const CHILD_ARG = '--mopo-bench-memory-child';

const MB = 2 ** 20;
const mb = (bytes: number) => Math.round((bytes / MB) * 10) / 10;

/** "1M", "10M", "2.5M", "500k": the size labels of the output. */
export function sizeLabel(rows: number): string {
  return rows >= 1e6 ? `${+(rows / 1e6).toPrecision(3)}M` : `${+(rows / 1e3).toPrecision(3)}k`;
}

/**
 * Seeded halfcheetah-shaped episodes of EPISODE steps, streamed BATCH rows at a time: an AR(1)
 * state driven by the action, s' following s within an episode, reward = s'[8] (the x velocity's
 * slot) − 0.1‖a‖², episode/step columns as `mopo collect` writes them. One value in every batch is
 * NaN or ±Infinity (a random row, column and dimension), so dropNonFinite has work.
 */
function syntheticHalfcheetah(rows: number, seed: number): Observable<TransitionBatch> {
  return new Observable<TransitionBatch>((sub) => {
    const rng = new Rng(seed, 'bench-memory');
    const O = DIMS.obsDim;
    const A = DIMS.actDim;
    const state = new Float32Array(O);
    const noise = new Float32Array(BATCH * O);
    const bad = [NaN, Infinity, -Infinity];
    for (let r = 0; r < rows && !sub.closed; r += BATCH) {
      const n = Math.min(BATCH, rows - r);
      const b = TransitionBatch.allocate(DIMS, n, ['episode', 'step']);
      rng.fillUniform(b.action, -1, 1);
      rng.fillNormal(noise.subarray(0, n * O), 0, 0.1);
      for (let i = 0; i < n; i++) {
        const row = r + i;
        const step = row % EPISODE;
        if (step === 0) state.fill(0);
        b.observation.set(state, i * O);
        let a2 = 0;
        for (let d = 0; d < A; d++) a2 += b.action[i * A + d]! ** 2;
        for (let d = 0; d < O; d++) state[d] = 0.95 * state[d]! + 0.05 * b.action[i * A + (d % A)]! + noise[i * O + d]!;
        b.nextObservation.set(state, i * O);
        b.reward[i] = state[8]! - 0.1 * a2;
        b.timeout[i] = step === EPISODE - 1 ? 1 : 0;
        b.episode![i] = Math.floor(row / EPISODE);
        b.step![i] = step;
      }
      const i = rng.int(n);
      const v = bad[rng.int(bad.length)]!;
      const col = rng.int(4);
      if (col === 0) b.observation[i * O + rng.int(O)] = v;
      else if (col === 1) b.nextObservation[i * O + rng.int(O)] = v;
      else if (col === 2) b.action[i * A + rng.int(A)] = v;
      else b.reward[i] = v;
      sub.next(b);
    }
    sub.complete();
  });
}

/** The cached dataset of `rows` rows, generated (streaming, atomically) when missing. */
async function ensureDataset(dir: string, rows: number, log: (m: string) => void): Promise<{ path: string; bytes: number; generatedSeconds: number | null }> {
  const path = join(dir, `halfcheetah-synthetic-${rows}-seed0-v${GENERATOR_VERSION}.parquet`);
  if (existsSync(path)) return { path, bytes: statSync(path).size, generatedSeconds: null };
  mkdirSync(dir, { recursive: true });
  log(`bench memory: generating ${rows.toLocaleString('en')} synthetic transitions into ${path}`);
  const t0 = performance.now();
  const summary = await writeTransitionsFile(path, syntheticHalfcheetah(rows, 0), { metadata: { synthetic: 'mopo bench memory' } });
  return { path, bytes: summary.bytes, generatedSeconds: round3((performance.now() - t0) / 1000) };
}

// ---------------------------------------------------------------------------------------------
// The child: one size, both phases, a JSON report on stdout.

export interface PhaseMemory {
  /** RSS when the phase started (the second phase inherits what the allocator kept from the first). */
  startRssMB: number;
  /** Largest RSS sampled during the phase (every 50 ms and at every batch). */
  peakRssMB: number;
  peakHeapMB: number;
  seconds: number;
  samples: number;
}

export interface ChildReport {
  rows: number;
  /** The kernel's high-water mark of the whole child (getrusage maxRSS). */
  maxRssMB: number;
  /** The same, read at the end of the first phase (the tfjs backend is initialized after it). */
  maxRssAfterPreprocessMB: number;
  ingestCleanStatsNormalizeTee: PhaseMemory & { rowsIn: number; rowsDropped: number; rowsOut: number; statsRows: number; episodes: number; shards: number; shardMB: number };
  ensembleEpoch: PhaseMemory & { backend: string; trainRows: number; valRows: number; steps: number };
}

interface ChildSpec {
  file: string;
  shardDir: string;
  ensemble: Partial<EnsembleConfig>;
  backend?: string;
}

/** Peak RSS and heap over a phase: sampled on a timer and by the caller (per batch). */
class MemorySampler {
  private peakRss = 0;
  private peakHeap = 0;
  private samples = 0;
  private t0 = performance.now();
  private startRss = process.memoryUsage().rss;
  private readonly timer = setInterval(() => this.sample(), 50);

  sample(): void {
    const m = process.memoryUsage();
    if (m.rss > this.peakRss) this.peakRss = m.rss;
    if (m.heapUsed > this.peakHeap) this.peakHeap = m.heapUsed;
    this.samples++;
  }

  /** The phase's figures; the sampler starts over for the next phase. */
  take(): PhaseMemory {
    this.sample();
    const out = { startRssMB: mb(this.startRss), peakRssMB: mb(this.peakRss), peakHeapMB: mb(this.peakHeap), seconds: round3((performance.now() - this.t0) / 1000), samples: this.samples };
    this.peakRss = this.peakHeap = this.samples = 0;
    this.t0 = performance.now();
    this.startRss = process.memoryUsage().rss;
    this.sample(); // what the previous phase left counts as this one's until it is freed
    return out;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

const maxRss = () => mb(process.resourceUsage().maxRSS * 1024);

async function childMain(spec: ChildSpec): Promise<ChildReport> {
  const sampler = new MemorySampler();
  const sample = () => sampler.sample();
  try {
    // Phase 1. share() gives datasetStats and normalize's first pass one read of the file: both
    // subscribe before the (asynchronous) Parquet source emits. On completion share() resets, so
    // normalize's second subscription reads the file again.
    let drop: DropNonFiniteSummary | null = null;
    let manifest: ShardManifest | null = null;
    const cleaned = openTransitions(spec.file, { allowNonFinite: true }).pipe(
      dropNonFinite({}, { onSummary: (s) => (drop ??= s) }),
      tap(sample),
      share(),
    );
    const [stats, rowsOut] = await lastValueFrom(
      forkJoin([
        cleaned.pipe(datasetStats()),
        cleaned.pipe(
          normalizeTransitions(),
          tee({ dir: spec.shardDir, stage: 'normalize' }, { onSummary: (m) => (manifest = m) }),
          tap(sample),
          reduce((n, b) => n + b.length, 0),
        ),
      ]),
    );
    const m = manifest as ShardManifest | null;
    const d = drop as DropNonFiniteSummary | null;
    if (!m || !d || stats.rows !== rowsOut || m.rows !== rowsOut || d.rowsOut !== rowsOut) {
      throw new Error(`bench memory: rows disagree: cleaned ${d?.rowsOut}, statistics ${stats.rows}, normalized ${rowsOut}, shards ${m?.rows}`);
    }
    const preprocess = {
      ...sampler.take(),
      rowsIn: d.rowsIn,
      rowsDropped: d.rowsDropped,
      rowsOut,
      statsRows: stats.rows,
      episodes: stats.episodes,
      shards: m.shards.length,
      shardMB: mb(m.shards.reduce((s, x) => s + x.bytes, 0)),
    };
    const maxRssAfterPreprocessMB = maxRss();

    // Phase 2: one epoch over the shards (after the ensemble's own normalizer pass).
    const backend = await initBackend({ ...(spec.backend ? { backend: spec.backend } : {}), log: () => {} });
    const events = await lastValueFrom(trainEnsembleFrom(() => openTransitions(spec.shardDir).pipe(tap(sample)), spec.ensemble).pipe(tap(sample), toArray()));
    const epoch = events.find((e): e is EnsembleEpochEvent => e.type === 'epoch');
    const done = events.find((e): e is EnsembleDoneEvent => e.type === 'done');
    if (!epoch || !done) throw new Error('bench memory: the ensemble emitted no epoch');
    done.ensemble.dispose();
    const ensembleEpoch = { ...sampler.take(), backend, trainRows: epoch.trainRows, valRows: epoch.valRows, steps: epoch.steps };
    return { rows: d.rowsIn, maxRssMB: maxRss(), maxRssAfterPreprocessMB, ingestCleanStatsNormalizeTee: preprocess, ensembleEpoch };
  } finally {
    sampler.stop();
  }
}

/** Runs this file as a capped child for one size; its stderr goes to `log`, line by line. */
function runChild(spec: ChildSpec, log: (m: string) => void): Promise<ChildReport> {
  const script = fileURLToPath(import.meta.url);
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [`--max-old-space-size=${HEAP_CAP_MB}`, script, CHILD_ARG, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      err += s;
      for (const line of s.split('\n')) if (line.trim()) log(`  child: ${line}`);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0) {
        reject(new Error(`bench memory: the child for ${spec.file} exited with ${signal ?? `code ${code}`} (heap cap ${HEAP_CAP_MB} MB): ${err.trim().split('\n').slice(-5).join(' | ')}`));
        return;
      }
      try {
        resolvePromise(JSON.parse(out) as ChildReport);
      } catch (e) {
        reject(new Error(`bench memory: the child printed no report (${(e as Error).message}): ${out.slice(0, 200)}`));
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The parent.

export interface MemoryBenchOptions {
  /** The big dataset (default 10,000,000 transitions). */
  rows?: number;
  /** The reference dataset (default 1,000,000). */
  smallRows?: number;
  /** Where the generated Parquet files are kept between runs (default data/bench). */
  cacheDir?: string;
  /** The reference 7 × 4×200 network instead of 7 × [32, 32] (~45 min an epoch on 10M rows). */
  fullEnsemble?: boolean;
  backend?: string;
  log?: (m: string) => void;
}

export interface MemoryBenchResult {
  rows: number[];
  /** Per size: the child's peak RSS (getrusage high-water mark over both phases). */
  peakRssMB: Record<string, number>;
  /** Peak RSS of the big run over the small one. */
  ratio: number;
  underOneGiB: boolean;
  /** Both targets met (ratio ≤ 1.5 and under 1 GiB). */
  pass: boolean;
  target: typeof TARGET;
  /** Big over small, per phase (sampled peaks): which phase grows. */
  phaseRatio: { ingestCleanStatsNormalizeTee: number; ensembleEpoch: number };
  phases: Record<string, { maxRssAfterPreprocessMB: number; ingestCleanStatsNormalizeTee: ChildReport['ingestCleanStatsNormalizeTee']; ensembleEpoch: ChildReport['ensembleEpoch'] }>;
  heapCapMB: number;
  synthetic: true;
  dataset: { env: string; obsDim: number; actDim: number; generator: string; files: Record<string, { path: string; bytes: number; floatMB: number; generatedSeconds: number | null }> };
  ensemble: { members: number; hidden: number[]; maxEpochs: number; workers: number; measured: string };
  seconds: number;
}

export async function benchMemory(opts: MemoryBenchOptions = {}): Promise<MemoryBenchResult> {
  const log = opts.log ?? (() => {});
  const big = Math.max(1, Math.floor(opts.rows ?? 10_000_000));
  const small = Math.max(1, Math.floor(opts.smallRows ?? 1_000_000));
  if (sizeLabel(big) === sizeLabel(small)) throw new UserError(`bench memory: --rows ${big} is the reference size ${small}; give a different size to compare with`);
  const cacheDir = resolve(opts.cacheDir ?? 'data/bench');
  const ensemble = opts.fullEnsemble ? REFERENCE : NARROW;
  const t0 = performance.now();
  const files: MemoryBenchResult['dataset']['files'] = {};
  const reports: Record<string, ChildReport> = {};
  for (const rows of [small, big]) {
    const label = sizeLabel(rows);
    const data = await ensureDataset(cacheDir, rows, log);
    // O + O + A + 1 floats a row.
    files[label] = { ...data, floatMB: mb(rows * (2 * DIMS.obsDim + DIMS.actDim + 1) * 4) };
    const shardDir = mkdtempSync(join(tmpdir(), 'mopo-bench-memory-'));
    try {
      log(`bench memory: ${label}: preprocessing and one ensemble epoch in a child (heap cap ${HEAP_CAP_MB} MB)`);
      const spec: ChildSpec = { file: data.path, shardDir, ensemble, ...(opts.backend ? { backend: opts.backend } : {}) };
      reports[label] = await runChild(spec, log);
      const r = reports[label]!;
      log(`bench memory: ${label}: peak RSS ${r.maxRssMB} MB (preprocess ${r.ingestCleanStatsNormalizeTee.seconds} s, epoch ${r.ensembleEpoch.seconds} s)`);
    } finally {
      rmSync(shardDir, { recursive: true, force: true });
    }
  }
  const smallR = reports[sizeLabel(small)]!;
  const bigR = reports[sizeLabel(big)]!;
  const ratio = round3(bigR.maxRssMB / smallR.maxRssMB);
  const underOneGiB = bigR.maxRssMB < TARGET.rssMaxMB;
  const phases: MemoryBenchResult['phases'] = {};
  const peakRssMB: Record<string, number> = {};
  for (const [label, r] of Object.entries(reports)) {
    peakRssMB[label] = r.maxRssMB;
    phases[label] = { maxRssAfterPreprocessMB: r.maxRssAfterPreprocessMB, ingestCleanStatsNormalizeTee: r.ingestCleanStatsNormalizeTee, ensembleEpoch: r.ensembleEpoch };
  }
  return {
    rows: [small, big],
    peakRssMB,
    ratio,
    underOneGiB,
    pass: ratio <= TARGET.ratioMax && underOneGiB,
    target: TARGET,
    phaseRatio: {
      ingestCleanStatsNormalizeTee: round3(bigR.ingestCleanStatsNormalizeTee.peakRssMB / smallR.ingestCleanStatsNormalizeTee.peakRssMB),
      ensembleEpoch: round3(bigR.ensembleEpoch.peakRssMB / smallR.ensembleEpoch.peakRssMB),
    },
    phases,
    heapCapMB: HEAP_CAP_MB,
    synthetic: true,
    dataset: {
      ...DIMS,
      generator: `seeded AR(1) halfcheetah-shaped episodes of ${EPISODE} steps, one non-finite value per ${BATCH}-row batch (v${GENERATOR_VERSION})`,
      files,
    },
    ensemble: {
      members: ensemble.members!,
      hidden: ensemble.hidden!,
      maxEpochs: ensemble.maxEpochs!,
      workers: ensemble.workers!,
      measured: opts.fullEnsemble
        ? 'the reference network'
        : 'the data path (shard reads, normalization, shuffle block, holdout); the network is narrowed from the reference 7 × 4×200, whose epoch on 10M rows takes ~45 min here (--full-ensemble)',
    },
    seconds: round3((performance.now() - t0) / 1000),
  };
}

// This file is also the child: `node --max-old-space-size=512 memory.js --mopo-bench-memory-child <spec>`.
if (process.argv[2] === CHILD_ARG && isMain(import.meta.url)) {
  childMain(JSON.parse(process.argv[3] ?? '{}') as ChildSpec).then(
    (report) => process.stdout.write(JSON.stringify(report) + '\n'),
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
