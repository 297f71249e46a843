// Dynamics-ensemble throughput at the reference size (7 members, 23 → 4×200 swish → 2×18,
// halfcheetah dims), beside the dense peak measured in the same run.
//
//   benchEnsemble({ seconds?, predictRows?, workers2? }) ->
//     { backend, peakGflops, train: { samplesPerSecond, gflops, ratio }, predict: { samplesPerSecond, gflops, ratio },
//       workers2: { samplesPerSecond, speedup, msPerStep }, products, wasm?, nativeSpeedup? }
//
// train    full DynamicsEnsemble.trainStep (forward, NLL with learned log-variance bounds, hand-written
//          backward, weight decay, Adam) on per-member batches of 256. samplesPerSecond counts
//          member-samples (7 × 256 a step); flops = 3 × forward matmul flops (dX and dW per layer).
// predict  DynamicsEnsemble.predict on a rollout batch (default 50,000 rows): normalization, the
//          batched forward of every member, and the conversion back to the original scale.
//          samplesPerSecond counts rows (each predicted by all 7 members); flops = forward matmuls.
// ratio    gflops / peakGflops (bench/dense.ts's measurePeakGflops, interleaved with the timings).
// workers2 the same training step with the members split across 2 worker threads (4 + 3, config
//          workers: 2; operators/ensembleWorkerPool.ts), as training runs it: blocks of 10 steps
//          from a shared block of rows, including the hand-over, each worker's batch gathering, the
//          per-step exchange of the bounds' gradient and the reply. Timed after the loop above, in
//          rounds alternating 10 one-thread steps with one such block: 1-step blocks interleaved
//          with the predict calls varied from 37 to 56 ms on a quiet machine (a block has a start-up
//          cost, which training pays once per shuffle block of 256 steps). speedup = one-thread ms /
//          split ms of those rounds. It needs a free second core: anything running there shows up
//          here first.
//          workers2: false skips it.
// wasm     with the native gemm, train and predict are also timed on the wasm kernels alone,
//          interleaved round by round; nativeSpeedup = wasm ms / native ms for each.
//
// From the CLI: mopo bench ensemble [--seconds 6] [--rows 50000]
import { tf } from '../pipeline/backend.js';
import { DynamicsEnsemble } from '../operators/ensemble.js';
import { EnsembleWorkerPool } from '../operators/ensembleWorkerPool.js';
import { Rng } from '../pipeline/random.js';
import { measurePeakGflops, onWasmKernels, productEngine } from './dense.js';
import { median, round3 } from './stats.js';

export interface EnsembleBenchResult {
  backend: string;
  peakGflops: number;
  train: { samplesPerSecond: number; gflops: number; ratio: number; msPerStep: number };
  predict: { samplesPerSecond: number; gflops: number; ratio: number; rows: number; msPerCall: number };
  workers2?: { samplesPerSecond: number; speedup: number; msPerStep: number };
  /** What computes the products (bench/dense.ts productEngine). */
  products: string;
  /** With the native gemm: the training step and the prediction on the wasm kernels alone, interleaved, and native / wasm speed. */
  wasm?: { trainMsPerStep: number; predictMsPerCall: number };
  nativeSpeedup?: { train: number; predict: number };
}


