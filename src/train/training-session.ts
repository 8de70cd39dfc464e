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
import { loadCheckpoint, saveCheckpoint, type Checkpoint, type CheckpointConfig, type TensorSet } from '../model/checkpoint.js';
import { GPT, type Hooks, type LoraConfig, type ParamMap } from '../model/gpt.js';
import { stackRuns } from '../model/run-axis.js';
import type { ModelConfig } from '../model/model-config.js';
import type { Vocabulary } from '../tokenizer/vocab.js';
import { trainLoop, trainRuns, type LoopCallbacks, type LoopState } from './loop.js';
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
   * other one [fresh: fp32; resumed: the checkpoint's].
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

/** Where a session starts: fresh, or its own checkpoint's weights, optimizer, loop state and log. */
interface SessionStart {
  options: TrainOptions;
  precision: PrecisionDecision;
  state: LoopState;
  metrics: MetricRow[];
  /** The checkpoint resumed from, or null for a fresh run. */
  resumed: Checkpoint | null;
  config: CheckpointConfig;
}

/** Check a session against its checkpoint (--resume) or its settings (fresh), and say where it starts. */
function openSession(spec: SessionSpec, ui: SessionUi): SessionStart {
  let options = spec.options;
  let state: LoopState = { step: 0, tokens: 0, elapsed: 0, source: null };
  let metrics: MetricRow[] = [];
  let precision: PrecisionDecision;
  let resumed: Checkpoint | null = null;
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
    precision = resumedPrecision(ckpt.config.run, spec.precision ?? 'auto', spec.out);
    options = validateTrainOptions(mergeForResume(ckpt.config.train as unknown as TrainOptions, spec.explicit, spec.out));
    if (!ckpt.optimizer || ckpt.state.complete === undefined) throw new Error(`--resume: ${spec.out} has no optimizer state to resume from`);
    if (Boolean(ckpt.adapters) !== Boolean(spec.lora) || (spec.lora && JSON.stringify(ckpt.adapters!.config) !== JSON.stringify(spec.lora))) {
      throw new Error(`--resume with different LoRA settings than ${spec.out}; choose another --out`);
    }
    state = ckpt.state.loop as LoopState;
    spec.source.restore(state.source);
    metrics = ckpt.metrics ? metricsFromArrow(ckpt.metrics) : [];
    if (state.step >= options.steps) ui.log?.(`${spec.out} already finished ${state.step} steps; nothing to resume`);
    resumed = ckpt;
  } else {
    validateTrainOptions(options);
    precision = resolvePrecision(spec.precision ?? 'fp32');
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
  return { options, precision, state, metrics, resumed, config };
}

/**
 * Ctrl-C or SIGTERM: finish the step, save, stop (the loop yields between steps, so this runs
 * within a step). One key press can arrive more than once (from the terminal and from npm or the
 * experiment runner forwarding it): repeats within a second are the same request; a later one
 * quits without saving.
 */
function stopOnSignals(log: ((line: string) => void) | undefined): { requested: () => boolean; release: () => void } {
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
    log?.(`${signal}: saving a checkpoint after this step (send it again to quit without saving)...`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    requested: () => stopRequested,
    release: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

export async function runSession(spec: SessionSpec, ui: SessionUi = {}): Promise<SessionResult> {
  const { options, precision, state, metrics, resumed, config } = openSession(spec, ui);
  let model: GPT;
  if (resumed?.adapters) {
    // The saved weights have the adapters merged in: rebuild from the base and the adapters.
    model = new GPT(spec.model, spec.initialWeights());
    model.addAdapters(resumed.adapters.config, options.seed, new Map([...resumed.adapters.tensors].map(([n, t]) => [n, t.values])));
  } else {
    model = new GPT(spec.model, resumed ? resumed.weights : spec.initialWeights());
    if (spec.lora && !resumed) model.addAdapters(spec.lora, options.seed);
  }
  const optimizer = new AdamW(trainable(model), adamOptions(options));
  if (resumed) optimizer.load(resumed.optimizer!);
  const signals = stopOnSignals(ui.log);
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
        shouldStop: () => signals.requested() || (ui.shouldStop?.(optimizer.step) ?? false),
      },
      state,
      metrics,
    );
    return { model, metrics: result.metrics, state: result.state, stopped: result.stopped, options, precision };
  } finally {
    signals.release();
    optimizer.dispose();
  }
}

