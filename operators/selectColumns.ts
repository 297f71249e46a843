// selectColumns: keeps a subset of the observation dimensions (the same ones in observation and
// next_observation, in the order given) and/or of the optional columns. The schema is fixed, so
// "selecting columns" means narrowing vectors and dropping optional columns, never dropping roles.
//
//   source$.pipe(selectColumns({ observationDims: [0, 1, 5], keepOptional: ['episode', 'step'] }))
//
// A batch whose observation dimensions were selected (anything but 0…obsDim−1 in order) loses its
// `env` label: the environment's termination rule and observation layout no longer apply to it, and
// a later stage that trusted the label would read the wrong dimensions.
//
// Renaming belongs to reading here (one schema, fixed column names): `renameColumns` turns a
// { role: fileColumn } config into readTransitions' `columns` option.
import type { OperatorFunction } from 'rxjs';
import { TransitionBatch, type OptionalColumn, type TransitionColumns } from '../schemas/transition.js';
import { ROLES, type ColumnMapping, type ReadOptions, type Role } from './readTransitions.js';
import { UserError, showValue } from '../pipeline/errors.js';
import { mapBatches, type SummaryHooks } from './mapBatches.js';

export const OPTIONAL_COLUMNS: readonly OptionalColumn[] = Object.freeze(['rawReward', 'penalty', 'episode', 'step'] as OptionalColumn[]);

export interface SelectColumnsConfig {
  /** Observation dimensions to keep, in output order (absent: all). */
  observationDims?: number[];
  /** Optional columns to keep where present (absent: all; [] drops every optional column). */
  keepOptional?: OptionalColumn[];
}

export interface SelectColumnsSummary {
  rowsIn: number;
  rowsOut: number;
  obsDimIn: number | null;
  obsDimOut: number | null;
  /** Optional columns the input had and the output lacks. */
  droppedOptional: OptionalColumn[];
  /** The env label the input had and the output lacks (see the header), or null. */
  droppedEnv: string | null;
}

export type SelectColumnsHooks = SummaryHooks<SelectColumnsSummary>;

/** Checked config: a UserError naming the field on a bad or unknown one. */
export function resolveSelectColumnsConfig(partial: Partial<SelectColumnsConfig> = {}): SelectColumnsConfig {
  const bad = (field: string, msg: string) => new UserError(`selectColumns config: ${field}: ${msg}`);
  for (const k of Object.keys(partial)) if (k !== 'observationDims' && k !== 'keepOptional') throw bad(k, 'unknown field (known: observationDims, keepOptional)');
  const c: SelectColumnsConfig = {};
  const dims = partial.observationDims;
  if (dims !== undefined) {
    if (!Array.isArray(dims) || dims.length === 0) throw bad('observationDims', `expected a non-empty list of dimension indices, got ${showValue(dims)}`);
    dims.forEach((d, i) => {
      if (!Number.isInteger(d) || d < 0) throw bad(`observationDims[${i}]`, `expected an integer ≥ 0, got ${showValue(d)}`);
      if (dims.indexOf(d) !== i) throw bad(`observationDims[${i}]`, `dimension ${d} is listed twice`);
    });
    c.observationDims = dims.slice();
  }
  const keep = partial.keepOptional;
  if (keep !== undefined) {
    if (!Array.isArray(keep)) throw bad('keepOptional', `expected a list of ${OPTIONAL_COLUMNS.join(', ')}, got ${showValue(keep)}`);
    keep.forEach((k, i) => {
      if (!OPTIONAL_COLUMNS.includes(k)) throw bad(`keepOptional[${i}]`, `expected one of ${OPTIONAL_COLUMNS.join(', ')}, got ${showValue(k)}`);
      if (keep.indexOf(k) !== i) throw bad(`keepOptional[${i}]`, `${showValue(k)} is listed twice`);
    });
    c.keepOptional = keep.slice();
  }
  return c;
}

/** The chosen dimensions of n rows × obsDim values, row-major (new array, n × dims.length). */
export function selectDims(values: Float32Array, obsDim: number, dims: Int32Array): Float32Array {
  const n = values.length / obsDim;
  const W = dims.length;
  const out = new Float32Array(n * W);
  for (let i = 0; i < n; i++) {
    const from = i * obsDim;
    const to = i * W;
    for (let j = 0; j < W; j++) out[to + j] = values[from + dims[j]!]!;
  }
  return out;
}

