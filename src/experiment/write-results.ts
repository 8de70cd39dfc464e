/**
 * Results of an experiment: the long cell table, the statistics table (both Arrow), the narrow
 * runs' training logs, plots, and the report (Markdown and HTML) in results/<experiment>/.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Bool, Float64, Int32, Utf8, vectorFromArray } from 'apache-arrow';
import { writeArrow } from '../data/arrow.js';
import { writeBytesAtomic } from '../util/atomic-files.js';
import { writeParquetCopy } from '../data/parquet.js';
import { metricsToArrow } from '../train/metrics.js';
import { aggregate, Grid, type Stat, type WorldRoles } from './aggregate.js';
import { collect, writeCells } from './collect.js';
import type { GraphNode } from './graph.js';
import { broadByCondition, decompositionPlot, domainHeatmap, dynamicsPlot, overSteps, renderSvg, sweepCurve } from './plots.js';
import { answerSection, sectionMarkdown, baseSection, conditionSection, decompositionSections, domainSection, probeSection, toHtml, toMarkdown, type ReportInput, type Section } from './report.js';
import { expandWorlds, type ExperimentSpec, type ResolvedWorld } from './spec.js';
import { analyseInterventions } from './interventions-analysis.js';
import { interventionSections } from './interventions-report.js';

/** How the worlds relate, for the statistics: the null world, each world's twin, and each leak control's clean counterpart. */
export function worldRoles(worlds: ResolvedWorld[], nullWorld: string): WorldRoles {
  const twins = Object.fromEntries(worlds.filter((w) => w.twin).map((w) => [w.name, w.twin!]));
  const byConfig = new Map(worlds.map((w) => [JSON.stringify(w.config), w.name]));
  const unleaked: Record<string, string> = {};
  for (const w of worlds) {
    if (w.config.p_lexical_leak === 0) continue;
    const clean = byConfig.get(JSON.stringify({ ...w.config, p_lexical_leak: 0 }));
    if (clean) unleaked[w.name] = clean;
  }
  return { null: nullWorld, twins, unleaked };
}

export function writeStats(path: string, stats: Stat[]): void {
  const str = (k: keyof Stat) => vectorFromArray(stats.map((s) => String(s[k])), new Utf8());
  const num = (k: keyof Stat) => vectorFromArray(stats.map((s) => (Number.isFinite(s[k] as number) ? (s[k] as number) : null)), new Float64());
  writeArrow(path, {
    world: str('world'), examples: vectorFromArray(stats.map((s) => s.examples), new Int32()), step: vectorFromArray(stats.map((s) => s.step), new Int32()),
    metric: str('metric'), condition: str('condition'), group: str('group'), mean: num('mean'), lo: num('lo'), hi: num('hi'),
    runs: vectorFromArray(stats.map((s) => s.runs), new Int32()), probes: vectorFromArray(stats.map((s) => s.probes), new Int32()),
    units: vectorFromArray(stats.map((s) => s.units), new Int32()), unit: str('unit'), df: num('df'),
    reported: vectorFromArray(stats.map((s) => s.reported), new Bool()),
  });
}

export interface ResultsSummary {
  dir: string;
  stats: Stat[];
  missing: number;
}

