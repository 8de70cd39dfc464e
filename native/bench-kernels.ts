/**
 * Kernel benchmark of the native backend: `npx tsx native/bench-kernels.ts [--no-cpu] [--reps N]`.
 *
 * 1. GFLOP/s of the matrix products of the reference model (4 layers, width 128, 4 heads, context 128,
 *    batch 16, vocab 3000: M = B*T = 2048), forward and backward (transposed) variants and the batched
 *    attention shapes, for: the 'native' tfjs kernel (tf.matMul, engine overhead included), the addon
 *    with oneDNN, with OpenBLAS, with its plain C++ loop, and the tfjs 'cpu' backend.
 * 2. Time per call of each fused kernel and of the hot standard kernels at the model's shapes
 *    (through tf.engine().runKernel, so the ~tens of us of tfjs overhead per call are included).
 * 3. A simulated training step of that model made of the fused kernels only (what the model code
 *    should reach), with its kernel-call count and tokens/s.
 * --step-only runs part 3 alone.
 * Timings: best of --reps runs (default 5) after a warm-up (best, not median: the machine is shared). OMP_WAIT_POLICY etc. as in the
 * environment (the loader defaults to passive; try OMP_WAIT_POLICY=active to compare).
 */
import * as tf from '@tensorflow/tfjs';
import { loadNativeAddon, type GemmEngine } from '../src/backend/native/addon.js';
import * as K from '../src/backend/native/contracts.js';
import { registerNativeBackend, nativeBackendStatus } from '../src/backend/native/native-backend.js';

const args = process.argv.slice(2);
const withCpu = !args.includes('--no-cpu');
const stepOnly = args.includes('--step-only');
const reps = Number(args[args.indexOf('--reps') + 1]) || (args.includes('--reps') ? 5 : 5);

if (!registerNativeBackend()) {
  console.log(`native backend unavailable: ${nativeBackendStatus().reason}`);
  process.exit(0);
}
const addon = loadNativeAddon().addon!;
await tf.setBackend('native');
const info = addon.info();
console.log(`native addon: oneDNN ${info.dnnl}, OpenBLAS ${info.blas}, OpenMP ${info.openmp}, threads ${info.threads}, ` +
  `OMP_WAIT_POLICY=${process.env.OMP_WAIT_POLICY ?? '(unset)'}`);

function rand(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (Math.random() * 2 - 1) * scale;
  return a;
}
/** Best (minimum) seconds per call over the reps (the machine is shared: min is the least disturbed),
 * each rep timing enough iterations for ~minMs. */
function timeIt(fn: () => void, minMs = 30, maxIters = 1000): number {
  fn();
  const t0 = performance.now();
  fn();
  const once = Math.max(performance.now() - t0, 1e-3);
  const iters = Math.max(1, Math.min(maxIters, Math.round(minMs / once)));
  const samples: number[] = [];
  for (let r = 0; r < reps; r++) {
    const s = performance.now();
    for (let i = 0; i < iters; i++) fn();
    samples.push((performance.now() - s) / 1e3 / iters);
  }
  return Math.min(...samples);
}
const pad = (s: string | number, n: number) => String(s).padStart(n);

