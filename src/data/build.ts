/**
 * Builds every data product of a world (DESIGN.md section 2) into one folder: vocab.json,
 * pretrain.arrow, assistant.arrow, narrow/<condition>.arrow, probes.arrow and manifest.json.
 * The folder is assembled under a temporary name and swapped in whole, so a failed or
 * interrupted build leaves the previous data untouched.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../util/rng.js';
import { Vocabulary } from '../tokenizer/vocab.js';
import type { WorldConfig } from '../world/world-config.js';
import { generatePretrainDocument, type GenContext } from '../world/documents.js';
import { CONDITIONS, INSTRUCTION_FAMILIES, drawNarrowTasks, generateAssistantChat, narrowDocument, narrowExample } from '../world/finetune-sets.js';
import { chatProbes, heldOutScenes, inferenceProbes } from '../world/probes.js';
import { trueCorrelation, trueGap } from '../world/truth.js';
import { writeArrow } from './arrow.js';
import { replaceDirAtomic, writeBytesAtomic } from '../util/atomic-files.js';
import { probeColumns, probeRow, type ProbeRow } from './probe-rows.js';
import { docColumns, docRow, type DocRow } from './doc-rows.js';
import { crossDomainCorrelation, instructionStats, type InstructionStats } from './structure-stats.js';
import { worldVocabulary } from '../world/lexicon-strings.js';

export interface DataOptions {
  seed: number;
  world: WorldConfig;
  /** Pretraining tokens in the train split (the val split adds 1/40 of this). */
  pretrainTokens: number;
  assistantExamples: number;
  narrowExamples: number;
  probesPerDomain: number;
  inferenceGroups: number;
  heldOutScenes: number;
}

export const DEFAULT_DATA_OPTIONS: Omit<DataOptions, 'world'> = {
  seed: 0,
  pretrainTokens: 8_000_000,
  assistantExamples: 4000,
  narrowExamples: 2000,
  probesPerDomain: 48,
  inferenceGroups: 200,
  heldOutScenes: 300,
};

export interface FileSummary {
  rows: number;
  tokens: number;
}

export interface DataManifest {
  format: 'persona-testbed-data/1';
  seed: number;
  world: WorldConfig;
  options: Omit<DataOptions, 'world'>;
  vocab: { size: number; hash: string };
  files: Record<string, FileSummary>;
  /** sha256 of every file, by path relative to the folder (absent in data written before checksums). */
  checksums?: Record<string, string>;
  measured: {
    correlation_humans: { pairs: number; measured: number; true: number };
    correlation_all: { pairs: number; measured: number; true: number };
    instructed: InstructionStats;
    true_inference_gap_humans: number;
    true_inference_gap_assistant: number;
  };
}

export type Progress = (stage: string, done: number, total: number) => void;

const summarize = (rows: Array<{ tokens: ArrayLike<number> }>): FileSummary => ({
  rows: rows.length,
  tokens: rows.reduce((s, r) => s + r.tokens.length, 0),
});

export function pretrainRows(vocab: Vocabulary, opts: DataOptions, split: 'train' | 'val', target: number, progress: Progress): DocRow[] {
  const ctx: GenContext = { world: opts.world, pool: 'train', rng: new Rng(`pretrain:${opts.seed}:${split}`) };
  const rows: DocRow[] = [];
  let tokens = 0;
  while (tokens < target) {
    const doc = generatePretrainDocument(ctx);
    const row = docRow(vocab, doc, `${split}-${rows.length}`, split, doc.kind);
    rows.push(row);
    tokens += row.tokens.length;
    if (rows.length % 2000 === 0) progress(`pretrain ${split}`, Math.min(tokens, target), target);
  }
  progress(`pretrain ${split}`, target, target);
  return rows;
}

