import { randomBytes, X509Certificate } from 'node:crypto';
import {
  BerthError,
  formatJoinToken,
  JOIN_TOKEN_PREFIX,
  joinTokenIdOf,
  joinTokenRefusal,
  newJoinTokenId,
  parseJoinToken,
  type JoinToken,
  type JoinTokenId,
  type NodeId,
} from '../model/index.js';
import type { Store } from '../store/types.js';
import type { NodeRegistration } from './agent-protocol.js';
import type { AgentService } from './agents.js';
import { requireAdmin, type Caller } from './caller.js';
import { hashKey } from './keys.js';
import type { NodeCredentialService } from './node-credentials.js';

export interface JoinTokenInput {
  description?: string;
  /** Put on each node that joins with it. */
  labels?: Record<string, string>;
  /** 0: never expires. @default 86_400 (24 hours, as kubeadm's tokens) */
  ttlSeconds?: number;
  /** Absent: any number of joins until it expires. */
  maxUses?: number;
}

export const DEFAULT_JOIN_TOKEN_TTL_SECONDS = 86_400;
/** Revoked and expired tokens are kept this long, so a join with one is told why; then forgotten. */
const KEEP_DEAD_TOKENS_MS = 7 * 86_400_000;

/** SHA-256 of a PEM certificate's DER (the first certificate of a chain), as lowercase hex: what a join token pins. */
export function certificateFingerprint(pem: Buffer | string): string {
  try {
    return new X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase();
  } catch (err) {
    throw new BerthError('VALIDATION', `--tls-cert is not a PEM certificate: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Join tokens (as kubeadm's bootstrap tokens and k3s' tokens): made by an operator, shown once,
 * stored hashed; a machine's agent exchanges one for a credential of its own node (`join`). With
 * TLS, the token handed out carries the server certificate's fingerprint, which the agent checks
 * before it sends anything.
 */
export class JoinTokenService {
  constructor(
    private readonly store: Store,
    private readonly agents: AgentService,
    private readonly credentials: NodeCredentialService,
    private readonly opts: { serverFingerprint?: string } = {},
  ) {}

  async create(caller: Caller, input: JoinTokenInput): Promise<{ token: JoinToken; secret: string }> {
    requireAdmin(caller, 'make join tokens');
    const now = Date.now();
    await this.store.pruneJoinTokens(new Date(now - KEEP_DEAD_TOKENS_MS).toISOString());
    const ttl = input.ttlSeconds ?? DEFAULT_JOIN_TOKEN_TTL_SECONDS;
    const id = newJoinTokenId();
    const secret = `${JOIN_TOKEN_PREFIX}${id}.${randomBytes(24).toString('base64url')}`;
    const token: JoinToken = {
      id,
      description: input.description ?? '',
      labels: input.labels ?? {},
      hash: hashKey(secret),
      maxUses: input.maxUses ?? null,
      uses: 0,
      expiresAt: ttl > 0 ? new Date(now + ttl * 1000).toISOString() : null,
      revokedAt: null,
      createdAt: new Date(now).toISOString(),
      lastUsedAt: null,
    };
    await this.store.createJoinToken(token);
    return { token, secret: formatJoinToken(secret, this.opts.serverFingerprint) };
  }

  async list(caller: Caller): Promise<JoinToken[]> {
    requireAdmin(caller, 'list join tokens');
    return this.store.listJoinTokens();
  }

  async revoke(caller: Caller, id: JoinTokenId): Promise<void> {
    requireAdmin(caller, 'revoke join tokens');
    await this.store.revokeJoinToken(id, new Date().toISOString());
  }

  /**
   * A machine joins: the token is checked and one of its uses taken, the node is registered (always
   * as a new node, with the token's labels over its own) and a credential of that node only is made.
   * An unknown, expired, revoked or used-up token is refused with 401 saying which (`reason`).
   */
  async join(token: string, reg: NodeRegistration): Promise<{ nodeId: NodeId; credential: string }> {
    const { secret } = parseJoinToken(token);
    if (secret.startsWith('berth_')) throw refused('api-key', 'that is an API key, not a join token: machines join with a join token (`berth token create` on the server); API keys, admin keys included, are refused on the agent endpoints');
    const found = secret.startsWith(JOIN_TOKEN_PREFIX) ? await this.store.findJoinTokenByHash(hashKey(secret)) : undefined;
    if (!found) {
      const hint = joinTokenIdOf(secret) ? ' (it may have been revoked or expired over a week ago)' : '';
      throw refused('unknown', `the join token is not valid${hint}: make one on the server with \`berth token create\``);
    }
    const at = new Date();
    const why = joinTokenRefusal(found, at.getTime());
    if (why) throw refusal(found, why);
    // Taken atomically: a token with one use left lets one of two racing joins in.
    if (!(await this.store.useJoinToken(found.id, at.toISOString()))) {
      const now = (await this.store.listJoinTokens()).find((t) => t.id === found.id);
      throw refusal(now ?? found, (now && joinTokenRefusal(now, at.getTime())) ?? 'used-up');
    }
    const { nodeId: _ignored, ...rest } = reg;
    const { nodeId } = await this.agents.register({ ...rest, labels: { ...reg.labels, ...found.labels } });
    const credential = await this.credentials.issue(nodeId, found.id);
    return { nodeId, credential };
  }
}

const refused = (reason: string, message: string): BerthError => new BerthError('UNAUTHORIZED', message, { extra: { reason } });

function refusal(t: JoinToken, why: 'expired' | 'revoked' | 'used-up'): BerthError {
  switch (why) {
    case 'revoked':
      return refused(why, `join token ${t.id} was revoked at ${t.revokedAt}: make a new one with \`berth token create\``);
    case 'expired':
      return refused(why, `join token ${t.id} expired at ${t.expiresAt}: make a new one with \`berth token create\``);
    case 'used-up':
      return refused(why, `join token ${t.id} is used up (${t.uses} of ${t.maxUses} joins): make a new one with \`berth token create\``);
  }
}
