// Pipeline files: a JSON document listing a source, preprocessing stages and the MOPO stages with
// their configs, validated with zod so an error points at its place in the file
// (`stages[2].lambda: expected a number ≥ 0`). `mopo run pipeline.json [--set path=value]` runs one;
// `mopo train` builds the same document from a preset and its flags. Presets live in data/pipelines/.
//
//   {
//     "env": "halfcheetah", "seed": 0,
//     "source": { "dataset": "data/datasets/halfcheetah-random.parquet" },
//     "stages": [
//       { "stage": "dropNonFinite" },                       preprocessing: any number, in order
//       { "stage": "dynamics", "maxEpochs": 1000 },          then the MOPO stages, in this order
//       { "stage": "rollout", "horizon": 5, "lambda": 0.5 },
//       { "stage": "sac", "epochs": 1000 },
//       { "stage": "evaluate", "every": 10, "episodes": 10 }
//     ]
//   }
import { readFileSync } from 'node:fs';
import { resolve, dirname, isAbsolute } from 'node:path';
import { z } from 'zod';
import { ENV_NAMES, type EnvName } from './envs/env.js';
import { PENALTY_KINDS } from '../operators/rollout.js';
import { WEIGHT_INITS } from './mlp.js';
import { MODEL_TARGETS, NLL_REDUCTIONS, RESAMPLES } from '../operators/ensemble.js';
import { LR_SCHEDULES, ROLLOUT_LAGS } from '../operators/sacConsumer.js';
import { UserError } from './errors.js';
import { PREPROCESS_STAGES, num, oneOf, type PreprocessStageSpec } from './stages.js';
import type { MopoConfig } from './mopo.js';

const dynamicsStage = z.strictObject({
  stage: z.literal('dynamics'),
  /** A trained ensemble to use instead of training one (a train-dynamics run or ensemble directory). */
  from: z.string().optional(),
  members: num({ int: true, min: 1 }).optional(),
  elites: num({ int: true, min: 1 }).optional(),
  hidden: z.array(num({ int: true, min: 1 }), { error: 'expected a list of layer widths' }).optional(),
  maxEpochs: num({ int: true, min: 1 }).optional(),
  patience: num({ int: true, min: 1 }).optional(),
  workers: num({ int: true, min: 1 }).optional(),
  /** The model's outputs and NLL: 'raw' and 'mean' train it as the official code's BNN. */
  targets: oneOf(MODEL_TARGETS).optional(),
  nllReduction: oneOf(NLL_REDUCTIONS).optional(),
  /** Each member's rows: every row once, or a bootstrap sample as the official code. */
  resample: oneOf(RESAMPLES).optional(),
  /** Initial weights: uniform in ±1/√fan-in, or the official code's truncated normal. */
  init: oneOf(WEIGHT_INITS).optional(),
  /** Train on the first this many rows only. */
  rows: num({ int: true, min: 2 }).optional(),
});

const rolloutStage = z.strictObject({
  stage: z.literal('rollout'),
  batch: num({ int: true, min: 1 }).optional(),
  horizon: num({ int: true, min: 1 }).optional(),
  lambda: num({ min: 0 }).optional(),
  penalty: oneOf(PENALTY_KINDS as unknown as readonly [string, ...string[]]).optional(),
  penaltyMembers: oneOf(['all', 'elites'] as const).optional(),
  /** SAC updates between rounds (and per epoch). */
  every: num({ int: true, min: 1 }).optional(),
  retainEpochs: num({ int: true, min: 1 }).optional(),
  /** Rounds the rollout policy trails the learner: 1 (default) rolls beside the learner, 0 at each round's insertion as the reference does. */
  lag: z.literal(ROLLOUT_LAGS, { error: `expected ${ROLLOUT_LAGS.join(' or ')}` }).optional(),
  /** Save every round to <run>/stages/rollout (for replay: a new SAC from the same synthetic data). */
  tee: z.boolean({ error: 'expected true or false' }).optional(),
  /** Use the rounds an earlier run saved (its stages/rollout directory) instead of computing them. */
  from: z.string().optional(),
});

