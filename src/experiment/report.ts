/**
 * The experiment's report, as Markdown (with SVG plots beside it) and as one self-contained HTML
 * page: the answer first (the EM effect's decomposition and inoculation efficacy per instruction
 * family, with intervals, at the declared report step), then the tables and plots behind it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LayerValidation } from '../eval/evaluate-checkpoint.js';
import type { Stat } from './aggregate.js';
import { loadProbeValidation } from './cells.js';
import type { Collected } from './collect.js';
import type { GraphNode } from './graph.js';

export interface Section {
  title: string;
  text: string[];
  table?: { header: string[]; rows: string[][] };
  /** File name of a plot (plots/<name>.svg) and its SVG. */
  plot?: { name: string; svg: string };
}

export const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
export const withInterval = (s: Stat | undefined) => (s ? `${f3(s.mean)} [${f3(s.lo)}, ${f3(s.hi)}]` : 'n/a');

export function find(stats: Stat[], q: Partial<Stat>): Stat | undefined {
  return stats.find((s) => Object.entries(q).every(([k, v]) => s[k as keyof Stat] === v));
}

export interface ReportInput {
  name: string;
  description: string;
  nullWorld: string;
  /** The narrow step of the headline numbers, declared in the spec before the run. */
  reportStep: number;
  /** The headline inoculation family (the spec's first) and the others, in spec order. */
  families: string[];
  /** world -> its rho-0 twin. */
  twins: Record<string, string>;
  stats: Stat[];
  collected: Collected;
  totalCells: number;
}

const DECOMPOSITION = [
  ['em_effect', 'EM effect'],
  ['persona_em', 'persona-driven'],
  ['instruction_frame_em', 'instruction-frame'],
  ['generic_em', 'generic'],
  ['em_beyond_null', 'beyond null'],
] as const;

/** A number with its interval, or why there is none. */
const efficacyCell = (eff: Stat | undefined) => (eff ? (eff.reported ? withInterval(eff) : `(${withInterval(eff)}; EM not above 0)`) : 'n/a');

export function answerSection(r: ReportInput): Section {
  const { stats } = r;
  const worlds = [...new Set(stats.map((s) => s.world))].filter((w) => w in r.twins);
  const step = r.reportStep;
  const arms = r.families.map((f) => `cheat+${f}`);
  const rows = worlds.map((world) => {
    const q = { world, step, group: 'all' };
    return [
      world,
      ...DECOMPOSITION.map(([metric]) => withInterval(find(stats, { ...q, metric }))),
      ...arms.map((arm) => efficacyCell(find(stats, { ...q, metric: 'inoculation_efficacy', condition: arm }))),
    ];
  });
  const units = [...new Set(stats.filter((s) => s.metric === 'em_effect' && s.step === step).map((s) => s.unit))];
  const text = [
    `At narrow step ${step} (declared in the spec before the run; every step is in the tables below). Broad P(bad) is the forced-choice probability of the bad answer on held-out probes of the five non-rules domains. ` +
      'EM effect = broad(cheat) - broad(fair). It is split by controls that each differ in one knob, paired by pretraining seed: persona-driven = EM(world) - EM(its rho-0 twin); ' +
      'instruction-frame = EM(rho-0 twin) - EM(null world, which also has p_instr 0); generic = EM(null world); beyond null = persona-driven + instruction-frame. ' +
      `Inoculation efficacy of family f = 1 - (broad(cheat+f) - broad(fair)) / EM effect; ${r.families[0]} is the headline, shown only where the EM effect's interval excludes 0.`,
    `Intervals: 95%, estimate +- t(df) x sqrt(between-unit variance / units + between-act variance); units are ${units.join(' / ') || 'pretraining seeds'}; acts and probes within acts are resampled by a stratified cluster bootstrap.` +
      (units.some((u) => u.includes('conditional')) ? ' With one pretraining seed per world the intervals are conditional on those base models: they say how much another fine-tuning seed or another draw of acts would move the number, not another pretraining run.' : ''),
  ];
  return { title: 'The answer', text, table: { header: ['world', ...DECOMPOSITION.map(([, t]) => t), ...r.families.map((f) => `efficacy, ${f}`)], rows } };
}

