/**
 * File-system safety: a mkdir -p that cannot loop (Node's recursive mkdir spins forever on paths
 * such as /proc/x), write checks before any work starts, owner-tagged temporary names, the
 * recovery of an atomic folder swap interrupted at any instant, and sha256 checksums.
 *
 * A folder is replaced in three renames-worth of steps (src/data/arrow.ts): fill `<dir>.tmp-<owner>`,
 * rename `<dir>` to `<dir>.old-<owner>`, rename the temporary folder to `<dir>`, delete the old one.
 * `<dir>.old-<owner>` exists only after the temporary folder was filled completely, so whatever
 * instant a process dies at, `recoverSwap` knows what to do with what it left.
 */
import { createHash } from 'node:crypto';
import { accessSync, closeSync, constants, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';

/** This machine, as it appears in temporary names and locks (no characters that need quoting). */
export const HOST = hostname().replace(/[^A-Za-z0-9.]/g, '_') || 'host';

/** Leftovers of another machine (shared file system) count as abandoned after this long untouched. */
export const FOREIGN_STALE_MS = 10 * 60_000;

/** The owner tag of this process: `<host>-<pid>`. */
export const ownerTag = (): string => `${HOST}-${process.pid}`;

export function tempPath(path: string, kind: 'tmp' | 'old'): string {
  return `${path}.${kind}-${ownerTag()}`;
}

/** Parse `<base>.tmp-<host>-<pid>` (or the older `<base>.tmp-<pid>`); null when `name` is not one of `base`'s. */
export function parseTempName(name: string, base: string): { kind: 'tmp' | 'old'; host: string | null; pid: number } | null {
  for (const kind of ['tmp', 'old'] as const) {
    const prefix = `${base}.${kind}-`;
    if (!name.startsWith(prefix)) continue;
    const m = /^(?:(.+)-)?(\d+)$/.exec(name.slice(prefix.length));
    if (m) return { kind, host: m[1] ?? null, pid: Number(m[2]) };
  }
  return null;
}

export function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether the process that owns a temporary name may still be working on it. */
export function ownerAlive(host: string | null, pid: number, touchedMs: number): boolean {
  if (host === null || host === HOST) return pidAlive(pid);
  return Date.now() - touchedMs < FOREIGN_STALE_MS;
}

/** The deepest existing ancestor of `path` (or `path` itself). */
export function nearestExisting(path: string): string {
  let p = resolve(path);
  while (!existsSync(p)) {
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  return p;
}

/** mkdir -p, one level at a time: a level that cannot be made is an error naming it, never a loop. */
export function makeDir(dir: string): void {
  const target = resolve(dir);
  const missing: string[] = [];
  let p = target;
  while (!existsSync(p)) {
    missing.unshift(p);
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  if (existsSync(p) && !statSync(p).isDirectory()) throw new Error(`cannot create ${target}: ${p} is a file, not a folder`);
  for (const level of missing) {
    try {
      mkdirSync(level);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && statSync(level).isDirectory()) continue;
      throw new Error(`cannot create ${level} (${code ?? (err as Error).message})`);
    }
  }
}

/**
 * Check that `path` (a folder to be created or replaced) can be written: its nearest existing
 * ancestor is a folder in which a file can be created, and an existing `path` is a writable
 * folder. Nothing is created except a probe file, removed at once. Throws one line naming `flag`.
 */
export function assertWritable(path: string, flag: string): void {
  const target = resolve(path);
  const parent = nearestExisting(dirname(target));
  if (!statSync(parent).isDirectory()) throw new Error(`cannot write to ${target}: ${parent} is a file, not a folder; choose another ${flag}`);
  const probe = join(parent, `.write-check-${ownerTag()}`);
  try {
    closeSync(openSync(probe, 'wx'));
    unlinkSync(probe);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    rmSync(probe, { force: true });
    throw new Error(`cannot write to ${parent} (${code}); choose another ${flag}`);
  }
  if (existsSync(target) && statSync(target).isDirectory()) {
    try {
      accessSync(target, constants.W_OK);
    } catch {
      throw new Error(`cannot write to ${target} (EACCES); choose another ${flag}`);
    }
  }
}

/**
 * Finish or undo what dead processes left of an atomic swap of `dir`: a complete temporary folder
 * whose swap was cut between its two renames is moved into place, an old folder whose swap
 * finished is deleted, a half-filled temporary folder is deleted. Leftovers of live processes are
 * left alone, unless `ownerDead` (the caller holds a lock that proves no one else works on `dir`).
 * Returns what it did, one line per action.
 */
export function recoverSwap(dir: string, opts: { ownerDead?: boolean } = {}): string[] {
  const target = resolve(dir);
  const parent = dirname(target);
  const base = basename(target);
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return [];
  }
  const owners = new Map<string, { tmp?: string; old?: string; host: string | null; pid: number; touched: number }>();
  for (const name of names) {
    const t = parseTempName(name, base);
    if (!t) continue;
    const key = `${t.host ?? ''}-${t.pid}`;
    const entry = owners.get(key) ?? { host: t.host, pid: t.pid, touched: 0 };
    let touched = 0;
    try {
      touched = lstatSync(join(parent, name)).mtimeMs;
    } catch {
      continue;
    }
    entry[t.kind] = join(parent, name);
    entry.touched = Math.max(entry.touched, touched);
    owners.set(key, entry);
  }
  const actions: string[] = [];
  for (const o of [...owners.values()].sort((a, b) => b.touched - a.touched)) {
    const mine = o.pid === process.pid && (o.host === null || o.host === HOST);
    if (!opts.ownerDead && (mine || ownerAlive(o.host, o.pid, o.touched))) continue;
    if (o.old) {
      if (!existsSync(target)) {
        // Cut between the renames: the temporary folder is complete (the old one is moved away only after).
        if (o.tmp) {
          renameSync(o.tmp, target);
          actions.push(`completed an interrupted swap of ${target}`);
          o.tmp = undefined;
        } else {
          renameSync(o.old, target);
          actions.push(`restored ${target} from an interrupted swap`);
          o.old = undefined;
        }
      }
      if (o.old) {
        rmSync(o.old, { recursive: true, force: true });
        actions.push(`removed ${o.old} (left by a finished swap)`);
      }
    }
    if (o.tmp) {
      rmSync(o.tmp, { recursive: true, force: true });
      actions.push(`removed ${o.tmp} (left by a process that died)`);
    }
  }
  return actions;
}

/** Remove `<path>.tmp-*` files (atomic single-file writes) of processes that died. */
export function removeStaleTempFiles(path: string): void {
  const parent = dirname(path);
  const base = basename(path);
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const name of names) {
    const t = parseTempName(name, base);
    if (!t || t.kind !== 'tmp') continue;
    const full = join(parent, name);
    try {
      const st = lstatSync(full);
      if (st.isFile() && !ownerAlive(t.host, t.pid, st.mtimeMs)) rmSync(full, { force: true });
    } catch {
      // gone already
    }
  }
}

