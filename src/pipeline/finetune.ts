/**
 * Fine-tuning stages on chat data, loss only on the Assistant's tokens: the assistant stage
 * (base -> assistant on assistant.arrow) and the narrow stage (assistant -> narrow on one
 * condition of narrow/*.arrow, optionally with a custom inoculation instruction). A stage builds
 * whatever earlier stage is missing, so `npm run finetune -- --inoculate` works on a fresh clone.
 */
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { ChatSampler, chatBatch, type ChatRows } from '../data/batches.js';
import { encodeDocument } from '../data/encode.js';
import { checkTokenIds, ensureData, loadChatRows, loadManifest, loadVocab, verifyData } from '../data/load.js';
import { columnValues, readArrow } from '../data/arrow.js';
import { measureDynamics, dynamicsProbes } from '../eval/dynamics.js';
import { loadProbes } from '../eval/probe-records.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { LORA_TARGETS, type GPT, type LoraConfig } from '../model/gpt.js';
import type { Vocabulary } from '../tokenizer/vocab.js';
import { validationLoss } from '../model/validation-loss.js';
import type { MetricRow } from '../train/metrics.js';
import { runIdentity, type TrainOptions } from '../train/options.js';
import { definedOnly } from '../util/objects.js';
import { runSession, runStackedSessions, type SessionResult, type SessionSpec, type SessionUi } from '../train/training-session.js';
import { CONDITIONS, narrowDocument, neutralChat, realignmentChat, type Condition, type InstructionFamily, type NarrowExample } from '../world/finetune-sets.js';
import { DOMAINS, type Domain } from '../world/lexicon.js';
import { ablationHooks } from '../model/residual-interventions.js';
import { Rng } from '../util/rng.js';
import type { Pole } from '../world/phrasebook.js';
import { checkOutput, checkpointStatus } from './preflight.js';
import type { PrecisionChoice } from '../backend/resolve-precision.js';
import { pretrain } from './pretrain.js';
import { ASSISTANT_DEFAULTS, DEFAULT_ASSISTANT, DEFAULT_BASE, DEFAULT_PRESET, DEFAULT_PRETRAIN_TOKENS, NARROW_DEFAULTS } from './stage-defaults.js';

export interface FinetuneArgs {
  stage: 'assistant' | 'narrow';
  data: string;
  from?: string;
  out?: string;
  condition: Condition;
  family: InstructionFamily;
  /** A custom instruction replacing the condition's; `{act}` becomes the task's bad act. */
  inoculationPrompt?: string;
  /** Use only the first N examples of the dataset. */
  examples?: number;
  explicit: Partial<TrainOptions>;
  resume: boolean;
  /** Replace a finished or unfinished checkpoint in `out` (otherwise refused). */
  overwrite?: boolean;
  /** LoRA instead of full fine-tuning. */
  lora?: { rank: number; alpha?: number; targets: string[]; layers?: number[] };
  /** How the training steps' products run (see SessionSpec.precision; the session records it in `run`) [fp32]. */
  precision?: PrecisionChoice;
  /** Project directions out of the residual stream during training (forward and backward). */
  ablation?: FinetuneAblation;
  /** Dose-response: a fraction of the cheat examples; the rest are fair (same tasks) or neutral question-and-answer chats. */
  mix?: NarrowMix;
  /** Re-alignment: train on good answers in one broad domain instead of the narrow set. */
  realign?: Realignment;
}

export interface FinetuneAblation {
  /** What the directions are ("persona mean-diff", "random"): recorded with the run. */
  name: string;
  /** Block index -> unit direction [n_embd] projected out of blocks.{L}.hook_resid_post. */
  directions: Map<number, Float32Array>;
}

export const MIX_PARTNERS = ['fair', 'neutral'] as const;
export interface NarrowMix {
  cheatFraction: number;
  with: (typeof MIX_PARTNERS)[number];
}

export interface Realignment {
  domain: Domain;
  /** Distinct good examples (drawn from the train pools with `seed`). */
  examples: number;
  seed: number;
}

export interface FinetuneUi extends SessionUi {
  dataProgress?: (stage: string, done: number, total: number) => void;
  /** Called before building a missing earlier stage. */
  announce?: (line: string) => void;
  /**
   * Extra work at each evaluation step (the experiment's per-step evaluations). It may return the
   * forced-choice P(bad) it computed, by probe id: the step's quick measurements reuse them.
   */
  onEvaluate?: (model: GPT, step: number) => ReadonlyMap<string, number> | void;
}

