// The pod list, live: `GET /pods` once, then `/events` from the newest revision it saw, each event
// replacing its pod. Events arriving together are applied in one render (once per frame).
import { useEffect, useState } from 'react';
import { request, type Api } from './client';
import { followEvents } from './events';
import type { PodSummary } from './types';

declare global {
  interface Window {
    /** The list's request, started by index.html before the bundle ran. */
    __berthPods?: { at: number; res: Promise<Response | null> };
  }
}

/** The answer index.html asked for, once, if it is under 10 s old and came back 200; else a new request. */
async function firstList(api: Api, signal: AbortSignal): Promise<{ pods: PodSummary[] }> {
  const early = window.__berthPods;
  window.__berthPods = undefined;
  if (early && Date.now() - early.at < 10_000) {
    const res = await early.res;
    if (res?.ok) return (await res.json()) as { pods: PodSummary[] };
  }
  return request(api.key, 'GET', '/pods', { signal });
}

export interface PodList {
  pods: PodSummary[] | undefined;
  error: unknown;
}

export function usePodList(api: Api, includeTerminated: boolean): PodList {
  const [pods, setPods] = useState<PodSummary[]>();
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
      const { pods: list } = includeTerminated ? await api.get<{ pods: PodSummary[] }>('/pods?includeTerminated=true', ac.signal) : await firstList(api, ac.signal);
      byId.clear();
      let since = 0;
      for (const p of list) {
        byId.set(p.id, p);
        if (p.revision > since) since = p.revision;
      }
      setPods([...byId.values()]);
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
      await followEvents(
        {
          key: api.key,
          since,
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
