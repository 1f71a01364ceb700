// A readable diff of two JSON values: one row per leaf that changed, named by its path
// (`/containers/0/env/PORT`), with the value before and after. Arrays are compared by index, which
// is how spec fields read (containers, ports, volumes in order).

export interface DiffRow {
  path: string;
  kind: 'added' | 'removed' | 'changed';
  before?: unknown;
  after?: unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function escape(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

export function jsonDiff(before: unknown, after: unknown, path = ''): DiffRow[] {
  if (Array.isArray(before) && Array.isArray(after)) {
    const rows: DiffRow[] = [];
    for (let i = 0; i < Math.max(before.length, after.length); i++) {
      if (i >= before.length) rows.push({ path: `${path}/${i}`, kind: 'added', after: after[i] });
      else if (i >= after.length) rows.push({ path: `${path}/${i}`, kind: 'removed', before: before[i] });
      else rows.push(...jsonDiff(before[i], after[i], `${path}/${i}`));
    }
    return rows;
  }
  if (isObject(before) && isObject(after)) {
    const rows: DiffRow[] = [];
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    for (const k of keys) {
      const p = `${path}/${escape(k)}`;
      if (!(k in before)) rows.push({ path: p, kind: 'added', after: after[k] });
      else if (!(k in after)) rows.push({ path: p, kind: 'removed', before: before[k] });
      else rows.push(...jsonDiff(before[k], after[k], p));
    }
    return rows;
  }
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [{ path: path || '/', kind: 'changed', before, after }];
}
