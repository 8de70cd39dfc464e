/** Shared helpers for the native backend tests (test/native-*.test.ts). */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { nativeBackendStatus, registerNativeBackend } from '../src/backend/native/native-backend.js';

/** `false` when the native backend is available, else the reason to skip. */
export const skipNative: false | string = registerNativeBackend()
  ? false
  : `native backend unavailable: ${nativeBackendStatus().reason}`;

/** Deterministic pseudo-random numbers (mulberry32). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12), v = r();
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

export function randInt(n: number, hi: number, seed: number): Int32Array {
  const r = rng(seed);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(r() * hi);
  return out;
}

export function size(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export type Result = { shape: number[]; dtype: string; values: Float32Array | Int32Array | Uint8Array };

function capture(t: tf.Tensor): Result {
  return { shape: t.shape, dtype: t.dtype, values: t.dataSync() as Result['values'] };
}

/** Runs fn on the given backend inside tidy and returns copies of its outputs. */
export async function runOn(backend: string, fn: () => tf.Tensor | tf.Tensor[]): Promise<Result[]> {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const r = fn();
    return (Array.isArray(r) ? r : [r]).map((t) => {
      const c = capture(t);
      return { ...c, values: c.values.slice() };
    });
  });
}

/** fn on 'cpu' and on 'native': same shapes and dtypes, values within tolerance. */
export async function compareBackends(
  label: string, fn: () => tf.Tensor | tf.Tensor[], rtol = 1e-4, atol = 1e-5,
): Promise<Result[]> {
  const ref = await runOn('cpu', fn);
  const got = await runOn('native', fn);
  assert.equal(got.length, ref.length, `${label}: output count`);
  for (let i = 0; i < ref.length; i++) {
    assert.deepEqual(got[i].shape, ref[i].shape, `${label}: shape of output ${i}`);
    assert.equal(got[i].dtype, ref[i].dtype, `${label}: dtype of output ${i}`);
    assertClose(got[i].values, ref[i].values, `${label}[${i}]`, rtol, atol);
  }
  return got;
}

export function assertClose(
  got: ArrayLike<number>, want: ArrayLike<number>, label: string, rtol = 1e-4, atol = 1e-5,
): void {
  assert.equal(got.length, want.length, `${label}: length ${got.length} vs ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    const g = got[i], w = want[i];
    if (Number.isNaN(w)) {
      assert.ok(Number.isNaN(g), `${label}: [${i}] expected NaN, got ${g}`);
      continue;
    }
    if (!Number.isFinite(w)) {
      assert.equal(g, w, `${label}: [${i}]`);
      continue;
    }
    const tol = atol + rtol * Math.abs(w);
    if (!(Math.abs(g - w) <= tol)) {
      assert.fail(`${label}: [${i}] got ${g}, want ${w} (|diff| ${Math.abs(g - w)} > ${tol})`);
    }
  }
}

/** Maximum absolute value, to scale tolerances of sums. */
export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

export function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
