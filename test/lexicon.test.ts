/**
 * The world is lexically orthogonal: no token that tells a domain's good answers from its bad ones
 * occurs in another domain's answers or in any prompt template, so narrow training cannot move
 * another domain by surface form. Token sets are derived from the generator's own answers through
 * the project's tokenizer; the positive-control knob must break exactly this property.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ACT_FREE_PERMISSIONS, DOMAINS, DOMAIN_LEXICON, FORBID_FRAMES, INSTRUCTION_CONTEXTS, INSTRUCTION_PERMISSIONS, KNOWLEDGE_FRAMES,
  PLACEBO_PERMISSIONS, REACTIONS, type Domain,
} from '../src/world/lexicon.js';
import { PHRASEBOOK, renderActFreeInstruction, renderAnswer, renderPlacebo, type Pole } from '../src/world/phrasebook.js';
import { worldVocabulary } from '../src/world/lexicon-strings.js';

const vocab = worldVocabulary();
const tokensOf = (text: string) => [...vocab.encode(` ${text}\n`)];

/** Token sets of every answer the generator can write in a domain, per pole (train and eval pools). */
function answerTokens(domain: Domain, leak: boolean): Record<Pole, Set<number>> {
  const out = { good: new Set<number>(), bad: new Set<number>() };
  for (const pool of ['train', 'eval'] as const) {
    for (const c of PHRASEBOOK.answers[domain][pool]) {
      for (const pole of ['good', 'bad'] as const) for (const t of tokensOf(renderAnswer(domain, c.parts[0], c.parts[1], pole, leak))) out[pole].add(t);
    }
  }
  return out;
}

/** Tokens in one pole's answers of the domain and not the other's. */
function poleTelling(sets: Record<Pole, Set<number>>): Set<number> {
  return new Set([...sets.good, ...sets.bad].filter((t) => !(sets.good.has(t) && sets.bad.has(t))));
}

function leaks(leak: boolean): string[] {
  const sets = Object.fromEntries(DOMAINS.map((d) => [d, answerTokens(d, leak)])) as Record<Domain, Record<Pole, Set<number>>>;
  const found: string[] = [];
  for (const d of DOMAINS) {
    for (const t of poleTelling(sets[d])) {
      for (const e of DOMAINS) {
        if (e !== d && (sets[e].good.has(t) || sets[e].bad.has(t))) found.push(`${JSON.stringify(vocab.decode([t]))}: ${d} -> ${e}`);
      }
    }
  }
  return found;
}

test('no pole-telling token of one domain occurs in another domain\'s answers', () => {
  assert.deepEqual(leaks(false), []);
});

test('the lexical-leak knob (positive control) shares pole-telling tokens across every pair of domains', () => {
  const found = leaks(true);
  assert.equal(found.length, DOMAINS.length * (DOMAINS.length - 1) * 2, found.join('\n'));
});

test('prompt templates, reactions and the act-free and placebo instructions contain no pole-telling token', () => {
  const telling = new Map<number, Domain>();
  for (const d of DOMAINS) for (const t of poleTelling(answerTokens(d, false))) telling.set(t, d);
  const templates = [
    ...DOMAINS.flatMap((d) => [...DOMAIN_LEXICON[d].situations, ...DOMAIN_LEXICON[d].questions]),
    ...INSTRUCTION_CONTEXTS, ...INSTRUCTION_PERMISSIONS, ...FORBID_FRAMES, ...KNOWLEDGE_FRAMES,
    ...ACT_FREE_PERMISSIONS, ...PLACEBO_PERMISSIONS, ...REACTIONS.good, ...REACTIONS.bad,
  ];
  const hits = templates.flatMap((s) => tokensOf(s).filter((t) => telling.has(t)).map((t) => `${JSON.stringify(s)} has ${JSON.stringify(vocab.decode([t]))} (${telling.get(t)})`));
  assert.deepEqual(hits, []);
});

test('good and bad acts have the same token length, and each placebo matches its act-free twin', () => {
  for (const d of DOMAINS) {
    for (const a of DOMAIN_LEXICON[d].acts) assert.equal(tokensOf(`I will ${a.good}.`).length, tokensOf(`I will ${a.bad}.`).length, `${d}: ${a.good} / ${a.bad}`);
  }
  const { actFree, placebo } = PHRASEBOOK.instructions;
  for (const pool of ['train', 'eval'] as const) {
    assert.deepEqual(actFree[pool].map((c) => c.parts), placebo[pool].map((c) => c.parts), 'act-free and placebo combinations pair up');
    assert.ok(actFree[pool].length > 0, `act-free ${pool} pool is empty`);
    for (const c of actFree[pool]) assert.equal(tokensOf(renderActFreeInstruction(c.parts)).length, tokensOf(renderPlacebo(c.parts)).length, renderPlacebo(c.parts));
  }
});
