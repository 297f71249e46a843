// Runs a pipeline document: the source through the preprocessing stages, materialized once as
// Arrow shards in the run directory (<run>/stages/preprocess, with a manifest whose config hash
// covers the source and the stages, so an unchanged prefix is reused, not recomputed), then the
// MOPO stages (pipeline/mopo.ts) on those shards. A pipeline of preprocessing stages only stops
// after writing them.
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { lastValueFrom, tap, type OperatorFunction } from 'rxjs';
import { openTransitions } from '../operators/source.js';
import { writeShards, readManifest, manifestHash, type ShardManifest } from '../operators/shards.js';
import type { TransitionBatch } from '../schemas/transition.js';
import { configHash } from './hash.js';
import { writeFileAtomic } from './atomic.js';
import { ProgressBar } from './progress.js';
import { UserError } from './errors.js';
import { PREPROCESS_STAGES } from './stages.js';
import { parsePipeline, pipelineToMopoConfig, type ParsedPipeline } from './pipelineFile.js';
import { runMopo, type MopoRunOptions, type MopoSummary } from './mopo.js';
import { acquireRunLock, sweepKilledRun, tracePhase } from './runLock.js';

export const PIPELINE_FILE = 'pipeline.json';

export interface PipelineRunResult {
  runDir: string;
  preprocess: { manifest: ShardManifest; reused: boolean; summaries: { stage: string; summary: unknown }[] } | null;
  mopo: MopoSummary | null;
}

/** The pipeline a run directory was started with (for --resume and replay). */
export function readRunPipeline(runDir: string): ParsedPipeline {
  const path = join(runDir, PIPELINE_FILE);
  if (!existsSync(path)) throw new UserError(`${runDir}: no ${PIPELINE_FILE} here; it is not a run directory made by mopo run or mopo train`);
  return parsePipeline(JSON.parse(readFileSync(path, 'utf8')), path);
}

export async function runPipeline(runDirIn: string, parsedIn: ParsedPipeline | null, opts: MopoRunOptions): Promise<PipelineRunResult> {
  const runDir = resolve(runDirIn);
  const log = opts.log ?? (() => {});
  const parsed = opts.resume ? readRunPipeline(runDir) : parsedIn;
  if (parsed === null) throw new Error('runPipeline: no pipeline given');
  mkdirSync(runDir, { recursive: true });
  const lock = acquireRunLock(runDir, log);
  try {
    // What a killed run left half-written goes first (temporary files, an unfinished checkpoint).
    const swept = sweepKilledRun(runDir);
    if (swept.length > 0) log(`removed what a killed run left unfinished: ${swept.map((p) => p.slice(runDir.length + 1)).join(', ')}`);
    return await runLocked(runDir, parsed, opts, log);
  } finally {
    lock.release();
  }
}

async function runLocked(runDir: string, parsed: ParsedPipeline, opts: MopoRunOptions, log: (m: string) => void): Promise<PipelineRunResult> {
  if (!opts.resume) {
    if (existsSync(join(runDir, 'checkpoints', 'latest.json'))) {
      throw new UserError(`${runDir} already holds a run with checkpoints; continue it with --resume, or choose another --out`);
    }
    await writeFileAtomic(join(runDir, PIPELINE_FILE), JSON.stringify(parsed.file, null, 2) + '\n');
  }
  const f = parsed.file;
  let dataset = f.source.dataset;
  let pre: PipelineRunResult['preprocess'] = null;
  if (parsed.preprocess.length > 0) {
    const dir = join(runDir, 'stages', 'preprocess');
    const config = { source: f.source, stages: parsed.preprocess, seed: f.seed ?? 0, env: f.env };
    const hash = configHash(config);
    const summaryPath = join(runDir, 'stages', 'preprocess-summary.json');
    let reused = false;
    // The summary is written after the shards' manifest completes: both, or the stage runs again.
    if (existsSync(join(dir, 'manifest.json')) && existsSync(summaryPath)) {
      const m = await readManifest(dir).catch(() => null);
      if (m && m.complete && m.configHash === hash) reused = true;
    }
    const summaries: { stage: string; summary: unknown }[] = [];
    if (!reused) {
      tracePhase('preprocess');
      rmSync(summaryPath, { force: true });
      const { dataset: path, allowNonFinite, ...read } = f.source;
      const ops: OperatorFunction<TransitionBatch, TransitionBatch>[] = parsed.preprocess.map((spec, index) => {
        const stage = PREPROCESS_STAGES.find((s) => s.name === spec.stage)!;
        return stage.build(spec, { runDir, index, seed: f.seed ?? 0, env: f.env, upstream: parsed.preprocess.slice(0, index), onSummary: (summary) => summaries.push({ stage: spec.stage, summary }) });
      });
      const bar = new ProgressBar({ label: 'preprocess', unit: 'rows', quiet: opts.quiet ?? false });
      let rows = 0;
      // A pipeline that drops non-finite rows must let them reach that stage.
      const letNonFinite = allowNonFinite || parsed.preprocess.some((s) => s.stage === 'dropNonFinite');
      const source = openTransitions(path, { ...read, ...(letNonFinite ? { allowNonFinite: true } : {}) });
      const staged = ops.reduce((s, op) => s.pipe(op), source).pipe(tap((b) => bar.update((rows += b.length))));
      await lastValueFrom(staged.pipe(writeShards({ dir, stage: 'preprocess', config, seed: f.seed ?? 0 })));
      bar.finish();
      tracePhase('preprocess-summary');
      for (const s of summaries) log(`${s.stage}: ${JSON.stringify(s.summary)}`);
      await writeFileAtomic(summaryPath, JSON.stringify(summaries, null, 2) + '\n');
    } else log(`preprocessing unchanged (config ${hash.slice(0, 12)}): reusing ${dir}`);
    const manifest = await readManifest(dir);
    pre = { manifest, reused, summaries };
    dataset = dir;
    log(`preprocessed data: ${manifest.rows} rows in ${dir} (manifest ${manifestHash(manifest).slice(0, 12)})`);
  }
  if (parsed.dynamics === null && parsed.rollout === null) return { runDir, preprocess: pre, mopo: null };
  const mopo = await runMopo(runDir, pipelineToMopoConfig(parsed, dataset), opts);
  return { runDir, preprocess: pre, mopo };
}