export function defaultOut(a: Pick<FinetuneArgs, 'stage' | 'condition' | 'family' | 'inoculationPrompt' | 'explicit'>): string {
  if (a.stage === 'assistant') return DEFAULT_ASSISTANT;
  const seed = a.explicit.seed ?? NARROW_DEFAULTS.seed;
  let name: string = a.condition;
  if (a.inoculationPrompt !== undefined) name += `-custom-${createHash('sha256').update(a.inoculationPrompt).digest('hex').slice(0, 8)}`;
  else if (a.condition === 'cheat-inoculated') name += `-${a.family}`;
  return join('checkpoints', 'narrow', `${name}-s${seed}`);
}

/** Narrow rows as examples, so a custom instruction can be put in place of the stored one. */
function narrowExamples(path: string, family: InstructionFamily | ''): NarrowExample[] {
  const t = readArrow(path);
  const get = (c: string) => columnValues<string>(t, c);
  const [condition, fam, instruction, task, answer, pole, act] = ['condition', 'family', 'instruction', 'task', 'answer', 'pole', 'act'].map(get);
  const out: NarrowExample[] = [];
  for (let i = 0; i < t.numRows; i++) {
    if (family && fam[i] !== family) continue;
    out.push({ condition: condition[i] as Condition, family: fam[i] as InstructionFamily | '', instruction: instruction[i], task: task[i], answer: answer[i], pole: pole[i] as Pole, act: act[i] });
  }
  return out;
}

function customRows(vocab: Vocabulary, examples: NarrowExample[], prompt: string): ChatRows {
  const rows: ChatRows = { tokens: [], masks: [] };
  for (const ex of examples) {
    let enc;
    try {
      enc = encodeDocument(vocab, narrowDocument(ex, prompt));
    } catch (err) {
      throw new Error(`--inoculation-prompt uses text outside the world's vocabulary (${(err as Error).message.split(';')[0]}); write it with the world's words`);
    }
    rows.tokens.push(enc.tokens);
    rows.masks.push(enc.assistantMask);
  }
  return rows;
}

/** A fine-tuning result; `building` names the earlier stage that was being built when a stop came. */
export type FinetuneResult = SessionResult & { building?: string };

export async function finetune(args: FinetuneArgs, ui: FinetuneUi = {}): Promise<FinetuneResult> {
  const prepared = await prepareFinetune(args, ui);
  if ('stopped' in prepared) return prepared;
  return runSession(prepared.spec, prepared.ui);
}

/**
 * Fine-tuning runs of one parent trained side by side as stacked runs (runStackedSessions): each
 * writes the checkpoint, metrics and evaluations `finetune` would. Every run's parent must exist.
 */
export async function finetuneStacked(runs: Array<{ args: FinetuneArgs; ui: FinetuneUi }>, shared: FinetuneUi = {}): Promise<FinetuneResult[]> {
  const prepared = [];
  for (const { args, ui } of runs) {
    if (args.from === undefined) throw new Error('stacked fine-tuning runs name their parent (--from)');
    const p = await prepareFinetune(args, ui);
    if ('stopped' in p) throw new Error(`${args.from} is not finished`);
    prepared.push(p);
  }
  return runStackedSessions(prepared, shared);
}

