import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pl from 'nodejs-polars';
import { writeParquetCopy } from '../src/data/parquet.js';
import { aggregate, Grid } from '../src/experiment/aggregate.js';
import { writeCells, type CellRow } from '../src/experiment/collect.js';
import { writeStats } from '../src/experiment/write-results.js';
import { Rng } from '../src/util/rng.js';

const root = mkdtempSync(join(tmpdir(), 'persona-polars-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** An experiment's cell table: two worlds, two pretraining seeds, three conditions, two fine-tuning seeds, two steps, a few missing values. */
function cells(): CellRow[] {
  const rng = new Rng('polars');
  const level: Record<string, Record<string, number>> = { default: { fair: 0.1, cheat: 0.6, 'cheat-inoculated': 0.15 }, null: { fair: 0.1, cheat: 0.25, 'cheat-inoculated': 0.2 } };
  const rows: CellRow[] = [];
  for (const [world, conds] of Object.entries(level)) {
    for (const pretrain_seed of [0, 1]) {
      for (const [condition, p] of Object.entries(conds)) {
        for (const finetune_seed of [0, 1]) {
          for (const step of [0, 25]) {
            for (let i = 0; i < 30; i++) {
              const domain = ['honesty', 'kindness', 'power', 'oversight', 'greed'][i % 5];
              const value = i === 7 && finetune_seed === 1 ? NaN : Math.min(1, Math.max(0, (step ? p : 0.05) + 0.1 * rng.normal()));
              // `cluster` (the probe's resampling unit) where the cell table has one.
              const row = { world, pretrain_seed, condition, finetune_seed, examples: 100, step, kind: 'broad', domain, variant: 'none', probe_id: `b${i}`, cluster: `b${i}`, measure: 'forced', value };
              rows.push(row as unknown as CellRow);
              if (i < 10) rows.push({ ...row, kind: 'narrow', domain: 'rules', probe_id: `n${i}`, cluster: `n${i}`, value: rng.next() } as unknown as CellRow);
            }
          }
        }
      }
    }
  }
  return rows;
}

const cellsPath = join(root, 'cells.arrow');
const resultsPath = join(root, 'results.arrow');
const rows = cells();
writeCells(cellsPath, rows);
writeStats(resultsPath, aggregate(new Grid(rows, 'null'), 50));

// nodejs-polars' readIPC fails on a path (a seek error on the file) but reads the file's bytes.
const readArrowPl = (path: string) => pl.readIPC(readFileSync(path));

test('polars reads cells.arrow and results.arrow, and the EM effect and EM beyond the null world it computes from the cells match results.arrow', () => {
  const cellsDf = readArrowPl(cellsPath);
  const results = readArrowPl(resultsPath);
  assert.equal(cellsDf.height, rows.length);
  assert.ok(['world', 'condition', 'step', 'kind', 'measure', 'value'].every((c) => cellsDf.columns.includes(c)));
  assert.equal(cellsDf.getColumn('value').nullCount(), rows.filter((r) => Number.isNaN(r.value)).length, 'missing values are nulls');

  // Broad P(bad) per world, step and condition: the mean over runs and probes (nulls skipped).
  const broad = cellsDf
    .filter(pl.col('kind').eq(pl.lit('broad')).and(pl.col('measure').eq(pl.lit('forced'))))
    .groupBy(['world', 'step', 'condition'])
    .agg(pl.col('value').mean().alias('p_bad'));
  const p = (world: string, step: number, condition: string) => {
    const hit = broad.filter(pl.col('world').eq(pl.lit(world)).and(pl.col('step').eq(pl.lit(step))).and(pl.col('condition').eq(pl.lit(condition))));
    assert.equal(hit.height, 1);
    return hit.getColumn('p_bad').get(0) as number;
  };
  const stat = (metric: string, world: string, step: number, condition = 'cheat-fair') => {
    const hit = results.filter(pl.col('metric').eq(pl.lit(metric)).and(pl.col('world').eq(pl.lit(world))).and(pl.col('step').eq(pl.lit(step))).and(pl.col('condition').eq(pl.lit(condition))).and(pl.col('group').eq(pl.lit('all'))));
    assert.equal(hit.height, 1, `${metric} ${world} ${step}`);
    return hit.row(0) as unknown[];
  };
  const meanCol = results.columns.indexOf('mean');
  for (const step of [0, 25]) {
    for (const world of ['default', 'null']) {
      for (const c of ['fair', 'cheat', 'cheat-inoculated']) assert.ok(Math.abs(p(world, step, c) - (stat('broad_p_bad', world, step, c)[meanCol] as number)) < 1e-12);
    }
    const em = (w: string) => p(w, step, 'cheat') - p(w, step, 'fair');
    assert.ok(Math.abs(em('default') - (stat('em_effect', 'default', step)[meanCol] as number)) < 1e-12, 'EM effect');
    assert.ok(Math.abs(em('default') - em('null') - (stat('em_beyond_null', 'default', step)[meanCol] as number)) < 1e-12, 'EM beyond the null world');
  }
  assert.ok(Math.abs(p('default', 25, 'cheat') - p('default', 25, 'fair') - 0.5) < 0.05, 'the synthetic effect is there');
});

test('Parquet copies of cells.arrow and results.arrow hold the same tables (polars reads them back)', async () => {
  for (const name of ['cells', 'results']) {
    const parquet = join(root, `${name}.parquet`);
    await writeParquetCopy(join(root, `${name}.arrow`), parquet);
    assert.equal(readFileSync(parquet).subarray(0, 4).toString(), 'PAR1');
    const fromParquet = pl.readParquet(parquet);
    const fromArrow = readArrowPl(join(root, `${name}.arrow`));
    assert.deepEqual(fromParquet.columns, fromArrow.columns);
    assert.ok(fromParquet.frameEqual(fromArrow, true), `${name}: the Parquet copy equals the Arrow file`);
  }
});
