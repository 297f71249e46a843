// clipActions: clips every action value into [low, high] and counts what it changed. Datasets
// logged from a policy with Gaussian exploration hold actions a little outside the box (e.g. 1.0001),
// which a tanh-squashed actor cannot produce and whose log-probability is then infinite.
//
//   source$.pipe(clipActions({ env: 'hopper' }))                  // the environment's action box
//   source$.pipe(clipActions({ low: -1, high: [1, 1, 0.5] }))     // one number or one per dimension
//
// NaN stays NaN (it is neither below nor above a bound; dropNonFinite is the stage for it);
// ±Infinity is clipped like any other value. The bounds are rounded to float32 first, so a value
// already equal to a bound is not counted as clipped.
import type { OperatorFunction } from 'rxjs';
import { TransitionBatch } from '../schemas/transition.js';
import { UserError, showValue } from '../pipeline/errors.js';
import { ENV_NAMES, envSpec, isEnvName } from '../pipeline/envs/env.js';
import { mapBatches, type SummaryHooks } from './mapBatches.js';

export interface ClipActionsConfig {
  /** Lower bound: one number for every dimension, or one per dimension. */
  low: number | number[];
  /** Upper bound: one number for every dimension, or one per dimension. */
  high: number | number[];
  /** Environment whose action box (envSpec) gives low/high where they are not set. */
  env?: string;
}

export interface ClipActionsSummary {
  rowsIn: number;
  rowsOut: number;
  /** Action values changed (below low plus above high). */
  clippedValues: number;
  /** Rows with at least one clipped value. */
  clippedRows: number;
  belowLow: number;
  aboveHigh: number;
  /** Clipped values per action dimension. */
  clippedPerDim: number[];
  /** The bounds applied, per dimension (float32-rounded). */
  low: number[];
  high: number[];
}

export type ClipActionsHooks = SummaryHooks<ClipActionsSummary>;

const KEYS = ['low', 'high', 'env'];

/** Defaults filled in (from `env`) and checked: a UserError naming the field on a bad or unknown one. */
export function resolveClipActionsConfig(partial: Partial<ClipActionsConfig>): ClipActionsConfig {
  const bad = (field: string, msg: string) => new UserError(`clipActions config: ${field}: ${msg}`);
  for (const k of Object.keys(partial)) if (!KEYS.includes(k)) throw bad(k, `unknown field (known: ${KEYS.join(', ')})`);
  const { env } = partial;
  let actDim: number | undefined;
  let low = partial.low;
  let high = partial.high;
  if (env !== undefined) {
    if (typeof env !== 'string' || !isEnvName(env)) throw bad('env', `expected one of ${ENV_NAMES.join(', ')}, got ${showValue(env)}`);
    const spec = envSpec(env);
    actDim = spec.actDim;
    low ??= spec.actionSpec.low.slice();
    high ??= spec.actionSpec.high.slice();
  }
  const bound = (field: 'low' | 'high', v: unknown): number | number[] => {
    if (v === undefined) throw bad(field, 'required (or give env to take the environment’s action bounds)');
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw bad(field, `expected a finite number, got ${showValue(v)}`);
      return v;
    }
    if (!Array.isArray(v) || v.length === 0) throw bad(field, `expected a number or a non-empty list of numbers, got ${showValue(v)}`);
    v.forEach((x, i) => {
      if (typeof x !== 'number' || !Number.isFinite(x)) throw bad(`${field}[${i}]`, `expected a finite number, got ${showValue(x)}`);
    });
    if (actDim !== undefined && v.length !== actDim) throw bad(field, `${env} has ${actDim} action dimensions, got ${v.length} bounds`);
    return (v as number[]).slice();
  };
  low = bound('low', low);
  high = bound('high', high);
  if (Array.isArray(low) && Array.isArray(high) && low.length !== high.length) throw bad('high', `has ${high.length} bounds, low has ${low.length}`);
  const dims = Math.max(Array.isArray(low) ? low.length : 1, Array.isArray(high) ? high.length : 1);
  for (let j = 0; j < dims; j++) {
    const lo = Array.isArray(low) ? low[j]! : low;
    const hi = Array.isArray(high) ? high[j]! : high;
    if (!(lo <= hi)) throw bad(Array.isArray(high) ? `high[${j}]` : 'high', `must be ≥ low (${lo}), got ${hi}`);
  }
  return env !== undefined ? { low, high, env } : { low, high };
}

