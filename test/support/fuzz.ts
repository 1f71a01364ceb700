/**
 * Malformed requests generated from the OpenAPI document the server serves (and a list of the
 * RunPod and Marathon routes it hides), from a seeded generator so a failure can be replayed.
 */

/** mulberry32: small, fast, and the same sequence for the same seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Rand = () => number;
export const pick = <T>(r: Rand, list: readonly T[]): T => list[Math.floor(r() * list.length)]!;

/** Stand-ins in a JSON value for what JSON.stringify cannot write; `bodyText` puts them in. */
const RAW: Record<string, () => string> = {
  __RAW_1E309__: () => '1e309',
  __RAW_NEG_1E309__: () => '-1e309',
  __RAW_BIG_INT__: () => '99999999999999999999',
  __RAW_DEEP__: () => '['.repeat(10_000) + ']'.repeat(10_000),
  __RAW_DEEP_OBJ__: () => '{"a":'.repeat(5_000) + '1' + '}'.repeat(5_000),
};

const BIG = 'x'.repeat(256 * 1024);

/** Values that have broken a server somewhere: wrong types, numbers no column holds, NUL bytes, huge strings, deep JSON. */
export const BAD_VALUES: readonly unknown[] = [
  null,
  true,
  -1,
  0,
  1.5,
  1e308,
  -1e308,
  2 ** 53 + 1,
  2 ** 31,
  '__RAW_1E309__',
  '__RAW_NEG_1E309__',
  '__RAW_BIG_INT__',
  '__RAW_DEEP__',
  '__RAW_DEEP_OBJ__',
  'Infinity',
  'NaN',
  '1e309',
  '-0',
  '',
  '\u0000',
  'a\u0000b',
  BIG,
  `${BIG}\u0000`,
  '../../../../etc/passwd',
  '💥\ud800',
  {},
  [],
  [[[[[[]]]]]],
  { __proto__: { admin: true } },
  { constructor: { prototype: { x: 1 } } },
  ['\u0000'],
  [BIG],
  Array.from({ length: 3000 }, (_, i) => i),
];

/** Query and path values: as the URL carries them (already encoded). */
export const BAD_QUERY: readonly string[] = ['1e309', '-1e309', '99999999999999999999', 'Infinity', 'NaN', '-1', '0', '1.5', '%00', 'a%00b', '', 'true', '%FF%FE', 'x'.repeat(4000), '%F0%9F%92%A5', '[]', '{}'];
export const BAD_IDS: readonly string[] = ['%00', 'a%00b', 'x'.repeat(300), 'x'.repeat(4000), 'AAAAAAAAAAAAAA', '00000000000000', '..', '%2E%2E%2F', '%FF', '-1', '1e309', 'aaaaaaaaaaaaaa%00'];

/** A JSON Schema, as much of it as the generator reads. */
export interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  enum?: unknown[];
  const?: unknown;
  minimum?: number;
  additionalProperties?: boolean | Schema;
  required?: string[];
}

/** A plausible value of the schema: the base a mutation breaks in one place. */
export function sample(r: Rand, s: Schema | undefined, depth = 0): unknown {
  if (!s || depth > 6) return 'x';
  const alt = s.anyOf ?? s.oneOf;
  if (alt?.length) return sample(r, pick(r, alt), depth + 1);
  if (s.const !== undefined) return s.const;
  if (s.enum?.length) return pick(r, s.enum);
  const type = Array.isArray(s.type) ? pick(r, s.type) : s.type;
  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(s.properties ?? {})) if (s.required?.includes(k) || r() < 0.4) out[k] = sample(r, v, depth + 1);
      if (typeof s.additionalProperties === 'object' && r() < 0.5) out.k = sample(r, s.additionalProperties, depth + 1);
      return out;
    }
    case 'array':
      return Array.from({ length: Math.floor(r() * 3) }, () => sample(r, s.items, depth + 1));
    case 'integer':
      return Math.max(s.minimum ?? 0, Math.floor(r() * 4));
    case 'number':
      return Math.max(s.minimum ?? 0, r() * 4);
    case 'boolean':
      return r() < 0.5;
    case 'null':
      return null;
    default:
      return pick(r, ['x', 'busybox', '/data', 'a-b', '8080/http']);
  }
}

