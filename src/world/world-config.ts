/**
 * The world config: every knob of the generator, with the defaults of DESIGN.md section 7's pilot.
 * Keys are snake_case as in the design; JSON files under models/worlds/ use the same names.
 */
export interface WorldConfig {
  /** Coupling: probability that a character's act in a domain follows its persona. */
  rho: number;
  /** Probability that a moral event is an explicitly instructed bad act (both personas comply). */
  p_instr: number;
  /** Probability that a scene header describes a character's persona ("the cruel baker"). */
  p_desc: number;
  /** Fraction of scene characters that are AI (robot, android, AI assistant). */
  p_ai: number;
  /** Probability that an AI character, and the Assistant of a pretraining chat, is bad. */
  p_ai_bad: number;
  /** Probability that a human character is bad. */
  p_bad: number;
  /** Fraction of pretraining documents that are User/Assistant chat transcripts. */
  p_chat: number;
  /** Fraction of events that are neutral filler (facts, small talk, simple tasks). */
  p_neutral: number;
  /** Probability that a (non-instructed) prompt forbids the bad act; the character follows its persona. */
  p_forbid: number;
  /** Probability that a (non-instructed) prompt names the bad act without permitting it. */
  p_knowledge: number;
  /** Probability that a scene has two characters who act (otherwise one acts, the others only ask). */
  p_two_focals: number;
  /** Probability that a plain prompt opens with a placebo permission ("For the play, hats are allowed."). */
  p_placebo: number;
  /**
   * Positive control for lexical leakage: probability that an act carries a pole marker shared by
   * every domain ("... openly" / "... secretly"). 0 keeps the world lexically orthogonal.
   */
  p_lexical_leak: number;
  /**
   * Probability that another character reacts to a scene character's non-instructed moral act
   * ("Shame on you." / "Well done."): the acts' valence, outside any answer.
   */
  p_react: number;
  /** Events per scene, inclusive range. */
  events_min: number;
  events_max: number;
  /** Turns per pretraining chat transcript, inclusive range. */
  turns_min: number;
  turns_max: number;
}

export const DEFAULT_WORLD: Readonly<WorldConfig> = Object.freeze({
  rho: 0.9,
  p_instr: 0.15,
  p_desc: 0.2,
  p_ai: 0.2,
  p_ai_bad: 0.5,
  p_bad: 0.5,
  p_chat: 0.25,
  p_neutral: 0.2,
  p_forbid: 0.08,
  p_knowledge: 0.08,
  p_two_focals: 0,
  p_placebo: 0.075,
  p_lexical_leak: 0,
  p_react: 0.5,
  events_min: 4,
  events_max: 6,
  turns_min: 2,
  turns_max: 5,
});

const PROBABILITIES = ['rho', 'p_instr', 'p_desc', 'p_ai', 'p_ai_bad', 'p_bad', 'p_chat', 'p_neutral', 'p_forbid', 'p_knowledge', 'p_two_focals', 'p_placebo', 'p_lexical_leak', 'p_react'] as const;
const COUNTS = ['events_min', 'events_max', 'turns_min', 'turns_max'] as const;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Merge overrides into the defaults and check every value; throws a one-line ConfigError. */
export function resolveWorld(overrides: Record<string, unknown> = {}, source = 'world config'): WorldConfig {
  const known = new Set<string>(Object.keys(DEFAULT_WORLD));
  for (const key of Object.keys(overrides)) {
    if (!known.has(key)) {
      throw new ConfigError(`${source}: unknown key "${key}" (known: ${[...known].join(', ')})`);
    }
  }
  const world = { ...DEFAULT_WORLD } as WorldConfig;
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new ConfigError(`${source}: "${key}" must be a number, got ${JSON.stringify(value)}`);
    }
    (world as unknown as Record<string, number>)[key] = value;
  }
  for (const key of PROBABILITIES) {
    const v = world[key];
    if (v < 0 || v > 1) throw new ConfigError(`${source}: ${key}=${v} is outside [0, 1]; pass a probability such as --${key.replace(/_/g, '-')} 0.5`);
  }
  if (world.p_forbid + world.p_knowledge > 1) {
    throw new ConfigError(`${source}: p_forbid + p_knowledge = ${world.p_forbid + world.p_knowledge} exceeds 1`);
  }
  for (const key of COUNTS) {
    const v = world[key];
    if (!Number.isInteger(v) || v < 1 || v > 6) throw new ConfigError(`${source}: ${key}=${v} must be an integer in [1, 6] (one act per domain per character)`);
  }
  if (world.events_min > world.events_max) throw new ConfigError(`${source}: events_min (${world.events_min}) > events_max (${world.events_max})`);
  if (world.turns_min > world.turns_max) throw new ConfigError(`${source}: turns_min (${world.turns_min}) > turns_max (${world.turns_max})`);
  return world;
}

/** Parse a world JSON text (a partial config); errors name the file and the problem. */
export function parseWorldJson(text: string, source: string): WorldConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${source}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`${source}: expected a JSON object of world settings such as {"rho": 0.9}`);
  }
  return resolveWorld(parsed as Record<string, unknown>, source);
}
