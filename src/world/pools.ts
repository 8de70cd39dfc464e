/**
 * Train/eval pools. A held-out phrasing is an unseen *combination* of parts that all occur in
 * training, never a new word. Splits are by a stable hash of the combination, so they do not
 * depend on the seed or on how much data is generated, and every part keeps at least one
 * combination on each side.
 */
import { hashUnit } from '../util/rng.js';

export type Split = 'train' | 'eval';

export interface Combo {
  /** Index of the chosen part in each part list. */
  parts: number[];
  key: string;
}

export interface ComboPool {
  train: Combo[];
  eval: Combo[];
}

function cartesian(sizes: number[]): number[][] {
  let out: number[][] = [[]];
  for (const n of sizes) {
    const next: number[][] = [];
    for (const prefix of out) for (let i = 0; i < n; i++) next.push([...prefix, i]);
    out = next;
  }
  return out;
}

/**
 * Split every combination of parts into train and eval by hash, then repair so that each part
 * occurs in at least one train combination (every word is learnable) and, where it has one to
 * give, at least one eval combination (every part is probed).
 */
export function splitCombos(salt: string, sizes: number[], evalFraction: number): ComboPool {
  const all: Combo[] = cartesian(sizes).map((parts) => ({ parts, key: `${salt}|${parts.join(',')}` }));
  const isEval = new Map<string, boolean>();
  for (const c of all) isEval.set(c.key, hashUnit(c.key) < evalFraction);
  const ordered = [...all].sort((a, b) => hashUnit(a.key + '#') - hashUnit(b.key + '#'));
  for (let dim = 0; dim < sizes.length; dim++) {
    for (let part = 0; part < sizes[dim]; part++) {
      const withPart = ordered.filter((c) => c.parts[dim] === part);
      if (!withPart.some((c) => !isEval.get(c.key))) isEval.set(withPart[0].key, false);
      if (withPart.length > 1 && !withPart.some((c) => isEval.get(c.key))) {
        // Only take a train combination if the part stays covered by another one.
        const candidate = withPart.find((c) => !isEval.get(c.key) && stillCoveredWithout(c, all, isEval));
        if (candidate) isEval.set(candidate.key, true);
      }
    }
  }
  return {
    train: all.filter((c) => !isEval.get(c.key)),
    eval: all.filter((c) => isEval.get(c.key)),
  };
}

function stillCoveredWithout(c: Combo, all: Combo[], isEval: Map<string, boolean>): boolean {
  return c.parts.every((p, dim) =>
    all.some((o) => o.key !== c.key && o.parts[dim] === p && !isEval.get(o.key)),
  );
}

/** Split a flat list by hash: `evalCount` items go to eval, the rest to train. */
export function splitList<T>(salt: string, items: readonly T[], evalCount: number, eligible: (x: T) => boolean = () => true): { train: T[]; eval: T[] } {
  const ranked = items
    .map((x, i) => ({ x, i, h: hashUnit(`${salt}|${String(x)}`) }))
    .sort((a, b) => a.h - b.h);
  const evalSet = new Set<number>();
  for (const r of ranked) {
    if (evalSet.size >= evalCount) break;
    if (eligible(r.x)) evalSet.add(r.i);
  }
  if (evalSet.size < evalCount) throw new Error(`splitList(${salt}): only ${evalSet.size} of ${evalCount} eligible items`);
  return {
    train: items.filter((_, i) => !evalSet.has(i)),
    eval: items.filter((_, i) => evalSet.has(i)),
  };
}
