/**
 * Docker's container event stream, watched without gaps: on a break it reconnects asking for events
 * `since` the last one seen and drops the replayed ones, so each event is delivered once.
 */

import type { IncomingMessage } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { dialStream, type Daemon } from './daemon.js';
import { JsonObjectSplitter, nanosToDockerTimestamp } from './streams.js';
import type { RuntimeEvent } from './types.js';

const EVENTS_BACKOFF_MIN_MS = 250;
const EVENTS_BACKOFF_MAX_MS = 5_000;

export async function watchLoop(daemon: Daemon, label: string, onEvent: (e: RuntimeEvent) => void, signal: AbortSignal): Promise<void> {
  let since: string | undefined;
  let lastNano = -1n;
  // Events sharing the last seen timestamp, which a `since` replay delivers again.
  let seenAtLast = new Set<string>();
  let backoff = EVENTS_BACKOFF_MIN_MS;
  while (!signal.aborted) {
    const connectedAt = Date.now();
    let res: IncomingMessage | undefined;
    try {
      res = await dialStream(daemon, '/events?', { filters: { type: ['container'], label: [label] }, ...(since ? { since } : {}) }, signal);
      backoff = EVENTS_BACKOFF_MIN_MS;
      const splitter = new JsonObjectSplitter();
      for await (const chunk of res as AsyncIterable<Buffer>) {
        for (const raw of splitter.push(chunk)) {
          const parsed = parseEvent(raw);
          if (!parsed || parsed.nano < lastNano) continue;
          if (parsed.nano === lastNano) {
            if (seenAtLast.has(parsed.key)) continue;
          } else {
            lastNano = parsed.nano;
            seenAtLast = new Set();
          }
          seenAtLast.add(parsed.key);
          onEvent(parsed.event);
        }
      }
    } catch {
      // A broken stream is handled like an ended one: reconnect below. The daemon being down
      // shows through ping() and the agent's other calls, not here.
    } finally {
      res?.destroy();
    }
    if (signal.aborted) return;
    // Nothing seen yet: replay from when this connection was made, so an event during the gap still arrives.
    since = lastNano >= 0n ? nanosToDockerTimestamp(lastNano) : (since ?? nanosToDockerTimestamp(BigInt(connectedAt) * 1_000_000n));
    try {
      await sleep(backoff, undefined, { signal });
    } catch {
      return;
    }
    backoff = Math.min(backoff * 2, EVENTS_BACKOFF_MAX_MS);
  }
}

/** Docker's event JSON → RuntimeEvent, with the exact nanosecond time (as a bigint) and a key to dedupe replays. */
function parseEvent(raw: string): { event: RuntimeEvent; nano: bigint; key: string } | null {
  let msg: unknown;
  try {
    msg = JSON.parse(raw);
  } catch {
    return null;
  }
  if (typeof msg !== 'object' || msg === null) return null;
  const actor = 'Actor' in msg && typeof msg.Actor === 'object' && msg.Actor !== null ? msg.Actor : {};
  const attributes = 'Attributes' in actor && typeof actor.Attributes === 'object' && actor.Attributes !== null ? actor.Attributes : {};
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(attributes)) if (typeof v === 'string') labels[k] = v;
  const containerId = 'ID' in actor && typeof actor.ID === 'string' ? actor.ID : 'id' in msg && typeof msg.id === 'string' ? msg.id : '';
  // Older daemons send `status` and no `Action`.
  const action = 'Action' in msg && typeof msg.Action === 'string' ? msg.Action : 'status' in msg && typeof msg.status === 'string' ? msg.status : '';
  if (!containerId || !action) return null;
  // JSON.parse rounds timeNano (about 1.7e18, past 2^53); read the digits from the text.
  const nanoText = /"timeNano"\s*:\s*(\d+)/.exec(raw)?.[1];
  const seconds = 'time' in msg && typeof msg.time === 'number' ? msg.time : 0;
  const nano = nanoText ? BigInt(nanoText) : BigInt(seconds) * 1_000_000_000n;
  const exitCode = labels.exitCode !== undefined && /^-?\d+$/.test(labels.exitCode) ? Number(labels.exitCode) : null;
  return {
    event: { action, containerId, labels, exitCode, timeNano: Number(nano) },
    nano,
    key: `${containerId} ${action}`,
  };
}