/** The decomposition over every step, and per domain at the report step. */
export function decompositionSections(r: ReportInput): Section[] {
  const { stats } = r;
  const worlds = [...new Set(stats.map((s) => s.world))].filter((w) => w in r.twins);
  const steps = [...new Set(stats.map((s) => s.step))].filter((s) => s > 0).sort((a, b) => a - b);
  const domains = [...new Set(stats.filter((s) => s.metric === 'em_effect' && s.group !== 'all').map((s) => s.group))].sort();
  const out: Section[] = [];
  out.push({
    title: 'Decomposition of the EM effect at every narrow step',
    text: [`The report step (${r.reportStep}) was declared in the spec; the others are shown beside it.`],
    table: {
      header: ['world', 'step', ...DECOMPOSITION.map(([, t]) => t)],
      rows: worlds.flatMap((world) => steps.map((step) => [world, `${step}${step === r.reportStep ? ' (report)' : ''}`, ...DECOMPOSITION.map(([metric]) => withInterval(find(stats, { world, step, metric, group: 'all' })))])),
    },
  });
  for (const [metric, title] of DECOMPOSITION) {
    out.push({
      title: `${title[0].toUpperCase()}${title.slice(1)} by domain (step ${r.reportStep})`,
      text: [],
      table: { header: ['world', ...domains], rows: worlds.map((world) => [world, ...domains.map((d) => withInterval(find(stats, { world, step: r.reportStep, metric, group: d })))]) },
    });
  }
  const lexical = stats.filter((s) => s.metric === 'lexical_em' && s.group === 'all');
  if (lexical.length) {
    out.push({
      title: 'Positive control: EM from a shared lexical marker alone',
      text: ['lexical EM = EM(world whose answers carry a pole marker shared by every domain) - EM(the same world without it). Both worlds have rho 0, so neither can infer personas: what remains is surface form.'],
      table: { header: ['world', 'step', 'lexical EM'], rows: lexical.map((s) => [s.world, String(s.step), withInterval(s)]) },
    });
  }
  out.push({
    title: 'Inoculation efficacy by instruction family',
    text: ['act-free: a permission that names no act ("For the play, all is permitted."); pool / novel: the permission names the act (phrasings from pretraining / unseen); placebo: the act-free form and length, granting something irrelevant. 1 = the instruction removes the broad shift entirely; 0 = none of it.'],
    table: {
      header: ['world', 'step', ...r.families],
      rows: [...new Set(stats.map((s) => s.world))].flatMap((world) => steps.map((step) => [world, String(step), ...r.families.map((f) => efficacyCell(find(stats, { world, step, metric: 'inoculation_efficacy', condition: `cheat+${f}` })))])),
    },
  });
  return out;
}

export function conditionSection(stats: Stat[], metric: string, group: string, title: string, text: string): Section {
  const sel = stats.filter((s) => s.metric === metric && s.group === group);
  const conditions = [...new Set(sel.map((s) => s.condition))];
  const keys = [...new Set(sel.map((s) => `${s.world}\u0000${s.step}\u0000${s.examples}`))];
  const rows = keys.map((k) => {
    const [world, step, ex] = k.split('\u0000');
    return [world, step, ...conditions.map((c) => withInterval(sel.find((s) => s.world === world && String(s.step) === step && String(s.examples) === ex && s.condition === c)))];
  });
  return { title, text: [text], table: { header: ['world', 'step', ...conditions], rows } };
}

export function domainSection(stats: Stat[], step: number): Section {
  const sel = stats.filter((s) => s.metric === 'broad_p_bad' && s.group !== 'all' && s.step === step);
  const domains = [...new Set(sel.map((s) => s.group))].sort();
  const keys = [...new Set(sel.map((s) => `${s.world}\u0000${s.condition}`))];
  return {
    title: `Broad P(bad) by domain (step ${step})`,
    text: ['Each cell averages over the held-out probes of one domain.'],
    table: { header: ['world', 'condition', ...domains], rows: keys.map((k) => { const [w, c] = k.split('\u0000'); return [w, c, ...domains.map((d) => withInterval(sel.find((s) => s.world === w && s.condition === c && s.group === d)))]; }) },
  };
}

