// Replay buffer speed at the MOPO model buffer's sizes, and what drawing one SAC batch costs next
// to the SAC update that consumes it, measured in the same run.
//
//   benchBuffer({ backend?, rounds? }) -> { appendBatchesPerSecond, appendRowsPerSecond,
//     sampledTransitionsPerSecond, sample256Ms, sacUpdateMs, sampleFractionOfUpdate,
//     sampleBlockMsPerBatch, sampleBlockFractionOfUpdate, ... }
//
// data     halfcheetah dims (obs 17, act 6) with raw_reward and penalty, as rollouts carry them;
//          25 distinct batches of 50,000 uniform random rows (1.25M rows, the capacity).
// append   appendBatchesPerSecond: 50,000-row batches appended to a full 1.25M-row buffer (each is
//          held by reference and evicts the oldest batch). appendRowsPerSecond: one-row batches
//          (online SAC's per-step append, copied into chunks) into a 1.25M-row buffer, timed
//          through more than its capacity so chunk allocation and eviction are included.
// sample   sample256Ms: one buffer.sample(256, rng, out) from the full buffer of 25 batches (reused
//          output batch), median over blocks of 500; sampledTransitionsPerSecond = 256 / that.
//          sample256InLoopMs: the same sample timed alone just before each SAC update (caches
//          cooled by the update), as the training loop sees it.
// sac      sacUpdateMs: one SacAgent.update at the default config on halfcheetah dims, batch 256,
//          drawn from the buffer, metrics not read back, synchronized each update; median.
// ratio    sampleFractionOfUpdate = sample256Ms / sacUpdateMs (the target: well under 0.01);
//          inLoopFractionOfUpdate the same with sample256InLoopMs. Sampling is bound by memory
//          latency (random rows of 225 MB: cache and TLB misses), which an update's working set
//          makes worse, hence the two figures.
// block    The MOPO mix, sampled a block at a time as the learner can between two rounds: K = 1000
//          batches of 244 rows from the full model buffer and 12 rows from a 1M-row real-data
//          buffer (20 batches of 50,000 rows, no optional columns) into one staging batch of
//          K × 256 rows, by ArrowReplayBuffer.sampleBlockMixed. sampleBlockMsPerBatch = the block's
//          time / K, median over two blocks per round; sampleBlockFractionOfUpdate =
//          sampleBlockMsPerBatch / sacUpdateMs. sampleMixLoopMsPerBatch: the same mix drawn the
//          per-update way (real.sample(12) then model.sample(244) into one 256-row batch, K times),
//          for comparison (same draws, same rows).
// Sample blocks and SAC updates run interleaved in `rounds` rounds, so a background load that
// comes and goes hits both; on a shared machine compare the ratio, not absolute numbers.
//
// From the CLI: mopo bench buffer [--json] [--backend wasm]

import { initBackend } from '../pipeline/backend.js';
import { Rng } from '../pipeline/random.js';
import { TransitionBatch, type OptionalColumn } from '../schemas/transition.js';
import { ArrowReplayBuffer } from '../operators/replayBuffer.js';
import { SacAgent } from '../operators/sac.js';
import { SAC_BENCH_BATCH, SAC_BENCH_DIMS } from './sac.js';
import { median, round3 } from './stats.js';

export interface BufferBenchResult {
  appendBatchesPerSecond: number;
  appendRowsPerSecond: number;
  sampledTransitionsPerSecond: number;
  sample256Ms: number;
  sacUpdateMs: number;
  sampleFractionOfUpdate: number;
  /** The sample timed alone right before each SAC update, median. */
  sample256InLoopMs: number;
  /** sample256InLoopMs / sacUpdateMs. */
  inLoopFractionOfUpdate: number;
  /** The MOPO mix (12 real + 244 model rows) sampled in blocks of sampleBlockBatches: block time / batches, median. */
  sampleBlockMsPerBatch: number;
  /** sampleBlockMsPerBatch / sacUpdateMs. */
  sampleBlockFractionOfUpdate: number;
  /** The same mix sampled one batch at a time (two sample() calls per batch), median per batch. */
  sampleMixLoopMsPerBatch: number;
  sampleBlockBatches: number;
  realRows: number;
  backend: string;
  capacity: number;
  batchRows: number;
  sacUpdates: number;
}

