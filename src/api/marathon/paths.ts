/**
 * Marathon's path ids (`state/PathId.scala`): `/group/pod`, absolute, `.` and `..` resolved; and the
 * instance ids built from them (`core/instance/Instance.scala`).
 */

/** One segment of a path id, as `PathId.ID_PATH_SEGMENT_PATTERN`. */
const SEGMENT_SOURCE = '^(([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])\\.)*([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])|(\\.|\\.\\.)$';
const SEGMENT = /^(?:(?:(?:[a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])\.)*(?:[a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])|\.|\.\.)$/;
const RESERVED = ['restart', 'tasks', 'versions', '.', '..'];

export interface PathId {
  absolute: boolean;
  segments: string[];
}

/** `PathId(String)`: leading and trailing slashes dropped, empty segments (`a//b`) removed. */
export function parsePathId(text: string): PathId {
  const trimmed = text.replace(/^\/+|\/+$/g, '');
  return { absolute: text.startsWith('/'), segments: trimmed.split('/').filter((s) => s !== '') };
}

/** `canonicalPath()` against the root: `.` dropped, `..` climbs (never above the root). */
export function canonicalSegments(segments: string[]): string[] {
  const out: string[] = [];
  for (const s of segments) {
    if (s === '.') continue;
    if (s === '..') out.pop();
    else out.push(s);
  }
  return out;
}

/** The canonical absolute form of a path id, relative ones taken from the root (as `toAbsolutePath`). */
export const canonicalPath = (text: string): string => `/${canonicalSegments(parsePathId(text).segments).join('/')}`;

/** Marathon's messages for a pod id that is not a usable path (`pathIdValidator`, `absolutePathValidator`, `nonEmptyPath`). */
export function pathIdProblems(text: string): string[] {
  const id = parsePathId(text);
  const problems: string[] = [];
  if (!id.segments.every((s) => SEGMENT.test(s))) problems.push(`must fully match regular expression '${SEGMENT_SOURCE}'`);
  const last = id.segments[id.segments.length - 1];
  if (last !== undefined && RESERVED.includes(last)) problems.push(`must not end with any of the following reserved keywords: ${RESERVED.join(', ')}`);
  if (!id.absolute) problems.push('Path needs to be absolute');
  if (id.segments.length === 0) problems.push('Path must contain at least one path element');
  return problems;
}

/** `/foo/bar` → `foo_bar`, the prefix of Marathon's instance ids. */
export const safeId = (path: string): string => parsePathId(path).segments.join('_');

/** Marathon's id for a Berth instance of the pod at `path`. */
export const marathonInstanceId = (path: string, instanceId: string): string => `${safeId(path)}.instance-${instanceId}`;

/** `strings.InstanceId`. */
export const INSTANCE_ID = /^(.+)\.(instance-|marathon-)([^.]+)$/;

/** The Berth instance id inside a Marathon instance id of the pod at `path`; null when it is not one of its ids. */
export function berthInstanceId(path: string, marathonId: string): string | null {
  const m = INSTANCE_ID.exec(marathonId);
  if (!m || m[1] !== safeId(path)) return null;
  return m[3] ?? null;
}
