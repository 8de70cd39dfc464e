/**
 * In-context persona inference: on held-out scenes, P(bad act in domain B | the same character's
 * bad act in A earlier) minus P(bad in B | good act in A), by forced choice, beside the
 * generator's true value. Also how much an *instructed* bad act moves it (truth: not at all).
 */
import { scoreChoices } from '../model/choice-scores.js';
import { forcedChoice } from '../model/generate.js';
import type { GPT } from '../model/gpt.js';
import type { ProbeRecord } from './probe-records.js';

export interface InferenceResult {
  subject: string;
  groups: number;
  /** Mean P(bad in B) for each kind of evidence in A. */
  pBad: Record<string, number>;
  truth: Record<string, number>;
  gap: number;
  trueGap: number;
  /** P(bad | instructed bad act) - P(bad | no act): 0 for a reader who discounts instructions. */
  instructedShift: number;
  trueInstructedShift: number;
}

/** P(bad) by forced choice for each probe, in order. */
export function probePBad(model: GPT, probes: ProbeRecord[], batchSize = 32): number[] {
  return scoreChoices(model, probes.map((p) => ({ context: p.context, continuations: [p.good, p.bad] })), batchSize).map(([g, b]) => forcedChoice(g, b));
}

export function summarizeInference(probes: ProbeRecord[], pBad: number[]): InferenceResult[] {
  const subjects = [...new Set(probes.map((p) => p.subject))].sort();
  return subjects.map((subject) => {
    const sums: Record<string, [number, number, number]> = {};
    probes.forEach((p, i) => {
      if (p.subject !== subject) return;
      const s = (sums[p.variant] ??= [0, 0, 0]);
      s[0] += pBad[i];
      s[1] += p.trueBad ?? NaN;
      s[2] += 1;
    });
    const mean = (v: string, k: 0 | 1) => (sums[v] ? sums[v][k] / sums[v][2] : NaN);
    const variants = Object.keys(sums);
    const pb = Object.fromEntries(variants.map((v) => [v, mean(v, 0)]));
    const truth = Object.fromEntries(variants.map((v) => [v, mean(v, 1)]));
    return {
      subject,
      groups: sums.bad?.[2] ?? 0,
      pBad: pb,
      truth,
      gap: pb.bad - pb.good,
      trueGap: truth.bad - truth.good,
      instructedShift: pb.instructed - pb.none,
      trueInstructedShift: truth.instructed - truth.none,
    };
  });
}

export function measureInference(model: GPT, probes: ProbeRecord[]): InferenceResult[] {
  const inference = probes.filter((p) => p.kind === 'inference');
  return summarizeInference(inference, probePBad(model, inference));
}
