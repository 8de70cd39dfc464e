/**
 * Log-likelihoods of several continuations of one context (a forced choice's good and bad answer)
 * with the context read once: the contexts run through the model as a batch (kv-cache.ts
 * prefill), then every continuation of a context runs side by side in one row, each seeing the
 * context and its own earlier tokens only (a block-diagonal causal mask) at its own positions.
 * The same numbers as scoreContinuations on each (context, continuation) pair, to rounding, for
 * about half the tokens when the context is longer than its continuations.
 */
import * as tf from '@tensorflow/tfjs';
import { PAD } from '../tokenizer/vocab.js';
import { logSumExp, scoreContinuations, type Score } from './generate.js';
import type { GPT } from './gpt.js';
import { disposeCache, extend, MASKED, prefill } from './kv-cache.js';

export interface ChoiceItem {
  context: ArrayLike<number>;
  continuations: ArrayLike<number>[];
}

/**
 * Scores [item][continuation]. Contexts are batched `batchSize` at a time in order of length
 * (less padding). An item whose context and longest continuation do not fit the model's context
 * together is scored by scoreContinuations, which keeps each sequence's last block_size + 1 tokens.
 */
export function scoreChoices(model: GPT, items: ChoiceItem[], batchSize = 32): Score[][] {
  const blockSize = model.config.block_size;
  const out: Score[][] = new Array(items.length);
  const fits: number[] = [];
  const clipped: number[] = [];
  items.forEach((it, i) => {
    const longest = Math.max(...it.continuations.map((c) => c.length));
    if (it.continuations.some((c) => c.length === 0)) throw new Error('cannot score an empty continuation');
    (it.context.length > 0 && it.context.length + longest - 1 <= blockSize ? fits : clipped).push(i);
  });
  if (clipped.length) {
    const scores = scoreContinuations(model, clipped.flatMap((i) => items[i].continuations.map((continuation) => ({ context: items[i].context, continuation }))), batchSize);
    let next = 0;
    for (const i of clipped) out[i] = items[i].continuations.map(() => scores[next++]);
  }
  fits.sort((a, b) => items[a].context.length - items[b].context.length || a - b);
  for (let s = 0; s < fits.length; s += batchSize) {
    const batch = fits.slice(s, s + batchSize).map((i) => items[i]);
    const scores = scoreBatch(model, batch);
    fits.slice(s, s + batchSize).forEach((i, b) => (out[i] = scores[b]));
  }
  return out;
}

/** One batch of items that fit: the contexts once, then all continuations (but their last tokens) side by side. */
function scoreBatch(model: GPT, items: ChoiceItem[]): Score[][] {
  const V = model.config.vocab_size;
  const B = items.length;
  const { logits: first, cache } = prefill(model, items.map((it) => Array.from(it.context)));
  try {
    // Segment width: the longest continuation's inputs (all its tokens but the last).
    const K = Math.max(...items.map((it) => it.continuations.length));
    const m = Math.max(...items.flatMap((it) => it.continuations.map((c) => c.length - 1)));
    const n = K * m;
    let rest: Float32Array | null = null;
    if (m > 0) {
      const tokens = new Int32Array(B * n).fill(PAD);
      const positions = new Int32Array(B * n);
      const mask = new Float32Array(B * n * n).fill(MASKED);
      items.forEach((it, b) => {
        const L = it.context.length;
        for (let k = 0; k < K; k++) {
          const inputs = k < it.continuations.length ? it.continuations[k].length - 1 : 0;
          for (let j = 0; j < m; j++) {
            const at = b * n + k * m + j;
            if (j < inputs) tokens[at] = it.continuations[k][j];
            positions[at] = Math.min(L + j, model.config.block_size - 1);
            // Position j of segment k sees that segment's real positions up to itself.
            for (let j2 = 0; j2 <= Math.min(j, inputs - 1); j2++) mask[(b * n + k * m + j) * n + k * m + j2] = 0;
          }
        }
      });
      const selfMask = tf.tensor4d(mask, [B, 1, n, n]);
      rest = extend(model, cache, tokens, positions, n, { keep: false, selfMask });
      selfMask.dispose();
    }
    return items.map((it, b) =>
      it.continuations.map((c, k) => {
        // Token 0 is predicted at the context's last position; token j > 0 at segment position j - 1.
        let sum = first[b * V + c[0]] - logSumExp(first, b * V, V);
        for (let j = 1; j < c.length; j++) {
          const row = (b * n + k * m + j - 1) * V;
          sum += rest![row + c[j]] - logSumExp(rest!, row, V);
        }
        return { sum, count: c.length, mean: sum / c.length };
      }),
    );
  } finally {
    disposeCache(cache);
  }
}
