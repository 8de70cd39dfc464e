/**
 * Shared CLI plumbing: every command turns an error into one line on stderr naming the problem
 * and the fix, and a non-zero exit; a stack trace only with DEBUG=1.
 */
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';

export class UserError extends Error {
  override name = 'UserError';
}

export async function runCli(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (err) {
    const e = err as Error;
    const message = (e?.message ?? String(err)).split('\n')[0];
    process.stderr.write(`error: ${message}\n`);
    if (process.env.DEBUG) process.stderr.write(`${e?.stack ?? ''}\n`);
    process.exitCode = 1;
  }
}

/** A line broken at spaces into lines of at most `width` characters (a longer word keeps a line of its own). */
export function wrapWords(line: string, width: number): string[] {
  const out: string[] = [];
  let current = '';
  for (const word of line.split(' ')) {
    if (current && current.length + 1 + word.length > width) {
      out.push(current);
      current = word;
    } else current = current ? `${current} ${word}` : word;
  }
  out.push(current);
  return out;
}

/** A yargs parser with the project's conventions: strict flags, --help, one-line errors. */
export function cli(script: string, usage: string): Argv {
  // One usage line per line of text, each broken at spaces to the help's width: yargs breaks a
  // line too long for it mid-word ("ag" / "gregate").
  const width = Math.min(110, process.stdout.columns || 100);
  const y = yargs(hideBin(process.argv)).scriptName(script);
  for (const line of usage.split('\n')) for (const part of wrapWords(line, width)) y.usage(part);
  return y
    .strict()
    .parserConfiguration({ 'camel-case-expansion': true })
    .help()
    .alias('h', 'help')
    .wrap(width)
    .check((argv, options) => {
      // A repeated flag would arrive as an array where one value is expected.
      const arrays = new Set<string>((options as { array?: string[] }).array ?? []);
      for (const [k, v] of Object.entries(argv)) {
        if (k === '_' || /[A-Z]/.test(k) || !Array.isArray(v) || arrays.has(k)) continue;
        throw new UserError(`--${k} is given ${v.length} times (${v.join(', ')}); give it once`);
      }
      return true;
    }, true)
    .fail((msg, err) => {
      // yargs' own messages can span lines ("Invalid values:\n  Argument: ..."): keep them on one.
      throw new UserError(err ? err.message : `${String(msg).replace(/\s*\n\s*/g, ' ')} (see --help)`);
    });
}
