// `mopo replay <run-dir> --from <stage> [--set …]`: re-runs everything downstream of a stage from
// what the run saved, without recomputing upstream:
//   --from dynamics   retrain the ensemble from the saved preprocessed data (stages/preprocess)
//   --from rollout    keep the ensemble (dynamics/), compute new rollouts and a new SAC
//   --from sac        keep the synthetic data (stages/rollout, saved with the rollout stage's "tee")
//                     and train a new SAC on exactly those rounds
// Without --from, the first stage whose config (after --set) differs from the run's is where the
// replay starts. The new run directory records what it replays (replay.json); with the same seed on
// the same backend the replayed stages reproduce the original metrics exactly.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { initBackend } from '../backend.js';
import { parsePipeline, applySet, MOPO_STAGES, type ParsedPipeline } from '../pipelineFile.js';
import { readRunPipeline, PIPELINE_FILE } from '../runPipeline.js';
import { readManifest } from '../../operators/shards.js';
import { configHash } from '../hash.js';
import { writeFileAtomic } from '../atomic.js';
import { UserError } from '../errors.js';
import { runPipelineCommand } from './train.js';

export const REPLAY_STAGES = ['preprocess', 'dynamics', 'rollout', 'sac'] as const;
export type ReplayStage = (typeof REPLAY_STAGES)[number];

export interface ReplayArgs {
  run: string;
  from?: string | undefined;
  set?: (string | number)[] | undefined;
  out?: string | undefined;
  backend?: string | undefined;
  quiet: boolean;
}

/** The config each stage group depends on (its own and the seed/env/source), for change detection. */
function stageConfigs(p: ParsedPipeline): Record<ReplayStage, string> {
  const { source, seed, env } = p.file;
  const strip = <T extends object | null>(o: T) => (o === null ? null : Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'tee' && k !== 'from')));
  return {
    preprocess: configHash({ source, seed, env, stages: p.preprocess }),
    dynamics: configHash(strip(p.dynamics)),
    rollout: configHash(strip(p.rollout)),
    sac: configHash({ sac: p.sac, evaluate: p.evaluate, checkpointEvery: p.file.checkpointEvery }),
  };
}

/** The first stage whose config differs (null: none does). */
export function firstChangedStage(before: ParsedPipeline, after: ParsedPipeline): ReplayStage | null {
  const a = stageConfigs(before);
  const b = stageConfigs(after);
  return REPLAY_STAGES.find((s) => a[s] !== b[s]) ?? null;
}

/** The pipeline document that replays `run` from `from` with the (modified) `next` configs. */
export async function replayPipeline(run: string, next: ParsedPipeline, from: ReplayStage): Promise<unknown> {
  const doc = structuredClone(next.file) as { source: { dataset: string }; stages: { stage: string; from?: string }[] };
  const stage = (name: string) => doc.stages.find((s) => s.stage === name);
  const preDir = join(run, 'stages', 'preprocess');
  if (from !== 'preprocess' && next.preprocess.length > 0) {
    if (!existsSync(join(preDir, 'manifest.json'))) throw new UserError(`${preDir}: the run's preprocessed data is missing; replay --from preprocess`);
    const m = await readManifest(preDir);
    if (!m.complete) throw new UserError(`${preDir}: the preprocessed data is incomplete (the run was stopped while writing it); replay --from preprocess`);
    doc.source = { dataset: preDir };
    doc.stages = doc.stages.filter((s) => (MOPO_STAGES as readonly string[]).includes(s.stage));
  }
  if (from === 'rollout' || from === 'sac') {
    const ens = join(run, 'dynamics', 'ensemble', 'ensemble.json');
    if (!stage('dynamics')?.from && !existsSync(ens)) throw new UserError(`${ens}: the run has no trained ensemble yet; replay --from dynamics`);
    if (!stage('dynamics')?.from) stage('dynamics')!.from = join(run, 'dynamics');
  }
  if (from === 'sac') {
    const dir = join(run, 'stages', 'rollout');
    if (!existsSync(dir)) throw new UserError(`${dir}: the run saved no rollouts (set "tee": true on its rollout stage); replay --from rollout instead`);
    stage('rollout')!.from = dir;
    delete (stage('rollout') as { tee?: boolean }).tee;
  }
  return doc;
}

export async function runReplay(args: ReplayArgs): Promise<void> {
  const log = args.quiet ? () => {} : (m: string) => process.stderr.write(m + '\n');
  const run = resolve(args.run);
  const original = readRunPipeline(run);
  const doc = JSON.parse(readFileSync(join(run, PIPELINE_FILE), 'utf8')) as unknown;
  for (const s of (args.set ?? []).map(String)) applySet(doc, s);
  const next = parsePipeline(doc, `${join(run, PIPELINE_FILE)} with --set`);
  let from: ReplayStage;
  if (args.from !== undefined) {
    if (!(REPLAY_STAGES as readonly string[]).includes(args.from)) throw new UserError(`--from must be one of ${REPLAY_STAGES.join(', ')}, got ${args.from}`);
    from = args.from as ReplayStage;
  } else {
    const changed = firstChangedStage(original, next);
    from = changed ?? (existsSync(join(run, 'stages', 'rollout')) ? 'sac' : 'rollout');
    log(changed ? `the first stage whose config changed: ${changed}; replaying from there` : `no config changed; replaying from ${from}`);
  }
  if (from === 'preprocess' && original.preprocess.length === 0) from = 'dynamics';
  const replayDoc = await replayPipeline(run, next, from);
  const parsed = parsePipeline(replayDoc, 'the replay pipeline');
  const out = resolve(args.out ?? `${run}-from-${from}`);
  const backend = await initBackend({ ...(args.backend ? { backend: args.backend } : {}), log });
  mkdirSync(out, { recursive: true });
  await writeFileAtomic(join(out, 'replay.json'), JSON.stringify({ of: run, from, set: (args.set ?? []).map(String) }, null, 2) + '\n');
  log(`replaying ${run} from ${from} into ${out}`);
  await runPipelineCommand(out, parsed, { resume: false, quiet: args.quiet, backend, log, command: 'run' });
}