const sacStage = z.strictObject({
  stage: z.literal('sac'),
  epochs: num({ int: true, min: 1 }).optional(),
  realRatio: num({ min: 0, max: 1 }).optional(),
  /** Most real transitions held for the real share of each batch; beyond it, a refreshed uniform reservoir. */
  realBuffer: num({ int: true, min: 1 }).optional(),
  batchSize: num({ int: true, min: 1 }).optional(),
  hidden: z.array(num({ int: true, min: 1 }), { error: 'expected a list of layer widths' }).optional(),
  gamma: num({ min: 0, max: 1 }).optional(),
  tau: num({ min: 0, max: 1 }).optional(),
  actorLr: num({ min: 0, exclusiveMin: true }).optional(),
  criticLr: num({ min: 0, exclusiveMin: true }).optional(),
  /** The temperature's learning rate (default 3e-4, softlearning's). */
  alphaLr: num({ min: 0, exclusiveMin: true }).optional(),
  /** The actor's learning rate over the epochs: 'constant' (default) or 'cosine', annealed towards 0. */
  actorLrSchedule: oneOf(LR_SCHEDULES).optional(),
  /** The entropy target of α's tuning (default −|A|; MOPO's D4RL configs use −3). */
  targetEntropy: num({}).optional(),
  /** Initial weights of actor and critics (default 'uniform'; 'glorot-uniform' is the reference's). */
  init: oneOf(WEIGHT_INITS).optional(),
});

const evaluateStage = z.strictObject({
  stage: z.literal('evaluate'),
  every: num({ int: true, min: 1 }).optional(),
  episodes: num({ int: true, min: 1 }).optional(),
  /** Also evaluate after each of the final this many epochs (MOPO's score: the mean of the last 10). */
  lastEpochs: num({ int: true, min: 1 }).optional(),
});

const MOPO_STAGES = ['dynamics', 'rollout', 'sac', 'evaluate'] as const;

export const pipelineSchema = z.strictObject({
  name: z.string().optional(),
  env: oneOf(ENV_NAMES as unknown as readonly [string, ...string[]]),
  seed: num({ int: true }).optional(),
  source: z.strictObject({
    dataset: z.string({ error: 'expected the path of a Parquet file or shard directory' }).max(4096, { error: 'expected a path of at most 4096 characters' }),
    columns: z.record(z.string(), z.union([z.string(), z.array(z.string())]), { error: 'expected {role: column name(s)}' }).optional(),
    layout: oneOf(['auto', 'transitions', 'trajectories'] as const).optional(),
    obsDim: num({ int: true, min: 1 }).optional(),
    actDim: num({ int: true, min: 1 }).optional(),
    allowNonFinite: z.boolean({ error: 'expected true or false' }).optional(),
  }),
  stages: z.array(z.unknown(), { error: 'expected a list of stages' }),
  checkpointEvery: num({ int: true, min: 1 }).optional(),
});

export type PipelineFile = z.infer<typeof pipelineSchema>;
type DynamicsStage = z.infer<typeof dynamicsStage>;
type RolloutStage = z.infer<typeof rolloutStage>;
type SacStage = z.infer<typeof sacStage>;
type EvaluateStage = z.infer<typeof evaluateStage>;

/** A name from the file, shortened for a message (a stage name may be any string, even megabytes). */
const clip = (s: string, n = 60) => (s.length > n ? `${s.slice(0, n)}… (${s.length} characters)` : s);

