// The pod list, live: `GET /pods` once, then `/events` from the newest revision it saw, each event
// replacing its pod. Events arriving together are applied in one render (once per frame).
import { useEffect, useRef, useState } from 'react';
import { request, type Api } from './client';
import { followEvents } from './events';
import type { PodSummary } from './types';

declare global {
  interface Window {
    /** The list asked for by index.html before the bundle ran, parsed (null when it failed). */
    __berthPods?: { at: number; data: Promise<{ pods: PodSummary[] } | null> };
  }
}

// Taken once, at load, so that a later sign-in with another key never sees it.
const asked = window.__berthPods;
window.__berthPods = undefined;
/** The early answer once it is in: the first render can show the rows without waiting for an effect. */
let early: PodSummary[] | undefined;
void asked?.data.then((d) => (early = d?.pods));

/** The early answer if it is in (taken once) and under 10 s old. */
function takeEarly(): PodSummary[] | undefined {
  const pods = early;
  early = undefined;
  return pods && asked && Date.now() - asked.at < 10_000 ? pods : undefined;
}

/** The early answer when it comes, if it was not taken yet and is fresh; else a request of our own (errors worded by the API). */
async function firstList(api: Api, signal: AbortSignal): Promise<PodSummary[]> {
  if (asked && Date.now() - asked.at < 10_000) {
    await asked.data;
    const pods = takeEarly();
    if (pods) return pods;
  }
  return (await request<{ pods: PodSummary[] }>(api.key, 'GET', '/pods', { signal })).pods;
}

export interface PodList {
  pods: PodSummary[] | undefined;
  error: unknown;
}

export function usePodList(api: Api, includeTerminated: boolean): PodList {
  const seed = useRef<PodSummary[] | undefined>(undefined);
  const [pods, setPods] = useState<PodSummary[] | undefined>(() => (seed.current = includeTerminated ? undefined : takeEarly()));
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    const ac = new AbortController();
    const byId = new Map<string, PodSummary>();
    let frame = 0;
    const publish = () => {
      frame = 0;
      setPods([...byId.values()]);
    };
    const schedule = () => {
      if (!frame) frame = requestAnimationFrame(publish);
    };
    const load = async (): Promise<number> => {
      const seeded = seed.current;
      seed.current = undefined;
      const list = seeded ?? (includeTerminated ? (await api.get<{ pods: PodSummary[] }>('/pods?includeTerminated=true', ac.signal)).pods : await firstList(api, ac.signal));
      byId.clear();
      let since = 0;
      for (const p of list) {
        byId.set(p.id, p);
        if (p.revision > since) since = p.revision;
      }
      if (!seeded) setPods([...byId.values()]);
      setError(undefined);
      return since;
    };
    void (async () => {
      let since: number | undefined;
      while (since === undefined && !ac.signal.aborted) {
        try {
          since = await load();
        } catch (e) {
          if (ac.signal.aborted) return;
          setError(e);
          await new Promise((r) => setTimeout(r, 2000));
        }
      }
      // An empty list has no revision to resume from, and since=0 would replay the store's whole
      // history: follow from now on, and read the list again once the stream is open, so that a pod
      // made in between is not missed.
      const resume = since === 0 ? undefined : since;
      const refill = async () => {
        try {
          const { pods: again } = await api.get<{ pods: PodSummary[] }>(includeTerminated ? '/pods?includeTerminated=true' : '/pods', ac.signal);
          for (const p of again) if (!byId.has(p.id)) byId.set(p.id, p);
          schedule();
        } catch {
          // The stream's own reconnect (and the server-away banner) covers a failure here.
        }
      };
      await followEvents(
        {
          key: api.key,
          ...(resume !== undefined ? { since: resume } : { onOpen: () => void refill() }),
          onPod: (p) => {
            if (p.status === 'TERMINATED' && !includeTerminated) byId.delete(p.id);
            else {
              // Keep the list light: the summary's fields, not the spec and instances of every pod.
              const { spec: _s, instances: _i, connection: _c, ...summary } = p;
              byId.set(p.id, summary);
            }
            schedule();
          },
        },
        ac.signal,
      );
    })();
    return () => {
      ac.abort();
      if (frame) cancelAnimationFrame(frame);
    };
  }, [api, includeTerminated]);
  return { pods, error };
}
