// rolloutInWorker: rolloutPenalized on the second core. The operator takes rollout requests (a
// round number and the policy weights to roll out) and emits each round's transition batches and,
// after its last batch, the round's statistics. A worker thread owns its own tfjs backend, the
// ensemble (loaded from its saved directory) and a pool of start states read from the dataset;
// batches come back as transferred buffers (no copy), policy weights go out the same way.
//
//   requests$.pipe(rolloutInWorker(rolloutConfig, { ensembleDir, dataset, sac, rng }))
//     → { type: 'batch', round, batch } … { type: 'round', round, stats, rng, busySeconds, waitSeconds }
//
// Rounds run in request order. Everything random in the worker comes from three Rng streams
// (start states, model sampling, policy noise); their states after each round come back with its
// statistics, so a checkpoint can restart the worker exactly where it was.
import { openTransitions } from './source.js';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Observable, lastValueFrom, tap, type OperatorFunction } from 'rxjs';
import * as tf from '@tensorflow/tfjs';
import { TransitionBatch, type TransitionColumns, type TransitionDims } from '../schemas/transition.js';
import { rolloutPenalized, resolveRolloutConfig, type RolloutConfig, type RolloutStats } from './rollout.js';
import type { ReadOptions } from './readTransitions.js';
import { DynamicsEnsemble } from './ensemble.js';
import { SacAgent, SacPolicy, type SacConfig } from './sac.js';
import { DenseStack } from '../pipeline/mlp.js';
import { initBackend } from '../pipeline/backend.js';
import { Rng } from '../pipeline/random.js';
import { UserError, isUserError } from '../pipeline/errors.js';
import { Subject } from 'rxjs';

/** Random-stream states of the worker (Rng.getState()). */
export interface RolloutRngState {
  starts: number[];
  model: number[];
  policy: number[];
}

export interface RolloutRequest {
  round: number;
  /** The SAC update count the weights are from (for the statistics). */
  step: number;
  /** Actor parameters (SacAgent.parameters().actor as host arrays), in params() order. */
  actorWeights: Float32Array[];
}

export type RolloutOutput =
  | { type: 'batch'; round: number; batch: TransitionBatch }
  | { type: 'round'; round: number; stats: RolloutStats; rng: RolloutRngState; busySeconds: number; waitSeconds: number };

export interface RolloutWorkerDeps {
  /** Directory of a saved DynamicsEnsemble. */
  ensembleDir: string;
  /** Dataset whose observations are the start states. */
  dataset: string;
  read?: ReadOptions;
  /** At most this many start states are held (a uniform reservoir of the dataset beyond it). */
  startPoolRows?: number;
  /** The SAC config the actor weights belong to (sizes, action bounds, log-std bounds). */
  sac: SacConfig;
  /** Restart the random streams from these states (a resumed run); default fresh from config.seed. */
  rng?: RolloutRngState;
  /** tfjs backend for the worker (default: as the main thread resolves it). */
  backend?: string;
  /** The worker's start-state pool is ready: its size and whether it is a reservoir sample. */
  onReady?: (info: { startStates: number; datasetRows: number; reservoir: boolean }) => void;
}

export const DEFAULT_START_POOL_ROWS = 2_000_000;

interface WorkerInit {
  kind: 'mopo-rollout';
  config: RolloutConfig;
  deps: Omit<RolloutWorkerDeps, 'onReady'>;
}

type ToWorker = { type: 'request'; request: RolloutRequest } | { type: 'stop' };
type FromWorker =
  | { type: 'ready'; startStates: number; datasetRows: number; reservoir: boolean }
  | { type: 'batch'; round: number; dims: TransitionDims; columns: TransitionColumns }
  | { type: 'round'; round: number; stats: RolloutStats; rng: RolloutRngState; busySeconds: number; waitSeconds: number }
  | { type: 'error'; message: string; user: boolean };

/** Buffers to transfer: whole-buffer views move, partial views are copied first (a transfer would detach their neighbours). */
function transferable(cols: TransitionColumns): { columns: TransitionColumns; transfer: ArrayBuffer[] } {
  const out = {} as Record<string, Float32Array | Uint8Array | Int32Array>;
  const transfer: ArrayBuffer[] = [];
  for (const [k, v] of Object.entries(cols) as [string, Float32Array | Uint8Array | Int32Array | undefined][]) {
    if (v === undefined) continue;
    const owned = v.byteOffset === 0 && v.byteLength === v.buffer.byteLength && v.buffer instanceof ArrayBuffer ? v : v.slice();
    out[k] = owned;
    if (!transfer.includes(owned.buffer as ArrayBuffer)) transfer.push(owned.buffer as ArrayBuffer);
  }
  return { columns: out as unknown as TransitionColumns, transfer };
}

