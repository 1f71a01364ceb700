// A pod's instances and containers with their health and endpoints (from the live native view), and
// the pod's Marathon deployments with rollback (`/marathon/v2/deployments`, docs/marathon.md): what
// DC/OS's pod page showed.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError } from '../api/client';
import type { ContainerSpecView, InstanceDetail, MarathonDeployment, PodView } from '../api/types';
import { useApi } from '../auth';
import { ErrorBox } from './error-box';

/** Calls the Marathon API, whose errors are `{message}`, turned into the console's ApiError. */
async function marathon<T>(key: string, method: string, path: string, signal?: AbortSignal): Promise<T> {
  const res = await fetch(`/marathon/v2${path}`, { method, headers: { authorization: `Bearer ${key}` }, ...(signal ? { signal } : {}) });
  const body = (await res.json().catch(() => ({}))) as T & { message?: string };
  if (!res.ok) throw new ApiError(res.status, `HTTP ${res.status}`, body.message, undefined, [], false);
  return body;
}

function Health({ healthy, checked }: { healthy: boolean | null | undefined; checked: boolean }) {
  if (!checked) return <span className="small muted">no check</span>;
  if (healthy === true) return <span className="mark mark-answering health" data-healthy="true">healthy</span>;
  if (healthy === false) return <span className="mark health mark-unhealthy" data-healthy="false">unhealthy</span>;
  return <span className="mark mark-checking health" data-healthy="unknown">not checked yet</span>;
}

export default function Instances({ pod }: { pod: PodView }) {
  const api = useApi();
  const qc = useQueryClient();
  const specs = pod.spec.containers as ContainerSpecView[];
  const marathonId = (pod.spec.marathon as { id?: string } | null)?.id ?? `/${pod.id}`;
  const deployments = useQuery({
    queryKey: ['marathon-deployments'],
    queryFn: ({ signal }) => marathon<MarathonDeployment[]>(api.key, 'GET', '/deployments', signal),
    refetchInterval: 3000,
  });
  const mine = deployments.data?.filter((d) => d.affectedPods.includes(marathonId)) ?? [];
  const rollback = useMutation({
    mutationFn: (id: string) => marathon<{ deploymentId: string }>(api.key, 'DELETE', `/deployments/${encodeURIComponent(id)}`),
    onSettled: () => qc.invalidateQueries({ queryKey: ['marathon-deployments'] }),
  });

  return (
    <div className="instances">
      <p className="small muted">
        Marathon id <code>{marathonId}</code> · {pod.instances.length} instance{pod.instances.length === 1 ? '' : 's'} · version {pod.specVersion}
      </p>
      {(pod.instances as InstanceDetail[]).map((inst) => (
        <div key={inst.id} className="card instance" data-instance={inst.id}>
          <div className="instance-head">
            <strong className="mono">{inst.id}</strong>
            <span className={`mark ${inst.state === 'running' ? 'mark-answering' : 'mark-checking'}`}>{inst.state}</span>
            <Health healthy={inst.healthy} checked={specs.some((c) => c.healthCheck)} />
            <span className="small muted">
              node {inst.nodeId ?? '—'} · version {inst.specVersion} · {inst.restartCount} restarts
            </span>
          </div>
          {inst.message && <p className="small">{inst.message}</p>}
          <table className="plain-table">
            <thead>
              <tr>
                <th>Container</th>
                <th>Image</th>
                <th>State</th>
                <th>Health</th>
                <th>Endpoints</th>
              </tr>
            </thead>
            <tbody>
              {inst.containers.map((c) => {
                const spec = specs.find((s) => s.name === c.name);
                return (
                  <tr key={c.name} className="container-row" data-container={c.name} data-state={c.state}>
                    <td className="mono">{c.name}</td>
                    <td className="mono small">{spec?.image}</td>
                    <td>
                      {c.state}
                      {c.exitCode !== null ? ` (exit ${c.exitCode})` : ''}
                    </td>
                    <td>
                      <Health healthy={c.healthy} checked={Boolean(spec?.healthCheck)} />
                    </td>
                    <td className="small">
                      {(spec?.endpoints ?? []).map((e) => {
                        const host = inst.endpoints[e.name];
                        return (
                          <div key={e.name} className="mono">
                            {e.name}: {e.containerPort ?? '—'}
                            {host ? ` → ${pod.publicIp ?? ''}:${host}` : ''} {e.protocols.join('/')}
                          </div>
                        );
                      })}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      ))}
      <h3>Deployments</h3>
      <ErrorBox error={deployments.error ?? rollback.error} />
      {mine.length === 0 ? (
        <p className="small muted">None in progress: every instance runs version {pod.specVersion}.</p>
      ) : (
        <ul className="plain">
          {mine.map((d) => (
            <li key={d.id} className="deployment" data-deployment={d.id}>
              <code>{d.id}</code> {d.currentActions.map((a) => a.action).join(', ')} (step {d.currentStep} of {d.totalSteps}), version {d.version}{' '}
              <button onClick={() => rollback.mutate(d.id)} disabled={rollback.isPending} title="A new deployment back to the version before this one">
                Roll back
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
