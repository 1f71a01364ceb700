// `GET /api/v1/events` as a stream of pod views. EventSource cannot send an Authorization header
// and the API takes the key only there, so this reads the stream with fetch and parses the
// server-sent events itself. It resumes after a break with `?since=<last id>` (the store revision),
// so nothing is missed across a server restart.
import { connection } from './connection';
import type { PodView } from './types';

export interface EventStreamOptions {
  key: string;
  /** Resume after this store revision; without it, only changes from now on. */
  since?: number;
  /** Only this pod's changes. */
  pod?: string;
  onPod: (pod: PodView) => void;
  /** Called when the stream (re)opens. */
  onOpen?: () => void;
}

/** Follows the event stream until `signal` aborts, reconnecting after failures; never rejects. */
export async function followEvents(opts: EventStreamOptions, signal: AbortSignal): Promise<void> {
  let since = opts.since;
  let delay = 500;
  while (!signal.aborted) {
    const q = new URLSearchParams();
    if (since !== undefined) q.set('since', String(since));
    if (opts.pod) q.set('pod', opts.pod);
    try {
      const res = await fetch(`/api/v1/events${q.size ? `?${q}` : ''}`, { headers: { authorization: `Bearer ${opts.key}` }, signal });
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      connection.up();
      opts.onOpen?.();
      delay = 500;
      for await (const ev of parseSse(res.body)) {
        if (ev.id !== undefined) since = Number(ev.id);
        if (ev.event === 'pod') opts.onPod(JSON.parse(ev.data) as PodView);
      }
    } catch (e) {
      if (signal.aborted) return;
      if ((e as Error).name !== 'AbortError' && (e as Error).message?.startsWith('HTTP') !== true) connection.down();
    }
    if (signal.aborted) return;
    // The stream ended: the server went away (or restarts). Try again, backing off to 5 s.
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 5000);
  }
}

interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

export async function* parseSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let ev: { id?: string; event?: string; data: string[] } = { data: [] };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const raw of lines) {
        const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
        if (line === '') {
          if (ev.data.length) yield { ...(ev.id !== undefined ? { id: ev.id } : {}), event: ev.event ?? 'message', data: ev.data.join('\n') };
          ev = { data: [] };
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'data') ev.data.push(value);
        else if (field === 'event') ev.event = value;
        else if (field === 'id') ev.id = value;
      }
    }
  } finally {
    reader.releaseLock();
  }
}
