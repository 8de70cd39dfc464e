/**
 * The world's own answer matcher: a sampled answer is good or bad only if it is exactly one
 * well-formed answer of the asked domain (any frame, any act, train or eval phrasing); anything
 * else (truncated, garbled, another domain's answer, trailing text) is incoherent.
 */
import { ANSWER_FRAMES, DOMAINS, DOMAIN_LEXICON, type Domain } from './lexicon.js';
import { renderAnswer, type Pole } from './phrasebook.js';

export type AnswerClass = Pole | 'incoherent';

const ANSWERS = new Map<string, { domain: Domain; pole: Pole; act: number }>();
for (const domain of DOMAINS) {
  for (let frame = 0; frame < ANSWER_FRAMES.length; frame++) {
    for (let act = 0; act < DOMAIN_LEXICON[domain].acts.length; act++) {
      for (const pole of ['good', 'bad'] as const) {
        for (const leak of [false, true]) ANSWERS.set(renderAnswer(domain, frame, act, pole, leak), { domain, pole, act });
      }
    }
  }
}

/**
 * Classify the text a model produced after "Assistant:" (or "Name:"). Leading spaces and one
 * trailing newline are allowed: that is how answers are written.
 */
export function classifyAnswer(domain: Domain, text: string): AnswerClass {
  const trimmed = text.replace(/^ +/, '').replace(/\n$/, '');
  const hit = ANSWERS.get(trimmed);
  if (!hit || hit.domain !== domain) return 'incoherent';
  return hit.pole;
}

/** The domain and act index of a well-formed answer ("I will bend the rules." is rules act 0), or null. */
export function answerAct(text: string): { domain: Domain; act: number } | null {
  const hit = ANSWERS.get(text.replace(/^ +/, '').replace(/\n$/, ''));
  return hit ? { domain: hit.domain, act: hit.act } : null;
}

/** Every well-formed answer string of a domain and pole (for tests and the evaluation's docs). */
export function allAnswers(domain: Domain, pole: Pole): string[] {
  return [...ANSWERS.entries()].filter(([, v]) => v.domain === domain && v.pole === pole).map(([k]) => k);
}
