/** The node credential an agent keeps in its data dir (mode 0600): which server, which node, the secret, the pinned certificate. */
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { NodeId } from '../model/index.js';

export interface StoredCredential {
  /** The server's URL as the agent joined it. */
  server: string;
  /** Every server the agent was given at the join (`--server` repeated), the joined one among them; absent: `server` alone. */
  servers?: string[];
  nodeId: NodeId;
  /** The node credential (`bnc_…`): a secret, never logged. */
  credential: string;
  /** The server certificate's SHA-256 the join token pinned; null: the server's certificate is checked against the CAs as usual. */
  fingerprint: string | null;
  joinedAt: string;
}

export const credentialPath = (agentDir: string): string => join(agentDir, 'credential.json');

/** The stored credential, or undefined when this machine has not joined yet. */
export async function readCredential(agentDir: string): Promise<StoredCredential | undefined> {
  const text = await readFile(credentialPath(agentDir), 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (text === undefined) return undefined;
  const c = JSON.parse(text) as Partial<StoredCredential>;
  if (typeof c.server !== 'string' || typeof c.nodeId !== 'string' || typeof c.credential !== 'string') throw new Error(`${credentialPath(agentDir)} is not a Berth node credential: remove it to join again`);
  const servers = Array.isArray(c.servers) ? c.servers.filter((x): x is string => typeof x === 'string') : undefined;
  return { server: c.server, ...(servers?.length ? { servers } : {}), nodeId: c.nodeId, credential: c.credential, fingerprint: c.fingerprint ?? null, joinedAt: c.joinedAt ?? '' };
}

export const knownServersPath = (agentDir: string): string => join(agentDir, 'servers.json');

/** The cluster's servers as the agent last heard them (server-follow.ts), for a start whose given servers are gone; none: []. */
export async function readKnownServers(agentDir: string): Promise<string[]> {
  const text = await readFile(knownServersPath(agentDir), 'utf8').catch(() => undefined);
  if (text === undefined) return [];
  try {
    const v = JSON.parse(text) as { servers?: unknown };
    return Array.isArray(v.servers) ? v.servers.filter((x): x is string => typeof x === 'string').slice(0, 32) : [];
  } catch {
    return [];
  }
}

/** Keeps the servers heard, atomically. */
export async function writeKnownServers(agentDir: string, servers: string[]): Promise<void> {
  await mkdir(agentDir, { recursive: true, mode: 0o700 });
  const path = knownServersPath(agentDir);
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify({ servers, at: new Date().toISOString() }, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, path);
}

/** Writes the credential atomically, readable by this user only. */
export async function writeCredential(agentDir: string, c: StoredCredential): Promise<string> {
  await mkdir(agentDir, { recursive: true, mode: 0o700 });
  const path = credentialPath(agentDir);
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(c, null, 2) + '\n', { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
  return path;
}
