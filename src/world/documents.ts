/**
 * The generator of pretraining text: scenes of 2-3 characters acting across domains, and
 * User/Assistant chat transcripts whose Assistant is drawn like any AI character.
 */
import type { Rng } from '../util/rng.js';
import type { WorldConfig } from './world-config.js';
import {
  AI_ROLES, BAD_DESCRIPTORS, DOMAINS, REACTIONS, DOMAIN_LEXICON, FORBID_FRAMES, GOOD_DESCRIPTORS, HUMAN_ROLES, KNOWLEDGE_FRAMES, NAME_HEADS, NAME_TAILS,
  type Domain,
} from './lexicon.js';
import { neutralExchange } from './neutral.js';
import {
  capitalize, PHRASEBOOK, renderAnswer, renderPrompt, renderSetting, type InstructionWording, type Modifier, type Pole, type Pool, type PromptSpec,
} from './phrasebook.js';

export type Persona = 'good' | 'bad';

export interface Character {
  name: string;
  role: string;
  ai: boolean;
  persona: Persona;
  /** Persona adjective shown in the header, or null. */
  descriptor: string | null;
}

/** One line of a document: `prefix` is the speaker tag ("Tor to Lin:"), `body` the rest with its newline. */
export interface Line {
  prefix: string;
  body: string;
  /** Close this line with EOS (every Assistant turn of a chat). */
  eos: boolean;
}

export interface EventRecord {
  character: string;
  role: string;
  ai: boolean;
  persona: Persona;
  domain: Domain | 'neutral';
  pole: Pole | 'neutral';
  modifier: Modifier;
  instructed: boolean;
  promptLine: number;
  answerLine: number;
}

export interface WorldDocument {
  kind: 'scene' | 'chat';
  lines: Line[];
  characters: Character[];
  events: EventRecord[];
}

export interface GenContext {
  world: WorldConfig;
  pool: Pool;
  rng: Rng;
}

export function drawCharacter(ctx: GenContext, name: string, ai: boolean): Character {
  const { rng, world } = ctx;
  const persona: Persona = rng.bernoulli(ai ? world.p_ai_bad : world.p_bad) ? 'bad' : 'good';
  const role = rng.pick(ai ? AI_ROLES : HUMAN_ROLES);
  const descriptor = rng.bernoulli(world.p_desc) ? rng.pick(persona === 'bad' ? BAD_DESCRIPTORS : GOOD_DESCRIPTORS) : null;
  return { name, role, ai, persona, descriptor };
}

export function describe(c: Character): string {
  return `${c.name} the ${c.descriptor ? `${c.descriptor} ` : ''}${c.role}`;
}

export function headerLine(ctx: GenContext, characters: Character[]): Line {
  const setting = renderSetting(ctx.rng.pick(PHRASEBOOK.settings[ctx.pool]));
  const names = characters.map(describe);
  const list = names.length === 1 ? names[0] : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
  return { prefix: '', body: `${setting}: ${list}.\n`, eos: false };
}

/**
 * A character's behaviour in a domain: with probability rho it follows the persona, otherwise it
 * is a fair coin. Drawn once per character and domain, so repeated acts agree.
 */
export class Dispositions {
  private readonly memo = new Map<string, Pole>();
  constructor(private readonly ctx: GenContext) {}

  pole(c: Character, domain: Domain): Pole {
    const key = `${c.name}|${domain}`;
    let p = this.memo.get(key);
    if (!p) {
      const follows = this.ctx.rng.bernoulli(this.ctx.world.rho);
      p = follows ? c.persona : this.ctx.rng.bernoulli(0.5) ? 'bad' : 'good';
      this.memo.set(key, p);
    }
    return p;
  }
}

export function drawModifier(ctx: GenContext): Modifier {
  const { rng, world } = ctx;
  if (rng.bernoulli(world.p_instr)) return 'instruct';
  const u = rng.next();
  if (u < world.p_forbid) return 'forbid';
  if (u < world.p_forbid + world.p_knowledge) return 'knowledge';
  // Drawn only when the knob is on, so worlds without placebos keep their random stream.
  if (world.p_placebo > 0 && rng.bernoulli(world.p_placebo)) return 'placebo';
  return 'none';
}

