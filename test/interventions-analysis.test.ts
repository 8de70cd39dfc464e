import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rangeOf, seedInterval, slope, spearman, verdictAbove } from '../src/experiment/interventions-analysis.js';
import { Rng } from '../src/util/rng.js';

test('the seed interval holds its 95% coverage with 3 seeds (simulated lineages with a seed effect and run noise)', () => {
  const rng = new Rng('iv-coverage');
  const truth = 0.2;
  let covered = 0;
  let naive = 0;
  const sims = 2000;
  for (let s = 0; s < sims; s++) {
    // Each lineage's paired difference: the true effect, a base-model effect and the run's own noise.
    const values = Array.from({ length: 3 }, () => truth + 0.15 * rng.normal() + 0.05 * rng.normal());
    const iv = seedInterval('test quantity', '', values, [-Infinity, Infinity]);
    if (iv.lo <= truth && truth <= iv.hi) covered++;
    // A normal-quantile interval (what a z interval would claim) under-covers with 3 seeds.
    const sd = Math.sqrt(values.reduce((a, v) => a + (v - iv.mean) ** 2, 0) / 2);
    if (Math.abs(iv.mean - truth) <= 1.96 * (sd / Math.sqrt(3))) naive++;
  }
  assert.ok(covered / sims >= 0.93 && covered / sims <= 0.97, `t interval covers ${covered / sims}`);
  assert.ok(naive / sims < 0.9, `the z interval covers ${naive / sims}: the test would not tell them apart`);
});

test('verdicts, ranges, rank correlation and slope', () => {
  const stat = (values: number[]) => seedInterval('EM effect (broad P(bad) cheat - fair)', '', values);
  assert.equal(verdictAbove(stat([0.3, 0.32, 0.31])), 'confirmed');
  assert.equal(verdictAbove(stat([-0.3, -0.32, -0.31])), 'not confirmed');
  assert.equal(verdictAbove(stat([0.3, -0.2, 0.1])), 'inconclusive');
  assert.equal(verdictAbove(seedInterval('x', '', [0.9])), 'inconclusive', 'one seed gives no interval');
  assert.equal(verdictAbove(stat([0.9, 0.91, 0.92]), 0.95), 'not confirmed');
  // Bounded quantities are clipped to what they can take.
  const p = seedInterval('steered broad P(bad)', '', [0.01, 0.5, 0.99]);
  assert.ok(p.lo >= 0 && p.hi <= 1);
  assert.deepEqual(rangeOf('rules P(bad) kept: ablated / un-ablated cheat'), [-Infinity, Infinity]);
  assert.deepEqual(rangeOf('Spearman: early persona-score shift vs final broad shift'), [-1, 1]);
  assert.equal(spearman([1, 2, 3, 4], [10, 20, 30, 40]), 1);
  assert.equal(spearman([1, 2, 3, 4], [4, 3, 2, 1]), -1);
  assert.ok(Math.abs(spearman([1, 2, 2, 3], [1, 2, 3, 4]) - 0.9486832980505138) < 1e-12, 'ties take average ranks');
  assert.ok(Number.isNaN(spearman([1, 2], [2, 1])));
  assert.equal(slope([0, 0.5, 1], [0, 0.25, 0.5]), 0.5);
});
