// The stage registry of pipeline files: each preprocessing stage is one operator file in
// operators/ plus one entry here (its name, the zod schema of its config in a pipeline file, and
// how to build its operator). The MOPO stages (dynamics, rollout, sac, evaluate) are in
// pipelineFile.ts and run by pipeline/mopo.ts.
import type { OperatorFunction } from 'rxjs';
import type { z } from 'zod';
import type { TransitionBatch } from '../schemas/transition.js';

/** A preprocessing stage as a pipeline file lists it: { "stage": name, ...config }. */
export type PreprocessStageSpec = { stage: string } & Record<string, unknown>;

export interface StageContext {
  /** The run directory (tee stages write under it). */
  runDir: string;
  /** Position of the stage in the file's list. */
  index: number;
  seed: number;
  env: string;
  /** Where a stage reports its counts (logged and kept in the run's stage summary). */
  onSummary: (summary: unknown) => void;
}

export interface PreprocessStage {
  name: string;
  schema: z.ZodType;
  build(spec: PreprocessStageSpec, ctx: StageContext): OperatorFunction<TransitionBatch, TransitionBatch>;
}

export const PREPROCESS_STAGES: readonly PreprocessStage[] = [];
