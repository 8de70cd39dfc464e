/**
 * Experiment specs (models/experiments/*.json): the worlds (and sweeps that derive more worlds
 * from the first), the model preset, each stage's settings, the conditions and instruction
 * families, the seeds, and the narrow step the report leads with (declared before the run).
 * A spec is checked against a strict schema: an unknown key, a wrong type, a duplicate world or
 * a preset that does not exist is a one-line error naming the key.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { PRECISIONS } from '../backend/product-precision.js';
import { resolveWorld, type WorldConfig } from '../world/world-config.js';
import { CONDITIONS, INSTRUCTION_FAMILIES, type Condition, type InstructionFamily } from '../world/finetune-sets.js';
import { loadModelPreset } from '../model/model-config.js';
import { InterventionsSchema } from './interventions-spec.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const EXPERIMENTS_DIR = `${ROOT}models/experiments/`;
export const EXPERIMENT_PRESETS = ['quick', 'full', 'interventions'];
/** Knobs a sweep may vary: each value adds a world, the first world with that one knob changed. */
export const SWEEP_KNOBS = ['rho', 'p_instr', 'p_ai_bad', 'p_lexical_leak'] as const;
export type SweepKnob = (typeof SWEEP_KNOBS)[number];

const seeds = z.array(z.int().min(0)).min(1).refine((xs) => new Set(xs).size === xs.length, 'seeds must not repeat');
const positive = z.int().min(1);
const learningRate = z.number().positive().max(1).optional();

const SpecSchema = z.strictObject({
  name: z.string().regex(/^[\w.-]+$/, 'must be a short identifier (letters, digits, . _ -)'),
  description: z.string().default(''),
  preset: z.string().refine((p) => /^[\w.-]+$/.test(p) && existsSync(`${ROOT}models/${p}.json`), 'must name a model preset in models/ (tiny, small, medium)'),
  worlds: z
    .array(z.strictObject({ name: z.string().regex(/^[\w.=-]+$/, 'must be a short identifier'), world: z.record(z.string(), z.number()).default({}), seeds: seeds.optional() }))
    .min(1),
  sweeps: z.strictObject(Object.fromEntries(SWEEP_KNOBS.map((k) => [k, z.array(z.number().min(0).max(1)).min(1).optional()])) as Record<SweepKnob, z.ZodOptional<z.ZodArray<z.ZodNumber>>>).default({}),
  /** The control world for the generic part of EM (rho = 0 and p_instr = 0). */
  null_world: z.string(),
  /** Give every listed world with rho > 0 its rho-0 twin (same other knobs, same pretraining seeds). */
  twins: z.boolean().default(true),
  /** Give sweep worlds with rho > 0 their rho-0 twins too. */
  sweep_twins: z.boolean().default(false),
  pretrain_seeds: seeds,
  /** Pretraining seeds of sweep worlds and their twins [pretrain_seeds]. */
  sweep_pretrain_seeds: seeds.optional(),
  finetune_seeds: seeds,
  conditions: z.array(z.enum(CONDITIONS)).min(1),
  /** Instruction families of the cheat-inoculated condition, each its own arm; the first is the headline. */
  inoculation_families: z.array(z.enum(INSTRUCTION_FAMILIES)).min(1).default(['act-free']),
  data: z.strictObject({ tokens: positive, narrow_examples: positive, assistant_examples: positive }),
  /** Pretraining tokens, peak learning rate and sequences per step [SPEC_PRETRAIN_BATCH: 16]. */
  pretrain: z.strictObject({ tokens: positive, lr: learningRate, batch: positive.optional() }),
  assistant: z.strictObject({ steps: positive, lr: learningRate }),
  narrow: z.strictObject({
    steps: positive,
    lr: learningRate,
    eval_steps: z.array(positive).min(1),
    examples: z.array(positive).min(1),
    /** Narrow runs checkpoint this often, so a killed experiment resumes them mid-run [25]. */
    checkpoint_interval: positive.default(25),
  }),
  /** The narrow step the report's headline numbers use, declared before the run (all steps are shown beside it). */
  report_step: positive,
  evaluate: z.strictObject({ samples: z.int().min(0) }),
  /**
   * How the training stages' products run: fp32 (the default) or bf16 (native backend; see
   * --precision). Never auto: an experiment's numbers must not depend on the CPU that ran it. Cell
   * ids include it only when it is not fp32, so fp32 cells keep the ids they had before it existed.
   */
  precision: z.enum(PRECISIONS).default('fp32'),
  /** Causal tests of the persona hypothesis on one world's lineages (see interventions-spec.ts). */
  interventions: InterventionsSchema.optional(),
});