/** Why sessions cannot train as stacked runs (GPT.stack), or null when they can. */
export function stackingObstacle(specs: SessionSpec[]): string | null {
  if (specs.length < 2) return 'fewer than two runs';
  const [first] = specs;
  const { seed: _s, ...shared } = first.options;
  for (const s of specs) {
    if (s.lora) return `${s.out} trains LoRA adapters`;
    if (s.hooks) return `${s.out} edits its forward pass`;
    if (s.model.dropout > 0) return `${s.out} uses dropout`;
    if (JSON.stringify(s.model) !== JSON.stringify(first.model)) return `${s.out} has another model config`;
    const { seed: _t, ...own } = s.options;
    if (JSON.stringify(own) !== JSON.stringify(shared)) return `${s.out} has other training options`;
    if (s.stage !== first.stage) return `${s.out} is another stage`;
  }
  return null;
}

/**
 * Sessions that share a model config and every training option but the seed, trained as stacked
 * runs: one forward and backward pass and one optimizer call per step for all of them. Each run
 * is checked, checkpointed, evaluated and logged exactly as runSession would (its own folder,
 * config, optimizer state, loop state and metrics), so a run can be resumed, reused or reported
 * either way. Resumed runs must stand at the same step. Products run in fp32.
 */
export async function runStackedSessions(runs: Array<{ spec: SessionSpec; ui: SessionUi }>, shared: Pick<SessionUi, 'progress' | 'log' | 'shouldStop'> = {}): Promise<SessionResult[]> {
  const obstacle = stackingObstacle(runs.map((r) => r.spec));
  if (obstacle) throw new Error(`these runs cannot train stacked: ${obstacle}`);
  const opened = runs.map(({ spec, ui }) => openSession(spec, ui));
  const notFp32 = opened.findIndex((o) => o.precision.precision !== 'fp32');
  if (notFp32 >= 0) throw new Error(`stacked runs compute in fp32 only; ${runs[notFp32].spec.out} runs in ${opened[notFp32].precision.precision}`);
  const options = opened[0].options;
  const model = GPT.stack(runs[0].spec.model, opened.map((o, r) => (o.resumed ? o.resumed.weights : runs[r].spec.initialWeights())));
  const optimizer = new AdamW(model.params, adamOptions(options), runs.length);
  if (opened.some((o) => o.resumed)) {
    if (!opened.every((o) => o.resumed)) throw new Error('stacked runs are all fresh or all resumed');
    optimizer.load(stackOptimizerStates(opened.map((o) => o.resumed!.optimizer!)));
  }
  const signals = stopOnSignals(shared.log);
  // Each run's evaluation sees its own model, as a single run would.
  const runModel = (r: number) => new GPT(runs[r].spec.model, model.runWeights(r));
  try {
    const result = await trainRuns(
      model,
      optimizer,
      runs.map(({ spec, ui }, r) => ({
        source: spec.source,
        start: opened[r].state,
        metrics: opened[r].metrics,
        log: ui.log,
        evaluate: ui.evaluate
          ? async (step: number) => {
              const m = runModel(r);
              try {
                return await ui.evaluate!(m, step);
              } finally {
                m.dispose();
              }
            }
          : undefined,
        save: (loop: LoopState, rows: MetricRow[]) =>
          saveCheckpoint(spec.out, {
            config: opened[r].config,
            vocab: spec.vocab,
            weights: model.runWeights(r),
            optimizer: optimizer.runState(r),
            adapters: null,
            state: { loop, complete: loop.step >= options.steps },
            metrics: metricsToArrow(rows),
          }),
      })),
      { ...options, precision: 'fp32' },
      { progress: shared.progress, shouldStop: () => signals.requested() || (shared.shouldStop?.(optimizer.step) ?? false) },
    );
    return runs.map((_, r) => ({ model: runModel(r), metrics: result.metrics[r], state: result.states[r], stopped: result.stopped, options: opened[r].options, precision: opened[r].precision }));
  } finally {
    signals.release();
    optimizer.dispose();
    model.dispose();
  }
}

/** Single runs' optimizer states as the state of their stacked runs (moments laid end to end on the run axis). */
function stackOptimizerStates(states: Array<{ step: number; moments: TensorSet }>): { step: number; moments: TensorSet } {
  const steps = new Set(states.map((s) => s.step));
  if (steps.size !== 1) throw new Error(`stacked runs must stand at one optimizer step, got ${[...steps].join(', ')}`);
  const moments: TensorSet = new Map();
  for (const [key, first] of states[0].moments) {
    const parts = states.map((s, r) => s.moments.get(key)?.values ?? missingMoment(r, key));
    moments.set(key, { shape: [parts.length, ...first.shape], values: stackRuns(parts, `optimizer state ${key}`) });
  }
  return { step: states[0].step, moments };
}

function missingMoment(r: number, key: string): never {
  throw new Error(`stacked run ${r}'s optimizer state lacks ${key}`);
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
