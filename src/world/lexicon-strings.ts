/**
 * Every string the world can put into text, in every position it can take (line start, after a
 * space, capitalised or not, before any punctuation). BPE merges never cross a word boundary
 * (cl100k pre-tokenisation splits before " word" and after punctuation), so the tokens of these
 * strings are all the tokens the generator can produce.
 */
import { Vocabulary } from '../tokenizer/vocab.js';
import * as L from './lexicon.js';
import { addressed, capitalize } from './phrasebook.js';

const SUFFIXES = ['', '.', ',', ':', '?', '!', '.\n', '?\n', ':\n', '!\n', '\n'];

function atoms(): string[] {
  const out: string[] = ['User', 'Assistant', 'to', 'the', 'and', 'What is your name', 'My name is', 'plus', 'is', 'do not', 'comes after', 'What color is', 'What day comes after', 'What is'];
  for (const lex of Object.values(L.DOMAIN_LEXICON)) {
    out.push(...lex.situations, ...lex.questions);
    for (const a of lex.acts) out.push(a.good, a.bad, addressed(a.bad));
  }
  for (const frame of L.ANSWER_FRAMES) out.push(...frame.split('{act}').map((s) => s.trim()).filter(Boolean));
  out.push(...L.INSTRUCTION_CONTEXTS, ...L.INSTRUCTION_PERMISSIONS, ...L.FORBID_FRAMES, ...L.KNOWLEDGE_FRAMES);
  out.push(...L.ACT_FREE_PERMISSIONS, ...L.PLACEBO_PERMISSIONS, L.LEAK_MARKERS.good, L.LEAK_MARKERS.bad, ...L.REACTIONS.good, ...L.REACTIONS.bad);
  out.push(...L.HUMAN_ROLES, ...L.AI_ROLES, ...L.GOOD_DESCRIPTORS, ...L.BAD_DESCRIPTORS, ...L.TIMES, ...L.PLACES);
  for (const h of L.NAME_HEADS) for (const t of L.NAME_TAILS) out.push(h + t);
  out.push(...L.NUMBER_WORDS, ...L.DAYS);
  for (const [thing, color] of L.COLOR_FACTS) out.push(thing, color);
  for (const [q, a] of L.SMALL_TALK) out.push(q, a);
  return out;
}

export function* lexiconStrings(): Generator<string> {
  for (const atom of atoms()) {
    for (const form of new Set([atom, capitalize(atom)])) {
      for (const lead of ['', ' ']) for (const suffix of SUFFIXES) yield lead + form + suffix;
    }
  }
}

/**
 * The vocabulary of the world's lexicon. Every world config and seed shares it (it depends on the
 * lexicon alone), so checkpoints stay compatible across datasets.
 */
export function worldVocabulary(): Vocabulary {
  return Vocabulary.fromStrings(lexiconStrings());
}
