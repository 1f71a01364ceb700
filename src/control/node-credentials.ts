import { randomBytes } from 'node:crypto';
import { BerthError, newNodeCredentialId, NODE_CREDENTIAL_PREFIX, type JoinTokenId, type NodeId, type PodId } from '../model/index.js';
import type { Store } from '../store/types.js';
import type { AgentService } from './agents.js';
import { requireAdmin, type Caller } from './caller.js';
import { hashKey } from './keys.js';
import type { PodService } from './pods.js';

/**
 * Node credentials: what a remote agent authenticates with on the agent endpoints, one node's only
 * (the node authorizer in api/native/node-auth.ts). Random secrets handed to the agent once, at its
 * join, and stored as sha256 hashes, as API keys are. Removing a node revokes its credentials.
 */
export class NodeCredentialService {
  /** When each credential's last use was written; one write a minute per credential, not one per call. */
  private readonly touched = new Map<string, number>();
  /** Nodes that are not remote agents (the server's own): never removed through the API. */
  private readonly local = new Set<NodeId>();

  constructor(
    private readonly store: Store,
    private readonly pods: PodService,
    private readonly agents: AgentService,
  ) {}

  /** The server's own agent's node: it has no credential and `node rm` leaves it alone. */
  markLocal(nodeId: NodeId): void {
    this.local.add(nodeId);
  }

  /** A new credential of `nodeId`; the secret is returned once and kept only as a hash. */
  async issue(nodeId: NodeId, tokenId: JoinTokenId | null): Promise<string> {
    const secret = NODE_CREDENTIAL_PREFIX + randomBytes(32).toString('base64url');
    await this.store.createNodeCredential({ id: newNodeCredentialId(), nodeId, hash: hashKey(secret), tokenId, createdAt: new Date().toISOString(), lastUsedAt: null });
    return secret;
  }

  /** Whether the secret is shaped as a node credential (whatever it is worth). */
  static looksLikeCredential(secret: string): boolean {
    return secret.startsWith(NODE_CREDENTIAL_PREFIX);
  }

  /** The node a credential stands for, or undefined (unknown, or its node was removed). */
  async authenticate(secret: string): Promise<NodeId | undefined> {
    if (!NodeCredentialService.looksLikeCredential(secret)) return undefined;
    const cred = await this.store.findNodeCredentialByHash(hashKey(secret));
    if (!cred) return undefined;
    const now = Date.now();
    if (now - (this.touched.get(cred.id) ?? 0) > 60_000) {
      this.touched.set(cred.id, now);
      await this.store.touchNodeCredential(cred.id, new Date(now).toISOString()).catch(() => undefined);
    }
    return cred.nodeId;
  }

  /**
   * `berth node rm`: revokes the node's credentials and forgets the node. Refused while instances are
   * placed on it, unless `force`: then they are taken off it (their pods are placed again elsewhere;
   * containers still on that machine are its operator's to remove).
   */
  async removeNode(caller: Caller, id: NodeId, force: boolean): Promise<{ unplaced: number }> {
    requireAdmin(caller, 'remove nodes');
    const node = await this.store.getNode(id);
    if (!node) throw new BerthError('NOT_FOUND', `node ${id} not found`, { extra: { id } });
    if (this.local.has(id)) throw new BerthError('CONFLICT', `node ${id} (${node.name}) is this server's own agent; start the server with --no-agent to run without it`);
    const instances = await this.store.listInstances({ nodeId: id });
    if (instances.length > 0 && !force) {
      const pods = [...new Set(instances.map((i) => i.podId))];
      throw new BerthError(
        'CONFLICT',
        `node ${id} (${node.name}) still has ${instances.length} instance(s), of pods ${pods.slice(0, 10).join(', ')}${pods.length > 10 ? ', …' : ''}: stop or terminate them first, or remove it with --force (their pods are then placed on other nodes; containers left on that machine are not stopped by Berth)`,
        { extra: { instances: instances.length } },
      );
    }
    const touched = new Set<PodId>();
    await this.store.transaction(async (tx) => {
      for (const inst of instances) {
        touched.add(inst.podId);
        if (inst.goal === 'removed') await tx.deleteInstance(inst.id);
        else await tx.updateInstance(inst.id, { nodeId: null, gpuUuids: [], observed: null });
      }
      await tx.deleteNode(id);
    });
    this.agents.setNodeAccess(id, undefined);
    for (const podId of touched) await this.pods.refreshStatus(podId);
    await this.pods.placeWaiting();
    return { unplaced: instances.length };
  }
}
