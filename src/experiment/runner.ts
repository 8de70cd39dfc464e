/**
 * The experiment runner: schedules the graph's cells on a pool of worker processes (default one
 * per core, each with its own backend and an even share of the threads), skips finished cells,
 * resumes unfinished ones, and keeps going when a cell fails (its descendants are skipped).
 * Each running cell holds a lock in its folder (src/experiment/lock.ts): a second runner on the
 * same --runs folder leaves locked cells to their holder, waits for them, and takes over the cells
 * of a runner that died.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createWriteStream, readdirSync, type WriteStream } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BackendChoice } from '../backend/select-backend.js';
import type { MultiProgress } from '../cli/progress.js';
import { makeDir, recoverSwap } from '../util/fs.js';
import { lockHolder, tryLock, type CellLock } from './lock.js';
import { nodeState, type GraphNode, type NodeState } from './graph.js';
import type { FromWorker, ToWorker } from './worker.js';

export interface RunOptions {
  workers: number;
  backend: BackendChoice;
  /** How often to look at cells locked by another runner [1000 ms]. */
  pollMs?: number;
}

/** The lock file of a cell. */
export const lockPath = (node: GraphNode) => join(node.dir, 'LOCK');

/** Finish or clean every interrupted atomic write in a cell's folder (the caller holds its lock). */
function recoverCell(dir: string): void {
  for (const name of readdirSync(dir)) {
    const m = /^(.+)\.(tmp|old)-(?:.+-)?\d+$/.exec(name);
    if (m) recoverSwap(join(dir, m[1]), { ownerDead: true });
  }
}

export interface CellOutcome {
  id: string;
  status: 'done' | 'reused' | 'failed' | 'skipped' | 'stopped';
  error?: string;
  log?: string;
}

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));

export function describeNode(n: GraphNode): string {
  const l = n.labels;
  const parts = [n.kind, l.world, `p${l.pretrain_seed}`];
  if (l.arm) parts.push(l.arm, `f${l.finetune_seed}`);
  return parts.join(' ');
}

/** Longest chain of remaining cost below a node: schedule the critical path first. */
function priorities(nodes: GraphNode[]): Map<string, number> {
  const children = new Map<string, GraphNode[]>();
  for (const n of nodes) for (const d of n.deps) children.set(d, [...(children.get(d) ?? []), n]);
  const memo = new Map<string, number>();
  const depth = (n: GraphNode): number => {
    if (!memo.has(n.id)) memo.set(n.id, n.cost + Math.max(0, ...(children.get(n.id) ?? []).map(depth)));
    return memo.get(n.id)!;
  };
  for (const n of nodes) depth(n);
  return memo;
}

