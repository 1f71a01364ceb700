// A pod's page: status and why, actions with what each one loses, Connect, and the spec in brief.
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link } from 'wouter';
import { podKey, usePod } from '../api/pod';
import type { PodAction, PodView } from '../api/types';
import { useApi } from '../auth';
import { Confirm } from '../components/confirm';
import { Connect } from '../components/connect';
import { PodTabs } from '../components/pod-tabs';
import { ErrorBox } from '../components/error-box';
import { StatusBadge } from '../components/status';
import { useNow } from '../clock';
import { bytes, gpus, uptime } from '../format';

/** What an action does to the pod's storage and resources, as docs/api.md's table says; null: nothing to confirm. */
function consequences(action: PodAction, pod: PodView): { lost: string[]; kept: string[] } | null {
  const volume = pod.spec.networkVolumeId
    ? `the network volume at ${pod.spec.volumeMountPath}`
    : pod.spec.volumeGb > 0
      ? `the volume disk at ${pod.spec.volumeMountPath} (${pod.spec.volumeGb} GB)`
      : null;
  switch (action) {
    case 'start':
      return null;
    case 'stop':
      return {
        lost: ['the container disk is wiped (the containers are removed)', ...(pod.gpuCount ? ['its GPUs are released; a start must find them free again on this node'] : [])],
        kept: volume ? [volume] : [],
      };
    case 'restart':
      return { lost: ['the running processes are restarted'], kept: ['the container disk', ...(volume ? [volume] : [])] };
    case 'reset':
      return { lost: ['the container disk is wiped (the containers are recreated)', 'TCP ports get new host ports'], kept: volume ? [volume] : [] };
    case 'terminate':
      return {
        lost: [
          'the container disk is deleted',
          ...(pod.spec.networkVolumeId ? [] : pod.spec.volumeGb > 0 ? [`the volume disk at ${pod.spec.volumeMountPath} (${pod.spec.volumeGb} GB) is deleted`] : []),
          'the pod cannot be started again',
        ],
        kept: pod.spec.networkVolumeId ? [`the network volume (${pod.spec.networkVolumeId})`] : [],
      };
  }
}

const LABEL: Record<PodAction, string> = { start: 'Start', stop: 'Stop', restart: 'Restart', reset: 'Reset', terminate: 'Terminate' };

export default function PodPage({ id }: { id: string }) {
  const api = useApi();
  const qc = useQueryClient();
  const pod = usePod(api, id);
  const now = useNow(1000);
  const [asking, setAsking] = useState<PodAction>();
  const act = useMutation({
    mutationFn: (a: PodAction) => api.post<PodView>(`/pods/${id}/${a}`),
    onSuccess: (p) => qc.setQueryData(podKey(id), p),
  });

  if (pod.error && !pod.data) return <ErrorBox error={pod.error} />;
  const p = pod.data;
  if (!p) return <p className="muted">Loading…</p>;
  const run = (a: PodAction) => {
    setAsking(undefined);
    act.mutate(a);
  };
  const question = asking ? consequences(asking, p) : null;
  const inst = p.instances[0];
  const progress = p.pull && p.pull.total > 0 ? Math.min(1, p.pull.current / p.pull.total) : null;

  return (
    <section className="pod-page" data-pod={p.id} data-status={p.status}>
      <p className="crumbs">
        <Link href="/pods">Pods</Link> / <span className="mono">{p.id}</span>
      </p>
      <div className="page-head">
        <h1>{p.name}</h1>
        <StatusBadge status={p.status} />
        <span className="spacer" />
        <div className="actions">
          {(['start', 'stop', 'restart', 'reset', 'terminate'] as PodAction[]).map((a) => (
            <button
              key={a}
              className={a === 'terminate' ? 'danger' : ''}
              disabled={!p.allowedActions.includes(a) || act.isPending}
              title={p.allowedActions.includes(a) ? '' : `not while ${p.status}`}
              onClick={() => (consequences(a, p) ? setAsking(a) : run(a))}
            >
              {LABEL[a]}
            </button>
          ))}
        </div>
      </div>
      <ErrorBox error={act.error} />
      {asking && question && (
        <Confirm title={`${LABEL[asking]} ${p.name}?`} confirmLabel={LABEL[asking]} danger={asking !== 'restart'} onCancel={() => setAsking(undefined)} onConfirm={() => run(asking)}>
          <ul className="lost">
            {question.lost.map((l) => (
              <li key={l}>{l}</li>
            ))}
          </ul>
          {question.kept.length > 0 && <p className="muted">Kept: {question.kept.join(', ')}.</p>}
        </Confirm>
      )}

      <div className="card status-card">
        <p className="status-message" aria-label="Status message">
          {p.statusMessage ?? (p.status === 'RUNNING' ? `Running for ${uptime(p, now)}.` : `${p.status}, asked to be ${p.desiredStatus}.`)}
        </p>
        {p.pull && (
          <div className="pull" aria-label="Image pull">
            <span className="mono small">pulling {p.pull.image}</span>
            <progress max={1} value={progress ?? undefined} />
            <span className="small muted">{p.pull.total ? `${bytes(p.pull.current)} of ${bytes(p.pull.total)}` : 'starting'}</span>
          </div>
        )}
        {p.exitCode !== null && <p>Exit code {p.exitCode}</p>}
        {p.lastLogLines.length > 0 && p.status !== 'RUNNING' && <pre className="log-tail">{p.lastLogLines.join('\n')}</pre>}
      </div>

      <div className="pod-columns">
        <Connect pod={p} />
        <div className="card details">
          <h2>Pod</h2>
          <dl>
            <dt>Image</dt>
            <dd className="mono">{p.image ?? p.spec.containers.map((c) => c.image).join(', ')}</dd>
            <dt>Compute</dt>
            <dd>
              {gpus(p)}
              {p.spec.vcpuCount !== null ? `, ${p.spec.vcpuCount} vCPU` : ''}
              {p.spec.memoryGb !== null ? `, ${p.spec.memoryGb} GB` : ''}
            </dd>
            <dt>Container disk</dt>
            <dd>
              {p.spec.containerDiskGb} GB{inst?.disk ? `, ${bytes(inst.disk.containerDiskBytes)} used` : ''}
            </dd>
            <dt>Volume</dt>
            <dd>
              {p.spec.networkVolumeId ? `network volume ${p.spec.networkVolumeId}` : p.spec.volumeGb > 0 ? `${p.spec.volumeGb} GB volume disk` : 'none'}
              {p.spec.networkVolumeId || p.spec.volumeGb > 0 ? ` at ${p.spec.volumeMountPath}` : ''}
              {inst?.disk && !p.spec.networkVolumeId && p.spec.volumeGb > 0 ? `, ${bytes(inst.disk.volumeDiskBytes)} used` : ''}
            </dd>
            <dt>Node</dt>
            <dd>{p.nodeId ?? '—'}</dd>
            <dt>Restarts</dt>
            <dd>{p.restartCount}</dd>
            <dt>Version</dt>
            <dd>{p.specVersion}</dd>
            <dt>Created</dt>
            <dd>{new Date(p.createdAt).toLocaleString()}</dd>
          </dl>
          {inst?.gpus.length ? (
            <p className="small">
              GPUs: {inst.gpus.map((g) => `#${g.index} ${g.name}${g.simulated ? ' (simulated)' : ''}`).join(', ')}
            </p>
          ) : null}
        </div>
      </div>
      <PodTabs pod={p} />
    </section>
  );
}
