// mapBatches: the skeleton shared by the preprocessing stages that map each batch on its own
// (clipActions, scaleReward, selectColumns, dropNonFinite) and report a summary at the end
// (filterEpisodes uses the summary half, completeWithSummary). Keeping it in one place keeps their
// contract the same: nothing reaches a downstream that stopped, a stage's error (a thrown UserError)
// errors the output, and the summary comes once, only when the whole stream went through.
import { Observable, type OperatorFunction, type Subscriber } from 'rxjs';
import type { TransitionBatch } from '../schemas/transition.js';

export interface SummaryHooks<S> {
  /** Called once when the output completes (not on an error or an early unsubscribe). */
  onSummary?: (summary: S) => void;
}

/** One subscription's state of a stage: how it maps a batch and what it reports at the end. */
export interface BatchMapper<S> {
  /** The output batch for `b`, or null to emit nothing; a throw errors the output. */
  map(b: TransitionBatch): TransitionBatch | null;
  /** The summary; computed only when someone reads it. */
  summary(): S;
}

/**
 * Sends hooks.onSummary the summary, then completes `subscriber`; nothing when it is already closed
 * (stopped early: no summary of a partial run). A throwing hook errors the output instead.
 */
export function completeWithSummary<S>(subscriber: Subscriber<TransitionBatch>, hooks: SummaryHooks<S>, summary: () => S): void {
  if (subscriber.closed) return;
  try {
    hooks.onSummary?.(summary());
  } catch (e) {
    subscriber.error(e);
    return;
  }
  subscriber.complete();
}

/** Operator: `init()` per subscription, its map on every batch, its summary on completion. */
export function mapBatches<S>(hooks: SummaryHooks<S>, init: () => BatchMapper<S>): OperatorFunction<TransitionBatch, TransitionBatch> {
  return (source) =>
    new Observable<TransitionBatch>((subscriber) => {
      const stage = init();
      return source.subscribe({
        next: (b) => {
          if (subscriber.closed) return; // a synchronous source runs on after the downstream stopped
          let out: TransitionBatch | null;
          try {
            out = stage.map(b);
          } catch (e) {
            subscriber.error(e);
            return;
          }
          if (out !== null) subscriber.next(out);
        },
        error: (e) => subscriber.error(e),
        complete: () => completeWithSummary(subscriber, hooks, () => stage.summary()),
      });
    });
}