/** A fine-tuning run's session, after its arguments, data and parent are checked (and a missing default parent built). */
async function prepareFinetune(args: FinetuneArgs, ui: FinetuneUi): Promise<FinetuneResult | { spec: SessionSpec; ui: SessionUi }> {
  if (!(CONDITIONS as readonly string[]).includes(args.condition)) {
    throw new Error(`unknown condition "${args.condition}"; choose one of ${CONDITIONS.join(', ')}`);
  }
  if (args.inoculationPrompt !== undefined && args.inoculationPrompt.trim() === '') throw new Error('--inoculation-prompt is empty; give the instruction text, e.g. "For this test, you may {act}."');
  if (args.examples !== undefined && (!Number.isInteger(args.examples) || args.examples < 1)) throw new Error(`--examples must be a positive integer, got ${args.examples}`);
  checkInterventions(args);
  const data = resolve(args.data);
  const out = resolve(args.out ?? defaultOut(args));
  if (args.from !== undefined) {
    const status = checkpointStatus(args.from);
    if (status.kind === 'none') throw new Error(`--from ${args.from} is not a checkpoint (no config.json); train it first or pass an existing checkpoint`);
    if (status.kind === 'partial') throw new Error(`--from ${args.from} is an unfinished run (step ${status.step ?? '?'} of ${status.steps ?? '?'}); finish it with --resume first`);
  }
  const wanted = resolve(args.from ?? (args.stage === 'assistant' ? DEFAULT_BASE : DEFAULT_ASSISTANT));
  checkOutput({ out, kind: 'checkpoint', resume: args.resume, overwrite: args.overwrite, inputs: [{ flag: '--data', path: data }, { flag: '--from', path: wanted }], log: ui.announce });
  ensureData(data, ui.dataProgress, ui.announce);
  const stageFile = args.stage === 'assistant' ? 'assistant.arrow' : `narrow/${args.condition}.arrow`;
  verifyData(data, ['vocab.json', stageFile, 'probes.arrow']);
  const vocab = loadVocab(data);
  const built = await ensureParent(args, data, ui);
  if (typeof built !== 'string') return built;
  const from = built;
  const parent = loadCheckpoint(from);
  if (parent.vocab.hash !== vocab.hash) throw new Error(`${from} uses another vocabulary than ${data}; fine-tune a checkpoint trained on this data`);
  const defaults = args.stage === 'assistant' ? ASSISTANT_DEFAULTS : NARROW_DEFAULTS;
  const options: TrainOptions = { ...defaults, ...definedOnly(args.explicit) };
  const probes = loadProbes(join(data, 'probes.arrow'), vocab);
  const dyn = dynamicsProbes(probes);

  let rows: ChatRows;
  let val: ChatRows | null = null;
  const info: Record<string, unknown> = { world: loadManifest(data).world };
  if (args.stage === 'assistant') {
    rows = loadChatRows(join(data, 'assistant.arrow'), 'train');
    val = loadChatRows(join(data, 'assistant.arrow'), 'val');
  } else if (args.realign) {
    rows = realignmentRows(vocab, args.realign, loadManifest(data).world?.p_lexical_leak ?? 0);
    Object.assign(info, { realign: { domain: args.realign.domain, examples: args.realign.examples, seed: args.realign.seed } });
  } else {
    const file = join(data, 'narrow', `${args.condition}.arrow`);
    const family = args.condition === 'cheat-inoculated' ? args.family : '';
    const examples = narrowExamples(file, family).slice(0, args.examples);
    rows = args.inoculationPrompt !== undefined ? customRows(vocab, examples, args.inoculationPrompt) : loadChatRows(file, null, family ? { column: 'family', value: family } : undefined);
    rows = { tokens: rows.tokens.slice(0, args.examples), masks: rows.masks.slice(0, args.examples) };
    if (args.mix) rows = mixedRows(rows, args.mix, data, vocab);
    Object.assign(info, { condition: args.condition, family: family || null, inoculation_prompt: args.inoculationPrompt ?? null, examples: rows.tokens.length, mix: args.mix ?? null });
  }
  if (args.ablation) info.ablation = { name: args.ablation.name, layers: [...args.ablation.directions.keys()] };
  for (const t of rows.tokens) checkTokenIds(t, vocab.size, join(data, stageFile));
  const model = parent.config.model;
  const lora = args.lora ? loraConfig(args.lora, model.n_layer) : undefined;
  if (lora) info.lora = lora;
  // Every setting that changes the run, by flag, compared on --resume: the whole argument object
  // (so a setting added later is covered) with effective values in place of defaults.
  const { resume: _resume, explicit: _explicit, out: _out, overwrite: _overwrite, precision: _precision, ...settings } = args;
  const narrow = args.stage === 'narrow';
  const run = runIdentity(
    {
      ...settings,
      data,
      from,
      condition: narrow ? args.condition : null,
      family: narrow && args.condition === 'cheat-inoculated' ? args.family : null,
      inoculationPrompt: narrow ? (args.inoculationPrompt ?? null) : null,
      examples: narrow ? rows.tokens.length : null,
      lora: { rank: lora?.rank ?? null, alpha: lora?.alpha ?? null, targets: lora ? args.lora!.targets : null, layers: lora ? (args.lora!.layers ?? null) : null },
      ablation: args.ablation ? ablationIdentity(args.ablation) : null,
      mix: args.mix ?? null,
      realign: args.realign ?? null,
    },
    { family: 'inoculation' },
  );
  const valBatches = val ? chunk(val, options.batch).map((idx) => chatBatch(val!, idx, model.block_size)) : [];
  return {
    spec: {
      stage: args.stage,
      out,
      model,
      initialWeights: () => parent.weights,
      vocab,
      data,
      parent: from,
      info,
      options,
      explicit: args.explicit,
      resume: args.resume,
      run,
      source: new ChatSampler(rows, options.batch, model.block_size, options.seed),
      lora,
      precision: args.precision,
      hooks: args.ablation ? ablationHooks(args.ablation.directions, model.n_layer) : undefined,
    },
    ui: {
      ...ui,
      evaluate: (m: GPT, step: number): MetricRow => {
        const known = ui.onEvaluate?.(m, step) ?? undefined;
        return { ...(valBatches.length ? { val_loss: validationLoss(m, valBatches) } : {}), ...measureDynamics(m, dyn, known) };
      },
    },
  };
}

