/**
 * The experiment's statistics: the decomposition follows its definitions exactly, and the
 * intervals hold their nominal coverage on simulated grids with pretraining-seed, fine-tuning-seed,
 * act and probe effects (where a flat bootstrap over probes and seeds does not).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { aggregate, definitions, estimate, Grid } from '../src/experiment/aggregate.js';
import type { CellRow } from '../src/experiment/collect.js';
import { quantile } from '../src/eval/bootstrap.js';
import { Rng } from '../src/util/rng.js';

const DOMAINS = ['honesty', 'kindness', 'power', 'oversight', 'greed'];

interface SimOptions {
  /** world -> arm -> mean broad P(bad). */
  levels: Record<string, Record<string, number>>;
  pseeds: number[];
  fseeds: number[];
  actsPerDomain: number;
  /** SDs: the seed effect on cheat, a run's offset, the act effect on cheat, probe noise. */
  seedSd: number;
  runSd: number;
  actSd: number;
  probeSd: number;
  /** Fixed seed effects (pretraining seed -> effect on cheat), drawn when absent. */
  seedEffects?: Map<number, number>;
}

function simulate(rng: Rng, o: SimOptions): CellRow[] {
  const rows: CellRow[] = [];
  const actEffect = new Map<string, number>();
  for (const d of DOMAINS) for (let a = 0; a < o.actsPerDomain; a++) actEffect.set(`${d}:${a}`, o.actSd * rng.normal());
  for (const [world, arms] of Object.entries(o.levels)) {
    for (const pseed of o.pseeds) {
      const seedEffect = o.seedEffects?.get(pseed) ?? o.seedSd * rng.normal();
      // Each pretraining seed has its own probe set: a varying number of probes per act.
      const probes: Array<{ id: string; domain: string; cluster: string }> = [];
      for (const d of DOMAINS) for (let a = 0; a < o.actsPerDomain; a++) {
        const n = 1 + rng.int(8);
        for (let k = 0; k < n; k++) probes.push({ id: `${d}-${a}-${k}`, domain: d, cluster: `${d}:${a}` });
      }
      for (const [arm, level] of Object.entries(arms)) {
        const cheat = arm === 'fair' ? 0 : 1;
        for (const fseed of o.fseeds) {
          const run = o.runSd * rng.normal();
          for (const p of probes) {
            const value = level + cheat * (seedEffect + actEffect.get(p.cluster)!) + run + o.probeSd * rng.normal();
            rows.push({ world, pretrain_seed: pseed, condition: arm, finetune_seed: fseed, examples: 100, step: 25, kind: 'broad', domain: p.domain, variant: 'none', probe_id: p.id, cluster: p.cluster, measure: 'forced', value });
          }
        }
      }
    }
  }
  return rows;
}

const emDef = (grid: Grid) => definitions(grid).filter((d) => d.metric === 'em_effect' && d.group === 'all' && d.world === 'w');

test('the decomposition follows its definitions: persona-driven, instruction-frame, generic, beyond null, efficacy', () => {
  const levels = {
    w: { fair: 0.1, cheat: 0.6, 'cheat+act-free': 0.15, 'cheat+placebo': 0.55 },
    twin: { fair: 0.1, cheat: 0.35, 'cheat+act-free': 0.15, 'cheat+placebo': 0.3 },
    nul: { fair: 0.1, cheat: 0.2, 'cheat+act-free': 0.15, 'cheat+placebo': 0.2 },
  };
  const rows = simulate(new Rng('exact'), { levels, pseeds: [0, 1], fseeds: [0, 1], actsPerDomain: 3, seedSd: 0, runSd: 0, actSd: 0, probeSd: 0 });
  const stats = aggregate(new Grid(rows, { null: 'nul', twins: { w: 'twin' } }), 20);
  const get = (metric: string, condition?: string) => stats.find((s) => s.world === 'w' && s.metric === metric && s.group === 'all' && (!condition || s.condition === condition))!;
  const close = (x: number, y: number) => assert.ok(Math.abs(x - y) < 1e-9, `${x} != ${y}`);
  close(get('em_effect').mean, 0.5);
  close(get('persona_em').mean, 0.5 - 0.25);
  close(get('instruction_frame_em').mean, 0.25 - 0.1);
  close(get('generic_em').mean, 0.1);
  close(get('em_beyond_null').mean, 0.4);
  close(get('inoculation_efficacy', 'cheat+act-free').mean, 1 - 0.05 / 0.5);
  close(get('inoculation_efficacy', 'cheat+placebo').mean, 1 - 0.45 / 0.5);
  assert.equal(get('inoculation_efficacy', 'cheat+act-free').reported, true);
  const e = get('em_effect');
  assert.ok(Math.abs(e.hi - e.lo) < 1e-9, 'no noise, no width');
  assert.equal(e.unit, 'pretraining seeds');
  assert.ok(stats.some((s) => s.metric === 'persona_em' && s.group === 'power'), 'per-domain decomposition');
  assert.ok(!stats.some((s) => s.world === 'nul' && s.metric === 'persona_em'), 'the null world has no twin');
});