/**
 * Operator: narrows the observations and drops optional columns as configured; a dimension index
 * ≥ obsDim is a UserError. Untouched columns are shared with the input (which is not modified).
 */
export function selectColumns(config: Partial<SelectColumnsConfig> = {}, hooks: SelectColumnsHooks = {}): OperatorFunction<TransitionBatch, TransitionBatch> {
  const cfg = resolveSelectColumnsConfig(config);
  const dims = cfg.observationDims ? Int32Array.from(cfg.observationDims) : undefined;
  const keep = cfg.keepOptional ? new Set(cfg.keepOptional) : undefined;
  return mapBatches(hooks, () => {
    let rows = 0;
    let obsDimIn: number | null = null;
    let obsDimOut: number | null = null;
    let droppedEnv: string | null = null;
    const dropped = new Set<OptionalColumn>();
    return {
      map: (b) => {
        const cols: TransitionColumns = b.columns;
        let obsDim = b.obsDim;
        let env = b.env;
        if (dims) {
          const outOfRange = dims.findIndex((d) => d >= b.obsDim);
          if (outOfRange >= 0) throw new UserError(`selectColumns: observationDims[${outOfRange}] = ${dims[outOfRange]} but the observations have ${b.obsDim} dimensions (0…${b.obsDim - 1})`);
          if (!(dims.length === b.obsDim && dims.every((d, j) => d === j))) {
            cols.observation = selectDims(b.observation, b.obsDim, dims);
            cols.nextObservation = selectDims(b.nextObservation, b.obsDim, dims);
            obsDim = dims.length;
            if (env !== undefined) droppedEnv = env;
            env = undefined;
          }
        }
        if (keep) {
          for (const k of b.optionalColumns) {
            if (keep.has(k)) continue;
            delete cols[k];
            dropped.add(k);
          }
        }
        obsDimIn ??= b.obsDim;
        obsDimOut ??= obsDim;
        rows += b.length;
        return new TransitionBatch(env !== undefined ? { obsDim, actDim: b.actDim, env } : { obsDim, actDim: b.actDim }, cols);
      },
      summary: () => ({ rowsIn: rows, rowsOut: rows, obsDimIn, obsDimOut, droppedOptional: OPTIONAL_COLUMNS.filter((k) => dropped.has(k)), droppedEnv }),
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Renaming: which file column plays which role (applied when reading)

/** Role → the file's column, or its per-dimension columns (or their common prefix). */
export type RenameColumnsConfig = Partial<Record<Role, string | string[]>>;

/** Checked rename config: a UserError naming the role on a bad or unknown one. */
export function resolveRenameColumnsConfig(partial: RenameColumnsConfig): RenameColumnsConfig {
  const bad = (field: string, msg: string) => new UserError(`renameColumns config: ${field}: ${msg}`);
  if (partial === null || typeof partial !== 'object' || Array.isArray(partial)) throw bad('(config)', `expected an object { role: fileColumn }, got ${showValue(partial)}`);
  const out: RenameColumnsConfig = {};
  const claimed = new Map<string, string>();
  const claim = (field: string, role: string, col: string) => {
    const other = claimed.get(col);
    if (other !== undefined) throw bad(field, `column '${col}' is already given to ${other}`);
    claimed.set(col, role);
  };
  for (const [role, v] of Object.entries(partial)) {
    if (!(ROLES as readonly string[]).includes(role)) {
      const hint = role === 'nextObservation' ? " (the role is spelled 'next_observation')" : '';
      throw bad(role, `unknown role${hint} (known: ${ROLES.join(', ')})`);
    }
    if (v === undefined) continue;
    if (typeof v === 'string') {
      if (v === '') throw bad(role, 'expected a column name, got an empty string');
      claim(role, role, v);
      out[role as Role] = v;
    } else if (Array.isArray(v) && v.length > 0) {
      v.forEach((c, i) => {
        if (typeof c !== 'string' || c === '') throw bad(`${role}[${i}]`, `expected a column name, got ${showValue(c)}`);
        claim(`${role}[${i}]`, role, c);
      });
      out[role as Role] = v.slice();
    } else {
      throw bad(role, `expected a column name or a non-empty list of per-dimension column names, got ${showValue(v)}`);
    }
  }
  return out;
}

/** readTransitions' `columns` option for a rename config (checked). */
export function renameColumns(config: RenameColumnsConfig): NonNullable<ReadOptions['columns']> {
  const mapping: ColumnMapping = resolveRenameColumnsConfig(config);
  return mapping;
}
