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
import { nodeState, stackKey, type GraphNode, type NodeState } from './graph.js';
import type { FromWorker, ToWorker } from './worker.js';

export interface RunOptions {
  workers: number;
  backend: BackendChoice;
  /**
   * Train fresh sibling narrow cells (one parent, one stack key) as stacked runs, split evenly
   * over the workers, at most MAX_STACK per job [false: on CPUs the products are already
   * compute-bound at this size, and stacked steps measured 0.9x the speed of separate ones].
   */
  stack?: boolean;
  /** How often to look at cells locked by another runner [POLL_MS]. */
  pollMs?: number;
}

/** How often a runner looks at cells another runner holds: done (reuse them) or free again (claim them). */
const POLL_MS = 1000;

/** The most narrow cells one job trains as stacked runs (memory grows with each: weights, moments, activations). */
export const MAX_STACK = 16;

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
  if (l.intervention) parts.push(`[${[l.intervention, l.setting, l.value].filter((x) => x !== undefined).join(' ')}]`);
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

/** What a cell can be during a run. 'elsewhere': locked by another runner, which is computing it. */
type CellState = NodeState | 'running' | 'failed' | 'skipped' | 'elsewhere';

/**
 * The bookkeeping of one run: each cell's state, what became of the selected cells, and the locks
 * this runner holds. It knows nothing of the worker processes.
 */
class CellBook {
  readonly state: Map<string, CellState>;
  readonly outcomes: CellOutcome[] = [];
  /** The selected cells not finished when the run started. */
  readonly todo: GraphNode[];
  private readonly locks = new Map<string, CellLock>();
  private readonly total: number;
  private finished = 0;
  private prio: Map<string, number> | null = null;

  constructor(private readonly all: GraphNode[], selected: GraphNode[], private readonly ui: MultiProgress) {
    this.state = new Map(all.map((n) => [n.id, nodeState(n)]));
    for (const n of selected) if (this.state.get(n.id) === 'done') this.record({ id: n.id, status: 'reused' });
    this.todo = selected.filter((n) => this.state.get(n.id) !== 'done');
    this.total = selected.length;
  }

  /** A cell's final outcome in this run. */
  record(outcome: CellOutcome): void {
    this.outcomes.push(outcome);
    this.finished++;
  }

  /** The overall progress line. */
  overall(): void {
    this.ui.update('grid', this.finished, this.total, `${this.outcomes.filter((x) => x.status === 'failed').length} failed`);
  }

  /** Cells whose parents are done, critical path first. */
  ready(): GraphNode[] {
    this.prio ??= priorities(this.all);
    const prio = this.prio;
    return this.todo
      .filter((n) => this.state.get(n.id) === 'pending' || this.state.get(n.id) === 'partial')
      .filter((n) => n.deps.every((d) => this.state.get(d) === 'done'))
      .sort((a, b) => prio.get(b.id)! - prio.get(a.id)!);
  }

  /** True while another runner holds a cell this run wants. */
  waiting(): boolean {
    return this.todo.some((n) => this.state.get(n.id) === 'elsewhere');
  }

  /** The most urgent ready cell, locked for this runner; undefined when none is left to claim. */
  claimNext(): GraphNode | undefined {
    let next: GraphNode | undefined;
    while ((next = this.ready()[0]) && !this.claim(next)) next = undefined;
    return next;
  }

  /**
   * The next job: the most urgent ready cell, and when it is a fresh narrow cell with a stack key,
   * its fresh ready siblings of that key too, as many as an even split over `slots` workers gives
   * (at most MAX_STACK). Which cells go together depends on the graph, the cache and --workers,
   * not on timing: siblings become ready together, when their parent finishes.
   */
  claimJob(slots: number, stack: boolean): GraphNode[] {
    const first = this.claimNext();
    if (!first) return [];
    const key = stack ? stackKey(first) : null;
    if (key === null || this.state.get(first.id) !== 'pending') return [first];
    const siblings = this.ready().filter((n) => n.id !== first.id && this.state.get(n.id) === 'pending' && stackKey(n) === key);
    const size = Math.min(MAX_STACK, Math.ceil((siblings.length + 1) / Math.max(1, slots)));
    const job = [first];
    for (const n of siblings) {
      if (job.length >= size) break;
      if (this.claim(n)) job.push(n);
    }
    return job;
  }

