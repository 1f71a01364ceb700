// ANSI SGR colours (`\x1b[1;31m`) of a log line, as styled runs of text: enough for what programs
// print to logs (16 colours, 256, 24-bit, bold, dim, italic, underline). Other escape sequences
// are dropped. No HTML is built: the runs are rendered as React elements, so a line cannot inject markup.

export interface Run {
  text: string;
  fg?: string;
  bg?: string;
  bold?: boolean;
  dim?: boolean;
  italic?: boolean;
  underline?: boolean;
}

type Style = Omit<Run, 'text'>;

// xterm's default palette.
const BASIC = ['#000000', '#cd3131', '#0dbc79', '#e5e510', '#2472c8', '#bc3fbc', '#11a8cd', '#e5e5e5'];
const BRIGHT = ['#666666', '#f14c4c', '#23d18b', '#f5f543', '#3b8eea', '#d670d6', '#29b8db', '#ffffff'];

function color256(n: number): string | undefined {
  if (n < 8) return BASIC[n];
  if (n < 16) return BRIGHT[n - 8];
  if (n < 232) {
    const v = n - 16;
    const c = (x: number) => (x === 0 ? 0 : 55 + x * 40);
    return `rgb(${c(Math.floor(v / 36))},${c(Math.floor(v / 6) % 6)},${c(v % 6)})`;
  }
  if (n < 256) {
    const g = 8 + (n - 232) * 10;
    return `rgb(${g},${g},${g})`;
  }
  return undefined;
}

/** Applies one SGR sequence's parameters to `s`. */
function apply(s: Style, params: number[]): Style {
  const out: Style = { ...s };
  for (let i = 0; i < params.length; i++) {
    const p = params[i]!;
    if (p === 0) for (const k of Object.keys(out) as (keyof Style)[]) delete out[k];
    else if (p === 1) out.bold = true;
    else if (p === 2) out.dim = true;
    else if (p === 3) out.italic = true;
    else if (p === 4) out.underline = true;
    else if (p === 22) {
      delete out.bold;
      delete out.dim;
    }
    else if (p === 23) delete out.italic;
    else if (p === 24) delete out.underline;
    else if (p >= 30 && p <= 37) out.fg = BASIC[p - 30]!;
    else if (p >= 90 && p <= 97) out.fg = BRIGHT[p - 90]!;
    else if (p >= 40 && p <= 47) out.bg = BASIC[p - 40]!;
    else if (p >= 100 && p <= 107) out.bg = BRIGHT[p - 100]!;
    else if (p === 39) delete out.fg;
    else if (p === 49) delete out.bg;
    else if (p === 38 || p === 48) {
      const which = p === 38 ? 'fg' : 'bg';
      let c: string | undefined;
      if (params[i + 1] === 5) {
        c = color256(params[i + 2] ?? -1);
        i += 2;
      } else if (params[i + 1] === 2) {
        c = `rgb(${params[i + 2] ?? 0},${params[i + 3] ?? 0},${params[i + 4] ?? 0})`;
        i += 4;
      }
      if (c) out[which] = c;
    }
  }
  return out;
}

// CSI sequences (SGR among them), OSC sequences, and lone two-character escapes.
const ESCAPE = /\x1b\[([0-9;:?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]/g;

/** The styled runs of `line`, starting from `style` (a style carried over from earlier lines, or none). */
export function ansiRuns(line: string, style: Style = {}): Run[] {
  if (!line.includes('\x1b')) return [{ text: line, ...style }];
  const runs: Run[] = [];
  let cur = style;
  let last = 0;
  for (const m of line.matchAll(ESCAPE)) {
    if (m.index > last) runs.push({ text: line.slice(last, m.index), ...cur });
    last = m.index + m[0].length;
    if (m[2] === 'm') cur = apply(cur, (m[1] ?? '').split(/[;:]/).map((x) => (x === '' ? 0 : Number(x))));
  }
  if (last < line.length) runs.push({ text: line.slice(last), ...cur });
  return runs;
}

/** The line without escape sequences: what search looks in. */
export function stripAnsi(line: string): string {
  return line.includes('\x1b') ? line.replace(ESCAPE, '') : line;
}
