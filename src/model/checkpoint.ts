/**
 * Checkpoints: one folder per run with the model config, the compact vocabulary, the weights in
 * tfjs's weights-manifest format (model.json + weights.bin), the optimizer state, LoRA adapters
 * when there are any (adapters.json + adapters.bin, also merged into the weights), the loop state
 * (step, RNG states, data position) and the metrics log. A checkpoint is written to a temporary
 * folder and swapped in whole, so a crash never leaves a half-written one.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { replaceDirAtomic, writeBytesAtomic } from '../util/atomic-files.js';
import { checksumFolder, verifyChecksums } from '../util/fs.js';
import { Vocabulary } from '../tokenizer/vocab.js';
import { validateModelConfig, type ModelConfig } from './model-config.js';
import { parameterShapes, type LoraConfig } from './gpt.js';

export const CHECKPOINT_FORMAT = 'persona-testbed-checkpoint/1';

interface WeightSpec {
  name: string;
  shape: number[];
  dtype: 'float32';
}

interface WeightsManifestFile {
  format: string;
  weightsManifest: Array<{ paths: string[]; weights: WeightSpec[] }>;
}

/** What a checkpoint's config.json holds besides the model config. */
export interface CheckpointConfig {
  format: typeof CHECKPOINT_FORMAT;
  stage: string;
  model: ModelConfig;
  vocab_hash: string;
  /** The training options of the run (compared on --resume). */
  train: Record<string, unknown>;
  /** The data folder, and the checkpoint this run started from. */
  data: string;
  parent: string | null;
  /** Facts about the run (world, condition, ...). */
  info: Record<string, unknown>;
  /** Every setting besides `train` that changes the run, by flag (compared on --resume). */
  run?: Record<string, unknown>;
  /** sha256 of every other file of the folder, written by saveCheckpoint and verified on load. */
  files?: Record<string, string>;
}

/** Named float32 tensors, as saved in a weights manifest. */
export type TensorSet = Map<string, { shape: number[]; values: Float32Array }>;

export interface Checkpoint {
  config: CheckpointConfig;
  vocab: Vocabulary;
  /** The model's weights (with any adapters merged in). */
  weights: Map<string, Float32Array>;
  /** Optimizer moments of whatever was trained (m/<name>, v/<name>). */
  optimizer: { step: number; moments: TensorSet } | null;
  /** LoRA adapters, saved apart from the merged weights. */
  adapters: { config: LoraConfig; tensors: TensorSet } | null;
  state: Record<string, unknown>;
  /** The metrics log as Arrow bytes (src/train/metrics.ts reads it). */
  metrics: Uint8Array | null;
}

/** Write `json` (a tfjs weights manifest, plus `extra` fields) and `bin` (the values in manifest order). */
function writeTensorSet(dir: string, json: string, bin: string, set: TensorSet, extra: Record<string, unknown> = {}): void {
  let total = 0;
  for (const t of set.values()) total += t.values.length;
  const flat = new Float32Array(total);
  const weights: WeightSpec[] = [];
  let pos = 0;
  for (const [name, t] of set) {
    if (t.values.length !== t.shape.reduce((a, b) => a * b, 1)) throw new Error(`tensor ${name} does not match its shape [${t.shape}]`);
    flat.set(t.values, pos);
    pos += t.values.length;
    weights.push({ name, shape: t.shape, dtype: 'float32' });
  }
  const manifest = { format: CHECKPOINT_FORMAT, ...extra, weightsManifest: [{ paths: [bin], weights }] };
  writeBytesAtomic(join(dir, json), JSON.stringify(manifest, null, 1) + '\n');
  writeBytesAtomic(join(dir, bin), new Uint8Array(flat.buffer));
}

function readTensorSet(dir: string, json: string, what: string): { set: TensorSet; manifest: Record<string, unknown> } {
  const manifest = readJson(join(dir, json), what) as WeightsManifestFile & Record<string, unknown>;
  const specs = manifest?.weightsManifest?.[0]?.weights;
  const bin = manifest?.weightsManifest?.[0]?.paths?.[0];
  if (!Array.isArray(specs) || typeof bin !== 'string') throw new Error(`${what}: ${json} has no weightsManifest (corrupt checkpoint)`);
  let bytes: Buffer;
  try {
    bytes = readFileSync(join(dir, bin));
  } catch {
    throw new Error(`${what}: ${bin} is missing (incomplete checkpoint)`);
  }
  const floats = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const set: TensorSet = new Map();
  let pos = 0;
  for (const spec of specs) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    if (pos + n > floats.length) throw new Error(`${what}: ${bin} is truncated (corrupt checkpoint)`);
    set.set(spec.name, { shape: spec.shape, values: floats.slice(pos, pos + n) });
    pos += n;
  }
  if (pos !== floats.length) throw new Error(`${what}: ${bin} has ${floats.length - pos} extra values (corrupt checkpoint)`);
  return { set, manifest };
}

