import type { Constraint, Node } from '../model/index.js';

/**
 * Marathon placement constraints (mesosphere/marathon `mesos/Constraints.scala`), judged on one node
 * against the nodes the pod's other instances already run on. Pure: the scheduler feeds it nodes.
 *
 * Fields: `hostname` and `@hostname` read the node's name; `@region` and `@zone` read a node label
 * (see ZONE_LABELS); any other field is a node label, as agents declare them with `--label k=v`.
 */

/**
 * Where `@region` and `@zone` come from, first match wins. The Kubernetes well-known keys come first
 * because people label machines that way already; the short Mesos-style names are the fallback.
 */
export const REGION_LABELS = ['topology.kubernetes.io/region', 'region'] as const;
export const ZONE_LABELS = ['topology.kubernetes.io/zone', 'zone'] as const;

const isHostname = (field: string): boolean => field === 'hostname' || field === '@hostname';

/** The labels a field reads, or none for the hostname. */
function labelsOf(field: string): readonly string[] {
  if (isHostname(field)) return [];
  if (field === '@region') return REGION_LABELS;
  if (field === '@zone') return ZONE_LABELS;
  return [field];
}

/** The node's value for a constraint field, or undefined when the node has no such label. */
export function fieldValue(node: Node, field: string): string | undefined {
  if (isHostname(field)) return node.name;
  for (const key of labelsOf(field)) {
    const v = node.labels[key];
    if (v !== undefined) return v;
  }
  return undefined;
}

/** How a reason names what a node lacks: `label rack`, or the candidate labels of @zone/@region. */
export function describeMissing(field: string): string {
  const keys = labelsOf(field);
  return keys.length === 1 ? `label ${keys[0]}` : `${field.slice(1)} label (${keys.join(' or ')})`;
}

const MESOS_SCALAR = /^[0-9]+(?:\.[0-9]+)?$/;

/**
 * Mesos formats scalar attributes as Java's DecimalFormat("0.###") with HALF_EVEN rounding, so
 * `1.0`, `01` and `1.0004` all read `1`. Done on the decimal text, which is what the user wrote.
 */
export function normalizeScalar(value: string): string {
  if (!MESOS_SCALAR.test(value)) return value;
  const [intText = '0', fracText = ''] = value.split('.');
  let digits = (intText + fracText.padEnd(3, '0').slice(0, 3)).split('').map(Number);
  const rest = fracText.slice(3);
  const last = digits[digits.length - 1]!;
  const roundUp = rest !== '' && (rest[0]! > '5' || (rest[0] === '5' && (/[1-9]/.test(rest.slice(1)) || last % 2 === 1)));
  if (roundUp) {
    let i = digits.length - 1;
    while (i >= 0 && digits[i] === 9) digits[i--] = 0;
    if (i < 0) digits = [1, ...digits];
    else digits[i]! += 1;
  }
  const int = digits.slice(0, -3).join('').replace(/^0+(?=\d)/, '');
  const frac = digits.slice(-3).join('').replace(/0+$/, '');
  return frac ? `${int}.${frac}` : int;
}

/**
 * Two field values are equal when equal as text after scalar normalization. Marathon normalizes only
 * the IS value (the agent side is already formatted by Mesos); Berth's labels are plain text, so
 * every equality (UNIQUE, CLUSTER, GROUP_BY, MAX_PER, IS) normalizes both sides alike.
 */
const key = (value: string): string => normalizeScalar(value);

/** Full-match regex, as Java's String.matches. Validation rejects bad patterns; old data may not have been. */
function fullMatch(pattern: string, value: string): boolean | 'invalid' {
  // The scheduler asks for every candidate node of every placement: compile each pattern once.
  let re = patterns.get(pattern);
  if (re === undefined) {
    try {
      re = new RegExp(`^(?:${pattern})$`);
    } catch {
      re = 'invalid';
    }
    if (patterns.size >= MAX_PATTERNS) patterns.clear();
    patterns.set(pattern, re);
  }
  return re === 'invalid' ? re : re.test(value);
}

const patterns = new Map<string, RegExp | 'invalid'>();
const MAX_PATTERNS = 1000;

/** How many of the peers sit on each (normalized) value of the field; peers lacking it are not counted. */
function countsByValue(field: string, peers: readonly Node[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const peer of peers) {
    const v = fieldValue(peer, field);
    if (v !== undefined) counts.set(key(v), (counts.get(key(v)) ?? 0) + 1);
  }
  return counts;
}

const plural = (n: number, one: string): string => `${n} ${one}${n === 1 ? '' : 's'}`;

/** `rack "r1"`, or `this node` for the hostname: the subject of a reason about shared values. */
const where = (field: string, value: string): string => (isHostname(field) ? 'this node' : `${field} "${value}"`);

