// Dataset collection, the D4RL way: run a policy in N copies of an environment and emit transition
// batches whose episodes are contiguous (each copy's episode is held until it ends, then emitted
// whole), with episode ids, steps, terminals and timeouts. A cold source: each subscription
// collects again from the same seed.
import { Observable } from 'rxjs';
import { TransitionBatch } from '../schemas/transition.js';
import { makeVectorEnv, type EnvName } from '../pipeline/envs/env.js';
import { Rng } from '../pipeline/random.js';

/** Anything that maps a batch of observations (n × obsDim) to actions (n × actDim). */
export interface Policy {
  act(observations: Float32Array, n: number, deterministic: boolean): Float32Array | Promise<Float32Array>;
}

export interface CollectConfig {
  env: EnvName;
  /** Transitions to collect. */
  steps: number;
  seed: number;
  /** Environment copies stepped together (policy calls are batched over them). */
  numEnvs?: number;
  /** Sample from the policy (true) or take its deterministic action (false). */
  stochastic?: boolean;
  /** Rows per emitted batch (whole episodes are never split across batches unless longer). */
  batchSize?: number;
}

/** Uniformly random actions in the environment's action box. */
export function uniformPolicy(low: readonly number[], high: readonly number[], rng: Rng): Policy {
  const d = low.length;
  return {
    act(_obs, n) {
      const a = new Float32Array(n * d);
      for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) a[i * d + j] = rng.uniform(low[j]!, high[j]!);
      return a;
    },
  };
}

export function collectTransitions(config: CollectConfig, policy: Policy): Observable<TransitionBatch> {
  return new Observable<TransitionBatch>((subscriber) => {
    let cancelled = false;
    (async () => {
      const n = Math.max(1, Math.min(config.numEnvs ?? 10, config.steps));
      const vec = await makeVectorEnv(config.env, n);
      try {
        const { obsDim: o, actDim: a } = vec;
        const dims = { obsDim: o, actDim: a, env: config.env };
        const batchSize = config.batchSize ?? 65_536;
        const maxLen = vec.spec.maxEpisodeSteps;
        // Per copy: the running episode's rows, in a buffer of one episode's capacity.
        const episodes = Array.from({ length: n }, () => TransitionBatch.allocate(dims, maxLen, ['episode', 'step']));
        const lengths = new Uint32Array(n);
        let out = TransitionBatch.allocate(dims, batchSize, ['episode', 'step']);
        let outRows = 0;
        let nextEpisodeId = 0;
        const episodeIds = new Int32Array(n);
        for (let i = 0; i < n; i++) episodeIds[i] = nextEpisodeId++;

        const emitOut = () => {
          if (outRows > 0) subscriber.next(out.slice(0, outRows));
          out = TransitionBatch.allocate(dims, batchSize, ['episode', 'step']);
          outRows = 0;
        };
        const flushEpisode = (i: number) => {
          const len = lengths[i]!;
          if (len === 0) return;
          const ep = episodes[i]!.slice(0, len);
          if (outRows + len > batchSize) emitOut();
          let src = ep;
          while (src.length > 0) {
            const take = Math.min(src.length, batchSize - outRows);
            copyRows(src, 0, out, outRows, take);
            outRows += take;
            src = src.slice(take);
            if (outRows === batchSize) emitOut();
          }
          lengths[i] = 0;
        };

        let obs = vec.reset(config.seed);
        const current = new Float32Array(n * o);
        let done = 0;
        while (done < config.steps) {
          if (cancelled) return;
          const actions = await policy.act(obs, n, !config.stochastic);
          // The vector env overwrites its observation buffer in step(): keep this step's copy.
          current.set(obs);
          const r = vec.step(actions);
          const keep = Math.min(n, config.steps - done);
          for (let i = 0; i < keep; i++) {
            const ep = episodes[i]!;
            const t = lengths[i]!;
            ep.observation.set(current.subarray(i * o, (i + 1) * o), t * o);
            ep.action.set(actions.subarray(i * a, (i + 1) * a), t * a);
            ep.nextObservation.set(r.nextObservation.subarray(i * o, (i + 1) * o), t * o);
            ep.reward[t] = r.reward[i]!;
            ep.terminal[t] = r.terminated[i]!;
            ep.timeout[t] = r.truncated[i]! && !r.terminated[i] ? 1 : 0;
            ep.episode![t] = episodeIds[i]!;
            ep.step![t] = t;
            lengths[i] = t + 1;
            if (r.terminated[i] || r.truncated[i]) {
              flushEpisode(i);
              episodeIds[i] = nextEpisodeId++;
            }
          }
          done += keep;
          obs = r.observation;
        }
        // Episodes still running when the step budget ran out end in a truncation.
        for (let i = 0; i < n; i++) {
          const len = lengths[i]!;
          if (len > 0 && !episodes[i]!.terminal[len - 1]) episodes[i]!.timeout[len - 1] = 1;
          flushEpisode(i);
        }
        emitOut();
      } finally {
        vec.close();
      }
    })().then(
      () => subscriber.complete(),
      (e) => subscriber.error(e),
    );
    return () => {
      cancelled = true;
    };
  });
}

function copyRows(src: TransitionBatch, from: number, dst: TransitionBatch, to: number, n: number): void {
  const o = src.obsDim;
  const a = src.actDim;
  dst.observation.set(src.observation.subarray(from * o, (from + n) * o), to * o);
  dst.nextObservation.set(src.nextObservation.subarray(from * o, (from + n) * o), to * o);
  dst.action.set(src.action.subarray(from * a, (from + n) * a), to * a);
  dst.reward.set(src.reward.subarray(from, from + n), to);
  dst.terminal.set(src.terminal.subarray(from, from + n), to);
  dst.timeout.set(src.timeout.subarray(from, from + n), to);
  dst.episode!.set(src.episode!.subarray(from, from + n), to);
  dst.step!.set(src.step!.subarray(from, from + n), to);
}
