/**
 * Sampling with a key/value cache: the prompt runs through the model once, then each new token
 * costs one position instead of the whole sequence (10x fewer operations for the short answers
 * of evaluation). Prompts of equal length are batched together so positions stay aligned.
 * Each new position runs through the same block function as the full forward pass (block.ts),
 * with an attention core that appends the position's key and value to the cache. Hooks are not
 * offered here (an edit written for whole sequences would see one position at a time): use
 * sample() from generate.ts for steering.
 */
import * as tf from '@tensorflow/tfjs';
import { EOS } from '../tokenizer/vocab.js';
import { type AttentionCore, block } from './block.js';
import { drawToken, type SampleOptions } from './generate.js';
import type { GPT } from './gpt.js';
import { tidyValues } from './read.js';

interface LayerCache {
  k: tf.Tensor4D; // [B, H, T, hd]
  v: tf.Tensor4D;
}

/** Attention for one new position per sequence: its key and value join layer `l`'s cache (replaced in `caches`). */
function cachedAttention(caches: LayerCache[], l: number, nHead: number): AttentionCore {
  return (qkv) => {
    const [B, , C3] = qkv.shape;
    const hd = C3 / 3 / nHead;
    const [q, k, v] = tf.split(qkv, 3, -1).map((t) => t.reshape([B, 1, nHead, hd]).transpose([0, 2, 1, 3]) as tf.Tensor4D);
    const K = tf.concat([caches[l].k, k], 2) as tf.Tensor4D;
    const V = tf.concat([caches[l].v, v], 2) as tf.Tensor4D;
    tf.dispose([caches[l].k, caches[l].v]);
    caches[l] = { k: tf.keep(K), v: tf.keep(V) };
    const att = tf.softmax(tf.mul(tf.matMul(q, K, false, true), 1 / Math.sqrt(hd)), -1);
    return tf.matMul(att, V).transpose([0, 2, 1, 3]).reshape([B, 1, C3 / 3]);
  };
}

/** One new position for every sequence: logits [B, V], caches extended in place. */
function step(model: GPT, tokens: Int32Array, position: number, caches: LayerCache[]): Float32Array {
  const cfg = model.config;
  const B = tokens.length;
  return tidyValues(() => {
    let x: tf.Tensor = tf.add(tf.gather(model.p('wte'), tf.tensor1d(tokens, 'int32')), model.p('wpe').slice([position, 0], [1, -1])).reshape([B, 1, cfg.n_embd]);
    for (let l = 0; l < cfg.n_layer; l++) x = block(x, model.blockWeights(l), cachedAttention(caches, l, cfg.n_head));
    return model.unembed(model.finalNorm(x).reshape([B, cfg.n_embd]));
  });
}

/** Run equal-length prompts through the model once: logits at the last position, and the caches. */
function prefill(model: GPT, prompts: number[][]): { logits: Float32Array; caches: LayerCache[] } {
  const cfg = model.config;
  const B = prompts.length;
  const L = prompts[0].length;
  const ids = tf.tensor2d(Int32Array.from(prompts.flat()), [B, L], 'int32');
  const names = (l: number) => [`blocks.${l}.attn.hook_k`, `blocks.${l}.attn.hook_v`];
  const wanted = new Set(Array.from({ length: cfg.n_layer }, (_, l) => names(l)).flat());
  const { logits, cache } = model.inspect(ids, { capture: (n) => wanted.has(n) });
  const values = tidyValues(() => logits.slice([0, L - 1, 0], [-1, 1, -1]).reshape([B, cfg.vocab_size]));
  const caches = Array.from({ length: cfg.n_layer }, (_, l) => {
    const [k, v] = names(l).map((n) => tf.tidy(() => cache.get(n)!.transpose([0, 2, 1, 3])) as tf.Tensor4D);
    return { k, v };
  });
  tf.dispose([ids, logits, ...cache.values()]);
  return { logits: values, caches };
}

export function sampleCached(model: GPT, prompts: ArrayLike<number>[], o: SampleOptions): number[][] {
  if (!(o.temperature > 0)) throw new Error(`temperature must be > 0, got ${o.temperature}`);
  const V = model.config.vocab_size;
  const maxT = model.config.block_size;
  const results: number[][] = prompts.map(() => []);
  // Equal lengths together (positions must line up), in prompt order within a length.
  const byLength = new Map<number, number[]>();
  prompts.forEach((p, i) => {
    const len = Math.min(p.length, maxT);
    (byLength.get(len) ?? byLength.set(len, []).get(len)!).push(i);
  });
  const batchSize = o.batchSize ?? 128;
  for (const [len, all] of [...byLength].sort((a, b) => a[0] - b[0])) {
    for (let s = 0; s < all.length; s += batchSize) {
      const idx = all.slice(s, s + batchSize);
      const seqs = idx.map((i) => Array.from(prompts[i]).slice(-maxT));
      let { logits, caches } = prefill(model, seqs);
      const done = idx.map(() => false);
      const next = new Int32Array(idx.length);
      for (let t = 0; t < o.maxNewTokens; t++) {
        idx.forEach((pi, b) => {
          if (done[b]) return;
          const token = drawToken(logits.subarray(b * V, (b + 1) * V), o);
          results[pi].push(token);
          next[b] = token;
          if (token === EOS || o.stopAtNewline?.(token)) done[b] = true;
        });
        if (done.every(Boolean) || len + t >= maxT) break;
        logits = step(model, next, len + t, caches);
      }
      tf.dispose(caches.flatMap((c) => [c.k, c.v]));
    }
  }
  return results;
}
