// A pod's logs, followed live: `GET /pods/{id}/logs?follow=true` (server-sent events, docs/api.md
// "Logs") read with fetch, since the key goes in a header. Lines land in a bounded ring, so a
// chatty container cannot grow the page without end.
import { ApiError, type FieldProblem } from './client';
import { parseSse } from './events';

export interface LogLine {
  /** Position since the stream began: a stable key for the view, also once older lines are dropped. */
  seq: number;
  stream: 'stdout' | 'stderr';
  time: string;
  text: string;
}

/** The last `capacity` lines, oldest first; pushing past it drops the oldest. */
export class LineRing {
  private readonly buf: LogLine[] = [];
  private start = 0;
  /** Lines ever pushed. */
  total = 0;
  constructor(readonly capacity: number) {}

  get length(): number {
    return this.buf.length;
  }

  push(line: Omit<LogLine, 'seq'>): void {
    const l = { ...line, seq: this.total++ };
    if (this.buf.length < this.capacity) this.buf.push(l);
    else {
      this.buf[this.start] = l;
      this.start = (this.start + 1) % this.capacity;
    }
  }

  /** The i-th line kept, 0 the oldest. */
  at(i: number): LogLine | undefined {
    return this.buf[(this.start + i) % this.buf.length];
  }

  /** Indexes (as `at` takes them) of the lines `match` accepts. */
  filter(match: (l: LogLine) => boolean): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.buf.length; i++) if (match(this.at(i)!)) out.push(i);
    return out;
  }

  clear(): void {
    this.buf.length = 0;
    this.start = 0;
  }
}

export interface FollowLogsOptions {
  key: string;
  podId: string;
  container?: string | undefined;
  instance?: number | undefined;
  tail: number;
  onLine: (l: Omit<LogLine, 'seq'>) => void;
}

/**
 * Reads the stream until it ends (`end` event: the container stopped) or `signal` aborts; resolves
 * with why it ended. Refusals before the stream (a stopped pod: 409) throw the API's ApiError.
 */
export async function followLogs(o: FollowLogsOptions, signal: AbortSignal): Promise<string> {
  const q = new URLSearchParams({ follow: 'true', tail: String(o.tail) });
  if (o.container) q.set('container', o.container);
  if (o.instance !== undefined) q.set('instance', String(o.instance));
  const path = `/pods/${encodeURIComponent(o.podId)}/logs?${q}`;
  const res = await fetch(`/api/v1${path}`, { headers: { authorization: `Bearer ${o.key}` }, signal });
  if (!res.ok || !res.body) {
    const p = (await res.json().catch(() => ({}))) as { title?: string; detail?: string; code?: string; problems?: FieldProblem[]; retryable?: boolean };
    throw new ApiError(res.status, p.title ?? `HTTP ${res.status}`, p.detail, p.code, p.problems ?? [], p.retryable === true);
  }
  for await (const ev of parseSse(res.body)) {
    if (ev.event === 'log') o.onLine(JSON.parse(ev.data) as Omit<LogLine, 'seq'>);
    else if (ev.event === 'end') return (JSON.parse(ev.data) as { reason?: string }).reason ?? 'the stream ended';
    else if (ev.event === 'error') return (JSON.parse(ev.data) as { message?: string }).message ?? 'the stream failed';
  }
  return 'the stream ended';
}
