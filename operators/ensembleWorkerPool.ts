// Ensemble training split across worker threads (EnsembleConfig.workers > 1): the main thread keeps
// the source, the shuffle blocks, the validation and the checkpoints; k workers (each its own tfjs
// backend) train contiguous member ranges on the same blocks. Worker code: ./ensembleWorker.ts.
// Measured at the reference size (7 members 4 + 3, batch 256, halfcheetah dims, wasm, both cores
// free): 40 vs 66 ms a step (1.6×), an epoch from Parquet 1.5×; the workers take ~1 s to start.
// The 4 + 3 split is not rebalanced (say by splitting one member's batch between the workers): with
// the native gemm, 2026-12-07, the other training paused, 3 + 3 members took 12.3 ms a step, 4 + 3
// 14.6 and 4 + 4 16.3 (medians of 12 blocks of 10 steps): a member more on each worker costs 4 ms,
// one more on one of them 2.3, so 3½ + 3½ (about 14.3 ms, plus the split member's gradient
// exchange) would gain some 2 %.
//
//   const pool = await EnsembleWorkerPool.start(ens, { workers: 2, blockX, blockY })
//   pool.trainBlock(perms, n)   // blocks until every worker has trained the block's n rows
//   pool.gather(ens)            // the workers' members, bounds, Adam state, losses → ens
//   await pool.dispose()        // terminates the workers (also on error or unsubscribe)
//
// Why it looks like this:
//   - Shared memory, not messages, for the data: blockX/blockY and the per-member permutations live
//     in SharedArrayBuffers, so a block is handed over by one small message, and every member keeps
//     the permutation the single-thread loop would draw (the main thread still draws them all).
//   - The log-variance bounds are shared by all members, so their gradient is a sum over members:
//     each step, every worker writes its shard's sums into a slot of `exchange` and waits
//     (Atomics) until all have; every worker then adds the slots in the same order, so all copies
//     of the bounds get the same update bit for bit. Two slots per worker (step parity) suffice: a
//     worker cannot start step s + 2 before every other worker has published step s + 1, which
//     each does only after reading step s.
//   - The main thread waits synchronously (Atomics.wait + receiveMessageOnPort): training stays
//     synchronous inside the source's `next`, as on one thread, so a fast source still waits for
//     the model and memory stays bounded by one block.
//   - A worker that stops making steps for STALL_MS (a crash the main thread cannot see while it
//     waits) fails the run instead of hanging it. Workers are unref'd: they never keep the process
//     alive, and liveEnsembleWorkers() lets tests check that none is left.
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { tf } from '../pipeline/backend.js';
import type { BackendName } from '../pipeline/backend.js';
import type { TransitionDims } from '../schemas/transition.js';
import type { DynamicsEnsemble, EnsembleConfig, EnsembleMembersState } from './ensemble.js';

/** Int32 slots of the control buffer. */
export const CTRL = { abort: 0, mail: 1, progress: 2, seq: 3 } as const;

export interface EnsembleWorkerData {
  index: number;
  workers: number;
  backend: BackendName;
  config: EnsembleConfig;
  dims: TransitionDims;
  state: EnsembleMembersState;
  /** Rows a block can hold (the permutation stride). */
  blockRows: number;
  blockX: SharedArrayBuffer;
  blockY: SharedArrayBuffer;
  /** Uint32 [members, blockRows]: member e's permutation of the current block. */
  perms: SharedArrayBuffer;
  /** Int32 control slots (CTRL; seq + k is worker k's last published step). */
  ctrl: SharedArrayBuffer;
  /** Float64 [workers, 2 (step parity), 2, D]: the shards' bound-gradient sums. */
  exchange: SharedArrayBuffer;
  port: MessagePort;
}

export type EnsembleWorkerCommand = { type: 'block'; n: number } | { type: 'gather' };

export type EnsembleWorkerReply =
  | { type: 'ready' }
  | { type: 'block-done' }
  | { type: 'state'; state: EnsembleMembersState }
  | { type: 'error'; message: string; stack?: string | undefined };

const STALL_MS = 120_000;

let live = 0;

