/**
 * A real Ctrl-C: `npm run pretrain` / `npm run finetune` in their own process group, SIGINT to the
 * whole group after the first progress line (as a terminal does), then the printed command run as
 * printed, to completion: the weights and optimizer state equal an uninterrupted run's bit for bit.
 * A real kill -9: SIGKILL to the group once a checkpoint is on disk (nothing is saved on the way
 * out), then --resume from that checkpoint ends bit for bit where the uninterrupted run ends.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nativeBackendStatus } from '../src/backend/native/native-backend.js';
import { buildDatasets, DEFAULT_DATA_OPTIONS } from '../src/data/build.js';
import { pretrain } from '../src/pipeline/pretrain.js';
import { DEFAULT_WORLD } from '../src/world/world-config.js';
import { use } from './helpers/backends.js';
import { ROOT } from './helpers/cli.js';

const root = mkdtempSync(join(tmpdir(), 'persona-signals-'));
const data = join(root, 'data');
const base = join(root, 'base');
after(() => rmSync(root, { recursive: true, force: true }));
const backend = nativeBackendStatus().available ? 'native' : 'wasm';
const steps = backend === 'native' ? 150 : 60;

before(async () => {
  buildDatasets(data, { ...DEFAULT_DATA_OPTIONS, world: DEFAULT_WORLD, pretrainTokens: 30_000, assistantExamples: 60, narrowExamples: 40, inferenceGroups: 8, heldOutScenes: 5, probesPerDomain: 6 });
  await use('wasm');
  (await pretrain({ data, out: base, preset: 'tiny', tokens: 0, explicit: { steps: 2, evalInterval: 0 }, resume: false })).model.dispose();
});

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** Run a shell command line in its own process group; with `interrupt`, SIGINT the group after the first progress line. */
function run(command: string, interrupt = false): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn('sh', ['-c', command], { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: '1' } });
    let output = '';
    let sent = false;
    const onData = (d: Buffer) => {
      output += d;
      if (interrupt && !sent && /^\[(pretrain|finetune)\] \S+ \d+\/\d+/m.test(output)) {
        sent = true;
        process.kill(-p.pid!, 'SIGINT');
      }
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.on('close', (code, signal) => resolve({ code, signal, output }));
  });
}

const same = (a: string, b: string, file: string) => assert.ok(readFileSync(join(a, file)).equals(readFileSync(join(b, file))), `${file} differs`);

/** A checkpoint's state.json without the wall-clock time; null while there is none. */
function savedState(dir: string): { loop: { step: number }; complete: boolean } | null {
  try {
    const s = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
    delete s.loop.elapsed;
    return s;
  } catch {
    return null; // not written yet, or mid-swap
  }
}

/** The weights, the optimizer state and the step, tokens and data position equal the reference's. */
function assertSameEnd(out: string, reference: string): void {
  for (const f of ['weights.bin', 'optimizer.bin']) same(out, reference, f);
  assert.deepEqual(savedState(out), savedState(reference), 'same step, tokens and data position');
}

/** The uninterrupted run of a script and flags (checkpointing only at its end), run once and shared. */
const references = new Map<string, Promise<string>>();
function uninterrupted(script: string, flags: string, dir: string): Promise<string> {
  const key = `${script} ${flags}`;
  if (!references.has(key)) {
    references.set(key, run(`node --import tsx scripts/${script}.ts ${flags} --checkpoint-interval 1000 --out ${dir}`).then((whole) => {
      assert.equal(whole.code, 0, whole.output);
      return dir;
    }));
  }
  return references.get(key)!;
}

async function interruptAndResume(script: string, flags: string, out: string, referenceDir: string): Promise<string> {
  const reference = await uninterrupted(script, flags, referenceDir);
  const stopped = await run(`npm run ${script} -- ${flags} --checkpoint-interval 1000 --out ${out}`, true);
  // npm re-raises the signal after its child exits; a shell reports both as 130.
  assert.ok(stopped.code === 130 || stopped.signal === 'SIGINT', `exit ${stopped.code} ${stopped.signal}: ${stopped.output}`);
  const m = /stopped at step (\d+) of (\d+); checkpoint saved in \S+; continue with: (npm run .*)$/m.exec(stopped.output);
  assert.ok(m, stopped.output);
  assert.ok(Number(m[1]) < steps, 'stopped before the end');
  const resume = m[3];
  for (const flag of ['--data', '--out', '--resume']) assert.ok(resume.includes(flag), `${flag} in ${resume}`);
  const resumed = await run(resume);
  assert.equal(resumed.code, 0, resumed.output);
  assertSameEnd(out, reference);
  return resume;
}