  /** Lock a ready cell for this runner; false when another runner holds it or has finished it. */
  private claim(node: GraphNode): boolean {
    makeDir(node.dir);
    const r = tryLock(lockPath(node));
    if ('holder' in r) {
      this.state.set(node.id, 'elsewhere');
      const h = r.holder;
      this.ui.log(`waiting: ${describeNode(node)} is being run by another runner${h ? ` (${h.host} pid ${h.pid}, since ${h.started})` : ''}`);
      return false;
    }
    if (nodeState(node) === 'done') {
      // Finished by another runner since this one looked.
      r.lock.release();
      this.state.set(node.id, 'done');
      this.record({ id: node.id, status: 'reused' });
      this.overall();
      return false;
    }
    this.locks.set(node.id, r.lock);
    recoverCell(node.dir);
    return true;
  }

  release(id: string): void {
    this.locks.get(id)?.release();
    this.locks.delete(id);
  }

  /** Cells locked elsewhere: done (reuse them), or free again (their runner died or failed: claim them). True when any changed. */
  recheckElsewhere(): boolean {
    let changed = false;
    for (const n of this.todo) {
      if (this.state.get(n.id) !== 'elsewhere') continue;
      const now = nodeState(n);
      if (now === 'done') {
        this.state.set(n.id, 'done');
        this.record({ id: n.id, status: 'reused' });
        changed = true;
      } else if (lockHolder(lockPath(n)) === null) {
        this.state.set(n.id, now);
        changed = true;
      }
    }
    return changed;
  }

  /** A cell that did not finish: everything downstream of it is skipped. */
  skipDescendants(id: string): void {
    for (const n of this.todo) {
      if (n.deps.includes(id) && this.state.get(n.id) !== 'skipped') {
        this.state.set(n.id, 'skipped');
        this.record({ id: n.id, status: 'skipped', error: `depends on ${id}, which did not finish` });
        this.skipDescendants(n.id);
      }
    }
  }
}

interface Worker {
  name: string;
  proc: ChildProcess;
  /** The cells of the job it is running (one, or stacked siblings), until each reports back. */
  busy: string[] | null;
  /** The running cells' log.txt files (a stacked job writes its log into each). */
  logs: WriteStream[];
  ready: Promise<void>;
}

/** The worker processes of one run: they start, are handed ready cells, report back, and stop. */
class WorkerPool {
  private readonly workers: Worker[] = [];
  private readonly byId: Map<string, GraphNode>;
  private stopping = false;
  private poll: NodeJS.Timeout | undefined;
  private finish: () => void = () => {};

  constructor(private readonly book: CellBook, private readonly all: GraphNode[], private readonly o: RunOptions, private readonly ui: MultiProgress) {
    this.byId = new Map(all.map((n) => [n.id, n]));
  }

  /** Ctrl-C: running cells save a checkpoint and stop, no new cell starts. */
  stop(): void {
    this.stopping = true;
    this.ui.log('stopping: running cells save a checkpoint and stop; rerun the same command to resume');
    for (const w of this.workers) w.proc.kill('SIGINT');
  }

  /** Start `count` workers and hand out cells until none is left to run here (or the run is stopped). */
  run(count: number, threads: number): Promise<void> {
    return new Promise<void>((resolveAll) => {
      this.finish = resolveAll;
      this.poll = setInterval(() => {
        if (!this.book.recheckElsewhere()) return;
        this.book.overall();
        this.dispatch();
      }, this.o.pollMs ?? POLL_MS);
      for (let i = 0; i < count; i++) this.workers.push(this.spawn(`worker ${i + 1}`, threads));
      this.book.overall();
      void Promise.all(this.workers.map((w) => w.ready)).then(() => this.dispatch());
    });
  }

  /** Tell every worker to exit. */
  close(): void {
    for (const w of this.workers) {
      w.proc.send({ type: 'exit' } satisfies ToWorker);
      this.ui.remove(w.name);
    }
  }

  /** Give each idle worker the most urgent ready cell; finish the run when nothing runs and nothing is left to start. */
  private dispatch(): void {
    if (!this.stopping) {
      for (const w of this.workers) {
        if (w.busy) continue;
        const job = this.book.claimJob(this.workers.length, this.o.stack ?? false);
        if (job.length === 0) break;
        this.assign(w, job);
      }
    }
    const running = this.workers.some((w) => w.busy);
    if (!running && (this.stopping || (this.book.ready().length === 0 && !this.book.waiting()))) {
      clearInterval(this.poll);
      this.finish();
    }
  }

