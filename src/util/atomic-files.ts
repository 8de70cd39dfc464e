/**
 * Atomic writes: a file is written under a temporary name and renamed into place, a folder built
 * under a temporary name and swapped in whole, so readers never see a half-written one (moved here
 * from src/data/arrow.ts: checkpoints, datasets and results all write through these).
 */
import { existsSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { makeDir, recoverSwap, removeStaleTempFiles, sha256, tempPath } from './fs.js';

/** Write a file under a temporary name, then rename it into place; returns the bytes' sha256. */
export function writeBytesAtomic(path: string, bytes: Uint8Array | string): string {
  makeDir(dirname(path));
  removeStaleTempFiles(path);
  const tmp = tempPath(path, 'tmp');
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  return sha256(bytes);
}

/**
 * Build a folder under a temporary name with `fill`, then swap it in whole: readers see the old
 * folder or the new one, never a mix, and a failure leaves the old one untouched. A process killed
 * at any instant leaves something `recoverSwap` (src/util/fs.ts) completes or cleans, which the
 * next swap of the same folder (or a --resume, or a loader) does first. Refuses to replace a file.
 */
export function replaceDirAtomic(dir: string, fill: (tmp: string) => void): void {
  recoverSwap(dir);
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new Error(`${dir} is a file, not a folder; refusing to replace it`);
  const tmp = tempPath(dir, 'tmp');
  const old = tempPath(dir, 'old');
  rmSync(tmp, { recursive: true, force: true });
  makeDir(tmp);
  try {
    fill(tmp);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  const hadOld = existsSync(dir);
  if (hadOld) renameSync(dir, old);
  try {
    renameSync(tmp, dir);
  } catch (err) {
    if (hadOld) renameSync(old, dir);
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  if (hadOld) rmSync(old, { recursive: true, force: true });
}
