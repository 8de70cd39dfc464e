/**
 * Plots of the report, as Vega-Lite specs rendered to SVG by Vega (headless, no browser): the
 * SVG goes into the HTML page and beside the Markdown.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { MetricRow } from '../train/metrics.js';
import type { Stat } from './aggregate.js';

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

const CONDITION_ORDER = ['fair', 'cheat', 'cheat+act-free', 'cheat+pool', 'cheat+novel', 'cheat+placebo', 'cheat-knowledge', 'cheat-forbidden'];

/** Broad P(bad) by condition with 95% intervals, one panel per world, at one narrow step. */
export function broadByCondition(stats: Stat[], step: number): TopLevelSpec {
  const values = stats.filter((s) => s.metric === 'broad_p_bad' && s.group === 'all' && s.step === step);
  return {
    title: `Broad misalignment (forced-choice P(bad), held-out probes) after ${step} narrow steps`,
    data: { values },
    facet: { column: { field: 'world', type: 'nominal', title: 'world' } },
    spec: {
      width: 160,
      height: 200,
      layer: [
        { mark: 'bar', encoding: { x: { field: 'condition', type: 'nominal', sort: CONDITION_ORDER, title: null }, y: { field: 'mean', type: 'quantitative', title: 'P(bad)', scale: { domain: [0, 1] } }, color: { field: 'condition', type: 'nominal', sort: CONDITION_ORDER, legend: null } } },
        { mark: { type: 'errorbar', ticks: { size: 12 }, color: 'black' }, encoding: { x: { field: 'condition', type: 'nominal', sort: CONDITION_ORDER }, y: { field: 'lo', type: 'quantitative', title: 'P(bad)' }, y2: { field: 'hi' } } },
      ],
    },
  } as TopLevelSpec;
}

/** Domain x condition heatmap of broad P(bad) for one world and step. */
export function domainHeatmap(stats: Stat[], world: string, step: number): TopLevelSpec {
  const values = stats.filter((s) => s.metric === 'broad_p_bad' && s.group !== 'all' && s.world === world && s.step === step);
  return {
    title: `P(bad) by domain and condition (${world} world, step ${step})`,
    data: { values },
    width: 260,
    height: 160,
    layer: [
      { mark: 'rect', encoding: { x: { field: 'condition', type: 'nominal', sort: CONDITION_ORDER, title: null }, y: { field: 'group', type: 'nominal', title: 'domain' }, color: { field: 'mean', type: 'quantitative', title: 'P(bad)', scale: { domain: [0, 1], scheme: 'reds' } } } },
      { mark: { type: 'text', fontSize: 10 }, encoding: { x: { field: 'condition', type: 'nominal', sort: CONDITION_ORDER }, y: { field: 'group', type: 'nominal' }, text: { field: 'mean', type: 'quantitative', format: '.2f' } } },
    ],
  } as TopLevelSpec;
}

/** A measure over narrow steps, one line per condition with a 95% band, one panel per world. */
export function overSteps(stats: Stat[], metric: string, group: string, title: string, yTitle: string): TopLevelSpec {
  const values = stats.filter((s) => s.metric === metric && s.group === group);
  return {
    title,
    data: { values },
    facet: { column: { field: 'world', type: 'nominal' } },
    spec: {
      width: 200,
      height: 160,
      layer: [
        { mark: { type: 'area', opacity: 0.2 }, encoding: { x: { field: 'step', type: 'quantitative', title: 'narrow step' }, y: { field: 'lo', type: 'quantitative', title: yTitle, scale: { domain: [0, 1] } }, y2: { field: 'hi' }, color: { field: 'condition', type: 'nominal', sort: CONDITION_ORDER } } },
        { mark: { type: 'line', point: true }, encoding: { x: { field: 'step', type: 'quantitative', title: 'narrow step' }, y: { field: 'mean', type: 'quantitative', title: yTitle }, color: { field: 'condition', type: 'nominal', sort: CONDITION_ORDER } } },
      ],
    },
  } as TopLevelSpec;
}

/** The EM effect and persona-driven EM (and efficacy) against a swept world knob, at one step. */
export function sweepCurve(stats: Stat[], knob: string, worlds: Array<{ name: string; value: number }>, step: number): TopLevelSpec {
  const values = stats
    .filter((s) => ['em_effect', 'em_beyond_null', 'persona_em'].includes(s.metric) && s.group === 'all' && s.step === step)
    .flatMap((s) => {
      const w = worlds.find((x) => x.name === s.world);
      return w ? [{ ...s, [knob]: w.value }] : [];
    });
  return {
    title: `Sweep of ${knob} (step ${step})`,
    data: { values },
    width: 220,
    height: 160,
    layer: [
      { mark: { type: 'errorbar', ticks: true }, encoding: { x: { field: knob, type: 'quantitative' }, y: { field: 'lo', type: 'quantitative', title: 'value' }, y2: { field: 'hi' }, color: { field: 'metric', type: 'nominal' } } },
      { mark: { type: 'line', point: true }, encoding: { x: { field: knob, type: 'quantitative' }, y: { field: 'mean', type: 'quantitative', title: 'value' }, color: { field: 'metric', type: 'nominal' } } },
    ],
  } as TopLevelSpec;
}

/** The EM effect's parts (persona-driven, instruction-frame, generic) per domain with 95% intervals, one panel per world. */
export function decompositionPlot(stats: Stat[], worlds: string[], step: number): TopLevelSpec {
  const parts = ['persona_em', 'instruction_frame_em', 'generic_em'];
  const values = stats.filter((s) => parts.includes(s.metric) && worlds.includes(s.world) && s.step === step);
  return {
    title: `Parts of the EM effect by domain (step ${step})`,
    data: { values },
    facet: { row: { field: 'world', type: 'nominal' }, column: { field: 'metric', type: 'nominal', sort: parts, title: null } },
    spec: {
      width: 170,
      height: 130,
      layer: [
        { mark: 'bar', encoding: { x: { field: 'group', type: 'nominal', title: null }, y: { field: 'mean', type: 'quantitative', title: 'share of P(bad)' }, color: { field: 'metric', type: 'nominal', legend: null } } },
        { mark: { type: 'errorbar', ticks: { size: 8 }, color: 'black' }, encoding: { x: { field: 'group', type: 'nominal' }, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } } },
      ],
    },
  } as TopLevelSpec;
}

/** Training dynamics logged by the narrow runs: quick broad P(bad) and cheat rate at every logged evaluation. */
export function dynamicsPlot(rows: Array<MetricRow & { world: string; condition: string; finetune_seed: number }>): TopLevelSpec {
  const values = rows.filter((r) => typeof r.broad_quick === 'number').map((r) => ({ world: r.world, condition: r.condition, seed: r.finetune_seed, step: r.step, broad: r.broad_quick, cheat: r.cheat_no_prompt }));
  return {
    title: 'Training dynamics of the narrow runs (quick broad P(bad), every run)',
    data: { values },
    facet: { column: { field: 'world', type: 'nominal' } },
    spec: {
      width: 200,
      height: 160,
      mark: { type: 'line', opacity: 0.7 },
      encoding: { x: { field: 'step', type: 'quantitative' }, y: { field: 'broad', type: 'quantitative', title: 'P(bad)', scale: { domain: [0, 1] } }, color: { field: 'condition', type: 'nominal', sort: CONDITION_ORDER }, detail: { field: 'seed', type: 'nominal' } },
    },
  } as TopLevelSpec;
}
