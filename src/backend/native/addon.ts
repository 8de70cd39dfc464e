/**
 * Guarded loader for the native backend's Node-API addon (native/build/Release/persona_native.node,
 * built by native/build.mjs from native/src). Never throws: when the addon is unavailable, `addon`
 * is null and `reason` says why.
 *
 * Environment:
 * - PERSONA_NATIVE_DISABLE=1: behave as if the addon were not built.
 * - PERSONA_NATIVE_ADDON=/path/to/persona_native.node: load that file instead.
 * - OMP_WAIT_POLICY / GOMP_SPINCOUNT / OMP_NUM_THREADS: OpenMP settings, read once when the addon
 *   (and so libgomp) is first loaded. Defaults set here if unset: see OMP_DEFAULTS.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** A matrix-product engine: 0 auto (per-case default), 1 oneDNN, 2 OpenBLAS, 3 plain loop. */
export type GemmEngine = 0 | 1 | 2 | 3;

export interface NativeAddonInfo {
  dnnl: boolean;
  blas: boolean;
  threads: number;
  openmp: boolean;
}

type F32 = Float32Array;
type I32 = Int32Array;
type Bits32 = Float32Array | Int32Array;

/** The functions exported by native/src/addon.cc. Outputs are preallocated by the caller. */
export interface NativeAddon {
  info(): NativeAddonInfo;
  setThreads(n: number): number;
  /** case = transA*2 + transB (+4 when batched); engine as GemmEngine. */
  setGemmDefault(opCase: number, engine: GemmEngine): void;
  matmul(
    a: F32, b: F32, c: F32, batch: number, batchA: number, batchB: number, m: number, n: number, k: number,
    transA: boolean, transB: boolean, bias: F32 | null, act: number, accumulate: boolean, engine: GemmEngine,
  ): number;
  binary(op: number, a: F32, aShape: number[], b: F32, bShape: number[], out: F32, outShape: number[]): void;
  unary(op: number, x: F32, y: F32): void;
  addN(xs: F32[], y: F32): void;
  select(cond: Uint8Array, a: F32, b: F32, out: F32): void;
  reduce(op: number, x: F32, out: F32, outer: number, r: number, inner: number): void;
  softmax(x: F32, y: F32, rows: number, cols: number, log: boolean): void;
  transpose(x: Bits32, y: Bits32, shape: number[], perm: number[]): void;
  slice(x: Bits32, y: Bits32, shape: number[], begin: number[], size: number[]): void;
  splitCols(x: Bits32, outs: Bits32[], outer: number, widths: number[]): void;
  concatCols(ins: Bits32[], y: Bits32, outer: number, widths: number[]): void;
  gatherRows(x: Bits32, idx: I32, y: Bits32, rows: number, rowSize: number): number;
  segmentSum(x: F32, ids: I32, y: F32, nRows: number, rowSize: number, nSeg: number): void;
  colSum(x: F32, out: F32, rows: number, cols: number): void;
  linear(x: F32, w: F32, b: F32 | null, y: F32, m: number, k: number, n: number, transW?: boolean): void;
  linearGrad(
    dy: F32, x: F32, w: F32, dx: F32, dw: F32, db: F32 | null, m: number, k: number, n: number, transW?: boolean,
  ): void;
  linearGelu(x: F32, w: F32, b: F32 | null, y: F32, h: F32, m: number, k: number, n: number): void;
  linearGeluGrad(
    dy: F32, x: F32, w: F32, h: F32, dx: F32, dw: F32, db: F32 | null, m: number, k: number, n: number,
  ): void;
  layerNorm(x: F32, gamma: F32, beta: F32, eps: number, y: F32, mean: F32, rstd: F32, rows: number, c: number): void;
  layerNormGrad(
    dy: F32, x: F32, gamma: F32, mean: F32, rstd: F32, dx: F32, dgamma: F32, dbeta: F32, rows: number, c: number,
  ): void;
  gelu(x: F32, y: F32): void;
  geluGrad(dy: F32, x: F32, dx: F32): void;
  attention(qkv: F32, out: F32, probs: F32, b: number, t: number, c: number, h: number): void;
  attentionGrad(dout: F32, qkv: F32, probs: F32, dqkv: F32, b: number, t: number, c: number, h: number): void;
  softmaxXent(logits: F32, targets: I32, weights: F32, dlogits: F32 | null, n: number, v: number): number;
  embedding(ids: I32, wte: F32, wpe: F32, x: F32, b: number, t: number, c: number, v: number, maxT: number): void;
  embeddingGrad(
    dx: F32, ids: I32, dwte: F32, dwpe: F32, b: number, t: number, c: number, v: number, maxT: number,
  ): void;
  adamw(
    list: F32[], decayMask: boolean[], lr: number, beta1: number, beta2: number, eps: number, weightDecay: number,
    step: number, gradScale: number,
  ): void;
  sumSquares(xs: F32[]): number;
}

export interface NativeAddonLoad {
  addon: NativeAddon | null;
  /** Empty when loaded; otherwise why the addon is unavailable. */
  reason: string;
  /** The file loaded or looked for. */
  path: string;
}

/**
 * OpenMP defaults applied before the addon loads (only where the variable is unset).
 * Passive waiting: the idle OpenMP worker sleeps between kernels. Measured with the simulated step
 * of native/bench-kernels.ts on the 2-core VM: on an idle machine libgomp's default (spin, then
 * sleep; `OMP_WAIT_POLICY=` empty) was 5-10% faster (70-81 ms vs 76-86 ms per step), but whenever
 * another process used a core it collapsed to 170-1400 ms per step while passive stayed at 120-140
 * ms; `active` behaved like the default. Set OMP_WAIT_POLICY yourself to override.
 */
export const OMP_DEFAULTS: Record<string, string> = {
  OMP_WAIT_POLICY: 'passive',
  // OpenBLAS (pthreads build) workers otherwise spin ~2^28 cycles after each call.
  OPENBLAS_THREAD_TIMEOUT: '4',
};

export const NATIVE_ADDON_PATH = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'native', 'build', 'Release', 'persona_native.node',
);

let loaded: NativeAddonLoad | null = null;

export function loadNativeAddon(): NativeAddonLoad {
  if (loaded) return loaded;
  const file = process.env.PERSONA_NATIVE_ADDON || NATIVE_ADDON_PATH;
  if (process.env.PERSONA_NATIVE_DISABLE === '1') {
    loaded = { addon: null, reason: 'disabled by PERSONA_NATIVE_DISABLE=1', path: file };
    return loaded;
  }
  if (!existsSync(file)) {
    loaded = {
      addon: null,
      reason: `native addon not built (${path.relative(process.cwd(), file) || file} missing): run \`node native/build.mjs\` ` +
        '(needs g++ and libdnnl-dev or libopenblas-dev: `sudo apt-get install libdnnl-dev libopenblas-dev`)',
      path: file,
    };
    return loaded;
  }
  for (const [k, v] of Object.entries(OMP_DEFAULTS)) if (process.env[k] === undefined) process.env[k] = v;
  try {
    const require = createRequire(import.meta.url);
    const addon = require(file) as NativeAddon;
    addon.info();
    loaded = { addon, reason: '', path: file };
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    loaded = { addon: null, reason: `native addon failed to load: ${msg}`, path: file };
  }
  return loaded;
}
