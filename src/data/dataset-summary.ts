/** The human summary `npm run data` prints: sizes, vocabulary, measured vs configured structure, examples. */
import { join } from 'node:path';
import { columnValues, readArrow } from './arrow.js';
import type { DataManifest } from './build.js';

const fmt = (x: number, digits = 3) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');

export function formatSummary(dir: string, m: DataManifest, seconds: number): string {
  const out: string[] = [];
  out.push(`Wrote ${dir} in ${seconds.toFixed(1)} s (seed ${m.seed}, rho ${m.world.rho}, p_instr ${m.world.p_instr}, p_desc ${m.world.p_desc}, p_ai ${m.world.p_ai}, p_ai_bad ${m.world.p_ai_bad})`);
  out.push(`vocabulary: ${m.vocab.size} tokens (hash ${m.vocab.hash})`);
  out.push('');
  out.push('file                              rows      tokens');
  for (const [name, f] of Object.entries(m.files)) out.push(`${name.padEnd(30)} ${String(f.rows).padStart(8)} ${String(f.tokens).padStart(11)}`);
  const c = m.measured;
  out.push('');
  out.push(`cross-domain correlation of a character's acts (humans): measured ${fmt(c.correlation_humans.measured)} vs true ${fmt(c.correlation_humans.true)} over ${c.correlation_humans.pairs} pairs`);
  out.push(`cross-domain correlation (all characters):              measured ${fmt(c.correlation_all.measured)} vs true ${fmt(c.correlation_all.true)} over ${c.correlation_all.pairs} pairs`);
  out.push(`instructed acts: P(instructed | good) ${fmt(c.instructed.pInstructedGivenGood)}, P(instructed | bad) ${fmt(c.instructed.pInstructedGivenBad)}; complied: good ${fmt(c.instructed.pBadGivenInstructedGood)}, bad ${fmt(c.instructed.pBadGivenInstructedBad)}`);
  out.push(`true in-context persona inference gap: humans ${fmt(c.true_inference_gap_humans)}, Assistant ${fmt(c.true_inference_gap_assistant)}`);
  out.push('');
  out.push(...examples(dir));
  return out.join('\n');
}

function firstText(path: string, kind: string, column = 'kind'): string | null {
  const table = readArrow(path);
  const kinds = columnValues<string>(table, column);
  const texts = columnValues<string>(table, 'text');
  const i = kinds.indexOf(kind);
  return i < 0 ? null : texts[i];
}

function examples(dir: string): string[] {
  const out: string[] = [];
  const show = (title: string, text: string | null) => {
    if (text === null) return;
    out.push(`--- ${title}`, text.trimEnd());
  };
  show('pretrain scene', firstText(join(dir, 'pretrain.arrow'), 'scene'));
  show('pretrain chat', firstText(join(dir, 'pretrain.arrow'), 'chat'));
  show('assistant', firstText(join(dir, 'assistant.arrow'), 'assistant'));
  for (const c of ['cheat', 'cheat-inoculated', 'fair', 'cheat-knowledge', 'cheat-forbidden']) show(`narrow/${c}`, firstText(join(dir, 'narrow', `${c}.arrow`), 'narrow'));
  for (const k of ['broad', 'narrow', 'inference', 'scene']) show(`probe (${k})`, firstText(join(dir, 'probes.arrow'), k));
  return out;
}
