/**
 * Keys and values kept between forward passes. A batch of prompts (right-padded, of any lengths)
 * runs through the full forward pass once; later passes run only new positions, which attend to
 * the prompt's keys and values and to their own. Attention does not depend on the order of its
 * keys (positions enter through wpe only), so new keys sit after the padded prompt in memory,
 * each sequence keeps its own positions, and the prompt's padding is masked out. Every pass runs
 * the same block function as the full forward pass (block.ts); only the attention core differs.
 * Used by the cached sampler (one new position per step) and by choice scoring (several
 * continuations of one context side by side in one pass).
 */
import * as tf from '@tensorflow/tfjs';
import { type AttentionCore, block } from './block.js';
import { bucketLength } from '../util/bucket.js';
import type { GPT } from './gpt.js';
import { tidyValues } from './read.js';

/** An additive attention mask's value for a key that must not be seen (softmax weight exactly 0). */
export const MASKED = -1e9;

/** One layer's keys and values: the prompt's [B, H, P, hd] and the new positions' [B, H, t, hd] (null before any). */
interface LayerCache {
  k: tf.Tensor4D;
  v: tf.Tensor4D;
  newK: tf.Tensor4D | null;
  newV: tf.Tensor4D | null;
}

export interface PromptCache {
  layers: LayerCache[];
  /** [B, 1, 1, P]: 0 at each prompt's tokens, MASKED at its padding. */
  mask: tf.Tensor4D;
}

/**
 * Run right-padded prompts through the model once: logits [B, V] at each prompt's last token, and
 * the cache. Prompts are padded to a multiple of `bucket` tokens [LENGTH_BUCKET]: the sampler's
 * prompts differ from call to call, while choice scoring reads the same probe set at every
 * evaluation and pads to the longest (bucket 1).
 */
export function prefill(model: GPT, prompts: number[][], o: { bucket?: number } = {}): { logits: Float32Array; cache: PromptCache } {
  const cfg = model.config;
  const B = prompts.length;
  const longest = Math.max(...prompts.map((p) => p.length));
  if (prompts.some((p) => p.length === 0)) throw new Error('a prompt needs at least one token');
  if (longest > cfg.block_size) throw new Error(`prompt of ${longest} tokens exceeds the context of ${cfg.block_size}`);
  // Padded to a bucket: the native backend builds a product's primitive once per shape.
  const P = bucketLength(longest, cfg.block_size, o.bucket);
  const flat = new Int32Array(B * P);
  prompts.forEach((p, b) => flat.set(p, b * P));
  const ids = tf.tensor2d(flat, [B, P], 'int32');
  const names = (l: number) => [`blocks.${l}.attn.hook_k`, `blocks.${l}.attn.hook_v`];
  const wanted = new Set(Array.from({ length: cfg.n_layer }, (_, l) => names(l)).flat());
  const { logits, cache } = model.inspectAt(ids, Int32Array.from(prompts, (p, b) => b * P + p.length - 1), { capture: (n) => wanted.has(n) });
  const values = logits.dataSync() as Float32Array;
  const layers = Array.from({ length: cfg.n_layer }, (_, l) => {
    const [k, v] = names(l).map((n) => tf.tidy(() => cache.get(n)!.transpose([0, 2, 1, 3])) as tf.Tensor4D);
    return { k, v, newK: null, newV: null };
  });
  const padding = Float32Array.from({ length: B * P }, (_, i) => (i % P < prompts[Math.floor(i / P)].length ? 0 : MASKED));
  tf.dispose([ids, logits, ...cache.values()]);
  return { logits: values, cache: { layers, mask: tf.tensor4d(padding, [B, 1, 1, P]) } };
}

/**
 * Attention of n new positions per sequence to the prompt's keys and to new keys. With `keep`,
 * this pass's keys and values join the cache (later passes see them, all of them); otherwise the
 * pass's positions see each other through `selfMask` [B, 1, n, n] (additive) and the cache is left as it was.
 */
