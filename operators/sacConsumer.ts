// sacConsumer: MOPO's learner. Consumes the rollout stream (rolloutInWorker's batches and round
// statistics), keeps the model buffer, and runs SAC updates on batches mixing real data
// (realRatio, 5 % by default) with model data, one epoch of `epochLength` updates at a time.
//
// The schedule is deterministic although the rollouts run on another thread: round k enters the
// model buffer exactly at update k · rolloutEvery (received rounds wait in a queue until then),
// and round k + 1 is requested right after, with the policy of that moment. So rollouts use a
// policy one round old (the price of running them beside the learner instead of between its
// updates; the model buffer holds five rounds anyway), and a run is reproducible, and resumable,
// whatever the timing. With rolloutLag 0, round k is requested only at update k · rolloutEvery,
// with the policy of that moment, as the reference does; the learner waits for it. A RateLimiter
// (samples = updates, inserts = rounds) makes the side that gets ahead wait and counts the waiting.
//
// Backpressure downstream: every emitted event has hold(promise); the loop awaits what was held
// before its next update, so an async sink (a checkpoint, a shard write) finishes first.
import { Observable, type OperatorFunction, type Subscription } from 'rxjs';
import { TransitionBatch } from '../schemas/transition.js';
import { ArrowReplayBuffer } from './replayBuffer.js';
import type { SacAgent, SacMetrics } from './sac.js';
import type { RateLimiter } from './rateLimiter.js';
import type { RolloutOutput, RolloutRequest, RolloutRngState } from './rolloutWorker.js';
import { actorWeightsOf } from './rolloutWorker.js';
import type { RolloutStats } from './rollout.js';
import { Rng } from '../pipeline/random.js';
import { UserError } from '../pipeline/errors.js';

/** The rollout lags there are (SacConsumerConfig.rolloutLag); the CLI and pipeline files offer these. */
export const ROLLOUT_LAGS = [0, 1] as const;
export type RolloutLag = (typeof ROLLOUT_LAGS)[number];

export interface SacConsumerConfig {
  /** Share of each SAC batch drawn from the real data (the rest from the model buffer). */
  realRatio: number;
  /** Updates per epoch (metrics, evaluation and checkpoints happen between epochs). */
  epochLength: number;
  /** Updates between rollout rounds. */
  rolloutEvery: number;
  /**
   * Rounds the rollout policy trails the learner: 1 computes round k + 1 during round k's updates
   * (with the policy at round k's insertion); 0 computes round k at its insertion, with the policy
   * of that moment, as the reference does, while the learner waits.
   */
  rolloutLag: RolloutLag;
  /** Epochs to run (counting from 0, resumed runs included). */
  epochs: number;
  /** Read SAC metrics back every this many updates (a readback costs a sync). */
  metricsEvery: number;
  /**
   * The actor's learning rate over the epochs: 'constant' (SacConfig.actorLr throughout, MOPO's), or
   * 'cosine', annealed from actorLr towards 0 as torch's CosineAnnealingLR stepped after each epoch
   * (OfflineRL-Kit's MOPO recipe): see scheduledLr.
   */
  actorLrSchedule: LrSchedule;
  seed: number;
}

export const LR_SCHEDULES = ['constant', 'cosine'] as const;
export type LrSchedule = (typeof LR_SCHEDULES)[number];

/**
 * The learning rate of epoch `epoch` (from 0) of `epochs` under `schedule`: cosine gives
 * base·(1 + cos(π·epoch/epochs))/2, base at epoch 0 and base·(1 + cos(π(E−1)/E))/2 ≈ 0 at the last.
 * A function of the epoch alone, so a resumed run trains each epoch at the rate it would have.
 */
export function scheduledLr(base: number, schedule: LrSchedule, epoch: number, epochs: number): number {
  if (schedule === 'constant') return base;
  return (base * (1 + Math.cos((Math.PI * epoch) / epochs))) / 2;
}

export const SAC_CONSUMER_DEFAULTS: Readonly<SacConsumerConfig> = Object.freeze({
  realRatio: 0.05,
  epochLength: 1000,
  rolloutEvery: 1000,
  rolloutLag: 1,
  epochs: 1000,
  metricsEvery: 50,
  actorLrSchedule: 'constant',
  seed: 0,
});

