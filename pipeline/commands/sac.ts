// `mopo sac`: online Soft Actor-Critic in a real environment, the check that the learner works
// before MOPO trusts it offline. The run directory gets the resolved config, JSONL metrics, an SVG
// learning curve (rewritten at every evaluation), the latest checkpoint and the policy (actor).
import { appendFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { initBackend } from '../backend.js';
import { makeEnv, envSpec, d4rlScore, type EnvName } from '../envs/env.js';
import { trainSacOnline, sacEnvFrom, type SacOnlineEvent } from '../../operators/sac.js';
import { meanStd } from '../../operators/evaluate.js';
import { writeFileAtomic } from '../atomic.js';
import { ProgressBar } from '../progress.js';
import { lineChartSvg } from '../plot.js';
import { UserError } from '../errors.js';
import { from, lastValueFrom } from 'rxjs';
import { writeTransitions } from '../../operators/writeTransitions.js';

export interface SacArgs {
  env: string;
  steps: number;
  seed: number;
  out?: string | undefined;
  evalEvery?: number | undefined;
  evalEpisodes: number;
  startSteps?: number | undefined;
  updateAfter?: number | undefined;
  updateEvery: number;
  /** Stop at the first evaluation whose mean return reaches this (D4RL's "medium" recipe). */
  stopAtReturn?: number | undefined;
  /** Write the replay buffer as <run>/replay.parquet at the end (D4RL's "medium-replay"). */
  saveReplay: boolean;
  backend?: string | undefined;
  quiet: boolean;
}

/** Per-environment defaults: the reference's 10,000 random steps, fewer for the short pendulum. */
function defaultsFor(env: EnvName) {
  return env === 'pendulum' ? { startSteps: 1000, updateAfter: 1000, evalEvery: 1000 } : { startSteps: 10_000, updateAfter: 1000, evalEvery: 5000 };
}

export async function runSac(args: SacArgs): Promise<void> {
  const spec = envSpec(args.env);
  const d = defaultsFor(spec.name);
  for (const [flag, v] of [['--steps', args.steps], ['--eval-episodes', args.evalEpisodes], ['--update-every', args.updateEvery]] as const) {
    if (!Number.isInteger(v) || v <= 0) throw new UserError(`${flag} must be a positive integer, got ${v}`);
  }
  const out = resolve(args.out ?? join('runs', `sac-${spec.name}-seed${args.seed}`));
  mkdirSync(out, { recursive: true });
  const log = args.quiet ? () => {} : (m: string) => process.stderr.write(m + '\n');
  const backend = await initBackend({ ...(args.backend ? { backend: args.backend } : {}), log });
  const config = {
    job: 'sac',
    env: spec.name,
    steps: args.steps,
    seed: args.seed,
    evalEvery: args.evalEvery ?? d.evalEvery,
    evalEpisodes: args.evalEpisodes,
    startSteps: args.startSteps ?? d.startSteps,
    updateAfter: args.updateAfter ?? d.updateAfter,
    updateEvery: args.updateEvery,
    stopAtReturn: args.stopAtReturn ?? null,
    saveReplay: args.saveReplay,
    backend,
  };
  await writeFileAtomic(join(out, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  const metricsPath = join(out, 'metrics.jsonl');
  await writeFileAtomic(metricsPath, '');

  const env = sacEnvFrom(await makeEnv(spec.name));
  const evalEnv = sacEnvFrom(await makeEnv(spec.name));
  const bar = new ProgressBar({ label: `sac ${spec.name}`, total: args.steps, unit: 'steps', quiet: args.quiet });
  const evals: { step: number; mean: number; std: number }[] = [];
  const scored = spec.name !== 'pendulum';
  let lastEval = '';
  let agentRef: { saveCheckpoint(dir: string): Promise<void>; savePolicy(dir: string): Promise<void> } | null = null;
  let saving: Promise<void> = Promise.resolve();
  const t0 = performance.now();
  const stop = new AbortController();

  const onMetrics = (e: SacOnlineEvent) => {
    const row = { ...e, time: (performance.now() - t0) / 1000 };
    appendFileSync(metricsPath, JSON.stringify(row) + '\n');
    if (e.kind === 'episode') bar.update(e.step, lastEval);
    if (e.kind === 'eval') {
      const { mean, std } = meanStd(e.returns);
      evals.push({ step: e.step, mean, std });
      lastEval = `eval ${mean.toFixed(1)} ± ${std.toFixed(1)}${scored ? ` (D4RL ${d4rlScore(spec.name, mean).toFixed(1)})` : ''}`;
      bar.update(e.step, lastEval);
      if (args.stopAtReturn !== undefined && mean >= args.stopAtReturn) stop.abort();
      const svg = lineChartSvg({
        title: `SAC on ${spec.name} (seed ${args.seed})`,
        xLabel: 'environment steps',
        yLabel: `evaluation return (${args.evalEpisodes} episodes, deterministic)`,
        series: [{ name: 'mean ± std', x: evals.map((v) => v.step), y: evals.map((v) => v.mean), band: evals.map((v) => v.std) }],
      });
      const agent = agentRef;
      saving = saving.then(async () => {
        await writeFileAtomic(join(out, 'learning-curve.svg'), svg);
        if (agent) await agent.saveCheckpoint(join(out, 'checkpoint'));
      });
    }
  };

  // Checkpoints at evaluations need the agent, which trainSacOnline creates: onAgent hands it over.
  const result = await trainSacOnline({
    env,
    evalEnv,
    steps: args.steps,
    seed: args.seed,
    evalEvery: config.evalEvery,
    evalEpisodes: config.evalEpisodes,
    startSteps: config.startSteps,
    updateAfter: config.updateAfter,
    updateEvery: config.updateEvery,
    onMetrics,
    signal: stop.signal,
    onAgent: (a) => {
      agentRef = a;
    },
  });
  bar.finish(lastEval, { complete: !stop.signal.aborted });
  await saving;
  await result.agent.saveCheckpoint(join(out, 'checkpoint'));
  await result.agent.savePolicy(join(out, 'policy'));
  if (args.saveReplay) {
    const w = await lastValueFrom(from(result.buffer.snapshot()).pipe(writeTransitions(join(out, 'replay.parquet'), { env: spec.name, metadata: { 'mopo.source': 'sac replay buffer' } })));
    log(`replay buffer: ${w.rows} transitions → ${w.path}`);
  }
  const best = evals.reduce((b, v) => (v.mean > b.mean ? v : b), evals[0] ?? { step: 0, mean: Number.NaN, std: 0 });
  const summary = {
    env: spec.name,
    steps: args.steps,
    stoppedEarly: stop.signal.aborted,
    updates: result.updates,
    episodes: result.episodes,
    seconds: Math.round(result.seconds),
    finalEval: evals.at(-1) ?? null,
    bestEval: best,
    ...(scored && evals.length ? { finalD4rlScore: d4rlScore(spec.name, evals.at(-1)!.mean) } : {}),
  };
  await writeFileAtomic(join(out, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  process.stdout.write(JSON.stringify(summary) + '\n');
  log(`run directory ${out}: config.json, metrics.jsonl, learning-curve.svg, checkpoint/, policy/, summary.json${args.saveReplay ? ', replay.parquet' : ''}`);
}