/** The bounds of `cfg` for `actDim` dimensions, rounded to float32 (UserError if a list has another length). */
export function actionBounds(cfg: ClipActionsConfig, actDim: number): { low: Float32Array; high: Float32Array } {
  const expand = (field: 'low' | 'high', v: number | number[]): Float32Array => {
    if (typeof v === 'number') return new Float32Array(actDim).fill(v);
    if (v.length !== actDim) throw new UserError(`clipActions: ${field} has ${v.length} bounds but the actions have ${actDim} dimensions`);
    return Float32Array.from(v);
  };
  return { low: expand('low', cfg.low), high: expand('high', cfg.high) };
}

/** Running counts of clipActionValues. */
export interface ClipCounts {
  belowLow: number;
  aboveHigh: number;
  clippedRows: number;
  /** Per dimension. */
  perDim: Float64Array;
}

/**
 * Clips n rows × actDim action values into [low, high] per dimension and adds to `counts`. Returns
 * a new array when a value changed and `action` itself otherwise (the input is never modified).
 */
export function clipActionValues(action: Float32Array, actDim: number, low: Float32Array, high: Float32Array, counts: ClipCounts): Float32Array {
  let out: Float32Array | undefined;
  const n = action.length / actDim;
  for (let i = 0, k = 0; i < n; i++) {
    let rowClipped = false;
    for (let j = 0; j < actDim; j++, k++) {
      const v = action[k]!;
      if (v < low[j]!) {
        out ??= action.slice();
        out[k] = low[j]!;
        counts.belowLow++;
      } else if (v > high[j]!) {
        out ??= action.slice();
        out[k] = high[j]!;
        counts.aboveHigh++;
      } else continue;
      counts.perDim[j]!++;
      rowClipped = true;
    }
    if (rowClipped) counts.clippedRows++;
  }
  return out ?? action;
}

/**
 * Operator: clips actions into the configured box. A batch with nothing to clip passes as it is;
 * otherwise the output shares every column but the action with the input. The bounds are checked
 * against the first batch: a list of another length than actDim, or an env other than the batch's,
 * is a UserError.
 */
export function clipActions(config: Partial<ClipActionsConfig>, hooks: ClipActionsHooks = {}): OperatorFunction<TransitionBatch, TransitionBatch> {
  const cfg = resolveClipActionsConfig(config);
  return mapBatches(hooks, () => {
    let bounds: { low: Float32Array; high: Float32Array } | undefined;
    let counts: ClipCounts | undefined;
    let rows = 0;
    return {
      map: (b) => {
        if (!bounds) {
          if (cfg.env !== undefined && b.env !== undefined && b.env !== cfg.env) {
            throw new UserError(`clipActions: the bounds are ${cfg.env}'s but the data is from ${b.env}; set env (or low/high) for this dataset`);
          }
          bounds = actionBounds(cfg, b.actDim);
          counts = { belowLow: 0, aboveHigh: 0, clippedRows: 0, perDim: new Float64Array(b.actDim) };
        }
        if (b.actDim !== bounds.low.length) throw new UserError(`clipActions: a batch has ${b.actDim} action dimensions, the first had ${bounds.low.length}`);
        const action = clipActionValues(b.action, b.actDim, bounds.low, bounds.high, counts!);
        rows += b.length;
        return action === b.action ? b : new TransitionBatch(b.dims, { ...b.columns, action });
      },
      summary: () => {
        const c = counts ?? { belowLow: 0, aboveHigh: 0, clippedRows: 0, perDim: new Float64Array(0) };
        return {
          rowsIn: rows,
          rowsOut: rows,
          clippedValues: c.belowLow + c.aboveHigh,
          clippedRows: c.clippedRows,
          belowLow: c.belowLow,
          aboveHigh: c.aboveHigh,
          clippedPerDim: Array.from(c.perDim),
          low: bounds ? Array.from(bounds.low) : [],
          high: bounds ? Array.from(bounds.high) : [],
        };
      },
    };
  });
}
