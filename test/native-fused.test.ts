/** The custom fused kernels of the 'native' backend against composed tfjs ops (on cpu) and plain JS. */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { loadNativeAddon } from '../src/backend/native/addon.js';
import * as Kn from '../src/backend/native/contracts.js';
import { type KernelAttrs, type KernelInputs, type PersonaKernelName, runPersonaKernel } from '../src/backend/native/contracts.js';
import { assertClose, bitsEqual, maxAbs, randInt, randn, runOn, size, skipNative } from './native-helpers.js';

const T = (shape: number[], seed: number, scale = 1) => tf.tensor(randn(size(shape), seed, scale), shape);
/** A fused kernel through its typed contract, its outputs as a list. */
const run = <N extends PersonaKernelName>(name: N, inputs: KernelInputs<N>, attrs?: KernelAttrs<N>): tf.Tensor[] => {
  const r = runPersonaKernel(name, inputs, attrs);
  return Array.isArray(r) ? r : [r];
};

// ---- composed references (run on cpu)
function layerNormRef(x: tf.Tensor, g: tf.Tensor, b: tf.Tensor, eps: number) {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), g), b);
}
function geluRef(x: tf.Tensor) {
  const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
  return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
}
function attentionRef(qkv: tf.Tensor, H: number) {
  const [B, Tn, C3] = qkv.shape;
  const C = C3 / 3, hd = C / H;
  const [q, k, v] = tf.split(qkv, 3, 2);
  const heads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B, Tn, H, hd]), [0, 2, 1, 3]);
  const lower = tf.linalg.bandPart(tf.ones([Tn, Tn]), -1, 0);
  const att = tf.add(tf.mul(tf.matMul(heads(q), heads(k), false, true), 1 / Math.sqrt(hd)), tf.mul(tf.sub(1, lower), -1e9));
  const probs = tf.softmax(att);
  const out = tf.reshape(tf.transpose(tf.matMul(probs, heads(v)), [0, 2, 1, 3]), [B, Tn, C]);
  return { out, probs };
}
function xentRef(logits: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor) {
  const V = logits.shape[logits.shape.length - 1];
  const nll = tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits.reshape([-1, V])), tf.oneHot(targets, V)), -1));
  return tf.div(tf.sum(tf.mul(nll, weights)), tf.maximum(tf.sum(weights), 1e-8));
}

type Outs = { values: ArrayLike<number>; shape: number[] }[];
type Fn = () => tf.Tensor | tf.Tensor[];

function closeResults(label: string, g: Outs, w: Outs, rtol = 1e-4, atolRel = 1e-5) {
  assert.equal(g.length, w.length, `${label}: output count`);
  for (let i = 0; i < w.length; i++) {
    assert.deepEqual(g[i].shape, w[i].shape, `${label}: shape ${i}`);
    assertClose(g[i].values, w[i].values, `${label}[${i}]`, rtol, atolRel * Math.max(1, maxAbs(w[i].values)));
  }
}

/** nativeFn on 'native' vs the composed reference refFn on 'cpu' (run one after the other). */
async function close(label: string, nativeFn: Fn | Outs, refFn: Fn, rtol = 1e-4, atolRel = 1e-5) {
  const g = typeof nativeFn === 'function' ? await runOn('native', nativeFn) : nativeFn;
  const w = await runOn('cpu', refFn);
  closeResults(label, g, w, rtol, atolRel);
}