export type ExperimentSpec = z.infer<typeof SpecSchema>;

export interface ResolvedWorld {
  name: string;
  config: WorldConfig;
  /** world: listed in the spec; sweep: derived by a sweep; twin: the rho-0 twin of another; null: the null world. */
  role: 'world' | 'sweep' | 'twin' | 'null';
  /** The rho-0 twin's name (worlds with rho > 0 when twins are on). */
  twin?: string;
  seeds: number[];
}

export class SpecError extends Error {
  override name = 'SpecError';
}

export function loadSpec(nameOrPath: string): ExperimentSpec {
  if (typeof nameOrPath !== 'string') throw new SpecError(`--spec must be given once, got ${JSON.stringify(nameOrPath)}`);
  const isPath = nameOrPath.endsWith('.json') || nameOrPath.includes('/');
  if (!isPath && !EXPERIMENT_PRESETS.includes(nameOrPath)) throw new SpecError(`unknown experiment "${nameOrPath}"; choose ${EXPERIMENT_PRESETS.join(', ')} or pass a spec JSON file`);
  const path = isPath ? nameOrPath : `${EXPERIMENTS_DIR}${nameOrPath}.json`;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new SpecError(`${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `not valid JSON (${(err as Error).message})`}`);
  }
  return validateSpec(raw, path);
}

/** Check a parsed spec; every problem is a one-line SpecError naming the key. */
export function validateSpec(raw: unknown, source: string): ExperimentSpec {
  const parsed = SpecSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue.path.length ? `"${issue.path.join('.')}"` : 'spec';
    const message = issue.code === 'unrecognized_keys' ? `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}` : issue.message;
    throw new SpecError(`${source}: ${where}: ${message}`);
  }
  const s = parsed.data;
  const fail = (m: string): never => {
    throw new SpecError(`${source}: ${m}`);
  };
  const names = s.worlds.map((w) => w.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) fail(`two worlds are named "${dup}"; give each world its own name`);
  const configs = new Map<string, string>();
  for (const w of s.worlds) {
    let config: WorldConfig;
    try {
      config = resolveWorld(w.world, `world "${w.name}"`);
    } catch (err) {
      return fail((err as Error).message);
    }
    const key = JSON.stringify(config);
    if (configs.has(key)) fail(`worlds "${configs.get(key)}" and "${w.name}" have the same settings; remove one (a world's results are keyed by its settings)`);
    configs.set(key, w.name);
  }
  if (!names.includes(s.null_world)) fail(`"null_world" must name one of the worlds (${names.join(', ')})`);
  const nul = resolveWorld(s.worlds.find((w) => w.name === s.null_world)!.world);
  if (nul.rho !== 0 || nul.p_instr !== 0) fail(`the null world "${s.null_world}" must have rho 0 and p_instr 0 (it has rho ${nul.rho}, p_instr ${nul.p_instr})`);
  for (const c of ['fair', 'cheat'] as const) if (!s.conditions.includes(c)) fail(`"conditions" must include ${c} (the EM effect is cheat minus fair)`);
  if (new Set(s.conditions).size !== s.conditions.length) fail('"conditions" must not repeat');
  if (new Set(s.inoculation_families).size !== s.inoculation_families.length) fail('"inoculation_families" must not repeat');
  if (s.narrow.eval_steps.some((x) => x > s.narrow.steps)) fail('"narrow.eval_steps" cannot exceed narrow.steps');
  if (!s.narrow.eval_steps.includes(s.report_step)) fail(`"report_step" (${s.report_step}) must be one of narrow.eval_steps (${s.narrow.eval_steps.join(', ')})`);
  if (s.interventions) checkInterventions(s, fail);
  return s;
}

/** The narrow arms of a spec: one per condition, the cheat-inoculated condition once per instruction family. */
export interface Arm {
  /** The arm's label in every table: the condition, or "cheat+<family>" for cheat-inoculated. */
  name: string;
  condition: Condition;
  family: InstructionFamily | null;
}

