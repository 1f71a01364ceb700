/** Reading what the user hands the CLI besides flags: JSON files, stdin, secrets, KEY=VALUE pairs. */
import { readFile } from 'node:fs/promises';
import { UserError } from '../output.js';

export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** A file's text, or stdin's for `-`. */
export async function readText(path: string): Promise<string> {
  if (path === '-') return readStdin();
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}

/** A JSON object from a file (or `-` for stdin). */
export async function readJsonObject(path: string): Promise<Record<string, unknown>> {
  const text = await readText(path);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UserError(`${path === '-' ? 'stdin' : path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UserError(`${path === '-' ? 'stdin' : path} must hold a JSON object`);
  return parsed as Record<string, unknown>;
}

/** `--env A=1 --env B=x=y` → `{A: '1', B: 'x=y'}`. */
export function keyValues(flag: string, items: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UserError(`${flag} ${item}: expected KEY=VALUE`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/**
 * A secret typed at the terminal without echo, or the whole of stdin when it is not a terminal.
 * Secrets never come from flags, which any user can read in `ps`.
 */
export async function readSecret(prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) return (await readStdin()).replace(/\r?\n$/, '');
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  try {
    return await new Promise<string>((resolve, reject) => {
      let typed = '';
      const onData = (chunk: string): void => {
        for (const ch of chunk) {
          if (ch === '\r' || ch === '\n' || ch === '\u0004') {
            stdin.off('data', onData);
            resolve(typed);
            return;
          }
          if (ch === '\u0003') {
            stdin.off('data', onData);
            reject(new UserError('cancelled'));
            return;
          }
          typed = ch === '\u007f' || ch === '\b' ? typed.slice(0, -1) : typed + ch;
        }
      };
      stdin.on('data', onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}

/**
 * `--since 10m` → Unix seconds of ten minutes ago; anything else (Unix seconds, an RFC 3339 time)
 * goes to the server as written.
 */
export function sinceValue(since: string, now = Date.now()): string {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)$/.exec(since.trim());
  if (!m) return since;
  const seconds = Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as 's' | 'm' | 'h' | 'd'];
  return String(Math.floor(now / 1000 - seconds));
}
