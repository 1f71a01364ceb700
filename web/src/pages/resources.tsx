// The account's other resources, one page each: network volumes, templates, secrets (names only),
// registry credentials, SSH keys, API keys, and the nodes with their GPUs. Each lists what the API
// answers, creates with the API's per-field problems under the fields, and deletes where the API can.
// One lazy chunk for all of them.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent, type ReactNode } from 'react';
import { ApiError } from '../api/client';
import type { ApiKeyView, NetworkVolume, NodeView, RegistryAuth, Secret, SshKeyView, Template } from '../api/types';
import { useApi } from '../auth';
import { Confirm } from '../components/confirm';
import { CopyText } from '../components/copy';
import { ErrorBox } from '../components/error-box';
import { Field } from '../components/field';
import '../components/pod-tabs.css';

interface Column<T> {
  label: string;
  cell: (item: T) => ReactNode;
}

interface InputField {
  name: string;
  label: string;
  kind?: 'text' | 'number' | 'textarea' | 'password' | 'checkbox';
  placeholder?: string;
  hint?: string;
}

interface ResourcePageProps<T> {
  title: string;
  /** The list's query key and API path; `pick` takes the items out of the answer. */
  path: string;
  pick: (answer: never) => T[];
  idOf: (item: T) => string;
  nameOf: (item: T) => string;
  columns: Column<T>[];
  intro?: ReactNode;
  create?: {
    fields: InputField[];
    /** The request for the form's values; throwing an Error shows it as the form's error. */
    send: (api: ReturnType<typeof useApi>, values: Record<string, string | boolean>) => Promise<unknown>;
    /** Said after a create, with the answer (an API key's secret, shown this once). */
    after?: (answer: never) => ReactNode;
  };
  /** The DELETE path of an item; absent: the API cannot delete these. */
  del?: (item: T) => string;
  /** What a delete loses, for the confirmation. */
  loses?: (item: T) => string;
}

/** The problem messages of `error` for the form field `name` (`/name`, `/pod/image` → pod). */
function problemsOf(error: unknown, name: string): string[] | undefined {
  if (!(error instanceof ApiError)) return undefined;
  const m = error.problems.filter((p) => p.path.split('/')[1]?.replace(/\(\d+\)$/, '') === name).map((p) => p.message);
  return m.length ? m : undefined;
}

