// scaleReward: reward ← scale·reward + shift (e.g. the reward scaling some offline-RL baselines
// apply, or a shift that makes every reward positive).
//
//   source$.pipe(scaleReward({ scale: 0.1, shift: -1 }))
//
// Only `reward` changes. `raw_reward` (on model-rollout rows) is left as it is: it is the model's
// reward before any shaping — what its name says — so reward − raw_reward still shows what the
// pipeline did to it; `penalty` is left as well. Non-finite rewards stay non-finite. The arithmetic
// is in double, rounded once to float32.
import type { OperatorFunction } from 'rxjs';
import { TransitionBatch } from '../schemas/transition.js';
import { UserError, showValue } from '../pipeline/errors.js';
import { mapBatches, type SummaryHooks } from './mapBatches.js';

export interface ScaleRewardConfig {
  /** Multiplier; non-zero (zero would erase the reward signal). */
  scale: number;
  /** Added after scaling. */
  shift: number;
}

export const SCALE_REWARD_DEFAULTS: Readonly<ScaleRewardConfig> = Object.freeze({ scale: 1, shift: 0 });

/** Min/max/mean of the finite rewards (null when there were none). */
export interface RewardRange {
  min: number;
  max: number;
  mean: number;
}

export interface ScaleRewardSummary {
  rowsIn: number;
  rowsOut: number;
  scale: number;
  shift: number;
  /** The rewards before and after, so the log shows the new range. */
  before: RewardRange | null;
  after: RewardRange | null;
}

export type ScaleRewardHooks = SummaryHooks<ScaleRewardSummary>;

/** Defaults filled in and checked: a UserError naming the field on a bad or unknown one. */
export function resolveScaleRewardConfig(partial: Partial<ScaleRewardConfig> = {}): ScaleRewardConfig {
  const bad = (field: string, msg: string) => new UserError(`scaleReward config: ${field}: ${msg}`);
  for (const k of Object.keys(partial)) if (k !== 'scale' && k !== 'shift') throw bad(k, 'unknown field (known: scale, shift)');
  const c: ScaleRewardConfig = { ...SCALE_REWARD_DEFAULTS };
  if (partial.scale !== undefined) c.scale = partial.scale;
  if (partial.shift !== undefined) c.shift = partial.shift;
  if (typeof c.scale !== 'number' || !Number.isFinite(c.scale) || c.scale === 0) throw bad('scale', `expected a finite non-zero number, got ${showValue(c.scale)}`);
  if (typeof c.shift !== 'number' || !Number.isFinite(c.shift)) throw bad('shift', `expected a finite number, got ${showValue(c.shift)}`);
  return c;
}

/** out[i] = scale·reward[i] + shift (out may be reward itself). */
export function scaleRewardValues(reward: Float32Array, scale: number, shift: number, out: Float32Array = new Float32Array(reward.length)): Float32Array {
  for (let i = 0; i < reward.length; i++) out[i] = scale * reward[i]! + shift;
  return out;
}

/** Accumulates min/max/sum of finite values. */
class RangeAcc {
  min = Infinity;
  max = -Infinity;
  sum = 0;
  count = 0;
  add(xs: Float32Array): void {
    for (let i = 0; i < xs.length; i++) {
      const v = xs[i]!;
      if (v - v !== 0) continue;
      if (v < this.min) this.min = v;
      if (v > this.max) this.max = v;
      this.sum += v;
      this.count++;
    }
  }
  result(): RewardRange | null {
    return this.count > 0 ? { min: this.min, max: this.max, mean: this.sum / this.count } : null;
  }
}

/**
 * Operator: a new batch per input batch whose reward column is scale·reward + shift; every other
 * column is shared with the input (which is not modified). scale 1, shift 0 passes batches as they are.
 */
export function scaleReward(config: Partial<ScaleRewardConfig> = {}, hooks: ScaleRewardHooks = {}): OperatorFunction<TransitionBatch, TransitionBatch> {
  const { scale, shift } = resolveScaleRewardConfig(config);
  const identity = scale === 1 && shift === 0;
  return mapBatches(hooks, () => {
    const before = new RangeAcc();
    const after = new RangeAcc();
    let rows = 0;
    return {
      map: (b) => {
        const out = identity ? b : new TransitionBatch(b.dims, { ...b.columns, reward: scaleRewardValues(b.reward, scale, shift) });
        // The summary is only worth its pass over the rewards when someone reads it.
        if (hooks.onSummary) {
          before.add(b.reward);
          after.add(out.reward);
        }
        rows += b.length;
        return out;
      },
      summary: () => ({ rowsIn: rows, rowsOut: rows, scale, shift, before: before.result(), after: after.result() }),
    };
  });
}
