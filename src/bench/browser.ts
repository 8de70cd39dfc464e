/**
 * `npm run bench -- --backend webgpu` (or webgl): the trainer's step timed in headless Chromium on
 * this machine's GPU, through tfjs's WebGPU backend (Metal on macOS, D3D12 on Windows, Vulkan on
 * Linux) or its WebGL backend. The same model, initial weights, token stream, batches and AdamW
 * settings as the other engines; the page (src/explorer/browser/bench-page.ts) runs the project's
 * own GPT and trainStep. One row per run in the same table and bench.arrow as the other engines.
 * Without a GPU Chromium falls back to SwiftShader (a CPU implementation of Vulkan): the row's
 * device says so, and those numbers are not GPU numbers.
 */
import { join } from 'node:path';
import type { ServerResponse } from 'node:http';
import { loadPretrainStreams, loadVocab } from '../data/load.js';
import { launchChromium } from '../explorer/chromium.js';
import type { BenchResult, BenchSpec } from '../explorer/protocol.js';
import { send, startPageServer } from '../explorer/server.js';
import { countParameters, loadModelPreset, type ModelConfig } from '../model/model-config.js';
import { initialWeights, parameterShapes } from '../model/gpt.js';
import { PRETRAIN_DEFAULTS } from '../pipeline/stage-defaults.js';
import { adamOptions } from '../train/training-session.js';
import { PEAK_SHAPE, syntheticStream, type BenchOptions } from './bench.js';
import { FLOPS_FORMULA, median, trainFlopsPerToken } from './flops.js';
import { concat } from './parity.js';
import { appendBenchRows, type BenchRow } from './bench-rows.js';
import { worldVocabulary } from '../world/lexicon-strings.js';

export const BROWSER_BACKENDS = ['webgpu', 'webgl'] as const;
export type BrowserBenchBackend = (typeof BROWSER_BACKENDS)[number];

export const isBrowserBackend = (b: string): b is BrowserBenchBackend => (BROWSER_BACKENDS as readonly string[]).includes(b);

/** The bench's options, on a browser backend (PyTorch threads, precision and ISA caps do not apply there). */
type BrowserBenchOptions = Omit<BenchOptions, 'backend' | 'torchThreads' | 'precision' | 'maxIsa'> & { backend: BrowserBenchBackend };

