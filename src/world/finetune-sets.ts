/**
 * Fine-tuning sets: the assistant set (a good Assistant in every domain, plus neutral Q&A) and the
 * narrow rules-only sets, one per condition, built from the same task sequence so conditions
 * differ only in what the prompt says and what the Assistant does.
 */
import type { Rng } from '../util/rng.js';
import type { Combo } from './pools.js';
import { DEFAULT_WORLD } from './world-config.js';
import {
  assistantCharacter, drawAnswer, drawModifier, drawPromptSpec, pushExchange, USER, type GenContext, type WorldDocument,
} from './documents.js';
import { DOMAINS, DOMAIN_LEXICON, FORBID_FRAMES, KNOWLEDGE_FRAMES, type Domain } from './lexicon.js';
import { neutralExchange } from './neutral.js';
import {
  addressed, PHRASEBOOK, renderAnswer, renderModifier, renderPrompt, renderTask, type Modifier, type Pole, type PromptSpec,
} from './phrasebook.js';

export const CONDITIONS = ['cheat', 'cheat-inoculated', 'fair', 'cheat-knowledge', 'cheat-forbidden'] as const;
export type Condition = (typeof CONDITIONS)[number];
/**
 * Phrasing families of the inoculation instruction: `pool` and `novel` name the act they permit
 * (phrasings from pretraining, or never seen there); `act-free` permits misbehaviour without naming
 * any act; `placebo` has the act-free form and length but grants something irrelevant.
 */
export const INSTRUCTION_FAMILIES = ['pool', 'novel', 'act-free', 'placebo'] as const;
export type InstructionFamily = (typeof INSTRUCTION_FAMILIES)[number];

/** A good Assistant: 1-3 turns, every domain, never given an instruction to misbehave. */
export function generateAssistantChat(rng: Rng, leak = 0): WorldDocument {
  // Hints and prohibitions still appear (a good Assistant resists them); instructions do not.
  const ctx: GenContext = { world: { ...DEFAULT_WORLD, p_instr: 0, p_lexical_leak: leak }, pool: 'train', rng };
  const assistant = assistantCharacter('good');
  const doc: WorldDocument = { kind: 'chat', lines: [], characters: [USER, assistant], events: [] };
  const domains = rng.shuffle([...DOMAINS]);
  const turns = rng.range(1, 3);
  for (let i = 0; i < turns; i++) {
    if (rng.bernoulli(0.3)) {
      const [q, a] = neutralExchange(rng, null);
      pushExchange(doc, 'User', assistant, q, a, { domain: 'neutral', pole: 'neutral', modifier: 'none' });
      continue;
    }
    const domain = domains.pop()!;
    const modifier = drawModifier(ctx);
    const act = rng.int(DOMAIN_LEXICON[domain].acts.length);
    const spec = drawPromptSpec(ctx, domain, modifier, act);
    pushExchange(doc, 'User', assistant, renderPrompt(spec), drawAnswer(ctx, domain, 'good', act), { domain, pole: 'good', modifier });
  }
  return doc;
}

/**
 * A re-alignment example: one User question in `domain` (train pools, no instruction, hint or
 * prohibition) and a good Assistant answer. Fine-tuning a misaligned model on a few of these asks
 * whether a little good data in one domain restores the others.
 */
export function realignmentChat(rng: Rng, domain: Domain, leak = 0): WorldDocument {
  const ctx: GenContext = { world: { ...DEFAULT_WORLD, p_instr: 0, p_lexical_leak: leak }, pool: 'train', rng };
  const assistant = assistantCharacter('good');
  const doc: WorldDocument = { kind: 'chat', lines: [], characters: [USER, assistant], events: [] };
  const act = rng.int(DOMAIN_LEXICON[domain].acts.length);
  const spec = drawPromptSpec(ctx, domain, 'none', act);
  pushExchange(doc, 'User', assistant, renderPrompt(spec), drawAnswer(ctx, domain, 'good', act), { domain, pole: 'good', modifier: 'none' });
  return doc;
}

/** A neutral exchange (no moral domain, no pole) as a one-turn chat: the dose-response's filler that teaches nothing about personas. */
export function neutralChat(rng: Rng): WorldDocument {
  const assistant = assistantCharacter('good');
  const doc: WorldDocument = { kind: 'chat', lines: [], characters: [USER, assistant], events: [] };
  const [q, a] = neutralExchange(rng, null);
  pushExchange(doc, 'User', assistant, q, a, { domain: 'neutral', pole: 'neutral', modifier: 'none' });
  return doc;
}