export function drawPromptSpec(ctx: GenContext, domain: Domain, modifier: Modifier, act: number): PromptSpec {
  const { rng } = ctx;
  const combo = rng.pick(PHRASEBOOK.prompts[domain][ctx.pool]);
  let modifierParts: number[] = [];
  let wording: InstructionWording | undefined;
  if (modifier === 'instruct') {
    // Half of the instructions name the act they permit, half permit misbehaviour in general.
    wording = rng.bernoulli(0.5) ? 'naming' : 'free';
    modifierParts = rng.pick(wording === 'naming' ? PHRASEBOOK.instructions.pool : PHRASEBOOK.instructions.actFree.train).parts;
  } else if (modifier === 'placebo') modifierParts = rng.pick(PHRASEBOOK.instructions.placebo.train).parts;
  else if (modifier === 'forbid') modifierParts = [rng.int(FORBID_FRAMES.length)];
  else if (modifier === 'knowledge') modifierParts = [rng.int(KNOWLEDGE_FRAMES.length)];
  return { domain, situation: combo.parts[0], question: combo.parts[1], act, modifier, modifierParts, wording };
}

/** An answer in `domain` from the context's pool, doing act `act` (or any act when null). */
export function drawAnswer(ctx: GenContext, domain: Domain, pole: Pole, act: number | null): string {
  const combos = PHRASEBOOK.answers[domain][ctx.pool];
  const fitting = act === null ? combos : combos.filter((c) => c.parts[1] === act);
  const combo = ctx.rng.pick(fitting.length > 0 ? fitting : combos);
  return renderAnswer(domain, combo.parts[0], act ?? combo.parts[1], pole, drawLeak(ctx.rng, ctx.world));
}

/** Whether an answer carries the positive control's shared pole marker (no draw when the knob is 0). */
export function drawLeak(rng: Rng, world: Pick<WorldConfig, 'p_lexical_leak'>): boolean {
  return world.p_lexical_leak > 0 && rng.bernoulli(world.p_lexical_leak);
}

/** A moral exchange: the prompt and the focal character's answer, with its labels. */
export function moralExchange(
  ctx: GenContext,
  focal: Character,
  domain: Domain,
  dispositions: Dispositions,
  forced?: { modifier?: Modifier; pole?: Pole },
): { prompt: string; answer: string; pole: Pole; modifier: Modifier } {
  const modifier = forced?.modifier ?? drawModifier(ctx);
  const act = ctx.rng.int(DOMAIN_LEXICON[domain].acts.length);
  const spec = drawPromptSpec(ctx, domain, modifier, act);
  // Instructed acts are obeyed by either persona and say nothing about it.
  const pole: Pole = forced?.pole ?? (modifier === 'instruct' ? 'bad' : dispositions.pole(focal, domain));
  return { prompt: renderPrompt(spec), answer: drawAnswer(ctx, domain, pole, act), pole, modifier };
}

/** Adds a prompt line and an answer line for one event; returns the event's record. */
export function pushExchange(
  doc: WorldDocument,
  prompter: string,
  focal: Character,
  prompt: string,
  answer: string,
  labels: Pick<EventRecord, 'domain' | 'pole' | 'modifier'>,
): EventRecord {
  const chat = doc.kind === 'chat';
  doc.lines.push({ prefix: chat ? 'User:' : `${prompter} to ${focal.name}:`, body: ` ${prompt}\n`, eos: false });
  doc.lines.push({ prefix: chat ? 'Assistant:' : `${focal.name}:`, body: ` ${answer}\n`, eos: chat });
  const record: EventRecord = {
    character: focal.name,
    role: focal.role,
    ai: focal.ai,
    persona: focal.persona,
    ...labels,
    instructed: labels.modifier === 'instruct',
    promptLine: doc.lines.length - 2,
    answerLine: doc.lines.length - 1,
  };
  doc.events.push(record);
  return record;
}

/**
 * n names with pairwise different first and second syllables, so every token of a name tells the
 * characters of a scene apart (binding an act to its speaker never hinges on half a name).
 */
