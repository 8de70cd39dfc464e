/**
 * `npm run bench`: the real training step of the trainer (trainStep with AdamW over a WindowSampler),
 * timed on one backend, in fp32 and (on native, where the CPU has it) bf16 products side by side,
 * optionally beside the PyTorch reference (reference_torch.py), in rounds that alternate who goes
 * first, so that speed ratios come from one run on one machine. Warm-up excluded; every figure is
 * the median over the repeats. It also says what the machine is (src/bench/machine.ts): the CPU,
 * its vector ISA, oneDNN's kernel, and the theoretical peak beside the measured one.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeBackend, selectBackend, type BackendChoice } from '../backend/select-backend.js';
import { PersonaLinear, runPersonaKernel } from '../backend/native/contracts.js';
import { kernelStats, NATIVE_BACKEND_NAME, nativeBackendStatus, resetKernelStats } from '../backend/native/native-backend.js';
import { withPrecision, type Precision } from '../backend/product-precision.js';
import { resolvePrecision, type PrecisionDecision } from '../backend/resolve-precision.js';
import { WindowSampler } from '../data/batches.js';
import { loadPretrainStreams, loadVocab } from '../data/load.js';
import { countParameters, loadModelPreset, type ModelConfig } from '../model/model-config.js';
import { GPT, initialWeights, parameterShapes } from '../model/gpt.js';
import { trainStep } from '../train/loop.js';
import { AdamW, learningRate, type AdamWOptions } from '../train/optimizer.js';
import { PRETRAIN_DEFAULTS } from '../pipeline/stage-defaults.js';
import { adamOptions } from '../train/training-session.js';
import { Rng } from '../util/rng.js';
import { isBrowserBackend, runBrowserBench, type BrowserBenchBackend } from './browser.js';
import { FLOPS_FORMULA, median, trainFlopsPerToken } from './flops.js';
import { concat } from './parity.js';
import { appendBenchRows, formatBenchMarkdown, type BenchRow } from './bench-rows.js';
import { applyIsaCap, describeMachine, machineLines, theoreticalPeak, type Machine, type MaxIsa } from './machine.js';
import { blasWarning, findTorch, TORCH_ENV, TorchServer, type TorchInfo } from './torch.js';
import { worldVocabulary } from '../world/lexicon-strings.js';

export interface BenchOptions {
  /** webgpu and webgl run in headless Chromium (src/bench/browser.ts). */
  backend: BackendChoice | BrowserBenchBackend;
  gpu: boolean;
  preset: string;
  batch: number;
  /** Steps per timed repeat. */
  steps: number;
  repeats: number;
  warmup: number;
  reference: 'torch' | null;
  /** Threads for PyTorch (torch.set_num_threads). */
  torchThreads: number;
  /** Results folder (bench.arrow is appended to); null = do not write. */
  out: string | null;
  /** A data folder whose pretraining stream to train on; null = a synthetic stream. */
  data: string | null;
  seed: number;
  /** Print the per-kernel profile of one step. */
  profile: boolean;
  /**
   * The products' precision: both (fp32, and bf16 beside it where the backend is native) [both],
   * or one of fp32, bf16, auto (what --precision auto picks for training).
   */
  precision?: BenchPrecision;
  /** Cap oneDNN and PyTorch at an older instruction set (machine.ts) [none]. */
  maxIsa?: MaxIsa | null;
}

export const BENCH_PRECISIONS = ['both', 'fp32', 'bf16', 'auto'] as const;
export type BenchPrecision = (typeof BENCH_PRECISIONS)[number];

export const BENCH_DEFAULTS: Omit<BenchOptions, 'backend' | 'gpu' | 'preset' | 'reference' | 'data' | 'profile'> = {
  batch: PRETRAIN_DEFAULTS.batch,
  steps: 10,
  repeats: 5,
  warmup: 3,
  torchThreads: 2,
  out: 'results/bench',
  seed: 0,
};

/** The matmul that measures each engine's peak: [2048, 512] @ [512, 512], float32 output. */
export const PEAK_SHAPE = [2048, 512, 512] as const;

