/** Reading a world's data folder back: vocabulary, manifest, token streams and chat rows. */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Vocabulary } from '../tokenizer/vocab.js';
import { recoverSwap, verifyChecksums } from '../util/fs.js';
import { resolveWorld } from '../world/world-config.js';
import { columnValues, readArrow, readListColumn, requireColumns } from './arrow.js';
import type { ChatRows } from './batches.js';
import { buildDatasets, DEFAULT_DATA_OPTIONS, type DataManifest, type Progress } from './build.js';

export function dataExists(dir: string): boolean {
  return existsSync(join(dir, 'manifest.json'));
}

/**
 * Build the default world's data into `dir` when it is missing (what a fresh clone needs). An
 * interrupted swap of `dir` is completed first; a file, or a folder holding something other than
 * a dataset, is refused rather than replaced.
 */
export function ensureData(dir: string, progress?: Progress, log?: (line: string) => void): void {
  for (const line of recoverSwap(dir)) log?.(line);
  if (dataExists(dir)) return;
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new Error(`--data ${dir} is a file, not a data folder; pass a folder made by npm run data`);
    if (readdirSync(dir).length > 0) throw new Error(`--data ${dir} is not a data folder (no manifest.json) and is not empty; pass a folder made by npm run data, or a new path to generate one`);
  }
  log?.(`${dir} is missing: generating the default world's data first (npm run data)`);
  buildDatasets(dir, { ...DEFAULT_DATA_OPTIONS, world: resolveWorld() }, progress);
}

export function loadManifest(dir: string): DataManifest {
  const path = join(dir, 'manifest.json');
  if (!existsSync(path)) throw new Error(`${dir} has no manifest.json; generate it with npm run data -- --out ${dir}`);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as DataManifest;
  } catch {
    throw new Error(`${path} is not valid JSON; regenerate the data with npm run data -- --out ${dir} --overwrite`);
  }
}

/**
 * Check the data files a stage reads (paths relative to `dir`) against the manifest's sha256
 * checksums; the error names the file. Data written before checksums existed is not checked.
 */
export function verifyData(dir: string, files: string[]): void {
  const manifest = loadManifest(dir);
  verifyChecksums(dir, manifest.checksums, `data ${dir}`, `regenerate the data with npm run data -- --out ${dir} --overwrite`, files);
}

/** Every token id must be inside the vocabulary; the error names the file (corrupt bytes would otherwise fail deep in the model). */
export function checkTokenIds(values: ArrayLike<number>, vocabSize: number, path: string): void {
  for (let i = 0; i < values.length; i++) {
    if (values[i] >= vocabSize) throw new Error(`${path}: token id ${values[i]} at position ${i} is outside the vocabulary (${vocabSize} tokens): the file is corrupt; regenerate the data with npm run data --overwrite`);
  }
}

export function loadVocab(dir: string): Vocabulary {
  const path = join(dir, 'vocab.json');
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw new Error(`${path} is missing or unreadable; regenerate the data with npm run data -- --out ${dir} --overwrite`);
  }
  return Vocabulary.fromJson(json, path);
}

/** The pretraining token streams: every document of a split, concatenated (each starts with BOS). */
export function loadPretrainStreams(dir: string): { train: Uint16Array; val: Uint16Array } {
  const path = join(dir, 'pretrain.arrow');
  const table = readArrow(path);
  requireColumns(table, ['split', 'tokens'], path);
  const split = columnValues<string>(table, 'split');
  const { values, offsets } = readListColumn(table, 'tokens');
  checkTokenIds(values, loadVocab(dir).size, path);
  const gather = (want: string) => {
    let n = 0;
    for (let i = 0; i < split.length; i++) if (split[i] === want) n += offsets[i + 1] - offsets[i];
    const out = new Uint16Array(n);
    let pos = 0;
    for (let i = 0; i < split.length; i++) {
      if (split[i] !== want) continue;
      out.set(values.subarray(offsets[i], offsets[i + 1]), pos);
      pos += offsets[i + 1] - offsets[i];
    }
    return out;
  };
  return { train: gather('train'), val: gather('val') };
}

/** Chat rows (tokens + loss mask) of a fine-tuning file, filtered by split and an optional predicate on other columns. */
export function loadChatRows(path: string, split: string | null, where?: { column: string; value: string }): ChatRows & { texts: string[] } {
  const table = readArrow(path);
  requireColumns(table, ['split', 'tokens', 'mask', 'text'], path);
  const splits = columnValues<string>(table, 'split');
  const texts = columnValues<string>(table, 'text');
  const filter = where ? columnValues<string>(table, where.column) : null;
  const tok = readListColumn(table, 'tokens');
  const mask = readListColumn(table, 'mask');
  const rows: ChatRows & { texts: string[] } = { tokens: [], masks: [], texts: [] };
  for (let i = 0; i < table.numRows; i++) {
    if (split && splits[i] !== split) continue;
    if (filter && filter[i] !== where!.value) continue;
    rows.tokens.push(tok.values.subarray(tok.offsets[i], tok.offsets[i + 1]) as Uint16Array);
    rows.masks.push(mask.values.subarray(mask.offsets[i], mask.offsets[i + 1]) as Uint8Array);
    rows.texts.push(texts[i]);
  }
  return rows;
}
