// A pod's spec versions (`GET /pods/{id}/versions`), newest first, each with what changed from the one before.
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { jsonDiff, type DiffRow } from '../json-diff';
import { useApi } from '../auth';
import { ErrorBox } from './error-box';

interface Version {
  podId: string;
  version: number;
  spec: Record<string, unknown>;
  createdAt: string;
}

const show = (v: unknown) => (v === undefined ? '' : JSON.stringify(v, null, 1).replace(/\n\s*/g, ' '));

function Diff({ rows }: { rows: DiffRow[] }) {
  if (rows.length === 0) return <p className="small muted">No change to the spec (the same spec sent again).</p>;
  return (
    <table className="diff">
      <tbody>
        {rows.map((r) => (
          <tr key={r.path} className={`diff-${r.kind}`} data-path={r.path}>
            <td className="mono">{r.path}</td>
            <td className="mono before">{show(r.before)}</td>
            <td className="arrow">→</td>
            <td className="mono after">{show(r.after)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export default function Versions({ podId, current }: { podId: string; current: number }) {
  const api = useApi();
  const q = useQuery({
    queryKey: ['pod-versions', podId, current],
    queryFn: ({ signal }) => api.get<{ versions: Version[] }>(`/pods/${encodeURIComponent(podId)}/versions`, signal),
  });
  const [whole, setWhole] = useState<number>();
  if (q.error) return <ErrorBox error={q.error} />;
  if (!q.data) return <p className="muted">Loading…</p>;
  const versions = q.data.versions;
  return (
    <ol className="versions" reversed>
      {[...versions].reverse().map((v) => {
        const prev = versions.find((x) => x.version === v.version - 1) ?? versions[versions.indexOf(v) - 1];
        return (
          <li key={v.version} className="version" data-version={v.version}>
            <div className="version-head">
              <strong>Version {v.version}</strong>
              {v.version === current && <span className="mark mark-answering">current</span>}
              <span className="small muted">{new Date(v.createdAt).toLocaleString()}</span>
              <span className="spacer" />
              <button className="link" onClick={() => setWhole(whole === v.version ? undefined : v.version)}>
                {whole === v.version ? 'Hide the spec' : 'Whole spec'}
              </button>
            </div>
            {prev ? <Diff rows={jsonDiff(prev.spec, v.spec)} /> : <p className="small muted">The spec the pod was created with.</p>}
            {whole === v.version && <pre className="spec-json">{JSON.stringify(v.spec, null, 2)}</pre>}
          </li>
        );
      })}
    </ol>
  );
}
