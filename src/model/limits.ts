/**
 * What a request may hold, checked at the edge before anything reads it, so that bad input is a 4xx
 * and never a store or runtime failure (issue 15: NUL bytes PostgreSQL cannot store, keys longer
 * than a btree index row, numbers no column holds, JSON deep enough to overflow the stack, exec
 * arguments that wedge the container runtime). docs/api.md ("Limits") lists them for users.
 */
import { invalid, type Problem } from './errors.js';

export const LIMITS = {
  /** A request body, in bytes. */
  bodyBytes: 2 ** 20,
  /** Nesting of arrays and objects in a JSON body. */
  jsonDepth: 32,
  /** Characters of any one string (or object key) in a body or query. */
  stringChars: 64 * 1024,
  /**
   * Characters of an identifier-like string (a field named `id`, `name`, `owner` or ending in `Id`,
   * and any path parameter): 512 characters are at most 2 KiB of UTF-8, under PostgreSQL's btree
   * row limit (~2.7 KB) for the indexed columns they land in.
   */
  identifierChars: 512,
  /** Magnitude of any number: what a 32-bit integer column holds. */
  numberMagnitude: 2 ** 31 - 1,
  /**
   * Bytes of one exec argument. Docker 20.10 (containerd/runc) hangs an exec for good, and the pod
   * with it, on one argument over about 64 KiB (issue 15: 70 KiB and more did, 50 KiB did not);
   * 48 KiB in one argument and 60,000 bytes over two ran on the test machine. This is half of that.
   */
  execArgBytes: 32 * 1024,
  /** Bytes of an exec's argv and env together (each string plus its NUL). */
  execTotalBytes: 48 * 1024,
  /** Arguments or env entries of one exec. */
  execItems: 4096,
  /** Bytes of stdout (and of stderr) an exec that answers with its output keeps; the rest is dropped. */
  execOutputBytes: 4 * 2 ** 20,
} as const;

const IDENTIFIER_KEY = /^(id|name|owner|.*Id)$/;

/**
 * The first thing in a parsed value that no store or runtime can take: a NUL byte, a string or key
 * too long, a number that is not finite or too large, nesting too deep. Iterative, so a deep value
 * cannot overflow the stack here. `path` is where the value sits (`query:`, or '' for a body).
 */
export function inputProblem(value: unknown, prefix = ''): Problem | undefined {
  const stack: { v: unknown; path: string; depth: number; key: string }[] = [{ v: value, path: '', depth: 0, key: '' }];
  while (stack.length > 0) {
    const { v, path, depth, key } = stack.pop()!;
    const at = `${prefix}${path || '/'}`;
    if (typeof v === 'string') {
      const problem = stringProblem(v, IDENTIFIER_KEY.test(key) ? LIMITS.identifierChars : LIMITS.stringChars);
      if (problem) return { path: at, message: problem };
    } else if (typeof v === 'number') {
      if (!Number.isFinite(v)) return { path: at, message: 'must be a finite number' };
      if (Math.abs(v) > LIMITS.numberMagnitude) return { path: at, message: `must be at most ${LIMITS.numberMagnitude} in magnitude` };
    } else if (typeof v === 'object' && v !== null) {
      if (depth >= LIMITS.jsonDepth) return { path: at, message: `nests deeper than ${LIMITS.jsonDepth} levels` };
      if (Array.isArray(v)) {
        for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], path: `${path}(${i})`, depth: depth + 1, key });
      } else {
        for (const [k, x] of Object.entries(v)) {
          const problem = stringProblem(k, LIMITS.identifierChars);
          if (problem) return { path: `${prefix}${path}/${k.slice(0, 64).replaceAll('\u0000', '\\0')}`, message: `the key ${problem}` };
          stack.push({ v: x, path: `${path}/${k}`, depth: depth + 1, key: k });
        }
      }
    }
  }
  return undefined;
}

function stringProblem(s: string, max: number): string | undefined {
  if (s.length > max) return `is longer than ${max} characters`;
  if (s.includes('\u0000')) return 'holds a NUL byte';
  return undefined;
}

/** Throws VALIDATION when `inputProblem` finds something. */
export function checkInput(value: unknown, prefix = ''): void {
  const problem = inputProblem(value, prefix);
  if (problem) throw invalid([problem]);
}

/** The deepest nesting of a JSON value, counted without recursion; stops counting past `limit`. */
export function jsonDepthOver(value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth >= limit) return true;
    for (const x of Array.isArray(v) ? v : Object.values(v)) if (typeof x === 'object' && x !== null) stack.push([x, depth + 1]);
  }
  return false;
}

/** JSON.parse with the depth limit: a body nested deeper is refused before any code walks it. */
export function parseJsonBounded(text: string): unknown {
  const value: unknown = JSON.parse(text);
  if (jsonDepthOver(value, LIMITS.jsonDepth)) throw invalid([{ path: '/', message: `nests deeper than ${LIMITS.jsonDepth} levels` }]);
  return value;
}

/**
 * Problems with an exec's argv and env (`NAME=value` strings) against the runtime's limits, with
 * `path` naming the field they came in (`/command`, `/healthCheck/argv`).
 */
export function execProblems(argv: readonly string[], env: readonly string[] = [], path = '/command'): Problem[] {
  const problems: Problem[] = [];
  if (argv.length + env.length > LIMITS.execItems) problems.push({ path, message: `has more than ${LIMITS.execItems} arguments and variables` });
  let total = 0;
  for (const [list, where] of [
    [argv, path],
    [env, `${path}:env`],
  ] as const) {
    list.forEach((s, i) => {
      const bytes = Buffer.byteLength(s, 'utf8');
      total += bytes + 1;
      if (bytes > LIMITS.execArgBytes) problems.push({ path: `${where}(${i})`, message: `is ${bytes} bytes; one exec argument may have at most ${LIMITS.execArgBytes}` });
      if (s.includes('\u0000')) problems.push({ path: `${where}(${i})`, message: 'holds a NUL byte' });
    });
  }
  if (total > LIMITS.execTotalBytes) problems.push({ path, message: `is ${total} bytes with its environment; an exec may have at most ${LIMITS.execTotalBytes}` });
  return problems;
}

/** Throws VALIDATION when `execProblems` finds something. */
export function checkExec(argv: readonly string[], env: readonly string[] = [], path = '/command'): void {
  const problems = execProblems(argv, env, path);
  if (problems.length > 0) throw invalid(problems);
}