/** `stages[2].lambda` from a zod path. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? clip(String(p)) : `.${clip(String(p))}`;
  return out || '(top level)';
}

function issuesError(where: string, issues: readonly z.core.$ZodIssue[], prefix: readonly PropertyKey[] = []): UserError {
  const lines = issues.slice(0, 8).map((i) => {
    const path = formatPath([...prefix, ...i.path]);
    if (i.code === 'unrecognized_keys') return `${path}: unknown field${i.keys.length > 1 ? 's' : ''} ${i.keys.slice(0, 8).map((k) => `'${clip(k)}'`).join(', ')}${i.keys.length > 8 ? ` (and ${i.keys.length - 8} more)` : ''}`;
    return `${path}: ${i.message}`;
  });
  return new UserError(`${where}: ${lines.join('; ')}${issues.length > 8 ? ` (and ${issues.length - 8} more)` : ''}`);
}

export interface ParsedPipeline {
  file: PipelineFile;
  preprocess: PreprocessStageSpec[];
  dynamics: DynamicsStage | null;
  rollout: RolloutStage | null;
  sac: SacStage | null;
  evaluate: EvaluateStage | null;
}

/** Validates a pipeline document (already JSON-parsed); `where` names it in errors. */
export function parsePipeline(doc: unknown, where: string): ParsedPipeline {
  const top = pipelineSchema.safeParse(doc);
  if (!top.success) throw issuesError(where, top.error.issues);
  const file = top.data;
  const out: ParsedPipeline = { file, preprocess: [], dynamics: null, rollout: null, sac: null, evaluate: null };
  let mopoSeen = -1;
  file.stages.forEach((raw, i) => {
    const name = (raw as { stage?: unknown } | null)?.stage;
    const known = [...PREPROCESS_STAGES.map((s) => s.name), ...MOPO_STAGES];
    if (typeof name !== 'string' || !known.includes(name)) {
      throw new UserError(`${where}: stages[${i}].stage: expected one of ${known.join(', ')}${typeof name === 'string' ? `, got '${clip(name)}'` : ''}`);
    }
    const pre = PREPROCESS_STAGES.find((s) => s.name === name);
    const schema = pre ? pre.schema : { dynamics: dynamicsStage, rollout: rolloutStage, sac: sacStage, evaluate: evaluateStage }[name as (typeof MOPO_STAGES)[number]];
    const r = schema.safeParse(raw);
    if (!r.success) throw issuesError(where, r.error.issues, ['stages', i]);
    if (pre) {
      if (mopoSeen >= 0) throw new UserError(`${where}: stages[${i}]: preprocessing stage '${name}' after the MOPO stage at stages[${mopoSeen}]; preprocessing comes first`);
      out.preprocess.push(r.data as PreprocessStageSpec);
      return;
    }
    const k = MOPO_STAGES.indexOf(name as (typeof MOPO_STAGES)[number]);
    const prev = mopoSeen >= 0 ? MOPO_STAGES.indexOf((file.stages[mopoSeen] as { stage: (typeof MOPO_STAGES)[number] }).stage) : -1;
    if (k <= prev) throw new UserError(`${where}: stages[${i}]: '${name}' must come ${k === prev ? 'once' : `before '${MOPO_STAGES[prev]}'`}; the MOPO stages run in the order ${MOPO_STAGES.join(' → ')}`);
    mopoSeen = i;
    (out as unknown as Record<string, unknown>)[name] = r.data;
  });
  const present = MOPO_STAGES.filter((s) => out[s] !== null);
  const norm = out.preprocess.findIndex((s) => s.stage === 'normalize');
  if (norm >= 0 && present.length > 0) {
    // The policy would learn on standardized observations but be evaluated on the simulator's raw ones.
    throw new UserError(`${where}: stages[${norm}]: 'normalize' rewrites the observations, which the MOPO stages cannot use (the simulator gives raw ones; the ensemble normalizes its own inputs); use it in preprocessing-only pipelines, e.g. to prepare shards`);
  }
  if (present.length > 0 && present.length < 3 && !(present.length === 1 && present[0] === 'dynamics')) {
    throw new UserError(`${where}: a MOPO pipeline needs the stages dynamics, rollout and sac (evaluate is optional); this one has ${present.join(', ')}`);
  }
  return out;
}

