// Saved rollouts: every round a MOPO run inserts into its model buffer can be teed to
// <run>/stages/rollout/round-NNNNNN/ (Arrow shards; the manifest carries the round's statistics and
// the worker's RNG states), and replayRollouts serves those rounds back in place of the rollout
// worker: a new SAC trains from the saved synthetic data with the same schedule, so with the same
// seed it reproduces the original learner exactly. One directory per round, written when the
// round enters the buffer, so a killed and resumed run keeps every round written before.
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { concatMap, from, lastValueFrom, toArray, type OperatorFunction } from 'rxjs';
import type { TransitionBatch } from '../schemas/transition.js';
import { readManifest, readShards, writeShards } from './shards.js';
import type { RolloutOutput, RolloutRequest, RolloutRngState } from './rolloutWorker.js';
import type { RolloutStats } from './rollout.js';
import { UserError } from '../pipeline/errors.js';

export const roundDirName = (round: number) => `round-${String(round).padStart(6, '0')}`;

interface RoundShardConfig {
  round: number;
  stats: RolloutStats;
  rng: RolloutRngState;
}

/** Writes one inserted round (its batches, statistics and RNG states) under `dir`. */
export async function saveRound(dir: string, done: Extract<RolloutOutput, { type: 'round' }>, batches: readonly TransitionBatch[]): Promise<void> {
  const config: RoundShardConfig = { round: done.round, stats: done.stats, rng: done.rng };
  await lastValueFrom(from(batches.filter((b) => b.length > 0)).pipe(writeShards({ dir: join(dir, roundDirName(done.round)), stage: 'rollout', config })));
}

/** Serves the saved rounds for the requests, in order, as rolloutInWorker would compute them. */
export function replayRollouts(dir: string): OperatorFunction<RolloutRequest, RolloutOutput> {
  return (requests) =>
    requests.pipe(
      concatMap(async (r) => {
        const roundDir = join(dir, roundDirName(r.round));
        if (!existsSync(join(roundDir, 'manifest.json'))) {
          throw new UserError(`${roundDir}: round ${r.round} was not saved; the run saved rounds only up to where it stopped (replay fewer epochs, or from an earlier stage)`);
        }
        const manifest = await readManifest(roundDir);
        const cfg = manifest.config as RoundShardConfig;
        const batches = await lastValueFrom(readShards(roundDir).pipe(toArray()));
        const out: RolloutOutput[] = batches.map((batch) => ({ type: 'batch', round: r.round, batch }));
        out.push({ type: 'round', round: r.round, stats: cfg.stats, rng: cfg.rng, busySeconds: 0, waitSeconds: 0 });
        return out;
      }),
      concatMap((outs) => from(outs)),
    );
}