/** Worker threads of all pools that have not exited yet. */
export function liveEnsembleWorkers(): number {
  return live;
}

/** Contiguous member ranges, sizes differing by at most one (larger ranges first). */
export function splitMembers(members: number, workers: number): Array<[number, number]> {
  const k = Math.min(workers, members);
  const out: Array<[number, number]> = [];
  let from = 0;
  for (let i = 0; i < k; i++) {
    const n = Math.floor(members / k) + (i < members % k ? 1 : 0);
    out.push([from, from + n]);
    from += n;
  }
  return out;
}

function backendName(): BackendName {
  const b = tf.getBackend();
  return b === 'tensorflow' ? 'node' : b === 'cpu' ? 'cpu' : 'wasm';
}

export class EnsembleWorkerPool {
  private readonly workers: Worker[];
  private readonly ports: MessagePort[];
  private readonly ctrl: Int32Array;
  private readonly perms: Uint32Array;
  private readonly blockRows: number;
  private failure: Error | null = null;
  private disposed = false;

  private constructor(workers: Worker[], ports: MessagePort[], ctrl: Int32Array, perms: Uint32Array, blockRows: number) {
    this.workers = workers;
    this.ports = ports;
    this.ctrl = ctrl;
    this.perms = perms;
    this.blockRows = blockRows;
  }

  /**
   * Starts min(workers, members) workers, each with a copy of its members of `ens` (weights, bounds,
   * Adam state). blockX [blockRows, in] and blockY [blockRows, out] must be SharedArrayBuffer views;
   * the main thread fills them before each trainBlock.
   */
  static async start(ens: DynamicsEnsemble, opts: { workers: number; blockX: Float32Array; blockY: Float32Array }): Promise<EnsembleWorkerPool> {
    const { blockX, blockY } = opts;
    if (!(blockX.buffer instanceof SharedArrayBuffer) || !(blockY.buffer instanceof SharedArrayBuffer)) throw new TypeError('EnsembleWorkerPool: blockX and blockY must be SharedArrayBuffer views');
    const blockRows = blockX.length / ens.inDim;
    if (!Number.isInteger(blockRows) || blockY.length !== blockRows * ens.outDim) throw new RangeError('EnsembleWorkerPool: blockX and blockY hold different row counts');
    const ranges = splitMembers(ens.members, opts.workers);
    const K = ranges.length;
    const ctrlBuf = new SharedArrayBuffer(4 * (CTRL.seq + K));
    const permsBuf = new SharedArrayBuffer(4 * ens.members * blockRows);
    const exchange = new SharedArrayBuffer(8 * K * 2 * 2 * ens.outDim);
    const backend = backendName();
    const workers: Worker[] = [];
    const ports: MessagePort[] = [];
    const pool = new EnsembleWorkerPool(workers, ports, new Int32Array(ctrlBuf), new Uint32Array(permsBuf), blockRows);
    const url = new URL('./ensembleWorker.js', import.meta.url);
    try {
      for (let k = 0; k < K; k++) {
        const { port1, port2 } = new MessageChannel();
        const data: EnsembleWorkerData = {
          index: k, workers: K, backend, config: ens.config, dims: ens.dims,
          state: ens.exportMembers(ranges[k]![0], ranges[k]![1]), blockRows,
          blockX: blockX.buffer, blockY: blockY.buffer, perms: permsBuf, ctrl: ctrlBuf, exchange, port: port2,
        };
        // No inherited flags: the worker needs none, and some make it fail to start (a parent run as
        // `node --input-type=module -e …`), while V8 flags such as heap caps apply process-wide anyway.
        const w = new Worker(url, { workerData: data, transferList: [port2], execArgv: [] });
        live++;
        w.unref();
        port1.unref();
        // Seen only between synchronous waits; a worker dying inside one is caught by the stall timeout.
        w.on('error', (e) => pool.fail(e instanceof Error ? e : new Error(String(e))));
        w.on('exit', (code) => {
          live--;
          if (!pool.disposed) pool.fail(new Error(`ensemble worker ${k} exited (code ${code})`));
        });
        workers.push(w);
        ports.push(port1);
      }
      // Poll asynchronously while the workers load (a worker failing to load reports through 'error').
      const pending = new Set(ports.keys());
      const t0 = performance.now();
      while (pending.size > 0) {
        for (const k of [...pending]) {
          const r = pool.receive(k);
          if (r !== null) {
            if (r.type !== 'ready') throw new Error(`ensemble worker ${k}: unexpected ${r.type} at start`);
            pending.delete(k);
          }
        }
        if (pool.failure) throw pool.failure;
        if (performance.now() - t0 > STALL_MS) throw new Error(`ensemble workers did not start within ${STALL_MS / 1000} s`);
        if (pending.size > 0) await new Promise((r) => setTimeout(r, 5));
      }
    } catch (e) {
      await pool.dispose();
      throw e;
    }
    return pool;
  }

