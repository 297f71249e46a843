// `mopo start` (what `npm start` runs): the main job on a built-in default. It makes the
// halfcheetah-random dataset if none is present (1M steps of a randomly initialized SAC actor in
// MuJoCo, as the D4RL paper describes its random data, about a minute), then runs MOPO with the quick preset (minutes: the
// ensemble on 100k rows, five SAC epochs of 1000 updates with rollouts on the second core) and
// prints the D4RL-normalized score as its last line. runs/start is this command's own run
// directory and is replaced on every start.
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { runCollect } from './collect.js';
import { runTrain } from './train.js';

export interface StartArgs {
  dataset: string;
  out: string;
  seed: number;
  epochs?: number | undefined;
  backend?: string | undefined;
  quiet: boolean;
}

export const DEFAULT_START_DATASET = 'data/datasets/halfcheetah-random.parquet';

export async function runStart(args: StartArgs): Promise<void> {
  const log = args.quiet ? () => {} : (m: string) => process.stderr.write(m + '\n');
  const dataset = resolve(args.dataset);
  if (!existsSync(dataset)) {
    log(`mopo start: ${args.dataset} is not here yet; collecting it (1,000,000 steps of a random SAC actor in MuJoCo HalfCheetah)`);
    mkdirSync(dirname(dataset), { recursive: true });
    await runCollect({ env: 'halfcheetah', policy: 'random', steps: 1_000_000, seed: 0, out: dataset, noise: false, numEnvs: 10, backend: args.backend, quiet: args.quiet });
  }
  const out = resolve(args.out);
  rmSync(out, { recursive: true, force: true });
  await runTrain({ dataset, preset: 'quick', task: 'random', out, seed: args.seed, epochs: args.epochs, backend: args.backend, quiet: args.quiet });
}
