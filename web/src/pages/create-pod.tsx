// Create a pod from a form or a template. The form checks nothing itself: the API's validation
// answers every problem with its field's path, and each is shown under its field.
import { useMutation, useQuery } from '@tanstack/react-query';
import { useMemo, useState, type FormEvent } from 'react';
import { useLocation } from 'wouter';
import { ApiError } from '../api/client';
import type { NetworkVolume, NodeView, PodView, Secret, Template } from '../api/types';
import { useApi } from '../auth';
import { ErrorBox } from '../components/error-box';
import { Field, fieldOf } from '../components/field';

interface Form {
  templateId: string;
  name: string;
  image: string;
  command: string;
  compute: 'gpu' | 'cpu';
  gpuType: string;
  gpuCount: string;
  vcpuCount: string;
  memoryGb: string;
  containerDiskGb: string;
  volumeGb: string;
  volumeMountPath: string;
  networkVolumeId: string;
  ports: string;
  env: string;
  secretEnv: string;
  startSsh: boolean;
}

const EMPTY: Form = {
  templateId: '',
  name: '',
  image: '',
  command: '',
  compute: 'cpu',
  gpuType: '',
  gpuCount: '1',
  vcpuCount: '',
  memoryGb: '',
  containerDiskGb: '',
  volumeGb: '',
  volumeMountPath: '',
  networkVolumeId: '',
  ports: '',
  env: '',
  secretEnv: '',
  startSsh: true,
};

/** API fields the form shows under another name. */
const FIELD_OF_API: Record<string, keyof Form> = { gpuTypeIds: 'gpuType', secrets: 'secretEnv', containers: 'image' };

/** `KEY=value` lines → a map; a line without `=` keeps its whole text as the name, for the API to judge. */
function pairs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const eq = line.indexOf('=');
    out[(eq < 0 ? line : line.slice(0, eq)).trim()] = eq < 0 ? '' : line.slice(eq + 1);
  }
  return out;
}

/**
 * A start command as argv, split as `sh` splits words (quotes and backslashes; no variables, globs
 * or pipes: run `sh -c "..."` for those), so that no shell is assumed in the image.
 */
export function argv(text: string): string[] {
  const out: string[] = [];
  let cur: string | null = null;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quote) {
      if (ch === quote) quote = null;
      else if (ch === '\\' && quote === '"' && i + 1 < text.length) cur += text[++i]!;
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      cur ??= '';
    } else if (ch === '\\' && i + 1 < text.length) cur = (cur ?? '') + text[++i]!;
    else if (/\s/.test(ch)) {
      if (cur !== null) out.push(cur);
      cur = null;
    } else cur = (cur ?? '') + ch;
  }
  if (cur !== null) out.push(cur);
  return out;
}

/** A number field as the API gets it: left out when empty (the template or default applies), else as typed. */
const num = (v: string): number | undefined => (v.trim() === '' ? undefined : Number(v));

/** The create body: only what the form says, so a template or the API's defaults fill in the rest. */
export function toBody(f: Form): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  const put = (k: string, v: unknown) => {
    if (v !== undefined && v !== '') body[k] = v;
  };
  put('templateId', f.templateId || undefined);
  put('name', f.name.trim());
  if (f.compute === 'gpu') {
    put('gpuCount', num(f.gpuCount));
    if (f.gpuType) body.gpuTypeIds = [f.gpuType];
  } else {
    body.gpuCount = 0;
    put('vcpuCount', num(f.vcpuCount));
    put('memoryGb', num(f.memoryGb));
  }
  put('containerDiskGb', num(f.containerDiskGb));
  put('volumeGb', num(f.volumeGb));
  put('volumeMountPath', f.volumeMountPath.trim());
  put('networkVolumeId', f.networkVolumeId || undefined);
  body.startSsh = f.startSsh;
  const container: Record<string, unknown> = {};
  if (f.image.trim() || !f.templateId) container.image = f.image.trim();
  const command = argv(f.command);
  if (command.length) container.command = command;
  const ports = f.ports.split(/[\s,]+/).filter(Boolean);
  if (ports.length) container.ports = ports;
  const env = pairs(f.env);
  if (Object.keys(env).length) container.env = env;
  const secretEnv = pairs(f.secretEnv);
  if (Object.keys(secretEnv).length) {
    // Secrets go in through a container's secretEnv, naming the pod's secrets; the pod names each
    // store secret under a name of its own (the store name with what a name cannot hold replaced).
    const alias = (s: string) => s.replace(/[^A-Za-z0-9_-]/g, '-');
    body.secrets = Object.fromEntries(Object.values(secretEnv).map((s) => [alias(s), s]));
    body.containers = [{ ...container, secretEnv: Object.fromEntries(Object.entries(secretEnv).map(([k, s]) => [k, alias(s)])) }];
  } else Object.assign(body, container);
  return body;
}