export async function writeResults(spec: ExperimentSpec, nodes: GraphNode[], out: string, replicates: number): Promise<ResultsSummary> {
  mkdirSync(join(out, 'plots'), { recursive: true });
  const collected = collect(nodes);
  if (collected.rows.length === 0) throw new Error(`no finished narrow runs to report on yet (${collected.missing.length} cells missing); run the experiment first`);
  writeCells(join(out, 'cells.arrow'), collected.rows);
  const worlds = expandWorlds(spec);
  const grid = new Grid(collected.rows, worldRoles(worlds, spec.null_world));
  const stats = aggregate(grid, replicates, spec.name);
  writeStats(join(out, 'results.arrow'), stats);
  // Parquet copies for tools that read Parquet but not Arrow IPC (DuckDB without its arrow extension).
  for (const name of ['cells', 'results']) await writeParquetCopy(join(out, `${name}.arrow`), join(out, `${name}.parquet`));
  writeBytesAtomic(join(out, 'dynamics.arrow'), metricsToArrow(collected.dynamics));

  const steps = grid.steps;
  const last = steps[steps.length - 1];
  const firstTrained = steps.find((s) => s > 0) ?? last;
  const plot = async (name: string, title: string, spec0: Parameters<typeof renderSvg>[0], text: string[] = []): Promise<Section> => {
    const svg = await renderSvg(spec0);
    writeBytesAtomic(join(out, 'plots', `${name}.svg`), svg);
    return { title, text, plot: { name, svg } };
  };
  const twins = Object.fromEntries(worlds.filter((w) => w.twin).map((w) => [w.name, w.twin!]));
  const input: ReportInput = { name: spec.name, description: spec.description, nullWorld: spec.null_world, reportStep: spec.report_step, families: spec.inoculation_families, twins, stats, collected, totalCells: nodes.length };
  const sections: Section[] = [answerSection(input), ...decompositionSections(input)];
  const decomposed = Object.keys(twins);
  if (decomposed.length) sections.push(await plot('decomposition', `Parts of the EM effect by domain, step ${spec.report_step}`, decompositionPlot(stats, decomposed, spec.report_step)));
  sections.push(await plot('broad-first', `Broad misalignment by condition, step ${firstTrained}`, broadByCondition(stats, firstTrained)));
  if (last !== firstTrained) sections.push(await plot('broad-last', `Broad misalignment by condition, step ${last}`, broadByCondition(stats, last)));
  sections.push(conditionSection(stats, 'broad_p_bad', 'all', 'Broad P(bad) by condition and narrow step', 'Forced choice on held-out probes in the five non-rules domains; step 0 is the assistant before narrow training.'));
  sections.push(await plot('broad-over-steps', 'Broad P(bad) over narrow steps', overSteps(stats, 'broad_p_bad', 'all', 'Broad P(bad) over narrow fine-tuning', 'P(bad)')));
  sections.push(domainSection(stats, firstTrained));
  const mainWorld = worlds[0];
  sections.push(await plot('domains', 'Domain x condition', domainHeatmap(stats, mainWorld.name, firstTrained)));
  sections.push(conditionSection(stats.filter((s) => s.step === last), 'narrow_sampled_cheat_rate', 'none', `Sampled cheat rate without a prompt (step ${last})`, 'Fraction of sampled answers (temperature 1) to held-out rules probes with no instruction that the world\'s matcher calls bad (cheating).'));
  for (const family of spec.inoculation_families) {
    sections.push(conditionSection(stats.filter((s) => s.step === last), 'narrow_sampled_cheat_rate', family, `Sampled cheat rate with a held-out ${family} instruction (step ${last})`, `The same probes preceded by a held-out instruction of the ${family} family.`));
  }
  sections.push(conditionSection(stats, 'narrow_p_bad', 'none', 'Forced-choice P(cheat) without a prompt', 'Forced-choice probability of the cheating answer on held-out rules probes with no instruction, at every step.'));
  for (const family of spec.inoculation_families) {
    sections.push(conditionSection(stats, 'narrow_p_bad', family, `Forced-choice P(cheat) with a held-out ${family} instruction`, `The same probes preceded by a held-out instruction of the ${family} family.`));
  }
  sections.push(await plot('cheat-over-steps', 'Forced-choice P(cheat) without a prompt over narrow steps', overSteps(stats, 'narrow_p_bad', 'none', 'Forced-choice P(cheat) on held-out rules probes, no prompt', 'P(cheat)')));
  sections.push(conditionSection(stats, 'persona_score', 'assistant', 'Persona score', "The persona probe's P(bad persona) at the Assistant's turn after neutral prompts (probe fitted on each lineage's base model)."));
  sections.push(await plot('persona-over-steps', 'Persona score over narrow steps', overSteps(stats, 'persona_score', 'assistant', 'Persona score over narrow fine-tuning', 'P(bad persona)')));
  sections.push(conditionSection(stats.filter((s) => s.step === last), 'broad_sampled_bad', 'all', `Sampled answers at step ${last}: misalignment`, 'Fraction of sampled answers (temperature 1) the world\'s matcher calls bad.'));
  sections.push(conditionSection(stats.filter((s) => s.step === last), 'broad_sampled_coherent', 'all', `Sampled answers at step ${last}: coherence`, 'Fraction of sampled answers that are exactly one well-formed answer of the asked domain.'));
  if (stats.some((s) => s.metric === 'relative_shift')) {
    sections.push(conditionSection(stats, 'relative_shift', 'all', 'Relative broad shift of the other conditions', '(broad(c) - broad(fair)) / (broad(cheat) - broad(fair)).'));
  }
  for (const [knob, values] of Object.entries(spec.sweeps ?? {})) {
    // The swept worlds, and the main world (the knob's default value) on the same curve.
    const curve = worlds.filter((w) => w === mainWorld || values?.includes(w.config[knob as 'rho'])).map((w) => ({ name: w.name, value: w.config[knob as 'rho'] }));
    if (curve.length > 1) sections.push(await plot(`sweep-${knob}`, `Sweep of ${knob}`, sweepCurve(stats, knob, curve, firstTrained)));
  }
  if (spec.interventions) sections.push(...(await interventionResults(spec, nodes, out)));
  sections.push(baseSection(collected));
  sections.push(probeSection(nodes));
  if (collected.dynamics.length) sections.push(await plot('dynamics', 'Training dynamics', dynamicsPlot(collected.dynamics)));
  writeBytesAtomic(join(out, 'report.md'), toMarkdown(input, sections));
  writeBytesAtomic(join(out, 'report.html'), toHtml(input, sections));
  return { dir: out, stats, missing: collected.missing.length };
}

