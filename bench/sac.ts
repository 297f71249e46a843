// SAC update throughput on the selected TensorFlow.js backend, at halfcheetah sizes.
//
//   benchSac({ seconds?, backend?, rounds? })
//     -> { backend, updatesPerSecond, msPerUpdate, flopsPerUpdate, gflops, peakGflops, ratio }
//
// update   one full SacAgent.update (reference settings: obs 17, act 6, batch 256, actor and twin
//          critics 2×256 ReLU): critic step, actor step, α step, Polyak target update; metrics are
//          not read back (update(batch, { metrics: false })). Batches are random transitions,
//          pre-drawn, cycled.
// flops    matmuls only, as counted by sacUpdateFlops (operators/sac.ts header), per update:
//            actor forward on s'                 2B(17·256 + 256·256 + 256·12)          37.4 M
//            target critics on (s', a')          2 × 2B(23·256 + 256·256 + 256)          73.4 M
//            critics on (s, a) forward           73.4 M
//            critics backward: dW all layers     73.4 M; dX of layers 2-3  67.4 M
//            actor forward on s                  37.4 M
//            critics on (s, ã) forward           73.4 M
//            critics input gradient (dX only; layer 1 only its 6 action rows)  67.4 + 1.6 M
//            actor backward: dW 37.4 M; dX of layers 2-3  35.1 M
//          total ≈ 577 MFLOP. Elementwise work (squash, log-prob, Adam, Polyak) is not counted.
// peak     bench/dense.ts's peak (plain 256³ matMul, median of many timings: measurePeakGflops),
//          measured for a short slice before every round of SAC timings, so peak and SAC are
//          measured interleaved in the same run; the median of the rounds' peaks is reported.
// ratio    gflops / peakGflops.
// products what computes the products; with the native gemm, each round also times the updates on
//          the wasm kernels alone (wasmUpdatesPerSecond) and nativeSpeedup = native / wasm updates/s.
//
// From the CLI: mopo bench sac [--seconds 8] [--backend wasm]

import { initBackend } from '../pipeline/backend.js';
import { Rng } from '../pipeline/random.js';
import { TransitionBatch } from '../schemas/transition.js';
import { SacAgent } from '../operators/sac.js';
import { measurePeakGflops, onWasmKernels, productEngine } from './dense.js';
import { median, round3 } from './stats.js';

export interface SacBenchResult {
  backend: string;
  updatesPerSecond: number;
  msPerUpdate: number;
  flopsPerUpdate: number;
  gflops: number;
  peakGflops: number;
  ratio: number;
  /** What computes the products (see bench/dense.ts productEngine). */
  products: string;
  /** With the native gemm: updates/s on the wasm kernels alone, interleaved in the same run, and native / wasm. */
  wasmUpdatesPerSecond?: number;
  nativeSpeedup?: number;
}

export const SAC_BENCH_DIMS = { obsDim: 17, actDim: 6 } as const;
export const SAC_BENCH_BATCH = 256;

function randomBatches(rng: Rng, count: number): TransitionBatch[] {
  return Array.from({ length: count }, () => {
    const b = TransitionBatch.allocate(SAC_BENCH_DIMS, SAC_BENCH_BATCH);
    rng.fillNormal(b.observation);
    rng.fillNormal(b.nextObservation);
    rng.fillUniform(b.action, -1, 1);
    rng.fillNormal(b.reward);
    for (let i = 0; i < b.length; i++) b.terminal[i] = rng.next() < 0.01 ? 1 : 0;
    return b;
  });
}

export async function benchSac(opts: { seconds?: number; backend?: string; rounds?: number } = {}): Promise<SacBenchResult> {
  const backend = await initBackend(opts.backend !== undefined ? { backend: opts.backend } : {});
  const seconds = opts.seconds ?? 6;
  const rounds = Math.max(1, opts.rounds ?? 4);
  const rng = new Rng(1, 'bench-sac');
  const agent = SacAgent.create({}, SAC_BENCH_DIMS, rng);
  const batches = randomBatches(rng, 8);
  const sync = () => void agent.parameters().actor[0]!.dataSync();
  try {
    const flops = agent.updateFlops(SAC_BENCH_BATCH);
    // Warm-up: XNNPACK operators, heap growth, JIT.
    for (let i = 0; i < 5; i++) agent.update(batches[i % batches.length]!, { metrics: false });
    sync();
    const products = productEngine();
    const compare = products !== 'wasm';
    const k = 4; // updates per timing
    const peaks: number[] = [];
    const ms: number[] = [];
    const wasmMs: number[] = [];
    let u = 0;
    const time = (into: number[], until: number): void => {
      do {
        const t0 = performance.now();
        for (let i = 0; i < k; i++) agent.update(batches[u++ % batches.length]!, { metrics: false });
        sync();
        into.push((performance.now() - t0) / k);
      } while (performance.now() < until);
    };
    if (compare) onWasmKernels(() => time([], performance.now() + 200)); // its warm-up
    for (let r = 0; r < rounds; r++) {
      peaks.push(measurePeakGflops(Math.min(1, (0.25 * seconds) / rounds)));
      time(ms, performance.now() + (0.75 * seconds * 1000) / rounds);
      if (compare) onWasmKernels(() => time(wasmMs, performance.now() + (0.75 * seconds * 1000) / rounds));
    }
    const msPerUpdate = median(ms);
    const gflops = flops / (msPerUpdate * 1e6);
    const peakGflops = median(peaks);
    return {
      backend,
      updatesPerSecond: round3(1000 / msPerUpdate),
      msPerUpdate: round3(msPerUpdate),
      flopsPerUpdate: flops,
      gflops: round3(gflops),
      peakGflops: round3(peakGflops),
      ratio: round3(gflops / peakGflops),
      products,
      ...(compare ? { wasmUpdatesPerSecond: round3(1000 / median(wasmMs)), nativeSpeedup: round3(median(wasmMs) / msPerUpdate) } : {}),
    };
  } finally {
    agent.dispose();
  }
}