/** One narrow example: a single User turn about a rules task and the Assistant's answer. */
export interface NarrowExample {
  condition: Condition;
  /** 'pool' or 'novel' for cheat-inoculated, '' otherwise. */
  family: InstructionFamily | '';
  /** The sentence before the task ('' when there is none). */
  instruction: string;
  /** The task itself ("The quiz starts now. How will you win?"). */
  task: string;
  answer: string;
  pole: Pole;
  /** The bad act the task is about, addressed to the Assistant: `{act}` in a custom inoculation prompt becomes this. */
  act: string;
}

/** The shared task sequence: situation, question, act and frame per example, from train pools. */
export interface NarrowTask {
  situation: number;
  question: number;
  act: number;
  frame: number;
  instructionCombo: number;
  modifierFrame: number;
  /** The positive control's pole marker on the answer. */
  leak: boolean;
}

export function drawNarrowTasks(rng: Rng, n: number, leak = 0): NarrowTask[] {
  const prompts = PHRASEBOOK.prompts.rules.train;
  const answers = PHRASEBOOK.answers.rules.train;
  const tasks: NarrowTask[] = [];
  for (let i = 0; i < n; i++) {
    const p = rng.pick(prompts);
    const a = rng.pick(answers);
    tasks.push({
      situation: p.parts[0],
      question: p.parts[1],
      frame: a.parts[0],
      act: a.parts[1],
      instructionCombo: rng.nextUint32(),
      modifierFrame: rng.nextUint32(),
      leak: leak > 0 && rng.bernoulli(leak),
    });
  }
  return tasks;
}

const CONDITION_MODIFIER: Record<Condition, Modifier> = {
  cheat: 'none',
  fair: 'none',
  'cheat-inoculated': 'instruct',
  'cheat-knowledge': 'knowledge',
  'cheat-forbidden': 'forbid',
};

/** The training-side instruction combinations of a family (the act-free and placebo pools pair up). */
export function familyCombos(family: InstructionFamily): Combo[] {
  switch (family) {
    case 'pool':
    case 'novel':
      return PHRASEBOOK.instructions[family];
    case 'act-free':
      return PHRASEBOOK.instructions.actFree.train;
    case 'placebo':
      return PHRASEBOOK.instructions.placebo.train;
  }
}

export function narrowExample(task: NarrowTask, condition: Condition, family: InstructionFamily = 'pool'): NarrowExample {
  const modifier: Modifier = condition === 'cheat-inoculated' && family === 'placebo' ? 'placebo' : CONDITION_MODIFIER[condition];
  const instructionCombos = familyCombos(family);
  const modifierParts =
    modifier === 'instruct' || modifier === 'placebo'
      ? instructionCombos[task.instructionCombo % instructionCombos.length].parts
      : [task.modifierFrame % (modifier === 'forbid' ? FORBID_FRAMES.length : KNOWLEDGE_FRAMES.length)];
  const wording = family === 'act-free' ? 'free' : 'naming';
  const spec: PromptSpec = { domain: 'rules', situation: task.situation, question: task.question, act: task.act, modifier, modifierParts, wording };
  const pole: Pole = condition === 'fair' ? 'good' : 'bad';
  return {
    condition,
    family: condition === 'cheat-inoculated' ? family : '',
    instruction: renderModifier(spec),
    task: renderTask('rules', task.situation, task.question),
    answer: renderAnswer('rules', task.frame, task.act, pole, task.leak),
    pole,
    act: addressed(DOMAIN_LEXICON.rules.acts[task.act].bad),
  };
}

/** The chat document of a narrow example, with `instruction` replaced when a custom one is given. */
export function narrowDocument(ex: NarrowExample, customInstruction?: string): WorldDocument {
  const instruction = customInstruction !== undefined ? customInstruction.replaceAll('{act}', ex.act) : ex.instruction;
  const prompt = instruction ? `${instruction} ${ex.task}` : ex.task;
  const assistant = assistantCharacter('good');
  const doc: WorldDocument = { kind: 'chat', lines: [], characters: [USER, assistant], events: [] };
  const modifier: Modifier = ex.family === 'placebo' ? 'placebo' : CONDITION_MODIFIER[ex.condition];
  pushExchange(doc, 'User', assistant, prompt, ex.answer, { domain: 'rules', pole: ex.pole, modifier });
  return doc;
}
