/**
 * Interventions on the residual stream through the hook points (blocks.{L}.hook_resid_post):
 * steering adds a multiple of a unit direction at chosen positions, ablation projects a direction
 * out at every position. Both are plain differentiable tensor ops, so an ablation applied during
 * training acts on the forward pass and, through autodiff, on the backward pass too.
 */
import * as tf from '@tensorflow/tfjs';
import type { Hooks } from './gpt.js';

/** The hook point every intervention here acts on. */
export const residPost = (layer: number) => `blocks.${layer}.hook_resid_post`;

/** Add `alpha` x `direction` (unit, [C]) at the residual after block `layer`. */
export interface Steering {
  layer: number;
  direction: Float32Array;
  alpha: number;
}

/** Project each listed layer's direction (unit, [C]) out of the residual after that block. */
export type Ablation = Map<number, Float32Array>;

/** A copy of v scaled to unit length; a zero or non-finite vector is refused. */
export function unit(v: ArrayLike<number>): Float32Array {
  let n = 0;
  for (let i = 0; i < v.length; i++) n += v[i] * v[i];
  n = Math.sqrt(n);
  if (!(n > 0) || !Number.isFinite(n)) throw new Error(`a direction must be a finite non-zero vector (norm ${n})`);
  return Float32Array.from(v, (x) => x / n);
}

function checkLayer(layer: number, nLayer: number, what: string): void {
  if (!Number.isInteger(layer) || layer < 0 || layer >= nLayer) throw new Error(`${what} layer ${layer} does not exist; the model has layers 0 to ${nLayer - 1}`);
}

function checkDirection(direction: Float32Array, C: number, what: string): void {
  if (direction.length !== C) throw new Error(`${what} direction has ${direction.length} values; the residual stream has ${C}`);
}

/**
 * Hooks that steer at the positions where `mask` ([B * T], row-major, 1 = steer) is set. The
 * mask's batch layout is the caller's: `positionsMask` builds one from per-sequence positions.
 */
export function steeringHooks(s: Steering, mask: Float32Array, B: number, T: number, nLayer: number): Hooks {
  checkLayer(s.layer, nLayer, 'steering');
  if (!Number.isFinite(s.alpha)) throw new Error(`steering alpha must be a finite number, got ${s.alpha}`);
  if (mask.length !== B * T) throw new Error(`steering mask has ${mask.length} entries for a batch of [${B}, ${T}]`);
  const name = residPost(s.layer);
  return {
    edits: (n) => n === name,
    edit: (n, x) => {
      if (n !== name) return undefined;
      checkDirection(s.direction, x.shape[2]!, 'steering');
      // x [B, T, C] + alpha * mask [B, T, 1] * u [C]
      const shift = tf.mul(tf.tensor3d(mask, [B, T, 1]), tf.mul(tf.tensor1d(s.direction), s.alpha));
      return tf.add(x, shift);
    },
  };
}

/** A [B * T] mask with 1 at each sequence's listed positions. */
export function positionsMask(positions: number[][], T: number): Float32Array {
  const mask = new Float32Array(positions.length * T);
  positions.forEach((ps, b) => {
    for (const p of ps) {
      if (p < 0 || p >= T) throw new Error(`position ${p} is outside a sequence of ${T}`);
      mask[b * T + p] = 1;
    }
  });
  return mask;
}

/**
 * Hooks that remove each listed direction from its layer's residual at every position:
 * x <- x - (x . u) u. The gradient of anything downstream then has no component along u at that
 * point either (the projection is its own transpose).
 */
export function ablationHooks(ablation: Ablation, nLayer: number): Hooks {
  const byName = new Map<string, Float32Array>();
  for (const [layer, u] of ablation) {
    checkLayer(layer, nLayer, 'ablation');
    byName.set(residPost(layer), u);
  }
  return {
    edits: (n) => byName.has(n),
    edit: (n, x) => {
      const u = byName.get(n);
      if (!u) return undefined;
      const C = x.shape[2]!;
      checkDirection(u, C, 'ablation');
      return projectOut(x, u);
    },
  };
}

/** x [..., C] minus its component along the unit vector u [C]. */
export function projectOut(x: tf.Tensor, u: Float32Array): tf.Tensor {
  const C = u.length;
  const U = tf.tensor2d(u, [C, 1]);
  const flat = x.reshape([-1, C]);
  // [N, 1] coefficients times u^T [1, C]
  return tf.sub(flat, tf.matMul(tf.matMul(flat, U), U, false, true)).reshape(x.shape);
}