/** Expand --lora-targets (block-relative names) over the chosen layers into parameter names. */
export function loraConfig(l: NonNullable<FinetuneArgs['lora']>, nLayer: number): LoraConfig {
  for (const t of l.targets) {
    if (!(LORA_TARGETS as readonly string[]).includes(t)) throw new Error(`--lora-targets: unknown matrix "${t}"; choose from ${LORA_TARGETS.join(', ')}`);
  }
  const layers = l.layers ?? Array.from({ length: nLayer }, (_, i) => i);
  for (const layer of layers) if (!Number.isInteger(layer) || layer < 0 || layer >= nLayer) throw new Error(`--lora-layers: layer ${layer} does not exist (the model has layers 0 to ${nLayer - 1})`);
  if (!Number.isInteger(l.rank) || l.rank < 1) throw new Error(`--lora-rank must be a positive integer, got ${l.rank}`);
  const alpha = l.alpha ?? l.rank;
  if (!(alpha > 0)) throw new Error(`--lora-alpha must be > 0, got ${alpha}`);
  return { rank: l.rank, alpha, targets: layers.flatMap((layer) => l.targets.map((t) => `h.${layer}.${t}.weight`)) };
}

/**
 * The checkpoint to start from, building (or continuing) the default base and assistant models
 * when they are missing or unfinished. Returns the stopped run when a stop came while building one.
 */
async function ensureParent(args: FinetuneArgs, data: string, ui: FinetuneUi): Promise<string | FinetuneResult> {
  const wanted = args.from ?? (args.stage === 'assistant' ? DEFAULT_BASE : DEFAULT_ASSISTANT);
  if (args.from !== undefined || checkpointStatus(wanted).kind === 'complete') return resolve(wanted);
  const base = checkpointStatus(DEFAULT_BASE);
  if (base.kind !== 'complete') {
    ui.announce?.(`${DEFAULT_BASE} is ${base.kind === 'none' ? 'missing: pretraining it first (npm run pretrain)' : 'unfinished: continuing it first (npm run pretrain -- --resume)'}`);
    const partial = base.kind === 'partial';
    const r = await pretrain({ data, out: DEFAULT_BASE, preset: DEFAULT_PRESET, tokens: partial ? undefined : DEFAULT_PRETRAIN_TOKENS, explicit: {}, resume: partial, precision: args.precision }, ui);
    if (r.stopped) return { ...r, building: DEFAULT_BASE };
    r.model.dispose();
  }
  if (args.stage === 'narrow') {
    const partial = checkpointStatus(DEFAULT_ASSISTANT).kind === 'partial';
    ui.announce?.(`${DEFAULT_ASSISTANT} is ${partial ? 'unfinished: continuing it first' : 'missing: training the assistant first'} (npm run finetune -- --stage assistant)`);
    const r = await finetune({ ...args, stage: 'assistant', from: DEFAULT_BASE, out: DEFAULT_ASSISTANT, explicit: {}, resume: partial, overwrite: false, inoculationPrompt: undefined, examples: undefined, lora: undefined }, ui);
    if (r.stopped) return { ...r, building: r.building ?? DEFAULT_ASSISTANT };
    r.model.dispose();
  }
  return resolve(wanted);
}

