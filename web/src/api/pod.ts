// One pod, live: `GET /pods/{id}`, then `/events?pod=` from its revision, each event replacing the
// cached view (so actions' answers and events land in one place).
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect } from 'react';
import type { Api } from './client';
import { followEvents } from './events';
import type { PodView } from './types';

export const podKey = (id: string) => ['pod', id] as const;

export function usePod(api: Api, id: string) {
  const qc = useQueryClient();
  const query = useQuery({ queryKey: podKey(id), queryFn: ({ signal }) => api.get<PodView>(`/pods/${encodeURIComponent(id)}`, signal) });
  const since = query.data ? true : false;
  useEffect(() => {
    if (!since) return;
    const ac = new AbortController();
    const revision = qc.getQueryData<PodView>(podKey(id))?.revision;
    void followEvents(
      {
        key: api.key,
        pod: id,
        ...(revision !== undefined ? { since: revision } : {}),
        onPod: (p) => {
          const cur = qc.getQueryData<PodView>(podKey(id));
          if (!cur || p.revision >= cur.revision) qc.setQueryData(podKey(id), p);
        },
      },
      ac.signal,
    );
    return () => ac.abort();
  }, [api, id, qc, since]);
  return query;
}
