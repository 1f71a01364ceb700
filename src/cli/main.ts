/**
 * The `berth` command. Exit codes: 0 success; 1 an error the user can fix (bad input, a refusal from
 * the server, an unreachable server, a pod that ended in ERROR); 2 a bug in berth; `pod exec` exits
 * with the command's own code.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { BerthError } from '../model/errors.js';
import { addGlobalOptions, type Session } from './commands/define.js';
import { COMMANDS } from './commands/index.js';
import { UserError } from './output.js';

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export function buildProgram(session: Session): Command {
  const program = new Command('berth')
    .description('Berth: pods on your own machines and GPUs')
    .version(version(), '-v, --version')
    .showSuggestionAfterError()
    // Settings made here are copied to every subcommand created below.
    .exitOverride()
    .configureHelp({ sortSubcommands: false, showGlobalOptions: true });
  addGlobalOptions(program);
  for (const c of COMMANDS) c.attach(program, session);
  program.addHelpText('after', '\nStart with `berth server` on a machine with Docker, then `berth pod create --image <image>`.\nDocs: docs/cli.md');
  return program;
}

/** Runs one command line; resolves to the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const session: Session = { exitCode: 0 };
  try {
    await buildProgram(session).parseAsync([...argv], { from: 'user' });
    return session.exitCode;
  } catch (err) {
    return report(err);
  }
}

function report(err: unknown): number {
  // Commander has printed its own message (or the help, or the version).
  if (err instanceof CommanderError) return err.exitCode;
  if (err instanceof UserError) {
    process.stderr.write(`${err.render().join('\n')}\n`);
    return 1;
  }
  // Errors from the server's own code when `berth server` runs here: Docker missing, a bad data dir.
  if (err instanceof BerthError && err.kind !== 'INTERNAL') {
    process.stderr.write([`error: ${err.message}`, ...err.problems.map((p) => `  ${p.path}: ${p.message}`)].join('\n') + '\n');
    return 1;
  }
  const stack = err instanceof Error ? (err.stack ?? err.message) : String(err);
  process.stderr.write(`internal error: this is a bug in berth; please report it with what you ran\n${stack}\n`);
  return 2;
}

// `berth pod logs x | head`: a closed pipe ends the output, it is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

process.exitCode = await main(process.argv.slice(2));