  private assign(w: Worker, job: GraphNode[]): void {
    w.busy = job.map((n) => n.id);
    for (const n of job) this.book.state.set(n.id, 'running');
    w.logs = job.map((n) => createWriteStream(join(n.dir, 'log.txt'), { flags: 'a' }));
    if (job.length > 1) this.writeLog(w, `stacked with ${job.length - 1} sibling(s): ${job.map((n) => n.id).join(' ')}\n`);
    w.proc.send({ type: 'run', ids: w.busy } satisfies ToWorker);
    this.ui.update(w.name, 0, 1, this.describeJob(job));
  }

  private describeJob(job: GraphNode[]): string {
    return job.length === 1 ? describeNode(job[0]) : `${describeNode(job[0])} +${job.length - 1} stacked`;
  }

  private writeLog(w: Worker, text: string | Buffer): void {
    for (const log of w.logs) log.write(text);
  }

  private spawn(name: string, threads: number): Worker {
    const proc = fork(WORKER, [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, OMP_NUM_THREADS: String(threads) },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const w: Worker = { name, proc, busy: null, logs: [], ready: Promise.resolve() };
    proc.stdout?.on('data', (d) => this.writeLog(w, d));
    proc.stderr?.on('data', (d) => this.writeLog(w, d));
    w.ready = new Promise((res) => {
      proc.on('message', (m: FromWorker) => {
        if (m.type === 'ready') res();
        else this.onMessage(w, m);
      });
    });
    proc.on('exit', (code) => this.onExit(w, code));
    proc.send({ type: 'init', backend: this.o.backend, threads, nodes: this.all } satisfies ToWorker);
    return w;
  }

  private onMessage(w: Worker, m: Exclude<FromWorker, { type: 'ready' }>): void {
    const node = this.byId.get(m.id)!;
    if (m.type === 'progress') {
      const f = Object.entries(m.fields).map(([k, v]) => `${k} ${v}`).join(' ');
      this.ui.update(w.name, m.step, m.total, `${this.describeJob((w.busy ?? [m.id]).map((id) => this.byId.get(id)!))} ${f}`);
    } else if (m.type === 'log') {
      this.writeLog(w, `${m.line}\n`);
    } else {
      this.book.release(m.id);
      w.busy = (w.busy ?? []).filter((id) => id !== m.id);
      const jobOver = w.busy.length === 0;
      if (jobOver) {
        for (const log of w.logs) log.end();
        w.logs = [];
        w.busy = null;
      }
      if (m.type === 'done') {
        this.book.state.set(m.id, 'done');
        this.book.record({ id: m.id, status: 'done' });
      } else {
        this.book.state.set(m.id, m.stopped ? 'partial' : 'failed');
        this.book.record({ id: m.id, status: m.stopped ? 'stopped' : 'failed', error: m.error, log: join(node.dir, 'log.txt') });
        if (!m.stopped) {
          this.ui.log(`failed: ${describeNode(node)}: ${m.error} (log: ${join(node.dir, 'log.txt')})`);
          this.book.skipDescendants(m.id);
        }
      }
      if (jobOver) this.ui.update(w.name, 1, 1, 'idle');
      this.book.overall();
      if (jobOver) this.dispatch();
    }
  }

  /** A worker that exits while running a cell failed it. */
  private onExit(w: Worker, code: number | null): void {
    if (!w.busy) return;
    for (const id of w.busy) {
      this.book.release(id);
      const node = this.byId.get(id)!;
      this.book.state.set(id, 'failed');
      this.book.record({ id, status: 'failed', error: `worker exited with code ${code}`, log: join(node.dir, 'log.txt') });
      this.book.skipDescendants(id);
    }
    w.busy = null;
    this.dispatch();
  }
}

/** Run the selected cells (and nothing else of `all`) on a pool of workers; returns what became of each. */
export async function runCells(all: GraphNode[], selected: GraphNode[], o: RunOptions, ui: MultiProgress): Promise<CellOutcome[]> {
  const book = new CellBook(all, selected, ui);
  if (book.todo.length === 0) return book.outcomes;
  const workers = Math.max(1, Math.min(o.workers, book.todo.length));
  const threads = Math.max(1, Math.floor(availableParallelism() / workers));
  const pool = new WorkerPool(book, all, o, ui);
  const onSigint = () => pool.stop();
  process.on('SIGINT', onSigint);
  await pool.run(workers, threads);
  process.off('SIGINT', onSigint);
  pool.close();
  return book.outcomes;
}
