/**
 * A worker process of the experiment runner: it selects its own backend and thread count once,
 * then runs the cells it is sent, one job at a time (a cell, or sibling narrow cells trained as
 * stacked runs), reporting progress over IPC.
 */
import { selectBackend, type BackendChoice } from '../backend/select-backend.js';
import { setNativeThreads } from '../backend/native/native-backend.js';
import { runCell, runStackedCells, StoppedError } from './cells.js';
import type { GraphNode } from './graph.js';

export type ToWorker = { type: 'init'; backend: BackendChoice; threads: number; nodes: GraphNode[] } | { type: 'run'; ids: string[] } | { type: 'exit' };
export type FromWorker =
  | { type: 'ready'; backend: string; reason: string }
  | { type: 'progress'; id: string; step: number; total: number; fields: Record<string, string | number> }
  | { type: 'log'; id: string; line: string }
  | { type: 'done'; id: string; result: Record<string, unknown> }
  | { type: 'failed'; id: string; error: string; stopped: boolean };

const send = (m: FromWorker) => process.send?.(m);
let nodes = new Map<string, GraphNode>();
let stopping = false;

// Ctrl-C reaches the worker too: the running session saves and stops; this flag refuses new cells.
process.on('SIGINT', () => {
  stopping = true;
});

process.on('message', async (m: ToWorker) => {
  if (m.type === 'init') {
    nodes = new Map(m.nodes.map((n) => [n.id, n]));
    process.env.OMP_NUM_THREADS = String(m.threads);
    const info = await selectBackend(m.backend);
    if (info.name === 'native') setNativeThreads(m.threads);
    send({ type: 'ready', backend: info.name, reason: info.reason });
  } else if (m.type === 'run') {
    // One cell, or several narrow cells trained as stacked runs (their progress and log go under the first).
    const group = m.ids.map((id) => nodes.get(id)!);
    const lead = m.ids[0];
    if (stopping) {
      for (const id of m.ids) send({ type: 'failed', id, error: 'stopped before it started', stopped: true });
      return;
    }
    const ui = {
      progress: (step: number, total: number, fields: Record<string, string | number>) => send({ type: 'progress', id: lead, step, total, fields }),
      log: (line: string) => send({ type: 'log', id: lead, line }),
    };
    try {
      const results = group.length === 1 ? [await runCell(group[0], nodes, ui)] : await runStackedCells(group, nodes, ui);
      results.forEach((result, i) => send({ type: 'done', id: m.ids[i], result }));
    } catch (err) {
      const e = err as Error;
      process.stderr.write(`${e.stack ?? e.message}\n`);
      for (const id of m.ids) send({ type: 'failed', id, error: (e.message ?? String(err)).split('\n')[0], stopped: err instanceof StoppedError });
    }
  } else if (m.type === 'exit') {
    process.exit(0);
  }
});