test('seed-t + act-bootstrap intervals cover the true EM in >= 90% of 200 simulated 3-seed grids; a flat bootstrap does not', (t) => {
  const truth = 0.3;
  const o: SimOptions = { levels: { w: { fair: 0.1, cheat: 0.1 + truth } }, pseeds: [0, 1, 2], fseeds: [0, 1], actsPerDomain: 6, seedSd: 0.08, runSd: 0.03, actSd: 0.12, probeSd: 0.1 };
  const rng = new Rng('coverage');
  let covered = 0;
  let flatCovered = 0;
  const sims = 200;
  for (let s = 0; s < sims; s++) {
    const rows = simulate(rng, o);
    const grid = new Grid(rows, 'nul');
    const [em] = estimate(grid, emDef(grid), { replicates: 100, seed: `sim${s}` });
    if (em.lo <= truth && truth <= em.hi) covered++;
    // The flat percentile bootstrap this replaced: seeds and probes resampled as independent units.
    const byRun = new Map<string, number[]>();
    for (const r of rows) (byRun.get(`${r.pretrain_seed}|${r.condition}`) ?? byRun.set(`${r.pretrain_seed}|${r.condition}`, []).get(`${r.pretrain_seed}|${r.condition}`)!).push(r.value);
    const reps: number[] = [];
    for (let b = 0; b < 100; b++) {
      let diff = 0;
      for (let k = 0; k < o.pseeds.length; k++) {
        const p = o.pseeds[rng.int(o.pseeds.length)];
        const mean = (xs: number[]) => { let t = 0; for (let i = 0; i < xs.length; i++) t += xs[rng.int(xs.length)]; return t / xs.length; };
        diff += mean(byRun.get(`${p}|cheat`)!) - mean(byRun.get(`${p}|fair`)!);
      }
      reps.push(diff / o.pseeds.length);
    }
    reps.sort((a, b) => a - b);
    if (quantile(reps, 0.025) <= truth && truth <= quantile(reps, 0.975)) flatCovered++;
  }
  t.diagnostic(`coverage: seed-t + act bootstrap ${covered / sims}, flat bootstrap ${flatCovered / sims}`);
  assert.ok(covered / sims >= 0.9, `coverage ${covered / sims}`);
  assert.ok(flatCovered / sims < 0.85, `the flat bootstrap should under-cover here, got ${flatCovered / sims}`);
});

test('with one pretraining seed the interval is conditional on that base model and covers its effect in >= 90% of grids', (t) => {
  const truth = 0.3;
  const seedEffect = 0.07;
  const o: SimOptions = { levels: { w: { fair: 0.1, cheat: 0.1 + truth } }, pseeds: [0], fseeds: [0, 1, 2], actsPerDomain: 6, seedSd: 0, runSd: 0.03, actSd: 0.12, probeSd: 0.1, seedEffects: new Map([[0, seedEffect]]) };
  const rng = new Rng('coverage-one-seed');
  let covered = 0;
  const sims = 200;
  for (let s = 0; s < sims; s++) {
    const grid = new Grid(simulate(rng, o), 'nul');
    const [em] = estimate(grid, emDef(grid), { replicates: 100, seed: `one${s}` });
    assert.match(em.unit, /conditional on one base model/);
    if (em.lo <= truth + seedEffect && truth + seedEffect <= em.hi) covered++;
  }
  t.diagnostic(`coverage, one pretraining seed (conditional): ${covered / sims}`);
  assert.ok(covered / sims >= 0.9, `coverage ${covered / sims}`);
});
