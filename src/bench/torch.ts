/**
 * The PyTorch side of `npm run bench -- --reference torch` and of the parity fixture: finds a
 * python3 that imports torch and drives src/bench/reference_torch.py.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { OMP_DEFAULTS } from '../backend/native/addon.js';

export const REFERENCE_SCRIPT = fileURLToPath(new URL('./reference_torch.py', import.meta.url));

export const TORCH_INSTALL = 'sudo apt-get install python3-torch libopenblas0';

/**
 * PyTorch's environment: the user's (captured when this module is evaluated, before the native
 * addon's loader changes process.env), plus the same thread-waiting defaults the native backend
 * gets where the user set none (OMP_DEFAULTS: OMP_WAIT_POLICY=passive, OPENBLAS_THREAD_TIMEOUT=4).
 * Measured here under load from other processes: Debian's torch with libgomp's default spinning
 * took 400-1650 ms per step of the small preset against 200-280 ms with passive waiting, because
 * its OpenMP workers spin while OpenBLAS's own threads need the cores.
 */
const ORIGINAL_ENV: NodeJS.ProcessEnv = { ...process.env };
export const TORCH_ENV: NodeJS.ProcessEnv = { ...OMP_DEFAULTS, ...ORIGINAL_ENV };

export interface TorchInfo {
  python: string;
  torch: string;
  threads: number;
  blas: string;
  blas_libs: string[];
  fast_blas: boolean;
}

/** Interpreters to try: $PERSONA_PYTHON alone when set, else python3 on PATH, then Debian's /usr/bin/python3 (pyenv and venvs shadow it). */
export function pythonCandidates(): string[] {
  if (process.env.PERSONA_PYTHON) return [process.env.PERSONA_PYTHON];
  return ['python3', '/usr/bin/python3'];
}

/** The first python with a working torch, with what it reports; throws the one-line install hint otherwise. */
export function findTorch(threads: number, candidates = pythonCandidates()): TorchInfo {
  const tried: string[] = [];
  for (const python of candidates) {
    const r = spawnSync(python, [REFERENCE_SCRIPT, 'info', '--threads', String(threads)], { encoding: 'utf8', env: TORCH_ENV, timeout: 120_000 });
    if (r.error) {
      tried.push(`${python}: not found`);
      continue;
    }
    if (r.status !== 0) {
      const why = (r.stderr || '').trim().split('\n').pop() ?? `exit ${r.status}`;
      tried.push(`${python}: ${why.includes('torch') ? 'no torch' : why}`);
      continue;
    }
    try {
      const info = JSON.parse(r.stdout.trim().split('\n').pop()!) as Omit<TorchInfo, 'python'>;
      return { ...info, python };
    } catch {
      tried.push(`${python}: unreadable answer`);
    }
  }
  throw new Error(`PyTorch is not available (${tried.join('; ')}): install it with \`${TORCH_INSTALL}\` or set PERSONA_PYTHON to a python3 that has torch`);
}

/** The warning to print when torch did not load a fast BLAS, or null. */
export function blasWarning(info: TorchInfo): string | null {
  if (info.fast_blas) return null;
  return `warning: PyTorch is using ${info.blas} (${info.blas_libs.join(', ') || 'no BLAS library found in the process'}), not OpenBLAS or MKL, so the reference is many times slower than it should be: \`sudo apt-get install libopenblas0\``;
}

export interface TorchTiming {
  step_ms: number;
  tokens_per_s: number;
  rss_mb: number;
  loss?: number;
  grad_norm?: number;
}

export interface TorchServerOptions {
  python: string;
  config: object;
  streamFile: string;
  initFile?: string;
  batch: number;
  threads: number;
  seed: number;
  lr: number;
  warmup: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  gradClip: number;
  /** Variables set over TORCH_ENV for this server (the bench's --max-isa caps). */
  env?: Record<string, string>;
}

/** reference_torch.py `serve`: one JSON command per line, one JSON answer per line. */
export class TorchServer {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: Interface;
  private readonly pending: Array<(line: string | null) => void> = [];
  private stderr = '';
  private closed = false;

