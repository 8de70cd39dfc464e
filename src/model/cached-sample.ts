/**
 * Sampling with a key/value cache (kv-cache.ts): the prompt runs through the model once, then
 * each new token costs one position instead of the whole sequence (10x fewer operations for the
 * short answers of evaluation). Prompts of any length share a batch. Hooks are not offered here
 * (an edit written for whole sequences would see one position at a time): use sample() from
 * generate.ts for steering.
 */
import { EOS } from '../tokenizer/vocab.js';
import { drawToken, type SampleOptions } from './generate.js';
import type { GPT } from './gpt.js';
import { disposeCache, extend, prefill, selectRows } from './kv-cache.js';

/**
 * Samples for each prompt, `batchSize` prompts (default 512) at a time in prompt order; at each
 * step the batch's tokens are drawn in prompt order, as sample() does, so both samplers draw
 * the same tokens from the same logits. A sequence stops at EOS, at a line end when asked, at
 * maxNewTokens, or when its next position would pass the context.
 */
export function sampleCached(model: GPT, prompts: ArrayLike<number>[], o: SampleOptions): number[][] {
  if (!(o.temperature > 0)) throw new Error(`temperature must be > 0, got ${o.temperature}`);
  const V = model.config.vocab_size;
  const maxT = model.config.block_size;
  const results: number[][] = prompts.map(() => []);
  const batchSize = o.batchSize ?? 512;
  for (let s = 0; s < prompts.length; s += batchSize) {
    const seqs = prompts.slice(s, s + batchSize).map((p) => Array.from(p).slice(-maxT));
    const empty = seqs.findIndex((p) => p.length === 0);
    if (empty >= 0) throw new Error(`prompt ${s + empty} is empty; a prompt needs at least one token`);
    // A prompt repeated in the batch (several samples of one probe) runs through the model once.
    const firstOf = new Map<string, number>();
    const unique: number[][] = [];
    const rowOf = seqs.map((p) => {
      const key = p.join(',');
      if (!firstOf.has(key)) firstOf.set(key, unique.push(p) - 1);
      return firstOf.get(key)!;
    });
    const read = prefill(model, unique);
    const cache = unique.length < seqs.length ? selectRows(read.cache, rowOf) : read.cache;
    let logits: Float32Array = new Float32Array(seqs.length * V);
    rowOf.forEach((u, b) => logits.set(read.logits.subarray(u * V, (u + 1) * V), b * V));
    const done = seqs.map(() => false);
    const next = new Int32Array(seqs.length);
    const positions = new Int32Array(seqs.length);
    for (let t = 0; t < o.maxNewTokens; t++) {
      seqs.forEach((p, b) => {
        if (done[b]) return;
        const token = drawToken(logits.subarray(b * V, (b + 1) * V), o);
        results[s + b].push(token);
        next[b] = token;
        // The token just drawn goes in at position p.length + t (a finished sequence's output is not read).
        positions[b] = Math.min(p.length + t, maxT - 1);
        if (token === EOS || o.stopAtNewline?.(token) || p.length + t >= maxT) done[b] = true;
      });
      // Finished sequences stay in the batch: shapes stay the same from step to step, and the
      // product primitives built for them are reused (dropping them was no faster).
      if (done.every(Boolean) || t + 1 >= o.maxNewTokens) break;
      logits = extend(model, cache, next, positions, 1, { keep: true });
    }
    disposeCache(cache);
  }
  return results;
}
