/**
 * Log-likelihoods of several continuations of one context (a forced choice's good and bad answer),
 * each token read once. The contexts but their last tokens run through the model as a batch
 * (kv-cache.ts prefill, padded to the longest: the same probe set is read at every evaluation, so
 * its shapes recur), then one pass (extend) reads each item's stem (its last context token and
 * the first tokens all its continuations share, " I will" of " I will help" and " I will hide")
 * and each continuation's remaining tokens side by side in one row, every segment seeing only
 * what it follows (a tree-shaped causal mask) at its own positions. The head runs only where a
 * token is scored. The same numbers as scoreContinuations on each (context, continuation) pair,
 * to rounding.
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

/** An item as it is read: the opening by prefill, then the stem and the branches in one row. */
export interface ChoiceLayout {
  /** The context but its last token. */
  opening: number[];
  /** The context's last token, then the first tokens every continuation shares. */
  stem: number[];
  /** Each continuation after those shared tokens (at least one token each). */
  branches: number[][];
}

/** How an item is read (its context must have at least two tokens, its continuations at least one). */
export function choiceLayout(item: ChoiceItem): ChoiceLayout {
  const { context, continuations } = item;
  const first = continuations[0];
  let shared = Math.min(...continuations.map((c) => c.length - 1));
  for (const c of continuations) for (let i = 0; i < shared; i++) if (c[i] !== first[i]) shared = i;
  return {
    opening: Array.from(context).slice(0, -1),
    stem: [context[context.length - 1], ...Array.from(first).slice(0, shared)],
    branches: continuations.map((c) => Array.from(c).slice(shared)),
  };
}

/** Positions an item takes in its row: its stem, and each branch but its last token. */
const rowWidth = (l: ChoiceLayout) => l.stem.length + l.branches.reduce((s, b) => s + b.length - 1, 0);

/**
 * Scores [item][continuation]. Items are read `batchSize` at a time in order of length (less
 * padding). An item whose context and longest continuation do not fit the model's context
 * together, or whose context is a single token (nothing to read before its stem), is scored by
 * scoreContinuations, which keeps each sequence's last block_size + 1 tokens.
 */
export function scoreChoices(model: GPT, items: ChoiceItem[], batchSize = 32): Score[][] {
  const blockSize = model.config.block_size;
  const out: Score[][] = new Array(items.length);
  const fits: number[] = [];
  const alone: number[] = [];
  items.forEach((it, i) => {
    const longest = Math.max(...it.continuations.map((c) => c.length));
    if (it.continuations.some((c) => c.length === 0)) throw new Error('cannot score an empty continuation');
    (it.context.length > 1 && it.context.length + longest - 1 <= blockSize ? fits : alone).push(i);
  });
  if (alone.length) {
    const scores = scoreContinuations(model, alone.flatMap((i) => items[i].continuations.map((continuation) => ({ context: items[i].context, continuation }))), batchSize);
    let next = 0;
    for (const i of alone) out[i] = items[i].continuations.map(() => scores[next++]);
  }
  const queue = fits.map((i) => ({ i, layout: choiceLayout(items[i]), length: items[i].context.length }));
  queue.sort((a, b) => a.length - b.length || rowWidth(a.layout) - rowWidth(b.layout) || a.i - b.i);
  for (let s = 0; s < queue.length; s += batchSize) {
    const batch = queue.slice(s, s + batchSize);
    scoreBatch(model, batch.map((q) => q.layout)).forEach((scores, b) => (out[batch[b].i] = scores));
  }
  return out;
}

/** One batch: the openings once (prefill), then each item's stem and branches in a row of its own. */
function scoreBatch(model: GPT, items: ChoiceLayout[]): Score[][] {
  const V = model.config.vocab_size;
  const B = items.length;
  const n = Math.max(...items.map(rowWidth));
  const tokens = new Int32Array(B * n).fill(PAD);
  const positions = new Int32Array(B * n);
  const mask = new Float32Array(B * n * n).fill(MASKED);
  // Every placed position predicts a scored token (the stem's last, each branch's first), padding
  // none: the head runs at the placed positions only, logitRow[flat] being each one's row.
  const at: number[] = [];
  const logitRow = new Int32Array(B * n);
  const branchStarts = items.map((it, b) => {
    const P = it.opening.length;
    const S = it.stem.length;
    const row = (i: number) => (b * n + i) * n;
    const place = (i: number, token: number, position: number) => {
      tokens[b * n + i] = token;
      positions[b * n + i] = position;
      logitRow[b * n + i] = at.push(b * n + i) - 1;
    };
    it.stem.forEach((t, j) => {
      place(j, t, P + j);
      mask.fill(0, row(j), row(j) + j + 1);
    });
    let o = S;
    return it.branches.map((branch) => {
      const start = o;
      for (let j = 0; j < branch.length - 1; j++, o++) {
        place(o, branch[j], P + S + j);
        mask.fill(0, row(o), row(o) + S); // the stem
        mask.fill(0, row(o) + start, row(o) + o + 1); // the branch so far
      }
      return start;
    });
  });
  const { cache } = prefill(model, items.map((it) => it.opening), { bucket: 1 });
  try {
    const selfMask = tf.tensor4d(mask, [B, 1, n, n]);
    const logits = extend(model, cache, tokens, positions, n, { keep: false, selfMask, at: Int32Array.from(at) });
    selfMask.dispose();
    // log P(token | the row up to flat position `flat`); each position is read once or twice (a
    // stem's last by every branch), so its normaliser is kept.
    const norms = new Float64Array(at.length).fill(NaN);
    const logp = (flat: number, token: number) => {
      const r = logitRow[flat];
      if (Number.isNaN(norms[r])) norms[r] = logSumExp(logits, r * V, V);
      return logits[r * V + token] - norms[r];
    };
    return items.map((it, b) => {
      const S = it.stem.length;
      let shared = 0;
      for (let j = 1; j < S; j++) shared += logp(b * n + j - 1, it.stem[j]);
      return it.branches.map((branch, k) => {
        let sum = shared + logp(b * n + S - 1, branch[0]);
        for (let j = 1; j < branch.length; j++) sum += logp(b * n + branchStarts[b][k] + j - 1, branch[j]);
        const count = S - 1 + branch.length;
        return { sum, count, mean: sum / count };
      });
    });
  } finally {
    disposeCache(cache);
  }
}
