/**
 * REST v2's pod logs: server-sent events whose `data` is `{"ts", "source", "line"}` and whose `id` is
 * `<ts>/<seq>`, so an EventSource that reconnects with `Last-Event-ID` resumes after the last line
 * it saw. `container` lines come from the pod's container; `system` lines are its lifecycle as
 * Berth recorded it (created, started, the current status and why).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { InstanceResolver } from '../../control/resolve.js';
import { BerthError } from '../../model/index.js';
import { toDockerTimestamp } from '../../model/timestamps.js';
import type { PodDetail } from '../../store/types.js';
import { openSse } from '../sse.js';

export interface LogQuery {
  source?: string;
  tail?: number;
  since?: string;
}

/** Nanoseconds since the epoch of an RFC 3339 time, or null when it is not one. */
export function nanosOf(ts: string): bigint | null {
  const d = toDockerTimestamp(ts);
  if (d === null || !/^\d+\.\d{9}$/.test(d)) return null;
  const [s, f] = d.split('.');
  return BigInt(s!) * 1_000_000_000n + BigInt(f!);
}

export interface Cursor {
  nanos: bigint;
  /** How many lines stamped `nanos` were already sent. */
  seq: number;
}

/** `Last-Event-ID` (`<ts>/<seq>`, as this endpoint writes ids) wins over `since` (a plain time). */
export function cursorOf(lastEventId: string | undefined, since: string | undefined): Cursor | undefined {
  for (const [raw, path] of [
    [lastEventId, 'header:/Last-Event-ID'],
    [since, 'query:/since'],
  ] as const) {
    if (!raw) continue;
    const [ts, seq] = raw.split('/');
    const nanos = nanosOf(ts ?? '');
    if (nanos === null) throw new BerthError('VALIDATION', `${path.split('/').pop()} is not an RFC 3339 time: ${raw}`, { problems: [{ path, message: 'must be an RFC 3339 time' }] });
    return { nanos, seq: seq === undefined ? 0 : Number(seq) };
  }
  return undefined;
}

/** Numbers lines by their time and drops those at or before the cursor. */
class Sequencer {
  private lastNanos = -1n;
  private seq = 0;
  constructor(private readonly cursor: Cursor | undefined) {}
  /** The event id for a line at `ts`, or null when the client has it already. */
  next(ts: string): string | null {
    const nanos = nanosOf(ts) ?? 0n;
    this.seq = nanos === this.lastNanos ? this.seq + 1 : 1;
    this.lastNanos = nanos;
    const c = this.cursor;
    if (c && (nanos < c.nanos || (nanos === c.nanos && this.seq <= c.seq))) return null;
    return `${ts}/${String(this.seq).padStart(12, '0')}`;
  }
}

function systemLines(d: PodDetail): { ts: string; line: string }[] {
  const { pod } = d;
  const lines = [{ ts: pod.createdAt, line: `pod ${pod.id} created` }];
  if (pod.lastStartedAt) lines.push({ ts: pod.lastStartedAt, line: 'container started' });
  lines.push({ ts: pod.updatedAt, line: `status ${pod.status}${pod.statusMessage ? `: ${pod.statusMessage}` : ''}` });
  return lines.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
}

/** Streams until the container's output ends (it stopped) or the client goes away. */
export async function streamPodLogs(req: FastifyRequest, reply: FastifyReply, d: PodDetail, resolver: InstanceResolver, q: LogQuery): Promise<void> {
  const source = q.source === undefined || q.source === 'both' ? undefined : q.source;
  if (source !== undefined && source !== 'container' && source !== 'system') {
    throw new BerthError('VALIDATION', `source must be container or system, not ${source}`, { problems: [{ path: 'query:/source', message: 'must be container or system' }] });
  }
  const lastEventId = req.headers['last-event-id'];
  const cursor = cursorOf(Array.isArray(lastEventId) ? lastEventId[0] : lastEventId, q.since);
  const inst = d.instances[0];

  const sse = openSse(reply);
  const seqs = new Map<string, Sequencer>();
  const send = (src: 'container' | 'system', ts: string, line: string): void => {
    const s = seqs.get(src) ?? new Sequencer(cursor);
    seqs.set(src, s);
    const id = s.next(ts);
    if (id) sse.send({ id, data: { ts, source: src, line } });
  };
  try {
    if (source !== 'container') for (const l of systemLines(d)) send('system', l.ts, l.line);
    if (source !== 'system' && inst && d.pod.status !== 'TERMINATED') {
      // tail and the cursor are exclusive: a resume replays from the cursor, else the last `tail` lines.
      const opts = cursor ? { follow: true, since: (Number(cursor.nanos / 1_000_000n) / 1000).toFixed(3) } : { follow: true, tail: q.tail ?? 100 };
      try {
        const { access } = await resolver.resolve(req.caller, d.pod.id, { instance: inst.ordinal });
        for await (const l of access.logs(inst.id, undefined, opts, sse.closed)) send('container', l.time, l.text);
      } catch (e) {
        send('system', new Date().toISOString(), `no container output: ${(e as Error).message}`);
      }
    }
  } finally {
    sse.end();
  }
}