/**
 * Operator: rollout requests in, batches and round statistics out, computed in a worker thread.
 * Unsubscribing (or the request stream completing after its last round) terminates the worker.
 */
export function rolloutInWorker(config: Partial<RolloutConfig>, deps: RolloutWorkerDeps): OperatorFunction<RolloutRequest, RolloutOutput> {
  const cfg = resolveRolloutConfig(config);
  return (requests) =>
    new Observable<RolloutOutput>((subscriber) => {
      const { onReady, ...plain } = deps;
      const init: WorkerInit = { kind: 'mopo-rollout', config: cfg, deps: plain };
      const worker = new Worker(new URL(import.meta.url), { workerData: init });
      let outstanding = 0;
      let requestsDone = false;
      let finished = false;
      const finish = (err?: unknown) => {
        if (finished) return;
        finished = true;
        sub.unsubscribe();
        void worker.terminate();
        if (err !== undefined) subscriber.error(err);
        else subscriber.complete();
      };
      worker.on('message', (m: FromWorker) => {
        if (finished) return;
        switch (m.type) {
          case 'ready':
            onReady?.({ startStates: m.startStates, datasetRows: m.datasetRows, reservoir: m.reservoir });
            break;
          case 'batch':
            subscriber.next({ type: 'batch', round: m.round, batch: new TransitionBatch(m.dims, m.columns) });
            break;
          case 'round':
            outstanding--;
            subscriber.next({ type: 'round', round: m.round, stats: m.stats, rng: m.rng, busySeconds: m.busySeconds, waitSeconds: m.waitSeconds });
            if (requestsDone && outstanding === 0) finish();
            break;
          case 'error':
            finish(m.user ? new UserError(m.message) : new Error(`rollout worker: ${m.message}`));
            break;
        }
      });
      worker.on('error', (e) => finish(e));
      worker.on('exit', (code) => {
        if (!finished) finish(new Error(`rollout worker exited with code ${code} before the rollouts were done`));
      });
      const sub = requests.subscribe({
        next: (r) => {
          outstanding++;
          worker.postMessage({ type: 'request', request: r } satisfies ToWorker, r.actorWeights.map((w) => w.buffer as ArrayBuffer).filter((b, i, a) => a.indexOf(b) === i));
        },
        error: (e) => finish(e),
        complete: () => {
          requestsDone = true;
          if (outstanding === 0) finish();
        },
      });
      return () => {
        finished = true;
        sub.unsubscribe();
        void worker.terminate();
      };
    });
}

/** Host copies of the actor's parameters, ready to be transferred to the worker. */
export function actorWeightsOf(agent: SacAgent): Float32Array[] {
  return agent.parameters().actor.map((p) => (p.dataSync() as Float32Array).slice());
}

// ---------------------------------------------------------------------------------------------
// Start states: every observation of the dataset, or a uniform reservoir of poolRows of them.

export class StartStatePool {
  readonly obsDim: number;
  readonly capacity: number;
  private data: Float32Array;
  private size = 0;
  private seen = 0;
  private readonly rng: Rng;

  constructor(obsDim: number, capacity: number, seed: number) {
    this.obsDim = obsDim;
    this.capacity = capacity;
    this.data = new Float32Array(Math.min(capacity, 65_536) * obsDim);
    this.rng = new Rng(seed, 'rollout/reservoir');
  }

  get rows(): number {
    return this.size;
  }

  get datasetRows(): number {
    return this.seen;
  }

  /** Algorithm R: row i > capacity replaces a random held row with probability capacity / i. */
  add(obs: Float32Array, n: number): void {
    const O = this.obsDim;
    for (let i = 0; i < n; i++) {
      this.seen++;
      let slot: number;
      if (this.size < this.capacity) {
        if ((this.size + 1) * O > this.data.length) {
          const grown = new Float32Array(Math.min(this.capacity, Math.max(2 * this.size, 1)) * O);
          grown.set(this.data.subarray(0, this.size * O));
          this.data = grown;
        }
        slot = this.size++;
      } else {
        const j = Math.floor(this.rng.next() * this.seen);
        if (j >= this.capacity) continue;
        slot = j;
      }
      this.data.set(obs.subarray(i * O, (i + 1) * O), slot * O);
    }
  }

