/** Sampled lines: what every training run shows of its model at evaluation steps, beside the validation loss. */
import { sampleCached } from '../model/cached-sample.js';
import type { GPT } from '../model/gpt.js';
import { BOS, SPECIAL_TOKENS, type Vocabulary } from '../tokenizer/vocab.js';
import { Rng } from '../util/rng.js';

/** Tokens sampled after each prompt (a line of the world's text is shorter). */
export const SAMPLE_LINE_TOKENS = 24;

/** A few completions of fixed prompts (seeded by step, so runs are comparable), one line each. */
export function sampleLines(model: GPT, vocab: Vocabulary, prompts: string[], step: number): string[] {
  const newline = new Set<number>();
  for (let id = SPECIAL_TOKENS.length; id < vocab.size; id++) if (vocab.decode([id]).includes('\n')) newline.add(id);
  const encoded = prompts.map((p) => [BOS, ...vocab.encode(p)]);
  const outs = sampleCached(model, encoded, { maxNewTokens: SAMPLE_LINE_TOKENS, temperature: 1, topK: 0, rng: new Rng(`samples:${step}`), stopAtNewline: (t) => newline.has(t) });
  return prompts.map((p, i) => `${p}${vocab.decode(outs[i], { specials: true })}`.replace(/\n/g, ' ').trim());
}
