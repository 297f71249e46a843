#!/usr/bin/env node
// The `mopo` command. Each subcommand is a thin shell over a pipeline or operator: it parses typed
// flags (yargs, strict: unknown flags are errors), runs the graph, and prints. User-caused errors
// (UserError) print one paragraph and exit 2; anything else is a bug and keeps its stack trace.
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { isUserError, diskErrorMessage } from './errors.js';
import { runInspect } from './commands/inspect.js';
import { runBench } from './commands/bench.js';
import { runStart } from './commands/start.js';
import { runConvert } from './commands/convert.js';
import { withInputOptions } from './commands/inputOptions.js';
import { runEnvCheck } from './commands/env.js';
import { runSac } from './commands/sac.js';
import { runCollect } from './commands/collect.js';
import { runTrainDynamics } from './commands/trainDynamics.js';
import { WEIGHT_INITS, type WeightInit } from './mlp.js';
import { PENALTY_KINDS } from '../operators/rollout.js';
import { LR_SCHEDULES, ROLLOUT_LAGS } from '../operators/sacConsumer.js';
import { MODEL_TARGETS, NLL_REDUCTIONS, RESAMPLES, type ModelTargets, type NllReduction, type Resample } from '../operators/ensemble.js';
import { runDiagnoseDynamics } from './commands/diagnose.js';
import { runDiagnosePenalty } from './commands/diagnosePenalty.js';
import { runTrain } from './commands/train.js';
import { TASKS } from './mopo.js';
import { runRun } from './commands/run.js';
import { runReplay } from './commands/replay.js';
import { runRunsLs, runRunsPlot, runRunsShow } from './commands/runs.js';
import { isMain } from './isMain.js';

const BACKENDS = ['node', 'wasm', 'cpu'] as const;

/** Thrown by the dry-run middleware once a command line has passed validation, before its handler. */
class CommandLineAccepted extends Error {}

/**
 * buildCli(argv) parses and runs; with `dryRun`, a command line that passes validation (command,
 * flags, choices, types: everything but the files it names) stops before its handler with
 * CommandLineAccepted, and one that does not throws an Error with yargs' message instead of exiting;
 * with `captureHelp`, such an Error is thrown too (helpText reads --help through the parse callback).
 */
