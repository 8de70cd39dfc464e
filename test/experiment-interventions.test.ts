import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { columnValues, readArrow } from '../src/data/arrow.js';
import { readEvalRows } from '../src/eval/eval-rows.js';
import { readSteerRows } from '../src/eval/steering-eval.js';
import { buildGraph } from '../src/experiment/graph.js';
import { loadSpec, validateSpec } from '../src/experiment/spec.js';
import { nativeBackendStatus } from '../src/backend/native/native-backend.js';
import { ROOT, runScript } from './helpers/cli.js';

const SPEC = join(ROOT, 'test/fixtures/smoke-interventions.json');
const root = mkdtempSync(join(tmpdir(), 'persona-iv-'));
after(() => rmSync(root, { recursive: true, force: true }));
const backend = nativeBackendStatus().available ? 'native' : 'wasm';
const run = (out: string) => runScript('experiment', ['--spec', SPEC, '--runs', join(root, 'runs'), '--out', out, '--backend', backend, '--replicates', '100']);

test('interventions add their own cells and leave the main grid\'s cells as they were', () => {
  const spec = loadSpec(SPEC);
  const nodes = buildGraph(spec, '/r');
  const plain = buildGraph({ ...spec, interventions: undefined }, '/r');
  assert.deepEqual(nodes.filter((n) => !n.labels.intervention).map((n) => n.id), plain.map((n) => n.id));
  const count = (what: string) => nodes.filter((n) => n.labels.intervention === what && n.kind !== 'evaluate').length;
  // Two lineages: a direction each, the assistant and the cheat model steered, two ablations, 2 partners x 1 fraction, 2 re-alignment sizes.
  assert.deepEqual(['direction', 'steer', 'ablate-persona', 'ablate-random', 'dose', 'realign'].map(count), [2, 4, 2, 2, 4, 4]);
  const ablated = nodes.find((n) => n.labels.intervention === 'ablate-persona' && n.kind === 'narrow')!;
  assert.ok(ablated.deps.some((d) => d.startsWith('direction-')), 'an ablation waits for its lineage\'s directions');
});

test('npm run experiment runs every intervention, reports a verdict per prediction, and reuses the cells on a rerun', () => {
  const first = run(join(root, 'out'));
  assert.equal(first.status, 0, first.stderr);
  for (const f of ['interventions.arrow', 'interventions.parquet', 'interventions.md', 'plots/steering.svg', 'plots/dose.svg', 'plots/realign.svg', 'plots/early-warning.svg']) assert.ok(existsSync(join(root, 'out', f)), f);
  const verdicts = readFileSync(join(root, 'out', 'interventions.md'), 'utf8');
  const rows = verdicts.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| prediction'));
  assert.equal(rows.length, 8);
  for (const r of rows) assert.match(r, /\| (confirmed|not confirmed|inconclusive) \|$/, r);
  assert.match(readFileSync(join(root, 'out', 'report.md'), 'utf8'), /## Steering: broad P\(bad\) against alpha/);
  const t = readArrow(join(root, 'out', 'interventions.arrow'));
  assert.ok(columnValues<string>(t, 'quantity').includes('fraction of the broad shift undone in the other domains'));

  const nodes = buildGraph(loadSpec(SPEC), join(root, 'runs'));
  // Steering by alpha 0 is the unsteered model: its P(bad) equals the assistant's own step-0 forced choice.
  const steer = nodes.find((n) => n.kind === 'steer' && n.labels.arm === 'assistant' && n.labels.pretrain_seed === 0)!;
  const assistant = nodes.find((n) => n.kind === 'assistant' && n.labels.pretrain_seed === 0 && n.labels.world === 'default')!;
  const plain = new Map(readEvalRows(join(assistant.dir, 'step0.arrow')).filter((r) => r.kind === 'broad').map((r) => [r.probe_id, r.value!]));
  const zero = readSteerRows(join(steer.dir, 'steer.arrow')).filter((r) => r.alpha === 0 && r.kind === 'broad' && r.direction === 'persona');
  assert.ok(zero.length > 0);
  for (const r of zero) assert.ok(Math.abs(r.p_bad - plain.get(r.probe_id)!) < 1e-5, `${r.probe_id}: ${r.p_bad} vs ${plain.get(r.probe_id)}`);
  // The ablation is recorded with the run it changed.
  const ablated = nodes.find((n) => n.labels.intervention === 'ablate-persona' && n.kind === 'narrow')!;
  const info = JSON.parse(readFileSync(join(ablated.dir, 'checkpoint', 'config.json'), 'utf8')).info;
  assert.deepEqual(info.ablation, { name: 'persona mean-diff', layers: [0, 1] });

  const again = run(join(root, 'out2'));
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /cells: 0 run, \d+ reused/);
  assert.deepEqual(readFileSync(join(root, 'out2', 'interventions.md'), 'utf8'), verdicts, 'the same cells give the same verdicts');
});

test('the interventions section is validated against the rest of the spec', () => {
  const base = JSON.parse(readFileSync(SPEC, 'utf8'));
  const iv = base.interventions;
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['unknown world', { ...iv, world: 'elsewhere' }, /"interventions\.world" must name a world/],
    ['untrained seed', { ...iv, pretrain_seeds: [7] }, /not trained with seed 7/],
    ['layer out of range', { ...iv, layer: 9 }, /"interventions\.layer" 9 does not exist/],
    ['unknown arm', { ...iv, steer: { ...iv.steer, arms: ['cheat+pool'] } }, /"cheat\+pool" is not an arm/],
    ['fraction 1', { ...iv, dose: { fractions: [1] } }, /"interventions\.dose\.fractions\.0"/],
    ['rules as re-alignment domain', { ...iv, realign: { ...iv.realign, domain: 'rules' } }, /broad domain/],
    ['early step not evaluated', { ...iv, early_warning_step: 3 }, /must be one of narrow\.eval_steps/],
  ];
  for (const [what, interventions, message] of cases) {
    assert.throws(() => validateSpec({ ...base, interventions }, 'spec.json'), (err: Error) => message.test(err.message) && !err.message.includes('\n'), what);
  }
});
