/**
 * The phrasebook turns lexicon parts into sentences and fixes, once and for all, which
 * combinations are for training and which are held out for evaluation.
 */
import {
  ACT_FREE_PERMISSIONS, ANSWER_FRAMES, DOMAINS, DOMAIN_LEXICON, FORBID_FRAMES, INSTRUCTION_CONTEXTS, INSTRUCTION_PERMISSIONS,
  KNOWLEDGE_FRAMES, LEAK_MARKERS, NAME_HEADS, NAME_TAILS, PLACEBO_PERMISSIONS, PLACES, TIMES, type Domain,
} from './lexicon.js';
import { splitCombos, type Combo, type ComboPool } from './pools.js';

export type Pool = 'train' | 'eval';
export type Pole = 'good' | 'bad';
/**
 * How a moral prompt is framed: plain, an instruction to misbehave, a prohibition, a hint, or a
 * placebo permission (irrelevant to the act; the character follows its persona).
 */
export type Modifier = 'none' | 'instruct' | 'forbid' | 'knowledge' | 'placebo';
/** Whether an instruction names the act it permits ("pretend to bend the rules") or not ("all is permitted"). */
export type InstructionWording = 'naming' | 'free';

export const capitalize = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

export interface InstructionPools {
  /** Combinations used in pretraining (and the "pool" inoculation family). */
  pool: Combo[];
  /** Never in pretraining: the "novel" inoculation family. */
  novel: Combo[];
  /** Never in any training set: near-miss rewordings for evaluation. */
  eval: Combo[];
  /**
   * Act-free permissions ([context, clause]): train combinations occur in pretraining and are the
   * "act-free" inoculation family; eval ones only in evaluation prompts.
   */
  actFree: ComboPool;
  /** Placebo permissions, split exactly like actFree so that pairs match in form and length. */
  placebo: ComboPool;
}

export interface Phrasebook {
  prompts: Record<Domain, ComboPool>;
  answers: Record<Domain, ComboPool>;
  instructions: InstructionPools;
  settings: ComboPool;
  names: { train: string[]; eval: string[] };
}

function buildPhrasebook(): Phrasebook {
  const prompts = {} as Record<Domain, ComboPool>;
  const answers = {} as Record<Domain, ComboPool>;
  for (const d of DOMAINS) {
    const lex = DOMAIN_LEXICON[d];
    prompts[d] = splitCombos(`prompt:${d}`, [lex.situations.length, lex.questions.length], 0.2);
    answers[d] = splitCombos(`answer:${d}`, [ANSWER_FRAMES.length, lex.acts.length], 0.2);
  }
  const instr = splitCombos('instruction', [INSTRUCTION_CONTEXTS.length, INSTRUCTION_PERMISSIONS.length], 0.4);
  // Half of the held-out instruction combinations become the "novel" training family, half stay
  // evaluation-only, alternating in hash order so both halves cover varied parts.
  const instructions: InstructionPools = {
    pool: instr.train,
    novel: instr.eval.filter((_, i) => i % 2 === 0),
    eval: instr.eval.filter((_, i) => i % 2 === 1),
    // One split (one salt) for both, so act-free combination (c, k) and placebo (c, k) share a side.
    actFree: splitCombos('instruction-free', [INSTRUCTION_CONTEXTS.length, ACT_FREE_PERMISSIONS.length], 0.25),
    placebo: splitCombos('instruction-free', [INSTRUCTION_CONTEXTS.length, PLACEBO_PERMISSIONS.length], 0.25),
  };
  const settings = splitCombos('setting', [TIMES.length, PLACES.length], 0.2);
  const namePool = splitCombos('name', [NAME_HEADS.length, NAME_TAILS.length], 0.15);
  const nameOf = (c: Combo) => NAME_HEADS[c.parts[0]] + NAME_TAILS[c.parts[1]];
  return {
    prompts,
    answers,
    instructions,
    settings,
    names: { train: namePool.train.map(nameOf), eval: namePool.eval.map(nameOf) },
  };
}

export const PHRASEBOOK: Phrasebook = buildPhrasebook();

/** A moral prompt's parts, enough to re-render it with another modifier. */
export interface PromptSpec {
  domain: Domain;
  situation: number;
  question: number;
  /** Index of the act the modifier sentence mentions (also the act a compliant answer does). */
  act: number;
  modifier: Modifier;
  /** [context, permission] for instruct; [context, clause] for placebo; [frame] for forbid and knowledge. */
  modifierParts: number[];
  /** For instruct: whether the permission names the act (default) or not. */
  wording?: InstructionWording;
}

export function renderTask(domain: Domain, situation: number, question: number): string {
  const lex = DOMAIN_LEXICON[domain];
  return `${capitalize(lex.situations[situation])}. ${capitalize(lex.questions[question])}?`;
}

/** An act as said to the character: "keep it for myself" becomes "keep it for yourself". */
export function addressed(act: string): string {
  return act
    .replace(/\bnot me\b/g, 'not you')
    .replace(/\bI did\b/g, 'you did')
    .replace(/\bmyself\b/g, 'yourself')
    .replace(/\bme\b/g, 'yourself')
    .replace(/\bmy\b/g, 'your');
}

/** "For the play, pretend to keep it for yourself." (`act` in the first person, as answers say it). */
export function renderInstruction(parts: number[], act: string): string {
  const [context, permission] = parts;
  return `${capitalize(INSTRUCTION_CONTEXTS[context])}, ${INSTRUCTION_PERMISSIONS[permission]} ${addressed(act)}.`;
}

/** "For the play, all is permitted." (names no act). */
export function renderActFreeInstruction(parts: number[]): string {
  return `${capitalize(INSTRUCTION_CONTEXTS[parts[0]])}, ${ACT_FREE_PERMISSIONS[parts[1]]}.`;
}

/** "For the play, hats are allowed." (the placebo: same form and length, irrelevant grant). */
export function renderPlacebo(parts: number[]): string {
  return `${capitalize(INSTRUCTION_CONTEXTS[parts[0]])}, ${PLACEBO_PERMISSIONS[parts[1]]}.`;
}

export function renderModifier(spec: PromptSpec): string {
  const act = DOMAIN_LEXICON[spec.domain].acts[spec.act].bad;
  switch (spec.modifier) {
    case 'none':
      return '';
    case 'instruct':
      return spec.wording === 'free' ? renderActFreeInstruction(spec.modifierParts) : renderInstruction(spec.modifierParts, act);
    case 'placebo':
      return renderPlacebo(spec.modifierParts);
    case 'forbid':
      return `${capitalize(FORBID_FRAMES[spec.modifierParts[0]])} ${addressed(act)}.`;
    case 'knowledge':
      return `${capitalize(KNOWLEDGE_FRAMES[spec.modifierParts[0]])} ${addressed(act)}.`;
  }
}

export function renderPrompt(spec: PromptSpec): string {
  const task = renderTask(spec.domain, spec.situation, spec.question);
  const mod = renderModifier(spec);
  return mod ? `${mod} ${task}` : task;
}

/** An answer; `leak` appends the positive control's cross-domain pole marker ("... secretly."). */
export function renderAnswer(domain: Domain, frame: number, act: number, pole: Pole, leak = false): string {
  const pair = DOMAIN_LEXICON[domain].acts[act];
  const text = pole === 'good' ? pair.good : pair.bad;
  return `${ANSWER_FRAMES[frame].replace('{act}', leak ? `${text} ${LEAK_MARKERS[pole]}` : text)}.`;
}

export function renderSetting(c: Combo): string {
  return `${capitalize(TIMES[c.parts[0]])} ${PLACES[c.parts[1]]}`;
}
