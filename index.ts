// The library surface: sources, operators and sinks that compose with RxJS `pipe(...)`, the one
// transition schema, and the compute backend. The CLI (`mopo`) is built from these same pieces.
export { COLUMNS, TransitionBatch, transitionSchema, dimsOfSchema, type TransitionDims, type TransitionColumns, type OptionalColumn } from './schemas/transition.js';
export { readTransitions, readParquetInfo, type ReadOptions, type ColumnMapping, type ParquetInfo } from './operators/readTransitions.js';
export { writeTransitions, writeTransitionsFile, type WriteOptions, type WriteSummary } from './operators/writeTransitions.js';
export { writeShards, readShards, readManifest, manifestHash, type ShardManifest, type WriteShardsConfig } from './operators/shards.js';
export { datasetStats, RunningMoments, type DatasetStats } from './operators/datasetStats.js';
export { initBackend, tf, type BackendName } from './pipeline/backend.js';
export { installFastKernels, uninstallFastKernels } from './pipeline/kernels.js';
export { batchToTensors, type TransitionTensors } from './pipeline/tensors.js';
export { DenseStack, Adam } from './pipeline/mlp.js';
export { Rng } from './pipeline/random.js';
export { UserError } from './pipeline/errors.js';
export { pendulumRandomDataset } from './pipeline/defaultDataset.js';
export { makeEnv, makeVectorEnv, envSpec, terminationFn, d4rlScore, ENV_NAMES, type Env, type EnvName, type EnvSpec, type StepResult, VectorEnv } from './pipeline/envs/env.js';
export { checkTrajectory } from './pipeline/envs/check.js';
export { collectTransitions, uniformPolicy, type Policy, type CollectConfig } from './operators/collect.js';
export { ArrowReplayBuffer } from './operators/replayBuffer.js';
export { SacAgent, SacPolicy, loadPolicy, trainSacOnline, sacUpdates, sacEnvFrom, SAC_DEFAULTS, type SacConfig, type SacMetrics } from './operators/sac.js';
export { lineChartSvg, type LineChart, type Series } from './pipeline/plot.js';
export { computeNormalizer, normalize, Normalizer } from './operators/normalize.js';
export { DynamicsEnsemble, trainEnsemble, trainEnsembleFrom, ENSEMBLE_DEFAULTS, type EnsembleConfig, type EnsembleTrainingEvent } from './operators/ensemble.js';
export { rolloutPenalized, rolloutRound, rolloutPenalty, rolloutTriggers, resolveRolloutConfig, ROLLOUT_DEFAULTS, PENALTY_KINDS, type RolloutConfig, type RolloutModel, type RolloutPolicy, type RolloutTrigger, type RolloutDeps, type RolloutStats, type RolloutRoundStats, type RolloutRoundInputs, type RolloutRoundResult, type PenaltyKind } from './operators/rollout.js';