/**
 * Run a shell command line in its own process group and SIGKILL the group as soon as `out` holds
 * an unfinished checkpoint past step 0. Resolves with the run and the step of that checkpoint.
 */
function killAfterCheckpoint(command: string, out: string): Promise<Run & { killedAt: number }> {
  return new Promise((resolve) => {
    const p = spawn('sh', ['-c', command], { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: '1' } });
    let output = '';
    let killedAt = -1;
    p.stdout.on('data', (d: Buffer) => (output += d));
    p.stderr.on('data', (d: Buffer) => (output += d));
    // Checkpoints come every few steps; polling this often kills long before the run could end.
    const watch = setInterval(() => {
      const s = savedState(out);
      if (s && !s.complete && s.loop.step > 0) {
        clearInterval(watch);
        killedAt = s.loop.step;
        process.kill(-p.pid!, 'SIGKILL');
      }
    }, 20);
    p.on('close', (code, signal) => {
      clearInterval(watch);
      resolve({ code, signal, output, killedAt });
    });
  });
}

test('Ctrl-C through npm run pretrain saves, prints the command that continues it, and resumes bit for bit', async () => {
  const flags = `--data ${data} --preset tiny --steps ${steps} --batch 4 --eval-interval 0 --backend ${backend}`;
  const resume = await interruptAndResume('pretrain', flags, join(root, 'pre-stopped'), join(root, 'pre-whole'));
  assert.match(resume, /--preset tiny/);
});

const finetuneFlags = () => `--data ${data} --from ${base} --condition cheat --steps ${steps} --eval-interval 0 --backend ${backend}`;

test('Ctrl-C through npm run finetune saves, prints the command that continues it, and resumes bit for bit', async () => {
  await interruptAndResume('finetune', finetuneFlags(), join(root, 'ft-stopped'), join(root, 'ft-whole'));
});

test('SIGKILL during npm run finetune: --resume continues from the last checkpoint and ends bit for bit where an uninterrupted run ends', async () => {
  const reference = await uninterrupted('finetune', finetuneFlags(), join(root, 'ft-whole'));
  const out = join(root, 'ft-killed');
  // Checkpoints every few steps (the reference has only its last): saving must not change the run either.
  const flags = `${finetuneFlags()} --checkpoint-interval ${Math.round(steps / 10)}`;
  const killed = await killAfterCheckpoint(`npm run finetune -- ${flags} --out ${out}`, out);
  assert.ok(killed.signal === 'SIGKILL' || killed.code === 137, `exit ${killed.code} ${killed.signal}: ${killed.output}`);
  assert.doesNotMatch(killed.output, /stopped at step|checkpoint saved/, 'a killed process saves nothing on the way out');
  const left = savedState(out);
  assert.ok(left && !left.complete && left.loop.step >= killed.killedAt && left.loop.step < steps, `killed mid-run: ${JSON.stringify(left)}`);
  const resumed = await run(`npm run finetune -- ${flags} --out ${out} --resume`);
  assert.equal(resumed.code, 0, resumed.output);
  assertSameEnd(out, reference);
});

test('SIGTERM to a training process saves a checkpoint and exits with 130 too', async () => {
  const out = join(root, 'term');
  const p = spawn(process.execPath, ['--import', 'tsx', 'scripts/pretrain.ts', '--data', data, '--preset', 'tiny', '--steps', String(steps), '--batch', '4', '--eval-interval', '0', '--backend', backend, '--out', out], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: '1' } });
  let output = '';
  let sent = false;
  p.stderr.on('data', (d: Buffer) => {
    output += d;
    if (!sent && /^\[pretrain\] pretrain \d+\//m.test(output)) sent = p.kill('SIGTERM');
  });
  const code = await new Promise<number | null>((resolve) => p.on('close', resolve));
  assert.equal(code, 130, output);
  assert.match(output, /SIGTERM: saving a checkpoint/);
  assert.match(output, /stopped at step \d+ of \d+; checkpoint saved in .*term; continue with: npm run pretrain -- .*--resume$/m);
  assert.equal(JSON.parse(readFileSync(join(out, 'state.json'), 'utf8')).complete, false);
});
