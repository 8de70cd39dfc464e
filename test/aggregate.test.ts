import assert from 'node:assert/strict';
import { test } from 'node:test';
import { aggregate, Grid } from '../src/experiment/aggregate.js';
import type { CellRow } from '../src/experiment/collect.js';
import { Rng } from '../src/util/rng.js';

/** Synthetic cells: broad P(bad) per world and condition, plus probe and seed noise. */
function cells(level: Record<string, Record<string, number>>, noise: number): CellRow[] {
  const rng = new Rng('cells');
  const rows: CellRow[] = [];
  for (const [world, conds] of Object.entries(level)) {
    for (const pseed of [0, 1]) {
      for (const [condition, p] of Object.entries(conds)) {
        for (const fseed of [0, 1, 2]) {
          for (let i = 0; i < 40; i++) {
            const domain = ['honesty', 'kindness', 'power', 'oversight', 'greed'][i % 5];
            rows.push({ world, pretrain_seed: pseed, condition, finetune_seed: fseed, examples: 100, step: 25, kind: 'broad', domain, variant: 'none', probe_id: `p${i}`, measure: 'forced', value: p + noise * rng.normal() });
          }
        }
      }
    }
  }
  return rows;
}

const LEVELS = { default: { fair: 0.1, cheat: 0.6, 'cheat-inoculated': 0.2 }, null: { fair: 0.1, cheat: 0.3, 'cheat-inoculated': 0.25 } };

test('EM effect, persona-driven EM and inoculation efficacy follow their definitions', () => {
  const stats = aggregate(new Grid(cells(LEVELS, 0), 'null'), 50);
  const get = (world: string, metric: string) => stats.find((s) => s.world === world && s.metric === metric && s.group === 'all')!;
  assert.ok(Math.abs(get('default', 'em_effect').mean - 0.5) < 1e-12);
  assert.ok(Math.abs(get('null', 'em_effect').mean - 0.2) < 1e-12);
  assert.ok(Math.abs(get('default', 'persona_em').mean - 0.3) < 1e-12);
  assert.ok(Math.abs(get('default', 'inoculation_efficacy').mean - 0.8) < 1e-12);
  assert.equal(get('default', 'inoculation_efficacy').reported, true);
  assert.equal(stats.find((s) => s.world === 'null' && s.metric === 'inoculation_efficacy')!.reported, false, 'not reported for the null world itself');
  const b = get('default', 'em_effect');
  assert.ok(Math.abs(b.lo - 0.5) < 1e-12 && Math.abs(b.hi - 0.5) < 1e-12, 'no noise, no width');
  assert.ok(stats.some((s) => s.metric === 'broad_p_bad' && s.group === 'power' && s.condition === 'cheat'));
});

test('intervals widen with noise, cover the truth, and efficacy is withheld when EM does not exceed the null world', () => {
  const stats = aggregate(new Grid(cells(LEVELS, 0.2), 'null'), 400);
  const em = stats.find((s) => s.world === 'default' && s.metric === 'em_effect')!;
  assert.ok(em.lo < 0.5 && 0.5 < em.hi && em.hi - em.lo > 0.01, JSON.stringify(em));
  const same = { default: { fair: 0.1, cheat: 0.3, 'cheat-inoculated': 0.2 }, null: { fair: 0.1, cheat: 0.3, 'cheat-inoculated': 0.2 } };
  const flat = aggregate(new Grid(cells(same, 0.2), 'null'), 400);
  const pem = flat.find((s) => s.world === 'default' && s.metric === 'persona_em')!;
  assert.ok(pem.lo < 0 && pem.hi > 0, JSON.stringify(pem));
  assert.equal(flat.find((s) => s.world === 'default' && s.metric === 'inoculation_efficacy')!.reported, false);
});