export async function benchEnsemble(opts: { seconds?: number; predictRows?: number; workers2?: boolean } = {}): Promise<EnsembleBenchResult> {
  const seconds = opts.seconds ?? 6;
  const rows = opts.predictRows ?? 50_000;
  const O = 17;
  const A = 6;
  const rng = new Rng(3, 'bench-ensemble');
  const ens = DynamicsEnsemble.create({}, { obsDim: O, actDim: A, env: 'halfcheetah' }, rng);
  const E = ens.config.members;
  const B = ens.config.batchSize;
  const xs = tf.tensor(rng.fillNormal(new Float32Array(E * B * ens.inDim)), [E, B, ens.inDim]);
  const ys = tf.tensor(rng.fillNormal(new Float32Array(E * B * ens.outDim)), [E, B, ens.outDim]);
  const obs = rng.fillNormal(new Float32Array(rows * O));
  const act = rng.fillUniform(new Float32Array(rows * A), -1, 1);
  const sync = () => ens.net.params()[0]!.dataSync();
  // The split: a shared block of 10 steps' rows, each member in its own random order.
  const splitSteps = 10;
  const n = splitSteps * B;
  const blockX = rng.fillNormal(new Float32Array(new SharedArrayBuffer(4 * n * ens.inDim)));
  const blockY = rng.fillNormal(new Float32Array(new SharedArrayBuffer(4 * n * ens.outDim)));
  const perms = Array.from({ length: E }, () => rng.permutation(n));
  let pool: EnsembleWorkerPool | null = null;
  try {
    if (opts.workers2 ?? true) {
      pool = await EnsembleWorkerPool.start(ens, { workers: 2, blockX, blockY });
      pool.trainBlock(perms, n);
    }
    for (let i = 0; i < 3; i++) ens.trainStep(xs, ys);
    ens.predict(obs.subarray(0, 1000 * O), act.subarray(0, 1000 * A));
    sync();
    const products = productEngine();
    const compare = products !== 'wasm';
    const peaks: number[] = [];
    const trainMs: number[] = [];
    const predictMs: number[] = [];
    const wasmTrainMs: number[] = [];
    const wasmPredictMs: number[] = [];
    const round = (train: number[], predict: number[]): void => {
      for (let i = 0; i < 5; i++) {
        const t0 = performance.now();
        ens.trainStep(xs, ys);
        sync();
        train.push(performance.now() - t0);
      }
      const t0 = performance.now();
      ens.predict(obs, act, rows);
      predict.push(performance.now() - t0);
    };
    if (compare) onWasmKernels(() => { for (let i = 0; i < 2; i++) ens.trainStep(xs, ys); sync(); });
    const deadline = performance.now() + seconds * 1000 * (compare ? 2 : 1);
    do {
      peaks.push(measurePeakGflops(0.2));
      round(trainMs, predictMs);
      if (compare) onWasmKernels(() => round(wasmTrainMs, wasmPredictMs));
    } while (performance.now() < deadline || predictMs.length < 2);
    const oneMs: number[] = [];
    const splitMs: number[] = [];
    for (let r = 0; pool && r < 4; r++) {
      let t0 = performance.now();
      for (let i = 0; i < splitSteps; i++) ens.trainStep(xs, ys);
      sync();
      oneMs.push((performance.now() - t0) / splitSteps);
      t0 = performance.now();
      pool.trainBlock(perms, n);
      splitMs.push((performance.now() - t0) / splitSteps);
    }
    const peak = median(peaks);
    const tMs = median(trainMs);
    const pMs = median(predictMs);
    const trainGf = (3 * ens.net.forwardFlops(B)) / (tMs * 1e6);
    const predGf = ens.net.forwardFlops(rows) / (pMs * 1e6);
    const sMs = median(splitMs);
    return {
      backend: tf.getBackend(),
      peakGflops: round3(peak),
      train: { samplesPerSecond: Math.round((E * B * 1000) / tMs), gflops: round3(trainGf), ratio: round3(trainGf / peak), msPerStep: round3(tMs) },
      predict: { samplesPerSecond: Math.round((rows * 1000) / pMs), gflops: round3(predGf), ratio: round3(predGf / peak), rows, msPerCall: Math.round(pMs) },
      ...(pool ? { workers2: { samplesPerSecond: Math.round((E * B * 1000) / sMs), speedup: round3(median(oneMs) / sMs), msPerStep: round3(sMs) } } : {}),
      products,
      ...(compare ? {
        wasm: { trainMsPerStep: round3(median(wasmTrainMs)), predictMsPerCall: Math.round(median(wasmPredictMs)) },
        nativeSpeedup: { train: round3(median(wasmTrainMs) / tMs), predict: round3(median(wasmPredictMs) / pMs) },
      } : {}),
    };
  } finally {
    await pool?.dispose();
    xs.dispose();
    ys.dispose();
    ens.dispose();
  }
}
