/** Validation loss and sampled lines: the measurements every training run logs at evaluation steps. */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/batches.js';
import { sampleCached } from '../model/cached-sample.js';
import type { GPT } from '../model/gpt.js';
import { BOS, type Vocabulary } from '../tokenizer/vocab.js';
import { Rng } from '../util/rng.js';

/** Mean loss over fixed batches, weighted by trained tokens. */
export function validationLoss(model: GPT, batches: Batch[]): number {
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

/** A few completions of fixed prompts (seeded by step, so runs are comparable), one line each. */
export function sampleLines(model: GPT, vocab: Vocabulary, prompts: string[], step: number): string[] {
  const newline = new Set<number>();
  for (let id = 3; id < vocab.size; id++) if (vocab.decode([id]).includes('\n')) newline.add(id);
  const encoded = prompts.map((p) => [BOS, ...vocab.encode(p)]);
  const outs = sampleCached(model, encoded, { maxNewTokens: 24, temperature: 1, topK: 0, rng: new Rng(`samples:${step}`), stopAtNewline: (t) => newline.has(t) });
  return prompts.map((p, i) => `${p}${vocab.decode(outs[i], { specials: true })}`.replace(/\n/g, ' ').trim());
}
