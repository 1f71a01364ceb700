/**
 * A client of a server's `GET /api/v1/events` as a careful one would be: it follows the stream and,
 * when the stream ends or breaks (a server restarting, a database restart cutting it), comes back
 * with `?since=<the last event id>` (a store revision), so it misses no change.
 */
import { performance } from 'node:perf_hooks';
import { readSse } from '../../src/cli/client.js';

export interface SeenEvent {
  event: string;
  /** The store revision (the SSE id). */
  revision: number | undefined;
  data: Record<string, unknown>;
  /** performance.now() when it was read. */
  at: number;
}

export class EventFollower {
  readonly events: SeenEvent[] = [];
  /** How many times the stream was opened again after it ended or broke. */
  reconnects = 0;
  private last: number | undefined;
  private readonly ac = new AbortController();
  private readonly listeners = new Set<(e: SeenEvent) => void>();
  private readonly loop: Promise<void>;
  private opened!: () => void;
  /** Resolves once the first stream answered with its head. */
  readonly ready: Promise<void>;

  constructor(
    /** The server's base URL (http://host:port). */
    readonly base: string,
    private readonly key: string,
    since?: number,
  ) {
    this.last = since;
    this.ready = new Promise((r) => (this.opened = r));
    this.loop = this.follow();
  }

  /** Calls `fn` for each event from now on; returns the undo. */
  onEvent(fn: (e: SeenEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** The first event (seen so far or to come) that `match` accepts; fails after `timeoutMs`. */
  async waitFor(what: string, match: (e: SeenEvent) => boolean, timeoutMs = 60_000): Promise<SeenEvent> {
    const seen = this.events.find(match);
    if (seen) return seen;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`no event on ${this.base}/api/v1/events for ${what} in ${timeoutMs} ms (${this.events.length} events seen, ${this.reconnects} reconnects)`));
      }, timeoutMs);
      const off = this.onEvent((e) => {
        if (!match(e)) return;
        clearTimeout(timer);
        off();
        resolve(e);
      });
    });
  }

  private async follow(): Promise<void> {
    while (!this.ac.signal.aborted) {
      try {
        const url = `${this.base}/api/v1/events${this.last !== undefined ? `?since=${this.last}` : ''}`;
        const res = await fetch(url, { headers: { authorization: `Bearer ${this.key}`, accept: 'text/event-stream' }, signal: this.ac.signal });
        if (res.status !== 200 || !res.body) throw new Error(`GET ${url} answered ${res.status}`);
        this.opened();
        for await (const e of readSse(res.body, this.ac.signal)) {
          const revision = e.id !== undefined ? Number(e.id) : undefined;
          if (revision !== undefined && Number.isFinite(revision)) this.last = Math.max(this.last ?? 0, revision);
          let data: Record<string, unknown>;
          try {
            data = JSON.parse(String(e.data)) as Record<string, unknown>;
          } catch {
            data = { text: e.data };
          }
          const seen: SeenEvent = { event: e.event ?? 'message', revision, data, at: performance.now() };
          this.events.push(seen);
          for (const fn of this.listeners) fn(seen);
        }
      } catch {
        // the server or the connection went away: come back below
      }
      if (this.ac.signal.aborted) return;
      this.reconnects++;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async close(): Promise<void> {
    this.ac.abort();
    await this.loop;
  }
}