const bytes = (a: Float32Array | Uint16Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function sendBytes(res: ServerResponse, b: Uint8Array): true {
  send(res, 200, b, 'application/octet-stream');
  return true;
}

/** Time the training step in headless Chromium; returns the row (also appended to <out>/bench.arrow). */
export async function runBrowserBench(o: BrowserBenchOptions, log: (line: string) => void): Promise<{ rows: BenchRow[]; ratios: number[] }> {
  const peakShape = PEAK_SHAPE;
  if (o.reference) throw new Error(`--reference torch runs beside a node backend; it cannot be combined with --backend ${o.backend}`);
  if (o.gpu) throw new Error(`--gpu is tfjs-node-gpu; --backend ${o.backend} runs in Chromium and uses the GPU already`);
  if (o.profile) log('note: --profile is not available in the browser; the kernel call count is still reported');
  const vocabSize = o.data ? loadVocab(o.data).size : worldVocabulary().size;
  const cfg: ModelConfig = { ...loadModelPreset(o.preset), vocab_size: vocabSize };
  const T = cfg.block_size;
  const stream = o.data ? loadPretrainStreams(o.data).train : syntheticStream(vocabSize, 1 << 18, o.seed);
  const weights = concat([initialWeights(cfg, o.seed)], parameterShapes(cfg).map(([n]) => n));
  const tokensPerStep = o.batch * T;
  const flopsPerToken = trainFlopsPerToken(cfg);
  log(`model: ${o.preset} (${cfg.n_layer} layers x ${cfg.n_embd} wide, ${cfg.n_head} heads, context ${T}, vocab ${vocabSize}); batch ${o.batch} (${tokensPerStep} tokens/step); ${o.data ? `stream of ${o.data}` : 'synthetic stream'}`);
  log(`FLOPs: ${FLOPS_FORMULA} = ${(flopsPerToken / 1e6).toFixed(2)} MFLOP/token`);
  const spec: BenchSpec = {
    config: cfg, batch: o.batch, steps: o.steps, repeats: o.repeats, warmup: o.warmup, seed: o.seed, adam: adamOptions(PRETRAIN_DEFAULTS),
    schedule: { lr: PRETRAIN_DEFAULTS.lr, minLr: PRETRAIN_DEFAULTS.minLr, warmup: PRETRAIN_DEFAULTS.warmup, steps: 1e9 }, peakShape: [...peakShape],
  };
  const server = await startPageServer([
    (_req, res, path) => path === '/bench/stream.bin' && sendBytes(res, bytes(stream)),
    (_req, res, path) => path === '/bench/weights.bin' && sendBytes(res, bytes(weights)),
  ]);
  const browser = await launchChromium();
  let r: BenchResult;
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${server.url}bench.html`, { timeout: 180_000 });
    await page.waitForFunction('globalThis.personaBench !== undefined', undefined, { timeout: 60_000 });
    if (errors.length) throw new Error(`the benchmark page failed: ${errors[0]}`);
    log(`browser: Chromium ${browser.version()}; running ${o.warmup} warm-up and ${o.repeats} x ${o.steps} timed steps on ${o.backend}`);
    r = await page.evaluate(
      ([backend, s]) => (globalThis as unknown as { personaBench: { bench(b: string, s: BenchSpec): Promise<BenchResult> } }).personaBench.bench(backend, s),
      [o.backend, spec] as const,
    );
  } finally {
    await browser.close();
    await server.close();
  }
  log(`backend: ${r.runtime.backend} in Chromium (${r.runtime.device})${/swiftshader/i.test(r.runtime.device) ? ' -- SwiftShader is a CPU implementation of Vulkan: these are not GPU numbers' : ''}`);
  log(`matmul peak [${peakShape[0]}x${peakShape[1]}]@[${peakShape[1]}x${peakShape[2]}]: ${r.peakGflops.toFixed(1)} GFLOP/s`);
  r.stepMs.forEach((ms, i) => log(`round ${i + 1}/${o.repeats}: ${o.backend} ${ms.toFixed(1)} ms/step (${Math.round((tokensPerStep / ms) * 1e3)} tokens/s)`));
  const now = new Date().toISOString();
  const stepMs = median(r.stepMs);
  const tps = tokensPerStep / (stepMs / 1e3);
  const gflops = (flopsPerToken * tps) / 1e9;
  const row: BenchRow = {
    run_id: `${now}-${process.pid}`, timestamp: now, engine: 'tfjs', backend: `${r.runtime.backend} (Chromium)`, preset: o.preset, device: r.runtime.device, threads: null,
    batch: o.batch, T, params: countParameters(cfg).total, flops_per_token: flopsPerToken, steps: o.steps, repeats: o.repeats,
    step_ms: stepMs, step_ms_min: Math.min(...r.stepMs), step_ms_max: Math.max(...r.stepMs), tokens_per_s: tps, gflops, peak_gflops: r.peakGflops,
    utilisation: gflops / r.peakGflops, rss_mb: null, tf_peak_mb: r.peakBytes / 2 ** 20, forward_tokens_per_s: tokensPerStep / (median(r.forwardMs) / 1e3),
    kernel_calls: r.kernelCalls, compute_kernel_calls: r.computeKernelCalls, native_fallback_calls: null, loss: r.loss, reference: null,
    ratio_vs_reference: null, ratio_min: null, ratio_max: null, forward_ratio_vs_reference: null, node: process.version, browser: r.userAgent,
  };
  if (o.out) appendBenchRows(join(o.out, 'bench.arrow'), [row]);
  return { rows: [row], ratios: [] };
}