  private constructor(o: TorchServerOptions) {
    const args = [
      REFERENCE_SCRIPT, 'serve', '--config', JSON.stringify(o.config), '--stream', o.streamFile, '--batch', String(o.batch),
      '--threads', String(o.threads), '--seed', String(o.seed), '--lr', String(o.lr), '--warmup', String(o.warmup),
      '--beta1', String(o.beta1), '--beta2', String(o.beta2), '--eps', String(o.eps), '--weight-decay', String(o.weightDecay),
      '--grad-clip', String(o.gradClip),
    ];
    if (o.initFile) args.push('--init', o.initFile);
    this.child = spawn(o.python, args, { env: { ...TORCH_ENV, ...o.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (d: string) => {
      this.stderr = (this.stderr + d).slice(-4000);
    });
    this.lines = createInterface({ input: this.child.stdout });
    this.lines.on('line', (line) => this.pending.shift()?.(line));
    this.child.on('error', (err) => {
      this.stderr += `\n${err.message}`;
    });
    this.child.on('close', () => {
      this.closed = true;
      while (this.pending.length) this.pending.shift()!(null);
    });
  }

  static async start(o: TorchServerOptions): Promise<{ server: TorchServer; info: TorchInfo }> {
    const server = new TorchServer(o);
    const ready = (await server.next()) as Omit<TorchInfo, 'python'>;
    return { server, info: { ...ready, python: o.python } };
  }

  private next(): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(this.failure());
      this.pending.push((line) => {
        if (line === null) return reject(this.failure());
        try {
          const obj = JSON.parse(line) as Record<string, unknown>;
          if (typeof obj.error === 'string') reject(new Error(`torch reference: ${obj.error}`));
          else resolve(obj);
        } catch {
          reject(new Error(`torch reference printed something unexpected: ${line.slice(0, 200)}`));
        }
      });
    });
  }

  private failure(): Error {
    const last = this.stderr.trim().split('\n').filter(Boolean).pop();
    return new Error(`the PyTorch reference stopped${last ? `: ${last}` : ''}`);
  }

  private async request(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    const answer = this.next();
    this.child.stdin.write(`${JSON.stringify(cmd)}\n`);
    return answer;
  }

  /** Time `steps` training steps (mean per step over them). */
  async train(steps: number): Promise<TorchTiming> {
    return (await this.request({ cmd: 'train', steps })) as unknown as TorchTiming;
  }

  /** Time `steps` forward passes under torch.no_grad(). */
  async forward(steps: number): Promise<TorchTiming> {
    return (await this.request({ cmd: 'forward', steps })) as unknown as TorchTiming;
  }

  /** Median GFLOP/s of a 2048x512 @ 512x512 float32 torch.mm. */
  async peak(repeats: number): Promise<number> {
    return (await this.request({ cmd: 'peak', steps: 3, repeats })).gflops as number;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await Promise.race([this.request({ cmd: 'quit' }), new Promise((r) => setTimeout(r, 5000).unref())]);
    } catch {
      // already gone
    }
    if (!this.closed) this.child.kill();
  }
}

/** Run reference_torch.py `parity` (float64 loss, gradients and one AdamW step) on the fixture inputs. */
/** reference_torch.py `trajectory`: a multi-step float64 training run (see src/bench/parity.ts). */
export function runTorchTrajectory(python: string, inputsDir: string, outDir: string): void {
  const r = spawnSync(python, [REFERENCE_SCRIPT, 'trajectory', '--dir', inputsDir, '--out', outDir], { encoding: 'utf8', env: TORCH_ENV, timeout: 600_000 });
  if (r.error) throw new Error(`cannot run ${python}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`the PyTorch trajectory run failed: ${(r.stderr || '').trim().split('\n').pop()}`);
}

export function runTorchParity(python: string, inputsDir: string, outDir: string): void {
  const r = spawnSync(python, [REFERENCE_SCRIPT, 'parity', '--dir', inputsDir, '--out', outDir], { encoding: 'utf8', env: TORCH_ENV, timeout: 600_000 });
  if (r.error) throw new Error(`cannot run ${python}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`the PyTorch parity run failed: ${(r.stderr || '').trim().split('\n').pop()}`);
}