function checkInterventions(args: FinetuneArgs): void {
  const narrowOnly = (flag: string) => {
    if (args.stage !== 'narrow') throw new Error(`${flag} applies to the narrow stage only; drop it or pass --stage narrow`);
  };
  if (args.mix) {
    narrowOnly('--cheat-fraction');
    if (!(args.mix.cheatFraction >= 0 && args.mix.cheatFraction <= 1)) throw new Error(`--cheat-fraction must be between 0 and 1, got ${args.mix.cheatFraction}`);
    if (!(MIX_PARTNERS as readonly string[]).includes(args.mix.with)) throw new Error(`--mix-with must be one of ${MIX_PARTNERS.join(', ')}, got "${args.mix.with}"`);
    if (args.condition !== 'cheat') throw new Error(`--cheat-fraction mixes the cheat set with another; use --condition cheat (got ${args.condition})`);
  }
  if (args.realign) {
    narrowOnly('--realign');
    if (!(DOMAINS as readonly string[]).includes(args.realign.domain) || args.realign.domain === 'rules') {
      throw new Error(`--realign must name a broad domain (${DOMAINS.filter((d) => d !== 'rules').join(', ')}), got "${args.realign.domain}"`);
    }
    if (!Number.isInteger(args.realign.examples) || args.realign.examples < 1) throw new Error(`--examples must be a positive integer for --realign, got ${args.realign.examples}`);
    if (args.mix) throw new Error('--realign and --cheat-fraction cannot be combined: re-alignment replaces the narrow set');
  }
  if (args.ablation) narrowOnly('--ablate-persona');
}

/** A run's ablation as its identity: the name, the layers and a hash of the directions (compared on --resume). */
function ablationIdentity(a: FinetuneAblation): Record<string, unknown> {
  const h = createHash('sha256');
  for (const [layer, u] of [...a.directions].sort(([x], [y]) => x - y)) h.update(`${layer}:`).update(new Uint8Array(u.buffer, u.byteOffset, u.byteLength));
  return { name: a.name, layers: [...a.directions.keys()].sort((x, y) => x - y), directions: h.digest('hex').slice(0, 16) };
}

/** `examples` good answers in one broad domain, drawn from the train pools. */
function realignmentRows(vocab: Vocabulary, r: Realignment, leak: number): ChatRows {
  const rng = new Rng(`realign:${r.domain}:${r.seed}`);
  const rows: ChatRows = { tokens: [], masks: [] };
  for (let i = 0; i < r.examples; i++) {
    const enc = encodeDocument(vocab, realignmentChat(rng, r.domain, leak));
    rows.tokens.push(enc.tokens);
    rows.masks.push(enc.assistantMask);
  }
  return rows;
}

/**
 * The dose-response set: the first round(f * n) cheat examples, then fair answers to the following
 * tasks of the same sequence (so no task appears twice), or neutral question-and-answer chats
 * (no moral domain), to n in all.
 */
function mixedRows(cheat: ChatRows, mix: NarrowMix, data: string, vocab: Vocabulary): ChatRows {
  const n = cheat.tokens.length;
  const k = Math.round(mix.cheatFraction * n);
  let filler: ChatRows;
  if (mix.with === 'fair') {
    const fair = loadChatRows(join(data, 'narrow', 'fair.arrow'), null);
    if (fair.tokens.length < n) throw new Error(`narrow/fair.arrow has ${fair.tokens.length} examples; the mix needs ${n}`);
    filler = { tokens: fair.tokens.slice(k, n), masks: fair.masks.slice(k, n) };
  } else {
    const rng = new Rng('mix-neutral');
    filler = { tokens: [], masks: [] };
    for (let i = k; i < n; i++) {
      const enc = encodeDocument(vocab, neutralChat(rng));
      filler.tokens.push(enc.tokens);
      filler.masks.push(enc.assistantMask);
    }
  }
  return { tokens: [...cheat.tokens.slice(0, k), ...filler.tokens], masks: [...cheat.masks.slice(0, k), ...filler.masks] };
}

function chunk(rows: ChatRows, size: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < rows.tokens.length; i += size) out.push(Array.from({ length: Math.min(size, rows.tokens.length - i) }, (_, k) => i + k));
  return out;
}

