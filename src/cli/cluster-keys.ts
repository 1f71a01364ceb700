import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { newHostKeyPair } from '../ssh/gateway.js';
import type { Store } from '../store/types.js';

/*
 * Several servers on one PostgreSQL must seal and open secrets with one key, sign and check proxy
 * links with one key, and show SSH clients one host key. The database holds each (table
 * `cluster_keys`): the first server to start stores its own (the data dir's, when it had one, so a
 * server that ran alone keeps its secrets readable), and every server writes the stored one into its
 * data dir before the parts that read them there start. The database thus holds the key that seals
 * the registry passwords kept in it: back it up and guard it as the secret it is (docs/ha.md).
 */

interface KeyFile {
  /** The name in `cluster_keys` and the file in the data dir. */
  name: string;
  /** How the file's bytes are kept in the text column. */
  encoding: 'utf8' | 'base64';
  make(): string;
}

const FILES: KeyFile[] = [
  { name: 'secret.key', encoding: 'utf8', make: () => randomBytes(32).toString('base64') + '\n' },
  { name: 'proxy.secret', encoding: 'base64', make: () => randomBytes(32).toString('base64') },
  { name: 'ssh_host_ed25519_key', encoding: 'utf8', make: () => newHostKeyPair().private },
];

/** Puts the cluster's keys into `dataDir` (PostgreSQL only; a SQLite server keeps its own). */
export async function shareClusterKeys(store: Store, dataDir: string): Promise<void> {
  if (store.dialect !== 'postgres') return;
  for (const file of FILES) {
    const path = join(dataDir, file.name);
    const local = await readFile(path).catch(() => undefined);
    const mine = local && local.length > 0 ? local.toString(file.encoding) : undefined;
    const shared = await store.clusterKey(file.name, () => mine ?? file.make());
    if (shared === mine) continue;
    await writeFile(path, Buffer.from(shared, file.encoding), { mode: 0o600 });
    // The public half written beside the host key was this server's own: it no longer says the truth.
    if (file.name === 'ssh_host_ed25519_key') await rm(`${path}.pub`, { force: true });
  }
}
