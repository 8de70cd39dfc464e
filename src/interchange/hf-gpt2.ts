/**
 * Model interchange with Hugging Face GPT-2: a checkpoint becomes a safetensors file with
 * GPT2LMHeadModel's tensor names and layout, a GPT-2 config.json and the vocabulary mapping, and
 * such a file comes back as a checkpoint.
 *
 * The project's model is GPT-2's architecture with GPT-2's parameter names (src/model/gpt.ts), so
 * the mapping is a prefix: `wte` is `transformer.wte.weight`, `h.0.attn.c_attn.weight` is
 * `transformer.h.0.attn.c_attn.weight`. Matrices are already in GPT-2's Conv1D layout
 * (in_features, out_features), so nothing is transposed. The output head is tied to the token
 * embedding: like `save_pretrained`, the file holds no `lm_head.weight` and the config says
 * `tie_word_embeddings: true`. The MLP uses GELU's tanh approximation (`gelu_new`), LayerNorm eps
 * is 1e-5, attention is scaled by 1/sqrt(head_dim), and every linear layer and LayerNorm has a
 * bias. LoRA runs export their merged weights (what checkpoints hold). Token ids are the project's
 * compact ids, not GPT-2's: vocab_map.json beside the file maps them to cl100k_base ids.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { decode as bpeDecode } from 'gpt-tokenizer/encoding/cl100k_base';
import { writeBytesAtomic } from '../util/atomic-files.js';
import { CHECKPOINT_FORMAT, loadCheckpoint, saveCheckpoint, type Checkpoint } from '../model/checkpoint.js';
import { validateModelConfig, type ModelConfig } from '../model/model-config.js';
import { parameterShapes } from '../model/gpt.js';
import { SPECIAL_TOKENS, Vocabulary } from '../tokenizer/vocab.js';
import { readSafetensors, writeSafetensors, type NamedTensor } from './safetensors.js';

export const VOCAB_MAP_FILE = 'vocab_map.json';
export const HF_CONFIG_FILE = 'config.json';
const LAYER_NORM_EPS = 1e-5;
/** Hugging Face's names for GELU's tanh approximation (GPT-2's); the first is GPT-2's default. */
const TANH_GELU = ['gelu_new', 'gelu_pytorch_tanh', 'gelu_fast'];

/** The Hugging Face name of a project parameter. */
export function hfName(name: string): string {
  if (name === 'wte' || name === 'wpe') return `transformer.${name}.weight`;
  return `transformer.${name}`;
}

export interface VocabMap {
  format: 'persona-testbed-vocab-map/1';
  encoding: string;
  /** Special tokens and their ids. */
  specials: Record<string, number>;
  /** cl100k_base id of each model id (null for the special tokens). */
  cl100k: Array<number | null>;
  /** The text of each model id (the special tokens' names for them). */
  strings: string[];
  /** The project's vocabulary hash (checkpoints and datasets carry it). */
  hash: string;
}

export function vocabMap(vocab: Vocabulary): VocabMap {
  const json = vocab.toJson();
  return {
    format: 'persona-testbed-vocab-map/1',
    encoding: json.encoding,
    specials: Object.fromEntries(SPECIAL_TOKENS.map((s, i) => [s, i])),
    cl100k: [...SPECIAL_TOKENS.map(() => null), ...vocab.bpe],
    strings: [...SPECIAL_TOKENS, ...vocab.bpe.map((id) => bpeDecode([id]))],
    hash: vocab.hash,
  };
}

export function vocabFromMap(raw: unknown, source: string): Vocabulary {
  const m = raw as Partial<VocabMap>;
  if (m?.format !== 'persona-testbed-vocab-map/1' || !Array.isArray(m.cl100k)) throw new Error(`${source}: not a persona-testbed vocabulary map (format persona-testbed-vocab-map/1)`);
  const specials = m.cl100k.slice(0, SPECIAL_TOKENS.length);
  if (specials.some((s) => s !== null) || SPECIAL_TOKENS.some((s, i) => m.specials?.[s] !== i)) throw new Error(`${source}: the special tokens must be ${SPECIAL_TOKENS.join(', ')} at ids 0-2`);
  const bpe = m.cl100k.slice(SPECIAL_TOKENS.length);
  if (!bpe.every((id) => Number.isInteger(id))) throw new Error(`${source}: cl100k holds a non-integer id`);
  return Vocabulary.fromJson({ format: 'persona-testbed-vocab/1', encoding: m.encoding, specials: [...SPECIAL_TOKENS], bpe, hash: m.hash }, source);
}

