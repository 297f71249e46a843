// `mopo collect`: a D4RL-style transition dataset made by the tool itself: `uniform` random actions
// (what D4RL's generation script does for its random datasets), `random` (a randomly initialized SAC
// actor, sampled: the D4RL paper's description), or a saved policy
// (deterministic unless --noise). Written as Parquet, atomically, with a progress bar.
import { lastValueFrom, tap } from 'rxjs';
import { initBackend } from '../backend.js';
import { envSpec } from '../envs/env.js';
import { collectTransitions, uniformPolicy, type Policy } from '../../operators/collect.js';
import { SacAgent, loadPolicy } from '../../operators/sac.js';
import { writeTransitions } from '../../operators/writeTransitions.js';
import { ProgressBar } from '../progress.js';
import { Rng } from '../random.js';
import { UserError } from '../errors.js';

export interface CollectArgs {
  env: string;
  policy: string;
  steps: number;
  seed: number;
  out: string;
  noise: boolean;
  numEnvs: number;
  backend?: string | undefined;
  quiet: boolean;
}

export async function runCollect(args: CollectArgs): Promise<void> {
  const spec = envSpec(args.env);
  if (!Number.isInteger(args.steps) || args.steps <= 0) throw new UserError(`--steps must be a positive integer, got ${args.steps}`);
  if (!Number.isInteger(args.numEnvs) || args.numEnvs <= 0) throw new UserError(`--num-envs must be a positive integer, got ${args.numEnvs}`);
  const log = args.quiet ? () => {} : (m: string) => process.stderr.write(m + '\n');
  let policy: Policy;
  let stochastic = args.noise;
  if (args.policy === 'uniform') {
    policy = uniformPolicy(spec.actionSpec.low, spec.actionSpec.high, new Rng(args.seed, 'collect/uniform'));
  } else {
    await initBackend({ ...(args.backend ? { backend: args.backend } : {}), log });
    if (args.policy === 'random') {
      const agent = SacAgent.create({ actionLow: [...spec.actionSpec.low], actionHigh: [...spec.actionSpec.high] }, { obsDim: spec.obsDim, actDim: spec.actDim }, new Rng(args.seed, 'collect/random-actor'));
      policy = agent.actorPolicy;
      stochastic = true;
    } else {
      const p = await loadPolicy(args.policy, { rng: new Rng(args.seed, 'collect/policy-noise') });
      if (p.obsDim !== spec.obsDim || p.actDim !== spec.actDim) {
        throw new UserError(`${args.policy}: the policy maps ${p.obsDim} observations to ${p.actDim} actions, but ${spec.name} has ${spec.obsDim} and ${spec.actDim}. Use a policy trained on ${spec.name}.`);
      }
      policy = p;
    }
  }
  const bar = new ProgressBar({ label: `collect ${spec.name}`, total: args.steps, unit: 'steps', quiet: args.quiet });
  let done = 0;
  const summary = await lastValueFrom(
    collectTransitions({ env: spec.name, steps: args.steps, seed: args.seed, numEnvs: args.numEnvs, stochastic }, policy).pipe(
      tap((b) => bar.update((done += b.length))),
      writeTransitions(args.out, { metadata: { 'mopo.policy': args.policy, 'mopo.seed': String(args.seed), 'mopo.stochastic': String(stochastic) } }),
    ),
  );
  bar.finish();
  process.stdout.write(`${summary.rows} transitions of ${spec.name} (${args.policy} policy${stochastic ? ', stochastic' : ''}) → ${summary.path} (${(summary.bytes / 1e6).toFixed(1)} MB)\n`);
}
