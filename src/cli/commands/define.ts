/**
 * Commands declared as data, as wrangler does: metadata, options and arguments, and a handler whose
 * option and argument types are inferred from the declaration. `attach` turns one into a commander
 * command.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { BerthClient } from '../client.js';
import { configPath, readConfig, resolveConnection, type CliConfig, type Connection } from '../config.js';
import { FORMATS, Output, UserError, type Format } from '../output.js';

interface BaseOption {
  /** As commander writes them: `-f, --file <path>`. */
  flags: string;
  description: string;
  /** An environment variable read when the flag is absent. */
  env?: string;
  /** Accepted but left out of the help. */
  hidden?: boolean;
}
export interface StringOption extends BaseOption {
  kind: 'string';
  default?: string;
  choices?: readonly string[];
  /** Commander refuses to run without it. */
  required?: boolean;
}
export interface NumberOption extends BaseOption {
  kind: 'number';
  default?: number;
  integer?: boolean;
  required?: boolean;
}
/** `--x` is true; with `negatable`, `--no-x` is false; absent is undefined (the server's default). */
export interface BooleanOption extends BaseOption {
  kind: 'boolean';
  negatable?: boolean;
  /** Help for the `--no-x` form. */
  negatedDescription?: string;
}
/** Repeatable; with `split`, each value may also be comma-separated. */
export interface ListOption extends BaseOption {
  kind: 'list';
  split?: boolean;
}
export type OptionSpec = StringOption | NumberOption | BooleanOption | ListOption;
export type OptionSpecs = Record<string, OptionSpec>;

type ValueOf<S extends OptionSpec> = S extends ListOption
  ? string[]
  : S extends BooleanOption
    ? boolean | undefined
    : S extends NumberOption
      ? S extends { default: number } | { required: true }
        ? number
        : number | undefined
      : S extends { default: string } | { required: true }
        ? string
        : string | undefined;
export type OptionValues<O extends OptionSpecs> = { [K in keyof O]: ValueOf<O[K]> };

export interface ArgSpec {
  name: string;
  description: string;
  required?: boolean;
  /** Takes the rest of the operands, including everything after `--`. */
  variadic?: boolean;
}
type ArgValue<A extends ArgSpec> = A extends { variadic: true } ? string[] : A extends { required: true } ? string : string | undefined;
export type ArgValues<A extends readonly ArgSpec[]> = { [E in A[number] as E['name']]: ArgValue<E> };

/** What every handler gets besides its own arguments. */
export interface Context {
  out: Output;
  /** The client for the configured server; throws a UserError when no API key is configured. */
  client(): Promise<BerthClient>;
  connection(): Promise<Connection>;
  configPath: string;
  /** `--url` and `--api-key` as given on the command line. */
  globals: CliConfig;
}

export interface CommandSpec<O extends OptionSpecs, A extends readonly ArgSpec[]> {
  name: string;
  aliases?: readonly string[];
  description: string;
  /** Shown under the help as `Examples:`. */
  examples?: readonly string[];
  args?: A;
  options?: O;
  /** Returns the exit code, or nothing for 0. */
  handler: (input: { args: ArgValues<A>; opts: OptionValues<O>; ctx: Context }) => Promise<number | void>;
}

/** One run of the CLI: where the handler leaves the exit code for main to set. */
export interface Session {
  exitCode: number;
}

export interface CliCommand {
  name: string;
  attach(parent: Command, session: Session): void;
}

export interface CommandGroup {
  name: string;
  aliases?: readonly string[];
  description: string;
  commands: readonly CliCommand[];
}

export function defineCommand<const O extends OptionSpecs = Record<never, OptionSpec>, const A extends readonly ArgSpec[] = readonly []>(spec: CommandSpec<O, A>): CliCommand {
  return {
    name: spec.name,
    attach(parent, session) {
      const cmd = parent.command(spec.name).description(spec.description);
      for (const alias of spec.aliases ?? []) cmd.alias(alias);
      for (const a of spec.args ?? []) cmd.argument(a.required ? `<${a.name}${a.variadic ? '...' : ''}>` : `[${a.name}${a.variadic ? '...' : ''}]`, a.description);
      const options = Object.entries(spec.options ?? {});
      const attrs = new Map<string, string>();
      for (const [key, o] of options) attrs.set(key, addOption(cmd, o));
      if (spec.examples?.length) cmd.addHelpText('after', `\nExamples:\n${spec.examples.map((e) => `  $ ${e}`).join('\n')}\n`);
      cmd.action(async (...params: unknown[]) => {
        const self = params[params.length - 1] as Command;
        const argv = params.slice(0, (spec.args ?? []).length);
        const args = Object.fromEntries((spec.args ?? []).map((a, i) => [a.name, argv[i] ?? (a.variadic ? [] : undefined)])) as ArgValues<A>;
        const raw = self.opts();
        const opts = Object.fromEntries(options.map(([key, o]) => [key, optionValue(o, raw[attrs.get(key)!], self.getOptionValueSource(attrs.get(key)!))])) as OptionValues<O>;
        const ctx = makeContext(self.optsWithGlobals());
        session.exitCode = (await spec.handler({ args, opts, ctx })) ?? 0;
      });
    },
  };
}