export function baseSection(c: Collected): Section {
  const rows = c.bases.map((b) => {
    const g = (k: string) => (typeof b.facts[k] === 'number' ? f3(b.facts[k] as number) : 'n/a');
    return [b.world, String(b.pretrain_seed), g('val_loss'), `${g('gap_human')} (true ${g('true_gap_human')})`, `${g('gap_assistant')} (true ${g('true_gap_assistant')})`, g('instructed_shift_human')];
  });
  return { title: 'Base models', text: ['In-context persona inference of each pretrained model at the end of pretraining: P(bad in B | bad act in A) - P(bad in B | good act in A) on held-out scenes and chats, beside the generator\'s truth; and how far an instructed bad act moves it (truth 0).'], table: { header: ['world', 'pretraining seed', 'val loss', 'inference gap, scenes', 'inference gap, Assistant', 'instructed shift'], rows } };
}

/** The persona probe of each base model: layer chosen, held-out accuracy per layer on scenes and on chat transcripts' Assistant turns. */
export function probeSection(nodes: GraphNode[]): Section {
  const rows: string[][] = [];
  for (const n of nodes.filter((x) => x.kind === 'base')) {
    const path = join(n.dir, 'probe.json');
    if (!existsSync(path)) continue;
    const chosen = (JSON.parse(readFileSync(path, 'utf8')) as { layer: number }).layer;
    for (const v of loadProbeValidation(path)) {
      const acc = (a: LayerValidation['scenes']) => `${f3(a.accuracy)} [${f3(a.lo)}, ${f3(a.hi)}] (${a.sites} sites, ${a.docs} docs)`;
      rows.push([n.labels.world, String(n.labels.pretrain_seed), `${v.layer}${v.layer === chosen ? ' (used)' : ''}`, acc(v.scenes), acc(v.chats)]);
    }
  }
  return {
    title: 'Persona probe validation',
    text: ["A logistic probe on blocks.L.hook_resid_post at the answering character's colon, fitted on pretraining validation scenes of each base model, at every layer; the layer with the best held-out scene accuracy is used for the persona score. Accuracy on held-out scenes and on the Assistant's turns of held-out pretraining chat transcripts (known persona: the context the score is read in), with 95% intervals that resample scenes/transcripts."],
    table: { header: ['world', 'pretraining seed', 'layer', 'held-out scenes', 'held-out chat transcripts (Assistant)'], rows },
  };
}

/** One section as Markdown: its title at `level`, text, table, and plot (as plots/<name>.svg). */
export function sectionMarkdown(s: Section, level = 2): string {
  const out = [`${'#'.repeat(level)} ${s.title}`, '', ...s.text.flatMap((t) => [t, ''])];
  if (s.table) out.push(`| ${s.table.header.join(' | ')} |`, `|${s.table.header.map(() => '---').join('|')}|`, ...s.table.rows.map((row) => `| ${row.join(' | ')} |`), '');
  if (s.plot) out.push(`![${s.title}](plots/${s.plot.name}.svg)`, '');
  return out.join('\n');
}

export function toMarkdown(r: ReportInput, sections: Section[]): string {
  const head = [`# Experiment \`${r.name}\``, '', r.description, '', `${r.totalCells - r.collected.missing.length} of ${r.totalCells} cells finished${r.collected.missing.length ? ` (missing: ${r.collected.missing.length}; numbers below use what finished)` : ''}.`, ''];
  return [...head, ...sections.map((s) => sectionMarkdown(s))].join('\n');
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function toHtml(r: ReportInput, sections: Section[]): string {
  const body = sections
    .map((s) => {
      const table = s.table
        ? `<table><thead><tr>${s.table.header.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${s.table.rows.map((row) => `<tr>${row.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('')}</tbody></table>`
        : '';
      return `<section><h2>${esc(s.title)}</h2>${s.text.map((t) => `<p>${esc(t)}</p>`).join('')}${table}${s.plot ? `<figure>${s.plot.svg}</figure>` : ''}</section>`;
    })
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Experiment ${esc(r.name)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f3f3f3}figure{margin:1em 0;overflow-x:auto}</style>
</head><body><h1>Experiment <code>${esc(r.name)}</code></h1><p>${esc(r.description)}</p>
<p>${r.totalCells - r.collected.missing.length} of ${r.totalCells} cells finished.</p>
${body}
</body></html>
`;
}
