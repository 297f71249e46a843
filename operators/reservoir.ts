// RealDataReservoir: the real-data buffer when the dataset is larger than its budget. One pass
// fills a uniform reservoir (Algorithm R) of `budget` rows; then, at every rollout round, the
// stream moves on by `chunk` rows (cycling through the dataset) and each passing row replaces a
// random slot with probability budget / N — so over one cycle about `budget` rows are renewed and
// every row of the dataset has the same chance to be in the buffer, while memory stays at the
// budget. Refresh k draws only from Rng(seed, 'reservoir/k') and reads only chunk k, so the
// reservoir after round k is a pure function of k: a resumed run rebuilds it exactly.
import { lastValueFrom, tap, type Observable } from 'rxjs';
import { TransitionBatch, type OptionalColumn, type TransitionDims } from '../schemas/transition.js';
import { Rng } from '../pipeline/random.js';
import type { ReadOptions } from './readTransitions.js';
import { openTransitions } from './source.js';

export interface ReservoirInfo {
  datasetRows: number;
  budget: number;
  /** Rows of the stream passed per refresh, and refreshes per cycle through the dataset. */
  chunk: number;
  refreshesPerCycle: number;
}

/** Copies row `r` of batch `b` into row `slot` of `store` (every column the store has). */
function copyRow(store: TransitionBatch, slot: number, b: TransitionBatch, r: number): void {
  const O = store.obsDim;
  const A = store.actDim;
  store.observation.set(b.observation.subarray(r * O, (r + 1) * O), slot * O);
  store.nextObservation.set(b.nextObservation.subarray(r * O, (r + 1) * O), slot * O);
  store.action.set(b.action.subarray(r * A, (r + 1) * A), slot * A);
  store.reward[slot] = b.reward[r]!;
  store.terminal[slot] = b.terminal[r]!;
  store.timeout[slot] = b.timeout[r]!;
}

export class RealDataReservoir {
  readonly store: TransitionBatch;
  readonly info: ReservoirInfo;
  private readonly open: (read: ReadOptions) => Observable<TransitionBatch>;
  private readonly seed: number;
  private refreshed = 0;

  private constructor(store: TransitionBatch, info: ReservoirInfo, open: (read: ReadOptions) => Observable<TransitionBatch>, seed: number) {
    this.store = store;
    this.info = info;
    this.open = open;
    this.seed = seed;
  }

  /**
   * Reads the dataset once. Returns null when it fits the budget (then `batches` holds it all, to
   * be kept by reference); otherwise the reservoir (and `batches` is empty).
   */
  static async fill(path: string, read: ReadOptions, budget: number, seed: number, refreshesPerCycle = 100): Promise<{ reservoir: RealDataReservoir | null; batches: TransitionBatch[]; dims: TransitionDims }> {
    const open = (r: ReadOptions) => openTransitions(path, { ...read, ...r });
    const rng = new Rng(seed, 'reservoir/fill');
    let batches: TransitionBatch[] = [];
    let rows = 0;
    let store: TransitionBatch | null = null;
    let dims: TransitionDims | null = null;
    await lastValueFrom(
      open({}).pipe(
        tap((b) => {
          dims ??= { obsDim: b.obsDim, actDim: b.actDim, ...(b.env ? { env: b.env } : {}) };
          if (store === null && rows + b.length <= budget) {
            batches.push(b);
            rows += b.length;
            return;
          }
          if (store === null) {
            // Over budget: switch to a reservoir holding what was kept so far.
            store = TransitionBatch.allocate(dims, budget, [] as OptionalColumn[]);
            let at = 0;
            for (const k of batches) for (let r = 0; r < k.length; r++) copyRow(store, at++, k, r);
            batches = [];
          }
          for (let r = 0; r < b.length; r++, rows++) {
            if (rows < budget) copyRow(store, rows, b, r);
            else {
              const j = Math.floor(rng.next() * (rows + 1));
              if (j < budget) copyRow(store, j, b, r);
            }
          }
        }),
      ),
      { defaultValue: undefined },
    );
    if (dims === null) return { reservoir: null, batches: [], dims: { obsDim: 0, actDim: 0 } };
    if (store === null) return { reservoir: null, batches, dims };
    const chunk = Math.ceil(rows / refreshesPerCycle);
    return { reservoir: new RealDataReservoir(store, { datasetRows: rows, budget, chunk, refreshesPerCycle }, open, seed), batches: [], dims };
  }

  /** Refresh number k (1, 2, …): the next `chunk` rows of the cycling stream, in place. */
  async refresh(k: number): Promise<number> {
    const { datasetRows: N, budget, chunk } = this.info;
    const rng = new Rng(this.seed, `reservoir/${k}`);
    const start = ((k - 1) * chunk) % N;
    const end = Math.min(start + chunk, N);
    const p = budget / N;
    let replaced = 0;
    await lastValueFrom(
      this.open({ rows: { start, end } }).pipe(
        tap((b) => {
          for (let r = 0; r < b.length; r++) {
            if (rng.next() < p) {
              copyRow(this.store, rng.int(budget), b, r);
              replaced++;
            }
          }
        }),
      ),
      { defaultValue: undefined },
    );
    this.refreshed = k;
    return replaced;
  }

  /** Brings a freshly filled reservoir to its state after refresh k (a resumed run). */
  async catchUp(k: number): Promise<void> {
    for (let i = this.refreshed + 1; i <= k; i++) await this.refresh(i);
  }
}