export function resolveSacConsumerConfig(partial: Partial<SacConsumerConfig>): SacConsumerConfig {
  const c = { ...SAC_CONSUMER_DEFAULTS };
  for (const [k, v] of Object.entries(partial)) if (v !== undefined) (c as Record<string, unknown>)[k] = v;
  for (const k of ['epochLength', 'rolloutEvery', 'epochs', 'metricsEvery'] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 1) throw new UserError(`sac consumer config: ${k} must be a positive integer, got ${c[k]}`);
  }
  if (!(ROLLOUT_LAGS as readonly number[]).includes(c.rolloutLag)) throw new UserError(`sac consumer config: rolloutLag must be ${ROLLOUT_LAGS.join(' or ')}, got ${c.rolloutLag}`);
  if (!(c.realRatio >= 0 && c.realRatio <= 1)) throw new UserError(`sac consumer config: realRatio must be in [0, 1], got ${c.realRatio}`);
  if (!(LR_SCHEDULES as readonly string[]).includes(c.actorLrSchedule)) throw new UserError(`sac consumer config: actorLrSchedule must be ${LR_SCHEDULES.join(' or ')}, got ${JSON.stringify(c.actorLrSchedule)}`);
  return c;
}

/** Where a run is: what a checkpoint stores besides the agent and the buffers. */
export interface SacConsumerPosition {
  /** Updates done (a multiple of rolloutEvery and of epochLength at a checkpoint). */
  updates: number;
  /** Rounds inserted into the model buffer. */
  rounds: number;
  /** Rng state of the buffer sampling. */
  samplingRng: number[];
  /** The rollout worker's Rng states after the last inserted round. */
  rolloutRng: RolloutRngState | null;
  limiter: ReturnType<RateLimiter['getState']>;
  /** The producer's cumulative busy seconds (from its round statistics) and wait seconds (idle, no request outstanding). */
  producer: { busySeconds: number; waitSeconds: number };
  /** The round in flight (requested, not yet inserted) and the actor weights it was asked with; null when none is (the last round is in). */
  pending: RolloutRequest | null;
}

export interface SacConsumerDeps {
  agent: SacAgent;
  real: ArrowReplayBuffer;
  model: ArrowReplayBuffer;
  limiter: RateLimiter;
  /** Where rollout requests go (the input of rolloutInWorker). */
  request: (r: RolloutRequest) => void;
  /** Resume from here (the buffers and the agent must already hold the checkpoint's state). */
  resume?: SacConsumerPosition;
  /** Stop at the next epoch boundary (e.g. SIGINT): the loop emits the epoch and completes. */
  stopRequested?: () => boolean;
  /** Called as round k enters the model buffer (e.g. to tee it to shards); the loop awaits it. */
  onRoundInserted?: (round: Extract<RolloutOutput, { type: 'round' }>, batches: readonly TransitionBatch[]) => Promise<void> | void;
}

export interface SacEpochEvent {
  type: 'epoch';
  epoch: number;
  updates: number;
  /** Means over the updates whose metrics were read this epoch. */
  sac: SacMetrics;
  /** The actor's learning rate this epoch (actorLrSchedule). */
  actorLr: number;
  /** The last round inserted (its statistics), or null. */
  rollout: RolloutStats | null;
  modelBufferSize: number;
  realBufferSize: number;
  /** Seconds: this epoch's wall time, and the cumulative waits of both sides. */
  seconds: number;
  updatesPerSecond: number;
  learnerWaitSeconds: number;
  producerWaitSeconds: number;
  producerBusySeconds: number;
  /** State at this boundary, for a checkpoint (valid until the loop resumes). */
  position: SacConsumerPosition;
  /** The learner's agent (its actor is the policy to evaluate). */
  agent: SacAgent;
  /** Delays the next update until `p` settles (a rejection fails the run). */
  hold(p: Promise<unknown>): void;
}

