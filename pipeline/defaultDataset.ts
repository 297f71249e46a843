// The built-in default dataset: pendulum transitions under uniformly random torques, generated
// (seeded) by the tool itself, so `npm start` needs no download and no external file.
import { Observable } from 'rxjs';
import { TransitionBatch } from '../schemas/transition.js';
import { PENDULUM, pendulumObserve, pendulumStep, type PendulumState } from './envs/pendulum.js';
import { Rng } from './random.js';

export interface PendulumDatasetConfig {
  /** Transitions to generate. */
  steps: number;
  seed: number;
  /** Rows per emitted batch. */
  batchSize?: number;
}

/** Cold source of random-policy pendulum transitions, episodes cut by the 200-step time limit. */
export function pendulumRandomDataset(config: PendulumDatasetConfig): Observable<TransitionBatch> {
  return new Observable<TransitionBatch>((subscriber) => {
    const rng = new Rng(config.seed, 'dataset/pendulum-random');
    const batchSize = config.batchSize ?? 65_536;
    const dims = { obsDim: PENDULUM.obsDim, actDim: PENDULUM.actDim, env: PENDULUM.name };
    const state: PendulumState = { theta: 0, thetaDot: 0 };
    let episode = -1;
    let t: number = PENDULUM.timeLimit;
    let done = 0;
    while (done < config.steps && !subscriber.closed) {
      const n = Math.min(batchSize, config.steps - done);
      const b = TransitionBatch.allocate(dims, n, ['episode', 'step']);
      for (let i = 0; i < n; i++) {
        if (t >= PENDULUM.timeLimit) {
          state.theta = rng.uniform(-Math.PI, Math.PI);
          state.thetaDot = rng.uniform(-1, 1);
          episode++;
          t = 0;
        }
        pendulumObserve(state, b.observation, i * 3);
        const a = rng.uniform(-PENDULUM.maxTorque, PENDULUM.maxTorque);
        b.action[i] = a;
        b.reward[i] = pendulumStep(state, a);
        pendulumObserve(state, b.nextObservation, i * 3);
        b.episode![i] = episode;
        b.step![i] = t;
        t++;
        b.timeout[i] = t >= PENDULUM.timeLimit ? 1 : 0;
      }
      done += n;
      subscriber.next(b);
    }
    subscriber.complete();
  });
}
