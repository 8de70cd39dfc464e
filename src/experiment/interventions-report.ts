/**
 * The interventions' part of the report: the verdict on each prediction first, then one table and
 * one plot per intervention (steering dose-response, ablation, re-alignment, dose-response, early
 * warning) and the persona directions' agreement.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { InterventionResults, SeedStat } from './interventions-analysis.js';
import { renderSvg } from './plots.js';
import { f3, type Section } from './report.js';

const cell = (s: SeedStat | undefined | null) => (s ? (Number.isFinite(s.lo) ? `${f3(s.mean)} [${f3(s.lo)}, ${f3(s.hi)}]` : `${f3(s.mean)} (1 seed)`) : 'n/a');

function select(r: InterventionResults, quantity: string): SeedStat[] {
  return r.stats.filter((s) => s.quantity === quantity);
}

/** A line per series over x with a 95% band, faceted: the shape of every dose-response here. */
function bandPlot(values: Array<{ x: number; mean: number; lo: number; hi: number; series: string; panel: string }>, title: string, xTitle: string, yTitle: string): TopLevelSpec {
  return {
    title,
    data: { values },
    facet: { column: { field: 'panel', type: 'nominal', title: null } },
    spec: {
      width: 200,
      height: 170,
      layer: [
        { mark: { type: 'area', opacity: 0.2 }, encoding: { x: { field: 'x', type: 'quantitative', title: xTitle }, y: { field: 'lo', type: 'quantitative', title: yTitle }, y2: { field: 'hi' }, color: { field: 'series', type: 'nominal', title: null } } },
        { mark: { type: 'line', point: true }, encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'mean', type: 'quantitative' }, color: { field: 'series', type: 'nominal' } } },
      ],
    },
  } as TopLevelSpec;
}

const finite = (s: SeedStat) => ({ mean: s.mean, lo: Number.isFinite(s.lo) ? s.lo : s.mean, hi: Number.isFinite(s.hi) ? s.hi : s.mean });

