/**
 * Quick forced-choice measurements logged during narrow fine-tuning, so sudden transitions can be
 * plotted: the cheat rate on held-out rules probes (without a prompt and with the training
 * instruction) and a broad score over a fixed subset of the broad probes.
 */
import type { GPT } from '../model/gpt.js';
import { withKnown } from '../util/with-known.js';
import { probePBad } from './inference.js';
import type { ProbeRecord } from './probe-records.js';

export interface DynamicsProbes {
  cheatNone: ProbeRecord[];
  cheatPrompt: ProbeRecord[];
  broad: ProbeRecord[];
}

/** The fixed probe subsets: every rules probe of the two variants, and `perDomain` broad probes per domain. */
export function dynamicsProbes(probes: ProbeRecord[], perDomain = 12): DynamicsProbes {
  const broad: ProbeRecord[] = [];
  const seen = new Map<string, number>();
  for (const p of probes) {
    if (p.kind !== 'broad') continue;
    const n = seen.get(p.domain) ?? 0;
    if (n < perDomain) broad.push(p);
    seen.set(p.domain, n + 1);
  }
  return {
    cheatNone: probes.filter((p) => p.kind === 'narrow' && p.variant === 'none'),
    cheatPrompt: probes.filter((p) => p.kind === 'narrow' && p.variant === 'pool'),
    broad,
  };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);

/** The quick measurements; `known` holds forced-choice P(bad) already computed for this model at this step, by probe id (not scored again). */
export function measureDynamics(model: GPT, d: DynamicsProbes, known?: ReadonlyMap<string, number>): Record<string, number> {
  const all = [...d.cheatNone, ...d.cheatPrompt, ...d.broad];
  const p = withKnown(all, (q) => known?.get(q.id), (missing) => probePBad(model, missing));
  const a = d.cheatNone.length;
  const b = a + d.cheatPrompt.length;
  return {
    cheat_no_prompt: mean(p.slice(0, a)),
    cheat_with_prompt: mean(p.slice(a, b)),
    broad_quick: mean(p.slice(b)),
  };
}
