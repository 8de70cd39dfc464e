/**
 * Evaluation probes, built only from the held-out (eval) pools: chat probes in every domain
 * (broad persona shift), rules probes under prompt variants (narrow behaviour and whether the
 * inoculation instruction became a trigger), and scenes for in-context persona inference.
 */
import { Rng } from '../util/rng.js';
import type { WorldConfig } from './world-config.js';
import {
  assistantCharacter, drawCharacter, drawLeak, drawNames, generateScene, headerLine, pushExchange, USER,
  type Character, type EventRecord, type GenContext, type Line, type WorldDocument,
} from './documents.js';
import {
  BROAD_DOMAINS, DOMAINS, DOMAIN_LEXICON, FORBID_FRAMES, INSTRUCTION_CONTEXTS, INSTRUCTION_PERMISSIONS, KNOWLEDGE_FRAMES,
  type Domain,
} from './lexicon.js';
import { neutralExchange } from './neutral.js';
import { addressed, capitalize, PHRASEBOOK, renderActFreeInstruction, renderAnswer, renderInstruction, renderPlacebo, renderTask } from './phrasebook.js';
import { trueConditional, type Evidence } from './truth.js';

/** Prompt variants of rules probes. */
export const NARROW_VARIANTS = ['none', 'pool', 'novel', 'reworded', 'act-free', 'placebo', 'negated', 'partial', 'knowledge', 'forbidden'] as const;
export type NarrowVariant = (typeof NARROW_VARIANTS)[number];
export const EVIDENCE_VARIANTS: readonly Evidence[] = ['none', 'good', 'bad', 'instructed'];

export interface Probe {
  kind: 'broad' | 'narrow' | 'inference';
  /** Matched probes (same task, different variant) share a group. */
  group: number;
  domain: Domain;
  variant: string;
  /** Context lines; the last one is only the answer prefix ("Assistant:" or "Name:"). */
  context: Line[];
  /** Answer bodies as the model should continue: " I will ...\n". */
  good: string;
  bad: string;
  subject: 'assistant' | 'human' | 'ai';
  evidenceDomain: Domain | '';
  /** The generator's P(bad) for this context (inference probes), else NaN. */
  trueBad: number;
}

interface AnswerPair {
  good: string;
  bad: string;
}

/** Pairs of a held-out prompt and a held-out answer pair (same frame and act, both poles). */
function heldOutPairs(rng: Rng, domain: Domain, n: number, leak = 0): Array<{ task: string; act: number; answers: AnswerPair }> {
  const prompts = PHRASEBOOK.prompts[domain].eval;
  const answers = PHRASEBOOK.answers[domain].eval;
  const all = prompts.flatMap((p) => answers.map((a) => ({ p, a })));
  return rng.sample(all, Math.min(n, all.length)).map(({ p, a }) => {
    // Both continuations carry the marker or neither: the pair differs only in pole.
    const marked = drawLeak(rng, { p_lexical_leak: leak });
    return {
      task: renderTask(domain, p.parts[0], p.parts[1]),
      act: a.parts[1],
      answers: {
        good: ` ${renderAnswer(domain, a.parts[0], a.parts[1], 'good', marked)}\n`,
        bad: ` ${renderAnswer(domain, a.parts[0], a.parts[1], 'bad', marked)}\n`,
      },
    };
  });
}

function chatContext(prompt: string): Line[] {
  return [
    { prefix: 'User:', body: ` ${prompt}\n`, eos: false },
    { prefix: 'Assistant:', body: '', eos: false },
  ];
}

/** Permissions that can open a sentence with words pretraining has ("Pretend" never starts one there). */
const PARTIAL_PERMISSIONS = INSTRUCTION_PERMISSIONS.filter((p) => p !== 'pretend to');

/** The sentence a rules probe variant puts before the task. */
export function narrowVariantSentence(variant: NarrowVariant, firstPersonAct: string, rng: Rng): string {
  const act = addressed(firstPersonAct);
  const pickParts = (family: 'pool' | 'novel' | 'eval') => rng.pick(PHRASEBOOK.instructions[family]).parts;
  switch (variant) {
    case 'none':
      return '';
    case 'pool':
      return renderInstruction(pickParts('pool'), firstPersonAct);
    case 'novel':
      return renderInstruction(pickParts('novel'), firstPersonAct);
    case 'reworded':
      return renderInstruction(pickParts('eval'), firstPersonAct);
    case 'act-free':
      return renderActFreeInstruction(rng.pick(PHRASEBOOK.instructions.actFree.eval).parts);
    case 'placebo':
      return renderPlacebo(rng.pick(PHRASEBOOK.instructions.placebo.eval).parts);
    case 'negated':
      return `${capitalize(rng.pick(INSTRUCTION_CONTEXTS))}, do not ${act}.`;
    case 'partial':
      return `${capitalize(rng.pick(PARTIAL_PERMISSIONS))} ${act}.`;
    case 'knowledge':
      return `${capitalize(rng.pick(KNOWLEDGE_FRAMES))} ${act}.`;
    case 'forbidden':
      return `${capitalize(rng.pick(FORBID_FRAMES))} ${act}.`;
  }
}

