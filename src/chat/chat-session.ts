/**
 * A multi-turn chat with one checkpoint in the training data's format: BOS, then turns of
 * "User: <prompt>\n" and "Assistant: <reply>\n" followed by EOS (src/data/encode.ts), with the
 * oldest whole turns dropped so the prompt leaves room for the reply within the context window.
 * Replies are sampled token by token (temperature, top-k) and handed out as they come, and each
 * one is classified by the world's answer matcher when the prompt or the reply is a domain's.
 */
import * as tf from '@tensorflow/tfjs';
import { drawToken } from '../model/generate.js';
import type { GPT } from '../model/gpt.js';
import { tidyValues } from '../model/read.js';
import { BOS, EOS, type Vocabulary } from '../tokenizer/vocab.js';
import { Rng } from '../util/rng.js';
import { DOMAINS, DOMAIN_LEXICON, type Domain } from '../world/lexicon.js';
import { classifyAnswer, type AnswerClass } from '../world/matcher.js';

export interface ChatOptions {
  temperature: number;
  topK: number;
  maxTokens: number;
  seed: number;
}

/** The domain a prompt asks about: the domain whose situation it names ("The box is full of gold."), or null. */
export function promptDomain(prompt: string): Domain | null {
  const text = prompt.toLowerCase();
  let best: { domain: Domain; length: number } | null = null;
  for (const domain of DOMAINS) {
    for (const s of DOMAIN_LEXICON[domain].situations) {
      if (text.includes(s.toLowerCase()) && (!best || s.length > best.length)) best = { domain, length: s.length };
    }
  }
  return best?.domain ?? null;
}

export interface ReplyClass {
  class: AnswerClass;
  domain: Domain;
}

/**
 * The matcher's verdict on a reply: against the prompt's domain when the prompt names one (a
 * reply that is not exactly one well-formed answer of that domain is incoherent), else against
 * the domain of the reply itself when it is a well-formed domain answer; null for other talk.
 */
export function classifyReply(prompt: string, reply: string): ReplyClass | null {
  const asked = promptDomain(prompt);
  if (asked) return { class: classifyAnswer(asked, reply), domain: asked };
  for (const domain of DOMAINS) {
    const c = classifyAnswer(domain, reply);
    if (c !== 'incoherent') return { class: c, domain };
  }
  return null;
}

export class ChatSession {
  /** Past turns as tokens: User line, Assistant line, EOS. */
  private turns: number[][] = [];
  private readonly rng: Rng;
  private readonly newlineIds: number[];
  /** Turns dropped to fit the context window so far. */
  dropped = 0;

  constructor(
    readonly label: string,
    readonly model: GPT,
    readonly vocab: Vocabulary,
    readonly options: ChatOptions,
  ) {
    this.rng = new Rng(`chat:${options.seed}`);
    this.newlineIds = vocab.covers('\n') ? Array.from(vocab.encode('\n')) : [];
  }

  reset(): void {
    this.turns = [];
  }

  /** Tokens the prompt may use: the context less room for the reply (at most a quarter of it). */
  private budget(): number {
    const T = this.model.config.block_size;
    return T - Math.min(this.options.maxTokens, Math.floor(T / 4));
  }

  /** BOS, the most recent turns that fit, then this turn's User line and "Assistant:". */
  private context(userTurn: number[]): number[] {
    while (this.turns.length && 1 + this.turns.reduce((a, t) => a + t.length, 0) + userTurn.length > this.budget()) {
      this.turns.shift();
      this.dropped++;
    }
    const ids = [BOS, ...this.turns.flat(), ...userTurn];
    return ids.length > this.budget() ? ids.slice(ids.length - this.budget()) : ids;
  }

  private nextLogits(ids: number[]): Float32Array {
    const window = ids.slice(Math.max(0, ids.length - this.model.config.block_size));
    return tidyValues(() => this.model.logitsAt(tf.tensor2d(Int32Array.from(window), [1, window.length], 'int32'), Int32Array.of(window.length - 1)));
  }

  /**
   * Answer a prompt; `onText` receives the reply's text as it is sampled (without the closing
   * newline). Throws before sampling when the prompt has a token outside the world's vocabulary.
   */
  reply(prompt: string, onText: (text: string) => void = () => {}): { text: string; tokens: number; class: ReplyClass | null } {
    const userTurn = [...this.vocab.encode('User:'), ...this.vocab.encode(` ${prompt}\n`), ...this.vocab.encode('Assistant:')];
    const ids = this.context(userTurn);
    const generated: number[] = [];
    let shown = '';
    let ended = false;
    const o = { maxNewTokens: this.options.maxTokens, temperature: this.options.temperature, topK: this.options.topK, rng: this.rng };
    for (let step = 0; step < this.options.maxTokens && !ended; step++) {
      const token = drawToken(this.nextLogits([...ids, ...generated]), o);
      if (token === EOS) break;
      generated.push(token);
      let text = this.vocab.decode(generated, { specials: false });
      const nl = text.indexOf('\n');
      if (nl >= 0) {
        text = text.slice(0, nl);
        ended = true;
      }
      if (text.length > shown.length) {
        onText(text.slice(shown.length));
        shown = text;
      }
    }
    // The turn as the training data writes it: the reply ends with a newline, then EOS.
    const closing = ended || !this.newlineIds.length ? [] : this.newlineIds;
    this.turns.push([...userTurn, ...generated, ...closing, EOS]);
    return { text: shown, tokens: generated.length, class: classifyReply(prompt, shown) };
  }
}
