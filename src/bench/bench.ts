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
import { PRETRAIN_DEFAULTS } from '../train/options.js';
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

export async function runBench(o: BenchOptions, log: Log = (l) => process.stderr.write(`${l}\n`)): Promise<BenchSummary> {
  for (const [k, v] of [['batch', o.batch], ['steps', o.steps], ['repeats', o.repeats]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} must be a positive integer, got ${v}`);
  }
  if (!Number.isInteger(o.warmup) || o.warmup < 0) throw new Error(`--warmup must be an integer >= 0, got ${o.warmup}`);
  if (o.data && !existsSync(join(o.data, 'pretrain.arrow'))) throw new Error(`${o.data} has no pretrain.arrow; generate it with npm run data, or drop --data to use a synthetic stream`);
  if (isBrowserBackend(o.backend)) return runBrowserBench({ ...o, backend: o.backend }, log);

  const info = await selectBackend(o.backend, o.gpu);
  log(describeBackend(info));
  const backend = info.name;
  const vocabSize = o.data ? loadVocab(o.data).size : worldVocabulary().size;
  const cfg: ModelConfig = { ...loadModelPreset(o.preset), vocab_size: vocabSize };
  const T = cfg.block_size;
  const stream = o.data ? loadPretrainStreams(o.data).train : syntheticStream(vocabSize, 1 << 18, o.seed);
  const tokensPerStep = o.batch * T;
  const flopsPerToken = trainFlopsPerToken(cfg);
  const params = countParameters(cfg).total;
  log(`model: ${o.preset} (${cfg.n_layer} layers x ${cfg.n_embd} wide, ${cfg.n_head} heads, context ${T}, vocab ${vocabSize}, ${(params / 1e6).toFixed(3)}M parameters); batch ${o.batch} (${tokensPerStep} tokens/step); ${o.data ? `stream of ${o.data}` : 'synthetic stream'}`);
  log(`FLOPs: ${FLOPS_FORMULA} = ${(flopsPerToken / 1e6).toFixed(2)} MFLOP/token`);

  const weights = initialWeights(cfg, o.seed);
  // Copies: on cpu-storage backends a variable shares its source array, and AdamW updates in place.
  const model = new GPT(cfg, new Map([...weights].map(([n, w]) => [n, w.slice()])));
  const adam: AdamWOptions = adamOptions(PRETRAIN_DEFAULTS);
  const optimizer = new AdamW(model.params, adam);
  const sampler = new WindowSampler(stream, o.batch, T, o.seed);
  const schedule = { lr: PRETRAIN_DEFAULTS.lr, minLr: PRETRAIN_DEFAULTS.minLr, warmup: PRETRAIN_DEFAULTS.warmup, steps: 1e9 };
  let step = 0;
  let lastLoss = Number.NaN;
  const tfSteps = (n: number) => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      lastLoss = trainStep(model, optimizer, sampler, 1, learningRate(step, schedule), step).loss;
      step++;
    }
    return (performance.now() - t0) / n;
  };
  const fwdIds = sampler.next();
  const tfForward = (n: number) => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      // cpu, wasm, native and tfjs-node run kernels synchronously: the logits exist when forward returns.
      tf.tidy(() => {
        model.forward(tf.tensor2d(fwdIds.ids, [fwdIds.batch, fwdIds.T], 'int32'));
      });
    }
    return (performance.now() - t0) / n;
  };

  let torch: TorchServer | null = null;
  let torchInfo: TorchInfo | null = null;
  const tmp = o.reference ? mkdtempSync(join(tmpdir(), 'persona-bench-')) : null;
  try {
    if (o.reference === 'torch') {
      torchInfo = findTorch(o.torchThreads);
      const warn = blasWarning(torchInfo);
      if (warn) log(warn);
      const streamFile = join(tmp!, 'stream.u16');
      writeFileSync(streamFile, new Uint8Array(stream.buffer, stream.byteOffset, stream.byteLength));
      const initFile = join(tmp!, 'init.f32');
      const flat = concat([weights], parameterShapes(cfg).map(([n]) => n));
      writeFileSync(initFile, new Uint8Array(flat.buffer));
      const started = await TorchServer.start({
        python: torchInfo.python, config: cfg, streamFile, initFile, batch: o.batch, threads: o.torchThreads, seed: o.seed,
        lr: schedule.lr, warmup: schedule.warmup, beta1: adam.beta1, beta2: adam.beta2, eps: adam.eps, weightDecay: adam.weightDecay, gradClip: adam.gradClip,
      });
      torch = started.server;
      torchInfo = started.info;
      if (TORCH_ENV.OPENBLAS_CORETYPE) {
        const note = `note: OPENBLAS_CORETYPE=${TORCH_ENV.OPENBLAS_CORETYPE} is set: OpenBLAS (PyTorch's BLAS) runs that core's kernels, not this CPU's own (on an AVX-512 machine Haswell's measured ~180 GFLOP/s against ~300 autodetected); if the torch matmul peak below is low, rerun with env -u OPENBLAS_CORETYPE for the fastest reference`;
        log(note);
      }
      log(`reference: PyTorch ${torchInfo.torch} (${torchInfo.python}), torch.set_num_threads(${o.torchThreads}) -> ${torchInfo.threads} threads, BLAS: ${torchInfo.blas}, OMP_WAIT_POLICY=${TORCH_ENV.OMP_WAIT_POLICY ?? '(unset)'}`);
    }

    if (o.warmup > 0) {
      tfSteps(o.warmup);
      if (torch) await torch.train(o.warmup);
    }
    // Peaks after the warm-up (a cold OpenBLAS measured 3x below its warm speed here), one engine at a time.
    const peak = matmulPeak(Math.max(5, o.repeats));
    const torchPeak = torch ? await torch.peak(Math.max(5, o.repeats)) : null;
    log(`matmul peak [${PEAK_SHAPE[0]}x${PEAK_SHAPE[1]}]@[${PEAK_SHAPE[1]}x${PEAK_SHAPE[2]}]: ${backend} ${peak.toFixed(1)} GFLOP/s${torchPeak ? `, torch ${torchPeak.toFixed(1)} GFLOP/s` : ''}`);
    const tfMs: number[] = [];
    const torchMs: number[] = [];
    const ratios: number[] = [];
    let torchLoss: number | undefined;
    for (let r = 0; r < o.repeats; r++) {
      // Alternate who goes first, so a slow drift of the machine does not favour one side.
      let b = 0;
      const torchRound = async () => {
        const t = await torch!.train(o.steps);
        torchLoss = t.loss;
        return t.step_ms;
      };
      if (torch && r % 2 === 1) b = await torchRound();
      const a = tfSteps(o.steps);
      if (torch && r % 2 === 0) b = await torchRound();
      tfMs.push(a);
      if (torch) {
        torchMs.push(b);
        ratios.push(b / a);
      }
      log(`round ${r + 1}/${o.repeats}: ${backend} ${a.toFixed(1)} ms/step (${Math.round(tokensPerStep / a * 1e3)} tokens/s)${torch ? `, torch ${b.toFixed(1)} ms/step (${Math.round(tokensPerStep / b * 1e3)} tokens/s), ratio ${(b / a).toFixed(2)}` : ''}`);
    }

    // Forward only (evaluation and sampling path), paired the same way.
    const fwdSteps = o.steps;
    tfForward(1);
    if (torch) await torch.forward(1);
    const fwdMs: number[] = [];
    const torchFwdMs: number[] = [];
    const forwardRatios: number[] = [];
    for (let r = 0; r < o.repeats; r++) {
      let b = 0;
      if (torch && r % 2 === 1) b = (await torch.forward(fwdSteps)).step_ms;
      const a = tfForward(fwdSteps);
      if (torch && r % 2 === 0) b = (await torch.forward(fwdSteps)).step_ms;
      fwdMs.push(a);
      if (torch) {
        torchFwdMs.push(b);
        forwardRatios.push(b / a);
      }
    }

    const prof = await profileStep(() => {
      trainStep(model, optimizer, sampler, 1, learningRate(step, schedule), step);
      step++;
    }, backend);
    if (o.profile) {
      log(`profile of one training step on ${backend} (tf.profile; customGrad scopes, named "forward", include their inner kernels):`);
      for (const line of prof.table) log(`  ${line}`);
    }
    log(`kernel calls per training step: ${prof.calls} through the tfjs engine, ${prof.compute} of them compute kernels (the rest Identity, Reshape and tf.customGrad scopes)` +
      (prof.fallbacks === null ? '' : `; native kernels that fell back to tfjs-backend-cpu: ${prof.fallbacks}${prof.fallbackNames.length ? ` (${prof.fallbackNames.join(', ')})` : ''}`));

    const now = new Date().toISOString();
    const runId = `${now}-${process.pid}`;
    const stepMs = median(tfMs);
    const tps = tokensPerStep / (stepMs / 1e3);
    const gflops = (flopsPerToken * tps) / 1e9;
    const device = backend === 'tensorflow' && o.gpu ? 'GPU (tfjs-node-gpu)' : cpus()[0]?.model ?? 'unknown';
    const base = {
      run_id: runId, timestamp: now, preset: o.preset, device, batch: o.batch, T, params, flops_per_token: flopsPerToken,
      steps: o.steps, repeats: o.repeats, node: process.version,
    };
    const rTfjs: BenchRow = {
      ...base,
      engine: 'tfjs',
      backend,
      threads: threadsOf(backend),
      step_ms: stepMs,
      step_ms_min: Math.min(...tfMs),
      step_ms_max: Math.max(...tfMs),
      tokens_per_s: tps,
      gflops,
      peak_gflops: peak,
      utilisation: gflops / peak,
      rss_mb: rssMb(),
      tf_peak_mb: prof.peakBytes / 2 ** 20,
      forward_tokens_per_s: tokensPerStep / (median(fwdMs) / 1e3),
      kernel_calls: prof.calls,
      compute_kernel_calls: prof.compute,
      native_fallback_calls: prof.fallbacks,
      loss: lastLoss,
      reference: torch ? 'torch' : null,
      ratio_vs_reference: ratios.length ? median(ratios) : null,
      ratio_min: ratios.length ? Math.min(...ratios) : null,
      ratio_max: ratios.length ? Math.max(...ratios) : null,
      forward_ratio_vs_reference: forwardRatios.length ? median(forwardRatios) : null,
    };
    const rows: BenchRow[] = [rTfjs];
    if (torch && torchInfo) {
      const tStep = median(torchMs);
      const tTps = tokensPerStep / (tStep / 1e3);
      const tG = (flopsPerToken * tTps) / 1e9;
      const tRss = (await torch.forward(1)).rss_mb;
      rows.push({
        ...base,
        engine: 'torch',
        backend: `torch ${torchInfo.torch} (${torchInfo.blas})`,
        threads: torchInfo.threads,
        step_ms: tStep,
        step_ms_min: Math.min(...torchMs),
        step_ms_max: Math.max(...torchMs),
        tokens_per_s: tTps,
        gflops: tG,
        peak_gflops: torchPeak,
        utilisation: torchPeak ? tG / torchPeak : null,
        rss_mb: tRss,
        tf_peak_mb: null,
        forward_tokens_per_s: tokensPerStep / (median(torchFwdMs) / 1e3),
        kernel_calls: null,
        compute_kernel_calls: null,
        native_fallback_calls: null,
        loss: torchLoss ?? null,
        reference: null,
        ratio_vs_reference: null,
        ratio_min: null,
        ratio_max: null,
        forward_ratio_vs_reference: null,
      });
    }
    if (o.out) appendBenchRows(join(o.out, 'bench.arrow'), rows);
    return { rows, ratios };
  } finally {
    await torch?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    optimizer.dispose();
    model.dispose();
  }
}