/** A GPT-2 config.json for a model config, with what the project knows about the run beside it. */
export function hfConfig(ckpt: Checkpoint, source: string): Record<string, unknown> {
  const m = ckpt.config.model;
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: m.vocab_size,
    n_positions: m.block_size,
    n_ctx: m.block_size,
    n_embd: m.n_embd,
    n_layer: m.n_layer,
    n_head: m.n_head,
    n_inner: null,
    activation_function: 'gelu_new',
    resid_pdrop: m.dropout,
    embd_pdrop: m.dropout,
    attn_pdrop: 0,
    layer_norm_epsilon: LAYER_NORM_EPS,
    initializer_range: 0.02,
    scale_attn_weights: true,
    scale_attn_by_inverse_layer_idx: false,
    reorder_and_upcast_attn: false,
    tie_word_embeddings: true,
    bos_token_id: 1,
    eos_token_id: 2,
    pad_token_id: 0,
    use_cache: true,
    torch_dtype: 'float32',
    persona_testbed: {
      format: 'persona-testbed-hf-export/1',
      note: 'token ids are the compact ids of vocab_map.json (cl100k_base ids after <|pad|>, <|bos|>, <|eos|>), not GPT-2 ids; lm_head is tied to transformer.wte.weight; every linear layer and LayerNorm has a bias',
      bias: true,
      vocab_map: VOCAB_MAP_FILE,
      vocab_hash: ckpt.config.vocab_hash,
      checkpoint: source,
      stage: ckpt.config.stage,
      data: ckpt.config.data,
      parent: ckpt.config.parent,
      info: ckpt.config.info,
      lora_merged: ckpt.adapters !== null,
    },
  };
}

export interface ExportResult {
  file: string;
  config: string;
  vocab: string;
  tensors: number;
  bytes: number;
}

/** Export a checkpoint: FILE (safetensors), and config.json and vocab_map.json in FILE's folder. */
export function exportCheckpoint(checkpointDir: string, out: string): ExportResult {
  if (!out.endsWith('.safetensors')) throw new Error(`--out must name a .safetensors file, got ${out}`);
  const ckpt = loadCheckpoint(checkpointDir);
  const tensors = new Map<string, NamedTensor>();
  for (const [name, shape] of parameterShapes(ckpt.config.model)) tensors.set(hfName(name), { shape, values: ckpt.weights.get(name)! });
  writeSafetensors(out, tensors, { format: 'pt' });
  const dir = dirname(out);
  const config = join(dir, HF_CONFIG_FILE);
  const vocab = join(dir, VOCAB_MAP_FILE);
  writeBytesAtomic(config, JSON.stringify(hfConfig(ckpt, checkpointDir), null, 2) + '\n');
  writeBytesAtomic(vocab, JSON.stringify(vocabMap(ckpt.vocab)) + '\n');
  const bytes = readFileSync(out).length;
  return { file: out, config, vocab, tensors: tensors.size, bytes };
}

function readJsonFile(path: string, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new Error(`${what} ${path} is missing: it is written beside the .safetensors file by npm run export (pass --${what === 'config' ? 'config' : 'vocab'} to name another)`);
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error(`${path} is not valid JSON`);
  }
}

/** The project's model config from a GPT-2 config.json; refuses what the project's model cannot run. */
export function modelConfigFromHf(c: Record<string, unknown>, source: string): ModelConfig {
  const refuse = (why: string): never => {
    throw new Error(`${source}: ${why}; the project's GPT runs GPT-2's architecture only`);
  };
  if (c.model_type !== undefined && c.model_type !== 'gpt2') refuse(`model_type is ${JSON.stringify(c.model_type)}, not "gpt2"`);
  const act = c.activation_function ?? 'gelu_new';
  if (!TANH_GELU.includes(act as string)) refuse(`activation_function ${JSON.stringify(act)} is not GELU's tanh approximation (${TANH_GELU.join(', ')})`);
  const eps = c.layer_norm_epsilon ?? LAYER_NORM_EPS;
  if (eps !== LAYER_NORM_EPS) refuse(`layer_norm_epsilon is ${eps}, not ${LAYER_NORM_EPS}`);
  if (c.n_inner !== undefined && c.n_inner !== null && c.n_inner !== 4 * (c.n_embd as number)) refuse(`n_inner is ${c.n_inner}, not 4 * n_embd`);
  if (c.tie_word_embeddings === false) refuse('tie_word_embeddings is false (the output head must be the token embedding)');
  if (c.scale_attn_by_inverse_layer_idx === true) refuse('scale_attn_by_inverse_layer_idx is set');
  if (c.scale_attn_weights === false) refuse('scale_attn_weights is false');
  return validateModelConfig({
    vocab_size: c.vocab_size,
    block_size: c.n_positions,
    n_layer: c.n_layer,
    n_head: c.n_head,
    n_embd: c.n_embd,
    dropout: typeof c.resid_pdrop === 'number' ? c.resid_pdrop : 0,
  }, source);
}

