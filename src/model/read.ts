import * as tf from '@tensorflow/tfjs';

/**
 * The values of a tensor computed in its own tidy scope. Never return a typed array from
 * tf.tidy itself: tidy walks its result looking for tensors, element by element (150 ms for a
 * million floats).
 */
export function tidyValues(f: () => tf.Tensor): Float32Array {
  const t = tf.tidy(f);
  const values = t.dataSync() as Float32Array;
  t.dispose();
  return values;
}
