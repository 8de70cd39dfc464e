/**
 * Where an experiment's time went: the wall time cells recorded in DONE.json (wall_s), summed by
 * kind (a stacked narrow cell records its share of its job's).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatSeconds } from '../train/loop.js';
import type { GraphNode } from './graph.js';

/** "base 3 cells 28m10s, narrow ..." for the given finished cells (those without wall_s are skipped). */
export function wallTimeByKind(nodes: GraphNode[]): string {
  const by = new Map<string, { cells: number; seconds: number }>();
  for (const n of nodes) {
    const file = join(n.dir, 'DONE.json');
    if (!existsSync(file)) continue;
    const done = JSON.parse(readFileSync(file, 'utf8')) as { wall_s?: number };
    if (typeof done.wall_s !== 'number') continue;
    const e = by.get(n.kind) ?? { cells: 0, seconds: 0 };
    e.cells += 1;
    e.seconds += done.wall_s;
    by.set(n.kind, e);
  }
  return [...by].map(([kind, e]) => `${kind} ${e.cells} cell${e.cells === 1 ? '' : 's'} ${formatSeconds(e.seconds)}`).join(', ');
}