// ---------------------------------------------------------------- 1. matmul
const B = 16, Tn = 128, C = 128, H = 4, V = 3000, L = 4, M = B * Tn, hd = C / H;
type MM = [string, number, number, number, number, boolean, boolean]; // name, batch, m, n, k, tA, tB
const mmCases: MM[] = [
  ['qkv fwd    x@W  [2048,128]@[128,384]', 1, M, 3 * C, C, false, false],
  ['proj fwd   x@W  [2048,128]@[128,128]', 1, M, C, C, false, false],
  ['fc1 fwd    x@W  [2048,128]@[128,512]', 1, M, 4 * C, C, false, false],
  ['fc2 fwd    x@W  [2048,512]@[512,128]', 1, M, C, 4 * C, false, false],
  ['head fwd   x@W  [2048,128]@[128,3000]', 1, M, V, C, false, false],
  ['head tied  x@E^T [2048,128]@[3000,128]^T', 1, M, V, C, false, true],
  ['qkv dx     dy@W^T [2048,384]@[128,384]^T', 1, M, C, 3 * C, false, true],
  ['qkv dW     x^T@dy [2048,128]^T@[2048,384]', 1, C, 3 * C, M, true, false],
  ['fc1 dx     dy@W^T [2048,512]@[128,512]^T', 1, M, C, 4 * C, false, true],
  ['fc1 dW     x^T@dy [2048,128]^T@[2048,512]', 1, C, 4 * C, M, true, false],
  ['fc2 dx     dy@W^T [2048,128]@[512,128]^T', 1, M, 4 * C, C, false, true],
  ['fc2 dW     x^T@dy [2048,512]^T@[2048,128]', 1, 4 * C, C, M, true, false],
  ['head dx    dy@W^T [2048,3000]@[128,3000]^T', 1, M, C, V, false, true],
  ['head dW    x^T@dy [2048,128]^T@[2048,3000]', 1, C, V, M, true, false],
  ['attn q@k^T [64,128,32]@[64,128,32]^T', B * H, Tn, Tn, hd, false, true],
  ['attn qk    [64,128,32]@[64,32,128]', B * H, Tn, Tn, hd, false, false],
  ['attn p@v   [64,128,128]@[64,128,32]', B * H, Tn, hd, Tn, false, false],
  ['attn dp^T  [64,128,128]^T@[64,128,32]', B * H, Tn, hd, Tn, true, false],
];
const engines: [string, GemmEngine][] = [['oneDNN', 1], ['OpenBLAS', 2], ['C loop', 3]];
console.log('\n== matmul GFLOP/s (time per call) ==');
console.log(`${'shape'.padEnd(44)}${pad('native tf', 18)}${engines.map(([n]) => pad(n, 18)).join('')}${withCpu ? pad('tfjs cpu', 18) : ''}`);
for (const [name, batch, m, n, k, ta, tb] of stepOnly ? [] : mmCases) {
  const flops = 2 * batch * m * n * k;
  const a = rand(batch * m * k), bm = rand(batch * k * n), c = new Float32Array(batch * m * n);
  const aShape = batch > 1 ? [batch, ta ? k : m, ta ? m : k] : [ta ? k : m, ta ? m : k];
  const bShape = batch > 1 ? [batch, tb ? n : k, tb ? k : n] : [tb ? n : k, tb ? k : n];
  const cells: string[] = [];
  const cell = (sec: number) => `${pad((flops / sec / 1e9).toFixed(0), 6)} (${pad((sec * 1e6).toFixed(0), 6)}us)`;
  {
    const at = tf.tensor(a, aShape), bt = tf.tensor(bm, bShape);
    cells.push(cell(timeIt(() => tf.matMul(at, bt, ta, tb).dispose())));
    tf.dispose([at, bt]);
  }
  for (const [, e] of engines) {
    const avail = e === 1 ? info.dnnl : e === 2 ? info.blas : true;
    if (!avail || (e === 3 && flops > 2e9)) {
      cells.push(pad('-', 18));
      continue;
    }
    cells.push(cell(timeIt(() => addon.matmul(a, bm, c, batch, batch, batch, m, n, k, ta, tb, null, 0, false, e),
      e === 3 ? 5 : 30, e === 3 ? 3 : 1000)));
  }
  if (withCpu) {
    await tf.setBackend('cpu');
    const at = tf.tensor(a, aShape), bt = tf.tensor(bm, bShape);
    const saved = reps;
    cells.push(flops > 1.1e9 ? pad('-', 18) : cell(timeIt(() => tf.matMul(at, bt, ta, tb).dispose(), 1, 1)));
    void saved;
    tf.dispose([at, bt]);
    await tf.setBackend('native');
  }
  console.log(`${name.padEnd(44)}${cells.join('')}`);
}

// ---------------------------------------------------------------- 2. kernels
const run = (name: string, inputs: unknown, attrs: Record<string, unknown> = {}) =>
  tf.engine().runKernel(name, inputs as tf.NamedTensorMap, attrs as tf.NamedAttrMap);