function buildCli(argv: string[], opts: { dryRun?: boolean; captureHelp?: boolean } = {}): Argv {
  const cli = yargs(argv)
    .scriptName('mopo')
    .usage('$0 <command> [options]\n\nMOPO (model-based offline policy optimization) as a streaming dataflow over Parquet and Arrow.')
    .option('backend', {
      type: 'string',
      choices: BACKENDS,
      describe: 'compute backend (default: node if @tensorflow/tfjs-node loads, else wasm, else cpu; env MOPO_BACKEND)',
      global: true,
    })
    .option('quiet', { type: 'boolean', default: false, describe: 'no progress bars or log lines on stderr', global: true })
    .command(
      'start',
      'run the main job on the built-in default (what `npm start` runs): make halfcheetah-random if missing, then a quick MOPO run',
      (y) =>
        y
          .option('dataset', { type: 'string', default: 'data/datasets/halfcheetah-random.parquet', describe: 'the dataset (collected here first if missing)' })
          .option('out', { type: 'string', default: 'runs/start', describe: 'run directory (replaced on every start)' })
          .option('epochs', { type: 'number', describe: 'SAC epochs of 1000 updates (quick preset: 5)' })
          .option('seed', { type: 'number', default: 0, describe: 'seed for every random draw' })
          .example('$0 start', 'a few minutes; the last line is "score: <D4RL-normalized> (return <mean> ± <std>)"'),
      async (args) => {
        await runStart({ dataset: args.dataset, out: args.out, seed: args.seed, epochs: args.epochs, backend: args.backend, quiet: args.quiet });
      },
    )
    .command(
      'inspect <file>',
      'summarize a transition dataset (Parquet file or Arrow shard directory)',
      (y) =>
        withInputOptions(y)
          .positional('file', { type: 'string', demandOption: true, describe: 'Parquet file or shard directory' })
          .option('json', { type: 'boolean', default: false, describe: 'print one JSON object on stdout' })
          .example('$0 inspect data/datasets/pendulum-random.parquet', 'layout, schema, dims, episodes, per-column statistics')
          .example('$0 inspect runs/start/shards --json', 'the same as JSON'),
      async (args) => {
        await runInspect({ ...args, file: args.file, json: args.json, quiet: args.quiet });
      },
    )
    .command(
      'convert <input> <output>',
      'convert a dataset (any layout inspect reads) to the project\'s Parquet or to Arrow shards',
      (y) =>
        withInputOptions(y)
          .positional('input', { type: 'string', demandOption: true, describe: 'Parquet file' })
          .positional('output', { type: 'string', demandOption: true, describe: 'a .parquet file, or a directory for Arrow shards' })
          .option('to', { type: 'string', choices: ['parquet', 'shards'] as const, describe: 'output format (default: parquet when output ends in .parquet, else shards)' })
          .option('allow-non-finite', { type: 'boolean', default: false, describe: 'let rows with NaN/Infinity through (a cleaning stage drops them later)' })
          .option('compression', { type: 'string', choices: ['snappy', 'zstd', 'gzip', 'lz4', 'none'] as const, default: 'snappy', describe: 'Parquet page compression' })
          .option('rows-per-shard', { type: 'number', describe: 'rows per Arrow shard file (default 262,144)' })
          .example('$0 convert d4rl-halfcheetah-medium.parquet data/datasets/halfcheetah-medium.parquet', 'D4RL key names, list columns, any codec → the project\'s fast flat layout')
          .example('$0 convert episodes.parquet runs/x/shards --layout trajectories', 'one episode a row → Arrow transition shards'),
      async (args) => {
        await runConvert({ ...args, input: args.input, output: args.output, allowNonFinite: args.allowNonFinite, compression: args.compression, quiet: args.quiet });
      },
    )
    .command('env', 'environment tools (MuJoCo HalfCheetah, Hopper, Walker2d; Pendulum)', (y) =>
      y
        .command(
          'check <trajectory>',
          'replay a reference trajectory (start state + actions) and report the deviation of observations, rewards and terminations',
          (c) =>
            c
              .positional('trajectory', { type: 'string', demandOption: true, describe: 'trajectory JSON (the format of shared/reference/trajectories)' })
              .option('json', { type: 'boolean', default: false, describe: 'print one JSON object on stdout' })
              .example('$0 env check ../shared/reference/trajectories/hopper.json --json', '{"env","steps","maxObsError","maxRewardError","terminationsMatch"}; exit 0 only within 1e-6 and matching'),
          async (args) => {
            await runEnvCheck({ trajectory: args.trajectory, json: args.json });
          },
        )
        .demandCommand(1, 'Name an env command; `mopo env --help` lists them.'),
    )
    .command(
      'collect',
      'collect a D4RL-style transition dataset in a simulator and write it as Parquet',
      (y) =>
        y
          .option('env', { type: 'string', choices: ['halfcheetah', 'hopper', 'walker2d', 'pendulum'] as const, demandOption: true, describe: 'simulator to run' })
          .option('policy', { type: 'string', default: 'uniform', describe: 'uniform (random actions), random (a randomly initialized SAC actor, sampled), or a policy/checkpoint directory' })
          .option('steps', { type: 'number', default: 1_000_000, describe: 'transitions to collect' })
          .option('seed', { type: 'number', default: 0, describe: "seed of the environments' resets and of the actions drawn (uniform, the random actor's weights, --noise)" })
          .option('out', { type: 'string', demandOption: true, describe: 'output .parquet file' })
          .option('noise', { type: 'boolean', default: false, describe: 'sample actions from a saved policy instead of its deterministic action' })
          .option('num-envs', { type: 'number', default: 10, describe: 'environment copies stepped together' })
          .example('$0 collect --env halfcheetah --policy uniform --steps 1000000 --out data/datasets/halfcheetah-uniform-random.parquet', "a random dataset as D4RL's generation script makes it")
          .example('$0 collect --env halfcheetah --policy runs/sac-halfcheetah-seed0/policy --noise --out data/datasets/halfcheetah-medium.parquet', 'a dataset of a trained policy'),
      async (args) => {
        await runCollect({ env: args.env, policy: args.policy, steps: args.steps, seed: args.seed, out: args.out, noise: args.noise, numEnvs: args.numEnvs, backend: args.backend, quiet: args.quiet });
      },
    )
    .command(
      'sac',
      'train SAC online in a simulator (evaluations, JSONL metrics, SVG learning curve, checkpoints)',
      (y) =>
        y
          .option('env', { type: 'string', choices: ['halfcheetah', 'hopper', 'walker2d', 'pendulum'] as const, demandOption: true, describe: 'simulator to run' })
          .option('steps', { type: 'number', default: 200_000, describe: 'environment steps' })
          .option('seed', { type: 'number', default: 0, describe: 'seed of the initial weights, the exploration, the replay sampling and the resets' })
          .option('out', { type: 'string', describe: 'run directory (default runs/sac-<env>-seed<seed>)' })
          .option('eval-every', { type: 'number', describe: 'steps between evaluations (default 5000; pendulum 1000)' })
          .option('eval-episodes', { type: 'number', default: 10, describe: 'deterministic episodes per evaluation' })
          .option('start-steps', { type: 'number', describe: 'uniform random actions first (default 10000; pendulum 1000)' })
          .option('update-after', { type: 'number', describe: 'no updates before this step (default 1000)' })
          .option('update-every', { type: 'number', default: 50, describe: 'update in blocks of this many steps (one update per step)' })
          .option('stop-at-return', { type: 'number', describe: 'stop at the first evaluation whose mean return reaches this (e.g. a "medium" policy)' })
          .option('save-replay', { type: 'boolean', default: false, describe: 'write the replay buffer to <run>/replay.parquet at the end (a "medium-replay" dataset)' })
          .example('$0 sac --env pendulum --steps 15000', 'reaches an average return ≥ −200')
          .example('$0 sac --env halfcheetah --steps 200000', 'the reference SAC on HalfCheetah')
          .example('$0 sac --env halfcheetah --steps 1000000 --stop-at-return 4000 --save-replay --out runs/halfcheetah-medium', 'the medium policy and the medium-replay buffer'),
      async (args) => {
        await runSac({ env: args.env, steps: args.steps, seed: args.seed, out: args.out, evalEvery: args.evalEvery, evalEpisodes: args.evalEpisodes, startSteps: args.startSteps, updateAfter: args.updateAfter, updateEvery: args.updateEvery, stopAtReturn: args.stopAtReturn, saveReplay: args.saveReplay, backend: args.backend, quiet: args.quiet });
      },
    )
    .command(
      'train-dynamics',
      'train the probabilistic dynamics ensemble on a dataset (streamed once per epoch) and save it',
      (y) =>
        withInputOptions(y)
          .option('dataset', { type: 'string', demandOption: true, describe: 'Parquet file (any layout inspect reads)' })
          .option('out', { type: 'string', describe: 'run directory (default runs/dynamics-<dataset>)' })
          .option('members', { type: 'number', default: 7, describe: 'ensemble size' })
          .option('elites', { type: 'number', default: 5, describe: 'best members kept as elites' })
          .option('max-epochs', { type: 'number', describe: 'cap on epochs, default 1000 (training stops earlier when no member improves by >1 % for --patience epochs); with --resume it replaces the saved cap, and a cap at the epochs done finishes the training now with each member\'s best weights' })
          .option('patience', { type: 'number', describe: 'stop after this many epochs in a row in which no member improved by >1 %, default 5 (MOPO.md; the official code\'s BNN stops after 6); with --resume it replaces the saved value' })
          .option('seed', { type: 'number', default: 0, describe: 'seed of the initial weights, the held-out rows, the shuffles and the bootstrap draws' })
          .option('workers', { type: 'number', default: 2, describe: 'split the members across this many worker threads (2 is ~1.6x faster with a free second core; 1 when the other core is busy)' })
          .option('targets', { type: 'string', choices: MODEL_TARGETS, default: 'raw', describe: "the model's outputs: raw (Δs, r) as the official code's BNN, or normalized (Δs, r)" })
          .option('nll-reduction', { type: 'string', choices: NLL_REDUCTIONS, default: 'mean', describe: 'the NLL over the output dimensions: averaged as the official code, or summed' })
          .option('resample', { type: 'string', choices: RESAMPLES, default: 'permutation', describe: "each member's rows in an epoch: every row once, or a fixed bootstrap sample as the official code's BNN" })
          .option('init', { type: 'string', choices: WEIGHT_INITS, default: 'uniform', describe: "initial weights: uniform in ±1/√fan-in, a truncated normal with σ = 1/(2√fan-in) as the official code's BNN, or glorot-uniform (Keras' default)" })
          .option('resume', { type: 'boolean', default: false, describe: 'continue the unfinished training in --out from its last epoch' })
          .example('$0 train-dynamics --dataset data/datasets/halfcheetah-random.parquet --out runs/dyn-hc-random', 'the reference 7-member ensemble, trained to early stopping')
          .example('$0 train-dynamics --dataset data/datasets/halfcheetah-random.parquet --out runs/dyn-hc-random --resume', 'continue after a kill or Ctrl-C')
          .example('$0 train-dynamics --dataset data/datasets/halfcheetah-random.parquet --out runs/dyn-hc-random --resume --max-epochs 30', 'finish after epoch 30 (at once if it is past it), keeping each member\'s best weights'),
      async (args) => {
        await runTrainDynamics({ ...args, dataset: args.dataset, out: args.out, members: args.members, elites: args.elites, maxEpochs: args.maxEpochs, patience: args.patience, seed: args.seed, workers: args.workers, targets: args.targets as ModelTargets, nllReduction: args.nllReduction as NllReduction, resample: args.resample as Resample, init: args.init as WeightInit, resume: args.resume, backend: args.backend, quiet: args.quiet });
      },
    )
    .command(
      'train',
      'MOPO end to end: dynamics ensemble, penalized model rollouts (second core), SAC on mixed batches, evaluation in MuJoCo',
      (y) =>
        withInputOptions(y)
          .option('dataset', { type: 'string', describe: 'Parquet file of transitions (its env is read from the file or --env)' })
          .option('preset', { type: 'string', choices: ['paper', 'quick'] as const, default: 'paper', describe: "paper: MOPO's settings for the task (MOPO.md); quick: a run of minutes" })
          .option('task', { type: 'string', choices: TASKS, describe: 'D4RL task for the preset; default: from the file name' })
          .option('out', { type: 'string', describe: 'run directory (default runs/mopo-<dataset>-<preset>-seed<seed>)' })
          .option('resume', { type: 'string', describe: 'continue the run in this directory from its last checkpoint' })
          .option('dynamics', { type: 'string', describe: 'use this trained ensemble (a mopo train-dynamics run) instead of training one' })
          .option('horizon', { type: 'number', describe: 'rollout length h' })
          .option('lambda', { type: 'number', describe: 'penalty weight λ (0 = MBPO)' })
          .option('penalty', { type: 'string', choices: PENALTY_KINDS, describe: 'uncertainty estimator u(s, a)' })
          .option('epochs', { type: 'number', describe: 'SAC epochs' })
          .option('epoch-length', { type: 'number', describe: 'SAC updates per epoch, and between rollout rounds (default 1000)' })
          .option('rollout-batch', { type: 'number', describe: 'start states per rollout round' })
          .option('real-ratio', { type: 'number', describe: 'share of real data in each SAC batch' })
          .option('real-buffer', { type: 'number', describe: 'most real transitions held for that share (default: all); a larger dataset is sampled through a uniform reservoir of this size, refreshed as the stream passes' })
          .option('eval-every', { type: 'number', describe: 'evaluate every this many epochs' })
          .option('eval-episodes', { type: 'number', describe: 'episodes per evaluation' })
          .option('eval-last', { type: 'number', describe: "also evaluate after each of the final this many epochs (paper preset: 10, MOPO's score is their mean)" })
          .option('sac-init', { type: 'string', choices: WEIGHT_INITS, describe: "SAC's initial weights: uniform in ±1/√fan-in (default), glorot-uniform as the reference's Keras layers, or truncated-normal" })
          .option('rollout-lag', { type: 'number', choices: ROLLOUT_LAGS, describe: 'rounds the rollout policy trails the learner: 1 (default) rolls the next round beside the learner; 0 rolls each round at its insertion with the current policy, as the reference does, while the learner waits' })
          .option('target-entropy', { type: 'number', describe: "SAC's entropy target (paper preset: -3 as MOPO's D4RL configs; otherwise -|A|)" })
          .option('actor-lr', { type: 'number', describe: "the actor's Adam learning rate (default 3e-4)" })
          .option('alpha-lr', { type: 'number', describe: "the temperature α's Adam learning rate (default 3e-4)" })
          .option('actor-lr-schedule', { type: 'string', choices: LR_SCHEDULES, describe: "the actor's learning rate over the epochs: constant (default, MOPO's) or cosine, annealed from --actor-lr towards 0 over --epochs (OfflineRL-Kit's recipe)" })
          .option('checkpoint-every', { type: 'number', describe: 'checkpoint every this many epochs' })
          .option('seed', { type: 'number', default: 0, describe: "seed of SAC's initial weights and sampling, the rollouts and the evaluations (and of the ensemble when the run trains its own)" })
          .example('$0 train --dataset data/datasets/halfcheetah-random.parquet', "MOPO with the paper's settings for halfcheetah-random (h 5, λ 0.5)")
          .example('$0 train --dataset data/datasets/halfcheetah-random.parquet --preset quick', 'a run of minutes')
          .example('$0 train --resume runs/mopo-halfcheetah-random-paper-seed0', 'continue from the last checkpoint'),
      async (args) => {
        await runTrain({ ...args, preset: args.preset, seed: args.seed, quiet: args.quiet, backend: args.backend });
      },
    )
    .command(
      'run [pipeline]',
      'run a pipeline file: a source, preprocessing stages and the MOPO stages (data/pipelines/ holds the presets)',
      (y) =>
        y
          .positional('pipeline', { type: 'string', describe: 'pipeline JSON file' })
          .option('set', { type: 'string', array: true, describe: 'override a value: path=value, e.g. stages.rollout.horizon=1 or seed=3' })
          .option('out', { type: 'string', describe: 'run directory (default runs/<name>-seed<seed>)' })
          .option('resume', { type: 'string', describe: 'continue the run in this directory from its last checkpoint' })
          .example('$0 run data/pipelines/halfcheetah-random-paper.json', "MOPO with the paper's settings for halfcheetah-random")
          .example('$0 run data/pipelines/halfcheetah-random-quick.json --set stages.rollout.lambda=0 --out runs/mbpo-quick', 'a quick run of MBPO (λ = 0)'),
      async (args) => {
        await runRun({ pipeline: args.pipeline, set: args.set, out: args.out, resume: args.resume, backend: args.backend, quiet: args.quiet });
      },
    )
    .command(
      'replay <run>',
      'rerun a run downstream of a stage from what it saved (preprocessed data, ensemble, rollouts), without recomputing upstream',
      (y) =>
        y
          .positional('run', { type: 'string', demandOption: true, describe: 'run directory (made by mopo run or mopo train)' })
          .option('from', { type: 'string', choices: ['preprocess', 'dynamics', 'rollout', 'sac'] as const, describe: 'first stage to rerun (default: the first whose config --set changes)' })
          .option('set', { type: 'string', array: true, describe: 'change a value of the run\'s pipeline: path=value' })
          .option('out', { type: 'string', describe: 'run directory of the replay (default <run>-from-<stage>)' })
          .example('$0 replay runs/x --from sac', 'a new SAC on the synthetic rollouts x saved (its rollout stage had "tee": true)')
          .example('$0 replay runs/x --set stages.rollout.lambda=0', 'same ensemble, rollouts and SAC redone with λ = 0'),
      async (args) => {
        await runReplay({ run: args.run, from: args.from, set: args.set, out: args.out, backend: args.backend, quiet: args.quiet });
      },
    )
    .command('runs', 'list runs and what they saved', (y) =>
      y
        .command(
          'ls [dir]',
          'the runs in a directory (default runs/): env, epochs, last score, status',
          (c) => c.positional('dir', { type: 'string', default: 'runs', describe: 'the directory that holds the run directories' }).option('json', { type: 'boolean', default: false, describe: 'print one JSON array on stdout' }),
          async (args) => {
            await runRunsLs({ dir: args.dir, json: args.json });
          },
        )
        .command(
          'show <run>',
          "a run's stages: preprocessed rows and hashes, the ensemble, saved rollout rounds, SAC progress and checkpoint",
          (c) => c.positional('run', { type: 'string', demandOption: true, describe: 'run directory' }).option('json', { type: 'boolean', default: false, describe: 'print one JSON object on stdout' }),
          async (args) => {
            await runRunsShow({ run: args.run, json: args.json });
          },
        )
        .command(
          'plot <runs..>',
          'the evaluation curves of several runs in one SVG (score, or return where there is none)',
          (c) =>
            c
              .positional('runs', { type: 'string', array: true, demandOption: true, describe: 'run directories' })
              .option('out', { type: 'string', demandOption: true, describe: 'the SVG file to write' })
              .option('reference', { type: 'string', array: true, default: [] as string[], describe: 'a horizontal line <value>=<label> (repeatable; a negative value as --reference=-150=label)' })
              .option('title', { type: 'string', describe: "the chart's title (default: 'Evaluation in MuJoCo (deterministic policy)'; for dynamics runs, the ensemble's)" })
              .option('over-seeds', { type: 'boolean', default: false, describe: "draw runs that differ only in the seed (theirs or their ensemble's) as one curve: the mean over seeds ± their std" })
              .example('$0 runs plot runs/mopo-hc-random-paper runs/mopo-hc-random-lambda0 --reference "35.4=MOPO paper" --out docs/figures/mopo-hc-random.svg', 'MOPO against λ = 0')
              .example('$0 runs plot runs/mopo-hcur-patience runs/mopo-hcur-patience-seed1 runs/mopo-hcur-patience-seed2 --over-seeds --out seeds.svg', 'three seeds as one curve'),
          async (args) => {
            await runRunsPlot({ runs: args.runs.map(String), out: args.out, references: args.reference.map(String), title: args.title, overSeeds: args.overSeeds });
          },
        )
        .demandCommand(1, 'Name a runs command; `mopo runs --help` lists them.'),
    )
    .command('diagnose', 'measure a trained model against baselines and the real simulator', (y) =>
      y
        .command(
          'dynamics',
          'validation MSE vs linear least squares, one-step error and calibration against MuJoCo, open-loop error growth',
          (c) =>
            withInputOptions(c)
              .option('run', { type: 'string', demandOption: true, describe: 'a mopo train-dynamics run directory (or an ensemble directory)' })
              .option('dataset', { type: 'string', describe: "the dataset the ensemble was trained on (default: the run's config.json)" })
              .option('states', { type: 'number', default: 1000, describe: 'held-out rows compared with the simulator' })
              .option('horizon', { type: 'number', default: 5, describe: 'open-loop rollout length' })
              .option('seed', { type: 'number', default: 0, describe: 'seed of the sampled rollouts' })
              .option('json', { type: 'boolean', default: false, describe: 'print the report as one JSON object on stdout' })
              .example('$0 diagnose dynamics --run runs/dyn-hc-random --json', 'writes runs/dyn-hc-random/diagnose-dynamics.{json,svg}'),
          async (args) => {
            await runDiagnoseDynamics({ ...args, run: args.run, dataset: args.dataset, states: args.states, horizon: args.horizon, seed: args.seed, json: args.json, backend: args.backend, quiet: args.quiet });
          },
        )
        .command(
          'penalty',
          "every penalty estimator against the model's true one-step error in MuJoCo at dataset and model-rollout states: correlations, how often λ·u bounds the error, along the horizon and with distance from the data",
          (c) =>
            c
              .option('run', { type: 'string', demandOption: true, describe: 'a MOPO run directory (mopo train, run or start)' })
              .option('dynamics', { type: 'string', describe: "another ensemble (a mopo train-dynamics run) in place of the run's: the same policy and λ; writes diagnose-penalty-<its name>.{json,html}" })
              .option('states', { type: 'number', default: 1000, describe: 'dataset states (with policy actions); also the rollout starts unless --starts' })
              .option('starts', { type: 'number', describe: "rollout start states, each rolled for the run's horizon (default: --states)" })
              .option('reference-rows', { type: 'number', default: 20_000, describe: 'dataset rows the distance from the data is measured to' })
              .option('bins', { type: 'number', default: 5, describe: 'quantile bins of the distance from the data' })
              .option('w1-samples', { type: 'number', default: 100, describe: 'Monte Carlo samples a pair for the W1 of (s′, r)' })
              .option('seed', { type: 'number', default: 0, describe: 'seed of the sampled states, rollout starts and rollouts, and of the W1 samples' })
              .option('json', { type: 'boolean', default: false, describe: 'print the summary (without the per-pair rows) as one JSON object on stdout' })
              .example('$0 diagnose penalty --run runs/start', 'writes runs/start/diagnose-penalty.{json,html}')
              .example('$0 diagnose penalty --run runs/start --dynamics runs/dyn-hc-random', "the same policy under another ensemble's penalty; writes runs/start/diagnose-penalty-dyn-hc-random.{json,html}"),
          async (args) => {
            await runDiagnosePenalty({ run: args.run, dynamics: args.dynamics, states: args.states, starts: args.starts, referenceRows: args.referenceRows, bins: args.bins, w1Samples: args.w1Samples, seed: args.seed, json: args.json, backend: args.backend, quiet: args.quiet });
          },
        )
        .demandCommand(1, 'Name what to diagnose; `mopo diagnose --help` lists it.'),
    )
    .command(
      'bench <what>',
      'measure a speed target and print JSON',
      (y) =>
        y
          .positional('what', { type: 'string', choices: ['dense', 'ingest', 'env', 'sac', 'ensemble', 'buffer', 'train', 'memory'] as const, demandOption: true, describe: 'the benchmark (the README, "mopo bench", says what each measures)' })
          .option('json', { type: 'boolean', default: false, describe: 'print only the JSON result on stdout' })
          .option('rows', { type: 'number', describe: 'ingest: transitions in the generated file (default 1,000,000); env: steps; ensemble: prediction batch (default 50,000); train: rollout start states per round (default 12,500, with 250 updates a round: the proportions of the paper at ¼ scale; 50,000 is full scale); memory: the big dataset (default 10,000,000)' })
          .option('seconds', { type: 'number', describe: 'dense, sac: time budget per measurement' })
          .option('variants', { type: 'boolean', default: false, describe: 'dense: also print per-variant timings (stock vs patched kernels) on stderr' })
          .option('vector-layout', { type: 'string', choices: ['columns', 'fixed-size-list'] as const, describe: 'ingest: how the generated file stores vectors (default columns)' })
          .option('compression', { type: 'string', choices: ['snappy', 'zstd', 'gzip', 'lz4', 'none'] as const, describe: 'ingest: page compression of the generated file (default snappy)' })
          .option('full-ensemble', { type: 'boolean', default: false, describe: 'memory: train the reference 7 × 4×200 ensemble instead of 7 × [32, 32] (~45 min an epoch on 10M rows)' })
          .option('cache-dir', { type: 'string', describe: 'memory: where the generated datasets are kept between runs (default data/bench)' })
          .example('$0 bench dense --json', 'matMul peak vs SAC-critic and 7-member ensemble training steps (GFLOP/s)')
          .example('$0 bench ingest --json', 'Parquet → Arrow transition batches, transitions/s')
          .example('$0 bench env --json', 'HalfCheetah env steps/s beside the raw mj_step rate')
          .example('$0 bench train --json', 'SAC updates/s with the rollouts running on the second core vs SAC alone; wait fractions of both sides')
          .example('$0 bench sac --json', 'SAC updates/s (halfcheetah sizes) and GFLOP/s against the dense peak')
          .example('$0 bench ensemble --json', 'ensemble training samples/s and predictions/s at batch 50,000 against the dense peak')
          .example('$0 bench buffer --json', 'replay buffer appends/s and sampled transitions/s (1.25M rows), a 256-sample against one SAC update')
          .example('$0 bench memory --json', 'peak RSS of ingest → clean → stats → normalize → tee and an ensemble epoch, 1M vs 10M transitions, heap capped at 512 MB'),
      async (args) => {
        await runBench({ what: args.what as 'dense' | 'ingest' | 'env' | 'sac' | 'ensemble' | 'buffer' | 'train' | 'memory', json: args.json, rows: args.rows, seconds: args.seconds, variants: args.variants, vectorLayout: args.vectorLayout, compression: args.compression, fullEnsemble: args.fullEnsemble, cacheDir: args.cacheDir, backend: args.backend, quiet: args.quiet });
      },
    )
    .demandCommand(1, 'Name a command; `mopo --help` lists them.')
    .strict()
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version(false)
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      if (err) throw err;
      if (opts.dryRun || opts.captureHelp) throw new Error(msg);
      process.stderr.write(`mopo: ${msg}\nRun \`mopo --help\` (or \`mopo <command> --help\`) for the options.\n`);
      process.exit(2);
    });
  if (opts.dryRun) {
    cli.middleware(() => {
      throw new CommandLineAccepted();
    }, false);
  }
  return cli;
}