const CAPACITY = 1_250_000;
const BATCH_ROWS = 50_000;
const OPTIONAL: readonly OptionalColumn[] = ['rawReward', 'penalty'];
const DIMS = { ...SAC_BENCH_DIMS, env: 'halfcheetah' };
/** The MOPO mix: realRatio 0.05 of a 256-batch, sampled for a block of rolloutEvery = 1000 updates. */
const REAL_ROWS = 1_000_000;
const BLOCK_BATCHES = 1000;
const MIX_REAL = Math.floor(SAC_BENCH_BATCH * 0.05);
const MIX_MODEL = SAC_BENCH_BATCH - MIX_REAL;

/** Three significant digits: the fraction and per-sample times are far below round3's 0.001. */
const sig3 = (x: number) => Number(x.toPrecision(3));

function randomBatch(rng: Rng, n: number, optional: readonly OptionalColumn[] = OPTIONAL): TransitionBatch {
  const b = TransitionBatch.allocate(DIMS, n, optional);
  rng.fillUniform(b.observation, -1, 1);
  rng.fillUniform(b.nextObservation, -1, 1);
  rng.fillUniform(b.action, -1, 1);
  rng.fillUniform(b.reward, -1, 1);
  if (b.rawReward) rng.fillUniform(b.rawReward, -1, 1);
  if (b.penalty) rng.fillUniform(b.penalty, 0, 1);
  for (let i = 0; i < n; i++) b.terminal[i] = rng.next() < 0.01 ? 1 : 0;
  return b;
}

/** Calls fn `times` times per timing, `rounds` timings; returns the per-call times in ms. */
function timeBlocks(rounds: number, times: number, fn: () => void): number[] {
  const ms: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    for (let i = 0; i < times; i++) fn();
    ms.push((performance.now() - t0) / times);
  }
  return ms;
}

