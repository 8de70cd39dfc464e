/**
 * Evaluate one checkpoint on the held-out probes (DESIGN.md section 4): forced choice and sampled
 * answers on broad and narrow probes, in-context persona inference, the persona probe, and
 * validation losses. Every number lands in rows; the summary is computed from those rows.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chatBatch, fixedWindows } from '../data/batches.js';
import { loadChatRows, loadPretrainStreams } from '../data/load.js';
import { sampleCached } from '../model/cached-sample.js';
import { scoreChoices } from '../model/choice-scores.js';
import { forcedChoice } from '../model/generate.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { GPT } from '../model/gpt.js';
import { SPECIAL_TOKENS, type Vocabulary } from '../tokenizer/vocab.js';
import { validationLoss } from '../model/validation-loss.js';
import { Rng } from '../util/rng.js';
import { withKnown } from '../util/with-known.js';
import { classifyAnswer } from '../world/matcher.js';
import { activations, activationsAt, applyProbe, assistantSites, clusteredAccuracy, fitLogistic, sitesFromFile, type LogisticProbe } from './persona-probe.js';
import { loadProbes, type ProbeRecord } from './probe-records.js';
import type { EvalRow } from './eval-rows.js';

export interface EvaluateOptions {
  /** Sampled answers per broad and narrow probe (0 = forced choice only). */
  samples: number;
  seed: number;
  /** Residual layer of the persona probe (default: the middle). */
  layer?: number;
  /** probes.arrow to use (default: the data folder's). */
  probes?: string;
  /** The data folder (default: the one the checkpoint was trained on). */
  data?: string;
  /** Train the persona probe on the lineage's pretrained base (default) or on the checkpoint itself. */
  probeSource: 'base' | 'self';
  /** Narrow prompt variants to sample (default: all); forced choice always covers every probe. */
  sampleVariants?: string[];
  /** A persona probe fitted earlier (skips fitting one). */
  personaProbe?: LogisticProbe;
  /**
   * Forced-choice rows already computed for this very checkpoint (its training run's evaluation
   * at its last step): the probes they cover (same kind and probe id) are not scored again.
   */
  scored?: EvalRow[];
}

export const DEFAULT_EVALUATE: EvaluateOptions = { samples: 8, seed: 0, probeSource: 'base' };

export interface EvaluationResult {
  label: string;
  rows: EvalRow[];
  stage: string;
}

const probeCache = new Map<string, LogisticProbe>();

/**
 * Parent links followed at most from a checkpoint to its pretrained ancestor. A lineage is at most
 * pretrain -> assistant -> narrow (-> re-alignment); the bound only stops a cycle of parent links
 * in hand-edited configs.
 */
const MAX_LINEAGE_HOPS = 10;

/** The pretrained ancestor of a checkpoint (following parent links), or the checkpoint itself. */
export function lineageBase(dir: string): string {
  let current = resolve(dir);
  for (let hops = 0; hops < MAX_LINEAGE_HOPS; hops++) {
    const c = loadCheckpoint(current).config;
    if (c.stage === 'pretrain' || !c.parent || !existsSync(c.parent)) return current;
    current = c.parent;
  }
  return current;
}

