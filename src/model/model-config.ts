/** Model configuration and the presets in models/*.json (tiny for tests, small the default, medium). */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface ModelConfig {
  vocab_size: number;
  /** Context length. */
  block_size: number;
  n_layer: number;
  n_head: number;
  n_embd: number;
  /** Residual and embedding dropout (0 for pretraining on plentiful synthetic text). */
  dropout: number;
}

export const PRESETS = ['tiny', 'small', 'medium'] as const;
export type Preset = (typeof PRESETS)[number];

const MODELS_DIR = fileURLToPath(new URL('../../models/', import.meta.url));

function fail(source: string, message: string): never {
  throw new Error(`${source}: ${message}`);
}

/** Check a model config from any source (preset, checkpoint, user JSON). */
export function validateModelConfig(raw: unknown, source: string): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(source, 'expected a JSON object with n_layer, n_head, n_embd, block_size');
  const r = raw as Record<string, unknown>;
  const known = ['vocab_size', 'block_size', 'n_layer', 'n_head', 'n_embd', 'dropout'];
  for (const k of Object.keys(r)) if (!known.includes(k) && k !== 'description') fail(source, `unknown key "${k}" (known: ${known.join(', ')})`);
  const int = (k: string, min: number) => {
    const v = r[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) fail(source, `"${k}" must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    return v;
  };
  const cfg: ModelConfig = {
    vocab_size: r.vocab_size === undefined ? 0 : int('vocab_size', 1),
    block_size: int('block_size', 2),
    n_layer: int('n_layer', 1),
    n_head: int('n_head', 1),
    n_embd: int('n_embd', 1),
    dropout: r.dropout === undefined ? 0 : (r.dropout as number),
  };
  if (typeof cfg.dropout !== 'number' || cfg.dropout < 0 || cfg.dropout >= 1) fail(source, `"dropout" must be in [0, 1), got ${JSON.stringify(r.dropout)}`);
  if (cfg.n_embd % cfg.n_head !== 0) fail(source, `n_embd (${cfg.n_embd}) must be divisible by n_head (${cfg.n_head})`);
  return cfg;
}

/** Load a preset by name, or a model JSON by path. vocab_size is filled in from the data. */
export function loadModelPreset(nameOrPath: string): ModelConfig {
  const isPath = nameOrPath.endsWith('.json') || nameOrPath.includes('/');
  if (!isPath && !(PRESETS as readonly string[]).includes(nameOrPath)) {
    throw new Error(`unknown preset "${nameOrPath}"; choose ${PRESETS.join(', ')} or pass a JSON file`);
  }
  const path = isPath ? nameOrPath : `${MODELS_DIR}${nameOrPath}.json`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new Error(`cannot read model config ${path}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path}: not valid JSON (${(err as Error).message})`);
  }
  return validateModelConfig(parsed, path);
}

/** Parameters, without and with embeddings (GPT-2 counts exclude position embeddings in "non-embedding"). */
export function countParameters(c: ModelConfig): { total: number; nonEmbedding: number } {
  const perLayer = 4 * c.n_embd + 3 * c.n_embd * c.n_embd + 3 * c.n_embd + c.n_embd * c.n_embd + c.n_embd + 4 * c.n_embd * c.n_embd + 4 * c.n_embd + 4 * c.n_embd * c.n_embd + c.n_embd;
  const nonEmbedding = c.n_layer * perLayer + 2 * c.n_embd;
  return { total: nonEmbedding + c.vocab_size * c.n_embd + c.block_size * c.n_embd, nonEmbedding };
}