function cachedAttention(cache: PromptCache, l: number, nHead: number, keep: boolean, selfMask: tf.Tensor4D | null): AttentionCore {
  return (qkv) => {
    const [B, n, C3] = qkv.shape;
    const hd = C3 / 3 / nHead;
    const [q, k, v] = tf.split(qkv, 3, -1).map((t) => t.reshape([B, n, nHead, hd]).transpose([0, 2, 1, 3]) as tf.Tensor4D);
    const c = cache.layers[l];
    const newK = (keep && c.newK ? tf.concat([c.newK, k], 2) : k) as tf.Tensor4D;
    const newV = (keep && c.newV ? tf.concat([c.newV, v], 2) : v) as tf.Tensor4D;
    if (keep) {
      tf.dispose([c.newK, c.newV].filter((t): t is tf.Tensor4D => t !== null));
      cache.layers[l] = { k: c.k, v: c.v, newK: tf.keep(newK), newV: tf.keep(newV) };
    }
    const P = c.k.shape[2];
    const scale = 1 / Math.sqrt(hd);
    const toNewScores = tf.mul(tf.matMul(q, newK, false, true), scale);
    const scores = tf.concat([tf.add(tf.mul(tf.matMul(q, c.k, false, true), scale), cache.mask), selfMask ? tf.add(toNewScores, selfMask) : toNewScores], -1);
    const att = tf.softmax(scores, -1) as tf.Tensor4D; // [B, H, n, P + new]
    const [toPrompt, toNew] = tf.split(att, [P, att.shape[3] - P], -1);
    return tf.add(tf.matMul(toPrompt, c.v), tf.matMul(toNew, newV)).transpose([0, 2, 1, 3]).reshape([B, n, C3 / 3]);
  };
}

/**
 * New positions after the prompts: tokens and positions [B, n] (row-major). Returns the logits
 * [B * n, V] at every new position, or [at.length, V] at the flat positions `at` only. `keep` (the
 * sampler) adds them to the cache, seen by every later position; otherwise `selfMask` says which
 * of this pass's positions each one sees.
 */
export function extend(model: GPT, cache: PromptCache, tokens: Int32Array, positions: Int32Array, n: number, o: { keep: boolean; selfMask?: tf.Tensor4D; at?: Int32Array }): Float32Array {
  const cfg = model.config;
  const B = tokens.length / n;
  return tidyValues(() => {
    const ids = tf.tensor1d(tokens, 'int32');
    let x: tf.Tensor = tf.add(tf.gather(model.p('wte'), ids), tf.gather(model.p('wpe'), tf.tensor1d(positions, 'int32'))).reshape([B, n, cfg.n_embd]);
    for (let l = 0; l < cfg.n_layer; l++) x = block(x, model.blockWeights(l), cachedAttention(cache, l, cfg.n_head, o.keep, o.selfMask ?? null));
    const h = model.finalNorm(x).reshape([B * n, cfg.n_embd]);
    return model.unembed(o.at ? tf.gather(h, tf.tensor1d(o.at, 'int32')) : h);
  });
}

/** The cache of some of its sequences (row indices, in the order given); the old cache is disposed. */
export function selectRows(cache: PromptCache, rows: number[]): PromptCache {
  const index = tf.tensor1d(rows, 'int32');
  const pick = <X extends tf.Tensor4D | null>(t: X): X => (t === null ? t : (tf.keep(tf.gather(t, index)) as X));
  const next: PromptCache = {
    layers: cache.layers.map((c) => ({ k: pick(c.k), v: pick(c.v), newK: pick(c.newK), newV: pick(c.newV) })),
    mask: pick(cache.mask),
  };
  index.dispose();
  disposeCache(cache);
  return next;
}

export function disposeCache(cache: PromptCache): void {
  tf.dispose([cache.mask, ...cache.layers.flatMap((c) => [c.k, c.v, c.newK, c.newV].filter((x): x is tf.Tensor4D => x !== null))]);
}
