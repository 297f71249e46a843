// dropNonFinite: drops every row with a NaN or ±Infinity in the checked float columns (by default
// observation, action, reward, next_observation) and counts, per column, the rows and values that
// caused it. One NaN in a replay buffer poisons every update that samples it, so cleaning happens
// before anything learns from the data.
//
//   readTransitions(path, { allowNonFinite: true }).pipe(dropNonFinite({}, { onSummary: log }))
//
// readTransitions rejects non-finite values unless it is told `allowNonFinite: true` (CLI
// --allow-non-finite): without that option no such row ever reaches this stage.
//
// Also exported: keepRows, the row-mask gather other row-dropping stages (filterEpisodes) use.
import type { OperatorFunction } from 'rxjs';
import { TransitionBatch, type OptionalColumn } from '../schemas/transition.js';
import { UserError, showValue } from '../pipeline/errors.js';
import { mapBatches, type SummaryHooks } from './mapBatches.js';

/** Float columns that can be checked (TransitionBatch keys). */
export type FiniteColumn = 'observation' | 'action' | 'reward' | 'nextObservation' | 'rawReward' | 'penalty';
export const FINITE_COLUMNS: readonly FiniteColumn[] = Object.freeze(['observation', 'action', 'reward', 'nextObservation', 'rawReward', 'penalty'] as FiniteColumn[]);

export interface DropNonFiniteConfig {
  /** Columns checked; a row with a non-finite value in any of them is dropped. Optional columns a batch lacks are skipped. */
  columns: FiniteColumn[];
}

export const DROP_NON_FINITE_DEFAULTS: Readonly<DropNonFiniteConfig> = Object.freeze({
  columns: ['observation', 'action', 'reward', 'nextObservation'] as FiniteColumn[],
});

export interface DropNonFiniteSummary {
  rowsIn: number;
  rowsOut: number;
  rowsDropped: number;
  /** Per checked column: rows with at least one non-finite value there (a row may count in several columns). */
  rowsByColumn: Partial<Record<FiniteColumn, number>>;
  /** Per checked column: non-finite values. */
  valuesByColumn: Partial<Record<FiniteColumn, number>>;
  /** Index in the input stream of the first dropped row, or null. */
  firstDroppedRow: number | null;
}

export type DropNonFiniteHooks = SummaryHooks<DropNonFiniteSummary>;

/** Defaults filled in and checked: a UserError naming the field on a bad or unknown one. */
export function resolveDropNonFiniteConfig(partial: Partial<DropNonFiniteConfig> = {}): DropNonFiniteConfig {
  const bad = (field: string, msg: string) => new UserError(`dropNonFinite config: ${field}: ${msg}`);
  for (const k of Object.keys(partial)) if (k !== 'columns') throw bad(k, `unknown field (known: columns)`);
  const columns = partial.columns ?? DROP_NON_FINITE_DEFAULTS.columns;
  if (!Array.isArray(columns) || columns.length === 0) throw bad('columns', `expected a non-empty list of ${FINITE_COLUMNS.join(', ')}, got ${showValue(columns)}`);
  columns.forEach((c, i) => {
    if (!FINITE_COLUMNS.includes(c)) throw bad(`columns[${i}]`, `expected one of ${FINITE_COLUMNS.join(', ')}, got ${showValue(c)}`);
    if (columns.indexOf(c) !== i) throw bad(`columns[${i}]`, `${showValue(c)} is listed twice`);
  });
  return { columns: columns.slice() };
}

/**
 * Clears keep[i] for every row i with a non-finite value in `values` (n rows × width, row-major).
 * Returns the rows of this column that hold one and the number of such values.
 */
export function markNonFinite(values: Float32Array, width: number, keep: Uint8Array): { rows: number; values: number } {
  const n = keep.length;
  let rows = 0;
  let count = 0;
  for (let i = 0, k = 0; i < n; i++) {
    let bad = 0;
    for (let j = 0; j < width; j++, k++) {
      const v = values[k]!;
      if (v - v !== 0) bad++; // NaN or ±Infinity
    }
    if (bad > 0) {
      rows++;
      count += bad;
      keep[i] = 0;
    }
  }
  return { rows, values: count };
}

/**
 * The rows of `b` whose keep[i] is non-zero, as a new batch with the same dims and optional
 * columns. Copies runs of kept rows with one `set` per column; returns `b` itself when every row is
 * kept (nothing to copy).
 */
export function keepRows(b: TransitionBatch, keep: Uint8Array): TransitionBatch {
  const n = b.length;
  if (keep.length !== n) throw new RangeError(`keepRows: mask has ${keep.length} entries for ${n} rows`);
  let kept = 0;
  for (let i = 0; i < n; i++) if (keep[i]) kept++;
  if (kept === n) return b;
  const out = TransitionBatch.allocate(b.dims, kept, b.optionalColumns);
  const O = b.obsDim;
  const A = b.actDim;
  const optional: OptionalColumn[] = b.optionalColumns;
  let to = 0;
  for (let i = 0; i < n; ) {
    if (!keep[i]) {
      i++;
      continue;
    }
    let end = i + 1;
    while (end < n && keep[end]) end++;
    out.observation.set(b.observation.subarray(i * O, end * O), to * O);
    out.nextObservation.set(b.nextObservation.subarray(i * O, end * O), to * O);
    out.action.set(b.action.subarray(i * A, end * A), to * A);
    out.reward.set(b.reward.subarray(i, end), to);
    out.terminal.set(b.terminal.subarray(i, end), to);
    out.timeout.set(b.timeout.subarray(i, end), to);
    for (const k of optional) (out[k] as Float32Array | Int32Array).set((b[k] as Float32Array | Int32Array).subarray(i, end), to);
    to += end - i;
    i = end;
  }
  return out;
}

/**
 * Operator: drops rows with a non-finite value in the configured columns; batches left empty are
 * not emitted. Everything else (dims, optional columns, row order) is kept; input batches are not
 * modified. The source must be read with `allowNonFinite: true` for such rows to get here.
 */
export function dropNonFinite(config: Partial<DropNonFiniteConfig> = {}, hooks: DropNonFiniteHooks = {}): OperatorFunction<TransitionBatch, TransitionBatch> {
  const cfg = resolveDropNonFiniteConfig(config);
  return mapBatches(hooks, () => {
    const rowsByColumn: Partial<Record<FiniteColumn, number>> = {};
    const valuesByColumn: Partial<Record<FiniteColumn, number>> = {};
    for (const c of cfg.columns) {
      rowsByColumn[c] = 0;
      valuesByColumn[c] = 0;
    }
    let rowsIn = 0;
    let rowsOut = 0;
    let firstDroppedRow: number | null = null;
    return {
      map: (b) => {
        const keep = new Uint8Array(b.length).fill(1);
        for (const c of cfg.columns) {
          const values = b[c];
          if (values === undefined) continue;
          const width = c === 'action' ? b.actDim : c === 'observation' || c === 'nextObservation' ? b.obsDim : 1;
          const r = markNonFinite(values, width, keep);
          rowsByColumn[c]! += r.rows;
          valuesByColumn[c]! += r.values;
        }
        const out = keepRows(b, keep);
        if (firstDroppedRow === null && out.length < b.length) firstDroppedRow = rowsIn + keep.indexOf(0);
        rowsIn += b.length;
        rowsOut += out.length;
        return out.length > 0 ? out : null;
      },
      summary: () => ({ rowsIn, rowsOut, rowsDropped: rowsIn - rowsOut, rowsByColumn, valuesByColumn, firstDroppedRow }),
    };
  });
}
