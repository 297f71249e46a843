// The stage registry of pipeline files: each preprocessing stage is one operator file in
// operators/ plus one entry here (its name, the zod schema of its config in a pipeline file, and
// how to build its operator). The MOPO stages (dynamics, rollout, sac, evaluate) are in
// pipelineFile.ts and run by pipeline/mopo.ts. The zod schemas check a file's structure and say
// where it is wrong; each operator's own resolve…Config stays the authority on its values.
import { join } from 'node:path';
import type { OperatorFunction } from 'rxjs';
import { z } from 'zod';
import type { TransitionBatch } from '../schemas/transition.js';
import { dropNonFinite, FINITE_COLUMNS } from '../operators/dropNonFinite.js';
import { clipActions } from '../operators/clipActions.js';
import { filterEpisodes } from '../operators/filterEpisodes.js';
import { scaleReward } from '../operators/scaleReward.js';
import { selectColumns } from '../operators/selectColumns.js';
import { tee, type JsonValue } from '../operators/tee.js';
import { normalizeTransitions } from '../operators/normalize.js';

// ---------------------------------------------------------------------------------------------
// Schema pieces with messages a user reads (also used by pipelineFile.ts)

export const num = (o: { min?: number; max?: number; int?: boolean; exclusiveMin?: boolean } = {}) => {
  const what = o.int ? 'an integer' : 'a number';
  const range =
    o.min !== undefined && o.max !== undefined ? ` in [${o.min}, ${o.max}]` : o.min !== undefined ? ` ${o.exclusiveMin ? '>' : '≥'} ${o.min}` : o.max !== undefined ? ` ≤ ${o.max}` : '';
  const msg = `expected ${what}${range}`;
  let s = z.number({ error: msg });
  if (o.int) s = s.int({ error: msg });
  if (o.min !== undefined) s = o.exclusiveMin ? s.gt(o.min, { error: msg }) : s.gte(o.min, { error: msg });
  if (o.max !== undefined) s = s.lte(o.max, { error: msg });
  return s;
};
export const oneOf = <T extends readonly [string, ...string[]]>(values: T) => z.enum(values, { error: `expected one of ${values.join(', ')}` });
const numOrList = z.union([z.number(), z.array(z.number())], { error: 'expected a number or a list of numbers (one per dimension)' });

/** A preprocessing stage as a pipeline file lists it: { "stage": name, ...config }. */
export type PreprocessStageSpec = { stage: string } & Record<string, unknown>;

export interface StageContext {
  /** The run directory (tee stages write under it). */
  runDir: string;
  /** Position of the stage in the file's list. */
  index: number;
  seed: number;
  env: string;
  /** The stages before this one (a tee records them as its config). */
  upstream: readonly PreprocessStageSpec[];
  /** Where a stage reports its counts (logged and kept in the run's stage summary). */
  onSummary: (summary: unknown) => void;
}

export interface PreprocessStage {
  name: string;
  schema: z.ZodType;
  build(spec: PreprocessStageSpec, ctx: StageContext): OperatorFunction<TransitionBatch, TransitionBatch>;
}

/** The stage's config: the spec without its "stage" key. */
const configOf = <T>(spec: PreprocessStageSpec) => {
  const { stage: _s, ...rest } = spec;
  return rest as T;
};

export const PREPROCESS_STAGES: readonly PreprocessStage[] = [
  {
    name: 'dropNonFinite',
    schema: z.strictObject({ stage: z.literal('dropNonFinite'), columns: z.array(oneOf(FINITE_COLUMNS as unknown as readonly [string, ...string[]])).optional() }),
    build: (spec, ctx) => dropNonFinite(configOf(spec), { onSummary: ctx.onSummary }),
  },
  {
    name: 'clipActions',
    schema: z.strictObject({ stage: z.literal('clipActions'), low: numOrList.optional(), high: numOrList.optional(), env: z.string().optional() }),
    // Without bounds, the pipeline's environment gives them.
    build: (spec, ctx) => {
      const c = configOf<{ low?: number | number[]; high?: number | number[]; env?: string }>(spec);
      return clipActions(c.low === undefined || c.high === undefined ? { env: c.env ?? ctx.env, ...c } : c, { onSummary: ctx.onSummary });
    },
  },
  {
    name: 'filterEpisodes',
    schema: z.strictObject({
      stage: z.literal('filterEpisodes'),
      minLength: num({ int: true, min: 1 }).optional(),
      maxLength: num({ int: true, min: 1 }).optional(),
      minReturn: num().optional(),
      minReturnQuantile: num({ min: 0, max: 1 }).optional(),
    }),
    build: (spec, ctx) => filterEpisodes(configOf(spec), { onSummary: ctx.onSummary }),
  },
  {
    name: 'scaleReward',
    schema: z.strictObject({ stage: z.literal('scaleReward'), scale: num().optional(), shift: num().optional() }),
    build: (spec, ctx) => scaleReward(configOf(spec), { onSummary: ctx.onSummary }),
  },
  {
    name: 'selectColumns',
    schema: z.strictObject({
      stage: z.literal('selectColumns'),
      observationDims: z.array(num({ int: true, min: 0 }), { error: 'expected a list of observation dimension indices' }).optional(),
      keepOptional: z.array(oneOf(['rawReward', 'penalty', 'episode', 'step'] as const)).optional(),
    }),
    build: (spec, ctx) => selectColumns(configOf(spec), { onSummary: ctx.onSummary }),
  },
  {
    name: 'normalize',
    schema: z.strictObject({
      stage: z.literal('normalize'),
      observations: z.boolean({ error: 'expected true or false' }).optional(),
      actions: z.boolean({ error: 'expected true or false' }).optional(),
      reward: z.boolean({ error: 'expected true or false' }).optional(),
    }),
    build: (spec, ctx) => normalizeTransitions(configOf(spec), { onSummary: ctx.onSummary }),
  },
  {
    name: 'tee',
    schema: z.strictObject({ stage: z.literal('tee'), name: z.string().regex(/^[A-Za-z0-9_.-]+$/, { error: 'expected a name of letters, digits, _ . -' }).optional(), rowsPerShard: num({ int: true, min: 1 }).optional() }),
    // Writes the stream as it is at this point to <run>/stages/<name> (default tee-<index>).
    build: (spec, ctx) => {
      const c = configOf<{ name?: string; rowsPerShard?: number }>(spec);
      const name = c.name ?? `tee-${ctx.index}`;
      return tee(
        { dir: join(ctx.runDir, 'stages', name), stage: name, config: ctx.upstream as unknown as JsonValue, seed: ctx.seed, ...(c.rowsPerShard ? { rowsPerShard: c.rowsPerShard } : {}) },
        { onSummary: ctx.onSummary },
      );
    },
  },
];
