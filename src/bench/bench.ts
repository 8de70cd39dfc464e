/**
 * `npm run bench`: the real training step of the trainer (trainStep with AdamW over a WindowSampler),
 * timed on one backend, optionally side by side with the PyTorch reference (reference_torch.py) in
 * paired rounds, so that speed ratios come from one run on one machine. Warm-up excluded; every
 * figure is the median over the repeats.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeBackend, selectBackend, type BackendChoice } from '../backend/select-backend.js';
import { kernelStats, nativeBackendStatus, resetKernelStats } from '../backend/native/native-backend.js';
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
import { appendBenchRows, type BenchRow } from './bench-rows.js';
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
}

export const BENCH_DEFAULTS: Omit<BenchOptions, 'backend' | 'gpu' | 'preset' | 'reference' | 'data' | 'profile'> = {
  batch: PRETRAIN_DEFAULTS.batch,
  steps: 10,
  repeats: 5,
  warmup: 3,
  torchThreads: 2,
  out: 'results/bench',
  seed: 0,
};

/** The matmul that measures each engine's peak: [2048, 512] @ [512, 512], float32. */
export const PEAK_SHAPE = [2048, 512, 512] as const;

export interface BenchSummary {
  rows: BenchRow[];
  /** Per-round tfjs/torch tokens/s ratios (empty without a reference). */
  ratios: number[];
}

type Log = (line: string) => void;

/** A reproducible stream of uniformly random tokens (ids 3.., past the special tokens). */
export function syntheticStream(vocabSize: number, length: number, seed: number): Uint16Array {
  const rng = new Rng(`bench-stream:${seed}`);
  const out = new Uint16Array(length);
  for (let i = 0; i < length; i++) out[i] = 3 + rng.int(Math.max(1, vocabSize - 3));
  return out;
}

