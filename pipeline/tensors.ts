// Transition batches to tensors: each column's Float32Array goes to the backend as one block (no
// per-row work); shapes come from the batch's dims.
import * as tf from '@tensorflow/tfjs';
import type { TransitionBatch } from '../schemas/transition.js';

export interface TransitionTensors {
  observation: tf.Tensor2D;
  action: tf.Tensor2D;
  reward: tf.Tensor1D;
  nextObservation: tf.Tensor2D;
  /** 1 where the transition ends in a terminal state (not a timeout), as float32 for masks. */
  terminal: tf.Tensor1D;
}

export function batchToTensors(b: TransitionBatch): TransitionTensors {
  const n = b.length;
  return {
    observation: tf.tensor2d(b.observation, [n, b.obsDim], 'float32'),
    action: tf.tensor2d(b.action, [n, b.actDim], 'float32'),
    reward: tf.tensor1d(b.reward, 'float32'),
    nextObservation: tf.tensor2d(b.nextObservation, [n, b.obsDim], 'float32'),
    terminal: tf.tensor1d(Float32Array.from(b.terminal), 'float32'),
  };
}
