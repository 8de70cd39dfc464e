/**
 * The persona direction of a base model, per layer, two ways: the persona probe's weight vector
 * mapped back to the raw residual (w / std: the direction in which the probe's log-odds rise
 * fastest), and the difference of mean residuals between bad-persona and good-persona characters
 * at their answer positions in held-out scenes. Both are unit vectors; their cosine says whether
 * the two estimates agree. Steering and ablation use these.
 */
import { join } from 'node:path';
import type { GPT } from '../model/gpt.js';
import { unit } from '../model/residual-interventions.js';
import { writeBytesAtomic } from '../util/atomic-files.js';
import { readFileSync } from 'node:fs';
import { Rng } from '../util/rng.js';
import { activationsAt, fitLogistic, sitesFromFile } from './persona-probe.js';
import { PROBE_FIT_SCENES, PROBE_HELDOUT_SCENES } from './evaluate-checkpoint.js';

/** The file a base model's persona directions are kept in (beside its checkpoint, or in its experiment cell). */
export const PERSONA_DIRECTIONS_FILE = 'persona-directions.json';

/** Which estimate of the persona direction an intervention uses. */
export const DIRECTION_SOURCES = ['mean-diff', 'probe'] as const;
export type DirectionSource = (typeof DIRECTION_SOURCES)[number];

export interface LayerDirection {
  layer: number;
  /** Unit vector along the probe's weights in raw residual coordinates. */
  probe: Float32Array;
  /** Unit vector along mean(bad-persona residual) - mean(good-persona residual). */
  meanDiff: Float32Array;
  /** |mean(bad) - mean(good)|: the distance between the two personas' centroids (steering's natural scale). */
  meanDiffNorm: number;
  /** Mean residual norm at the sites: the scale a steering alpha compares with. */
  residNorm: number;
  /** cos(probe, meanDiff). */
  cosine: number;
  /** Sites (bad, good) the mean difference was taken over. */
  sites: { bad: number; good: number };
}

export interface PersonaDirections {
  layers: LayerDirection[];
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/**
 * Both persona directions at every layer: the probe is fitted on the same pretraining-validation
 * scenes as the persona probe; the mean difference is taken over held-out scenes (probes.arrow).
 */
export function personaDirections(model: GPT, data: string): PersonaDirections {
  const C = model.config.n_embd;
  const fit = sitesFromFile(join(data, 'pretrain.arrow'), ['scene'], PROBE_FIT_SCENES, 'val');
  const held = sitesFromFile(join(data, 'probes.arrow'), ['scene'], PROBE_HELDOUT_SCENES);
  const bad = held.filter((s) => s.label === 1).length;
  const good = held.length - bad;
  if (bad === 0 || good === 0) throw new Error(`${join(data, 'probes.arrow')} has ${bad} bad-persona and ${good} good-persona answer sites in held-out scenes; both are needed for a persona direction`);
  const layers: LayerDirection[] = [];
  const all = Array.from({ length: model.config.n_layer }, (_, l) => l);
  const [fitActs, heldActs] = [fit, held].map((sites) => activationsAt(model, sites, all));
  for (const layer of all) {
    const p = fitLogistic(fitActs[layer], fit.map((s) => s.label), C, layer);
    const probe = unit(Float32Array.from(p.weights, (w, j) => w / p.std[j]));
    const x = heldActs[layer];
    const diff = new Float64Array(C);
    let norms = 0;
    held.forEach((s, i) => {
      const sign = s.label === 1 ? 1 / bad : -1 / good;
      let n = 0;
      for (let j = 0; j < C; j++) {
        const v = x[i * C + j];
        diff[j] += sign * v;
        n += v * v;
      }
      norms += Math.sqrt(n) / held.length;
    });
    const meanDiffNorm = Math.sqrt(diff.reduce((a, v) => a + v * v, 0));
    const meanDiff = unit(diff);
    layers.push({ layer, probe, meanDiff, meanDiffNorm, residNorm: norms, cosine: dot(probe, meanDiff), sites: { bad, good } });
  }
  return { layers };
}

/** A direction drawn uniformly on the unit sphere (a seeded Gaussian, normalised): the control for any persona direction. */
export function randomDirection(dim: number, seed: string): Float32Array {
  const rng = new Rng(`random-direction:${seed}`);
  return unit(Float32Array.from({ length: dim }, () => rng.normal()));
}

export function directionOf(d: PersonaDirections, layer: number, source: DirectionSource): Float32Array {
  const l = d.layers.find((x) => x.layer === layer);
  if (!l) throw new Error(`no persona direction at layer ${layer}; the directions cover layers 0 to ${d.layers.length - 1}`);
  return source === 'probe' ? l.probe : l.meanDiff;
}

export function savePersonaDirections(path: string, d: PersonaDirections): void {
  const layers = d.layers.map((l) => ({ ...l, probe: [...l.probe], meanDiff: [...l.meanDiff] }));
  writeBytesAtomic(path, JSON.stringify({ layers }) + '\n');
}

export function loadPersonaDirections(path: string): PersonaDirections {
  let j: { layers: Array<Omit<LayerDirection, 'probe' | 'meanDiff'> & { probe: number[]; meanDiff: number[] }> };
  try {
    j = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`${path}: cannot read persona directions (${(err as Error).message}); recompute them (npm run evaluate -- --directions)`);
  }
  return { layers: j.layers.map((l) => ({ ...l, probe: Float32Array.from(l.probe), meanDiff: Float32Array.from(l.meanDiff) })) };
}
