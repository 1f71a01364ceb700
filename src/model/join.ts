import type { Brand, NodeId } from './ids.js';
import { randomBase36 } from './ids.js';
import type { Timestamp } from './records.js';

export type JoinTokenId = Brand<string, 'JoinTokenId'>;
export type NodeCredentialId = Brand<string, 'NodeCredentialId'>;

export const newJoinTokenId = (): JoinTokenId => randomBase36(6) as JoinTokenId;
export const newNodeCredentialId = (): NodeCredentialId => randomBase36(10) as NodeCredentialId;

/**
 * A join token: what `berth agent --token` exchanges, once per machine, for a node credential.
 * Made by an operator (`berth token create`), kept as a hash; the secret is shown once.
 */
export interface JoinToken {
  id: JoinTokenId;
  description: string;
  /** Put on every node that joins with the token (over the agent's own labels). */
  labels: Record<string, string>;
  /** sha256 of the whole secret (`bjt_<id>.<secret>`). */
  hash: string;
  /** How many joins it allows; null: as many as it is used for until it expires. */
  maxUses: number | null;
  uses: number;
  /** null: never expires. */
  expiresAt: Timestamp | null;
  /** Set by `berth token rm`: the token is kept a while so a join with it can be told it was revoked. */
  revokedAt: Timestamp | null;
  createdAt: Timestamp;
  lastUsedAt: Timestamp | null;
}

/** What a node's agent authenticates with on the agent endpoints: one node's, and nothing else. */
export interface NodeCredential {
  id: NodeCredentialId;
  nodeId: NodeId;
  /** sha256 of the secret (`bnc_<secret>`). */
  hash: string;
  /** The token it was exchanged for; null once that token is gone. */
  tokenId: JoinTokenId | null;
  createdAt: Timestamp;
  lastUsedAt: Timestamp | null;
}

/** Why a join token does not let a machine join now, or null when it does. */
export type JoinTokenRefusal = 'expired' | 'revoked' | 'used-up';

export function joinTokenRefusal(t: Pick<JoinToken, 'expiresAt' | 'revokedAt' | 'maxUses' | 'uses'>, now: number): JoinTokenRefusal | null {
  if (t.revokedAt) return 'revoked';
  if (t.expiresAt && Date.parse(t.expiresAt) <= now) return 'expired';
  if (t.maxUses !== null && t.uses >= t.maxUses) return 'used-up';
  return null;
}

export const JOIN_TOKEN_PREFIX = 'bjt_';
export const NODE_CREDENTIAL_PREFIX = 'bnc_';
/** A token that pins the server's certificate, as k3s' `K10<hash>::...` does. */
const PINNED = /^B10([0-9a-f]{64})::(.+)$/;

/** SHA-256 of a certificate's DER as lowercase hex without colons (the form join tokens carry). */
export const normalFingerprint = (f: string): string => f.replace(/:/g, '').toLowerCase();

/** The token as handed out: `B10<sha256 of the server's certificate>::bjt_<id>.<secret>` with TLS, else the bare secret. */
export function formatJoinToken(secret: string, fingerprint: string | undefined): string {
  return fingerprint ? `B10${normalFingerprint(fingerprint)}::${secret}` : secret;
}

/** A token as a user gives it: the secret the server checks, and the certificate fingerprint it pins, if any. */
export function parseJoinToken(token: string): { secret: string; fingerprint: string | null } {
  const t = token.trim();
  const m = PINNED.exec(t);
  return m ? { secret: m[2]!, fingerprint: m[1]! } : { secret: t, fingerprint: null };
}

/** The token id a secret names (`bjt_<id>.<secret>`), or undefined when it is not a join token. */
export function joinTokenIdOf(secret: string): JoinTokenId | undefined {
  const m = /^bjt_([0-9a-z]+)\.[A-Za-z0-9_-]+$/.exec(secret);
  return m ? (m[1] as JoinTokenId) : undefined;
}