  sample(n: number, rng: Rng): Float32Array {
    const O = this.obsDim;
    if (this.size === 0) throw new Error('StartStatePool: empty');
    const out = new Float32Array(n * O);
    for (let i = 0; i < n; i++) {
      const r = rng.int(this.size);
      out.set(this.data.subarray(r * O, (r + 1) * O), i * O);
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// The worker side.

async function workerMain(init: WorkerInit): Promise<void> {
  const port = parentPort!;
  const post = (m: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
  try {
    const { config: cfg, deps } = init;
    await initBackend({ ...(deps.backend ? { backend: deps.backend } : {}), log: () => {} });
    const ensemble = await DynamicsEnsemble.load(deps.ensembleDir);
    const pool = new StartStatePool(ensemble.obsDim, deps.startPoolRows ?? DEFAULT_START_POOL_ROWS, cfg.seed);
    await lastValueFrom(openTransitions(deps.dataset, deps.read ?? {}).pipe(tap((b) => pool.add(b.observation, b.length))), { defaultValue: undefined });
    post({ type: 'ready', startStates: pool.rows, datasetRows: pool.datasetRows, reservoir: pool.datasetRows > pool.rows });

    const dims = { obsDim: ensemble.obsDim, actDim: ensemble.actDim };
    const rng = {
      starts: new Rng(cfg.seed, 'rollout/starts'),
      model: new Rng(cfg.seed, 'rollout/model'),
      policy: new Rng(cfg.seed, 'rollout/policy'),
    };
    if (deps.rng) {
      rng.starts.setState(deps.rng.starts);
      rng.model.setState(deps.rng.model);
      rng.policy.setState(deps.rng.policy);
    }
    const spec = SacAgent.actorSpec(deps.sac, dims);
    let policy: SacPolicy | null = null;
    let round = -1;
    // busy: seconds spent in rounds; wait: seconds idle between a round's end and the next request.
    let busy = 0;
    let wait = 0;
    let idleSince = performance.now();
    const triggers = new Subject<{ policy: SacPolicy; step: number }>();
    triggers
      .pipe(
        rolloutPenalized(cfg, {
          model: ensemble,
          sampleStarts: (n, r) => pool.sample(n, r),
          rng: { starts: rng.starts, model: rng.model },
          onStats: (stats) => {
            busy += stats.seconds.total;
            post({
              type: 'round',
              round,
              stats,
              rng: { starts: rng.starts.getState(), model: rng.model.getState(), policy: rng.policy.getState() },
              busySeconds: busy,
              waitSeconds: wait,
            });
          },
        }),
      )
      .subscribe({
        next: (b) => {
          const { columns, transfer } = transferable(b.columns);
          post({ type: 'batch', round, dims: b.dims, columns }, transfer);
        },
        error: (e) => post({ type: 'error', message: e instanceof Error ? e.message : String(e), user: isUserError(e) }),
      });

    port.on('message', (m: ToWorker) => {
      if (m.type === 'stop') process.exit(0);
      wait += (performance.now() - idleSince) / 1000;
      try {
        const r = m.request;
        const params = r.actorWeights.map((w, i) => tf.tensor(w, paramShape(spec, i), 'float32'));
        policy?.dispose();
        policy = new SacPolicy(DenseStack.fromParams(spec, params), dims, deps.sac, rng.policy);
        round = r.round;
        triggers.next({ policy, step: r.step }); // the whole round runs synchronously in here
      } catch (e) {
        post({ type: 'error', message: e instanceof Error ? e.message : String(e), user: isUserError(e) });
      }
      idleSince = performance.now();
    });
  } catch (e) {
    post({ type: 'error', message: e instanceof Error ? e.message : String(e), user: isUserError(e) });
  }
}


/** Shape of the i-th parameter of a DenseStack: [W1, b1, W2, b2, …]. */
function paramShape(spec: { sizes: number[] }, i: number): number[] {
  const layer = i >> 1;
  return i % 2 === 0 ? [spec.sizes[layer]!, spec.sizes[layer + 1]!] : [spec.sizes[layer + 1]!];
}

if (!isMainThread && (workerData as WorkerInit | undefined)?.kind === 'mopo-rollout') {
  void workerMain(workerData as WorkerInit);
}