/** The operator; see the header. Completes after config.epochs epochs or a requested stop. */
export function sacConsumer(config: Partial<SacConsumerConfig>, deps: SacConsumerDeps): OperatorFunction<RolloutOutput, SacEpochEvent> {
  const cfg = resolveSacConsumerConfig(config);
  const { agent, real, model, limiter } = deps;
  const B = agent.config.batchSize;
  const nReal = Math.floor(B * cfg.realRatio);
  const nModel = B - nReal;
  if (cfg.epochLength % cfg.rolloutEvery !== 0 && cfg.rolloutEvery % cfg.epochLength !== 0) {
    throw new UserError(`sac consumer config: epochLength (${cfg.epochLength}) and rolloutEvery (${cfg.rolloutEvery}) must divide one another`);
  }
  if (nReal > 0 && real.size === 0) throw new UserError('sacConsumer: the real-data buffer is empty');
  return (source) =>
    new Observable<SacEpochEvent>((subscriber) => {
      const samplingRng = new Rng(cfg.seed, 'mopo/sampling');
      let updates = 0;
      let rounds = 0;
      let rolloutRng: RolloutRngState | null = null;
      let producer = { busySeconds: 0, waitSeconds: 0 };
      if (deps.resume) {
        const r = deps.resume;
        updates = r.updates;
        rounds = r.rounds;
        samplingRng.setState(r.samplingRng);
        rolloutRng = r.rolloutRng;
        producer = { ...r.producer };
        limiter.restore(r.limiter);
      }
      // The producer waits exactly while no request is outstanding (it works through them in order),
      // so its wait is measured here, on the learner's clock.
      let outstanding = 0;
      let producerIdleSince: number | null = null;
      let producerWait = producer.waitSeconds;
      const producerWaitNow = () => producerWait + (producerIdleSince === null ? 0 : (performance.now() - producerIdleSince) / 1000);
      // Rounds received from the worker, complete or in progress, by round number.
      const arriving = new Map<number, { batches: TransitionBatch[]; done: null | Extract<RolloutOutput, { type: 'round' }> }>();
      let wake: (() => void) | null = null;
      // A producer error is raised by the loop (run().catch), not here: the loop may be awaiting
      // work it handed downstream (held checkpoint and plot writes, onRoundInserted), and the run
      // must not be reported failed (its lock released, its directory removed) while that still writes.
      let failed: { error: unknown } | null = null;
      const throwIfFailed = () => {
        if (failed) throw failed.error;
      };
      let sourceDone = false;
      const sub: Subscription = source.subscribe({
        next: (m) => {
          let r = arriving.get(m.round);
          if (!r) arriving.set(m.round, (r = { batches: [], done: null }));
          if (m.type === 'batch') r.batches.push(m.batch);
          else {
            r.done = m;
            if (--outstanding === 0) producerIdleSince = performance.now();
          }
          wake?.();
        },
        error: (e) => {
          failed = { error: e };
          wake?.();
        },
        complete: () => {
          sourceDone = true;
          wake?.();
        },
      });
      const nextMessage = () => new Promise<void>((resolve) => (wake = resolve));
      let pending: RolloutRequest | null = null;
      const send = (r: RolloutRequest) => {
        if (outstanding === 0 && producerIdleSince !== null) {
          producerWait += (performance.now() - producerIdleSince) / 1000;
          producerIdleSince = null;
        }
        outstanding++;
        // Keep a copy: the request's buffers are transferred to the worker.
        pending = { round: r.round, step: r.step, actorWeights: r.actorWeights.map((w) => w.slice()) };
        deps.request(r);
      };
      const requestRound = (round: number) => send({ round, step: updates, actorWeights: actorWeightsOf(agent) });
      let lastStats: RolloutStats | null = null;

      // The mixed batch carries the model buffer's raw_reward and penalty columns; real rows get
      // raw_reward = reward and penalty 0 (SAC reads neither; they keep the batch one schema).
      // Batches are sampled a block at a time: at every multiple of blockLen updates, the next
      // blockLen batches are drawn at once into `stage` (ArrowReplayBuffer.sampleBlockMixed: the
      // same rng draws and rows as real.sample(nReal) then model.sample(nModel) per update, but
      // gathered in memory order), and update u of the block trains on the view batches[u].
      // blockLen divides rolloutEvery and epochLength (they divide one another), so a block never
      // straddles a round insertion (the buffers are fixed while it is used) nor an epoch end
      // (where the position, samplingRng included, is saved: always at a block boundary).
      const blockLen = Math.min(cfg.epochLength, cfg.rolloutEvery);
      const stage = TransitionBatch.allocate({ obsDim: agent.obsDim, actDim: agent.actDim }, blockLen * B, model.optionalColumns);
      const batches = Array.from({ length: blockLen }, (_, u) => stage.slice(u * B, (u + 1) * B));
      const parts = [
        { buffer: real, rows: nReal },
        { buffer: model, rows: nModel },
      ];
      const run = async () => {
        // A resumed run re-asks for the round that was in flight, with the weights it was asked with.
        if (deps.resume) {
          if (deps.resume.pending) send(deps.resume.pending);
        } else requestRound(rounds);

        const metricSums = { criticLoss: 0, actorLoss: 0, alpha: 0, entropy: 0, qMean: 0 };
        let metricCount = 0;
        let epochStart = performance.now();
        const totalUpdates = cfg.epochs * cfg.epochLength;
        while (updates < totalUpdates && !subscriber.closed) {
          throwIfFailed();
          if (!limiter.canSample(1)) {
            // A boundary: insert round `rounds` (waiting for it if the worker is behind).
            const k = rounds;
            const t0 = performance.now();
            // Asked for now when it was not asked for already (rolloutLag 0, or a checkpoint made with it).
            if (pending?.round !== k) requestRound(k);
            while (!arriving.get(k)?.done) {
              throwIfFailed();
              if (subscriber.closed) return;
              if (sourceDone) throw new Error(`sacConsumer: the rollout stream ended before round ${k}`);
              await nextMessage();
            }
            limiter.addWait('sample', (performance.now() - t0) / 1000);
            const r = arriving.get(k)!;
            arriving.delete(k);
            for (const b of r.batches) if (b.length > 0) model.append(b);
            limiter.inserted(1);
            rounds++;
            rolloutRng = r.done!.rng;
            producer = { busySeconds: r.done!.busySeconds, waitSeconds: 0 };
            lastStats = r.done!.stats;
            // The next round, unless the run ends before it would be used (or is asked for at its insertion).
            if (cfg.rolloutLag === 1 && rounds * cfg.rolloutEvery < totalUpdates) requestRound(rounds);
            else pending = null;
            await deps.onRoundInserted?.(r.done!, r.batches);
            if (model.size === 0) throw new UserError(`round ${k} produced no model transitions (every rollout ended at its first step or was non-finite)`);
          }
          const u = updates % blockLen;
          if (u === 0) {
            if (!limiter.canSample(blockLen)) throw new Error(`sacConsumer: the block of updates ${updates}..${updates + blockLen - 1} would straddle a round insertion`);
            ArrowReplayBuffer.sampleBlockMixed(parts, blockLen, samplingRng, stage);
            if (nReal > 0) {
              for (let v = 0; v < blockLen; v++) {
                stage.rawReward?.set(stage.reward.subarray(v * B, v * B + nReal), v * B);
                stage.penalty?.fill(0, v * B, v * B + nReal);
              }
            }
          }
          if (updates % cfg.epochLength === 0) agent.actorLr = scheduledLr(agent.config.actorLr, cfg.actorLrSchedule, updates / cfg.epochLength, cfg.epochs);
          const out = batches[u]!;
          const want = (updates + 1) % cfg.metricsEvery === 0;
          const m = agent.update(out, { metrics: want });
          limiter.sampled(1);
          updates++;
          if (m) {
            metricSums.criticLoss += m.criticLoss;
            metricSums.actorLoss += m.actorLoss;
            metricSums.alpha += m.alpha;
            metricSums.entropy += m.entropy;
            metricSums.qMean += m.qMean;
            metricCount++;
          }
          if (updates % cfg.epochLength === 0) {
            const held: Promise<unknown>[] = [];
            const seconds = (performance.now() - epochStart) / 1000;
            const c = Math.max(metricCount, 1);
            const ls = limiter.stats();
            subscriber.next({
              type: 'epoch',
              epoch: updates / cfg.epochLength - 1,
              updates,
              sac: { criticLoss: metricSums.criticLoss / c, actorLoss: metricSums.actorLoss / c, alpha: metricSums.alpha / c, entropy: metricSums.entropy / c, qMean: metricSums.qMean / c },
              actorLr: agent.actorLr,
              rollout: lastStats,
              modelBufferSize: model.size,
              realBufferSize: real.size,
              seconds,
              updatesPerSecond: cfg.epochLength / seconds,
              learnerWaitSeconds: ls.sampleWaitSeconds,
              producerWaitSeconds: producerWaitNow(),
              producerBusySeconds: producer.busySeconds,
              position: { updates, rounds, samplingRng: samplingRng.getState(), rolloutRng, limiter: limiter.getState(), producer: { busySeconds: producer.busySeconds, waitSeconds: producerWaitNow() }, pending },
              agent,
              hold: (p) => void held.push(p),
            });
            await Promise.all(held);
            for (const k of Object.keys(metricSums) as (keyof typeof metricSums)[]) metricSums[k] = 0;
            metricCount = 0;
            if (deps.stopRequested?.()) break;
            epochStart = performance.now();
          } else if (updates % 8 === 0) {
            // Let the worker's messages in (they are only delivered between macrotasks).
            await new Promise<void>((r) => setImmediate(r));
          }
        }
        throwIfFailed();
        subscriber.complete();
      };
      run().catch((e) => subscriber.error(e));
      return () => {
        sub.unsubscribe();
        wake?.();
      };
    });
}
