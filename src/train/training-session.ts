/**
 * A training session: a model and optimizer started fresh or from a parent checkpoint, or resumed
 * from the run's own checkpoint, trained by the loop, checkpointed atomically, and stoppable with
 * Ctrl-C (it saves, then says how to resume).
 */
import { existsSync } from 'node:fs';
import { recoverSwap } from '../util/fs.js';
import { resolvePrecision, type PrecisionChoice, type PrecisionDecision } from '../backend/resolve-precision.js';
import type { Precision } from '../backend/product-precision.js';
import type { BatchSource } from '../data/batches.js';
import { loadCheckpoint, saveCheckpoint, type CheckpointConfig, type TensorSet } from '../model/checkpoint.js';
import { GPT, type Hooks, type LoraConfig, type ParamMap } from '../model/gpt.js';
import type { ModelConfig } from '../model/model-config.js';
import type { Vocabulary } from '../tokenizer/vocab.js';
import { trainLoop, type LoopCallbacks, type LoopState } from './loop.js';
import { metricsFromArrow, metricsToArrow, type MetricRow } from './metrics.js';
import { AdamW } from './optimizer.js';
import { compareRun, mergeForResume, validateTrainOptions, type TrainOptions } from './options.js';

export interface SessionSpec {
  stage: string;
  out: string;
  model: ModelConfig;
  /** Starting weights for a fresh run (random init or a parent checkpoint's). */
  initialWeights: () => Map<string, Float32Array>;
  vocab: Vocabulary;
  data: string;
  parent: string | null;
  info: Record<string, unknown>;
  /** Options after defaults; `explicit` holds only what the user set (for --resume checks). */
  options: TrainOptions;
  explicit: Partial<TrainOptions>;
  resume: boolean;
  source: BatchSource;
  /** Train LoRA adapters on these matrices instead of every weight. */
  lora?: LoraConfig;
  /** Edits on every training forward pass (an ablation); they belong in `run` too, so a resume keeps them. */
  hooks?: Hooks;
  /**
   * Every setting besides the training options that changes the run, keyed by its flag name
   * (runIdentity builds it): saved in config.json and compared on --resume.
   */
  run?: Record<string, unknown>;
  /**
   * --precision of the products: a fresh run resolves it on this machine and records the result
   * in config.json (run.precision); a resumed run keeps its checkpoint's, and refuses an explicit
   * other one [fp32].
   */
  precision?: PrecisionChoice;
}

export interface SessionUi {
  evaluate?: (model: GPT, step: number) => Promise<MetricRow> | MetricRow;
  progress?: LoopCallbacks['progress'];
  log?: (line: string) => void;
  /** Polled between steps, besides Ctrl-C: true to save and stop. */
  shouldStop?: (step: number) => boolean;
}

export interface SessionResult {
  model: GPT;
  metrics: MetricRow[];
  state: LoopState;
  stopped: boolean;
  options: TrainOptions;
  /** The precision the training steps ran in, and why. */
  precision: PrecisionDecision;
}

