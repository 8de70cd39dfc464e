/**
 * A worker process of the experiment runner: it selects its own backend and thread count once,
 * then runs the cells it is sent, one at a time, reporting progress over IPC.
 */
import { selectBackend, type BackendChoice } from '../backend/select-backend.js';
import { setNativeThreads } from '../backend/native/native-backend.js';
import { runCell, StoppedError } from './cells.js';
import type { GraphNode } from './graph.js';

export type ToWorker = { type: 'init'; backend: BackendChoice; threads: number; nodes: GraphNode[] } | { type: 'run'; id: string } | { type: 'exit' };
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
    const node = nodes.get(m.id)!;
    if (stopping) {
      send({ type: 'failed', id: m.id, error: 'stopped before it started', stopped: true });
      return;
    }
    try {
      const result = await runCell(node, nodes, {
        progress: (step, total, fields) => send({ type: 'progress', id: m.id, step, total, fields }),
        log: (line) => send({ type: 'log', id: m.id, line }),
      });
      send({ type: 'done', id: m.id, result });
    } catch (err) {
      const e = err as Error;
      process.stderr.write(`${e.stack ?? e.message}\n`);
      send({ type: 'failed', id: m.id, error: (e.message ?? String(err)).split('\n')[0], stopped: err instanceof StoppedError });
    }
  } else if (m.type === 'exit') {
    process.exit(0);
  }
});