/** Reads, applies `--set` overrides, validates. Relative dataset paths are relative to the file. */
export function loadPipelineFile(path: string, sets: readonly string[] = []): ParsedPipeline {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UserError(`${path}: cannot read the pipeline file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  for (const s of sets) applySet(doc, s);
  const parsed = parsePipeline(doc, path);
  const ds = parsed.file.source.dataset;
  if (!isAbsolute(ds)) parsed.file.source.dataset = resolve(dirname(path), ds);
  return parsed;
}

/**
 * `--set a.b[2].c=value`: the value is JSON when it parses (numbers, booleans, lists), else a
 * string. `stages.<name>.<field>` addresses the stage with that name (e.g. stages.rollout.horizon=1).
 */
export function applySet(doc: unknown, assignment: string): void {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new UserError(`--set ${assignment}: expected path=value, e.g. --set stages.rollout.horizon=1`);
  const path = assignment.slice(0, eq).trim();
  const raw = assignment.slice(eq + 1);
  let value: unknown = raw;
  try {
    value = JSON.parse(raw);
  } catch {
    // a plain string
  }
  const keys: (string | number)[] = [];
  for (const part of path.split('.')) {
    const m = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part);
    if (!m) throw new UserError(`--set ${assignment}: cannot read the path '${path}'`);
    if (m[1]) keys.push(m[1]);
    for (const idx of m[2]!.matchAll(/\[(\d+)\]/g)) keys.push(Number(idx[1]));
  }
  if (keys.length === 0) throw new UserError(`--set ${assignment}: expected path=value, e.g. --set stages.rollout.horizon=1`);
  // the path addresses the document's own fields only (no `__proto__.x=…` reaching every object)
  const bad = keys.find((k) => k === '__proto__' || k === 'constructor' || k === 'prototype');
  if (bad !== undefined) throw new UserError(`--set ${assignment}: '${bad}' is not a field of a pipeline file`);
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new UserError(`--set ${assignment}: the pipeline file is not a JSON object`);
  /** A list item's index (a stage's name after stages.), checked: a key a list would silently ignore is an error. */
  const itemOf = (list: unknown[], k: string | number, i: number): number => {
    if (typeof k === 'number') {
      if (k > list.length) throw new UserError(`--set ${assignment}: ${formatPath(keys.slice(0, i))} has ${list.length} items; [${k}] is past its end (use [${list.length}] to add one)`);
      return k;
    }
    if (keys[i - 1] !== 'stages') throw new UserError(`--set ${assignment}: ${formatPath(keys.slice(0, i))} is a list; address its items as [index]`);
    const at = (list as { stage?: string }[]).findIndex((s) => s?.stage === k);
    if (at < 0) throw new UserError(`--set ${assignment}: the pipeline has no stage '${k}'`);
    if (i === keys.length - 1) throw new UserError(`--set ${assignment}: name a field of the stage, e.g. stages.${k}.<field>=value`);
    return at;
  };
  let node = doc as Record<string | number, unknown>;
  for (let i = 0; i < keys.length - 1; i++) {
    let k = keys[i]!;
    // stages.<name>: the stage with that name
    if (Array.isArray(node)) k = itemOf(node, k, i);
    const next = node[k];
    if (next === undefined || next === null || typeof next !== 'object') {
      if (typeof keys[i + 1] === 'number') throw new UserError(`--set ${assignment}: ${formatPath(keys.slice(0, i + 1))} is not a list`);
      node[k] = {};
    }
    node = node[k] as Record<string | number, unknown>;
  }
  let last = keys[keys.length - 1]!;
  if (Array.isArray(node)) last = itemOf(node, last, keys.length - 1);
  node[last] = value;
}

// ---------------------------------------------------------------------------------------------
// Pipeline ⇄ MopoConfig: `mopo train` and `mopo run` end in the same runMopo.

export function pipelineToMopoConfig(p: ParsedPipeline, datasetOverride?: string): MopoConfig {
  const f = p.file;
  const { dataset, allowNonFinite, ...read } = f.source;
  const d = p.dynamics ?? { stage: 'dynamics' as const };
  const r = p.rollout ?? { stage: 'rollout' as const };
  const s = p.sac ?? { stage: 'sac' as const };
  const e = p.evaluate ?? { stage: 'evaluate' as const };
  const every = r.every ?? 1000;
  const defined = <T extends object>(o: T) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
  return {
    env: f.env as EnvName,
    dataset: datasetOverride ?? dataset,
    read: { ...defined(read), ...(allowNonFinite ? { allowNonFinite } : {}) },
    seed: f.seed ?? 0,
    dynamicsFrom: d.from ?? null,
    ensemble: defined({ members: d.members, elites: d.elites, hidden: d.hidden, maxEpochs: d.maxEpochs, patience: d.patience, workers: d.workers, targets: d.targets, nllReduction: d.nllReduction, resample: d.resample, init: d.init }),
    ensembleRows: d.rows ?? null,
    rollout: {
      batch: r.batch ?? 50_000,
      horizon: r.horizon ?? 5,
      lambda: r.lambda ?? 1,
      penalty: (r.penalty ?? 'max-aleatoric') as MopoConfig['rollout']['penalty'],
      penaltyMembers: r.penaltyMembers ?? 'all',
      rolloutEvery: every,
    },
    sac: defined({ batchSize: s.batchSize, hidden: s.hidden, gamma: s.gamma, tau: s.tau, actorLr: s.actorLr, criticLr: s.criticLr, alphaLr: s.alphaLr, targetEntropy: s.targetEntropy, init: s.init }),
    learner: { realRatio: s.realRatio ?? 0.05, epochLength: every, epochs: s.epochs ?? 1000, metricsEvery: 50, ...defined({ rolloutLag: r.lag, actorLrSchedule: s.actorLrSchedule }) },
    retainEpochs: r.retainEpochs ?? 5,
    evaluate: { every: e.every ?? 10, episodes: e.episodes ?? 10, ...defined({ lastEpochs: e.lastEpochs }) },
    checkpointEvery: f.checkpointEvery ?? 10,
    ...(r.tee ? { teeRollouts: true } : {}),
    ...(r.from ? { rolloutsFrom: r.from } : {}),
    ...(s.realBuffer ? { realBufferRows: s.realBuffer } : {}),
  };
}

/** The pipeline document of a MopoConfig (what `mopo train` runs, and the presets in data/pipelines/). */
export function mopoConfigToPipeline(c: MopoConfig, preprocess: PreprocessStageSpec[] = [], name?: string): PipelineFile {
  const { allowNonFinite, rows: _rows, batchSize: _bs, onWarning: _w, ...read } = c.read;
  return {
    ...(name ? { name } : {}),
    env: c.env,
    seed: c.seed,
    source: { dataset: c.dataset, ...(read as Record<string, never>), ...(allowNonFinite ? { allowNonFinite } : {}) },
    stages: [
      ...preprocess,
      { stage: 'dynamics', ...(c.dynamicsFrom ? { from: c.dynamicsFrom } : {}), ...c.ensemble, ...(c.ensembleRows ? { rows: c.ensembleRows } : {}) },
      {
        stage: 'rollout',
        batch: c.rollout.batch,
        horizon: c.rollout.horizon,
        lambda: c.rollout.lambda,
        penalty: c.rollout.penalty,
        penaltyMembers: c.rollout.penaltyMembers,
        every: c.rollout.rolloutEvery,
        retainEpochs: c.retainEpochs,
        ...(c.learner.rolloutLag !== undefined ? { lag: c.learner.rolloutLag } : {}),
        ...(c.teeRollouts ? { tee: true } : {}),
        ...(c.rolloutsFrom ? { from: c.rolloutsFrom } : {}),
      },
      {
        stage: 'sac',
        epochs: c.learner.epochs,
        realRatio: c.learner.realRatio,
        ...(c.realBufferRows ? { realBuffer: c.realBufferRows } : {}),
        ...c.sac,
        ...(c.learner.actorLrSchedule !== undefined ? { actorLrSchedule: c.learner.actorLrSchedule } : {}),
      },
      { stage: 'evaluate', ...c.evaluate },
    ],
    checkpointEvery: c.checkpointEvery,
  };
}

export { MOPO_STAGES };
