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

/** A yargs parser with the project's conventions: strict flags, --help, one-line errors. */
export function cli(script: string, usage: string): Argv {
  return yargs(hideBin(process.argv))
    .scriptName(script)
    .usage(usage)
    .strict()
    .parserConfiguration({ 'camel-case-expansion': true })
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      throw new UserError(err ? err.message : `${msg} (see --help)`);
    });
}
