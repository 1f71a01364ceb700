import { createHash } from 'node:crypto';
import {
  idFromRequest,
  BerthError,
  compilePodSpec,
  invalid,
  newNetworkVolumeId,
  newRegistryAuthId,
  newSshKeyId,
  newTemplateId,
  notFound,
  type NetworkVolume,
  type Node,
  type PodInput,
  type Problem,
  type RegistryAuth,
  type SshKey,
  type Template,
} from '../model/index.js';
import type { Store } from '../store/types.js';
import { DATA_CENTER_LABEL, DEFAULT_DATA_CENTER } from './agents.js';
import { canSee, ownerScope, requireWrite, type Caller } from './caller.js';
import { referenceProblems } from './pod-input.js';
import type { Sealer } from './sealer.js';
import { sshRight } from './ssh-rights.js';
import { VolumeBacking } from './volume-backing.js';

const now = (): string => new Date().toISOString();

const dataCenterOf = (n: Node): string => n.labels[DATA_CENTER_LABEL] ?? DEFAULT_DATA_CENTER;

/**
 * A network volume as the APIs show it: `storage` says where its data lives (`nfs`: the data
 * center's shared storage, on every node of it; `node`: the node `nodeId` holds it, or will once a
 * pod first uses it), and `nodeName` names that node.
 */
export type NetworkVolumeView = NetworkVolume & { storage: 'nfs' | 'node'; nodeName: string | null };

function requireName(problems: Problem[], name: unknown, path = '/name'): string {
  if (typeof name !== 'string' || name.trim() === '' || name.length > 128) problems.push({ path, message: 'is required (1-128 characters)' });
  return String(name ?? '');
}

/** Network volumes, templates, registry credentials and SSH keys: the things pods refer to. */
export class ResourceService {
  constructor(
    private readonly store: Store,
    private readonly sealer: Sealer,
    /** Called after a network volume is deleted, so agents remove its data now rather than at their next watch. */
    private readonly onNetworkVolumeDeleted: () => void = () => undefined,
    /** Which data centers keep network volumes on shared storage; the others bind each volume to a node. */
    private readonly volumeBacking: VolumeBacking = new VolumeBacking(),
  ) {}

