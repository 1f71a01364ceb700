/**
 * Reading JSON as Marathon's RAML-generated Play JSON readers do: each reader answers undefined on
 * an error and records Play's code (`error.path.missing`, `error.expected.jsstring`, ...) at Play's
 * path (`/containers(0)/name`). The pod definition's own readers are in `read.ts`.
 */

/** One path's errors, as Marathon's `RestResource.entity` writes them. */
export interface JsonError {
  path: string;
  errors: string[];
}

export type Rec = Record<string, unknown>;
export type Read<T> = (path: string, v: unknown) => T | undefined;

export const isRec = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);

const INT32_MAX = 2 ** 31 - 1;

export interface StringRules {
  pattern?: RegExp;
  minLength?: number;
  maxLength?: number;
}
export interface NumberRules {
  min?: number;
  max?: number;
}

/** Collects errors per path, in the order they are found; each reader answers undefined on error. */
export class Reader {
  private readonly errors = new Map<string, string[]>();

  get failed(): boolean {
    return this.errors.size > 0;
  }

  list(): JsonError[] {
    return [...this.errors].map(([path, errors]) => ({ path, errors }));
  }

  fail(path: string, code: string): undefined {
    const list = this.errors.get(path) ?? [];
    if (!list.includes(code)) list.push(code);
    this.errors.set(path, list);
    return undefined;
  }

  /** A required field: absent is `error.path.missing`; null goes to the reader (a type error). */
  req<T>(o: Rec, key: string, path: string, read: Read<T>): T | undefined {
    const v = o[key];
    if (v === undefined) return this.fail(`${path}/${key}`, 'error.path.missing');
    return read(`${path}/${key}`, v);
  }

  /** An optional field: absent and null are both "not given" (Play's `validateOpt`). */
  opt<T>(o: Rec, key: string, path: string, read: Read<T>): T | undefined {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    return read(`${path}/${key}`, v);
  }

  str(rules: StringRules = {}): Read<string> {
    return (path, v) => {
      if (typeof v !== 'string') return this.fail(path, 'error.expected.jsstring');
      const codes: string[] = [];
      if (rules.pattern && !rules.pattern.test(v)) codes.push('error.pattern');
      if (rules.maxLength !== undefined && v.length > rules.maxLength) codes.push('error.maxLength');
      if (rules.minLength !== undefined && v.length < rules.minLength) codes.push('error.minLength');
      return this.verdict(path, v, codes);
    };
  }

  num(rules: NumberRules = {}, kind: 'double' | 'int' | 'long' = 'double'): Read<number> {
    return (path, v) => {
      if (typeof v !== 'number' || !Number.isFinite(v)) return this.fail(path, 'error.expected.jsnumber');
      if (kind === 'int' && (!Number.isInteger(v) || Math.abs(v) > INT32_MAX)) return this.fail(path, 'error.expected.int');
      if (kind === 'long' && !Number.isSafeInteger(v)) return this.fail(path, 'error.expected.long');
      const codes: string[] = [];
      if (rules.max !== undefined && v > rules.max) codes.push('error.max');
      if (rules.min !== undefined && v < rules.min) codes.push('error.min');
      return this.verdict(path, v, codes);
    };
  }

  /** Every constraint is checked (Play's `keepAnd`), so one value may break several. */
  private verdict<T>(path: string, v: T, codes: string[]): T | undefined {
    for (const code of codes) this.fail(path, code);
    return codes.length ? undefined : v;
  }

  int(rules: NumberRules = {}): Read<number> {
    return this.num(rules, 'int');
  }

  bool(): Read<boolean> {
    return (path, v) => (typeof v === 'boolean' ? v : this.fail(path, 'error.expected.jsboolean'));
  }

  /** Case-insensitive in, canonical out (the generated enum reader lowercases before matching). */
  enumOf<T extends string>(values: readonly T[]): Read<T> {
    return (path, v) => {
      const found = typeof v === 'string' ? values.find((x) => x.toLowerCase() === v.toLowerCase()) : undefined;
      return found ?? this.fail(path, 'error.unknown.enum.literal');
    };
  }

  arr<T>(item: Read<T>, minItems = 0): Read<T[]> {
    return (path, v) => {
      if (!Array.isArray(v)) return this.fail(path, 'error.expected.jsarray');
      const out = v.map((x, i) => item(`${path}(${i})`, x));
      if (v.length < minItems) return this.fail(path, 'error.minLength');
      return out.every((x) => x !== undefined) ? (out as T[]) : undefined;
    };
  }

  map<T>(value: Read<T>, keyPattern?: RegExp): Read<Record<string, T>> {
    return (path, v) => {
      if (!isRec(v)) return this.fail(path, 'error.expected.jsobject');
      const out: Record<string, T> = {};
      let ok = true;
      for (const [k, x] of Object.entries(v)) {
        if (keyPattern && !keyPattern.test(k)) {
          ok = !!this.fail(`${path}/${k}`, 'error.pattern');
          continue;
        }
        const read = value(`${path}/${k}`, x);
        if (read === undefined) ok = false;
        else out[k] = read;
      }
      return ok ? out : undefined;
    };
  }

  obj<T>(read: (o: Rec, path: string) => T | undefined): Read<T> {
    return (path, v) => (isRec(v) ? read(v, path) : this.fail(path, 'error.expected.jsobject'));
  }
}

/** Leaves out undefined members and empty collections (`pragma.omitEmpty`), so JSON equality holds. */
export function compact<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) continue;
    if (Array.isArray(v) && v.length === 0) continue;
    if (isRec(v) && Object.keys(v).length === 0) continue;
    out[k] = v;
  }
  return out as T;
}