/** Why the node breaks one constraint (without the node/constraint prefix), or null when it keeps it. */
export function violation(node: Node, c: Constraint, peers: readonly Node[]): string | null {
  const value = fieldValue(node, c.field);
  if (value === undefined) {
    // Marathon: an agent without the attribute is accepted only by UNLIKE.
    return c.operator === 'UNLIKE' ? null : `it has no ${describeMissing(c.field)}`;
  }
  const want = c.value ?? '';
  switch (c.operator) {
    case 'UNIQUE': {
      const taken = peers.some((p) => {
        const v = fieldValue(p, c.field);
        return v !== undefined && key(v) === key(value);
      });
      if (!taken) return null;
      return isHostname(c.field) ? 'already runs an instance of this pod' : `${where(c.field, value)} already has an instance of this pod`;
    }
    case 'CLUSTER':
      return cluster(c, value, want, peers);
    case 'GROUP_BY':
      return groupBy(c, value, want, peers);
    case 'MAX_PER': {
      const max = Number.parseInt(want, 10);
      if (!Number.isFinite(max)) return `MAX_PER needs an integer value`;
      const count = countsByValue(c.field, peers).get(key(value)) ?? 0;
      if (count < max) return null;
      return `${where(c.field, value)} already has ${plural(count, 'instance')} of this pod, the most allowed`;
    }
    case 'LIKE':
    case 'UNLIKE': {
      if (!want) return `${c.operator} needs a value`;
      const m = fullMatch(want, value);
      if (m === 'invalid') return `"${want}" is not a valid regular expression`;
      return m === (c.operator === 'LIKE') ? null : `its value is "${value}"`;
    }
    case 'IS':
      return key(value) === key(want) ? null : `its value is "${value}"`;
  }
}

/** With a value: the node's value must be it. Without: the value the pod's first instance landed on. */
function cluster(c: Constraint, value: string, want: string, peers: readonly Node[]): string | null {
  if (want) return key(value) === key(want) ? null : `its value is "${value}"`;
  const first = peers[0];
  if (!first) return null;
  const firstValue = fieldValue(first, c.field);
  if (firstValue === undefined) return `the pod's first instance runs on ${first.name}, which has no ${describeMissing(c.field)}`;
  if (key(firstValue) === key(value)) return null;
  return isHostname(c.field) ? `the pod's first instance runs on ${first.name}` : `the pod's first instance runs where ${c.field} is "${firstValue}", this node has "${value}"`;
}

/**
 * Spread evenly over the values the instances use: a value already used must have the fewest
 * instances of all used values; a new value is welcome while fewer than N values are used (any
 * number when GROUP_BY has no value or 0). Peers whose node lacks the field form no group.
 */
function groupBy(c: Constraint, value: string, want: string, peers: readonly Node[]): string | null {
  const groups = want ? Number.parseInt(want, 10) : 0;
  const counts = countsByValue(c.field, peers);
  const count = counts.get(key(value));
  if (count === undefined) {
    if (!(groups > 0) || counts.size < groups) return null;
    return `the pod already spreads over ${plural(counts.size, 'value')} of ${c.field}, as many as GROUP_BY ${groups} allows`;
  }
  const least = Math.min(...counts.values());
  if (count === least) return null;
  return `${where(c.field, value)} has ${plural(count, 'instance')} of this pod, another ${isHostname(c.field) ? 'node' : 'value'} has ${least}`;
}

/** `UNIQUE hostname` / `LIKE gpu-class "a100|h100"`: how a reason names the constraint. */
export const describeConstraint = (c: Constraint): string => `${c.operator} ${c.field}${c.value !== null ? ` "${c.value}"` : ''}`;

/**
 * Why the node may not take another instance of the pod, or null when every constraint holds.
 * `peers` are the nodes of the pod's other placed instances, oldest first, one entry per instance.
 */
export function meetsConstraints(node: Node, constraints: readonly Constraint[], peers: readonly Node[]): string | null {
  for (const c of constraints) {
    const why = violation(node, c, peers);
    if (why !== null) return `${node.name}: ${describeConstraint(c)}: ${why}`;
  }
  return null;
}

/**
 * When no candidate node has a field some constraint needs (all but UNLIKE do), says so in one line:
 * clearer than one "has no label" per node, and true of the cluster rather than of each node.
 */
export function missingEverywhere(nodes: readonly Node[], constraints: readonly Constraint[]): string | null {
  if (nodes.length === 0) return null;
  for (const c of constraints) {
    if (c.operator === 'UNLIKE' || isHostname(c.field)) continue;
    if (nodes.every((n) => fieldValue(n, c.field) === undefined)) {
      return labelsOf(c.field).length === 1 ? `no node has attribute ${c.field}` : `no node has a ${describeMissing(c.field)}`;
    }
  }
  return null;
}

/**
 * How crowded the node's GROUP_BY values already are: the number of peers sharing them, summed over
 * the GROUP_BY constraints. The scheduler prefers the lowest, so a spread happens even where the
 * rule itself (like Marathon's) would also accept stacking onto an already used, least used value.
 */
export function groupCrowding(node: Node, constraints: readonly Constraint[], peers: readonly Node[]): number {
  let crowding = 0;
  for (const c of constraints) {
    if (c.operator !== 'GROUP_BY') continue;
    const v = fieldValue(node, c.field);
    if (v !== undefined) crowding += countsByValue(c.field, peers).get(key(v)) ?? 0;
  }
  return crowding;
}