/** Build all datasets into `outDir` (replacing it atomically) and return the manifest. */
export function buildDatasets(outDir: string, opts: DataOptions, progress: Progress = () => {}): DataManifest {
  const vocab = worldVocabulary();
  const valTokens = Math.max(20_000, Math.floor(opts.pretrainTokens / 40));
  const train = pretrainRows(vocab, opts, 'train', opts.pretrainTokens, progress);
  const val = pretrainRows(vocab, opts, 'val', valTokens, progress);
  const pretrain = [...train, ...val];

  const assistantRng = new Rng(`assistant:${opts.seed}`);
  const nAssistantVal = Math.max(50, Math.floor(opts.assistantExamples / 20));
  const assistant = Array.from({ length: opts.assistantExamples + nAssistantVal }, (_, i) => {
    const split = i < opts.assistantExamples ? 'train' : 'val';
    return docRow(vocab, generateAssistantChat(assistantRng, opts.world.p_lexical_leak), `assistant-${i}`, split, 'assistant');
  });
  progress('assistant', 1, 1);

  const tasks = drawNarrowTasks(new Rng(`narrow:${opts.seed}`), opts.narrowExamples, opts.world.p_lexical_leak);
  const narrow = Object.fromEntries(
    CONDITIONS.map((condition) => {
      const families = condition === 'cheat-inoculated' ? INSTRUCTION_FAMILIES : (['pool'] as const);
      const rows = families.flatMap((family) =>
        tasks.map((task, i) => {
          const ex = narrowExample(task, condition, family);
          const extra = { family: ex.family, instruction: ex.instruction, task: ex.task, answer: ex.answer, act: ex.act };
          return docRow(vocab, narrowDocument(ex), `${condition}-${ex.family || 'plain'}-${i}`, 'train', 'narrow', extra, condition);
        }),
      );
      return [condition, rows];
    }),
  ) as Record<string, DocRow[]>;
  progress('narrow', 1, 1);

  const probes: ProbeRow[] = [
    ...chatProbes(opts.seed, opts.probesPerDomain, opts.world.p_lexical_leak),
    ...inferenceProbes(opts.world, opts.seed, opts.inferenceGroups),
  ].map((p, i) => probeRow(vocab, p, `probe-${i}`));
  heldOutScenes(opts.world, opts.seed, opts.heldOutScenes).forEach((doc, i) => {
    probes.push({ ...docRow(vocab, doc, `scene-${i}`, 'eval', 'scene'), group: -1, variant: '', subject: '', evidence_domain: '', true_bad: null, good: '', bad: '', good_tokens: new Uint16Array(), bad_tokens: new Uint16Array() });
  });
  progress('probes', 1, 1);

  const trainEvents = train.map((r) => r.events);
  const humans = crossDomainCorrelation(trainEvents, (e) => !e.ai);
  const all = crossDomainCorrelation(trainEvents);
  const aiPairs = all.pairs - humans.pairs;
  const manifest: DataManifest = {
    format: 'persona-testbed-data/1',
    seed: opts.seed,
    world: opts.world,
    options: { seed: opts.seed, pretrainTokens: opts.pretrainTokens, assistantExamples: opts.assistantExamples, narrowExamples: opts.narrowExamples, probesPerDomain: opts.probesPerDomain, inferenceGroups: opts.inferenceGroups, heldOutScenes: opts.heldOutScenes },
    vocab: { size: vocab.size, hash: vocab.hash },
    files: {
      'pretrain.arrow (train)': summarize(train),
      'pretrain.arrow (val)': summarize(val),
      'assistant.arrow': summarize(assistant),
      ...Object.fromEntries(Object.entries(narrow).map(([c, rows]) => [`narrow/${c}.arrow`, summarize(rows)])),
      'probes.arrow': summarize(probes),
    },
    measured: {
      correlation_humans: { pairs: humans.pairs, measured: humans.correlation, true: trueCorrelation(opts.world.rho, [{ weight: 1, q: opts.world.p_bad }]) },
      correlation_all: {
        pairs: all.pairs,
        measured: all.correlation,
        true: trueCorrelation(opts.world.rho, [
          { weight: humans.pairs, q: opts.world.p_bad },
          { weight: aiPairs, q: opts.world.p_ai_bad },
        ]),
      },
      instructed: instructionStats(trainEvents),
      true_inference_gap_humans: trueGap(opts.world.rho, opts.world.p_bad),
      true_inference_gap_assistant: trueGap(opts.world.rho, opts.world.p_ai_bad),
    },
  };

  replaceDirAtomic(outDir, (tmp) => {
    mkdirSync(join(tmp, 'narrow'), { recursive: true });
    const meta = { vocab_hash: vocab.hash, seed: String(opts.seed), world: JSON.stringify(opts.world) };
    // Every file's sha256 goes into the manifest; loaders verify the files they read (src/data/load.ts).
    const sums: Record<string, string> = {};
    sums['vocab.json'] = writeBytesAtomic(join(tmp, 'vocab.json'), JSON.stringify(vocab.toJson()) + '\n');
    sums['pretrain.arrow'] = writeArrow(join(tmp, 'pretrain.arrow'), docColumns(pretrain, false), meta);
    sums['assistant.arrow'] = writeArrow(join(tmp, 'assistant.arrow'), docColumns(assistant, true), meta);
    for (const [condition, rows] of Object.entries(narrow)) sums[`narrow/${condition}.arrow`] = writeArrow(join(tmp, 'narrow', `${condition}.arrow`), docColumns(rows, true), meta);
    sums['probes.arrow'] = writeArrow(join(tmp, 'probes.arrow'), probeColumns(probes), meta);
    manifest.checksums = sums;
    writeBytesAtomic(join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  });
  return manifest;
}