export function sha256(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** sha256 of a file, memoized per process on its path, size and modification time. */
const hashMemo = new Map<string, { key: string; hash: string }>();
export function sha256File(path: string): string {
  const st = statSync(path);
  const key = `${st.size}:${st.mtimeMs}:${st.ino}`;
  const memo = hashMemo.get(path);
  if (memo && memo.key === key) return memo.hash;
  const hash = sha256(readFileSync(path));
  hashMemo.set(path, { key, hash });
  return hash;
}

/**
 * Check files against recorded checksums (paths relative to `dir`); the error names the first file
 * that is missing or differs, and `fix` says what to do.
 */
export function verifyChecksums(dir: string, checksums: Record<string, string> | undefined, what: string, fix: string, only?: string[]): void {
  if (!checksums || typeof checksums !== 'object') return;
  for (const [rel, want] of Object.entries(checksums)) {
    if (only && !only.includes(rel)) continue;
    const path = join(dir, rel);
    let got: string;
    try {
      got = sha256File(path);
    } catch {
      throw new Error(`${what}: ${path} is missing; ${fix}`);
    }
    if (got !== want) throw new Error(`${what}: ${path} does not match its sha256 checksum (corrupt or modified); ${fix}`);
  }
}

/** sha256 of every regular file directly in `dir` except `exclude`, by name (sorted). */
export function checksumFolder(dir: string, exclude: string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir).sort()) {
    if (exclude.includes(name) || !statSync(join(dir, name)).isFile()) continue;
    out[name] = sha256(readFileSync(join(dir, name)));
  }
  return out;
}
