/** Standard tfjs kernels on the 'native' backend against the cpu backend. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { kernelStats, resetKernelStats } from '../src/backend/native/kernels.js';
import { compareBackends, randInt, randn, runOn, size, skipNative } from './native-helpers.js';

const T = (shape: number[], seed: number, scale = 1) => tf.tensor(randn(size(shape), seed, scale), shape);

describe('native backend: standard kernels vs cpu', { skip: skipNative }, () => {
  let prevTest: boolean;
  before(() => {
    prevTest = tf.env().getBool('IS_TEST');
    tf.env().set('IS_TEST', true); // the engine then checks every kernel for leaked tensors
  });
  after(async () => {
    tf.env().set('IS_TEST', prevTest);
    await tf.setBackend('cpu');
  });

  test('BatchMatMul: transposes, batches, broadcast, edge sizes', async () => {
    const cases: [number[], number[], boolean, boolean][] = [
      [[3, 5], [5, 4], false, false],
      [[5, 3], [5, 4], true, false],
      [[3, 5], [4, 5], false, true],
      [[5, 3], [4, 5], true, true],
      [[33, 65], [65, 17], false, false],
      [[2, 3, 7, 5], [2, 3, 5, 6], false, false],
      [[4, 7, 5], [4, 6, 5], false, true],
      [[4, 5, 7], [4, 5, 6], true, false],
      [[7, 5], [4, 5, 6], false, false], // a broadcast over b's batch
      [[4, 7, 5], [5, 6], false, false], // b broadcast
      [[1, 7, 5], [3, 5, 6], false, false],
      [[1, 1], [1, 1], false, false],
      [[1, 9], [9, 1], false, false],
      [[0, 4], [4, 3], false, false],
      [[3, 0], [0, 4], false, false],
      [[2, 64, 32], [2, 64, 32], false, true],
    ];
    let seed = 1;
    for (const [as, bs, ta, tb] of cases) {
      const s1 = seed++, s2 = seed++;
      await compareBackends(`matMul ${as} x ${bs} ${ta} ${tb}`,
        () => tf.matMul(T(as, s1), T(bs, s2), ta, tb), 1e-4, 1e-4);
    }
  });

  test('_FusedMatMul: bias, relu, sigmoid, fallback activations', async () => {
    const a = () => T([6, 9], 11), b = () => T([9, 5], 12);
    for (const activation of ['linear', 'relu', 'sigmoid', 'elu', 'relu6'] as const) {
      await compareBackends(`fused ${activation}`,
        () => tf.fused.matMul({ a: a(), b: b(), bias: T([5], 13), activation }), 1e-4, 1e-4);
    }
    await compareBackends('fused bias [6,5]', () => tf.fused.matMul({ a: a(), b: b(), bias: T([6, 5], 14), activation: 'relu' }), 1e-4, 1e-4);
    await compareBackends('fused bias [1]', () => tf.fused.matMul({ a: a(), b: b(), bias: T([1], 15) }), 1e-4, 1e-4);
    await compareBackends('fused no bias transposed', () => tf.fused.matMul({ a: T([9, 6], 16), b: T([5, 9], 17), transposeA: true, transposeB: true }), 1e-4, 1e-4);
  });

  test('binary ops with broadcasting', async () => {
    const pairs: [number[], number[]][] = [
      [[7, 13], [7, 13]], [[], [7, 13]], [[7, 13], []], [[7, 13], [13]], [[13], [7, 13]], [[7, 13], [7, 1]],
      [[4, 1, 5], [1, 3, 1]], [[2, 3, 4, 5], [3, 1, 5]], [[1], [1]], [[0, 3], [3]], [[300, 257], [257]],
      [[2, 1, 70000], [2, 3, 1]],
    ];
    const ops: [string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor][] = [
      ['add', tf.add], ['sub', tf.sub], ['mul', tf.mul], ['div', tf.div], ['maximum', tf.maximum],
      ['minimum', tf.minimum], ['squaredDifference', tf.squaredDifference],
    ];
    let seed = 100;
    for (const [as, bs] of pairs) {
      for (const [name, op] of ops) {
        const s1 = seed++, s2 = seed++;
        await compareBackends(`${name} ${JSON.stringify(as)} ${JSON.stringify(bs)}`, () => op(T(as, s1), T(bs, s2)));
      }
    }
    // NaN propagation in maximum/minimum, and int32 (falls back).
    const nanA = () => tf.tensor([1, NaN, 3, -Infinity]), nanB = () => tf.tensor([NaN, 2, Infinity, 0]);
    await compareBackends('maximum NaN', () => tf.maximum(nanA(), nanB()));
    await compareBackends('minimum NaN', () => tf.minimum(nanA(), nanB()));
    await compareBackends('int32 add', () => tf.add(tf.tensor([1, 2, 3], [3], 'int32'), tf.tensor([4], [1], 'int32')));
  });

  test('unary ops', async () => {
    const x = () => T([513, 9], 7, 3);
    const pos = () => tf.abs(x()).add(1e-3);
    const special = () => tf.tensor([0, -0, 1e-8, -1e-8, 1e-3, 20, -20, 88, -88, 100, -100, Infinity, -Infinity, NaN]);
    const cases: [string, () => tf.Tensor][] = [
      ['exp', () => tf.exp(x())], ['exp special', () => tf.exp(special())],
      ['log', () => tf.log(pos())], ['log special', () => tf.log(special())],
      ['tanh', () => tf.tanh(x())], ['tanh special', () => tf.tanh(special())],
      ['sqrt', () => tf.sqrt(pos())], ['sqrt special', () => tf.sqrt(special())],
      ['rsqrt', () => tf.rsqrt(pos())], ['neg', () => tf.neg(x())], ['square', () => tf.square(x())],
      ['reciprocal', () => tf.reciprocal(x())], ['abs', () => tf.abs(x())], ['relu', () => tf.relu(x())],
      ['sigmoid', () => tf.sigmoid(x())], ['sigmoid special', () => tf.sigmoid(special())],
      ['empty exp', () => tf.exp(tf.zeros([0, 3]))],
    ];
    for (const [name, f] of cases) await compareBackends(name, f, 1e-5, 1e-6);
  });

  test('reductions over any axes', async () => {
    const cases: [number[], number | number[], boolean][] = [
      [[5, 7, 9], 0, false], [[5, 7, 9], 1, false], [[5, 7, 9], 2, true], [[5, 7, 9], [0, 1], false],
      [[5, 7, 9], [1, 2], false], [[5, 7, 9], [0, 2], true], [[5, 7, 9], [-1, 0, 1], false], [[40000], 0, false],
      [[3, 20000], 1, false], [[4, 1, 6], [0, 2], false], [[1, 1], 1, true], [[2048, 384], 0, false], [[17], -1, true],
    ];
    let seed = 300;
    for (const [shape, axis, keep] of cases) {
      const s = seed++;
      const x = () => T(shape, s);
      await compareBackends(`sum ${shape} ${axis}`, () => tf.sum(x(), axis, keep), 1e-4, 1e-4);
      await compareBackends(`mean ${shape} ${axis}`, () => tf.mean(x(), axis, keep), 1e-4, 1e-5);
      await compareBackends(`max ${shape} ${axis}`, () => tf.max(x(), axis, keep));
      await compareBackends(`min ${shape} ${axis}`, () => tf.min(x(), axis, keep));
      if (size(shape) < 100) await compareBackends(`prod ${shape} ${axis}`, () => tf.prod(tf.add(x(), 2), axis, keep), 1e-4, 1e-6);
    }
    await compareBackends('max with NaN', () => tf.max(tf.tensor([[1, NaN, 2], [3, 4, 5]]), 1));
    await compareBackends('max with NaN cols', () => tf.max(tf.tensor([[1, NaN, 2], [3, 4, 5]]), 0));
    await compareBackends('sum all', () => tf.sum(T([30, 40], 9)), 1e-4, 1e-4);
    await compareBackends('sum int32 fallback', () => tf.sum(tf.tensor([1, 2, 3], [3], 'int32')));
  });

  test('softmax (last axis)', async () => {
    for (const [shape, seed] of [[[5, 17], 1], [[2, 3, 129], 2], [[1, 1], 3], [[4, 3000], 4]] as [number[], number][]) {
      await compareBackends(`softmax ${shape}`, () => tf.softmax(T(shape, seed, 4)), 1e-5, 1e-7);
    }
    await compareBackends('softmax -inf', () => tf.softmax(tf.tensor([[0, -Infinity, 1], [2, 3, -Infinity]])));
  });

  test('transpose: any permutation, float32 and int32', async () => {
    const cases: [number[], number[]][] = [
      [[33, 65], [1, 0]], [[2, 5, 3, 7], [0, 2, 1, 3]], [[2, 3, 4, 5], [3, 1, 0, 2]], [[4, 1, 6], [2, 1, 0]],
      [[3, 17, 19], [0, 2, 1]], [[16, 128, 4, 32], [0, 2, 1, 3]], [[5], [0]], [[2, 3, 4], [0, 1, 2]], [[0, 3], [1, 0]],
      [[2, 3, 4, 5, 6], [4, 2, 0, 3, 1]],
    ];
    let seed = 500;
    for (const [shape, perm] of cases) {
      const s = seed++;
      await compareBackends(`transpose ${shape} ${perm}`, () => tf.transpose(T(shape, s), perm), 0, 0);
      await compareBackends(`transpose int32 ${shape} ${perm}`,
        () => tf.transpose(tf.tensor(randInt(size(shape), 1000, s), shape, 'int32'), perm), 0, 0);
    }
  });

  test('slice, stridedSlice, split, concat', async () => {
    const x = () => T([5, 7, 9], 600);
    const xi = () => tf.tensor(randInt(315, 99, 601), [5, 7, 9], 'int32');
    await compareBackends('slice', () => tf.slice(x(), [1, 2, 3], [3, 4, 5]), 0, 0);
    await compareBackends('slice int32', () => tf.slice(xi(), [1, 2, 3], [3, 4, 5]), 0, 0);
    await compareBackends('slice contiguous', () => tf.slice(x(), [1, 0, 0], [2, 7, 9]), 0, 0);
    await compareBackends('slice last', () => tf.slice(x(), [0, 0, 8], [-1, -1, 1]), 0, 0);
    await compareBackends('slice empty', () => tf.slice(x(), [0, 0, 0], [5, 0, 9]), 0, 0);
    await compareBackends('stridedSlice simple', () => tf.stridedSlice(x(), [0, 1, 2], [5, 4, 8], [1, 1, 1]), 0, 0);
    await compareBackends('stridedSlice shrink', () => tf.stridedSlice(x(), [1, 0, 2], [2, 7, 5], [1, 1, 1], 0, 0, 0, 0, 1), 0, 0);
    await compareBackends('stridedSlice strided', () => tf.stridedSlice(x(), [0, 0, 0], [5, 7, 9], [2, 3, 1]), 0, 0);
    await compareBackends('split last equal', () => tf.split(T([6, 24], 602), 3, 1), 0, 0);
    await compareBackends('split sizes', () => tf.split(T([4, 8, 8], 603), [2, 5, 1], 1), 0, 0);
    await compareBackends('split axis 0', () => tf.split(T([6, 5], 604), [1, 5], 0), 0, 0);
    await compareBackends('split rank3 last', () => tf.split(T([2, 3, 12], 605), [4, 0, 8], -1), 0, 0);
    await compareBackends('split int32', () => tf.split(xi(), [3, 6], 2), 0, 0);
    await compareBackends('concat axis 0', () => tf.concat([T([2, 3], 606), T([4, 3], 607), T([1, 3], 608)], 0), 0, 0);
    await compareBackends('concat axis 1', () => tf.concat([T([2, 3], 609), T([2, 5], 610)], 1), 0, 0);
    await compareBackends('concat axis -1 rank 3', () => tf.concat([T([2, 3, 4], 611), T([2, 3, 1], 612), T([2, 3, 0], 613)], -1), 0, 0);
    await compareBackends('concat int32', () => tf.concat([xi(), xi()], 1), 0, 0);
    await compareBackends('concat rank 1', () => tf.concat([T([3], 614), T([5], 615)]), 0, 0);
  });

  test('gather, its gradient (unsortedSegmentSum), select, addN', async () => {
    const idx = () => tf.tensor(randInt(12, 10, 700), [3, 4], 'int32');
    await compareBackends('gather axis 0', () => tf.gather(T([10, 6], 701), idx()), 0, 0);
    await compareBackends('gather int32', () => tf.gather(tf.tensor(randInt(60, 50, 702), [10, 6], 'int32'), idx()), 0, 0);
    await compareBackends('gather axis 1 (fallback)', () => tf.gather(T([6, 10], 703), idx(), 1), 0, 0);
    await compareBackends('gather grad', () => {
      const x = T([10, 6], 704);
      return tf.grad((w: tf.Tensor) => tf.sum(tf.mul(tf.gather(w, idx()), T([3, 4, 6], 705))))(x);
    }, 1e-5, 1e-6);
    await compareBackends('unsortedSegmentSum', () =>
      tf.unsortedSegmentSum(T([8, 5], 706), tf.tensor([0, 3, 3, 1, -1, 7, 0, 2], [8], 'int32'), 4), 1e-6, 1e-6);
    for (const backend of ['cpu', 'native']) {
      await tf.setBackend(backend);
      assert.throws(() => tf.tidy(() => tf.gather(T([4, 2], 707), tf.tensor([0, 4], [2], 'int32'))), /index/i);
    }
    await compareBackends('select', () => tf.where(tf.greater(T([7, 9], 708), 0), T([7, 9], 709), T([7, 9], 710)), 0, 0);
    await compareBackends('addN', () => tf.addN([T([5, 6], 711), T([5, 6], 712), T([5, 6], 713)]));
  });

  test('a small network: loss and gradients match cpu', async () => {
    tf.env().set('IS_TEST', false); // tfjs's own softmaxCrossEntropy trips the leak check on cpu
    const f = () => {
      const x = T([16, 10], 800), w1 = T([10, 32], 801, 0.3), w2 = T([32, 4], 802, 0.3);
      const loss = (a: tf.Tensor, b: tf.Tensor) =>
        tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor(randInt(16, 4, 803), [16], 'int32'), 4),
          tf.matMul(tf.tanh(tf.matMul(x, a)), b)) as tf.Scalar;
      const { value, grads } = tf.valueAndGrads(loss)([w1, w2]);
      return [value, ...grads];
    };
    await compareBackends('mlp', f, 1e-4, 1e-5);
    tf.env().set('IS_TEST', true);
  });

  test('the common cases run natively', async () => {
    resetKernelStats();
    await runOn('native', () => {
      const x = T([6, 12], 950);
      return [
        tf.matMul(x, x, true, false), tf.add(x, T([12], 951)), tf.exp(x), tf.sum(x, 0), tf.max(x, -1),
        tf.softmax(x), tf.transpose(x), ...tf.split(x, 3, 1), tf.concat([x, x], 1), tf.slice(x, [0, 1], [6, 4]),
        tf.gather(x, tf.tensor([1, 2], [2], 'int32')),
      ];
    });
    for (const k of ['BatchMatMul', 'Add', 'Exp', 'Sum', 'Max', 'Softmax', 'Transpose', 'SplitV', 'Concat', 'Slice',
      'GatherV2']) {
      assert.ok((kernelStats.native.get(k) ?? 0) > 0, `${k} ran natively`);
      assert.equal(kernelStats.fallback.get(k) ?? 0, 0, `${k} did not fall back`);
    }
  });

  test('recycled output buffers never clobber live data', async () => {
    await tf.setBackend('native');
    // dataSync() returns the backend's own array: it must stay valid after dispose.
    const a = T([256, 64], 960);
    const e = tf.exp(a);
    const kept = e.dataSync();
    const copy = kept.slice();
    e.dispose();
    for (let i = 0; i < 3; i++) tf.tidy(() => { tf.exp(T([256, 64], 961 + i)); });
    assert.deepEqual(Array.from(kept), Array.from(copy));
    // A contiguous slice is a view on its input's buffer (cpu kernel): disposing the input must not
    // recycle the buffer while the view lives.
    const big = tf.exp(a);
    const view = tf.slice(big, [10, 0], [20, 64]);
    const want = tf.tidy(() => tf.slice(tf.exp(a), [10, 0], [20, 64]).dataSync().slice());
    big.dispose();
    for (let i = 0; i < 3; i++) tf.tidy(() => { tf.exp(T([256, 64], 970 + i)); });
    assert.deepEqual(Array.from(view.dataSync()), Array.from(want));
    // Repeated same-size work reuses buffers.
    const pool = (tf.backend() as unknown as { pool: { hits: number } }).pool;
    const hits = pool.hits;
    for (let i = 0; i < 5; i++) tf.tidy(() => { tf.add(a, a); });
    assert.ok(pool.hits >= hits + 4, 'buffers are recycled');
    tf.dispose([a, view]);
  });

  test('no tensors leak', async () => {
    await tf.setBackend('native');
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const x = T([8, 12], 900);
      tf.split(x, 3, 1);
      tf.sum(tf.softmax(tf.matMul(x, x, false, true)), [0, 1]);
      tf.transpose(tf.reshape(x, [2, 4, 3, 4]), [0, 2, 1, 3]);
    });
    assert.equal(tf.memory().numTensors, before);
    const r = await runOn('native', () => tf.ones([2]));
    assert.equal(r[0].values.length, 2);
  });
});
