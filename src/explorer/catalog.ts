/**
 * What the explorer lists: checkpoint folders under checkpoints/ (any depth), the experiment's
 * cells with a checkpoint under runs/ (runs/<kind>-<hash>/checkpoint, labelled from DONE.json), and
 * reports under results/<spec>/report.html. Paths a checkpoint records (its data folder, its
 * parent) are absolute where the experiment wrote them; a runs folder that was moved or copied is
 * followed by the cell's folder name.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { countParameters, type ModelConfig } from '../model/model-config.js';
import type { IndexJson, ModelEntry, ReportEntry } from './protocol.js';

export interface CatalogRoots {
  /** Paths in the listing are shown relative to this folder. */
  root: string;
  checkpoints: string;
  runs: string;
  results: string;
}

export interface CatalogModel extends ModelEntry {
  /** Absolute checkpoint folder. */
  dir: string;
  /** Absolute data folder (may not exist). */
  data: string | null;
  /** Absolute probe.json of the lineage's base cell, or null. */
  personaProbePath: string | null;
}

export interface Catalog {
  models: Map<string, CatalogModel>;
  reports: ReportEntry[];
}

const CELL = /(?:^|[\\/])((?:data|base|assistant|narrow|evaluate)-[0-9a-f]{6,})((?:[\\/].*)?)$/;

function readJson(path: string): Record<string, unknown> | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

const isCheckpoint = (dir: string) => existsSync(join(dir, 'config.json')) && existsSync(join(dir, 'model.json')) && existsSync(join(dir, 'weights.bin'));

/** A recorded path, as it is if it exists, else re-rooted under `runs` by its cell folder. */
export function locate(path: string | null | undefined, root: string, runs: string): string | null {
  if (!path) return null;
  const abs = isAbsolute(path) ? path : resolve(root, path);
  if (existsSync(abs)) return abs;
  const m = CELL.exec(path);
  if (m) {
    const moved = join(runs, m[1], m[2] ?? '');
    if (existsSync(moved)) return moved;
  }
  return null;
}

/** The pretrained ancestor of a checkpoint (following parent links), or null. */
function lineageBase(dir: string, root: string, runs: string): string | null {
  let current: string | null = dir;
  for (let hops = 0; current && hops < 10; hops++) {
    const c = readJson(join(current, 'config.json'));
    if (!c) return null;
    if (c.stage === 'pretrain') return current;
    current = locate(c.parent as string | null, root, runs);
  }
  return null;
}

function sizeOf(model: ModelConfig | undefined): string {
  if (!model) return '';
  return `${model.n_layer} x ${model.n_embd}, ${(countParameters(model).total / 1e6).toFixed(2)}M parameters`;
}

function runLabel(kind: string, done: Record<string, unknown> | null, info: Record<string, unknown>): string {
  const labels = (done?.labels ?? {}) as Record<string, unknown>;
  const world = (labels.world as string | undefined) ?? ((info.world as Record<string, unknown> | undefined)?.name as string | undefined);
  const parts = [kind];
  // The arm names the condition with its instruction (cheat+pool: inoculated with the pool family).
  if (labels.arm ?? labels.condition) parts.push(String(labels.arm ?? labels.condition));
  if (labels.finetune_seed !== undefined) parts.push(`s${labels.finetune_seed}`);
  const where = [world ? `${world} world` : '', labels.pretrain_seed !== undefined ? `pretrain seed ${labels.pretrain_seed}` : ''].filter(Boolean).join(', ');
  return where ? `${parts.join(' ')} (${where})` : parts.join(' ');
}

function walkCheckpoints(dir: string, out: string[], depth = 0): void {
  if (depth > 4 || !existsSync(dir)) return;
  if (isCheckpoint(dir)) {
    out.push(dir);
    return;
  }
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return;
  }
  for (const name of names) {
    // Atomic writes build a checkpoint under a temporary sibling name: skip those.
    if (name.startsWith('.') || name.includes('.tmp') || name.includes('.old')) continue;
    const p = join(dir, name);
    if (statSync(p, { throwIfNoEntry: false })?.isDirectory()) walkCheckpoints(p, out, depth + 1);
  }
}

export function scanCatalog(r: CatalogRoots): Catalog {
  const root = resolve(r.root);
  const runs = resolve(root, r.runs);
  const models = new Map<string, CatalogModel>();
  const add = (dir: string, source: 'checkpoints' | 'runs', label: string, unfinished: boolean) => {
    const config = readJson(join(dir, 'config.json'));
    if (!config) return;
    const rel = relative(root, dir) || '.';
    const id = encodeURIComponent(rel.split('\\').join('/'));
    const data = locate(config.data as string | undefined, root, runs);
    const base = lineageBase(dir, root, runs);
    const probe = base && existsSync(join(dirname(base), 'probe.json')) ? join(dirname(base), 'probe.json') : null;
    models.set(id, {
      id, path: rel, source, label, stage: String(config.stage ?? ''), size: sizeOf(config.model as ModelConfig | undefined), unfinished,
      personaProbe: probe !== null, probes: data !== null && existsSync(join(data, 'probes.arrow')), dir, data, personaProbePath: probe,
    });
  };
  const ckptRoot = resolve(root, r.checkpoints);
  const found: string[] = [];
  walkCheckpoints(ckptRoot, found);
  for (const dir of found) add(dir, 'checkpoints', relative(ckptRoot, dir) || basename(dir), false);
  if (existsSync(runs)) {
    const order = ['base', 'assistant', 'narrow'];
    const cells = readdirSync(runs)
      .map((name) => ({ name, kind: /^([a-z]+)-[0-9a-f]+$/.exec(name)?.[1] ?? '' }))
      .filter((c) => order.includes(c.kind) && isCheckpoint(join(runs, c.name, 'checkpoint')));
    const entries = cells.map((c) => {
      const done = readJson(join(runs, c.name, 'DONE.json'));
      const info = (readJson(join(runs, c.name, 'checkpoint', 'config.json'))?.info ?? {}) as Record<string, unknown>;
      return { ...c, done, label: runLabel(c.kind, done, info) };
    });
    entries.sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind) || a.label.localeCompare(b.label) || a.name.localeCompare(b.name));
    for (const e of entries) add(join(runs, e.name, 'checkpoint'), 'runs', e.label, e.done === null);
  }
  const reports: ReportEntry[] = [];
  const results = resolve(root, r.results);
  if (existsSync(results)) {
    for (const name of readdirSync(results).sort()) {
      if (existsSync(join(results, name, 'report.html'))) reports.push({ name, href: `/results/${encodeURIComponent(name)}/report.html` });
    }
  }
  return { models, reports };
}

export function indexJson(c: Catalog, r: CatalogRoots): IndexJson {
  const models = [...c.models.values()].map(({ dir: _d, data: _a, personaProbePath: _p, ...entry }) => entry);
  return { models, reports: c.reports, roots: { checkpoints: r.checkpoints, runs: r.runs, results: r.results } };
}
