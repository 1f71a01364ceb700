// The pod list: live, filtered and searched in the browser, virtualized (only the rows in view are
// in the DOM), so 1,000 pods or 10,000 cost the same to render.
import { useQuery } from '@tanstack/react-query';
import { useVirtualizer } from '@tanstack/react-virtual';
import { useDeferredValue, useMemo, useRef, useState } from 'react';
import { Link } from 'wouter';
import { usePodList } from '../api/pod-list';
import { POD_STATUSES, type NodeView, type PodStatus, type PodSummary } from '../api/types';
import { useApi } from '../auth';
import { ErrorBox } from '../components/error-box';
import { StatusBadge } from '../components/status';
import { useNow } from '../clock';
import { gpus, uptime } from '../format';

const ROW = 44;

export function PodsPage() {
  const api = useApi();
  const [status, setStatus] = useState<PodStatus | ''>('');
  const [search, setSearch] = useState('');
  const [showTerminated, setShowTerminated] = useState(false);
  const { pods, error } = usePodList(api, showTerminated || status === 'TERMINATED');
  const nodes = useQuery({ queryKey: ['nodes'], queryFn: ({ signal }) => api.get<{ nodes: NodeView[] }>('/nodes', signal), staleTime: 60_000 });
  const nodeNames = useMemo(() => new Map((nodes.data?.nodes ?? []).map((n) => [n.id, n.name])), [nodes.data]);
  const q = useDeferredValue(search.trim().toLowerCase());
  const now = useNow(5_000);

  const shown = useMemo(() => {
    if (!pods) return [];
    const out = pods.filter((p) => {
      if (status && p.status !== status) return false;
      if (!q) return true;
      return (
        p.name.toLowerCase().includes(q) ||
        p.id.includes(q) ||
        (p.image ?? '').toLowerCase().includes(q) ||
        p.status.toLowerCase().includes(q) ||
        (p.nodeId ? (nodeNames.get(p.nodeId) ?? p.nodeId).toLowerCase().includes(q) : false)
      );
    });
    // Newest first, as a user looks for the pod they just made.
    return out.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
  }, [pods, status, q, nodeNames]);

  const counts = useMemo(() => {
    const c = new Map<string, number>();
    for (const p of pods ?? []) c.set(p.status, (c.get(p.status) ?? 0) + 1);
    return c;
  }, [pods]);

  const scroller = useRef<HTMLDivElement>(null);
  const virtual = useVirtualizer({
    count: shown.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW,
    overscan: 10,
    // The window's size until the list's box is measured: the first render already holds the rows in view.
    initialRect: { width: window.innerWidth, height: window.innerHeight },
  });

  return (
    <section className="pods-page">
      <div className="page-head">
        <h1>Pods</h1>
        <span className="muted">{pods ? `${shown.length} of ${pods.length}` : ''}</span>
        <span className="spacer" />
        <Link href="/pods/new" className="button primary">
          New pod
        </Link>
      </div>
      <div className="filters">
        <input type="search" placeholder="Search name, id, image, node…" value={search} onChange={(e) => setSearch(e.target.value)} aria-label="Search pods" />
        <select value={status} onChange={(e) => setStatus(e.target.value as PodStatus | '')} aria-label="Status">
          <option value="">Every status</option>
          {POD_STATUSES.map((s) => (
            <option key={s} value={s}>
              {s} {counts.get(s) ? `(${counts.get(s)})` : ''}
            </option>
          ))}
        </select>
        <label className="check">
          <input type="checkbox" checked={showTerminated} onChange={(e) => setShowTerminated(e.target.checked)} /> terminated too
        </label>
      </div>
      <ErrorBox error={error} />
      <div className="pod-table" role="table" aria-label="Pods" data-state={pods ? 'ready' : 'loading'} data-count={shown.length}>
        <div className="pod-row head" role="row">
          <span role="columnheader">Name</span>
          <span role="columnheader">Status</span>
          <span role="columnheader">GPU</span>
          <span role="columnheader">Image</span>
          <span role="columnheader">Uptime</span>
          <span role="columnheader">Ports</span>
          <span role="columnheader">Node</span>
        </div>
        <div className="pod-rows" ref={scroller}>
          {pods && shown.length === 0 && <p className="empty muted">{pods.length ? 'No pod matches.' : 'No pods yet.'}</p>}
          <div style={{ height: virtual.getTotalSize(), position: 'relative' }}>
            {virtual.getVirtualItems().map((v) => (
              <PodRow key={shown[v.index]!.id} pod={shown[v.index]!} top={v.start} now={now} node={shown[v.index]!.nodeId ? (nodeNames.get(shown[v.index]!.nodeId!) ?? shown[v.index]!.nodeId!) : '—'} />
            ))}
          </div>
        </div>
      </div>
    </section>
  );
}

function PodRow({ pod, top, now, node }: { pod: PodSummary; top: number; now: number; node: string }) {
  return (
    <div className="pod-row" role="row" data-pod={pod.id} style={{ transform: `translateY(${top}px)` }}>
      <span role="cell" className="name">
        <Link href={`/pods/${pod.id}`}>{pod.name}</Link>
        <small className="muted mono">{pod.id}</small>
      </span>
      <span role="cell" title={pod.statusMessage ?? ''}>
        <StatusBadge status={pod.status} />
      </span>
      <span role="cell">{gpus(pod)}</span>
      <span role="cell" className="mono ellipsis" title={pod.image ?? ''}>
        {pod.image ?? '—'}
      </span>
      <span role="cell">{uptime(pod, now)}</span>
      <span role="cell" className="mono ellipsis" title={pod.ports.join(', ')}>
        {pod.ports.join(', ') || '—'}
      </span>
      <span role="cell" className="ellipsis">
        {node}
      </span>
    </div>
  );
}
