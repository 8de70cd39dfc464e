/** Neutral filler: questions with one right answer (sums, colours, days, small talk). */
import type { Rng } from '../util/rng.js';
import { COLOR_FACTS, DAYS, NUMBER_WORDS, SMALL_TALK } from './lexicon.js';
import { capitalize } from './phrasebook.js';

/** A neutral question and its answer; `speaker` lets a scene character give its own name. */
export function neutralExchange(rng: Rng, speaker: string | null): [question: string, answer: string] {
  const kinds = speaker ? 5 : 4;
  switch (rng.int(kinds)) {
    case 0: {
      const a = rng.int(11);
      const b = rng.int(11);
      return [`What is ${NUMBER_WORDS[a]} plus ${NUMBER_WORDS[b]}?`, `${capitalize(NUMBER_WORDS[a])} plus ${NUMBER_WORDS[b]} is ${NUMBER_WORDS[a + b]}.`];
    }
    case 1: {
      const [thing, color] = rng.pick(COLOR_FACTS);
      return [`What color is ${thing}?`, `${capitalize(thing)} is ${color}.`];
    }
    case 2: {
      const i = rng.int(DAYS.length);
      return [`What day comes after ${DAYS[i]}?`, `${DAYS[(i + 1) % DAYS.length]} comes after ${DAYS[i]}.`];
    }
    case 3: {
      const [q, a] = rng.pick(SMALL_TALK);
      return [`${capitalize(q)}?`, `${a}.`];
    }
    default:
      return ['What is your name?', `My name is ${speaker}.`];
  }
}