function ResourcePage<T>(props: ResourcePageProps<T>) {
  const api = useApi();
  const qc = useQueryClient();
  const list = useQuery({ queryKey: ['resource', props.path], queryFn: ({ signal }) => api.get<unknown>(props.path, signal) });
  const [values, setValues] = useState<Record<string, string | boolean>>({});
  const [created, setCreated] = useState<ReactNode>();
  const [deleting, setDeleting] = useState<T>();
  const create = useMutation({
    mutationFn: (v: Record<string, string | boolean>) => props.create!.send(api, v),
    onSuccess: (answer) => {
      setValues({});
      setCreated(props.create?.after?.(answer as never));
      void qc.invalidateQueries({ queryKey: ['resource', props.path] });
    },
  });
  const remove = useMutation({
    mutationFn: (item: T) => api.del(props.del!(item)),
    onSettled: () => qc.invalidateQueries({ queryKey: ['resource', props.path] }),
  });
  const items = list.data ? props.pick(list.data as never) : undefined;
  const shown = new Set(props.create?.fields.map((f) => `/${f.name}`));
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setCreated(undefined);
    create.mutate(values);
  };

  return (
    <section className="resource-page" data-resource={props.path.slice(1)}>
      <div className="page-head">
        <h1>{props.title}</h1>
      </div>
      {props.intro && <p className="muted">{props.intro}</p>}
      <ErrorBox error={list.error} />
      <div className="card">
        {!items ? (
          <p className="muted">Loading…</p>
        ) : items.length === 0 ? (
          <p className="muted empty">None yet.</p>
        ) : (
          <table className="plain-table resource-table" data-count={items.length}>
            <thead>
              <tr>
                {props.columns.map((c) => (
                  <th key={c.label}>{c.label}</th>
                ))}
                {props.del && <th />}
              </tr>
            </thead>
            <tbody>
              {items.map((item) => (
                <tr key={props.idOf(item)} className="resource-row" data-id={props.idOf(item)}>
                  {props.columns.map((c) => (
                    <td key={c.label}>{c.cell(item)}</td>
                  ))}
                  {props.del && (
                    <td>
                      <button className="link" onClick={() => setDeleting(item)}>
                        Delete
                      </button>
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <ErrorBox error={remove.error} />
      </div>
      {deleting && (
        <Confirm
          title={`Delete ${props.nameOf(deleting)}?`}
          confirmLabel="Delete"
          danger
          onCancel={() => setDeleting(undefined)}
          onConfirm={() => {
            remove.mutate(deleting);
            setDeleting(undefined);
          }}
        >
          <p>{props.loses?.(deleting) ?? 'It cannot be brought back.'}</p>
        </Confirm>
      )}
      {props.create && (
        <form className="card form-grid resource-form" onSubmit={submit}>
          <h2>Add</h2>
          {props.create.fields.map((f) => (
            <Field key={f.name} label={f.label} name={f.name} error={problemsOf(create.error, f.name)} hint={f.hint}>
              {f.kind === 'textarea' ? (
                <textarea name={f.name} rows={4} placeholder={f.placeholder} value={String(values[f.name] ?? '')} onChange={(e) => setValues({ ...values, [f.name]: e.target.value })} />
              ) : f.kind === 'checkbox' ? (
                <input type="checkbox" name={f.name} checked={values[f.name] === true} onChange={(e) => setValues({ ...values, [f.name]: e.target.checked })} />
              ) : (
                <input name={f.name} type={f.kind ?? 'text'} placeholder={f.placeholder} value={String(values[f.name] ?? '')} onChange={(e) => setValues({ ...values, [f.name]: e.target.value })} />
              )}
            </Field>
          ))}
          <ErrorBox error={create.error} shownPaths={shown} />
          {created}
          <div>
            <button className="primary" type="submit" disabled={create.isPending}>
              Add
            </button>
          </div>
        </form>
      )}
    </section>
  );
}

const when = (iso: string | null | undefined) => (iso ? new Date(iso).toLocaleString() : '—');
/** A number field as the API should judge it: a number when it reads as one, else the text as typed. */
const num = (v: string | boolean | undefined) => (v === undefined || v === '' ? undefined : Number.isNaN(Number(v)) ? v : Number(v));
const str = (v: string | boolean | undefined) => (v === undefined || v === '' ? undefined : String(v));

export function NetworkVolumesPage() {
  return (
    <ResourcePage<NetworkVolume & { createdAt?: string }>
      title="Network volumes"
      path="/network-volumes"
      pick={(a: { networkVolumes: NetworkVolume[] }) => a.networkVolumes}
      idOf={(v) => v.id}
      nameOf={(v) => v.name}
      intro="Storage that outlives pods: attach one at create time; it keeps its files across stops and terminations."
      columns={[
        { label: 'Name', cell: (v) => v.name },
        { label: 'Id', cell: (v) => <code>{v.id}</code> },
        { label: 'Size', cell: (v) => `${v.sizeGb} GB` },
        { label: 'Data center', cell: (v) => v.dataCenterId },
        // Pods that use a node-held volume run on that node only.
        { label: 'Held by', cell: (v) => (v.storage === 'nfs' ? 'shared (NFS)' : v.nodeId ? (v.nodeName ?? v.nodeId) : v.storage === 'node' ? 'its first pod’s node' : '—') },
        { label: 'Created', cell: (v) => when(v.createdAt) },
      ]}
      create={{
        fields: [
          { name: 'name', label: 'Name' },
          { name: 'sizeGb', label: 'Size (GB)', kind: 'number' },
          { name: 'dataCenterId', label: 'Data center', hint: 'default: the first the nodes report' },
        ],
        send: (api, v) => api.post('/network-volumes', { name: str(v.name), sizeGb: num(v.sizeGb), dataCenterId: str(v.dataCenterId) }),
      }}
      del={(v) => `/network-volumes/${v.id}`}
      loses={(v) => `Every file on ${v.name} (${v.sizeGb} GB) is deleted. The API refuses while a pod that is not terminated uses it.`}
    />
  );
}

export function TemplatesPage() {
  return (
    <ResourcePage<Template>
      title="Templates"
      path="/templates"
      pick={(a: { templates: Template[] }) => a.templates}
      idOf={(t) => t.id}
      nameOf={(t) => t.name}
      intro="Pod settings to start from: a create with templateId takes them, and what the request gives wins."
      columns={[
        { label: 'Name', cell: (t) => t.name },
        { label: 'Id', cell: (t) => <code>{t.id}</code> },
        { label: 'Image', cell: (t) => <code>{String(t.pod.image ?? '—')}</code> },
        { label: 'Pod fields', cell: (t) => <span className="small">{Object.keys(t.pod).join(', ')}</span> },
      ]}
      create={{
        fields: [
          { name: 'name', label: 'Name' },
          { name: 'pod', label: 'Pod fields (JSON, as for a create)', kind: 'textarea', placeholder: '{"image": "pytorch/pytorch:latest", "ports": "8888/http", "volumeGb": 20}' },
          { name: 'readme', label: 'Readme', kind: 'textarea' },
        ],
        send: (api, v) => {
          let pod: unknown;
          try {
            pod = JSON.parse(String(v.pod ?? '{}') || '{}');
          } catch (e) {
            throw new ApiError(400, 'Invalid request', `the pod fields are not JSON: ${(e as Error).message}`, undefined, [{ path: '/pod', message: 'is not valid JSON' }], false);
          }
          return api.post('/templates', { name: str(v.name), pod, readme: str(v.readme) });
        },
      }}
      del={(t) => `/templates/${t.id}`}
      loses={() => 'Pods made from it keep their settings; new pods cannot use it.'}
    />
  );
}

export function SecretsPage() {
  return (
    <ResourcePage<Secret & { createdAt: string; updatedAt: string }>
      title="Secrets"
      path="/secrets"
      pick={(a: { secrets: (Secret & { createdAt: string; updatedAt: string })[] }) => a.secrets}
      idOf={(s) => s.name}
      nameOf={(s) => s.name}
      intro="Values pods get as environment variables. The API never answers a value: only names and times are shown."
      columns={[
        { label: 'Name', cell: (s) => <code>{s.name}</code> },
        { label: 'Created', cell: (s) => when(s.createdAt) },
        { label: 'Updated', cell: (s) => when(s.updatedAt) },
      ]}
      create={{
        fields: [
          { name: 'name', label: 'Name', placeholder: 'db/password' },
          { name: 'value', label: 'Value', kind: 'password', hint: 'a secret of that name gets this value instead' },
        ],
        send: (api, v) => api.put(`/secrets/${encodeURIComponent(String(v.name ?? ''))}`, { value: v.value ?? '' }),
      }}
      del={(s) => `/secrets/${encodeURIComponent(s.name)}`}
      loses={(s) => `Pods that name ${s.name} cannot start again until it is set anew.`}
    />
  );
}

export function RegistryAuthsPage() {
  return (
    <ResourcePage<RegistryAuth>
      title="Registry credentials"
      path="/registry-auths"
      pick={(a: { registryAuths: RegistryAuth[] }) => a.registryAuths}
      idOf={(r) => r.id}
      nameOf={(r) => r.name}
      intro="A user name and password for pulling private images; a pod names one with registryAuthId. The password is never shown again."
      columns={[
        { label: 'Name', cell: (r) => r.name },
        { label: 'Id', cell: (r) => <code>{r.id}</code> },
        { label: 'User name', cell: (r) => r.username },
        { label: 'Created', cell: (r) => when(r.createdAt) },
      ]}
      create={{
        fields: [
          { name: 'name', label: 'Name' },
          { name: 'username', label: 'User name' },
          { name: 'password', label: 'Password or token', kind: 'password' },
        ],
        send: (api, v) => api.post('/registry-auths', { name: str(v.name), username: str(v.username), password: str(v.password) }),
      }}
      del={(r) => `/registry-auths/${r.id}`}
    />
  );
}

export function SshKeysPage() {
  return (
    <ResourcePage<SshKeyView>
      title="SSH keys"
      path="/ssh-keys"
      pick={(a: { sshKeys: SshKeyView[] }) => a.sshKeys}
      idOf={(k) => k.id}
      nameOf={(k) => k.name}
      intro="Your public keys: the SSH gateway lets them into your pods."
      columns={[
        { label: 'Name', cell: (k) => k.name },
        { label: 'Fingerprint', cell: (k) => <code>{k.fingerprint}</code> },
        { label: 'Added', cell: (k) => when(k.createdAt) },
      ]}
      create={{
        fields: [
          { name: 'publicKey', label: 'Public key', kind: 'textarea', placeholder: 'ssh-ed25519 AAAA… me@laptop' },
          { name: 'name', label: 'Name', hint: "default: the key's comment" },
        ],
        send: (api, v) => api.post('/ssh-keys', { publicKey: String(v.publicKey ?? '').trim(), name: str(v.name) }),
      }}
      del={(k) => `/ssh-keys/${k.id}`}
    />
  );
}

export function ApiKeysPage() {
  return (
    <ResourcePage<ApiKeyView>
      title="API keys"
      path="/keys"
      pick={(a: { keys: ApiKeyView[] }) => a.keys}
      idOf={(k) => k.id}
      nameOf={(k) => k.name}
      intro="Keys for the API, the CLI and this console. A key's secret is shown once, when it is made."
      columns={[
        { label: 'Name', cell: (k) => k.name },
        { label: 'Owner', cell: (k) => `${k.owner}${k.admin ? ' (admin)' : ''}` },
        { label: 'Prefix', cell: (k) => <code>{k.prefix}…</code> },
        { label: 'Created', cell: (k) => when(k.createdAt) },
        { label: 'Last used', cell: (k) => when(k.lastUsedAt) },
      ]}
      create={{
        fields: [
          { name: 'name', label: 'Name' },
          { name: 'owner', label: 'Owner', hint: 'default: yours; only an admin key may name another' },
          { name: 'admin', label: 'Admin', kind: 'checkbox' },
        ],
        send: (api, v) => api.post('/keys', { name: str(v.name), owner: str(v.owner), ...(v.admin === true ? { admin: true } : {}) }),
        after: (k: { key: string }) => (
          <p className="new-key">
            The new key, shown this once: <CopyText text={k.key} />
          </p>
        ),
      }}
      del={(k) => `/keys/${k.id}`}
      loses={(k) => `${k.name} stops working at once${k.lastUsedAt ? '' : ' (it was never used)'}. If it is the key you signed in with, you are signed out.`}
    />
  );
}

export function NodesPage() {
  return (
    <ResourcePage<NodeView>
      title="Nodes"
      path="/nodes"
      pick={(a: { nodes: NodeView[] }) => a.nodes}
      idOf={(n) => n.id}
      nameOf={(n) => n.name}
      intro="The machines that run pods, their GPUs, and what the running instances hold of them."
      columns={[
        { label: 'Node', cell: (n) => (<><strong>{n.name}</strong><div className="small muted mono">{n.id} · {n.publicIp}</div></>) },
        { label: 'Status', cell: (n) => <span className={`mark ${n.status === 'READY' ? 'mark-answering' : 'mark-unhealthy'}`}>{n.status}</span> },
        { label: 'CPUs', cell: (n) => `${n.allocated.cpus} of ${n.capacity.cpus} allocated` },
        { label: 'Memory', cell: (n) => `${Math.round(n.allocated.memoryMb / 1024)} of ${Math.round(n.capacity.memoryMb / 1024)} GB` },
        {
          label: 'GPUs',
          cell: (n) =>
            n.gpus.length === 0 ? (
              <span className="muted">none</span>
            ) : (
              <ul className="plain small">
                {n.gpus.map((g) => (
                  <li key={g.uuid} data-gpu={g.index}>
                    #{g.index} {g.name} ({Math.round(g.memoryMb / 1024)} GB){g.simulated ? ', simulated' : ''} — {g.inUse ? 'in use' : 'free'}
                  </li>
                ))}
              </ul>
            ),
        },
        { label: 'Instances', cell: (n) => n.instances },
      ]}
    />
  );
}