export function defineGroup(group: CommandGroup): CliCommand {
  return {
    name: group.name,
    attach(parent, session) {
      const cmd = parent.command(group.name).description(group.description);
      for (const alias of group.aliases ?? []) cmd.alias(alias);
      for (const c of group.commands) c.attach(cmd, session);
    },
  };
}

function addOption(cmd: Command, o: OptionSpec): string {
  // Commander names the env var of the options it reads from the environment; booleans we read ourselves.
  const description = o.env && o.kind === 'boolean' ? `${o.description} (env: ${o.env})` : o.description;
  const opt = new Option(o.flags, description);
  switch (o.kind) {
    case 'string':
      if (o.choices) opt.choices(o.choices);
      if (o.default !== undefined) opt.default(o.default);
      if (o.required) opt.makeOptionMandatory();
      break;
    case 'number':
      opt.argParser((v: string) => parseNumber(v, o.integer === true));
      if (o.default !== undefined) opt.default(o.default);
      if (o.required) opt.makeOptionMandatory();
      break;
    case 'list':
      opt.argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), ...(o.split ? v.split(',').map((s) => s.trim()).filter(Boolean) : [v])]);
      break;
    case 'boolean':
      break;
  }
  // Strings and numbers go through commander's env support (it runs the parser); booleans are read in optionValue.
  if (o.env && o.kind !== 'boolean') opt.env(o.env);
  if (o.hidden) opt.hideHelp();
  cmd.addOption(opt);
  if (o.kind === 'boolean' && o.negatable) cmd.addOption(new Option(o.flags.replace(/--([\w-]+)$/, '--no-$1'), o.negatedDescription ?? `the opposite of ${o.flags.split(/,\s*/).pop()}`));
  return opt.attributeName();
}

function optionValue(o: OptionSpec, value: unknown, source: string | undefined): unknown {
  if (o.kind === 'list') return value ?? [];
  if (o.kind === 'boolean' && (source === undefined || source === 'default') && o.env && process.env[o.env] !== undefined) return parseBool(o.env, process.env[o.env]!);
  return value;
}

function parseNumber(v: string, integer: boolean): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('expected a number.');
  if (integer && !Number.isInteger(n)) throw new InvalidArgumentError('expected a whole number.');
  return n;
}

function parseBool(name: string, v: string): boolean {
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new UserError(`${name}=${v}: expected true or false`);
}

/** The options every command takes. */
export function addGlobalOptions(program: Command): void {
  program
    .option('--url <url>', 'the Berth server (env BERTH_URL; default: the config file, else http://127.0.0.1:7700)')
    .option('--api-key <key>', 'API key (env BERTH_API_KEY; default: the config file)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(FORMATS).default('table'));
}

function makeContext(globals: { url?: string; apiKey?: string; output?: Format }): Context {
  const path = configPath();
  const flags: CliConfig = { ...(globals.url !== undefined ? { url: globals.url } : {}), ...(globals.apiKey !== undefined ? { apiKey: globals.apiKey } : {}) };
  let connection: Promise<Connection> | undefined;
  const connect = (): Promise<Connection> => {
    connection ??= readConfig(path).then((file) => resolveConnection(flags, process.env, file, path));
    return connection;
  };
  return {
    out: new Output(globals.output ?? 'table'),
    configPath: path,
    globals: flags,
    connection: connect,
    async client() {
      const c = await connect();
      if (!c.apiKey) {
        throw new UserError(
          `no API key for ${c.url}`,
          'Run `berth login --url <url> --api-key <key>`, set BERTH_API_KEY, or pass --api-key. On the server machine the admin key is in <data dir>/admin.key.',
        );
      }
      return new BerthClient({ url: c.url, apiKey: c.apiKey, ...(c.keySource ? { keySource: c.keySource } : {}) });
    },
  };
}