/** Median GFLOP/s of the backend's own float32 tf.matMul at PEAK_SHAPE. */
export function matmulPeak(repeats: number): number {
  const [m, k, n] = PEAK_SHAPE;
  const rng = new Rng('peak');
  const a = tf.tensor2d(Float32Array.from({ length: m * k }, () => rng.normal()), [m, k]);
  const b = tf.tensor2d(Float32Array.from({ length: k * n }, () => rng.normal()), [k, n]);
  const once = () => tf.matMul(a, b).dispose();
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

/** Paired medians of one side of the comparison, per round (ms per step or per forward pass). */
interface Timings {
  tfMs: number[];
  torchMs: number[];
  /** torch ms / tfjs ms per round: tfjs's speed-up. */
  ratios: number[];
}

function validateBenchOptions(o: BenchOptions): void {
  for (const [k, v] of [['batch', o.batch], ['steps', o.steps], ['repeats', o.repeats]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} must be a positive integer, got ${v}`);
  }
  if (!Number.isInteger(o.warmup) || o.warmup < 0) throw new Error(`--warmup must be an integer >= 0, got ${o.warmup}`);
  if (o.data && !existsSync(join(o.data, 'pretrain.arrow'))) throw new Error(`${o.data} has no pretrain.arrow; generate it with npm run data, or drop --data to use a synthetic stream`);
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

/** The trainer's real step on the current tfjs backend: its own model, AdamW and batch sampler. */
class TfjsEngine {
  readonly model: GPT;
  readonly optimizer: AdamW;
  private readonly sampler: WindowSampler;
  private readonly fwdIds: ReturnType<WindowSampler['next']>;
  private step = 0;
  lastLoss = Number.NaN;

  constructor(private readonly work: Workload, batch: number, seed: number) {
    // Copies: on cpu-storage backends a variable shares its source array, and AdamW updates in place.
    this.model = new GPT(work.cfg, new Map([...work.weights].map(([n, w]) => [n, w.slice()])));
    this.optimizer = new AdamW(this.model.params, work.adam);
    this.sampler = new WindowSampler(work.stream, batch, work.T, seed);
    this.fwdIds = this.sampler.next();
  }

  private trainOne(): void {
    this.lastLoss = trainStep(this.model, this.optimizer, this.sampler, 1, learningRate(this.step, this.work.schedule), this.step).loss;
    this.step++;
  }

  /** Mean ms per training step over n steps. */
  train(n: number): number {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) this.trainOne();
    return (performance.now() - t0) / n;
  }

  /** Mean ms per forward pass (the evaluation and sampling path) over n passes. */
  forward(n: number): number {
    const { ids, batch, T } = this.fwdIds;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      // cpu, wasm, native and tfjs-node run kernels synchronously: the logits exist when forward returns.
      tf.tidy(() => {
        this.model.forward(tf.tensor2d(ids, [batch, T], 'int32'));
      });
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

/** The PyTorch reference server on the same model, initial weights, stream and AdamW settings. */
async function startTorch(o: BenchOptions, work: Workload, tmp: string, log: Log): Promise<{ server: TorchServer; info: TorchInfo }> {
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
    lr: schedule.lr, warmup: schedule.warmup, beta1: adam.beta1, beta2: adam.beta2, eps: adam.eps, weightDecay: adam.weightDecay, gradClip: adam.gradClip,
  });
  if (TORCH_ENV.OPENBLAS_CORETYPE) {
    log(`note: OPENBLAS_CORETYPE=${TORCH_ENV.OPENBLAS_CORETYPE} is set: OpenBLAS (PyTorch's BLAS) runs that core's kernels, not this CPU's own (on an AVX-512 machine Haswell's measured ~180 GFLOP/s against ~300 autodetected); if the torch matmul peak below is low, rerun with env -u OPENBLAS_CORETYPE for the fastest reference`);
  }
  log(`reference: PyTorch ${info.torch} (${info.python}), torch.set_num_threads(${o.torchThreads}) -> ${info.threads} threads, BLAS: ${info.blas}, OMP_WAIT_POLICY=${TORCH_ENV.OMP_WAIT_POLICY ?? '(unset)'}`);
  return { server, info };
}

/** Each engine's matmul peak, after the warm-up (a cold OpenBLAS measured 3x below its warm speed here), one engine at a time. */
async function measurePeaks(o: BenchOptions, backend: string, torch: TorchServer | null, log: Log): Promise<{ peak: number; torchPeak: number | null }> {
  const peak = matmulPeak(Math.max(5, o.repeats));
  const torchPeak = torch ? await torch.peak(Math.max(5, o.repeats)) : null;
  log(`matmul peak [${PEAK_SHAPE[0]}x${PEAK_SHAPE[1]}]@[${PEAK_SHAPE[1]}x${PEAK_SHAPE[2]}]: ${backend} ${peak.toFixed(1)} GFLOP/s${torchPeak ? `, torch ${torchPeak.toFixed(1)} GFLOP/s` : ''}`);
  return { peak, torchPeak };
}

/**
 * Rounds of training steps, tfjs and torch alternating who goes first (so a slow drift of the
 * machine does not favour one side); per-round ms/step and ratios. `torchLoss` is torch's last loss.
 */
async function timeTraining(o: BenchOptions, engine: TfjsEngine, torch: TorchServer | null, backend: string, tokensPerStep: number, log: Log): Promise<Timings & { torchLoss?: number }> {
  const t: Timings & { torchLoss?: number } = { tfMs: [], torchMs: [], ratios: [] };
  const tps = (ms: number) => Math.round((tokensPerStep / ms) * 1e3);
  const torchRound = async () => {
    const r = await torch!.train(o.steps);
    t.torchLoss = r.loss;
    return r.step_ms;
  };
  for (let r = 0; r < o.repeats; r++) {
    let b = 0;
    if (torch && r % 2 === 1) b = await torchRound();
    const a = engine.train(o.steps);
    if (torch && r % 2 === 0) b = await torchRound();
    t.tfMs.push(a);
    if (torch) {
      t.torchMs.push(b);
      t.ratios.push(b / a);
    }
    log(`round ${r + 1}/${o.repeats}: ${backend} ${a.toFixed(1)} ms/step (${tps(a)} tokens/s)${torch ? `, torch ${b.toFixed(1)} ms/step (${tps(b)} tokens/s), ratio ${(b / a).toFixed(2)}` : ''}`);
  }
  return t;
}

/** Forward passes only (the evaluation and sampling path), paired the same way. */
async function timeForward(o: BenchOptions, engine: TfjsEngine, torch: TorchServer | null): Promise<Timings> {
  const t: Timings = { tfMs: [], torchMs: [], ratios: [] };
  engine.forward(1);
  if (torch) await torch.forward(1);
  for (let r = 0; r < o.repeats; r++) {
    let b = 0;
    if (torch && r % 2 === 1) b = (await torch.forward(o.steps)).step_ms;
    const a = engine.forward(o.steps);
    if (torch && r % 2 === 0) b = (await torch.forward(o.steps)).step_ms;
    t.tfMs.push(a);
    if (torch) {
      t.torchMs.push(b);
      t.ratios.push(b / a);
    }
  }
  return t;
}

type Profile = Awaited<ReturnType<typeof profileStep>>;

function logProfile(o: BenchOptions, prof: Profile, backend: string, log: Log): void {
  if (o.profile) {
    log(`profile of one training step on ${backend} (tf.profile; customGrad scopes, named "forward", include their inner kernels):`);
    for (const line of prof.table) log(`  ${line}`);
  }
  log(`kernel calls per training step: ${prof.calls} through the tfjs engine, ${prof.compute} of them compute kernels (the rest Identity, Reshape and tf.customGrad scopes)` +
    (prof.fallbacks === null ? '' : `; native kernels that fell back to tfjs-backend-cpu: ${prof.fallbacks}${prof.fallbackNames.length ? ` (${prof.fallbackNames.join(', ')})` : ''}`));
}

/** The columns both engines' rows share. */
function rowBase(o: BenchOptions, work: Workload, backend: string): BenchRow {
  const now = new Date().toISOString();
  return {
    run_id: `${now}-${process.pid}`, timestamp: now, preset: o.preset, device: backend === 'tensorflow' && o.gpu ? 'GPU (tfjs-node-gpu)' : cpus()[0]?.model ?? 'unknown',
    batch: o.batch, T: work.T, params: work.params, flops_per_token: work.flopsPerToken, steps: o.steps, repeats: o.repeats, node: process.version,
  };
}

function tfjsRow(base: BenchRow, work: Workload, backend: string, train: Timings, fwd: Timings, peak: number, prof: Profile, loss: number): BenchRow {
  const stepMs = median(train.tfMs);
  const tps = work.tokensPerStep / (stepMs / 1e3);
  const gflops = (work.flopsPerToken * tps) / 1e9;
  const { ratios } = train;
  return {
    ...base,
    engine: 'tfjs',
    backend,
    threads: threadsOf(backend),
    step_ms: stepMs,
    step_ms_min: Math.min(...train.tfMs),
    step_ms_max: Math.max(...train.tfMs),
    tokens_per_s: tps,
    gflops,
    peak_gflops: peak,
    utilisation: gflops / peak,
    rss_mb: rssMb(),
    tf_peak_mb: prof.peakBytes / 2 ** 20,
    forward_tokens_per_s: work.tokensPerStep / (median(fwd.tfMs) / 1e3),
    kernel_calls: prof.calls,
    compute_kernel_calls: prof.compute,
    native_fallback_calls: prof.fallbacks,
    loss,
    reference: ratios.length ? 'torch' : null,
    ratio_vs_reference: ratios.length ? median(ratios) : null,
    ratio_min: ratios.length ? Math.min(...ratios) : null,
    ratio_max: ratios.length ? Math.max(...ratios) : null,
    forward_ratio_vs_reference: fwd.ratios.length ? median(fwd.ratios) : null,
  };
}

function torchRow(base: BenchRow, work: Workload, info: TorchInfo, train: Timings, fwd: Timings, peak: number | null, rss: number, loss: number | undefined): BenchRow {
  const stepMs = median(train.torchMs);
  const tps = work.tokensPerStep / (stepMs / 1e3);
  const gflops = (work.flopsPerToken * tps) / 1e9;
  return {
    ...base,
    engine: 'torch',
    backend: `torch ${info.torch} (${info.blas})`,
    threads: info.threads,
    step_ms: stepMs,
    step_ms_min: Math.min(...train.torchMs),
    step_ms_max: Math.max(...train.torchMs),
    tokens_per_s: tps,
    gflops,
    peak_gflops: peak,
    utilisation: peak ? gflops / peak : null,
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
  };
}

export async function runBench(o: BenchOptions, log: Log = (l) => process.stderr.write(`${l}\n`)): Promise<BenchSummary> {
  validateBenchOptions(o);
  if (isBrowserBackend(o.backend)) return runBrowserBench({ ...o, backend: o.backend }, log);
  const info = await selectBackend(o.backend, o.gpu);
  log(describeBackend(info));
  const backend = info.name;
  const work = prepareWorkload(o, log);
  const engine = new TfjsEngine(work, o.batch, o.seed);
  let torch: { server: TorchServer; info: TorchInfo } | null = null;
  const tmp = o.reference ? mkdtempSync(join(tmpdir(), 'persona-bench-')) : null;
  try {
    if (o.reference === 'torch') torch = await startTorch(o, work, tmp!, log);
    const server = torch?.server ?? null;
    if (o.warmup > 0) {
      engine.train(o.warmup);
      if (server) await server.train(o.warmup);
    }
    const { peak, torchPeak } = await measurePeaks(o, backend, server, log);
    const train = await timeTraining(o, engine, server, backend, work.tokensPerStep, log);
    const fwd = await timeForward(o, engine, server);
    const loss = engine.lastLoss;  // before the profiled step
    const prof = await engine.profile(backend);
    logProfile(o, prof, backend, log);
    const base = rowBase(o, work, backend);
    const rows: BenchRow[] = [tfjsRow(base, work, backend, train, fwd, peak, prof, loss)];
    if (torch) rows.push(torchRow(base, work, torch.info, train, fwd, torchPeak, (await torch.server.forward(1)).rss_mb, train.torchLoss));
    if (o.out) appendBenchRows(join(o.out, 'bench.arrow'), rows);
    return { rows, ratios: train.ratios };
  } finally {
    await torch?.server.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    engine.dispose();
  }
}
