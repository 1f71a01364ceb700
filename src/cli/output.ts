/**
 * How the CLI talks to people and scripts: tables and detail blocks for a terminal, the server's JSON
 * for `-o json`, progress and errors on stderr so stdout stays clean for pipes.
 */

/**
 * An error the user can fix (a bad flag, a missing key, a 4xx from the server): shown as
 * `error: <message>` without a stack, exit code 1. Anything else that escapes is a bug.
 */
export class UserError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'UserError';
  }

  /** The lines printed to stderr. */
  render(): string[] {
    return [`error: ${this.message}`, ...(this.hint ? [this.hint] : [])];
  }
}

export const FORMATS = ['table', 'json'] as const;
export type Format = (typeof FORMATS)[number];

export interface Column<T> {
  header: string;
  value: (row: T) => string;
}

/** Left-aligned columns two spaces apart; the last column is not padded. */
export function table<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const cells = [columns.map((c) => c.header), ...rows.map((r) => columns.map((c) => oneLine(c.value(r))))];
  const widths = columns.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  return cells.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

/** `Label:  value` lines with the values aligned; entries whose value is undefined are left out. */
export function details(entries: readonly (readonly [string, string | undefined])[]): string {
  const shown = entries.filter((e): e is readonly [string, string] => e[1] !== undefined);
  const width = Math.max(0, ...shown.map(([k]) => k.length + 1));
  return shown.map(([k, v]) => `${`${k}:`.padEnd(width)}  ${v}`).join('\n') + '\n';
}

const oneLine = (s: string): string => s.replace(/\s*\n\s*/g, ' ');

/** `42s`, `5m`, `3h`, `12d` since an ISO time; `-` when there is none. */
export function age(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (!Number.isFinite(s)) return '-';
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** Bytes in the largest unit that keeps the number at least 1: `27.4 MB`. */
export function bytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export interface Streams {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

/** Where a command's results (stdout) and its progress and notes (stderr) go. */
export class Output {
  constructor(
    readonly format: Format,
    readonly streams: Streams = { stdout: process.stdout, stderr: process.stderr },
  ) {}

  get json(): boolean {
    return this.format === 'json';
  }

  /** Results: the server's JSON with `-o json`, else the text `forPeople` renders. */
  result(value: unknown, forPeople: () => string): void {
    this.streams.stdout.write(this.json ? `${JSON.stringify(value, null, 2)}\n` : forPeople());
  }

  stdout(text: string): void {
    this.streams.stdout.write(text);
  }

  /** A note for the person at the terminal; never mixed into the results. */
  note(text: string): void {
    this.streams.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
  }

  get stderrIsTty(): boolean {
    return this.streams.stderr.isTTY === true;
  }
}
