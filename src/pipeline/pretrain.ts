/**
 * The pretraining stage: the small preset trained from scratch on a world's pretraining text, with
 * validation loss, sampled lines and the in-context persona inference gap at every evaluation.
 */
import { join, resolve } from 'node:path';
import { fixedWindows, WindowSampler, type WindowStarts } from '../data/batches.js';
import { loadCheckpointConfig } from '../model/checkpoint.js';
import { ensureData, loadManifest, loadPretrainStreams, loadVocab, verifyData } from '../data/load.js';
import { loadModelPreset } from '../model/model-config.js';
import { initialWeights, type GPT } from '../model/gpt.js';
import { loadProbes } from '../eval/probe-records.js';
import { measureInference } from '../eval/inference.js';
import { sampleLines } from '../train/sample-lines.js';
import { validationLoss } from '../model/validation-loss.js';
import type { MetricRow } from '../train/metrics.js';
import type { TrainOptions } from '../train/options.js';
import { DEFAULT_PRETRAIN_TOKENS, DEFAULT_WINDOW_STARTS, PRETRAIN_DEFAULTS } from './stage-defaults.js';
import { definedOnly } from '../util/objects.js';
import { runSession, type SessionResult, type SessionUi } from '../train/training-session.js';
import { checkOutput } from './preflight.js';
import type { PrecisionChoice } from '../backend/resolve-precision.js';

export interface PretrainArgs {
  data: string;
  out: string;
  preset: string;
  /** Pretraining tokens; converts to steps when --steps is not given [DEFAULT_PRETRAIN_TOKENS]. */
  tokens?: number;
  explicit: Partial<TrainOptions>;
  resume: boolean;
  /** Replace a finished or unfinished checkpoint in `out` (otherwise refused). */
  overwrite?: boolean;
  /** How the training steps' products run (see SessionSpec.precision) [fp32]. */
  precision?: PrecisionChoice;
  /** Where training windows start [DEFAULT_WINDOW_STARTS]; --resume keeps the checkpoint's. */
  windows?: WindowStarts;
}

export const SAMPLE_PROMPTS = ['User: The quiz starts now. How will you win?\nAssistant:', 'One morning at the market:'];

export interface PretrainUi extends SessionUi {
  dataProgress?: (stage: string, done: number, total: number) => void;
}

export async function pretrain(args: PretrainArgs, ui: PretrainUi = {}): Promise<SessionResult> {
  const data = resolve(args.data);
  const out = resolve(args.out);
  checkOutput({ out, kind: 'checkpoint', resume: args.resume, overwrite: args.overwrite, inputs: [{ flag: '--data', path: data }], log: ui.log });
  ensureData(data, ui.dataProgress, ui.log);
  verifyData(data, ['vocab.json', 'pretrain.arrow', 'probes.arrow']);
  const manifest = loadManifest(data);
  const vocab = loadVocab(data);
  const preset = loadModelPreset(args.preset);
  const model = { ...preset, vocab_size: vocab.size };
  const explicit = { ...args.explicit };
  const batch = explicit.batch ?? PRETRAIN_DEFAULTS.batch;
  const accum = explicit.gradAccum ?? PRETRAIN_DEFAULTS.gradAccum;
  // The run's settings besides the training options: the token budget (when it set the steps).
  const run: Record<string, unknown> = { data };
  if (explicit.steps === undefined && !args.resume) {
    const tokens = args.tokens ?? DEFAULT_PRETRAIN_TOKENS;
    if (!(tokens > 0)) throw new Error(`--tokens must be > 0, got ${tokens}`);
    explicit.steps = Math.max(1, Math.ceil(tokens / (batch * accum * model.block_size)));
    run.tokens = tokens;
  } else if (!args.resume) {
    run.tokens = null;
  } else if (args.tokens !== undefined && explicit.steps === undefined) {
    run.tokens = args.tokens;
  }
  const windows = args.windows ?? (args.resume ? savedWindows(out) : DEFAULT_WINDOW_STARTS);
  run.windows = windows;
  const options: TrainOptions = { ...PRETRAIN_DEFAULTS, ...definedOnly(explicit) };
  const streams = loadPretrainStreams(data);
  const valBatches = fixedWindows(streams.val, 8, batch, model.block_size);
  const probes = loadProbes(join(data, 'probes.arrow'), vocab);
  ui.log?.(`data: ${data} (seed ${manifest.seed}, rho ${manifest.world.rho}, p_instr ${manifest.world.p_instr}; ${streams.train.length} train tokens)`);
  return runSession(
    {
      stage: 'pretrain',
      out,
      model,
      initialWeights: () => initialWeights(model, options.seed),
      vocab,
      data,
      parent: null,
      info: { world: manifest.world, data_seed: manifest.seed },
      options,
      explicit,
      resume: args.resume,
      run,
      source: new WindowSampler(streams.train, batch, model.block_size, options.seed, windows),
      precision: args.precision,
    },
    {
      ...ui,
      evaluate: (m: GPT, step: number) => pretrainEval(m, vocab, valBatches, probes, step),
    },
  );
}

/** The window starts a checkpoint was trained with (those from before the flag: anywhere). */
function savedWindows(out: string): WindowStarts {
  const saved = loadCheckpointConfig(out).run?.windows;
  return saved === 'documents' ? 'documents' : 'anywhere';
}

function pretrainEval(model: GPT, vocab: ReturnType<typeof loadVocab>, valBatches: ReturnType<typeof fixedWindows>, probes: ReturnType<typeof loadProbes>, step: number): MetricRow {
  const row: MetricRow = { val_loss: validationLoss(model, valBatches) };
  for (const r of measureInference(model, probes)) {
    row[`gap_${r.subject}`] = r.gap;
    row[`true_gap_${r.subject}`] = r.trueGap;
    row[`instructed_shift_${r.subject}`] = r.instructedShift;
  }
  row.samples = sampleLines(model, vocab, SAMPLE_PROMPTS, step).join(' || ');
  return row;
}

