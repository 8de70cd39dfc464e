/**
 * A real Ctrl-C: `npm run pretrain` / `npm run finetune` in their own process group, SIGINT to the
 * whole group after the first progress line (as a terminal does), then the printed command run as
 * printed, to completion: the weights and optimizer state equal an uninterrupted run's bit for bit.
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

async function interruptAndResume(script: string, flags: string, out: string, reference: string): Promise<string> {
  const whole = await run(`node --import tsx scripts/${script}.ts ${flags} --out ${reference}`);
  assert.equal(whole.code, 0, whole.output);
  const stopped = await run(`npm run ${script} -- ${flags} --out ${out}`, true);
  // npm re-raises the signal after its child exits; a shell reports both as 130.
  assert.ok(stopped.code === 130 || stopped.signal === 'SIGINT', `exit ${stopped.code} ${stopped.signal}: ${stopped.output}`);
  const m = /stopped at step (\d+) of (\d+); checkpoint saved in \S+; continue with: (npm run .*)$/m.exec(stopped.output);
  assert.ok(m, stopped.output);
  assert.ok(Number(m[1]) < steps, 'stopped before the end');
  const resume = m[3];
  for (const flag of ['--data', '--out', '--resume']) assert.ok(resume.includes(flag), `${flag} in ${resume}`);
  const resumed = await run(resume);
  assert.equal(resumed.code, 0, resumed.output);
  for (const f of ['weights.bin', 'optimizer.bin']) same(out, reference, f);
  const state = (dir: string) => {
    const s = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
    delete s.loop.elapsed;
    return s;
  };
  assert.deepEqual(state(out), state(reference), 'same step, tokens and data position');
  return resume;
}

test('Ctrl-C through npm run pretrain saves, prints the command that continues it, and resumes bit for bit', async () => {
  const flags = `--data ${data} --preset tiny --steps ${steps} --batch 4 --eval-interval 0 --checkpoint-interval 1000 --backend ${backend}`;
  const resume = await interruptAndResume('pretrain', flags, join(root, 'pre-stopped'), join(root, 'pre-whole'));
  assert.match(resume, /--preset tiny/);
});

test('Ctrl-C through npm run finetune saves, prints the command that continues it, and resumes bit for bit', async () => {
  const flags = `--data ${data} --from ${base} --condition cheat --steps ${steps} --eval-interval 0 --checkpoint-interval 1000 --backend ${backend}`;
  await interruptAndResume('finetune', flags, join(root, 'ft-stopped'), join(root, 'ft-whole'));
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