export function armsOf(spec: Pick<ExperimentSpec, 'conditions' | 'inoculation_families'>): Arm[] {
  return spec.conditions.flatMap((condition): Arm[] =>
    condition === 'cheat-inoculated' ? spec.inoculation_families.map((family) => ({ name: armName(condition, family), condition, family })) : [{ name: condition, condition, family: null }],
  );
}

export function armName(condition: Condition, family: InstructionFamily | null): string {
  return condition === 'cheat-inoculated' ? `cheat+${family}` : condition;
}

/**
 * The spec's worlds, the sweeps' derived worlds, and every rho > 0 world's rho-0 twin. A sweep value
 * that reproduces an existing world adds nothing; a twin that reproduces an existing world is that
 * world (trained with the union of the seeds both need).
 */
export function expandWorlds(spec: ExperimentSpec): ResolvedWorld[] {
  const out: ResolvedWorld[] = [];
  const byConfig = new Map<string, ResolvedWorld>();
  const add = (name: string, partial: Partial<WorldConfig>, role: ResolvedWorld['role'], seeds: number[]): ResolvedWorld => {
    const config = resolveWorld(partial);
    const key = JSON.stringify(config);
    const existing = byConfig.get(key);
    if (existing) {
      existing.seeds = [...new Set([...existing.seeds, ...seeds])].sort((a, b) => a - b);
      return existing;
    }
    const w: ResolvedWorld = { name, config, role, seeds: [...seeds] };
    byConfig.set(key, w);
    out.push(w);
    return w;
  };
  for (const w of spec.worlds) add(w.name, w.world, w.name === spec.null_world ? 'null' : 'world', w.seeds ?? spec.pretrain_seeds);
  const first = spec.worlds[0].world;
  for (const knob of SWEEP_KNOBS) for (const v of spec.sweeps[knob] ?? []) add(`${knob}=${v}`, { ...first, [knob]: v }, 'sweep', spec.sweep_pretrain_seeds ?? spec.pretrain_seeds);
  if (spec.twins || spec.sweep_twins) {
    for (const w of [...out]) {
      if (w.role === 'null' || w.config.rho === 0 || (w.role === 'world' && !spec.twins) || (w.role === 'sweep' && !spec.sweep_twins)) continue;
      const twin = add(`${w.name}-rho0`, { ...w.config, rho: 0 }, 'twin', w.seeds);
      w.twin = twin.name;
    }
  }
  return out;
}

/** The interventions section against the rest of the spec: its world, seeds, arms, layers and steps exist. */
function checkInterventions(s: ExperimentSpec, fail: (m: string) => never): void {
  const iv = s.interventions!;
  const world = expandWorlds(s).find((w) => w.name === iv.world);
  if (!world) fail(`"interventions.world" must name a world of the spec (${expandWorlds(s).map((w) => w.name).join(', ')}), got "${iv.world}"`);
  for (const seed of iv.pretrain_seeds ?? []) if (!world!.seeds.includes(seed)) fail(`"interventions.pretrain_seeds": world "${iv.world}" is not trained with seed ${seed} (its seeds: ${world!.seeds.join(', ')})`);
  if (iv.finetune_seed !== undefined && !s.finetune_seeds.includes(iv.finetune_seed)) fail(`"interventions.finetune_seed" must be one of finetune_seeds (${s.finetune_seeds.join(', ')})`);
  const nLayer = loadModelPreset(s.preset).n_layer;
  if (iv.layer >= nLayer) fail(`"interventions.layer" ${iv.layer} does not exist; preset ${s.preset} has layers 0 to ${nLayer - 1}`);
  if (iv.ablate && iv.ablate.layers !== 'all') for (const l of iv.ablate.layers) if (l >= nLayer) fail(`"interventions.ablate.layers": layer ${l} does not exist; preset ${s.preset} has layers 0 to ${nLayer - 1}`);
  const arms = armsOf(s).map((a) => a.name);
  for (const arm of iv.steer?.arms ?? []) if (!arms.includes(arm)) fail(`"interventions.steer.arms": "${arm}" is not an arm of the spec (${arms.join(', ')})`);
  if (iv.early_warning_step !== undefined && !s.narrow.eval_steps.includes(iv.early_warning_step)) fail(`"interventions.early_warning_step" (${iv.early_warning_step}) must be one of narrow.eval_steps (${s.narrow.eval_steps.join(', ')})`);
}