// Worker-thread side of EnsembleWorkerPool (./ensembleWorkerPool.ts has the protocol and why):
// trains members [from, to) as an ensemble of their own on the shared shuffle blocks, summing the
// shared bounds' gradient with the other workers every step.
import { workerData } from 'node:worker_threads';
import { initBackend } from '../pipeline/backend.js';
import { DynamicsEnsemble, fillMemberBatch, type BoundGradReducer } from './ensemble.js';
import { CTRL, type EnsembleWorkerCommand, type EnsembleWorkerData, type EnsembleWorkerReply } from './ensembleWorkerPool.js';

const d = workerData as EnsembleWorkerData;
const ctrl = new Int32Array(d.ctrl);
const port = d.port;
const me = d.index;
const K = d.workers;
const { from, to } = d.state;
const D = d.dims.obsDim + 1;

function reply(r: EnsembleWorkerReply, transfer: ArrayBuffer[] = []): void {
  port.postMessage(r, transfer);
  Atomics.add(ctrl, CTRL.mail, 1);
  Atomics.notify(ctrl, CTRL.mail);
}

function replyError(e: unknown): void {
  // Wake the other workers at the exchange: without this worker's sums they would wait forever.
  Atomics.store(ctrl, CTRL.abort, 1);
  for (let k = 0; k < K; k++) Atomics.notify(ctrl, CTRL.seq + k);
  reply({ type: 'error', message: e instanceof Error ? e.message : String(e), stack: e instanceof Error ? e.stack : undefined });
}

const exchange = new Float64Array(d.exchange);
let step = 0;
/** Publishes this shard's sums, waits for every other worker's, and adds them all in worker order. */
const reduceBounds: BoundGradReducer = (maxLV, minLV) => {
  step++;
  const slot = (k: number) => (k * 2 + (step & 1)) * 2 * D;
  const own = slot(me);
  for (let j = 0; j < D; j++) {
    exchange[own + j] = maxLV[j]!;
    exchange[own + D + j] = minLV[j]!;
  }
  Atomics.store(ctrl, CTRL.seq + me, step);
  Atomics.notify(ctrl, CTRL.seq + me);
  for (let k = 0; k < K; k++) {
    for (;;) {
      const s = Atomics.load(ctrl, CTRL.seq + k);
      if (s >= step) break;
      if (Atomics.load(ctrl, CTRL.abort) !== 0) throw new Error('aborted');
      Atomics.wait(ctrl, CTRL.seq + k, s, 1000);
    }
  }
  for (let j = 0; j < D; j++) {
    let a = 0;
    let b = 0;
    for (let k = 0; k < K; k++) {
      a += exchange[slot(k) + j]!;
      b += exchange[slot(k) + D + j]!;
    }
    maxLV[j] = a;
    minLV[j] = b;
  }
};

let ens: DynamicsEnsemble;
try {
  await initBackend({ backend: d.backend, log: () => undefined });
  ens = DynamicsEnsemble.fromMembers(d.config, d.dims, d.state);
} catch (e) {
  replyError(e);
  port.close();
  throw e;
}
const In = ens.inDim;
const Out = ens.outDim;
const blockX = new Float32Array(d.blockX);
const blockY = new Float32Array(d.blockY);
const allPerms = new Uint32Array(d.perms);

function trainBlock(n: number): void {
  const perms = Array.from({ length: to - from }, (_, e) => allPerms.subarray((from + e) * d.blockRows, (from + e) * d.blockRows + n));
  const B = d.config.batchSize;
  for (let s = 0; s < n; s += B) {
    const b = Math.min(B, n - s);
    const { xs, ys } = fillMemberBatch(blockX, blockY, perms, s, b, In, Out);
    ens.trainStep(xs, ys, false, reduceBounds);
    Atomics.add(ctrl, CTRL.progress, 1);
  }
}

port.on('message', (cmd: EnsembleWorkerCommand) => {
  try {
    if (cmd.type === 'block') {
      trainBlock(cmd.n);
      reply({ type: 'block-done' });
    } else {
      const state = ens.exportMembers(0, to - from, true);
      state.from = from;
      state.to = to;
      const buffers = [...state.params, ...state.m, ...state.v, ...(state.lossSum ? [state.lossSum] : [])].map((a) => a.buffer as ArrayBuffer);
      reply({ type: 'state', state }, buffers);
    }
  } catch (e) {
    replyError(e);
  }
});
reply({ type: 'ready' });