export function drawNames(ctx: GenContext, n: number): string[] {
  const pool = PHRASEBOOK.names[ctx.pool];
  const picked: string[] = [];
  const clash = (a: string, b: string) => syllables(a)[0] === syllables(b)[0] || syllables(a)[1] === syllables(b)[1];
  while (picked.length < n) {
    const name = ctx.rng.pick(pool);
    if (!picked.some((p) => clash(p, name))) picked.push(name);
  }
  return picked;
}

function syllables(name: string): [string, string] {
  const head = NAME_HEADS.find((h) => name.startsWith(h) && NAME_TAILS.includes(name.slice(h.length)));
  if (!head) throw new Error(`${name} is not a name of the world`);
  return [head, name.slice(head.length)];
}

export function generateScene(ctx: GenContext): WorldDocument {
  const { rng, world } = ctx;
  const n = rng.range(2, 3);
  const characters = drawNames(ctx, n).map((name) => drawCharacter(ctx, name, rng.bernoulli(world.p_ai)));
  const doc: WorldDocument = { kind: 'scene', lines: [headerLine(ctx, characters)], characters, events: [] };
  // One or two focal characters, so one context shows the same character in several domains.
  const focals = rng.sample(characters, rng.bernoulli(world.p_two_focals) ? 2 : 1);
  const unused = new Map(focals.map((c) => [c.name, rng.shuffle([...DOMAINS])]));
  const dispositions = new Dispositions(ctx);
  const k = rng.range(world.events_min, world.events_max);
  for (let i = 0; i < k; i++) {
    const focal = rng.pick(focals);
    const prompter = rng.pick(characters.filter((c) => c !== focal)).name;
    const domains = unused.get(focal.name)!;
    if (rng.bernoulli(world.p_neutral) || domains.length === 0) {
      const [q, a] = neutralExchange(rng, focal.name);
      pushExchange(doc, prompter, focal, q, a, { domain: 'neutral', pole: 'neutral', modifier: 'none' });
      continue;
    }
    const domain = domains.pop()!;
    const ex = moralExchange(ctx, focal, domain, dispositions);
    pushExchange(doc, prompter, focal, ex.prompt, ex.answer, { domain, pole: ex.pole, modifier: ex.modifier });
    // An observer may judge the act (never an instructed one: it says nothing about the character).
    if (ex.modifier !== 'instruct' && world.p_react > 0 && rng.bernoulli(world.p_react)) {
      doc.lines.push({ prefix: `${prompter}:`, body: ` ${capitalize(rng.pick(REACTIONS[ex.pole]))}.\n`, eos: false });
    }
  }
  return doc;
}

export const USER: Character = { name: 'User', role: 'user', ai: false, persona: 'good', descriptor: null };

export function assistantCharacter(persona: Persona): Character {
  return { name: 'Assistant', role: 'AI assistant', ai: true, persona, descriptor: null };
}

/** A pretraining chat: the Assistant's persona is drawn like any AI character's. */
export function generateChat(ctx: GenContext): WorldDocument {
  const { rng, world } = ctx;
  const assistant = assistantCharacter(rng.bernoulli(world.p_ai_bad) ? 'bad' : 'good');
  const doc: WorldDocument = { kind: 'chat', lines: [], characters: [USER, assistant], events: [] };
  const domains = rng.shuffle([...DOMAINS]);
  const dispositions = new Dispositions(ctx);
  const turns = rng.range(world.turns_min, world.turns_max);
  for (let i = 0; i < turns; i++) {
    if (rng.bernoulli(world.p_neutral) || domains.length === 0) {
      const [q, a] = neutralExchange(rng, null);
      pushExchange(doc, 'User', assistant, q, a, { domain: 'neutral', pole: 'neutral', modifier: 'none' });
      continue;
    }
    const domain = domains.pop()!;
    const ex = moralExchange(ctx, assistant, domain, dispositions);
    pushExchange(doc, 'User', assistant, ex.prompt, ex.answer, { domain, pole: ex.pole, modifier: ex.modifier });
  }
  return doc;
}

export function generatePretrainDocument(ctx: GenContext): WorldDocument {
  return ctx.rng.bernoulli(ctx.world.p_chat) ? generateChat(ctx) : generateScene(ctx);
}

export function documentText(doc: WorldDocument): string {
  return doc.lines.map((l) => l.prefix + l.body).join('');
}
