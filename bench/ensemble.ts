// Dynamics-ensemble throughput at the reference size (7 members, 23 → 4×200 swish → 2×18,
// halfcheetah dims), beside the dense peak measured in the same run.
//
//   benchEnsemble({ seconds?, predictRows? }) ->
//     { backend, peakGflops, train: { samplesPerSecond, gflops, ratio }, predict: { samplesPerSecond, gflops, ratio } }
//
// train    full DynamicsEnsemble.trainStep (forward, NLL with learned log-variance bounds, hand-written
//          backward, weight decay, Adam) on per-member batches of 256. samplesPerSecond counts
//          member-samples (7 × 256 a step); flops = 3 × forward matmul flops (dX and dW per layer).
// predict  DynamicsEnsemble.predict on a rollout batch (default 50,000 rows): normalization, the
//          batched forward of every member, and the conversion back to the original scale.
//          samplesPerSecond counts rows (each predicted by all 7 members); flops = forward matmuls.
// ratio    gflops / peakGflops (bench/dense.ts's measurePeakGflops, interleaved with the timings).
//
// From the CLI: mopo bench ensemble [--seconds 6] [--rows 50000]
import { tf } from '../pipeline/backend.js';
import { DynamicsEnsemble } from '../operators/ensemble.js';
import { Rng } from '../pipeline/random.js';
import { measurePeakGflops } from './dense.js';
import { median, round3 } from './stats.js';

export interface EnsembleBenchResult {
  backend: string;
  peakGflops: number;
  train: { samplesPerSecond: number; gflops: number; ratio: number; msPerStep: number };
  predict: { samplesPerSecond: number; gflops: number; ratio: number; rows: number; msPerCall: number };
}


export async function benchEnsemble(opts: { seconds?: number; predictRows?: number } = {}): Promise<EnsembleBenchResult> {
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
  try {
    for (let i = 0; i < 3; i++) ens.trainStep(xs, ys);
    ens.predict(obs.subarray(0, 1000 * O), act.subarray(0, 1000 * A));
    sync();
    const peaks: number[] = [];
    const trainMs: number[] = [];
    const predictMs: number[] = [];
    const deadline = performance.now() + seconds * 1000;
    do {
      peaks.push(measurePeakGflops(0.2));
      for (let i = 0; i < 5; i++) {
        const t0 = performance.now();
        ens.trainStep(xs, ys);
        sync();
        trainMs.push(performance.now() - t0);
      }
      const t0 = performance.now();
      ens.predict(obs, act, rows);
      predictMs.push(performance.now() - t0);
    } while (performance.now() < deadline || predictMs.length < 2);
    const peak = median(peaks);
    const tMs = median(trainMs);
    const pMs = median(predictMs);
    const trainGf = (3 * ens.net.forwardFlops(B)) / (tMs * 1e6);
    const predGf = ens.net.forwardFlops(rows) / (pMs * 1e6);
    return {
      backend: tf.getBackend(),
      peakGflops: round3(peak),
      train: { samplesPerSecond: Math.round((E * B * 1000) / tMs), gflops: round3(trainGf), ratio: round3(trainGf / peak), msPerStep: round3(tMs) },
      predict: { samplesPerSecond: Math.round((rows * 1000) / pMs), gflops: round3(predGf), ratio: round3(predGf / peak), rows, msPerCall: Math.round(pMs) },
    };
  } finally {
    xs.dispose();
    ys.dispose();
    ens.dispose();
  }
}