export interface ImportOptions {
  /** config.json and vocab_map.json, by default beside the file. */
  config?: string;
  vocab?: string;
  /** The data folder the checkpoint's commands use (default: the one recorded at export, else data/default). */
  data?: string;
}

/** Weights by project name from a file's tensors (with or without the `transformer.` prefix). */
function projectWeights(file: ReturnType<typeof readSafetensors>, model: ModelConfig, source: string): Map<string, Float32Array> {
  const byName = new Map(file.tensors);
  const take = (hf: string) => {
    const t = byName.get(hf) ?? byName.get(hf.replace(/^transformer\./, ''));
    byName.delete(hf);
    byName.delete(hf.replace(/^transformer\./, ''));
    return t;
  };
  const weights = new Map<string, Float32Array>();
  for (const [name, shape] of parameterShapes(model)) {
    const t = take(hfName(name));
    if (!t) throw new Error(`${source}: tensor ${hfName(name)} is missing`);
    if (t.shape.join() !== shape.join()) throw new Error(`${source}: ${hfName(name)} has shape [${t.shape}], the config needs [${shape}] (GPT-2's Conv1D layout: in_features, out_features)`);
    weights.set(name, t.values);
  }
  const head = byName.get('lm_head.weight');
  if (head) {
    byName.delete('lm_head.weight');
    const wte = weights.get('wte')!;
    if (head.values.length !== wte.length || head.values.some((v, i) => !Object.is(v, wte[i]))) {
      throw new Error(`${source}: lm_head.weight differs from transformer.wte.weight; the project's output head is tied to the token embedding`);
    }
  }
  // Older GPT-2 files carry the causal mask as buffers; they hold no parameters.
  for (const name of [...byName.keys()]) if (/(^|\.)attn\.(masked_)?bias$/.test(name)) byName.delete(name);
  if (byName.size) throw new Error(`${source}: tensors the GPT-2 architecture does not have: ${[...byName.keys()].slice(0, 5).join(', ')}`);
  return weights;
}

export interface ImportResult {
  out: string;
  model: ModelConfig;
  stage: string;
  data: string;
}

/** Import a GPT-2 safetensors file (with its config.json and vocab_map.json) as a checkpoint folder. */
export function importSafetensors(from: string, out: string, o: ImportOptions = {}): ImportResult {
  const file = readSafetensors(from);
  const dir = dirname(from);
  const configPath = o.config ?? join(dir, HF_CONFIG_FILE);
  const hf = readJsonFile(configPath, 'config');
  const model = modelConfigFromHf(hf, configPath);
  const vocabPath = o.vocab ?? join(dir, VOCAB_MAP_FILE);
  const vocab = vocabFromMap(readJsonFile(vocabPath, 'vocab'), vocabPath);
  if (vocab.size !== model.vocab_size) throw new Error(`${vocabPath} has ${vocab.size} tokens but ${configPath} says vocab_size ${model.vocab_size}`);
  const weights = projectWeights(file, model, from);
  const meta = (hf.persona_testbed ?? {}) as Record<string, unknown>;
  const data = o.data ?? (typeof meta.data === 'string' && existsSync(meta.data) ? meta.data : resolve('data/default'));
  const stage = typeof meta.stage === 'string' ? meta.stage : 'imported';
  const info = { ...((meta.info as Record<string, unknown>) ?? {}), imported_from: resolve(from), exported_from: meta.checkpoint ?? null };
  const ckpt: Checkpoint = {
    config: { format: CHECKPOINT_FORMAT, stage, model, vocab_hash: vocab.hash, train: {}, data, parent: null, info },
    vocab,
    weights,
    optimizer: null,
    adapters: null,
    state: { imported: basename(from) },
    metrics: null,
  };
  saveCheckpoint(out, ckpt);
  return { out, model, stage, data };
}
