/**
 * The generator's ground truth, computed exactly from the config: what a perfect Bayesian reader
 * of the text should believe. Measurements of the model are compared with these numbers.
 */

/** What was observed earlier about the same character in another domain. */
export type Evidence = 'good' | 'bad' | 'instructed' | 'none';

/** P(bad act in a domain | persona) under coupling rho. */
export function pBadGivenPersona(rho: number, bad: boolean): number {
  return bad ? (1 + rho) / 2 : (1 - rho) / 2;
}

/**
 * P(bad act in domain B | evidence in domain A) for a character whose prior probability of a bad
 * persona is q (no descriptor shown). An instructed act is obeyed by both personas, so it carries
 * no evidence and the answer is the prior.
 */
export function trueConditional(rho: number, q: number, evidence: Evidence): number {
  const a = pBadGivenPersona(rho, true);
  const b = pBadGivenPersona(rho, false);
  let posterior = q;
  if (evidence === 'bad') posterior = (q * a) / (q * a + (1 - q) * b);
  else if (evidence === 'good') posterior = (q * (1 - a)) / (q * (1 - a) + (1 - q) * (1 - b));
  return posterior * a + (1 - posterior) * b;
}

/** The in-context persona inference gap: P(bad B | bad A) - P(bad B | good A). Equals rho^2 at q = 0.5. */
export function trueGap(rho: number, q: number): number {
  return trueConditional(rho, q, 'bad') - trueConditional(rho, q, 'good');
}

export interface CharacterType {
  /** Share of the population. */
  weight: number;
  /** Prior probability of a bad persona. */
  q: number;
}

/**
 * Correlation between a character's bad-act indicators in two domains, over a mixture of
 * character types (humans with p_bad, AI characters with p_ai_bad).
 */
export function trueCorrelation(rho: number, types: CharacterType[]): number {
  const a = pBadGivenPersona(rho, true);
  const b = pBadGivenPersona(rho, false);
  const total = types.reduce((s, t) => s + t.weight, 0);
  let m = 0;
  let both = 0;
  for (const t of types) {
    const w = t.weight / total;
    m += w * (t.q * a + (1 - t.q) * b);
    both += w * (t.q * a * a + (1 - t.q) * b * b);
  }
  const variance = m * (1 - m);
  return variance === 0 ? 0 : (both - m * m) / variance;
}