  get size(): number {
    return this.workers.length;
  }

  private fail(e: Error): void {
    this.failure ??= e;
  }

  /** The next reply of worker k, or null; an error reply throws. */
  private receive(k: number): EnsembleWorkerReply | null {
    const m = receiveMessageOnPort(this.ports[k]!);
    if (m === undefined) return null;
    const r = m.message as EnsembleWorkerReply;
    if (r.type === 'error') {
      const e = new Error(`ensemble worker ${k}: ${r.message}`);
      if (r.stack) e.stack = `${e.message}\n[worker ${k}] ${r.stack}`;
      throw e;
    }
    return r;
  }

  /** Sends cmd to every worker and waits (synchronously) for every reply. */
  private call(cmd: EnsembleWorkerCommand): EnsembleWorkerReply[] {
    if (this.disposed) throw new Error('EnsembleWorkerPool: used after dispose');
    if (this.failure) throw this.failure;
    const K = this.workers.length;
    for (const p of this.ports) p.postMessage(cmd);
    const replies: Array<EnsembleWorkerReply | null> = new Array<EnsembleWorkerReply | null>(K).fill(null);
    let progress = Atomics.load(this.ctrl, CTRL.progress);
    let lastChange = performance.now();
    try {
      for (;;) {
        // Read the mailbox counter before the ports, so a reply posted in between wakes the wait.
        const mail = Atomics.load(this.ctrl, CTRL.mail);
        for (let k = 0; k < K; k++) if (replies[k] === null) replies[k] = this.receive(k);
        if (replies.every((r) => r !== null)) return replies as EnsembleWorkerReply[];
        Atomics.wait(this.ctrl, CTRL.mail, mail, 1000);
        const p = Atomics.load(this.ctrl, CTRL.progress);
        if (p !== progress) {
          progress = p;
          lastChange = performance.now();
        } else if (performance.now() - lastChange > STALL_MS) {
          throw new Error(`ensemble workers made no progress for ${STALL_MS / 1000} s`);
        }
      }
    } catch (e) {
      // The pool is unusable now; wake any worker waiting at the exchange so it can stop.
      this.abort();
      this.fail(e instanceof Error ? e : new Error(String(e)));
      throw e;
    }
  }

  /** Trains every worker's members on the block's n rows, member e in the order perms[e]. */
  trainBlock(perms: readonly Uint32Array[], n: number): void {
    if (n > this.blockRows) throw new RangeError(`trainBlock: ${n} rows exceed the block of ${this.blockRows}`);
    perms.forEach((p, e) => this.perms.set(p.subarray(0, n), e * this.blockRows));
    this.call({ type: 'block', n });
  }

  /** Copies the workers' state (members, bounds, Adam, counters; takes their training loss) into ens. */
  gather(ens: DynamicsEnsemble): void {
    const replies = this.call({ type: 'gather' });
    ens.importMembers(replies.map((r, k) => {
      if (r.type !== 'state') throw new Error(`ensemble worker ${k}: unexpected ${r.type} reply to gather`);
      return r.state;
    }));
  }

  private abort(): void {
    Atomics.store(this.ctrl, CTRL.abort, 1);
    for (let i = 0; i < this.ctrl.length; i++) Atomics.notify(this.ctrl, i);
  }

  /** Terminates the workers (idempotent). */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.abort();
    for (const p of this.ports) p.close();
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
