import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Run one of the project's scripts the way npm does (node + tsx), from the repository root. */
export function runScript(script: string, args: string[], env: Record<string, string> = {}): CliResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', `scripts/${script}.ts`, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, CI: '1', ...env },
    timeout: 600_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * A failed command exits non-zero and ends stderr with exactly one "error: ..." line (informational
 * lines such as the backend it chose may come before it), and no stack trace.
 */
export function isOneLineError(r: CliResult): boolean {
  const lines = r.stderr.trim().split('\n');
  const errors = lines.filter((l) => l.startsWith('error: '));
  return r.status !== 0 && errors.length === 1 && lines[lines.length - 1].startsWith('error: ') && !lines.some((l) => /^\s+at /.test(l));
}
