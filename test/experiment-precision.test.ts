/**
 * An experiment's precision: fp32 unless the spec says bf16, never auto (numbers must not depend on
 * the CPU), and part of a training cell's id only when it is bf16, so fp32 cells keep their ids.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildGraph } from '../src/experiment/graph.js';
import { loadSpec, SpecError, validateSpec } from '../src/experiment/spec.js';

const SPEC = 'test/fixtures/smoke-experiment.json';

test('a spec defaults to fp32, and fp32 cells keep the ids they had before precision existed', () => {
  const spec = loadSpec(SPEC);
  assert.equal(spec.precision, 'fp32');
  const ids = buildGraph(spec, '/r').map((n) => n.id);
  assert.deepEqual(buildGraph({ ...spec, precision: 'fp32' }, '/r').map((n) => n.id), ids);
  // Pinned: the smoke spec's first lineage as it was hashed before precision existed (test/experiment.test.ts pins the same).
  assert.deepEqual(ids.slice(0, 5), ['data-96c7982ec10f', 'base-10d60d58f9df', 'assistant-8fcfe965fc7d', 'narrow-b6cc242087a9', 'evaluate-55d0b67eae96']);
  const base = buildGraph(spec, '/r').find((n) => n.kind === 'base')!;
  assert.equal('precision' in base.config, false, 'no precision key in an fp32 config');
});

test('bf16 makes new training cells (and their evaluations); the data cells stay shared', () => {
  const spec = loadSpec(SPEC);
  const fp32 = buildGraph(spec, '/r');
  const bf16 = buildGraph({ ...spec, precision: 'bf16' }, '/r');
  assert.equal(bf16.length, fp32.length);
  for (const [i, n] of bf16.entries()) {
    if (n.kind === 'data') assert.equal(n.id, fp32[i].id);
    else assert.notEqual(n.id, fp32[i].id, `${n.kind} cell with bf16 products has its own id`);
    if (n.kind === 'base' || n.kind === 'assistant' || n.kind === 'narrow') assert.equal(n.config.precision, 'bf16');
  }
});

test('a spec refuses precision auto', () => {
  const raw = JSON.parse(JSON.stringify(loadSpec(SPEC))) as Record<string, unknown>;
  assert.throws(() => validateSpec({ ...raw, precision: 'auto' }, 'spec.json'), (e: Error) => e instanceof SpecError && /"precision"/.test(e.message));
  assert.equal(validateSpec({ ...raw, precision: 'bf16' }, 'spec.json').precision, 'bf16');
});