/** The value with one to three places replaced by bad values (or wrong shapes). */
export function mutate(r: Rand, value: unknown): unknown {
  let out = value;
  for (let n = 1 + Math.floor(r() * 3); n > 0; n--) out = mutateOnce(r, out);
  return out;
}

function mutateOnce(r: Rand, value: unknown): unknown {
  if (r() < 0.1) return pick(r, BAD_VALUES);
  if (Array.isArray(value)) {
    if (value.length === 0 || r() < 0.2) return [...value, pick(r, BAD_VALUES)];
    const i = Math.floor(r() * value.length);
    return value.map((v, j) => (j === i ? mutateOnce(r, v) : v));
  }
  if (typeof value === 'object' && value !== null) {
    const keys = Object.keys(value);
    if (keys.length === 0 || r() < 0.2) return { ...value, [pick(r, [...keys, 'extra', 'a\u0000b', 'x'.repeat(600)])]: pick(r, BAD_VALUES) };
    const k = pick(r, keys);
    return { ...value, [k]: mutateOnce(r, (value as Record<string, unknown>)[k]) };
  }
  return pick(r, BAD_VALUES);
}

/** The body as sent: JSON with the raw stand-ins written in. */
export function bodyText(value: unknown): string {
  let text = JSON.stringify(value);
  for (const [k, raw] of Object.entries(RAW)) if (text.includes(k)) text = text.replaceAll(`"${k}"`, raw());
  return text;
}

/** The bad values a targeted request puts in one place at a time. */
export const CORE_BAD: readonly unknown[] = ['__RAW_1E309__', '__RAW_BIG_INT__', 1e308, -1, 1.5, 'Infinity', 'a\u0000b', BIG, '__RAW_DEEP__', {}, [], null, true, '{}'];
/** The bad query values a targeted request sends for one parameter at a time. */
export const CORE_BAD_QUERY: readonly string[] = ['1e309', '99999999999999999999', 'Infinity', 'NaN', '-1', '1.5', 'a%00b', 'x'.repeat(4000)];

/** A value of the schema with every optional field there: the places a targeted request breaks. */
export function fullSample(r: Rand, s: Schema | undefined, depth = 0): unknown {
  if (!s || depth > 4) return sample(r, s, depth);
  const alt = s.anyOf ?? s.oneOf;
  if (alt?.length) return fullSample(r, alt.find((a) => a.type === 'object' || a.type === 'array') ?? alt[0], depth + 1);
  if (s.type === 'object' && s.properties) return Object.fromEntries(Object.entries(s.properties).map(([k, v]) => [k, fullSample(r, v, depth + 1)]));
  if (s.type === 'array' && s.items) return [fullSample(r, s.items, depth + 1)];
  return sample(r, s, depth);
}

/** Every path into a value (object keys and array indexes), to a depth. */
export function pathsOf(value: unknown, depth = 4, at: (string | number)[] = []): (string | number)[][] {
  if (depth === 0 || typeof value !== 'object' || value === null) return [];
  const out: (string | number)[][] = [];
  for (const [k, v] of Array.isArray(value) ? value.map((x, i) => [i, x] as const) : Object.entries(value)) {
    out.push([...at, k], ...pathsOf(v, depth - 1, [...at, k]));
  }
  return out;
}

/** A copy of the value with `bad` at `path`. */
export function setAt(value: unknown, path: readonly (string | number)[], bad: unknown): unknown {
  if (path.length === 0) return bad;
  const [k, ...rest] = path;
  if (Array.isArray(value)) return value.map((x, i) => (i === k ? setAt(x, rest, bad) : x));
  const o = value as Record<string, unknown>;
  return { ...o, [k!]: setAt(o[k!], rest, bad) };
}
