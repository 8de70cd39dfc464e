/**
 * Runs many command lines of the project's scripts in this one process, each as a fresh instance
 * of the script module (a query string makes node load it anew) with its own process.argv, and
 * prints one JSON array of { status, stdout, stderr }: what spawning each would give, without
 * paying node, tsx and tfjs start-up once per case. Usage: node --import tsx cli-cases.ts <cases.json>
 * where cases.json is an array of [script, args].
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { ROOT } from './cli.js';

const cases = JSON.parse(readFileSync(process.argv[2], 'utf8')) as Array<[string, string[]]>;
const results: Array<{ status: number; stdout: string; stderr: string }> = [];
const out = process.stdout.write.bind(process.stdout);
const err = process.stderr.write.bind(process.stderr);
const node = process.argv[0];
for (const [i, [script, args]] of cases.entries()) {
  let stdout = '';
  let stderr = '';
  process.stdout.write = ((chunk: string | Uint8Array) => ((stdout += String(chunk)), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => ((stderr += String(chunk)), true)) as typeof process.stderr.write;
  process.argv = [node, `${ROOT}scripts/${script}.ts`, ...args];
  process.exitCode = 0;
  try {
    await import(`${pathToFileURL(`${ROOT}scripts/${script}.ts`).href}?case=${i}`);
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
  results.push({ status: Number(process.exitCode ?? 0), stdout, stderr });
}
process.exitCode = 0;
out(`${JSON.stringify(results)}\n`);