const T = (shape: number[], scale = 0.5) => tf.tensor(rand(shape.reduce((p, q) => p * q, 1), scale), shape);
const ids = tf.tensor(Int32Array.from({ length: M }, () => Math.floor(Math.random() * V)), [B, Tn], 'int32');
const x = T([B, Tn, C]), x4 = T([B, Tn, 4 * C]), qkv = T([B, Tn, 3 * C]);
const wqkv = T([C, 3 * C], 0.1), bqkv = T([3 * C], 0.1), wfc = T([C, 4 * C], 0.1), bfc = T([4 * C], 0.1);
const wfc2 = T([4 * C, C], 0.1), bC = T([C], 0.1), whead = T([C, V], 0.1), gamma = T([C], 1), beta = T([C], 0.1);
const wte = T([V, C], 0.1), wpe = T([Tn, C], 0.1), logits = T([M, V], 2), targets = tf.reshape(ids, [M]);
const weights = tf.ones([M]);
const [, hfc] = run(K.PersonaLinearGelu, { x, w: wfc, b: bfc }) as tf.Tensor[];
const [, mean, rstd] = run(K.PersonaLayerNorm, { x, gamma, beta }, { eps: 1e-5 }) as tf.Tensor[];
const [, probs] = run(K.PersonaAttention, { qkv }, { nHead: H }) as tf.Tensor[];
const kernelCases: [string, () => unknown][] = [
  [`${K.PersonaLinear} qkv [2048,128]->384`, () => run(K.PersonaLinear, { x, w: wqkv, b: bqkv })],
  [`${K.PersonaLinearGrad} qkv`, () => run(K.PersonaLinearGrad, { dy: qkv, x, w: wqkv }, { hasBias: true })],
  [`${K.PersonaLinearGelu} fc1 128->512`, () => run(K.PersonaLinearGelu, { x, w: wfc, b: bfc })],
  [`${K.PersonaLinearGeluGrad} fc1`, () => run(K.PersonaLinearGeluGrad, { dy: x4, x, w: wfc, h: hfc })],
  [`${K.PersonaLinear} fc2 512->128`, () => run(K.PersonaLinear, { x: x4, w: wfc2, b: bC })],
  [`${K.PersonaLinearGrad} fc2`, () => run(K.PersonaLinearGrad, { dy: x, x: x4, w: wfc2 }, { hasBias: true })],
  [`${K.PersonaLinear} head 128->3000`, () => run(K.PersonaLinear, { x, w: whead })],
  [`${K.PersonaLinearGrad} head`, () => run(K.PersonaLinearGrad, { dy: logits, x, w: whead }, { hasBias: false })],
  [`${K.PersonaLayerNorm} [2048,128]`, () => run(K.PersonaLayerNorm, { x, gamma, beta }, { eps: 1e-5 })],
  [K.PersonaLayerNormGrad, () => run(K.PersonaLayerNormGrad, { dy: x, x, gamma, mean, rstd })],
  [`${K.PersonaGelu} [2048,512]`, () => run(K.PersonaGelu, { x: x4 })],
  [`${K.PersonaGeluGrad} [2048,512]`, () => run(K.PersonaGeluGrad, { dy: x4, x: x4 })],
  [`${K.PersonaAttention} B16 T128 C128 H4`, () => run(K.PersonaAttention, { qkv }, { nHead: H })],
  [K.PersonaAttentionGrad, () => run(K.PersonaAttentionGrad, { dout: x, qkv, probs }, { nHead: H })],
  [`${K.PersonaSoftmaxXent} [2048,3000]`, () => run(K.PersonaSoftmaxXent, { logits, targets, weights })],
  [`${K.PersonaSoftmaxXent} eval`, () => run(K.PersonaSoftmaxXent, { logits, targets, weights }, { computeGrad: false })],
  [K.PersonaEmbedding, () => run(K.PersonaEmbedding, { ids, wte, wpe })],
  [K.PersonaEmbeddingGrad, () => run(K.PersonaEmbeddingGrad, { dx: x, ids }, { vocabSize: V, maxT: Tn })],
  ['Add [16,128,128] same shape', () => tf.add(x, x)],
  ['Add [16,128,128] + [128]', () => tf.add(x, bC)],
  ['Mul [16,128,128] * scalar', () => tf.mul(x, 0.5)],
  ['Sum [2048,384] axis 0', () => tf.sum(tf.reshape(qkv, [M, 3 * C]), 0)],
  ['Softmax [64,128,128]', () => tf.softmax(probs)],
  ['Transpose [16,128,4,32] 0213', () => tf.transpose(tf.reshape(x, [B, Tn, H, hd]), [0, 2, 1, 3])],
  ['SplitV [16,128,384] into 3 (last axis)', () => tf.split(qkv, 3, 2)],
  ['Concat 3x[16,128,128] (last axis)', () => tf.concat([x, x, x], 2)],
  ['Exp [2048,512]', () => tf.exp(x4)],
  ['Tanh [2048,512]', () => tf.tanh(x4)],
];
// AdamW / SumSquares over the model's parameters.
const paramShapes: number[][] = [[V, C], [Tn, C]];
for (let l = 0; l < L; l++) {
  paramShapes.push([C], [C], [C, 3 * C], [3 * C], [C, C], [C], [C], [C], [C, 4 * C], [4 * C], [4 * C, C], [C]);
}
paramShapes.push([C], [C], [C, V]);
const nParams = paramShapes.reduce((s, sh) => s + sh.reduce((p, q) => p * q, 1), 0);
const params = paramShapes.map((s) => T(s, 0.1)), grads = paramShapes.map((s) => T(s, 0.01));
const ms = paramShapes.map((s) => tf.zeros(s)), vs = paramShapes.map((s) => tf.zeros(s));
const adamList = params.flatMap((p, i) => [p, grads[i], ms[i], vs[i]]);
const decayMask = paramShapes.map((s) => s.length === 2);
let step = 0;
kernelCases.push(
  [`PersonaAdamW (${(nParams / 1e6).toFixed(2)}M params)`, () => run(K.PersonaAdamW, adamList,
    { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: ++step, decayMask, gradScale: 1 })],
  [`${K.PersonaSumSquares} (all grads)`, () => run(K.PersonaSumSquares, grads)],
);
console.log('\n== kernels through tf.engine().runKernel (us per call) ==');
for (const [name, fn] of stepOnly ? [] : kernelCases) {
  const sec = timeIt(() => tf.dispose(fn() as tf.Tensor), 40);
  console.log(`${name.padEnd(44)}${pad((sec * 1e6).toFixed(0), 8)}`);
}
{
  const sec = timeIt(() => tf.dispose(tf.engine().runKernel('Identity', { x: bC }) as tf.Tensor), 40, 10000);
  console.log(`${'(engine overhead: Identity on [128])'.padEnd(44)}${pad((sec * 1e6).toFixed(1), 8)}`);
}

