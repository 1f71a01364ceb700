/**
 * Where the CLI finds its server and key: `--url`/`--api-key`, else BERTH_URL/BERTH_API_KEY, else
 * the config file `$XDG_CONFIG_HOME/berth/config.json` (default `~/.config/berth/config.json`).
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { UserError } from './output.js';

export interface CliConfig {
  url?: string;
  apiKey?: string;
}

/** @default URL when nothing names one: a server on this machine. */
export const DEFAULT_URL = 'http://127.0.0.1:7700';

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith('/') ? env.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(base, 'berth', 'config.json');
}

/** The saved config, or undefined when there is no file. */
export async function readConfig(path: string): Promise<CliConfig | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UserError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UserError(`${path} is not valid JSON (${(err as Error).message}); fix it or run \`berth login\` again`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UserError(`${path} must hold a JSON object like {"url": "...", "apiKey": "..."}`);
  const { url, apiKey } = parsed as Record<string, unknown>;
  return { ...(typeof url === 'string' ? { url } : {}), ...(typeof apiKey === 'string' ? { apiKey } : {}) };
}

/**
 * Writes the config whole or not at all: a temp file in the same directory, then rename. Mode 0600
 * since it holds an API key.
 */
export async function writeConfig(path: string, config: CliConfig): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    await chmod(tmp, 0o600);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export interface Connection {
  url: string;
  apiKey: string | undefined;
  /** Where the key came from, to name it when the server refuses it. */
  keySource: string | undefined;
}

/** Flags win over the environment, which wins over the file. */
export function resolveConnection(flags: CliConfig, env: NodeJS.ProcessEnv, file: CliConfig | undefined, path: string): Connection {
  const url = flags.url ?? (env.BERTH_URL || undefined) ?? file?.url ?? DEFAULT_URL;
  const [apiKey, keySource] =
    flags.apiKey !== undefined ? [flags.apiKey, '--api-key'] : env.BERTH_API_KEY ? [env.BERTH_API_KEY, 'BERTH_API_KEY'] : file?.apiKey ? [file.apiKey, path] : [undefined, undefined];
  return { url, apiKey, keySource };
}