export async function runCells(all: GraphNode[], selected: GraphNode[], o: RunOptions, ui: MultiProgress): Promise<CellOutcome[]> {
  const byId = new Map(all.map((n) => [n.id, n]));
  // 'elsewhere': locked by another runner, which is computing it.
  const state = new Map<string, NodeState | 'running' | 'failed' | 'skipped' | 'elsewhere'>(all.map((n) => [n.id, nodeState(n)]));
  const locks = new Map<string, CellLock>();
  const release = (id: string) => {
    locks.get(id)?.release();
    locks.delete(id);
  };
  const outcomes: CellOutcome[] = selected.filter((n) => state.get(n.id) === 'done').map((n) => ({ id: n.id, status: 'reused' }));
  const todo = selected.filter((n) => state.get(n.id) !== 'done');
  if (todo.length === 0) return outcomes;
  const prio = priorities(all);
  const total = selected.length;
  let finished = outcomes.length;
  const workers = Math.max(1, Math.min(o.workers, todo.length));
  const threads = Math.max(1, Math.floor(availableParallelism() / workers));
  let stopping = false;
  const onSigint = () => {
    stopping = true;
    ui.log('stopping: running cells save a checkpoint and stop; rerun the same command to resume');
    for (const w of pool) w.proc.kill('SIGINT');
  };
  process.on('SIGINT', onSigint);

  interface Worker {
    name: string;
    proc: ChildProcess;
    busy: string | null;
    log: WriteStream | null;
    ready: Promise<void>;
  }
  const pool: Worker[] = [];
  const overall = () => ui.update('grid', finished, total, `${outcomes.filter((x) => x.status === 'failed').length} failed`);

  const ready = () =>
    todo.filter((n) => state.get(n.id) === 'pending' || state.get(n.id) === 'partial').filter((n) => n.deps.every((d) => state.get(d) === 'done')).sort((a, b) => prio.get(b.id)! - prio.get(a.id)!);

  const skipDescendants = (id: string) => {
    for (const n of todo) {
      if (n.deps.includes(id) && state.get(n.id) !== 'skipped') {
        state.set(n.id, 'skipped');
        outcomes.push({ id: n.id, status: 'skipped', error: `depends on ${id}, which did not finish` });
        finished++;
        skipDescendants(n.id);
      }
    }
  };

  /** Lock a ready cell for this runner; false when another runner holds it or has finished it. */
  const claim = (node: GraphNode): boolean => {
    makeDir(node.dir);
    const r = tryLock(lockPath(node));
    if ('holder' in r) {
      state.set(node.id, 'elsewhere');
      const h = r.holder;
      ui.log(`waiting: ${describeNode(node)} is being run by another runner${h ? ` (${h.host} pid ${h.pid}, since ${h.started})` : ''}`);
      return false;
    }
    if (nodeState(node) === 'done') {
      // Finished by another runner since this one looked.
      r.lock.release();
      state.set(node.id, 'done');
      outcomes.push({ id: node.id, status: 'reused' });
      finished++;
      overall();
      return false;
    }
    locks.set(node.id, r.lock);
    recoverCell(node.dir);
    return true;
  };

  await new Promise<void>((resolveAll) => {
    // Cells locked elsewhere: done (reuse them), or free again (their runner died or failed: claim them).
    const poll = setInterval(() => {
      let changed = false;
      for (const n of todo) {
        if (state.get(n.id) !== 'elsewhere') continue;
        const now = nodeState(n);
        if (now === 'done') {
          state.set(n.id, 'done');
          outcomes.push({ id: n.id, status: 'reused' });
          finished++;
          changed = true;
        } else if (lockHolder(lockPath(n)) === null) {
          state.set(n.id, now);
          changed = true;
        }
      }
      if (changed) {
        overall();
        dispatch();
      }
    }, o.pollMs ?? 1000);
    const dispatch = () => {
      if (!stopping) {
        for (const w of pool) {
          if (w.busy) continue;
          let next: GraphNode | undefined;
          while ((next = ready()[0]) && !claim(next)) next = undefined;
          if (!next) break;
          w.busy = next.id;
          state.set(next.id, 'running');
          w.log = createWriteStream(join(next.dir, 'log.txt'), { flags: 'a' });
          w.proc.send({ type: 'run', id: next.id } satisfies ToWorker);
          ui.update(w.name, 0, 1, describeNode(next));
        }
      }
      const running = pool.some((w) => w.busy);
      const waiting = todo.some((n) => state.get(n.id) === 'elsewhere');
      if (!running && (stopping || (ready().length === 0 && !waiting))) {
        clearInterval(poll);
        resolveAll();
      }
    };
    for (let i = 0; i < workers; i++) {
      const proc = fork(WORKER, [], {
        execArgv: ['--import', 'tsx'],
        env: { ...process.env, OMP_NUM_THREADS: String(threads) },
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      });
      const w: Worker = { name: `worker ${i + 1}`, proc, busy: null, log: null, ready: Promise.resolve() };
      proc.stdout?.on('data', (d) => w.log?.write(d));
      proc.stderr?.on('data', (d) => w.log?.write(d));
      w.ready = new Promise((res) => {
        proc.on('message', (m: FromWorker) => {
          if (m.type === 'ready') {
            res();
            return;
          }
          const node = byId.get(m.id)!;
          if (m.type === 'progress') {
            const f = Object.entries(m.fields).map(([k, v]) => `${k} ${v}`).join(' ');
            ui.update(w.name, m.step, m.total, `${describeNode(node)} ${f}`);
          } else if (m.type === 'log') {
            w.log?.write(`${m.line}\n`);
          } else if (m.type === 'done' || m.type === 'failed') {
            release(m.id);
            w.log?.end();
            w.log = null;
            w.busy = null;
            finished++;
            if (m.type === 'done') {
              state.set(m.id, 'done');
              outcomes.push({ id: m.id, status: 'done' });
            } else {
              state.set(m.id, m.stopped ? 'partial' : 'failed');
              outcomes.push({ id: m.id, status: m.stopped ? 'stopped' : 'failed', error: m.error, log: join(node.dir, 'log.txt') });
              if (!m.stopped) {
                ui.log(`failed: ${describeNode(node)}: ${m.error} (log: ${join(node.dir, 'log.txt')})`);
                skipDescendants(m.id);
              }
            }
            ui.update(w.name, 1, 1, 'idle');
            overall();
            dispatch();
          }
        });
      });
      proc.on('exit', (code) => {
        if (w.busy) {
          release(w.busy);
          const node = byId.get(w.busy)!;
          state.set(w.busy, 'failed');
          outcomes.push({ id: w.busy, status: 'failed', error: `worker exited with code ${code}`, log: join(node.dir, 'log.txt') });
          finished++;
          skipDescendants(w.busy);
          w.busy = null;
          dispatch();
        }
      });
      proc.send({ type: 'init', backend: o.backend, threads, nodes: all } satisfies ToWorker);
      pool.push(w);
    }
    overall();
    void Promise.all(pool.map((w) => w.ready)).then(dispatch);
  });
  process.off('SIGINT', onSigint);
  for (const w of pool) {
    w.proc.send({ type: 'exit' } satisfies ToWorker);
    ui.remove(w.name);
  }
  return outcomes;
}
