import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { replaceDirAtomic, writeBytesAtomic } from '../src/util/atomic-files.js';
import { lockHolder, tryLock } from '../src/experiment/lock.js';
import { HOST, makeDir, recoverSwap } from '../src/util/fs.js';

const root = mkdtempSync(join(tmpdir(), 'persona-atomic-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** The pid of a process that has exited. */
const deadPid = (): number => spawnSync(process.execPath, ['-e', '0']).pid!;
const write = (dir: string, text: string) => {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'f.txt'), text);
};
const read = (dir: string) => readFileSync(join(dir, 'f.txt'), 'utf8');
const hourAgo = () => new Date(Date.now() - 3_600_000);

test('an atomic folder swap killed at any instant is completed or undone by the next one', () => {
  const pid = deadPid();
  const tag = `${HOST}-${pid}`;
  // Killed while filling: the half-written folder goes, the old one stays.
  const a = join(root, 'a');
  write(a, 'old');
  write(`${a}.tmp-${tag}`, 'half');
  assert.deepEqual(recoverSwap(a).length, 1);
  assert.equal(read(a), 'old');
  assert.ok(!existsSync(`${a}.tmp-${tag}`));
  // Killed between the two renames: only <dir>.old-* and <dir>.tmp-* exist; the new one is moved in.
  const b = join(root, 'b');
  write(`${b}.old-${tag}`, 'old');
  write(`${b}.tmp-${tag}`, 'new');
  recoverSwap(b);
  assert.equal(read(b), 'new');
  assert.deepEqual(readdirSync(root).filter((n) => n.startsWith('b.')), []);
  // Killed while deleting the old folder.
  const c = join(root, 'c');
  write(c, 'new');
  write(`${c}.old-${tag}`, 'old');
  recoverSwap(c);
  assert.equal(read(c), 'new');
  assert.ok(!existsSync(`${c}.old-${tag}`));
  // The older naming without a host (same machine).
  const d = join(root, 'd');
  write(`${d}.old-${pid}`, 'old');
  write(`${d}.tmp-${pid}`, 'new');
  recoverSwap(d);
  assert.equal(read(d), 'new');
  // A live process's leftovers are its own business; another machine's only once abandoned.
  const e = join(root, 'e');
  write(`${e}.tmp-${HOST}-${process.ppid}`, 'busy');
  write(`${e}.tmp-otherhost-12-34`, 'busy');
  recoverSwap(e);
  assert.ok(existsSync(`${e}.tmp-${HOST}-${process.ppid}`) && existsSync(`${e}.tmp-otherhost-12-34`));
  utimesSync(`${e}.tmp-otherhost-12-34`, hourAgo(), hourAgo());
  recoverSwap(e);
  assert.ok(!existsSync(`${e}.tmp-otherhost-12-34`));
  assert.ok(recoverSwap(e, { ownerDead: true }).length === 1 && !existsSync(`${e}.tmp-${HOST}-${process.ppid}`), 'a lock holder cleans everything');
  // replaceDirAtomic recovers first, then swaps; it never replaces a file.
  const f = join(root, 'f');
  write(`${f}.old-${tag}`, 'old');
  write(`${f}.tmp-${tag}`, 'new');
  replaceDirAtomic(f, (tmp) => writeFileSync(join(tmp, 'f.txt'), 'newer'));
  assert.equal(read(f), 'newer');
  assert.deepEqual(readdirSync(root).filter((n) => n.startsWith('f.')), []);
  const file = join(root, 'a-file');
  writeFileSync(file, 'keep');
  assert.throws(() => replaceDirAtomic(file, () => {}), /is a file, not a folder; refusing to replace it/);
  assert.equal(readFileSync(file, 'utf8'), 'keep');
  // Stale temporary files of single-file writes are cleaned by the next write of that file.
  writeFileSync(join(root, `g.json.tmp-${tag}`), 'x');
  writeBytesAtomic(join(root, 'g.json'), '{}');
  assert.ok(!existsSync(join(root, `g.json.tmp-${tag}`)));
});

test('makeDir fails with one line instead of looping on /proc', () => {
  assert.throws(() => makeDir('/proc/x/y'), /cannot create \/proc\/x/);
  makeDir(join(root, 'm', 'n', 'o'));
  assert.ok(existsSync(join(root, 'm', 'n', 'o')));
  writeFileSync(join(root, 'plain'), '');
  assert.throws(() => makeDir(join(root, 'plain', 'x')), /is a file, not a folder/);
});

test('cell locks: one holder, dead and abandoned holders are taken over, release only frees one\'s own', () => {
  const path = join(root, 'LOCK');
  const first = tryLock(path);
  assert.ok('lock' in first);
  const second = tryLock(path);
  assert.ok('holder' in second && second.holder?.pid === process.pid, 'a held lock is refused');
  assert.equal(lockHolder(path)?.pid, process.pid);
  first.lock.release();
  assert.ok(!existsSync(path) && lockHolder(path) === null);

  // A dead process on this machine.
  writeFileSync(path, JSON.stringify({ host: HOST, pid: deadPid(), started: 'then' }));
  assert.equal(lockHolder(path), null);
  const taken = tryLock(path);
  assert.ok('lock' in taken);
  // Another machine: alive while its heartbeat is fresh, abandoned after STALE_MS.
  taken.lock.release();
  writeFileSync(path, JSON.stringify({ host: 'otherhost', pid: 1, started: 'then' }));
  assert.ok('holder' in tryLock(path));
  utimesSync(path, hourAgo(), hourAgo());
  const over = tryLock(path);
  assert.ok('lock' in over);
  // A holder that lost its lock (it stalled and was taken over) does not delete the new one.
  writeFileSync(path, JSON.stringify({ host: 'otherhost', pid: 2, started: 'now' }));
  over.lock.beat();
  assert.ok(over.lock.lost);
  over.lock.release();
  assert.equal(JSON.parse(readFileSync(path, 'utf8')).pid, 2);
  rmSync(path);
});

test('--resume after a kill between the two renames of a checkpoint swap completes the swap and goes on', async () => {
  const { buildDatasets, DEFAULT_DATA_OPTIONS } = await import('../src/data/build.js');
  const { pretrain } = await import('../src/pipeline/pretrain.js');
  const { DEFAULT_WORLD } = await import('../src/world/world-config.js');
  const { use } = await import('./helpers/backends.js');
  const data = join(root, 'data');
  buildDatasets(data, { ...DEFAULT_DATA_OPTIONS, world: DEFAULT_WORLD, pretrainTokens: 20_000, assistantExamples: 20, narrowExamples: 10, inferenceGroups: 4, heldOutScenes: 3, probesPerDomain: 4 });
  await use('wasm');
  const out = join(root, 'ckpt');
  const args = { data, out, preset: 'tiny', tokens: 0, explicit: { steps: 3, evalInterval: 0 } };
  (await pretrain({ ...args, resume: false }, { shouldStop: (step) => step === 1 })).model.dispose();
  // What a kill between `rename(out, old)` and `rename(tmp, out)` leaves.
  const tag = `${HOST}-${deadPid()}`;
  const { cpSync, renameSync } = await import('node:fs');
  cpSync(out, `${out}.tmp-${tag}`, { recursive: true });
  renameSync(out, `${out}.old-${tag}`);
  const r = await pretrain({ ...args, resume: true });
  r.model.dispose();
  assert.equal(r.state.step, 3);
  assert.deepEqual(readdirSync(root).filter((n) => n.startsWith('ckpt.')), [], 'no leftovers');
});
