// The lower half of a pod's page: terminal, logs, instances (containers, health, endpoints,
// deployments) and versions. Each tab loads its code when first opened; the open tab is kept in the
// URL's hash, so a reload comes back to it (and the terminal re-attaches to its shell).
import { lazy, Suspense, useEffect, useState } from 'react';
import type { PodView } from '../api/types';
import './pod-tabs.css';

const WebTerminal = lazy(() => import('./terminal'));
const Logs = lazy(() => import('./logs'));
const Versions = lazy(() => import('./versions'));
const Instances = lazy(() => import('./instances'));

const TABS = ['terminal', 'logs', 'instances', 'versions'] as const;
type Tab = (typeof TABS)[number];
const LABEL: Record<Tab, string> = { terminal: 'Terminal', logs: 'Logs', instances: 'Instances', versions: 'Versions' };

const fromHash = (): Tab | undefined => TABS.find((t) => `#${t}` === location.hash);

export function PodTabs({ pod }: { pod: PodView }) {
  const [tab, setTab] = useState<Tab | undefined>(fromHash);
  const names = pod.spec.containers.map((c) => c.name);
  const [container, setContainer] = useState<string>();
  const running = pod.status === 'RUNNING';
  useEffect(() => {
    const onHash = () => setTab(fromHash());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  const open = (t: Tab) => {
    history.replaceState(null, '', `#${t}`);
    setTab(t);
  };
  const picked = container && names.includes(container) ? container : names.length > 1 ? names[0] : undefined;

  return (
    <div className="card pod-tabs">
      <div className="tab-bar" role="tablist">
        {TABS.map((t) => (
          <button key={t} role="tab" aria-selected={tab === t} className={tab === t ? 'tab active' : 'tab'} onClick={() => open(t)}>
            {LABEL[t]}
            {t === 'instances' && names.length > 1 ? ` (${names.length} containers)` : ''}
          </button>
        ))}
        <span className="spacer" />
        {names.length > 1 && (tab === 'terminal' || tab === 'logs') && (
          <select aria-label="Container" value={picked} onChange={(e) => setContainer(e.target.value)}>
            {names.map((n) => (
              <option key={n}>{n}</option>
            ))}
          </select>
        )}
      </div>
      <Suspense fallback={<p className="muted">Loading…</p>}>
        {tab === 'terminal' &&
          (running ? (
            // A new start is a new container: a new shell (keyed on when it started).
            <WebTerminal key={`${pod.lastStartedAt}/${picked}`} podId={pod.id} container={picked} />
          ) : (
            <p className="muted">The pod is {pod.status}: a terminal opens in a running pod.</p>
          ))}
        {tab === 'logs' && <Logs key={`${pod.lastStartedAt}/${picked}`} podId={pod.id} container={picked} running={running} />}
        {tab === 'instances' && <Instances pod={pod} />}
        {tab === 'versions' && <Versions podId={pod.id} current={pod.specVersion} />}
        {!tab && <p className="muted small">Open a terminal in the pod, follow its logs, see its instances and containers, or its spec versions.</p>}
      </Suspense>
    </div>
  );
}