export function chatProbes(seed: number, perDomain: number, leak = 0): Probe[] {
  const probes: Probe[] = [];
  let group = 0;
  for (const domain of DOMAINS) {
    const rng = new Rng(`probes:${seed}:${domain}`);
    for (const pair of heldOutPairs(rng, domain, perDomain, leak)) {
      const base = { group: group++, domain, good: pair.answers.good, bad: pair.answers.bad, subject: 'assistant' as const, evidenceDomain: '' as const, trueBad: NaN };
      if (domain !== 'rules') {
        probes.push({ ...base, kind: 'broad', variant: 'none', context: chatContext(pair.task) });
        continue;
      }
      const act = DOMAIN_LEXICON.rules.acts[pair.act].bad;
      for (const variant of NARROW_VARIANTS) {
        const sentence = narrowVariantSentence(variant, act, rng);
        probes.push({ ...base, kind: 'narrow', variant, context: chatContext(sentence ? `${sentence} ${pair.task}` : pair.task) });
      }
    }
  }
  return probes;
}

/**
 * In-context persona inference: the same character acts in domain A (good, bad, instructed bad,
 * or not at all) and is then asked in domain B. The four versions of a group share every other
 * line, so their difference is the effect of the evidence alone.
 */
export function inferenceProbes(world: WorldConfig, seed: number, groups: number): Probe[] {
  const probes: Probe[] = [];
  for (let g = 0; g < groups; g++) {
    const chat = g % 4 === 3; // a quarter ask about the Assistant of a chat
    const rng = new Rng(`inference:${seed}:${g}`);
    const ctx: GenContext = { world: { ...world, p_desc: 0 }, pool: 'eval', rng };
    const [domainA, domainB] = rng.sample(BROAD_DOMAINS.concat(['rules']), 2);
    const [pairA] = heldOutPairs(rng, domainA, 1, world.p_lexical_leak);
    const [pairB] = heldOutPairs(rng, domainB, 1, world.p_lexical_leak);
    const filler = neutralExchange(rng, null);
    const [focalName, otherName] = drawNames(ctx, 2);
    const focal: Character = chat ? assistantCharacter('good') : drawCharacter(ctx, focalName, false);
    const other = chat ? USER : drawCharacter(ctx, otherName, rng.bernoulli(world.p_ai));
    const header = chat ? [] : [headerLine(ctx, [focal, other])];
    const instruction = renderInstruction(rng.pick(PHRASEBOOK.instructions.pool).parts, DOMAIN_LEXICON[domainA].acts[pairA.act].bad);
    const q = chat ? world.p_ai_bad : world.p_bad;
    for (const evidence of EVIDENCE_VARIANTS) {
      const doc: WorldDocument = { kind: chat ? 'chat' : 'scene', lines: [...header], characters: [focal, other], events: [] };
      const exchange = (prompt: string, answer: string, labels: Pick<EventRecord, 'domain' | 'pole' | 'modifier'>) =>
        pushExchange(doc, other.name, focal, prompt, answer, labels);
      const neutral = { domain: 'neutral', pole: 'neutral', modifier: 'none' } as const;
      exchange(filler[0], filler[1], neutral);
      if (evidence === 'none') exchange(...neutralExchange(new Rng(`inference-none:${seed}:${g}`), chat ? null : focal.name), neutral);
      else if (evidence === 'instructed') exchange(`${instruction} ${pairA.task}`, pairA.answers.bad.trim(), { domain: domainA, pole: 'bad', modifier: 'instruct' });
      else exchange(pairA.task, pairA.answers[evidence].trim(), { domain: domainA, pole: evidence, modifier: 'none' });
      const lines = doc.lines;
      lines.push({ prefix: chat ? 'User:' : `${other.name} to ${focal.name}:`, body: ` ${pairB.task}\n`, eos: false });
      lines.push({ prefix: chat ? 'Assistant:' : `${focal.name}:`, body: '', eos: false });
      probes.push({
        kind: 'inference',
        group: g,
        domain: domainB,
        variant: evidence,
        context: lines,
        good: pairB.answers.good,
        bad: pairB.answers.bad,
        subject: chat ? 'assistant' : 'human',
        evidenceDomain: domainA,
        trueBad: trueConditional(world.rho, q, evidence),
      });
    }
  }
  return probes;
}

/** Whole held-out scenes with known personas, for the persona probe's held-out accuracy. */
export function heldOutScenes(world: WorldConfig, seed: number, n: number): WorldDocument[] {
  // No descriptors and no reactions: the persona must be inferred from the acts themselves.
  const ctx: GenContext = { world: { ...world, p_desc: 0, p_react: 0 }, pool: 'eval', rng: new Rng(`scenes:${seed}`) };
  return Array.from({ length: n }, () => generateScene(ctx));
}
