/**
 * The addon's contracts and its hardening: the TypeScript side's contracts (src/backend/native/
 * contracts.ts) match what the addon reports of itself, and a bad call (wrong length, negative or
 * overflowing size, wrong arity or type, unknown op, any native exception including one thrown on
 * an OpenMP worker or by oneDNN) becomes a catchable JavaScript error while the process lives on.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { contractMismatch, loadNativeAddon } from '../src/backend/native/addon.js';
import { NATIVE_BACKEND_NAME } from '../src/backend/native/native-backend.js';
import {
  ADDON_SIGNATURES, type AddonFault, type NativeAddon, OP_CODES, PERSONA_KERNEL_NAMES, PERSONA_KERNELS, PersonaLinear, UNARY_OPS,
} from '../src/backend/native/contracts.js';
import { checkInputs } from '../src/backend/native/fused.js';
import { skipNative } from './native-helpers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const f32 = (n: number) => new Float32Array(n);

test('the loader refuses an addon built from other sources (missing or reordered arguments)', () => {
  const fns = Object.fromEntries(Object.keys(ADDON_SIGNATURES).map((k) => [k, () => undefined]));
  const sigs = Object.fromEntries(Object.entries(ADDON_SIGNATURES).map(([k, v]) => [k, [...v]]));
  assert.equal(contractMismatch({ ...fns, signatures: () => sigs }), '');
  assert.match(contractMismatch({ info: () => ({}) }), /no signatures\(\)/);
  const reordered = { ...sigs, linear: ['w', 'x', 'b', 'y', 'M', 'K', 'N', 'transW'] };
  assert.match(contractMismatch({ ...fns, signatures: () => reordered }), /linear\(w, x, b, .*\) where this code calls linear\(x, w, b,/);
  const { adamw: _, ...lacking } = sigs;
  assert.match(contractMismatch({ ...fns, signatures: () => lacking }), /lacks adamw\(\)/);
});

describe('native addon: contracts', { skip: skipNative }, () => {
  const addon = loadNativeAddon().addon as NativeAddon;

  test("every addon function's arguments, by name and order, are the contract's", () => {
    assert.deepEqual(addon.signatures(), ADDON_SIGNATURES);
    for (const name of Object.keys(ADDON_SIGNATURES)) assert.equal(typeof (addon as unknown as Record<string, unknown>)[name], 'function', name);
  });

  test("the addon's op codes are the contract's", () => {
    assert.deepEqual(addon.opCodes(), OP_CODES);
  });

  test('every registered Persona kernel has a contract whose addon function exists, and every contract is registered', () => {
    const registered = tf.getKernelsForBackend(NATIVE_BACKEND_NAME).map((k) => k.kernelName).filter((n) => n.startsWith('Persona'));
    assert.deepEqual([...registered].sort(), [...PERSONA_KERNEL_NAMES].sort());
    const signatures = addon.signatures();
    for (const name of PERSONA_KERNEL_NAMES) {
      const c = PERSONA_KERNELS[name];
      assert.ok(signatures[c.addon], `${name} calls addon.${c.addon}, which the addon lacks`);
      assert.ok(c.outputs.length >= 1, `${name} lists its outputs`);
    }
  });

  test('a kernel refuses inputs its contract does not name', () => {
    assert.throws(() => checkInputs(PersonaLinear, { x: {}, W: {} }), /PersonaLinear: missing input 'w'/);
    assert.throws(() => checkInputs(PersonaLinear, { x: {}, w: {}, bias: {} }), /unknown input 'bias'/);
    checkInputs(PersonaLinear, { x: {}, w: {} });
    checkInputs(PersonaLinear, { x: {}, w: {}, b: {} });
  });
});

describe('native addon: bad calls throw catchable errors', { skip: skipNative }, () => {
  const addon = loadNativeAddon().addon as NativeAddon;
  const x = f32(6), w = f32(6), y = f32(4);

  test('wrong length: an array smaller than its sizes', () => {
    assert.throws(() => addon.linear(x, w, null, f32(3), 2, 3, 2, false, false), { name: 'RangeError', message: /linear: y: array too small/ });
    assert.throws(() => addon.attention(f32(10), f32(8), f32(32), 1, 4, 2, 2, false), /attention: qkv: array too small/);
  });

  test('negative, fractional and non-numeric sizes', () => {
    assert.throws(() => addon.linear(x, w, null, y, -2, 3, 2, false, false), { name: 'RangeError', message: /M must be a non-negative integer/ });
    assert.throws(() => addon.linear(x, w, null, y, 2, 1.5, 2, false, false), /K must be a non-negative integer/);
    assert.throws(() => addon.linear(x, w, null, y, 2, 3, Number.NaN, false, false), /N must be a non-negative integer/);
    assert.throws(() => addon.transpose(x, f32(6), [2, -3], [1, 0]), /negative or non-integer size/);
    assert.throws(() => addon.linear(x, w, null, y, '2' as unknown as number, 3, 2, false, false), { name: 'TypeError' });
  });

  test('absurd sizes: products that overflow, ranks and counts out of range', () => {
    // 2^40 x 2^40 elements would wrap around in 64 bits and pass a naive length check.
    assert.throws(() => addon.linear(x, w, null, y, 2 ** 40, 2 ** 40, 0, false, false), /sizes overflow/);
    assert.throws(() => addon.embeddingGrad(f32(1), new Int32Array(1), f32(1), f32(1), 0, 0, 2 ** 32, 2 ** 32, 2 ** 32), /sizes overflow/);
    assert.throws(() => addon.transpose(x, f32(6), new Array(17).fill(1), new Array(17).fill(0).map((_, i) => i)), /rank 17/);
    assert.throws(() => addon.matmul(x, w, f32(4), 2 ** 53 + 2, 1, 1, 2, 2, 3, false, false, null, 0, false, 0), /non-negative integer/);
  });

  test('wrong arity, types, op codes and engine codes', () => {
    const linear8 = addon.linear as unknown as (...a: unknown[]) => void;
    assert.throws(() => linear8(x, w, null, y, 2, 3, 2, false), { name: 'TypeError', message: /linear: expected 9 arguments \(x, w, b, y, M, K, N, transW, bf16\), got 8/ });
    assert.throws(() => addon.linear(x, w, null, y, 2, 3, 2, false, 'bf16' as unknown as boolean), /bf16 must be a boolean/);
    assert.throws(() => addon.linear(new Int32Array(6) as unknown as Float32Array, w, null, y, 2, 3, 2, false, false), /linear: x: wrong typed array type/);
    assert.throws(() => addon.linear(x, w, null, y, 2, 3, 2, 1 as unknown as boolean, false), /transW must be a boolean/);
    assert.throws(() => addon.unary(99, x, f32(6)), /unary: op 99 is out of range/);
    assert.throws(() => addon.binary(7, x, [6], x, [6], f32(6), [6]), /binary: op 7 is out of range/);
    assert.throws(() => addon.reduce(5, x, f32(1), 1, 6, 1), /reduce: op 5 is out of range/);
    assert.throws(() => addon.setGemmDefault(8, 0), /opCase 8 is out of range/);
    assert.throws(() => addon.matmul(x, w, y, 1, 1, 1, 2, 2, 3, false, false, null, 0, false, 4 as 0), /engine 4 is out of range/);
    assert.throws(() => addon.layerNorm(x, f32(3), f32(3), Number.POSITIVE_INFINITY, f32(6), f32(2), f32(2), 2, 3), /eps must be finite/);
    assert.throws(() => addon.adamw([x, x, x], [], 0.1, 0.9, 0.99, 1e-8, 0, 1, 1), /multiple of 4/);
    assert.throws(() => addon.adamw([x, x, x, x], [], 0.1, 0.9, 0.99, 1e-8, 0, 0, 1), /step is 1-based/);
    assert.throws(() => addon.softmaxXent(f32(6), Int32Array.of(0, 9), Float32Array.of(1, 1), null, 2, 3), /target out of range at row 1/);
  });

  const faults: Array<[AddonFault, RegExp]> = [
    ['bad_alloc', /selfTest: out of memory/],
    ['std', /selfTest: self-test exception/],
    ['unknown', /selfTest: unknown native exception/],
    ['parallel', /self-test exception in a parallel region/],
  ];
  if (addon?.info().dnnl) faults.push(['dnnl', /selfTest: could not create/]);
  for (const [fault, message] of faults) {
    test(`a native ${fault} exception becomes a JavaScript error`, () => {
      assert.throws(() => addon.selfTest(fault), message);
    });
  }

  test('the process lives on: the same faults in a child process, which then computes and exits 0', () => {
    const script = `
      const a = require(${JSON.stringify(loadNativeAddon().path)});
      let caught = 0;
      for (const f of ${JSON.stringify(faults.map(([f]) => f))}) { try { a.selfTest(f); } catch (e) { caught++; } }
      try { a.linear(new Float32Array(1), new Float32Array(1), null, new Float32Array(1), 2 ** 40, 2 ** 40, 0, false, false); } catch (e) { caught++; }
      const y = new Float32Array(2);
      a.linear(Float32Array.of(1, 2), Float32Array.of(3, 4, 5, 6), null, y, 1, 2, 2, false, false);
      console.log(JSON.stringify({ caught, y: Array.from(y) }));`;
    const r = spawnSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `exit ${r.status} signal ${r.signal}: ${r.stderr}`);
    assert.deepEqual(JSON.parse(r.stdout.trim()), { caught: faults.length + 1, y: [13, 16] });
  });

  test('element-wise kernels are safe in place (y === x)', () => {
    const src = Float32Array.from({ length: 100_000 }, (_, i) => Math.sin(i) * 3);
    for (const op of Object.values(UNARY_OPS)) {
      const outOfPlace = f32(src.length);
      addon.unary(op, src, outOfPlace);
      const inPlace = src.slice();
      addon.unary(op, inPlace, inPlace);
      assert.deepEqual(inPlace, outOfPlace, `unary op ${op}`);
    }
  });
});