export async function benchBuffer(opts: { backend?: string; rounds?: number } = {}): Promise<BufferBenchResult> {
  const backend = await initBackend(opts.backend !== undefined ? { backend: opts.backend } : {});
  const rounds = Math.max(1, Math.floor(opts.rounds ?? 6));
  const rng = new Rng(7, 'bench-buffer');
  const batches = Array.from({ length: CAPACITY / BATCH_ROWS }, () => randomBatch(rng, BATCH_ROWS));

  // Batch appends into a full buffer (every append evicts one batch). Appending the same batch
  // objects again is allowed: the buffer never writes into them.
  const full = new ArrowReplayBuffer({ ...DIMS, capacity: CAPACITY, optional: OPTIONAL });
  for (const b of batches) full.append(b);
  let k = 0;
  const batchMs = timeBlocks(rounds, 20_000, () => full.append(batches[k++ % batches.length]!));

  // One-row appends, through more than the capacity.
  const rows = new ArrowReplayBuffer({ ...DIMS, capacity: CAPACITY, optional: OPTIONAL });
  const one = randomBatch(rng, 1);
  const perRound = Math.ceil((1.2 * CAPACITY) / rounds);
  const rowMs = timeBlocks(rounds, perRound, () => rows.append(one));

  // The real-data buffer of the MOPO mix (a dataset's rows, without the rollout columns).
  const real = new ArrowReplayBuffer({ ...DIMS, capacity: REAL_ROWS });
  for (let i = 0; i < REAL_ROWS / BATCH_ROWS; i++) real.append(randomBatch(rng, BATCH_ROWS, []));
  const blockParts = [
    { buffer: real, rows: MIX_REAL },
    { buffer: full, rows: MIX_MODEL },
  ];
  const stage = TransitionBatch.allocate(DIMS, BLOCK_BATCHES * SAC_BENCH_BATCH, OPTIONAL);
  const mixRng = new Rng(10, 'bench-buffer/mix');
  const mixOut = full.allocateSample(SAC_BENCH_BATCH);
  const mixLoop = () => {
    for (let u = 0; u < BLOCK_BATCHES; u++) {
      real.sample(MIX_REAL, mixRng, mixOut, 0);
      full.sample(MIX_MODEL, mixRng, mixOut, MIX_REAL);
    }
  };

  // Sampling from the full buffer (25 segments) interleaved with SAC updates fed by it.
  const sampleRng = new Rng(8, 'bench-buffer/sample');
  const out = full.allocateSample(SAC_BENCH_BATCH);
  const agent = SacAgent.create({}, SAC_BENCH_DIMS, new Rng(9, 'bench-buffer/sac'));
  const sync = () => void agent.parameters().actor[0]!.dataSync();
  const updatesPerRound = 6;
  try {
    timeBlocks(1, 1000, () => full.sample(SAC_BENCH_BATCH, sampleRng, out)); // warm-up: JIT
    ArrowReplayBuffer.sampleBlockMixed(blockParts, BLOCK_BATCHES, mixRng, stage); // warm-up
    mixLoop();
    for (let i = 0; i < 5; i++) agent.update(full.sample(SAC_BENCH_BATCH, sampleRng, out), { metrics: false });
    sync();
    const sampleMs: number[] = [];
    const inLoopMs: number[] = [];
    const updateMs: number[] = [];
    const blockMs: number[] = [];
    const mixLoopMs: number[] = [];
    for (let r = 0; r < rounds; r++) {
      sampleMs.push(...timeBlocks(1, 500, () => full.sample(SAC_BENCH_BATCH, sampleRng, out)));
      blockMs.push(...timeBlocks(2, 1, () => ArrowReplayBuffer.sampleBlockMixed(blockParts, BLOCK_BATCHES, mixRng, stage)).map((ms) => ms / BLOCK_BATCHES));
      mixLoopMs.push(...timeBlocks(1, 1, mixLoop).map((ms) => ms / BLOCK_BATCHES));
      for (let u = 0; u < updatesPerRound; u++) {
        const t0 = performance.now();
        full.sample(SAC_BENCH_BATCH, sampleRng, out);
        const t1 = performance.now();
        agent.update(out, { metrics: false });
        sync();
        updateMs.push(performance.now() - t1);
        inLoopMs.push(t1 - t0);
      }
    }
    const sample256Ms = median(sampleMs);
    const sacUpdateMs = median(updateMs);
    const sampleBlockMsPerBatch = median(blockMs);
    return {
      appendBatchesPerSecond: Math.round(1000 / median(batchMs)),
      appendRowsPerSecond: Math.round(1000 / median(rowMs)),
      sampledTransitionsPerSecond: Math.round((SAC_BENCH_BATCH * 1000) / sample256Ms),
      sample256Ms: sig3(sample256Ms),
      sacUpdateMs: round3(sacUpdateMs),
      sampleFractionOfUpdate: sig3(sample256Ms / sacUpdateMs),
      sample256InLoopMs: sig3(median(inLoopMs)),
      inLoopFractionOfUpdate: sig3(median(inLoopMs) / sacUpdateMs),
      sampleBlockMsPerBatch: sig3(sampleBlockMsPerBatch),
      sampleBlockFractionOfUpdate: sig3(sampleBlockMsPerBatch / sacUpdateMs),
      sampleMixLoopMsPerBatch: sig3(median(mixLoopMs)),
      sampleBlockBatches: BLOCK_BATCHES,
      realRows: REAL_ROWS,
      backend,
      capacity: CAPACITY,
      batchRows: BATCH_ROWS,
      sacUpdates: updateMs.length,
    };
  } finally {
    agent.dispose();
  }
}
