/** The loss of a model over fixed batches: validation loss for training runs and evaluation alike. */
import * as tf from '@tensorflow/tfjs';
import type { GPT } from './gpt.js';

/** A batch of token windows as the model consumes it (src/data/batches.ts's Batch is one). */
export interface TokenBatch {
  /** int32 [batch, T] */
  ids: Int32Array;
  targets: Int32Array;
  /** float32 [batch, T]: 1 where the target counts toward the loss. */
  weights: Float32Array;
  batch: number;
  T: number;
  /** Targets with non-zero weight. */
  tokens: number;
}

/** Mean loss over fixed batches, weighted by trained tokens. */
export function validationLoss(model: GPT, batches: readonly TokenBatch[]): number {
  let sum = 0;
  let tokens = 0;
  for (const b of batches) {
    const loss = tf.tidy(() =>
      model
        .loss(tf.tensor2d(b.ids, [b.batch, b.T], 'int32'), tf.tensor2d(b.targets, [b.batch, b.T], 'int32'), tf.tensor2d(b.weights, [b.batch, b.T], 'float32'))
        .dataSync()[0],
    );
    sum += loss * b.tokens;
    tokens += b.tokens;
  }
  return sum / Math.max(tokens, 1);
}