export default function CreatePodPage() {
  const api = useApi();
  const [, navigate] = useLocation();
  const [form, setForm] = useState<Form>(EMPTY);
  const set = <K extends keyof Form>(k: K, v: Form[K]) => setForm((f) => ({ ...f, [k]: v }));

  const templates = useQuery({ queryKey: ['templates'], queryFn: ({ signal }) => api.get<{ templates: Template[] }>('/templates', signal) });
  const volumes = useQuery({ queryKey: ['network-volumes'], queryFn: ({ signal }) => api.get<{ networkVolumes: NetworkVolume[] }>('/network-volumes', signal) });
  const secrets = useQuery({ queryKey: ['secrets'], queryFn: ({ signal }) => api.get<{ secrets: Secret[] }>('/secrets', signal) });
  const nodes = useQuery({ queryKey: ['nodes'], queryFn: ({ signal }) => api.get<{ nodes: NodeView[] }>('/nodes', signal) });
  const gpuTypes = useMemo(() => [...new Set((nodes.data?.nodes ?? []).flatMap((n) => n.gpus.map((g) => g.name)))].sort(), [nodes.data]);
  const template = templates.data?.templates.find((t) => t.id === form.templateId);
  const tpl = (k: string): string => {
    const v = template?.pod[k];
    return v === undefined || v === null ? '' : Array.isArray(v) ? v.join(', ') : typeof v === 'object' ? Object.entries(v).map(([a, b]) => `${a}=${String(b)}`).join(' ') : String(v);
  };

  const create = useMutation({
    mutationFn: (body: Record<string, unknown>) => api.post<PodView>('/pods', body),
    onSuccess: (pod) => navigate(`/pods/${pod.id}`),
  });
  const problems = create.error instanceof ApiError ? create.error.problems : [];
  const byField = new Map<string, string[]>();
  const shown = new Set<string>();
  for (const p of problems) {
    const f = fieldOf(p.path);
    const field = FIELD_OF_API[f] ?? f;
    if (!(field in EMPTY)) continue;
    // What is below the field's own name (`/env/MY-VAR` → `MY-VAR: ...`) stays in the message.
    const below = p.path.replace(/^\/containers\(0\)/, '').split('/').slice(2).join('/');
    byField.set(field, [...(byField.get(field) ?? []), below ? `${below}: ${p.message}` : p.message]);
    shown.add(p.path);
  }
  const err = (k: keyof Form) => byField.get(k);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate(toBody(form));
  };

  return (
    <section className="create-pod">
      <div className="page-head">
        <h1>New pod</h1>
      </div>
      <form onSubmit={submit} className="card form-grid" noValidate>
        <Field label="Template" name="templateId" error={err('templateId')} hint={template?.readme ?? 'Fields left empty take the template’s values.'}>
          <select name="templateId" value={form.templateId} onChange={(e) => set('templateId', e.target.value)}>
            <option value="">No template</option>
            {templates.data?.templates.map((t) => (
              <option key={t.id} value={t.id}>
                {t.name}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Name" name="name" error={err('name')}>
          <input name="name" value={form.name} onChange={(e) => set('name', e.target.value)} placeholder={tpl('name') || 'my pod'} />
        </Field>
        <Field label="Image" name="image" error={err('image')}>
          <input name="image" value={form.image} onChange={(e) => set('image', e.target.value)} placeholder={tpl('image') || 'nginx:alpine'} />
        </Field>

        <Field label="Start command" name="command" error={err('command')} hint="empty: the image's CMD; no shell unless you run one, e.g. sh -c &quot;…&quot;">
          <input name="command" value={form.command} onChange={(e) => set('command', e.target.value)} placeholder={tpl('command')} />
        </Field>

        <fieldset className="compute">
          <legend>Compute</legend>
          <label className="check">
            <input type="radio" name="compute" checked={form.compute === 'gpu'} onChange={() => set('compute', 'gpu')} /> GPU
          </label>
          <label className="check">
            <input type="radio" name="compute" checked={form.compute === 'cpu'} onChange={() => set('compute', 'cpu')} /> CPU only
          </label>
        </fieldset>
        {form.compute === 'gpu' ? (
          <div className="row">
            <Field label="GPU type" name="gpuType" error={err('gpuType')}>
              <select name="gpuType" value={form.gpuType} onChange={(e) => set('gpuType', e.target.value)}>
                <option value="">Any type</option>
                {gpuTypes.map((g) => (
                  <option key={g}>{g}</option>
                ))}
              </select>
            </Field>
            <Field label="GPU count" name="gpuCount" error={err('gpuCount')}>
              <input name="gpuCount" type="number" value={form.gpuCount} onChange={(e) => set('gpuCount', e.target.value)} />
            </Field>
          </div>
        ) : (
          <div className="row">
            <Field label="vCPUs" name="vcpuCount" error={err('vcpuCount')} hint="empty: no reservation, no limit">
              <input name="vcpuCount" type="number" step="any" value={form.vcpuCount} onChange={(e) => set('vcpuCount', e.target.value)} placeholder={tpl('vcpuCount')} />
            </Field>
            <Field label="Memory (GB)" name="memoryGb" error={err('memoryGb')} hint="empty: no reservation, no limit">
              <input name="memoryGb" type="number" step="any" value={form.memoryGb} onChange={(e) => set('memoryGb', e.target.value)} placeholder={tpl('memoryGb')} />
            </Field>
          </div>
        )}

        <div className="row">
          <Field label="Container disk (GB)" name="containerDiskGb" error={err('containerDiskGb')} hint="wiped on stop, reset and terminate">
            <input name="containerDiskGb" type="number" value={form.containerDiskGb} onChange={(e) => set('containerDiskGb', e.target.value)} placeholder={tpl('containerDiskGb') || '50'} />
          </Field>
          <Field label="Volume disk (GB)" name="volumeGb" error={err('volumeGb')} hint="kept over stop/start; 0: none">
            <input name="volumeGb" type="number" value={form.volumeGb} onChange={(e) => set('volumeGb', e.target.value)} placeholder={tpl('volumeGb') || '20'} />
          </Field>
          <Field label="Mount path" name="volumeMountPath" error={err('volumeMountPath')}>
            <input name="volumeMountPath" value={form.volumeMountPath} onChange={(e) => set('volumeMountPath', e.target.value)} placeholder={tpl('volumeMountPath') || '/workspace'} />
          </Field>
        </div>
        <Field label="Network volume" name="networkVolumeId" error={err('networkVolumeId')} hint="mounted at the mount path instead of the volume disk">
          <select name="networkVolumeId" value={form.networkVolumeId} onChange={(e) => set('networkVolumeId', e.target.value)}>
            <option value="">None</option>
            {volumes.data?.networkVolumes.map((v) => (
              <option key={v.id} value={v.id}>
                {v.name} ({v.sizeGb} GB, {v.dataCenterId})
              </option>
            ))}
          </select>
        </Field>
        <Field label="Ports" name="ports" error={err('ports')} hint="e.g. 8888/http, 22/tcp (http ports are served through the proxy)">
          <input name="ports" value={form.ports} onChange={(e) => set('ports', e.target.value)} placeholder={tpl('ports') || '8888/http, 22/tcp'} />
        </Field>
        <div className="row">
          <Field label="Environment" name="env" error={err('env')} hint="one KEY=value a line">
            <textarea name="env" rows={4} value={form.env} onChange={(e) => set('env', e.target.value)} placeholder={tpl('env') || 'JUPYTER_TOKEN=change-me'} />
          </Field>
          <Field label="Secrets as variables" name="secretEnv" error={err('secretEnv')} hint={secrets.data?.secrets.length ? `VAR=secret name; yours: ${secrets.data.secrets.map((s) => s.name).join(', ')}` : 'VAR=secret name (none stored yet)'}>
            <textarea name="secretEnv" rows={4} value={form.secretEnv} onChange={(e) => set('secretEnv', e.target.value)} placeholder="DB_PASSWORD=db/password" />
          </Field>
        </div>
        <label className="check">
          <input type="checkbox" name="startSsh" checked={form.startSsh} onChange={(e) => set('startSsh', e.target.checked)} /> Start SSH (your SSH keys in <code>PUBLIC_KEY</code>)
        </label>
        <ErrorBox error={create.error} shownPaths={shown} />
        <div>
          <button type="submit" className="primary" disabled={create.isPending}>
            {create.isPending ? 'Creating…' : 'Create pod'}
          </button>
        </div>
      </form>
    </section>
  );
}