function readJson(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new Error(`${what}: ${path} is missing (not a checkpoint folder, or an incomplete one)`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${what}: ${path} is not valid JSON (corrupt checkpoint)`);
  }
}

/** Write a whole checkpoint folder atomically. */
export function saveCheckpoint(dir: string, ckpt: Checkpoint): void {
  replaceDirAtomic(dir, (tmp) => {
    writeBytesAtomic(join(tmp, 'vocab.json'), JSON.stringify(ckpt.vocab.toJson()) + '\n');
    const weights: TensorSet = new Map();
    for (const [name, shape] of parameterShapes(ckpt.config.model)) {
      const values = ckpt.weights.get(name);
      if (!values) throw new Error(`missing weight ${name}`);
      weights.set(name, { shape, values });
    }
    writeTensorSet(tmp, 'model.json', 'weights.bin', weights);
    if (ckpt.optimizer) writeTensorSet(tmp, 'optimizer.json', 'optimizer.bin', ckpt.optimizer.moments, { step: ckpt.optimizer.step });
    if (ckpt.adapters) writeTensorSet(tmp, 'adapters.json', 'adapters.bin', ckpt.adapters.tensors, { lora: ckpt.adapters.config });
    writeBytesAtomic(join(tmp, 'state.json'), JSON.stringify(ckpt.state, null, 2) + '\n');
    if (ckpt.metrics) writeBytesAtomic(join(tmp, 'metrics.arrow'), ckpt.metrics);
    // Last, with the checksums of everything above.
    writeBytesAtomic(join(tmp, 'config.json'), JSON.stringify({ ...ckpt.config, files: checksumFolder(tmp) }, null, 2) + '\n');
  });
}

/** A checkpoint's config.json alone (the model's shape, its training settings), checked; no weights are read. */
export function loadCheckpointConfig(dir: string): CheckpointConfig {
  if (!existsSync(dir)) throw new Error(`checkpoint ${dir} does not exist`);
  const what = `checkpoint ${dir}`;
  const config = readJson(join(dir, 'config.json'), what) as CheckpointConfig;
  if (config?.format !== CHECKPOINT_FORMAT) throw new Error(`${what}: config.json is not a ${CHECKPOINT_FORMAT} config`);
  config.model = validateModelConfig(config.model, `${what}/config.json`);
  return config;
}

/** Load a checkpoint; every problem is one line naming the folder and what is wrong. */
export function loadCheckpoint(dir: string): Checkpoint {
  const what = `checkpoint ${dir}`;
  const config = loadCheckpointConfig(dir);
  const vocab = Vocabulary.fromJson(readJson(join(dir, 'vocab.json'), what), `${dir}/vocab.json`);
  if (vocab.hash !== config.vocab_hash) throw new Error(`${what}: vocab.json does not match config.json (corrupt checkpoint)`);
  if (vocab.size !== config.model.vocab_size) throw new Error(`${what}: vocabulary has ${vocab.size} tokens but the model expects ${config.model.vocab_size}`);
  const { set } = readTensorSet(dir, 'model.json', what);
  const expected = parameterShapes(config.model);
  const shapeOk = set.size === expected.length && expected.every(([name, shape]) => set.get(name)?.shape.join() === shape.join());
  if (!shapeOk) throw new Error(`${what}: weights do not match the model config (corrupt checkpoint)`);
  const weights = new Map([...set].map(([n, t]) => [n, t.values]));
  let optimizer: Checkpoint['optimizer'] = null;
  if (existsSync(join(dir, 'optimizer.json'))) {
    const o = readTensorSet(dir, 'optimizer.json', what);
    optimizer = { step: Number(o.manifest.step), moments: o.set };
  }
  let adapters: Checkpoint['adapters'] = null;
  if (existsSync(join(dir, 'adapters.json'))) {
    const a = readTensorSet(dir, 'adapters.json', what);
    adapters = { config: a.manifest.lora as LoraConfig, tensors: a.set };
  }
  const state = existsSync(join(dir, 'state.json')) ? (readJson(join(dir, 'state.json'), what) as Record<string, unknown>) : {};
  const metrics = existsSync(join(dir, 'metrics.arrow')) ? new Uint8Array(readFileSync(join(dir, 'metrics.arrow'))) : null;
  verifyChecksums(dir, config.files, what, 'the checkpoint is corrupt: retrain it, or restore the file');
  return { config, vocab, weights, optimizer, adapters, state, metrics };
}