describe('native backend: fused kernels', { skip: skipNative }, () => {
  after(async () => {
    await tf.setBackend('cpu');
  });

  test('PersonaLinear and its gradient', async () => {
    for (const [xs, K, N, bias] of [[[7, 5], 5, 3, true], [[2, 9, 16], 16, 24, true], [[4, 1], 1, 6, false],
      [[33, 65], 65, 31, true]] as [number[], number, number, boolean][]) {
      const x = () => T(xs, 1), w = () => T([K, N], 2, 0.5), b = () => T([N], 3);
      const dy = () => T([...xs.slice(0, -1), N], 4);
      const lin = (xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) =>
        tf.add(tf.matMul(xx.reshape([-1, K]), ww), bias ? bb : 0).reshape([...xs.slice(0, -1), N]);
      await close(`linear ${xs}`,
        () => run(Kn.PersonaLinear, bias ? { x: x(), w: w(), b: b() } : { x: x(), w: w() }),
        () => lin(x(), w(), b()));
      await close(`linearGrad ${xs}`,
        () => run(Kn.PersonaLinearGrad, { dy: dy(), x: x(), w: w() }, { hasBias: bias }),
        () => bias
          ? tf.grads((xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.mul(lin(xx, ww, bb), dy())))([x(), w(), b()])
          : tf.grads((xx: tf.Tensor, ww: tf.Tensor) => tf.sum(tf.mul(lin(xx, ww, tf.zeros([N])), dy())))([x(), w()]));
    }
  });

  test('PersonaLinear with transposeW (tied head) and its gradient', async () => {
    const x = () => T([3, 4, 16], 5), e = () => T([50, 16], 6, 0.5), dy = () => T([3, 4, 50], 7);
    const lin = (xx: tf.Tensor, ee: tf.Tensor) => tf.matMul(xx.reshape([12, 16]), ee, false, true).reshape([3, 4, 50]);
    await close('linear transposeW', () => run(Kn.PersonaLinear, { x: x(), w: e() }, { transposeW: true }), () => lin(x(), e()));
    await close('linearGrad transposeW',
      () => run(Kn.PersonaLinearGrad, { dy: dy(), x: x(), w: e() }, { hasBias: true, transposeW: true }),
      () => [...tf.grads((xx: tf.Tensor, ee: tf.Tensor) => tf.sum(tf.mul(lin(xx, ee), dy())))([x(), e()]),
        tf.sum(dy().reshape([12, 50]), 0)]);
  });

  test('PersonaLinearGelu and its gradient', async () => {
    const x = () => T([2, 5, 8], 10), w = () => T([8, 12], 11, 0.5), b = () => T([12], 12);
    const dy = () => T([2, 5, 12], 13);
    const pre = (xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) =>
      tf.add(tf.matMul(xx.reshape([10, 8]), ww), bb).reshape([2, 5, 12]);
    await close('linearGelu', () => run(Kn.PersonaLinearGelu, { x: x(), w: w(), b: b() }), () => {
      const h = pre(x(), w(), b());
      return [geluRef(h), h];
    });
    await close('linearGeluGrad', () => {
      const [, h] = run(Kn.PersonaLinearGelu, { x: x(), w: w(), b: b() });
      return run(Kn.PersonaLinearGeluGrad, { dy: dy(), x: x(), w: w(), h });
    }, () => tf.grads((xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) =>
      tf.sum(tf.mul(geluRef(pre(xx, ww, bb)), dy())))([x(), w(), b()]));
  });

  test('PersonaLayerNorm and its gradient', async () => {
    const cases = [[[6, 10], 1e-5], [[2, 7, 128], 1e-5], [[1, 3], 1e-3], [[5, 1], 1e-5]] as [number[], number][];
    for (const [shape, eps] of cases) {
      const C = shape[shape.length - 1], rows = size(shape) / C;
      const x = () => tf.add(T(shape, 20, 2), 0.5), g = () => tf.add(T([C], 21, 0.1), 1), b = () => T([C], 22, 0.1);
      const dy = () => T(shape, 23);
      await close(`layerNorm ${shape}`,
        () => run(Kn.PersonaLayerNorm, { x: x(), gamma: g(), beta: b() }, { eps }),
        () => {
          const { mean, variance } = tf.moments(x(), -1);
          return [layerNormRef(x(), g(), b(), eps), mean.reshape([rows]), tf.rsqrt(tf.add(variance, eps)).reshape([rows])];
        });
      await close(`layerNormGrad ${shape}`,
        () => {
          const [, mean, rstd] = run(Kn.PersonaLayerNorm, { x: x(), gamma: g(), beta: b() }, { eps });
          return run(Kn.PersonaLayerNormGrad, { dy: dy(), x: x(), gamma: g(), mean, rstd });
        },
        () => tf.grads((xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
          tf.sum(tf.mul(layerNormRef(xx, gg, bb, eps), dy())))([x(), g(), b()]), 2e-4, 2e-5);
    }
  });

  test('PersonaGelu and its gradient', async () => {
    const x = () => tf.concat([T([1000], 30, 3), tf.tensor([0, -0, 1e-6, -1e-6, 10, -10, 30, -30])]);
    const dy = () => T([1008], 31);
    await close('gelu', () => run(Kn.PersonaGelu, { x: x() }), () => geluRef(x()), 1e-5, 1e-6);
    await close('geluGrad', () => run(Kn.PersonaGeluGrad, { dy: dy(), x: x() }),
      () => tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(geluRef(xx), dy())))(x()), 1e-4, 1e-5);
  });

  test('PersonaAttention and its gradient', async () => {
    for (const [B, Tn, C, H] of [[2, 7, 12, 3], [1, 1, 8, 2], [1, 33, 64, 2], [2, 16, 32, 4]]) {
      const qkv = () => T([B, Tn, 3 * C], 40 + Tn, 0.7), dout = () => T([B, Tn, C], 41);
      const got = await runOn('native', () => run(Kn.PersonaAttention, { qkv: qkv() }, { nHead: H }));
      await close(`attention ${[B, Tn, C, H]}`, got, () => {
        const r = attentionRef(qkv(), H);
        return [r.out, r.probs];
      });
      const probs = got[1].values;
      for (let bh = 0; bh < B * H; bh++) {
        for (let t = 0; t < Tn; t++) {
          for (let s = t + 1; s < Tn; s++) assert.equal(probs[(bh * Tn + t) * Tn + s], 0, 'probs above the diagonal are 0');
        }
      }
      await close(`attentionGrad ${[B, Tn, C, H]}`,
        () => {
          const [, p] = run(Kn.PersonaAttention, { qkv: qkv() }, { nHead: H });
          return run(Kn.PersonaAttentionGrad, { dout: dout(), qkv: qkv(), probs: p }, { nHead: H });
        },
        () => tf.grad((q: tf.Tensor) => tf.sum(tf.mul(attentionRef(q, H).out, dout())))(qkv()), 2e-4, 2e-5);
    }
  });

  test('PersonaSoftmaxXent: loss, gradient, zero weights, eval mode', async () => {
    const N = 37, V = 301;
    const logits = () => T([N, V], 50, 3);
    const targets = () => tf.tensor(randInt(N, V, 51), [N], 'int32');
    const wv = new Float32Array(N).map((_, i) => (i % 5 === 0 ? 0 : i % 3 === 0 ? 2 : 1));
    const weights = () => tf.tensor(wv, [N]);
    const got = await runOn('native', () => run(Kn.PersonaSoftmaxXent, { logits: logits(), targets: targets(), weights: weights() }));
    await close('xent', got, () => {
      const l = logits();
      return [xentRef(l, targets(), weights()), tf.grad((x: tf.Tensor) => xentRef(x, targets(), weights()))(l)];
    }, 1e-5, 1e-6);
    for (let i = 0; i < N; i += 5) {
      assert.ok(got[1].values.subarray(i * V, (i + 1) * V).every((v) => v === 0), 'zero-weight rows');
    }
    const evalOut = await runOn('native', () =>
      run(Kn.PersonaSoftmaxXent, { logits: logits(), targets: targets(), weights: weights() }, { computeGrad: false }));
    assert.deepEqual(evalOut[1].shape, [0]);
    assert.equal(evalOut[0].values[0], got[0].values[0]);
    const zero = await runOn('native', () =>
      run(Kn.PersonaSoftmaxXent, { logits: logits(), targets: targets(), weights: tf.zeros([N]) }));
    assert.equal(zero[0].values[0], 0);
    // rank-3 logits with extreme values
    const l3 = () => tf.mul(T([2, 3, 7], 52), 100), t3 = () => tf.tensor(randInt(6, 7, 53), [6], 'int32');
    await close('xent rank 3', () => run(Kn.PersonaSoftmaxXent, { logits: l3(), targets: t3(), weights: tf.ones([6]) }),
      () => [xentRef(l3(), t3(), tf.ones([6])), tf.grad((x: tf.Tensor) => xentRef(x, t3(), tf.ones([6])))(l3())], 1e-5, 1e-6);
    await tf.setBackend('native');
    assert.throws(() => tf.tidy(() => run(Kn.PersonaSoftmaxXent, {
      logits: logits(), targets: tf.fill([N], V, 'int32'), weights: weights(),
    })), /out of range/);
  });

  test('PersonaEmbedding and its gradient', async () => {
    const B = 3, Tn = 5, V = 11, C = 6, maxT = 8;
    const ids = () => tf.tensor(randInt(B * Tn, V, 60), [B, Tn], 'int32');
    const wte = () => T([V, C], 61), wpe = () => T([maxT, C], 62), dx = () => T([B, Tn, C], 63);
    const ref = (e: tf.Tensor, p: tf.Tensor) => tf.add(tf.gather(e, ids()), tf.slice(p, [0, 0], [Tn, C]));
    await close('embedding', () => run(Kn.PersonaEmbedding, { ids: ids(), wte: wte(), wpe: wpe() }),
      () => ref(wte(), wpe()), 1e-6, 1e-7);
    await close('embeddingGrad', () => run(Kn.PersonaEmbeddingGrad, { dx: dx(), ids: ids() }, { vocabSize: V, maxT }),
      () => tf.grads((e: tf.Tensor, p: tf.Tensor) => tf.sum(tf.mul(ref(e, p), dx())))([wte(), wpe()]), 1e-5, 1e-6);
    await tf.setBackend('native');
    assert.throws(() => tf.tidy(() =>
      run(Kn.PersonaEmbedding, { ids: tf.tensor([[0, V]], [1, 2], 'int32'), wte: wte(), wpe: wpe() })), /out of range/);
  });

  test('PersonaAdamW updates in place; PersonaSumSquares', async () => {
    await tf.setBackend('native');
    const shapes = [[5, 3], [7], [1]];
    const decayMask = [true, false, true];
    const hp = { lr: 0.01, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradScale: 0.5 };
    const ps = shapes.map((s, i) => tf.tensor(randn(size(s), 70 + i), s));
    const ms = shapes.map((s) => tf.zeros(s)), vs = shapes.map((s) => tf.zeros(s));
    const ref = shapes.map((s, i) => ({ p: Float64Array.from(randn(size(s), 70 + i)), m: new Float64Array(size(s)), v: new Float64Array(size(s)) }));
    for (let step = 1; step <= 3; step++) {
      const gs = shapes.map((s, i) => tf.tensor(randn(size(s), 80 + 10 * step + i), s));
      const list = ps.flatMap((p, i) => [p, gs[i], ms[i], vs[i]]);
      const before = tf.memory().numTensors;
      tf.dispose(run(Kn.PersonaAdamW, list, { ...hp, step, decayMask }));
      assert.equal(tf.memory().numTensors, before);
      shapes.forEach((_, i) => {
        const g = gs[i].dataSync(), r = ref[i];
        for (let j = 0; j < r.p.length; j++) {
          const gj = g[j] * hp.gradScale;
          r.m[j] = hp.beta1 * r.m[j] + (1 - hp.beta1) * gj;
          r.v[j] = hp.beta2 * r.v[j] + (1 - hp.beta2) * gj * gj;
          if (decayMask[i]) r.p[j] -= hp.lr * hp.weightDecay * r.p[j];
          const mh = r.m[j] / (1 - hp.beta1 ** step), vh = r.v[j] / (1 - hp.beta2 ** step);
          r.p[j] -= hp.lr * mh / (Math.sqrt(vh) + hp.eps);
        }
      });
      tf.dispose(gs);
    }
    shapes.forEach((_, i) => {
      assertClose(ps[i].dataSync(), ref[i].p, `adamw p${i}`, 1e-5, 1e-6);
      assertClose(ms[i].dataSync(), ref[i].m, `adamw m${i}`, 1e-5, 1e-7);
      assertClose(vs[i].dataSync(), ref[i].v, `adamw v${i}`, 1e-5, 1e-9);
    });
    const [ss] = run(Kn.PersonaSumSquares, ps);
    let want = 0;
    for (const p of ps) for (const v of p.dataSync()) want += v * v;
    assertClose(ss.dataSync(), [want], 'sumSquares', 1e-6, 0);
    tf.dispose([ss, ...ps, ...ms, ...vs]);
  });

  test('fused kernels are deterministic (bitwise), also across thread counts', async () => {
    const fn = () => {
      const qkv = T([2, 16, 96], 90, 0.5), x = T([2, 16, 32], 91), w = T([32, 96], 92, 0.3);
      const [, p] = run(Kn.PersonaAttention, { qkv }, { nHead: 4 });
      const [, mean, rstd] = run(Kn.PersonaLayerNorm, { x, gamma: tf.ones([32]), beta: tf.zeros([32]) }, { eps: 1e-5 });
      const ids = tf.tensor(randInt(32, 50, 93), [2, 16], 'int32');
      return [
        ...run(Kn.PersonaAttentionGrad, { dout: x, qkv, probs: p }, { nHead: 4 }),
        ...run(Kn.PersonaLayerNormGrad, { dy: x, x, gamma: tf.ones([32]), mean, rstd }),
        ...run(Kn.PersonaLinearGrad, { dy: T([2, 16, 96], 94), x, w }, { hasBias: true }),
        ...run(Kn.PersonaSoftmaxXent, { logits: T([32, 50], 95), targets: tf.reshape(ids, [32]), weights: tf.ones([32]) }),
        ...run(Kn.PersonaEmbeddingGrad, { dx: x, ids }, { vocabSize: 50, maxT: 20 }),
        ...run(Kn.PersonaSumSquares, [x, w]),
      ];
    };
    const a = await runOn('native', fn), b = await runOn('native', fn);
    a.forEach((r, i) => assert.ok(bitsEqual(r.values as Float32Array, b[i].values as Float32Array), `output ${i} repeatable`));
    const addon = loadNativeAddon().addon!;
    const threads = addon.info().threads;
    addon.setThreads(1);
    try {
      const c = await runOn('native', fn);
      // The kernels without matrix products (layer norm grad, xent, embedding grad, sum of squares:
      // outputs 1-3 and 7-11) use a fixed partition, whatever the thread count.
      for (const i of [1, 2, 3, 7, 8, 9, 10, 11]) {
        assert.ok(bitsEqual(a[i].values as Float32Array, c[i].values as Float32Array), `output ${i} with 1 thread`);
      }
    } finally {
      addon.setThreads(threads);
    }
  });

  test('no tensors leak', async () => {
    await tf.setBackend('native');
    const prev = tf.env().getBool('IS_TEST');
    tf.env().set('IS_TEST', true);
    try {
      const before = tf.memory().numTensors;
      tf.tidy(() => {
        const qkv = T([1, 8, 24], 1);
        const [o, p] = run(Kn.PersonaAttention, { qkv }, { nHead: 2 });
        run(Kn.PersonaAttentionGrad, { dout: o, qkv, probs: p }, { nHead: 2 });
        run(Kn.PersonaLinearGelu, { x: o, w: T([8, 4], 2), b: T([4], 3) });
        run(Kn.PersonaSoftmaxXent, { logits: T([8, 5], 4), targets: tf.zeros([8], 'int32'), weights: tf.ones([8]) });
      });
      assert.equal(tf.memory().numTensors, before);
    } finally {
      tf.env().set('IS_TEST', prev);
    }
  });
});