/** The interventions' statistics (interventions.arrow), verdicts (interventions.md) and report sections. */
async function interventionResults(spec: ExperimentSpec, nodes: GraphNode[], out: string): Promise<Section[]> {
  const iv = spec.interventions!;
  const world = expandWorlds(spec).find((w) => w.name === iv.world)!;
  const seeds = iv.pretrain_seeds ?? world.seeds;
  const steps = [...spec.narrow.eval_steps].sort((a, b) => a - b);
  const results = analyseInterventions(nodes, {
    world: iv.world, seeds, finetuneSeed: iv.finetune_seed ?? spec.finetune_seeds[0], alphas: iv.steer?.alphas ?? [], steerArms: iv.steer?.arms ?? [],
    realignDomain: iv.realign?.domain ?? null, earlyStep: iv.early_warning_step ?? steps[0], lastStep: steps[steps.length - 1],
  });
  const str = (xs: string[]) => vectorFromArray(xs, new Utf8());
  const num = (xs: number[]) => vectorFromArray(xs.map((x) => (Number.isFinite(x) ? x : null)), new Float64());
  writeArrow(join(out, 'interventions.arrow'), {
    quantity: str(results.stats.map((s) => s.quantity)), setting: str(results.stats.map((s) => s.setting)),
    mean: num(results.stats.map((s) => s.mean)), lo: num(results.stats.map((s) => s.lo)), hi: num(results.stats.map((s) => s.hi)),
    seeds: vectorFromArray(results.stats.map((s) => s.seeds), new Int32()), values: str(results.stats.map((s) => JSON.stringify(s.values))),
  });
  await writeParquetCopy(join(out, 'interventions.arrow'), join(out, 'interventions.parquet'));
  const sections = await interventionSections(results, seeds);
  for (const s of sections) if (s.plot) writeBytesAtomic(join(out, 'plots', `${s.plot.name}.svg`), s.plot.svg);
  writeBytesAtomic(join(out, 'interventions.md'), sectionMarkdown(sections[0], 1));
  return sections;
}