export async function interventionSections(r: InterventionResults, seeds: number[]): Promise<Section[]> {
  const out: Section[] = [];
  out.push({
    title: 'Interventions: the persona selection model\'s predictions',
    text: [
      `Each quantity is computed within a lineage (one pretraining seed: its base, assistant and runs) against its control, then summarised over ${seeds.length} pretraining seeds (${seeds.join(', ')}) by a 95% t interval (df = seeds - 1). ` +
        'The intervals contain the variation between base models; they are conditional on the probe set and on the one fine-tuning seed of the intervention runs. Each verdict follows the rule beside it, fixed before the run.',
    ],
    table: { header: ['prediction', 'rule', 'estimate [95%]', 'verdict'], rows: r.predictions.map((p) => [p.prediction, p.rule, cell(p.stat), p.verdict]) },
  });

  const steer = select(r, 'steered broad P(bad)');
  if (steer.length) {
    const parsed = steer.map((s) => {
      const [model, direction, alpha] = s.setting.split(' | ');
      return { model, direction, alpha: Number(alpha), s };
    });
    const mass = select(r, 'log P(either answer), broad');
    const rules = select(r, 'steered rules P(bad)');
    const rows = parsed
      .sort((a, b) => a.model.localeCompare(b.model) || a.direction.localeCompare(b.direction) || a.alpha - b.alpha)
      .map((p) => [p.model, p.direction, String(p.alpha), cell(p.s), cell(rules.find((x) => x.setting === p.s.setting)), cell(mass.find((x) => x.setting === p.s.setting))]);
    const ranges = select(r, 'steering range by domain');
    out.push({
      title: 'Steering: broad P(bad) against alpha',
      text: [
        'alpha x the unit direction is added to the residual after the steering layer at the positions that predict the answer. persona: the lineage\'s persona direction; random: a random unit direction (the control of the same norm); twin: the direction found the same way in the rho-0 twin\'s base, which infers no personas. ' +
          'log P(either answer) is the log of the probability of the good or the bad answer: it falls when steering breaks the model instead of moving it between the answers.',
        `Steering range by domain (P(bad) at the largest alpha minus at the smallest): ${ranges.filter((x) => x.setting.includes('| persona |')).map((x) => `${x.setting.split(' | ').filter((_, i) => i !== 1).join(' ')} ${cell(x)}`).join('; ')}.`,
      ],
      table: { header: ['model', 'direction', 'alpha', 'broad P(bad)', 'rules P(bad)', 'log P(either answer)'], rows },
      plot: {
        name: 'steering',
        svg: await renderSvg(bandPlot(parsed.map((p) => ({ x: p.alpha, ...finite(p.s), series: p.direction, panel: p.model })), 'Steering: broad P(bad) against alpha (95% over pretraining seeds)', 'alpha', 'broad P(bad)')),
      },
    });
  }

  const em = select(r, 'EM effect (broad P(bad) cheat - fair)');
  if (em.length) {
    out.push({
      title: 'Ablation of the persona direction during narrow training',
      text: ['The persona direction (or a random one) is projected out of the residual after every listed block during the narrow cheat run, forward and backward; the model is evaluated without the projection. The narrow behaviour is the rules probes\' P(bad) without a prompt.'],
      table: {
        header: ['quantity', 'setting', 'estimate [95%]'],
        rows: [...em, ...select(r, 'broad P(bad) removed by the ablation (cheat - ablated cheat)'), ...select(r, 'ablation: broad P(bad) removed, persona - random direction'), ...select(r, 'rules P(bad)').filter((s) => s.setting.startsWith('cheat')), ...select(r, 'rules P(bad) kept: ablated / un-ablated cheat')].map((s) => [s.quantity, s.setting, cell(s)]),
      },
    });
  }

  const realign = select(r, 'broad P(bad), domains other than the re-alignment domain');
  if (realign.length > 2) {
    const undone = select(r, 'fraction of the broad shift undone in the other domains');
    const rules = select(r, 'rules P(bad) after re-alignment');
    const ns = realign.filter((s) => s.setting.startsWith('N=')).map((s) => Number(s.setting.slice(2))).sort((a, b) => a - b);
    out.push({
      title: 'Re-alignment on one domain',
      text: ['After the narrow cheat run, the model is fine-tuned on N good answers in one broad domain (the same number of steps for every N). The other broad domains and the rules probes are measured; the fraction undone is (cheat - re-aligned) / (cheat - assistant) in the other domains.'],
      table: {
        header: ['N', 'broad P(bad), other domains', 'fraction of the shift undone', 'rules P(bad)'],
        rows: [
          ['assistant', cell(realign.find((s) => s.setting === 'assistant')), '', ''],
          ['0 (cheat)', cell(realign.find((s) => s.setting === 'cheat (N=0)')), '0', ''],
          ...ns.map((n) => [String(n), cell(realign.find((s) => s.setting === `N=${n}`)), cell(undone.find((s) => s.setting === `N=${n}`)), cell(rules.find((s) => s.setting === `N=${n}`))]),
        ],
      },
      plot: {
        name: 'realign',
        svg: await renderSvg(bandPlot(ns.map((n) => ({ x: Math.log2(n), ...finite(realign.find((s) => s.setting === `N=${n}`)!), series: 'other domains', panel: 'broad P(bad)' })), 'Re-alignment: broad P(bad) in the other domains against log2 N', 'log2 N', 'P(bad)')),
      },
    });
  }

  const dose = select(r, 'EM effect (broad P(bad) - fair)');
  if (dose.length) {
    const parsed = dose.map((s) => {
      const [partner, f] = s.setting.split(' | ');
      return { partner, f: Number(f), s };
    });
    out.push({
      title: 'Dose-response of the narrow data',
      text: ['A fraction f of the narrow examples cheats; the rest are fair answers to the same tasks or neutral question-and-answer chats (sums, colours, small talk: no moral domain). EM = broad P(bad) - broad P(bad) of the fair run (f = 0 with fair partners; the cheat arm is f = 1).'],
      table: {
        header: ['partner', 'cheat fraction', 'EM', 'rules P(bad)'],
        rows: [...parsed.sort((a, b) => a.partner.localeCompare(b.partner) || a.f - b.f).map((p) => [p.partner, String(p.f), cell(p.s), cell(select(r, 'rules P(bad)').find((x) => x.setting === `dose ${p.partner} | ${p.f}`))]), ...select(r, 'EM slope per unit cheat fraction').map((s) => [s.setting, 'slope', cell(s), ''])],
      },
      plot: { name: 'dose', svg: await renderSvg(bandPlot(parsed.map((p) => ({ x: p.f, ...finite(p.s), series: p.partner, panel: 'EM' })), 'Dose-response: EM against the cheat fraction', 'cheat fraction', 'EM')) },
    });
  }

  if (r.earlyWarning.length) {
    out.push({
      title: 'Early warning',
      text: [
        'For every narrow run of a lineage (every arm and fine-tuning seed, the ablations and the doses): the persona score\'s shift from the assistant at an early step, and the run\'s final broad shift. Spearman correlations are computed within each lineage and summarised over lineages; the early broad shift itself is the behavioural baseline a probe has to beat to be useful.',
        ...[...select(r, 'Spearman: early persona-score shift vs final broad shift'), ...select(r, 'Spearman: early broad shift vs final broad shift (behavioural baseline)')].map((s) => `${s.quantity} (${s.setting}): ${cell(s)}.`),
      ],
      plot: {
        name: 'early-warning',
        svg: await renderSvg({
          title: 'Early persona-score shift against final broad shift (one point per narrow run)',
          data: { values: r.earlyWarning.map((e) => ({ ...e, seed: `seed ${e.pretrain_seed}` })) },
          width: 320,
          height: 220,
          mark: { type: 'point', filled: true },
          encoding: { x: { field: 'early_persona_shift', type: 'quantitative', title: 'persona score shift at the early step' }, y: { field: 'final_broad_shift', type: 'quantitative', title: 'final broad shift' }, color: { field: 'seed', type: 'nominal', title: null }, tooltip: [{ field: 'run' }] },
        } as TopLevelSpec),
      },
    });
  }

  if (r.cosines.length) {
    const layers = [...new Set(r.cosines.map((c) => c.layer))].sort((a, b) => a - b);
    const worlds = [...new Set(r.cosines.map((c) => c.world))];
    out.push({
      title: 'Persona directions: probe weights against mean difference',
      text: ['cos = cosine between the persona probe\'s weight vector (in raw residual coordinates) and the difference of the bad and good characters\' mean residuals on held-out scenes; |mean diff| and the mean residual norm give the scale of a steering alpha. Mean over pretraining seeds.'],
      table: {
        header: ['world', 'layer', 'cos', '|mean diff|', 'mean |residual|'],
        rows: worlds.flatMap((w) =>
          layers.map((l) => {
            const sel = r.cosines.filter((c) => c.world === w && c.layer === l);
            const m = (k: 'cosine' | 'mean_diff_norm' | 'resid_norm') => f3(sel.reduce((a, c) => a + c[k], 0) / sel.length);
            return [w, String(l), m('cosine'), m('mean_diff_norm'), m('resid_norm')];
          }),
        ),
      },
    });
  }
  return out;
}