export interface BenchSummary {
  rows: BenchRow[];
  /** Per-round tfjs/torch tokens/s ratios of the first tfjs engine (empty without a reference). */
  ratios: number[];
  /** Per-round bf16/fp32 tokens/s ratios (empty unless both ran). */
  bf16Ratios: number[];
  /** The machine, in lines (empty for the browser backends). */
  machine: string[];
}

type Log = (line: string) => void;

/** A reproducible stream of uniformly random tokens (ids 3.., past the special tokens). */
export function syntheticStream(vocabSize: number, length: number, seed: number): Uint16Array {
  const rng = new Rng(`bench-stream:${seed}`);
  const out = new Uint16Array(length);
  for (let i = 0; i < length; i++) out[i] = 3 + rng.int(Math.max(1, vocabSize - 3));
  return out;
}

/**
 * Median GFLOP/s of a matmul at PEAK_SHAPE: fp32, the backend's own tf.matMul; bf16, the fused
 * linear kernel with bf16 products (the training path: both inputs converted to bf16 in the call).
 */
export function matmulPeak(repeats: number, precision: Precision = 'fp32'): number {
  const [m, k, n] = PEAK_SHAPE;
  const rng = new Rng('peak');
  const a = tf.tensor2d(Float32Array.from({ length: m * k }, () => rng.normal()), [m, k]);
  const b = tf.tensor2d(Float32Array.from({ length: k * n }, () => rng.normal()), [k, n]);
  const once = precision === 'fp32' ? () => tf.matMul(a, b).dispose() : () => runPersonaKernel(PersonaLinear, { x: a, w: b }, { precision }).dispose();
  once();
  const t0 = performance.now();
  once();
  const first = performance.now() - t0;
  const inner = Math.max(1, Math.min(10, Math.round(20 / Math.max(first, 1e-3))));
  const samples: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const s = performance.now();
    for (let i = 0; i < inner; i++) once();
    samples.push((performance.now() - s) / inner);
  }
  tf.dispose([a, b]);
  return (2 * m * k * n) / (median(samples) / 1e3) / 1e9;
}

function threadsOf(backend: string): number | null {
  if (backend === 'native') return nativeBackendStatus().info?.threads ?? null;
  if (backend === 'wasm' || backend === 'cpu') return 1;
  return null;
}

const rssMb = () => process.resourceUsage().maxRSS / 1024;

/** Count engine kernel calls and native fallbacks in one training step, with a per-kernel time table. */
async function profileStep(run: () => void, backend: string): Promise<{ calls: number; compute: number; fallbacks: number | null; peakBytes: number; table: string[]; fallbackNames: string[] }> {
  resetKernelStats();
  const info = await tf.profile(() => {
    run();
  });
  const byName = new Map<string, { count: number; ms: number }>();
  for (const k of info.kernels) {
    const e = byName.get(k.name) ?? { count: 0, ms: 0 };
    e.count += 1;
    e.ms += Number(k.kernelTimeMs) || 0;
    byName.set(k.name, e);
  }
  const table = [...byName].sort((a, b) => b[1].ms - a[1].ms).map(([name, e]) => `${name.padEnd(24)} ${String(e.count).padStart(5)} calls ${e.ms.toFixed(1).padStart(8)} ms`);
  let fallbacks: number | null = null;
  let fallbackNames: string[] = [];
  if (backend === 'native') {
    fallbacks = [...kernelStats.fallback.values()].reduce((a, b) => a + b, 0);
    fallbackNames = [...kernelStats.fallback].map(([k, c]) => `${k} x${c}`);
  }
  // Identity and Reshape move no data on these backends; names that are not kernels are tf.customGrad scopes.
  const compute = info.kernels.filter((k) => k.name !== 'Identity' && k.name !== 'Reshape' && tf.getKernel(k.name, backend) !== undefined).length;
  return { calls: info.kernels.length, compute, fallbacks, peakBytes: info.peakBytes, table, fallbackNames };
}

