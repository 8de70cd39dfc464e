/**
 * bf16 products in the native addon: inputs rounded to bfloat16, products accumulated in float32.
 * Each product is checked three ways: against a plain-JS reference on inputs rounded to bf16
 * here (round to nearest even), against the addon's emulation (OpenBLAS's float32 sgemm on the
 * rounded inputs, chosen with setGemmDefault) which must agree with oneDNN's bf16 kernel up to
 * float32 summation order, and against the float32 product, from which it must differ by about
 * bf16's rounding (so a bf16 flag that were ignored fails here).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { loadNativeAddon, type NativeAddon } from '../src/backend/native/addon.js';
import * as Kn from '../src/backend/native/contracts.js';
import { runPersonaKernel } from '../src/backend/native/contracts.js';
import { maxAbs, randn, skipNative } from './native-helpers.js';

/** float32 -> bfloat16 -> float32, round to nearest even (what the addon does to its inputs). */
function roundBf16(x: Float32Array): Float32Array {
  const bits = new Uint32Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength));
  for (let i = 0; i < bits.length; i++) {
    const u = bits[i];
    bits[i] = (((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16) >>> 0;
  }
  return new Float32Array(bits.buffer);
}

/** C = A @ B (row-major, A [M,K], B [K,N]) in double. */
function matmulRef(a: Float32Array, b: Float32Array, M: number, K: number, N: number): Float64Array {
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++) for (let k = 0; k < K; k++) {
    const av = a[i * K + k];
    for (let j = 0; j < N; j++) c[i * N + j] += av * b[k * N + j];
  }
  return c;
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
};

describe('bf16 products of the native addon', { skip: skipNative }, () => {
  const addon = loadNativeAddon().addon as NativeAddon;
  const withBlas = addon?.info().blas ? false : 'needs OpenBLAS for the emulated reference';
  after(() => {
    for (let c = 0; c < 8; c++) addon?.setGemmDefault(c, 0);
  });

  /** Runs f with every product case on OpenBLAS (the emulated bf16 path), then back to auto. */
  const emulated = <T>(f: () => T): T => {
    for (let c = 0; c < 8; c++) addon.setGemmDefault(c, Kn.GEMM_ENGINES.blas);
    try {
      return f();
    } finally {
      for (let c = 0; c < 8; c++) addon.setGemmDefault(c, Kn.GEMM_ENGINES.auto);
    }
  };

  test('the matmul kernel is named, for float32 and for bf16', () => {
    const f32 = addon.matmulImpl(256, 128, 64, false);
    const b16 = addon.matmulImpl(256, 128, 64, true);
    assert.ok(f32.length > 0 && b16.length > 0);
    if (addon.info().dnnl) assert.match(f32, /^oneDNN /);
    assert.notEqual(f32, b16);
    assert.throws(() => addon.matmulImpl(0, 1, 1, false), /must be positive/);
  });

  test('linear: bf16 equals the float32 product of bf16-rounded inputs, and differs from float32 by bf16 rounding', () => {
    const M = 96, K = 256, N = 80;
    const x = randn(M * K, 1), w = randn(K * N, 2), b = randn(N, 3);
    const y16 = new Float32Array(M * N), y32 = new Float32Array(M * N);
    addon.linear(x, w, b, y16, M, K, N, false, true);
    addon.linear(x, w, b, y32, M, K, N, false, false);
    const ref = matmulRef(roundBf16(x), roundBf16(w), M, K, N).map((v, i) => v + b[i % N]);
    const scale = maxAbs(ref);
    assert.ok(maxDiff(y16, ref) < 2e-6 * scale, `bf16 vs rounded reference: ${maxDiff(y16, ref) / scale}`);
    const off = maxDiff(y16, y32) / scale;
    // bf16 keeps 8 bits of mantissa: relative rounding 2^-9 per input, ~1e-3 on these sums.
    assert.ok(off > 1e-4 && off < 2e-2, `bf16 vs float32: ${off}`);
  });

  test('linear with a transposed weight (the tied output head) and linearGrad: oneDNN\'s bf16 agrees with the emulation', { skip: withBlas }, () => {
    const M = 64, K = 128, N = 200;
    const x = randn(M * K, 4), wT = randn(N * K, 5), dy = randn(M * N, 6);
    const run = () => {
      const y = new Float32Array(M * N), dx = new Float32Array(M * K), dw = new Float32Array(N * K), db = new Float32Array(N);
      addon.linear(x, wT, null, y, M, K, N, true, true);
      addon.linearGrad(dy, x, wT, dx, dw, db, M, K, N, true, true);
      return [y, dx, dw, db];
    };
    const fast = run();
    const slow = emulated(run);
    for (const [i, name] of ['y', 'dx', 'dw', 'db'].entries()) {
      const scale = maxAbs(slow[i]);
      assert.ok(maxDiff(fast[i], slow[i]) < 5e-6 * scale, `${name}: ${maxDiff(fast[i], slow[i]) / scale}`);
    }
  });

  test('attention forward and backward: bf16 agrees with the emulation, and differs from float32', { skip: withBlas }, () => {
    const B = 2, T = 32, C = 64, H = 4;
    const qkv = randn(B * T * 3 * C, 7), dout = randn(B * T * C, 8);
    const run = (bf16: boolean) => {
      const out = new Float32Array(B * T * C), probs = new Float32Array(B * H * T * T), dqkv = new Float32Array(B * T * 3 * C);
      addon.attention(qkv, out, probs, B, T, C, H, bf16);
      addon.attentionGrad(dout, qkv, probs, dqkv, B, T, C, H, bf16);
      return [out, probs, dqkv];
    };
    const fast = run(true);
    const slow = emulated(() => run(true));
    const f32 = run(false);
    for (const [i, name] of ['out', 'probs', 'dqkv'].entries()) {
      const scale = maxAbs(f32[i]);
      assert.ok(maxDiff(fast[i], slow[i]) < 2e-5 * scale, `${name} vs emulation: ${maxDiff(fast[i], slow[i]) / scale}`);
      const off = maxDiff(fast[i], f32[i]) / scale;
      assert.ok(off > 1e-4 && off < 5e-2, `${name} bf16 vs float32: ${off}`);
    }
  });

  test('the fused kernels take precision as an attribute and refuse an unknown one', async () => {
    await tf.setBackend('native');
    const x = tf.tensor2d(randn(32 * 64, 9), [32, 64]), w = tf.tensor2d(randn(64 * 48, 10), [64, 48]);
    const y32 = runPersonaKernel(Kn.PersonaLinear, { x, w }).dataSync();
    const y16 = runPersonaKernel(Kn.PersonaLinear, { x, w }, { precision: 'bf16' }).dataSync();
    const explicit32 = runPersonaKernel(Kn.PersonaLinear, { x, w }, { precision: 'fp32' }).dataSync();
    assert.deepEqual(explicit32, y32, 'fp32 is the default');
    assert.ok(maxDiff(y16, y32) / maxAbs(y32) > 1e-4);
    assert.throws(() => runPersonaKernel(Kn.PersonaLinear, { x, w }, { precision: 'fp16' as Kn.Precision }), /precision must be one of fp32, bf16/);
    tf.dispose([x, w]);
  });
});
