/**
 * Experiment specs (models/experiments/*.json): the worlds (and sweeps that derive more worlds
 * from the default), the model preset, each stage's settings, the conditions, and the seeds.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { resolveWorld, type WorldConfig } from '../world/config.js';
import { CONDITIONS, type Condition, type InstructionFamily } from '../world/finetune-sets.js';

export interface ExperimentSpec {
  name: string;
  description: string;
  preset: string;
  worlds: Array<{ name: string; world: Partial<WorldConfig> }>;
  /** Each listed value of a knob adds a world: the default world with that one value changed. */
  sweeps: Partial<Record<'rho' | 'p_instr' | 'p_ai_bad', number[]>>;
  /** The control world for persona-driven EM (rho = 0, p_instr = 0). */
  null_world: string;
  pretrain_seeds: number[];
  finetune_seeds: number[];
  conditions: Condition[];
  inoculation_family: InstructionFamily;
  data: { tokens: number; narrow_examples: number; assistant_examples: number };
  pretrain: { tokens: number; lr?: number };
  assistant: { steps: number; lr?: number };
  narrow: { steps: number; lr?: number; eval_steps: number[]; examples: number[] };
  evaluate: { samples: number };
}

export interface ResolvedWorld {
  name: string;
  config: WorldConfig;
}

const EXPERIMENTS_DIR = fileURLToPath(new URL('../../models/experiments/', import.meta.url));
export const EXPERIMENT_PRESETS = ['quick', 'full'];

export function loadSpec(nameOrPath: string): ExperimentSpec {
  const isPath = nameOrPath.endsWith('.json') || nameOrPath.includes('/');
  if (!isPath && !EXPERIMENT_PRESETS.includes(nameOrPath)) throw new Error(`unknown experiment "${nameOrPath}"; choose ${EXPERIMENT_PRESETS.join(', ')} or pass a spec JSON file`);
  const path = isPath ? nameOrPath : `${EXPERIMENTS_DIR}${nameOrPath}.json`;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `not valid JSON (${(err as Error).message})`}`);
  }
  return validateSpec(raw, path);
}

export function validateSpec(raw: unknown, source: string): ExperimentSpec {
  const fail = (m: string): never => {
    throw new Error(`${source}: ${m}`);
  };
  if (typeof raw !== 'object' || raw === null) fail('expected a JSON object');
  const s = raw as ExperimentSpec;
  const ints = (xs: unknown, what: string, min = 0) => {
    if (!Array.isArray(xs) || xs.length === 0 || !xs.every((x) => Number.isInteger(x) && x >= min)) fail(`${what} must be a non-empty list of integers >= ${min}`);
  };
  if (typeof s.name !== 'string' || !/^[\w.-]+$/.test(s.name)) fail('"name" must be a short identifier (letters, digits, . _ -)');
  if (!Array.isArray(s.worlds) || s.worlds.length === 0) fail('"worlds" must list at least one world');
  for (const w of s.worlds) {
    if (typeof w.name !== 'string' || !/^[\w.=-]+$/.test(w.name)) fail(`world name ${JSON.stringify(w.name)} must be a short identifier`);
    resolveWorld(w.world ?? {}, `${source}: world "${w.name}"`);
  }
  for (const [k, values] of Object.entries(s.sweeps ?? {})) {
    if (!['rho', 'p_instr', 'p_ai_bad'].includes(k)) fail(`unknown sweep "${k}" (rho, p_instr, p_ai_bad)`);
    if (!Array.isArray(values) || values.some((v) => typeof v !== 'number' || v < 0 || v > 1)) fail(`sweep ${k} must be a list of probabilities`);
  }
  if (!s.worlds.some((w) => w.name === s.null_world)) fail(`"null_world" must name one of the worlds (${s.worlds.map((w) => w.name).join(', ')})`);
  ints(s.pretrain_seeds, '"pretrain_seeds"');
  ints(s.finetune_seeds, '"finetune_seeds"');
  if (!Array.isArray(s.conditions) || !s.conditions.every((c) => (CONDITIONS as readonly string[]).includes(c))) fail(`"conditions" must be a list of ${CONDITIONS.join(', ')}`);
  for (const c of ['fair', 'cheat'] as const) if (!s.conditions.includes(c)) fail(`"conditions" must include ${c} (the EM effect is cheat minus fair)`);
  if (!['pool', 'novel'].includes(s.inoculation_family)) fail('"inoculation_family" must be pool or novel');
  ints([s.data?.tokens, s.data?.narrow_examples, s.data?.assistant_examples], '"data" tokens and example counts', 1);
  ints([s.pretrain?.tokens], '"pretrain.tokens"', 1);
  ints([s.assistant?.steps], '"assistant.steps"', 1);
  ints([s.narrow?.steps], '"narrow.steps"', 1);
  ints(s.narrow?.eval_steps, '"narrow.eval_steps"', 1);
  if (s.narrow.eval_steps.some((x) => x > s.narrow.steps)) fail('"narrow.eval_steps" cannot exceed narrow.steps');
  ints(s.narrow?.examples, '"narrow.examples"', 1);
  ints([s.evaluate?.samples], '"evaluate.samples"');
  return { ...s, description: s.description ?? '', sweeps: s.sweeps ?? {} };
}

/** The spec's worlds plus the sweeps' derived worlds, without duplicates (by config). */
export function expandWorlds(spec: ExperimentSpec): ResolvedWorld[] {
  const out: ResolvedWorld[] = [];
  const seen = new Map<string, string>();
  const add = (name: string, partial: Partial<WorldConfig>) => {
    const config = resolveWorld(partial);
    const key = JSON.stringify(config);
    if (seen.has(key)) return;
    seen.set(key, name);
    out.push({ name, config });
  };
  for (const w of spec.worlds) add(w.name, w.world ?? {});
  const base = spec.worlds[0].world ?? {};
  for (const [knob, values] of Object.entries(spec.sweeps ?? {})) for (const v of values ?? []) add(`${knob}=${v}`, { ...base, [knob]: v });
  return out;
}