export function evaluateCheckpoint(dir: string, o: EvaluateOptions, log: (line: string) => void = () => {}): EvaluationResult {
  const ckpt = loadCheckpoint(dir);
  const label = dir;
  const data = resolve(o.data ?? ckpt.config.data);
  if (!existsSync(join(data, 'pretrain.arrow'))) throw new Error(`the data folder ${data} is missing; pass --data <folder> (the one the checkpoint was trained on)`);
  const probesPath = o.probes ?? join(data, 'probes.arrow');
  const probes = loadProbes(probesPath, ckpt.vocab);
  const model = new GPT(ckpt.config.model, ckpt.weights);
  const rows: EvalRow[] = [];
  try {
    // Each part's time goes to the log: seconds() since the previous call.
    let t = performance.now();
    const seconds = () => {
      const elapsed = (performance.now() - t) / 1000;
      t = performance.now();
      return `${elapsed.toFixed(1)} s`;
    };
    const choice = probes.filter((p) => p.kind === 'broad' || p.kind === 'narrow' || p.kind === 'inference');
    const known = new Map((o.scored ?? []).filter((r) => r.sample === -1).map((r) => [`${r.kind}|${r.probe_id}`, { ...r, checkpoint: label }]));
    const knownRow = (p: ProbeRecord) => known.get(`${p.kind}|${probeId(p)}`);
    rows.push(...withKnown(choice, knownRow, (missing) => forcedChoiceRows(model, missing, label)));
    const reused = choice.filter(knownRow).length;
    log(`forced choice: ${rows.length} probes${reused ? ` (${rows.length - reused} scored, ${reused} from the training run's last evaluation)` : ''}, ${seconds()}`);
    const toSample = probes.filter((p) => p.kind === 'broad' || (p.kind === 'narrow' && (!o.sampleVariants || o.sampleVariants.includes(p.variant))));
    if (o.samples > 0) {
      rows.push(...sampledRows(model, ckpt.vocab, toSample, o, label));
      log(`sampled: ${toSample.length * o.samples} answers, ${seconds()}`);
    }
    rows.push(...personaRows(model, ckpt.vocab, dir, data, o, label, log));
    log(`persona probe: ${seconds()}`);
    rows.push(...coherenceRows(model, data, label));
    log(`coherence: ${seconds()}`);
  } finally {
    model.dispose();
  }
  return { label, rows, stage: ckpt.config.stage };
}

/** Forced-choice P(bad) for each probe (total and length-normalised likelihood). */
export function forcedChoiceRows(model: GPT, probes: ProbeRecord[], label: string): EvalRow[] {
  const scores = scoreChoices(model, probes.map((p) => ({ context: p.context, continuations: [p.good, p.bad] })));
  return probes.map((p, i) => {
    const [g, b] = scores[i];
    return {
      checkpoint: label, probe_id: probeId(p), kind: p.kind as EvalRow['kind'], domain: p.domain, variant: p.variant, subject: p.subject, sample: -1, prompt: p.text,
      answer: '', class: '', value: forcedChoice(g, b), value_norm: forcedChoice(g, b, true), truth: p.trueBad,
    };
  });
}

/** The persona score: the probe's P(bad persona) at the Assistant's turn after neutral prompts. */
export function personaScoreRows(model: GPT, vocab: Vocabulary, probe: LogisticProbe, label: string): EvalRow[] {
  const sites = assistantSites(vocab);
  return applyProbe(probe, activations(model, sites, probe.layer)).map((value, i) => ({
    checkpoint: label, probe_id: `assistant-neutral-${i}`, kind: 'persona', domain: `layer ${probe.layer}`, variant: 'assistant-neutral', subject: 'assistant',
    sample: -1, prompt: vocab.decode(sites[i].tokens, { specials: false }), answer: '', class: '', value, value_norm: null, truth: null,
  }));
}

/** Fit the persona probe on a model's activations at pretraining characters of the data's val split. */
export function fitPersonaProbe(model: GPT, data: string, layer: number): LogisticProbe {
  const train = sitesFromFile(join(data, 'pretrain.arrow'), ['scene'], PROBE_FIT_SCENES, 'val');
  return fitLogistic(activations(model, train, layer), train.map((s) => s.label), model.config.n_embd, layer);
}

/** Scenes of the pretraining validation split the persona probe is fitted on. */
export const PROBE_FIT_SCENES = 800;
/** Held-out scenes (probes.arrow) and held-out chat transcripts (pretraining validation split) the probe is validated on. */
export const PROBE_HELDOUT_SCENES = 300;
export const PROBE_HELDOUT_CHATS = 300;

export interface LayerValidation {
  layer: number;
  /** Accuracy on held-out scenes' characters, interval clustered by scene. */
  scenes: ReturnType<typeof clusteredAccuracy>;
  /** Accuracy at the Assistant's turns of held-out pretraining chat transcripts (known persona): where the probe is applied. */
  chats: ReturnType<typeof clusteredAccuracy>;
}

/**
 * A persona probe at every layer, validated on held-out scenes and on held-out chat transcripts'
 * Assistant turns; the probe returned is the layer with the best held-out scene accuracy.
 */
export function selectPersonaProbe(model: GPT, data: string): { probe: LogisticProbe; validation: LayerValidation[] } {
  const train = sitesFromFile(join(data, 'pretrain.arrow'), ['scene'], PROBE_FIT_SCENES, 'val');
  const scenes = sitesFromFile(join(data, 'probes.arrow'), ['scene'], PROBE_HELDOUT_SCENES);
  // Transcripts of the validation split never enter training; their Assistant has a known persona.
  const chats = sitesFromFile(join(data, 'pretrain.arrow'), ['chat'], PROBE_HELDOUT_CHATS, 'val');
  let best: { probe: LogisticProbe; acc: number } | null = null;
  const validation: LayerValidation[] = [];
  // Every layer's activations from one pass over each set of sites.
  const layers = Array.from({ length: model.config.n_layer }, (_, l) => l);
  const [trainActs, sceneActs, chatActs] = [train, scenes, chats].map((sites) => activationsAt(model, sites, layers));
  for (const layer of layers) {
    const probe = fitLogistic(trainActs[layer], train.map((s) => s.label), model.config.n_embd, layer);
    const v: LayerValidation = {
      layer,
      scenes: clusteredAccuracy(applyProbe(probe, sceneActs[layer]), scenes),
      chats: clusteredAccuracy(applyProbe(probe, chatActs[layer]), chats),
    };
    validation.push(v);
    if (!best || v.scenes.accuracy > best.acc) best = { probe, acc: v.scenes.accuracy };
  }
  return { probe: best!.probe, validation };
}

function probeId(p: ProbeRecord): string {
  return p.kind === 'inference' ? `g${p.group}:${p.variant}` : p.id;
}

/** Tokens sampled per answer at most: the world's longest answer is 11 tokens with its line end, so anything longer is incoherent anyway. */
const MAX_ANSWER_TOKENS = 16;

function sampledRows(model: GPT, vocab: Vocabulary, probes: ProbeRecord[], o: EvaluateOptions, label: string): EvalRow[] {
  const lineEnd = new Set<number>();
  for (let id = SPECIAL_TOKENS.length; id < vocab.size; id++) if (vocab.decode([id]).includes('\n')) lineEnd.add(id);
  const prompts = probes.flatMap((p) => Array.from({ length: o.samples }, () => p.context));
  const outs = sampleCached(model, prompts, { maxNewTokens: MAX_ANSWER_TOKENS, temperature: 1, topK: 0, rng: new Rng(`evaluate:${o.seed}`), stopAtNewline: (t) => lineEnd.has(t) });
  return outs.map((tokens, i) => {
    const p = probes[Math.floor(i / o.samples)];
    const answer = vocab.decode(tokens, { specials: false });
    return {
      checkpoint: label, probe_id: p.id, kind: p.kind as EvalRow['kind'], domain: p.domain, variant: p.variant, subject: p.subject,
      sample: i % o.samples, prompt: p.text, answer, class: classifyAnswer(p.domain, answer), value: null, value_norm: null, truth: null,
    };
  });
}

function personaRows(model: GPT, vocab: Vocabulary, dir: string, data: string, o: EvaluateOptions, label: string, log: (l: string) => void): EvalRow[] {
  const layer = o.layer;
  if (layer !== undefined && (!Number.isInteger(layer) || layer < 0 || layer >= model.config.n_layer)) throw new Error(`--layer ${layer} does not exist; the model has layers 0 to ${model.config.n_layer - 1}`);
  const source = o.probeSource === 'base' ? lineageBase(dir) : resolve(dir);
  const key = `${source}|${layer ?? 'best'}`;
  let probe = o.personaProbe ?? probeCache.get(key);
  if (!probe) {
    const sourceCkpt = source === resolve(dir) ? null : loadCheckpoint(source);
    const sourceModel = sourceCkpt ? new GPT(sourceCkpt.config.model, sourceCkpt.weights) : model;
    // Without --layer: the layer whose probe is most accurate on held-out scenes.
    probe = layer === undefined ? selectPersonaProbe(sourceModel, data).probe : fitPersonaProbe(sourceModel, data, layer);
    if (sourceCkpt) sourceModel.dispose();
    probeCache.set(key, probe);
    log(`persona probe: layer ${probe.layer}${layer === undefined ? ' (best held-out accuracy)' : ''}, fitted on ${source}`);
  }
  const heldOut = sitesFromFile(join(data, 'probes.arrow'), ['scene'], PROBE_HELDOUT_SCENES);
  const heldScores = applyProbe(probe, activations(model, heldOut, probe.layer));
  return [
    ...heldScores.map((value, i): EvalRow => ({
      checkpoint: label, probe_id: `heldout-scene-${i}`, kind: 'persona', domain: `layer ${probe.layer}`, variant: 'heldout-scene', subject: 'human',
      sample: -1, prompt: '', answer: '', class: '', value, value_norm: null, truth: heldOut[i].label,
    })),
    ...personaScoreRows(model, vocab, probe, label),
  ];
}

/**
 * Coherence is the validation loss on COHERENCE_BATCHES batches of COHERENCE_BATCH_SIZE pretraining
 * windows and on every assistant validation chat, in batches of the same size: fixed inputs, so
 * checkpoints compare on the same text.
 */
const COHERENCE_BATCHES = 8;
const COHERENCE_BATCH_SIZE = 16;

function coherenceRows(model: GPT, data: string, label: string): EvalRow[] {
  const out: EvalRow[] = [];
  const row = (variant: string, value: number): EvalRow => ({
    checkpoint: label, probe_id: `val-${variant}`, kind: 'coherence', domain: '', variant, subject: '', sample: -1, prompt: '', answer: '', class: '', value, value_norm: null, truth: null,
  });
  const streams = loadPretrainStreams(data);
  out.push(row('pretrain', validationLoss(model, fixedWindows(streams.val, COHERENCE_BATCHES, COHERENCE_BATCH_SIZE, model.config.block_size))));
  const chats = loadChatRows(join(data, 'assistant.arrow'), 'val');
  const batches = [];
  for (let i = 0; i < chats.tokens.length; i += COHERENCE_BATCH_SIZE) {
    batches.push(chatBatch(chats, Array.from({ length: Math.min(COHERENCE_BATCH_SIZE, chats.tokens.length - i) }, (_, k) => i + k), model.config.block_size));
  }
  out.push(row('assistant', validationLoss(model, batches)));
  return out;
}