/**
 * Whether `mopo <argv>` would be accepted (the docs' examples are held to the CLI with it: test/docs.test.ts):
 * null when it would run, else yargs' message (unknown flag, bad choice, missing argument…). Runs nothing.
 */
export async function checkCommandLine(argv: string[]): Promise<string | null> {
  try {
    await buildCli(argv, { dryRun: true }).exitProcess(false).parseAsync();
    return 'no command ran (help or nothing to do)';
  } catch (e) {
    if (e instanceof CommandLineAccepted) return null;
    return e instanceof Error ? e.message : String(e);
  }
}

/** What `mopo <command…> --help` prints, captured instead of printed (test/cli.test.ts holds every option to a description with it). */
export async function helpText(command: string[]): Promise<string> {
  const argv = [...command, '--help'];
  return new Promise((resolve, reject) => {
    void buildCli(argv, { captureHelp: true })
      .exitProcess(false)
      .parse(argv, {}, (err, _args, output) => (err ? reject(err) : resolve(output)));
  });
}

async function main(argv: string[]): Promise<void> {
  // A reader that closes early (`mopo runs ls | head -1`) is not an error: stop quietly, as Unix tools do.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    process.exit(0);
  });
  try {
    await buildCli(argv).parseAsync();
  } catch (e) {
    if (isUserError(e)) {
      process.stderr.write(`mopo: ${e.message}\n`);
      process.exitCode = e.exitCode;
      return;
    }
    const disk = diskErrorMessage(e);
    if (disk) {
      process.stderr.write(`mopo: ${disk}\n`);
      process.exitCode = 2;
      return;
    }
    throw e;
  }
}

if (isMain(import.meta.url)) await main(hideBin(process.argv));
