/**
 * What the generated data actually contains, measured from the rows alone: the cross-domain
 * correlation of a character's acts (which must track rho) and whether instructed acts are
 * independent of persona.
 */
import type { EventRow } from './doc-rows.js';

export interface CorrelationStats {
  pairs: number;
  correlation: number;
}

/** Phi correlation of bad-act indicators over ordered pairs of a character's non-instructed acts in two domains. */
export function crossDomainCorrelation(docs: EventRow[][], include: (e: EventRow) => boolean = () => true): CorrelationStats {
  let n = 0;
  let sx = 0;
  let sxy = 0;
  for (const events of docs) {
    const byChar = new Map<string, EventRow[]>();
    for (const e of events) {
      if (e.domain === 'neutral' || e.instructed || !include(e)) continue;
      const list = byChar.get(e.character) ?? [];
      list.push(e);
      byChar.set(e.character, list);
    }
    for (const acts of byChar.values()) {
      for (let i = 0; i < acts.length; i++) {
        for (let j = 0; j < acts.length; j++) {
          if (i === j || acts[i].domain === acts[j].domain) continue;
          const x = acts[i].pole === 'bad' ? 1 : 0;
          const y = acts[j].pole === 'bad' ? 1 : 0;
          n++;
          sx += x;
          sxy += x * y;
        }
      }
    }
  }
  // Ordered pairs are symmetric, so both marginals equal mean(x).
  const m = sx / n;
  const variance = m * (1 - m);
  return { pairs: n, correlation: n === 0 || variance === 0 ? 0 : (sxy / n - m * m) / variance };
}

export interface InstructionStats {
  /** P(an act is instructed | persona). */
  pInstructedGivenGood: number;
  pInstructedGivenBad: number;
  /** P(bad act | instructed, persona): compliance is the same for both. */
  pBadGivenInstructedGood: number;
  pBadGivenInstructedBad: number;
}

export function instructionStats(docs: EventRow[][]): InstructionStats {
  const count = { good: [0, 0, 0], bad: [0, 0, 0] } as Record<string, [number, number, number]>; // acts, instructed, instructed-bad
  for (const events of docs) {
    for (const e of events) {
      if (e.domain === 'neutral') continue;
      const c = count[e.persona];
      c[0]++;
      if (e.instructed) {
        c[1]++;
        if (e.pole === 'bad') c[2]++;
      }
    }
  }
  const ratio = (a: number, b: number) => (b === 0 ? NaN : a / b);
  return {
    pInstructedGivenGood: ratio(count.good[1], count.good[0]),
    pInstructedGivenBad: ratio(count.bad[1], count.bad[0]),
    pBadGivenInstructedGood: ratio(count.good[2], count.good[1]),
    pBadGivenInstructedBad: ratio(count.bad[2], count.bad[1]),
  };
}
