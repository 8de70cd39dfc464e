/**
 * Per-cell locks on a --runs folder, so that several runners (on one machine or on many sharing a
 * file system) never compute the same cell twice. A lock is a file created with O_EXCL (atomic on
 * local file systems and on NFSv3 and later) holding the owner's host, pid and start time; its
 * holder touches it every HEARTBEAT_MS. A lock is abandoned when its process is dead (same host)
 * or its heartbeat is older than STALE_MS (any host; host clocks must agree to well within that).
 * An abandoned lock is taken over by renaming it aside first: a rename is atomic, so of several
 * runners that found it abandoned exactly one moves it, and the others see a fresh lock or none.
 */
import { closeSync, linkSync, openSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, utimesSync, writeSync } from 'node:fs';
import { HOST, ownerTag, pidAlive } from '../util/fs.js';

export const HEARTBEAT_MS = 10_000;
export const STALE_MS = 120_000;

export interface LockInfo {
  host: string;
  pid: number;
  started: string;
}

interface Seen {
  info: LockInfo | null;
  touchedMs: number;
}

function readLock(path: string): Seen | null {
  let touchedMs: number;
  try {
    touchedMs = statSync(path).mtimeMs;
  } catch {
    return null;
  }
  try {
    const j = JSON.parse(readFileSync(path, 'utf8')) as LockInfo;
    if (typeof j.host === 'string' && Number.isInteger(j.pid) && typeof j.started === 'string') return { info: j, touchedMs };
  } catch {
    // being written, or garbage
  }
  return { info: null, touchedMs };
}

/** Whether a lock's owner is gone: its process is dead, or its heartbeat stopped. */
export function isStale(seen: Seen, now = Date.now()): boolean {
  if (now - seen.touchedMs > STALE_MS) return true;
  return seen.info !== null && seen.info.host === HOST && !pidAlive(seen.info.pid);
}

const same = (a: LockInfo | null, b: LockInfo | null) => a !== null && b !== null && a.host === b.host && a.pid === b.pid && a.started === b.started;

const held = new Set<CellLock>();
let exitHook = false;

export class CellLock {
  private timer: NodeJS.Timeout;
  /** True once another runner took the lock over (this one stalled for longer than STALE_MS). */
  lost = false;

  constructor(readonly path: string, readonly info: LockInfo) {
    this.timer = setInterval(() => this.beat(), HEARTBEAT_MS);
    this.timer.unref();
    held.add(this);
    if (!exitHook) {
      exitHook = true;
      process.on('exit', () => {
        for (const l of held) l.release();
      });
    }
  }

  private mine(): boolean {
    const seen = readLock(this.path);
    return seen !== null && same(seen.info, this.info);
  }

  beat(): void {
    if (!this.mine()) {
      this.lost = true;
      return;
    }
    const now = new Date();
    try {
      utimesSync(this.path, now, now);
    } catch {
      // the next beat tries again
    }
  }

  release(): void {
    clearInterval(this.timer);
    held.delete(this);
    if (this.mine()) rmSync(this.path, { force: true });
  }
}

/** Take the lock at `path`, or say who holds it. Never waits. */
export function tryLock(path: string): { lock: CellLock } | { holder: LockInfo | null } {
  for (let attempt = 0; attempt < 5; attempt++) {
    const info: LockInfo = { host: HOST, pid: process.pid, started: new Date().toISOString() };
    try {
      const fd = openSync(path, 'wx');
      try {
        writeSync(fd, JSON.stringify(info) + '\n');
      } finally {
        closeSync(fd);
      }
      return { lock: new CellLock(path, info) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`cannot create the lock ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    const seen = readLock(path);
    if (seen === null) continue; // released meanwhile
    if (!isStale(seen)) return { holder: seen.info };
    const aside = `${path}.stale-${ownerTag()}`;
    try {
      renameSync(path, aside);
    } catch {
      continue; // another runner moved it first
    }
    const moved = readLock(aside);
    if (moved && (same(moved.info, seen.info) || (moved.info === null && seen.info === null))) {
      rmSync(aside, { force: true });
      continue; // the abandoned lock is gone: try to create ours
    }
    // A fresh lock replaced the abandoned one in between: put it back (link fails if a third appeared).
    try {
      linkSync(aside, path);
    } catch {
      // nothing to restore over
    }
    try {
      unlinkSync(aside);
    } catch {
      // already gone
    }
    return { holder: moved?.info ?? null };
  }
  return { holder: null };
}

/** Who holds the lock at `path`, or null when it is free or abandoned. */
export function lockHolder(path: string): LockInfo | null {
  const seen = readLock(path);
  if (!seen || isStale(seen)) return null;
  return seen.info ?? { host: '?', pid: 0, started: '' };
}
