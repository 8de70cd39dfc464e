/**
 * The experiment's report, as Markdown (with SVG plots beside it) and as one self-contained HTML
 * page: the answer first (EM effect, persona-driven EM and inoculation efficacy with intervals, at
 * every narrow step), then the tables and plots behind it.
 */
import type { Stat } from './aggregate.js';
import type { Collected } from './collect.js';

export interface Section {
  title: string;
  text: string[];
  table?: { header: string[]; rows: string[][] };
  /** File name of a plot (plots/<name>.svg) and its SVG. */
  plot?: { name: string; svg: string };
}

const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
export const withInterval = (s: Stat | undefined) => (s ? `${f3(s.mean)} [${f3(s.lo)}, ${f3(s.hi)}]` : 'n/a');

export function find(stats: Stat[], q: Partial<Stat>): Stat | undefined {
  return stats.find((s) => Object.entries(q).every(([k, v]) => s[k as keyof Stat] === v));
}

export interface ReportInput {
  name: string;
  description: string;
  nullWorld: string;
  stats: Stat[];
  collected: Collected;
  totalCells: number;
}

export function answerSection(r: ReportInput): Section {
  const { stats } = r;
  const rows: string[][] = [];
  const worlds = [...new Set(stats.map((s) => s.world))];
  const steps = [...new Set(stats.map((s) => s.step))].filter((s) => s > 0).sort((a, b) => a - b);
  const examples = [...new Set(stats.map((s) => s.examples))];
  for (const world of worlds) {
    for (const ex of examples) {
      for (const step of steps) {
        const q = { world, step, examples: ex };
        const eff = find(stats, { ...q, metric: 'inoculation_efficacy' });
        rows.push([
          world, ...(examples.length > 1 ? [String(ex)] : []), String(step),
          withInterval(find(stats, { ...q, metric: 'em_effect' })),
          world === r.nullWorld ? '(control)' : withInterval(find(stats, { ...q, metric: 'persona_em' })),
          eff ? (eff.reported ? withInterval(eff) : `not reported (${withInterval(eff)})`) : 'n/a',
          withInterval(find(stats, { ...q, metric: 'narrow_p_bad', condition: 'cheat-inoculated', group: 'none' })),
          withInterval(find(stats, { ...q, metric: 'narrow_p_bad', condition: 'cheat-inoculated', group: 'pool' })),
        ]);
      }
    }
  }
  const text = [
    'EM effect = broad P(bad)(cheat) - broad P(bad)(fair); persona-driven EM = the EM effect minus the null world\'s at the same narrow step;',
    `inoculation efficacy = 1 - (broad(cheat-inoculated) - broad(fair)) / (broad(cheat) - broad(fair)), given only where persona-driven EM's interval is above 0. Broad P(bad) is the forced-choice probability of the bad answer on held-out probes in the five non-rules domains, averaged over probes, fine-tuning seeds and pretraining seeds; [95% bootstrap intervals] resample all three. The last two columns are the inoculated model's cheat rate on held-out rules probes without and with the instruction.`,
  ];
  for (const world of worlds.filter((w) => w !== r.nullWorld)) {
    const best = steps
      .map((step) => find(stats, { world, step, metric: 'persona_em', examples: examples[0] }))
      .filter((s): s is Stat => s !== undefined)
      .sort((a, b) => b.mean - a.mean)[0];
    if (!best) continue;
    const em = find(stats, { world, step: best.step, metric: 'em_effect', examples: examples[0] });
    const eff = find(stats, { world, step: best.step, metric: 'inoculation_efficacy', examples: examples[0] });
    text.push(
      `In the ${world} world the persona-driven EM peaks at step ${best.step}: ${withInterval(best)} (EM effect ${withInterval(em)}); ` +
        (eff ? (eff.reported ? `inoculation efficacy there is ${withInterval(eff)}.` : `the EM effect does not clearly exceed the null world's there, so efficacy (${withInterval(eff)}) is not reported.`) : ''),
    );
  }
  return { title: 'The answer', text, table: { header: ['world', ...(examples.length > 1 ? ['examples'] : []), 'step', 'EM effect', 'persona-driven EM', 'inoculation efficacy', 'inoculated: cheat, no prompt', 'inoculated: cheat, with prompt'], rows } };
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

export function toMarkdown(r: ReportInput, sections: Section[]): string {
  const out = [`# Experiment \`${r.name}\``, '', r.description, '', `${r.totalCells - r.collected.missing.length} of ${r.totalCells} cells finished${r.collected.missing.length ? ` (missing: ${r.collected.missing.length}; numbers below use what finished)` : ''}.`, ''];
  for (const s of sections) {
    out.push(`## ${s.title}`, '', ...s.text.flatMap((t) => [t, '']));
    if (s.table) out.push(`| ${s.table.header.join(' | ')} |`, `|${s.table.header.map(() => '---').join('|')}|`, ...s.table.rows.map((row) => `| ${row.join(' | ')} |`), '');
    if (s.plot) out.push(`![${s.title}](plots/${s.plot.name}.svg)`, '');
  }
  return out.join('\n');
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