export async function runSession(spec: SessionSpec, ui: SessionUi = {}): Promise<SessionResult> {
  let options = spec.options;
  let model: GPT;
  let optimizer: AdamW;
  let state: LoopState = { step: 0, tokens: 0, elapsed: 0, source: null };
  let metrics: MetricRow[] = [];
  let precision: PrecisionDecision;
  // A swap of the checkpoint folder cut short by a kill is completed (or cleaned) first.
  for (const line of recoverSwap(spec.out)) ui.log?.(line);
  if (spec.resume) {
    if (!existsSync(spec.out)) throw new Error(`--resume: ${spec.out} does not exist; run without --resume to start it`);
    const ckpt = loadCheckpoint(spec.out);
    if (ckpt.config.stage !== spec.stage) throw new Error(`--resume: ${spec.out} is a ${ckpt.config.stage} checkpoint, not ${spec.stage}`);
    if (JSON.stringify(ckpt.config.model) !== JSON.stringify(spec.model)) throw new Error(`--resume with a different model config than ${spec.out} (${JSON.stringify(ckpt.config.model)}); choose another --out`);
    if (ckpt.vocab.hash !== spec.vocab.hash) throw new Error(`--resume: ${spec.out} uses another vocabulary than the data`);
    if (ckpt.config.data !== spec.data) throw new Error(`--resume with different data: ${spec.out} was trained on ${ckpt.config.data}, not ${spec.data}`);
    if (spec.run) compareRun(ckpt.config.run, spec.run, spec.out);
    precision = resumedPrecision(ckpt.config.run, spec.precision ?? 'fp32', spec.out);
    options = validateTrainOptions(mergeForResume(ckpt.config.train as unknown as TrainOptions, spec.explicit, spec.out));
    if (!ckpt.optimizer || ckpt.state.complete === undefined) throw new Error(`--resume: ${spec.out} has no optimizer state to resume from`);
    if (Boolean(ckpt.adapters) !== Boolean(spec.lora) || (spec.lora && JSON.stringify(ckpt.adapters!.config) !== JSON.stringify(spec.lora))) {
      throw new Error(`--resume with different LoRA settings than ${spec.out}; choose another --out`);
    }
    if (ckpt.adapters) {
      // The saved weights have the adapters merged in: rebuild from the base and the adapters.
      model = new GPT(spec.model, spec.initialWeights());
      model.addAdapters(ckpt.adapters.config, options.seed, new Map([...ckpt.adapters.tensors].map(([n, t]) => [n, t.values])));
    } else {
      model = new GPT(spec.model, ckpt.weights);
    }
    optimizer = new AdamW(trainable(model), adamOptions(options));
    optimizer.load(ckpt.optimizer);
    state = ckpt.state.loop as LoopState;
    spec.source.restore(state.source);
    metrics = ckpt.metrics ? metricsFromArrow(ckpt.metrics) : [];
    if (state.step >= options.steps) ui.log?.(`${spec.out} already finished ${state.step} steps; nothing to resume`);
  } else {
    validateTrainOptions(options);
    precision = resolvePrecision(spec.precision ?? 'fp32');
    model = new GPT(spec.model, spec.initialWeights());
    if (spec.lora) model.addAdapters(spec.lora, options.seed);
    optimizer = new AdamW(trainable(model), adamOptions(options));
  }

  const config: CheckpointConfig = {
    format: 'persona-testbed-checkpoint/1',
    stage: spec.stage,
    model: spec.model,
    vocab_hash: spec.vocab.hash,
    train: options as unknown as Record<string, unknown>,
    data: spec.data,
    parent: spec.parent,
    info: spec.info,
    run: { ...spec.run, precision: precision.precision },
  };
  ui.log?.(`precision: ${precision.precision} (${precision.reason})`);
  // Ctrl-C or SIGTERM: finish the step, save, stop (the loop yields between steps, so this runs
  // within a step). One key press can arrive more than once (from the terminal and from npm or the
  // experiment runner forwarding it): repeats within a second are the same request; a later one
  // quits without saving.
  let stopRequested = false;
  let firstSignal = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopRequested) {
      if (Date.now() - firstSignal < 1000) return;
      process.stderr.write(`\n${signal} again: quitting without saving\n`);
      process.exit(130);
    }
    stopRequested = true;
    firstSignal = Date.now();
    ui.log?.(`${signal}: saving a checkpoint after this step (send it again to quit without saving)...`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const result = await trainLoop(
      model,
      optimizer,
      spec.source,
      { ...options, seed: options.seed, hooks: spec.hooks, precision: precision.precision },
      {
        evaluate: ui.evaluate ? (step) => ui.evaluate!(model, step) : undefined,
        save: (loop, rows) =>
          saveCheckpoint(spec.out, {
            config,
            vocab: spec.vocab,
            weights: model.mergedWeights(),
            optimizer: optimizer.state(),
            adapters: model.lora ? { config: model.lora, tensors: tensorSet(model.adapters) } : null,
            state: { loop, complete: loop.step >= options.steps },
            metrics: metricsToArrow(rows),
          }),
        progress: ui.progress,
        log: ui.log,
        shouldStop: () => stopRequested || (ui.shouldStop?.(optimizer.step) ?? false),
      },
      state,
      metrics,
    );
    return { model, metrics: result.metrics, state: result.state, stopped: result.stopped, options, precision };
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    optimizer.dispose();
  }
}

/**
 * The precision a resumed run continues in: its checkpoint's (checkpoints from before precision was
 * recorded trained in fp32), which `auto` accepts and an explicit other choice contradicts. It must
 * still be possible here (bf16 needs the native backend).
 */
function resumedPrecision(savedRun: Record<string, unknown> | undefined, choice: PrecisionChoice, out: string): PrecisionDecision {
  const saved: Precision = savedRun?.precision === 'bf16' ? 'bf16' : 'fp32';
  if (choice !== 'auto' && choice !== saved) {
    throw new Error(`--resume with a different run: --precision is ${choice} but ${out} was trained with ${saved}; drop the flag or choose another --out`);
  }
  if (saved === 'fp32') return { precision: 'fp32', reason: `as ${out} was trained` };
  return { precision: 'bf16', reason: `as ${out} was trained; ${resolvePrecision('bf16').reason}` };
}

/** What the optimizer updates: the adapters when there are any, else every parameter. */
function trainable(model: GPT): ParamMap {
  return model.lora ? model.adapters : model.params;
}

function tensorSet(params: ParamMap): TensorSet {
  return new Map([...params].map(([n, v]) => [n, { shape: v.shape, values: v.dataSync() as Float32Array }]));
}

/** The AdamW settings every training run uses (the benchmark and the parity fixture use them too). */
export function adamOptions(o: TrainOptions) {
  return { beta1: o.beta1, beta2: o.beta2, eps: 1e-8, weightDecay: o.weightDecay, gradClip: o.gradClip };
}