// ---------------------------------------------------------------- 3. simulated step
let calls = 0;
let profile: Map<string, number> | null = null;
const k = (name: string, inputs: unknown, attrs: Record<string, unknown> = {}) => {
  calls++;
  const t0 = profile ? performance.now() : 0;
  const r = run(name, inputs, attrs);
  if (profile) {
    const w = (inputs as Record<string, tf.Tensor>).w;
    const key = w && !Array.isArray(inputs) ? `${name} w[${w.shape}]` : name;
    profile.set(key, (profile.get(key) ?? 0) + performance.now() - t0);
  }
  return (Array.isArray(r) ? r : [r]) as tf.Tensor[];
};
const layerW = Array.from({ length: L }, () => ({
  g1: T([C], 1), b1: T([C], 0.1), wqkv: T([C, 3 * C], 0.1), bqkv: T([3 * C], 0.1), wproj: T([C, C], 0.1), bproj: T([C], 0.1),
  g2: T([C], 1), b2: T([C], 0.1), wfc: T([C, 4 * C], 0.1), bfc: T([4 * C], 0.1), wfc2: T([4 * C, C], 0.1), bfc2: T([C], 0.1),
}));
function trainStep() {
  tf.tidy(() => {
    // forward
    let h = k(K.PersonaEmbedding, { ids, wte, wpe })[0];
    const saved: Record<string, tf.Tensor>[] = [];
    for (const w of layerW) {
      const [a1, m1, r1] = k(K.PersonaLayerNorm, { x: h, gamma: w.g1, beta: w.b1 }, { eps: 1e-5 });
      const [q] = k(K.PersonaLinear, { x: a1, w: w.wqkv, b: w.bqkv });
      const [att, p] = k(K.PersonaAttention, { qkv: q }, { nHead: H });
      const [pr] = k(K.PersonaLinear, { x: att, w: w.wproj, b: w.bproj });
      const h1 = k('Add', { a: h, b: pr })[0];
      const [a2, m2, r2] = k(K.PersonaLayerNorm, { x: h1, gamma: w.g2, beta: w.b2 }, { eps: 1e-5 });
      const [f, fh] = k(K.PersonaLinearGelu, { x: a2, w: w.wfc, b: w.bfc });
      const [f2] = k(K.PersonaLinear, { x: f, w: w.wfc2, b: w.bfc2 });
      const h2 = k('Add', { a: h1, b: f2 })[0];
      saved.push({ h, a1, m1, r1, q, att, p, h1, a2, m2, r2, f, fh });
      h = h2;
    }
    const [af, mf, rf] = k(K.PersonaLayerNorm, { x: h, gamma, beta }, { eps: 1e-5 });
    const [lg] = k(K.PersonaLinear, { x: af, w: whead });
    const [, dlog] = k(K.PersonaSoftmaxXent, { logits: lg.reshape([M, V]), targets, weights });
    // backward
    const [daf, dwh] = k(K.PersonaLinearGrad, { dy: dlog.reshape([B, Tn, V]), x: af, w: whead }, { hasBias: false });
    let dh = k(K.PersonaLayerNormGrad, { dy: daf, x: h, gamma, mean: mf, rstd: rf })[0];
    const gradsOut: tf.Tensor[] = [dwh];
    for (let l = L - 1; l >= 0; l--) {
      const w = layerW[l], s = saved[l];
      const [df, dwfc2, dbfc2] = k(K.PersonaLinearGrad, { dy: dh, x: s.f, w: w.wfc2 }, { hasBias: true });
      const [da2, dwfc, dbfc] = k(K.PersonaLinearGeluGrad, { dy: df, x: s.a2, w: w.wfc, h: s.fh });
      const [dh1a, dg2, db2] = k(K.PersonaLayerNormGrad, { dy: da2, x: s.h1, gamma: w.g2, mean: s.m2, rstd: s.r2 });
      const dh1 = k('Add', { a: dh, b: dh1a })[0];
      const [datt, dwproj, dbproj] = k(K.PersonaLinearGrad, { dy: dh1, x: s.att, w: w.wproj }, { hasBias: true });
      const [dq] = k(K.PersonaAttentionGrad, { dout: datt, qkv: s.q, probs: s.p }, { nHead: H });
      const [da1, dwqkv, dbqkv] = k(K.PersonaLinearGrad, { dy: dq, x: s.a1, w: w.wqkv }, { hasBias: true });
      const [dha, dg1, db1] = k(K.PersonaLayerNormGrad, { dy: da1, x: s.h, gamma: w.g1, mean: s.m1, rstd: s.r1 });
      dh = k('Add', { a: dh1, b: dha })[0];
      gradsOut.push(dwfc2, dbfc2, dwfc, dbfc, dg2, db2, dwproj, dbproj, dwqkv, dbqkv, dg1, db1);
    }
    gradsOut.push(...k(K.PersonaEmbeddingGrad, { dx: dh, ids }, { vocabSize: V, maxT: Tn }));
    k(K.PersonaSumSquares, gradsOut);
    k(K.PersonaAdamW, adamList, { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: ++step, decayMask, gradScale: 1 });
  });
}
trainStep();
calls = 0;
trainStep();
const stepCalls = calls;
const stepSec = timeIt(trainStep, 500, 20);
profile = new Map();
const nProf = 5;
const tProf = performance.now();
for (let i = 0; i < nProf; i++) trainStep();
const profTotal = (performance.now() - tProf) / nProf;
const profRows = [...profile.entries()].sort((a, b) => b[1] - a[1]);
profile = null;
const flopsPerTok = 6 * nParams + 6 * L * Tn * C; // 6N + attention (fwd+bwd, causal half counted fully)
console.log(`\n== simulated training step (fused kernels only; ${(nParams / 1e6).toFixed(2)}M params, ${L} layers, ` +
  `B=${B} T=${Tn} V=${V}) ==`);
console.log(`kernel calls per step: ${stepCalls}; step ${(stepSec * 1e3).toFixed(1)} ms; ` +
  `${(M / stepSec).toFixed(0)} tokens/s; ~${((flopsPerTok * M) / stepSec / 1e9).toFixed(0)} GFLOP/s achieved`);
console.log(`profile of ${nProf} steps (ms per step): total ${profTotal.toFixed(1)}, in kernels ` +
  `${(profRows.reduce((a, r) => a + r[1], 0) / nProf).toFixed(1)}`);
for (const [name, ms] of profRows) console.log(`  ${name.padEnd(40)}${pad((ms / nProf).toFixed(2), 8)}`);