  /**
   * Network volumes: named Docker volumes that outlive pods, within one data center (node group).
   * On the data center's NFS export when it has one; else held by one node, bound at `nodeId` here or
   * at the first placement of a pod that uses it (docs/cluster.md).
   */
  async createNetworkVolume(caller: Caller, input: { name?: string; sizeGb?: number; dataCenterId?: string; nodeId?: string }): Promise<NetworkVolumeView> {
    requireWrite(caller, 'create network volumes');
    const problems: Problem[] = [];
    const name = requireName(problems, input.name);
    const size = input.sizeGb;
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 1 || size > 65536) problems.push({ path: '/sizeGb', message: 'must be a whole number of GB from 1 to 65536' });
    const nodes = await this.store.listNodes();
    const centers = [...new Set(nodes.map(dataCenterOf))];
    const node = input.nodeId !== undefined ? nodes.find((n) => n.id === input.nodeId || n.name === input.nodeId) : undefined;
    const dc = input.dataCenterId ?? (node ? dataCenterOf(node) : undefined) ?? centers[0] ?? DEFAULT_DATA_CENTER;
    if (input.dataCenterId !== undefined && !centers.includes(dc)) problems.push({ path: '/dataCenterId', message: `unknown data center ${dc}; known: ${centers.join(', ') || 'none'}` });
    if (input.nodeId !== undefined) {
      if (!node) problems.push({ path: '/nodeId', message: `no node ${input.nodeId} is registered` });
      else if (dataCenterOf(node) !== dc) problems.push({ path: '/nodeId', message: `node ${node.name} is in data center ${dataCenterOf(node)}, not ${dc}` });
      else if (this.volumeBacking.storageOf({ dataCenterId: dc }) === 'nfs') problems.push({ path: '/nodeId', message: `data center ${dc} keeps network volumes on shared storage: they are on every node of it, not bound to one` });
    }
    if (problems.length) throw invalid(problems);
    const v = await this.store.createNetworkVolume({ id: newNetworkVolumeId(), owner: caller.owner, name, sizeGb: size!, dataCenterId: dc, nodeId: node?.id ?? null, createdAt: now() });
    return this.view(v);
  }

  async getNetworkVolume(caller: Caller, id: string): Promise<NetworkVolumeView> {
    const v = await this.store.getNetworkVolume(idFromRequest.networkVolume(id));
    if (!v || !canSee(caller, v.owner)) throw notFound('network volume', id);
    return this.view(v);
  }

  async listNetworkVolumes(caller: Caller): Promise<NetworkVolumeView[]> {
    const volumes = await this.store.listNetworkVolumes(ownerScope(caller));
    const names = volumes.some((v) => v.nodeId) ? new Map((await this.store.listNodes()).map((n) => [n.id, n.name])) : new Map<string, string>();
    return volumes.map((v) => this.viewWith(v, v.nodeId ? (names.get(v.nodeId) ?? null) : null));
  }

  /** The volume with where its data lives: on shared storage, or on the node that holds it. */
  private async view(v: NetworkVolume): Promise<NetworkVolumeView> {
    return this.viewWith(v, v.nodeId ? ((await this.store.getNode(v.nodeId))?.name ?? null) : null);
  }

  private viewWith(v: NetworkVolume, nodeName: string | null): NetworkVolumeView {
    return { ...v, storage: this.volumeBacking.storageOf(v), nodeName };
  }

  async updateNetworkVolume(caller: Caller, id: string, input: { name?: string; sizeGb?: number; nodeId?: string }): Promise<NetworkVolumeView> {
    requireWrite(caller, 'change network volumes');
    const v = await this.getNetworkVolume(caller, id);
    const problems: Problem[] = [];
    // Its data is on that node: another node would have none of it.
    if (input.nodeId !== undefined && input.nodeId !== v.nodeId) problems.push({ path: '/nodeId', message: 'the node that holds a network volume cannot be changed' });
    if (input.name !== undefined) requireName(problems, input.name);
    if (input.sizeGb !== undefined && (typeof input.sizeGb !== 'number' || !Number.isInteger(input.sizeGb) || input.sizeGb < v.sizeGb)) {
      problems.push({ path: '/sizeGb', message: `a network volume can only grow (now ${v.sizeGb} GB)` });
    }
    if (problems.length) throw invalid(problems);
    return this.view(await this.store.updateNetworkVolume(v.id, { ...(input.name !== undefined ? { name: input.name } : {}), ...(input.sizeGb !== undefined ? { sizeGb: input.sizeGb } : {}) }));
  }

  async deleteNetworkVolume(caller: Caller, id: string): Promise<void> {
    requireWrite(caller, 'delete network volumes');
    const v = await this.getNetworkVolume(caller, id);
    const users = (await this.store.listPods({})).filter((d) => d.spec.networkVolumeId === v.id);
    if (users.length) {
      const visible = users.filter((d) => canSee(caller, d.pod.owner)).map((d) => d.pod.id);
      const others = users.length - visible.length;
      const named = [...visible, ...(others ? [`${others} pod${others > 1 ? 's' : ''} of other owners`] : [])].join(', ');
      throw new BerthError('CONFLICT', `network volume ${id} is attached to ${named}; terminate those first`);
    }
    await this.store.deleteNetworkVolume(v.id);
    this.onNetworkVolumeDeleted();
  }

  async dataCenters(): Promise<string[]> {
    const nodes = await this.store.listNodes();
    return [...new Set(nodes.map(dataCenterOf))];
  }

  // Templates: saved pod inputs. The stored input is checked by compiling it with a placeholder image when it has none.
  async createTemplate(caller: Caller, input: { name?: string; pod?: PodInput; readme?: string }): Promise<Template> {
    requireWrite(caller, 'create templates');
    const problems: Problem[] = [];
    const name = requireName(problems, input.name);
    const pod = await this.checkTemplatePod(caller, problems, input.pod ?? {});
    if (problems.length) throw invalid(problems);
    const at = now();
    return this.store.createTemplate({ id: newTemplateId(), owner: caller.owner, name, pod, readme: input.readme ?? '', createdAt: at, updatedAt: at });
  }

  async getTemplate(caller: Caller, id: string): Promise<Template> {
    const t = await this.store.getTemplate(idFromRequest.template(id));
    if (!t || !canSee(caller, t.owner)) throw notFound('template', id);
    return t;
  }

  listTemplates(caller: Caller): Promise<Template[]> {
    return this.store.listTemplates(ownerScope(caller));
  }

  async updateTemplate(caller: Caller, id: string, input: { name?: string; pod?: PodInput; readme?: string }): Promise<Template> {
    requireWrite(caller, 'change templates');
    const t = await this.getTemplate(caller, id);
    const problems: Problem[] = [];
    if (input.name !== undefined) requireName(problems, input.name);
    const pod = input.pod !== undefined ? await this.checkTemplatePod(caller, problems, { ...t.pod, ...input.pod }) : undefined;
    if (problems.length) throw invalid(problems);
    return this.store.updateTemplate(t.id, {
      ...(input.name !== undefined ? { name: input.name } : {}),
      ...(pod ? { pod } : {}),
      ...(input.readme !== undefined ? { readme: input.readme } : {}),
      updatedAt: now(),
    });
  }

  async deleteTemplate(caller: Caller, id: string): Promise<void> {
    requireWrite(caller, 'delete templates');
    const t = await this.getTemplate(caller, id);
    await this.store.deleteTemplate(t.id);
  }

  /** The pod fields of a template: valid, and naming only ids of the caller's team. */
  private async checkTemplatePod(caller: Caller, problems: Problem[], pod: PodInput): Promise<PodInput> {
    if (typeof pod !== 'object' || pod === null || Array.isArray(pod)) {
      problems.push({ path: '/pod', message: 'must be an object of pod fields' });
      return {};
    }
    try {
      compilePodSpec(pod.image || pod.containers ? pod : { ...pod, image: 'placeholder' });
    } catch (e) {
      if (!(e instanceof BerthError)) throw e;
      problems.push(...e.problems.map((p) => ({ path: `/pod${p.path}`, message: p.message })));
    }
    problems.push(...(await referenceProblems(this.store, caller, pod, '/pod')));
    return pod;
  }

  // Registry credentials: the password is sealed at rest and never returned.
  async createRegistryAuth(caller: Caller, input: { name?: string; username?: string; password?: string }): Promise<RegistryAuth> {
    requireWrite(caller, 'add registry credentials');
    const problems: Problem[] = [];
    const name = requireName(problems, input.name);
    if (typeof input.username !== 'string' || input.username === '') problems.push({ path: '/username', message: 'is required' });
    if (typeof input.password !== 'string' || input.password === '') problems.push({ path: '/password', message: 'is required' });
    if (problems.length) throw invalid(problems);
    return this.store.createRegistryAuth({
      id: newRegistryAuthId(),
      owner: caller.owner,
      name,
      username: input.username!,
      passwordSealed: this.sealer.seal(input.password!),
      createdAt: now(),
    });
  }

  async getRegistryAuth(caller: Caller, id: string): Promise<RegistryAuth> {
    const r = await this.store.getRegistryAuth(idFromRequest.registryAuth(id));
    if (!r || !canSee(caller, r.owner)) throw notFound('registry credentials', id);
    return r;
  }

  listRegistryAuths(caller: Caller): Promise<RegistryAuth[]> {
    return this.store.listRegistryAuths(ownerScope(caller));
  }

  async deleteRegistryAuth(caller: Caller, id: string): Promise<void> {
    requireWrite(caller, 'delete registry credentials');
    const r = await this.getRegistryAuth(caller, id);
    await this.store.deleteRegistryAuth(r.id);
  }

  // SSH public keys of the caller's account: PUBLIC_KEY in pods that ask for SSH.
  async addSshKey(caller: Caller, input: { name?: string; publicKey?: string }): Promise<SshKey> {
    requireWrite(caller, 'register SSH keys');
    const text = typeof input.publicKey === 'string' ? input.publicKey.trim() : '';
    const parts = text.split(/\s+/);
    const problems: Problem[] = [];
    if (parts.length < 2 || !/^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)$/.test(parts[0]!) || !/^[A-Za-z0-9+/]+=*$/.test(parts[1]!)) {
      problems.push({ path: '/publicKey', message: 'is not an OpenSSH public key (e.g. "ssh-ed25519 AAAA... you@host")' });
    }
    if (problems.length) throw invalid(problems);
    const fingerprint = 'SHA256:' + createHash('sha256').update(Buffer.from(parts[1]!, 'base64')).digest('base64').replace(/=+$/, '');
    const existing = await this.store.listSshKeys(caller.owner);
    if (existing.some((k) => k.fingerprint === fingerprint)) throw new BerthError('CONFLICT', `key ${fingerprint} is already registered`);
    const user = caller.user ?? null;
    // A key the gateway would refuse is not stored: in a team, a key is registered by one of its users.
    const right = await sshRight(this.store, { user, fingerprint }, caller.owner);
    if (!right.ok) throw new BerthError('FORBIDDEN', `SSH keys of team ${caller.owner} are registered per user, and this API key acts for none: register it with a member's own key (berth user add <user> --team ${caller.owner} --key)`);
    return this.store.createSshKey({
      id: newSshKeyId(),
      owner: caller.owner,
      user,
      name: input.name?.trim() || parts.slice(2).join(' ') || fingerprint,
      publicKey: text,
      fingerprint,
      createdAt: now(),
    });
  }

  listSshKeys(caller: Caller): Promise<SshKey[]> {
    return this.store.listSshKeys(caller.owner);
  }

  async removeSshKey(caller: Caller, idOrFingerprint: string): Promise<void> {
    requireWrite(caller, 'remove SSH keys');
    const key = (await this.store.listSshKeys(caller.owner)).find((k) => k.id === idOrFingerprint || k.fingerprint === idOrFingerprint);
    if (!key) throw notFound('ssh key', idOrFingerprint);
    await this.store.deleteSshKey(key.id);
  }
}
