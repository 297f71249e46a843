// Diverging training is the user's to act on (a learning rate, a dataset, a λ), not a bug: it is a
// UserError naming the stage, what was seen and at which step. The run stops before the bad update
// is applied, so the last checkpoint (named by the CLI) is good.
import { UserError } from './errors.js';

export type DivergingStage = 'dynamics' | 'sac';

export class DivergenceError extends UserError {
  readonly stage: DivergingStage;
  constructor(stage: DivergingStage, what: string) {
    super(`${stage === 'dynamics' ? 'dynamics ensemble' : 'SAC'} training diverged: ${what}`);
    this.name = 'DivergenceError';
    this.stage = stage;
  }
}

export function isDivergenceError(e: unknown): e is DivergenceError {
  return e instanceof DivergenceError;
}
