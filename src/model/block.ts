/**
 * The transformer block, in the shape of nanoGPT's Block.forward:
 *
 *     x = x + attn(ln_1(x))
 *     x = x + mlp(ln_2(x))
 *
 * written once and used by the full forward pass (GPT) and by the key/value-cached sampler, which
 * differ only in how attention finds its keys and values (the `attend` core). The hook points of
 * a block (TransformerLens names, relative to `blocks.{L}.`) are read and changed through `ctx`.
 */
import * as tf from '@tensorflow/tfjs';
import { attendWith, attention, attentionPattern, layerNorm, linear, linearGelu } from './ops.js';

type T = tf.Tensor;

/** A block's parameters by their GPT-2 names inside the block (as `h.{L}.<name>`). */
export type BlockParam =
  | 'ln_1.weight' | 'ln_1.bias' | 'attn.c_attn.weight' | 'attn.c_attn.bias' | 'attn.c_proj.weight' | 'attn.c_proj.bias'
  | 'ln_2.weight' | 'ln_2.bias' | 'mlp.c_fc.weight' | 'mlp.c_fc.bias' | 'mlp.c_proj.weight' | 'mlp.c_proj.bias';
export type BlockWeights = (name: BlockParam) => T;

/** A block's hook points, in the order they occur. */
export const BLOCK_HOOK_POINTS = [
  'hook_resid_pre', 'attn.hook_k', 'attn.hook_v', 'attn.hook_pattern', 'hook_attn_out', 'hook_resid_mid', 'hook_mlp_out',
  'hook_resid_post',
] as const;
export type BlockHookPoint = (typeof BLOCK_HOOK_POINTS)[number];

export interface BlockContext {
  /** The activation at a hook point, possibly replaced (an edit) and recorded (a capture). */
  hook: (point: BlockHookPoint, x: T) => T;
  /** Whether a hook point is read or may be edited (the attention core computes keys, values and pattern apart only then). */
  wants: (point: BlockHookPoint) => boolean;
  /** Residual dropout: identity when off. */
  drop: (x: T) => T;
}

/** No hooks, no dropout (sampling, evaluation). */
export const PLAIN_BLOCK: BlockContext = { hook: (_p, x) => x, wants: () => false, drop: (x) => x };

/** What attention does between c_attn and c_proj: packed qkv [B, T, 3C] -> the heads' outputs [B, T, C]. */
export type AttentionCore = (qkv: T, ctx: BlockContext) => T;

export function block(x: T, w: BlockWeights, attend: AttentionCore, ctx: BlockContext = PLAIN_BLOCK): T {
  x = ctx.hook('hook_resid_pre', x);
  x = ctx.hook('hook_resid_mid', tf.add(x, ctx.hook('hook_attn_out', selfAttention(layerNorm(x, w('ln_1.weight'), w('ln_1.bias')), w, attend, ctx))));
  return ctx.hook('hook_resid_post', tf.add(x, ctx.hook('hook_mlp_out', mlp(layerNorm(x, w('ln_2.weight'), w('ln_2.bias')), w, ctx))));
}

/** nanoGPT's CausalSelfAttention: c_attn, the attention core, c_proj, residual dropout. */
function selfAttention(x: T, w: BlockWeights, attend: AttentionCore, ctx: BlockContext): T {
  const qkv = linear(x, w('attn.c_attn.weight'), w('attn.c_attn.bias'));
  return ctx.drop(linear(attend(qkv, ctx), w('attn.c_proj.weight'), w('attn.c_proj.bias')));
}

/** nanoGPT's MLP: c_fc with GELU (one fused call where available), c_proj, residual dropout. */
function mlp(x: T, w: BlockWeights, ctx: BlockContext): T {
  return ctx.drop(linear(linearGelu(x, w('mlp.c_fc.weight'), w('mlp.c_fc.bias')), w('mlp.c_proj.weight'), w('mlp.c_proj.bias')));
}

/**
 * Causal attention over the whole sequence (training, scoring, the sampler's prompt), with the
 * hook points attn.hook_k and attn.hook_v (keys and values [B, T, H, hd]) and attn.hook_pattern
 * (the probabilities [B, H, T, T]). An edited key, value or pattern is what the output is computed
 * from. Without hooks this is one differentiable (fused where available) attention call.
 */
export function causalAttention(nHead: number): AttentionCore {
  return (qkv, ctx) => {
    if (ctx.wants('attn.hook_k') || ctx.wants('attn.hook_v')) {
      const [B, T, C3] = qkv.shape;
      const C = C3 / 3;
      const part = (i: number) => qkv.slice([0, 0, i * C], [-1, -1, C]).reshape([B, T, nHead, C / nHead]);
      const k = part(1);
      const v = part(2);
      const k2 = ctx.hook('attn.hook_k', k);
      const v2 = ctx.hook('attn.hook_v', v);
      if (k2 !== k || v2 !== v) qkv = tf.concat([qkv.slice([0, 0, 0], [-1, -1, C]), k2.reshape([B, T, C]), v2.reshape([B, T, C])], -1);
    }
    const out = attention(qkv, nHead);
    if (!ctx.wants('attn.hook_pattern')) return out;
    const pattern = attentionPattern(qkv, nHead);
    const edited = ctx.hook('attn.hook_pattern', pattern);
    return edited === pattern ? out : attendWith(edited, qkv, nHead);
  };
}