/** What every engine trains on: the model, its initial weights, the token stream and the schedule. */
interface Workload {
  cfg: ModelConfig;
  T: number;
  stream: Uint16Array;
  weights: Map<string, Float32Array>;
  tokensPerStep: number;
  flopsPerToken: number;
  params: number;
  adam: AdamWOptions;
  schedule: { lr: number; minLr: number; warmup: number; steps: number };
}

/** Per-round timings (ms per step or per forward pass) of every participant of one run. */
interface Timings {
  /** One list per tfjs engine, in engine order. */
  tfMs: number[][];
  torchMs: number[];
}

function validateBenchOptions(o: BenchOptions): void {
  for (const [k, v] of [['batch', o.batch], ['steps', o.steps], ['repeats', o.repeats]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} must be a positive integer, got ${v}`);
  }
  if (!Number.isInteger(o.warmup) || o.warmup < 0) throw new Error(`--warmup must be an integer >= 0, got ${o.warmup}`);
  if (o.data && !existsSync(join(o.data, 'pretrain.arrow'))) throw new Error(`${o.data} has no pretrain.arrow; generate it with npm run data, or drop --data to use a synthetic stream`);
  if (o.precision !== undefined && !(BENCH_PRECISIONS as readonly string[]).includes(o.precision)) throw new Error(`--precision must be one of ${BENCH_PRECISIONS.join(', ')}, got ${o.precision}`);
}

function prepareWorkload(o: BenchOptions, log: Log): Workload {
  const vocabSize = o.data ? loadVocab(o.data).size : worldVocabulary().size;
  const cfg: ModelConfig = { ...loadModelPreset(o.preset), vocab_size: vocabSize };
  const T = cfg.block_size;
  const work: Workload = {
    cfg,
    T,
    stream: o.data ? loadPretrainStreams(o.data).train : syntheticStream(vocabSize, 1 << 18, o.seed),
    weights: initialWeights(cfg, o.seed),
    tokensPerStep: o.batch * T,
    flopsPerToken: trainFlopsPerToken(cfg),
    params: countParameters(cfg).total,
    adam: adamOptions(PRETRAIN_DEFAULTS),
    schedule: { lr: PRETRAIN_DEFAULTS.lr, minLr: PRETRAIN_DEFAULTS.minLr, warmup: PRETRAIN_DEFAULTS.warmup, steps: 1e9 },
  };
  log(`model: ${o.preset} (${cfg.n_layer} layers x ${cfg.n_embd} wide, ${cfg.n_head} heads, context ${T}, vocab ${vocabSize}, ${(work.params / 1e6).toFixed(3)}M parameters); batch ${o.batch} (${work.tokensPerStep} tokens/step); ${o.data ? `stream of ${o.data}` : 'synthetic stream'}`);
  log(`FLOPs: ${FLOPS_FORMULA} = ${(work.flopsPerToken / 1e6).toFixed(2)} MFLOP/token`);
  return work;
}

/**
 * The precisions to time: --precision both is fp32, and bf16 beside it where --precision auto
 * would train in bf16 (an emulated bf16, slower than fp32, is timed only when asked for).
 */
function benchPrecisions(choice: BenchPrecision, backend: string, log: Log): PrecisionDecision[] {
  if (choice !== 'both') return [resolvePrecision(choice, backend)];
  const auto = resolvePrecision('auto', backend);
  if (auto.precision === 'fp32') log(`precision: fp32 only; no bf16 beside it (${auto.reason.replace(/^auto: /, '')})`);
  return auto.precision === 'bf16' ? [resolvePrecision('fp32', backend), auto] : [resolvePrecision('fp32', backend)];
}

/** The trainer's real step on the current tfjs backend in one precision: its own model, AdamW and batch sampler. */
class TfjsEngine {
  readonly model: GPT;
  readonly optimizer: AdamW;
  private readonly sampler: WindowSampler;
  private readonly fwdIds: ReturnType<WindowSampler['next']>;
  private step = 0;
  lastLoss = Number.NaN;

  constructor(private readonly work: Workload, readonly precision: Precision, batch: number, seed: number) {
    // Copies: on cpu-storage backends a variable shares its source array, and AdamW updates in place.
    this.model = new GPT(work.cfg, new Map([...work.weights].map(([n, w]) => [n, w.slice()])));
    this.optimizer = new AdamW(this.model.params, work.adam);
    this.sampler = new WindowSampler(work.stream, batch, work.T, seed);
    this.fwdIds = this.sampler.next();
  }

  private trainOne(): void {
    const lr = learningRate(this.step, this.work.schedule);
    this.lastLoss = withPrecision(this.precision, () => trainStep(this.model, this.optimizer, this.sampler, 1, lr, this.step)).loss;
    this.step++;
  }

  /** Mean ms per training step over n steps. */
  train(n: number): number {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) this.trainOne();
    return (performance.now() - t0) / n;
  }

  /** Mean ms per forward pass (the evaluation and sampling path; products in this engine's precision) over n passes. */
  forward(n: number): number {
    const { ids, batch, T } = this.fwdIds;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      // cpu, wasm, native and tfjs-node run kernels synchronously: the logits exist when forward returns.
      withPrecision(this.precision, () => tf.tidy(() => {
        this.model.forward(tf.tensor2d(ids, [batch, T], 'int32'));
      }));
    }
    return (performance.now() - t0) / n;
  }

  profile(backend: string) {
    return profileStep(() => this.trainOne(), backend);
  }

  dispose(): void {
    this.optimizer.dispose();
    this.model.dispose();
  }
}

/** The PyTorch reference server on the same model, initial weights, stream and AdamW settings (always fp32). */
async function startTorch(o: BenchOptions, work: Workload, tmp: string, env: Record<string, string>, log: Log): Promise<{ server: TorchServer; info: TorchInfo }> {
  const found = findTorch(o.torchThreads);
  const warn = blasWarning(found);
  if (warn) log(warn);
  const streamFile = join(tmp, 'stream.u16');
  writeFileSync(streamFile, new Uint8Array(work.stream.buffer, work.stream.byteOffset, work.stream.byteLength));
  const initFile = join(tmp, 'init.f32');
  const flat = concat([work.weights], parameterShapes(work.cfg).map(([n]) => n));
  writeFileSync(initFile, new Uint8Array(flat.buffer));
  const { adam, schedule } = work;
  const { server, info } = await TorchServer.start({
    python: found.python, config: work.cfg, streamFile, initFile, batch: o.batch, threads: o.torchThreads, seed: o.seed,
    lr: schedule.lr, warmup: schedule.warmup, beta1: adam.beta1, beta2: adam.beta2, eps: adam.eps, weightDecay: adam.weightDecay, gradClip: adam.gradClip, env,
  });
  const coretype = env.OPENBLAS_CORETYPE ?? TORCH_ENV.OPENBLAS_CORETYPE;
  if (coretype && !env.OPENBLAS_CORETYPE) {
    log(`note: OPENBLAS_CORETYPE=${coretype} is set: OpenBLAS (PyTorch's BLAS) runs that core's kernels, not this CPU's own (on an AVX-512 machine Haswell's measured ~180 GFLOP/s against ~300 autodetected); if the torch matmul peak below is low, rerun with env -u OPENBLAS_CORETYPE for the fastest reference`);
  }
  const capped = Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ');
  log(`reference: PyTorch ${info.torch} (${info.python}), torch.set_num_threads(${o.torchThreads}) -> ${info.threads} threads, BLAS: ${info.blas}, OMP_WAIT_POLICY=${TORCH_ENV.OMP_WAIT_POLICY ?? '(unset)'}${capped ? `, ${capped}` : ''}; fp32`);
  return { server, info };
}

/** Each engine's matmul peak in its precision, after the warm-up (a cold OpenBLAS measured 3x below its warm speed here), one engine at a time. */
async function measurePeaks(o: BenchOptions, backend: string, engines: TfjsEngine[], torch: TorchServer | null, log: Log): Promise<{ peaks: number[]; torchPeak: number | null }> {
  const peaks = engines.map((e) => matmulPeak(Math.max(5, o.repeats), e.precision));
  const torchPeak = torch ? await torch.peak(Math.max(5, o.repeats)) : null;
  const parts = engines.map((e, i) => `${backend} ${e.precision} ${peaks[i].toFixed(1)} GFLOP/s`);
  if (torchPeak) parts.push(`torch fp32 ${torchPeak.toFixed(1)} GFLOP/s`);
  log(`matmul peak [${PEAK_SHAPE[0]}x${PEAK_SHAPE[1]}]@[${PEAK_SHAPE[1]}x${PEAK_SHAPE[2]}] (measured): ${parts.join(', ')}`);
  return { peaks, torchPeak };
}

/**
 * Rounds of `steps` in which every engine (and torch) runs once, the first to go rotating from round
 * to round, so a slow drift of the machine favours no one. `run` times one participant.
 */
async function rounds(o: BenchOptions, engines: TfjsEngine[], torch: TorchServer | null, run: (e: TfjsEngine) => number, runTorch: () => Promise<number>, onRound?: (r: number, t: Timings) => void): Promise<Timings> {
  const t: Timings = { tfMs: engines.map(() => []), torchMs: [] };
  const participants: Array<number | 'torch'> = [...engines.keys(), ...(torch ? ['torch' as const] : [])];
  for (let r = 0; r < o.repeats; r++) {
    for (let j = 0; j < participants.length; j++) {
      const who = participants[(r + j) % participants.length];
      if (who === 'torch') t.torchMs.push(await runTorch());
      else t.tfMs[who].push(run(engines[who]));
    }
    onRound?.(r, t);
  }
  return t;
}

/** Training steps, every participant once per round; torch's last loss is kept. */
async function timeTraining(o: BenchOptions, engines: TfjsEngine[], torch: TorchServer | null, backend: string, tokensPerStep: number, log: Log): Promise<Timings & { torchLoss?: number }> {
  let torchLoss: number | undefined;
  const tps = (ms: number) => Math.round((tokensPerStep / ms) * 1e3);
  const t = await rounds(o, engines, torch, (e) => e.train(o.steps), async () => {
    const r = await torch!.train(o.steps);
    torchLoss = r.loss;
    return r.step_ms;
  }, (r, t) => {
    const parts = engines.map((e, i) => `${backend} ${e.precision} ${t.tfMs[i][r].toFixed(1)} ms/step (${tps(t.tfMs[i][r])} tokens/s)`);
    if (torch) parts.push(`torch ${t.torchMs[r].toFixed(1)} ms/step (${tps(t.torchMs[r])} tokens/s)`);
    log(`round ${r + 1}/${o.repeats}: ${parts.join(', ')}`);
  });
  return { ...t, torchLoss };
}

/** Forward passes only (the evaluation and sampling path), in rounds the same way. */
async function timeForward(o: BenchOptions, engines: TfjsEngine[], torch: TorchServer | null): Promise<Timings> {
  for (const e of engines) e.forward(1);
  if (torch) await torch.forward(1);
  return rounds(o, engines, torch, (e) => e.forward(o.steps), async () => (await torch!.forward(o.steps)).step_ms);
}

/** Per-round a/b ratios (b's time over a's: how much faster a is). */
const perRound = (a: number[], b: number[]) => a.map((x, i) => b[i] / x);

type Profile = Awaited<ReturnType<typeof profileStep>>;

function logProfile(o: BenchOptions, prof: Profile, backend: string, log: Log): void {
  if (o.profile) {
    log(`profile of one training step on ${backend} (tf.profile; customGrad scopes, named "forward", include their inner kernels):`);
    for (const line of prof.table) log(`  ${line}`);
  }
  log(`kernel calls per training step: ${prof.calls} through the tfjs engine, ${prof.compute} of them compute kernels (the rest Identity, Reshape and tf.customGrad scopes)` +
    (prof.fallbacks === null ? '' : `; native kernels that fell back to tfjs-backend-cpu: ${prof.fallbacks}${prof.fallbackNames.length ? ` (${prof.fallbackNames.join(', ')})` : ''}`));
}

/** The columns every row of a run shares, the machine's included. */
function rowBase(o: BenchOptions, work: Workload, backend: string, machine: Machine): BenchRow {
  const now = new Date().toISOString();
  return {
    run_id: `${now}-${process.pid}`, timestamp: now, preset: o.preset, device: backend === 'tensorflow' && o.gpu ? 'GPU (tfjs-node-gpu)' : cpus()[0]?.model ?? 'unknown',
    batch: o.batch, T: work.T, params: work.params, flops_per_token: work.flopsPerToken, steps: o.steps, repeats: o.repeats, node: process.version,
    cpu_isa: machine.isa.join(' '), cpu_cores: machine.cpu.cores, cpu_mhz: machine.cpu.mhz, max_isa: machine.maxIsa,
  };
}

/** Speed, measured and theoretical utilisation of one engine (tfjs or torch) from its per-round step times. */
function speedColumns(work: Workload, machine: Machine, precision: Precision, threads: number | null, ms: number[], peak: number | null): BenchRow {
  const stepMs = median(ms);
  const tps = work.tokensPerStep / (stepMs / 1e3);
  const gflops = (work.flopsPerToken * tps) / 1e9;
  const theory = theoreticalPeak(machine, precision, threads);
  return {
    precision, threads, step_ms: stepMs, step_ms_min: Math.min(...ms), step_ms_max: Math.max(...ms), tokens_per_s: tps, gflops,
    peak_gflops: peak, utilisation: peak ? gflops / peak : null,
    theoretical_peak_gflops: theory?.gflops ?? null, theoretical_peak_formula: theory?.formula ?? null, utilisation_theoretical: theory ? gflops / theory.gflops : null,
  };
}

const spread = (xs: number[]) => (xs.length ? { med: median(xs), min: Math.min(...xs), max: Math.max(...xs) } : null);

function tfjsRow(base: BenchRow, work: Workload, machine: Machine, backend: string, i: number, e: TfjsEngine, train: Timings, fwd: Timings, peak: number, prof: Profile, loss: number): BenchRow {
  const vsTorch = train.torchMs.length ? spread(perRound(train.tfMs[i], train.torchMs)) : null;
  const fp32 = i > 0 ? spread(perRound(train.tfMs[i], train.tfMs[0])) : null;
  return {
    ...base,
    engine: 'tfjs',
    backend,
    ...speedColumns(work, machine, e.precision, threadsOf(backend), train.tfMs[i], peak),
    matmul_kernel: machine.kernels && backend === NATIVE_BACKEND_NAME ? machine.kernels[e.precision] : null,
    rss_mb: rssMb(),
    tf_peak_mb: prof.peakBytes / 2 ** 20,
    forward_tokens_per_s: work.tokensPerStep / (median(fwd.tfMs[i]) / 1e3),
    kernel_calls: prof.calls,
    compute_kernel_calls: prof.compute,
    native_fallback_calls: prof.fallbacks,
    loss,
    reference: vsTorch ? 'torch' : null,
    ratio_vs_reference: vsTorch?.med ?? null,
    ratio_min: vsTorch?.min ?? null,
    ratio_max: vsTorch?.max ?? null,
    forward_ratio_vs_reference: fwd.torchMs.length ? median(perRound(fwd.tfMs[i], fwd.torchMs)) : null,
    ratio_vs_fp32: fp32?.med ?? null,
    ratio_vs_fp32_min: fp32?.min ?? null,
    ratio_vs_fp32_max: fp32?.max ?? null,
  };
}

function torchRow(base: BenchRow, work: Workload, machine: Machine, info: TorchInfo, train: Timings, fwd: Timings, peak: number | null, rss: number, loss: number | undefined): BenchRow {
  return {
    ...base,
    engine: 'torch',
    backend: `torch ${info.torch} (${info.blas})`,
    ...speedColumns(work, machine, 'fp32', info.threads, train.torchMs, peak),
    matmul_kernel: info.blas,
    rss_mb: rss,
    tf_peak_mb: null,
    forward_tokens_per_s: work.tokensPerStep / (median(fwd.torchMs) / 1e3),
    kernel_calls: null,
    compute_kernel_calls: null,
    native_fallback_calls: null,
    loss: loss ?? null,
    reference: null,
    ratio_vs_reference: null,
    ratio_min: null,
    ratio_max: null,
    forward_ratio_vs_reference: null,
    ratio_vs_fp32: null,
    ratio_vs_fp32_min: null,
    ratio_vs_fp32_max: null,
  };
}

export async function runBench(o: BenchOptions, log: Log = (l) => process.stderr.write(`${l}\n`)): Promise<BenchSummary> {
  validateBenchOptions(o);
  if (isBrowserBackend(o.backend)) {
    if (o.precision === 'bf16' || o.maxIsa) throw new Error(`--precision bf16 and --max-isa apply to the node backends, not --backend ${o.backend}`);
    const r = await runBrowserBench({ ...o, backend: o.backend }, log);
    return { ...r, bf16Ratios: [], machine: [] };
  }
  // Before the addon first runs oneDNN: the cap is read once.
  const torchEnv = o.maxIsa ? applyIsaCap(o.maxIsa) : {};
  const info = await selectBackend(o.backend, o.gpu);
  log(describeBackend(info));
  const backend = info.name;
  const machine = describeMachine(o.maxIsa ?? null, PEAK_SHAPE);
  const lines = machineLines(machine, threadsOf(backend));
  for (const line of lines) log(line);
  if (o.maxIsa) log(`note: --max-isa caps oneDNN and PyTorch; the addon's own element-wise kernels keep the instruction set they were built for (rebuild with PERSONA_NATIVE_MARCH=haswell to cap them too)`);
  const precisions = benchPrecisions(o.precision ?? 'both', backend, log);
  for (const p of precisions) log(`precision ${p.precision}: ${p.reason}`);
  const work = prepareWorkload(o, log);
  const engines = precisions.map((p) => new TfjsEngine(work, p.precision, o.batch, o.seed));
  let torch: { server: TorchServer; info: TorchInfo } | null = null;
  const tmp = o.reference ? mkdtempSync(join(tmpdir(), 'persona-bench-')) : null;
  try {
    if (o.reference === 'torch') torch = await startTorch(o, work, tmp!, torchEnv, log);
    const server = torch?.server ?? null;
    if (o.warmup > 0) {
      for (const e of engines) e.train(o.warmup);
      if (server) await server.train(o.warmup);
    }
    const { peaks, torchPeak } = await measurePeaks(o, backend, engines, server, log);
    const train = await timeTraining(o, engines, server, backend, work.tokensPerStep, log);
    const fwd = await timeForward(o, engines, server);
    const base = rowBase(o, work, backend, machine);
    const rows: BenchRow[] = [];
    for (const [i, e] of engines.entries()) {
      const loss = e.lastLoss; // before the profiled step
      const prof = await e.profile(backend);
      if (i === 0) logProfile(o, prof, backend, log);
      rows.push(tfjsRow(base, work, machine, backend, i, e, train, fwd, peaks[i], prof, loss));
    }
    if (torch) rows.push(torchRow(base, work, machine, torch.info, train, fwd, torchPeak, (await torch.server.forward(1)).rss_mb, train.torchLoss));
    if (o.out) {
      appendBenchRows(join(o.out, 'bench.arrow'), rows);
      writeFileSync(join(o.out, 'bench.md'), formatBenchMarkdown(rows, lines));
    }
    return {
      rows,
      ratios: train.torchMs.length ? perRound(train.tfMs[0], train.torchMs) : [],
      bf16Ratios: engines.length > 1 ? perRound(train.tfMs[1], train.tfMs[0]) : [],
      machine: lines,
    };
  } finally {
    await torch?.server.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    for (const e of engines) e.dispose();
  }
}
