import { createHash, randomBytes } from 'node:crypto';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError, newApiKeyId, notFound, type ApiKey, type ApiKeyId, type OwnerId } from '../model/index.js';
import type { Store } from '../store/types.js';
import { ownerScope, roleOf, type Caller } from './caller.js';

const KEY_PREFIX = 'berth_';

export const hashKey = (secret: string): string => createHash('sha256').update(secret).digest('hex');

/** API keys: random secrets shown once, stored only as sha256 hashes. */
export class KeyService {
  constructor(private readonly store: Store) {}

  /**
   * A key for a team (`owner`) and, with `user`, one member of it (acting with that member's role).
   * An admin key makes any; a team's owner makes keys of its members; others only their own.
   */
  async create(caller: Caller, opts: { name: string; owner?: string; admin?: boolean; user?: string }): Promise<{ key: ApiKey; secret: string }> {
    if ((opts.admin || (opts.owner && opts.owner !== caller.owner)) && !caller.admin) {
      throw new BerthError('FORBIDDEN', 'only an admin key can create keys for other owners or admin keys');
    }
    const owner = opts.owner ?? caller.owner;
    const user = opts.user ?? (caller.admin ? undefined : (caller.user ?? undefined));
    if (!caller.admin && roleOf(caller) !== 'owner' && user !== caller.user) throw new BerthError('FORBIDDEN', `only an owner of team ${owner} can create keys for other members`);
    if (user !== undefined && !(await this.store.memberRole(owner, user))) throw new BerthError('VALIDATION', `${user} is not a member of team ${owner}`, { problems: [{ path: '/user', message: `not a member of team ${owner}` }] });
    const secret = KEY_PREFIX + randomBytes(24).toString('base64url');
    const key: ApiKey = {
      id: newApiKeyId(),
      owner: owner as OwnerId,
      name: opts.name,
      user: user ?? null,
      hash: hashKey(secret),
      prefix: secret.slice(0, KEY_PREFIX.length + 6),
      admin: opts.admin ?? false,
      createdAt: new Date().toISOString(),
      lastUsedAt: null,
    };
    await this.store.createApiKey(key);
    return { key, secret };
  }

  /** When each key's last use was written; one write a minute per key, not one per request. */
  private readonly touched = new Map<string, number>();

  /** The caller a Bearer secret stands for, or undefined. */
  async authenticate(secret: string): Promise<Caller | undefined> {
    if (!secret.startsWith(KEY_PREFIX)) return undefined;
    const key = await this.store.findApiKeyByHash(hashKey(secret));
    if (!key) return undefined;
    const now = Date.now();
    if (now - (this.touched.get(key.id) ?? 0) > 60_000) {
      this.touched.set(key.id, now);
      await this.store.touchApiKey(key.id, new Date(now).toISOString()).catch(() => undefined);
    }
    if (!key.user) return { owner: key.owner, admin: key.admin, keyId: key.id };
    // The role is read at each use: a member removed or made a viewer is so at once.
    const role = await this.store.memberRole(key.owner, key.user);
    if (!role) return undefined;
    return { owner: key.owner, admin: key.admin, user: key.user, role, keyId: key.id };
  }

  list(caller: Caller): Promise<ApiKey[]> {
    return this.store.listApiKeys(ownerScope(caller));
  }

  async remove(caller: Caller, id: ApiKeyId): Promise<void> {
    const key = (await this.store.listApiKeys(ownerScope(caller))).find((k) => k.id === id);
    if (!key) throw notFound('api key', id);
    if (!caller.admin && roleOf(caller) !== 'owner' && key.user !== caller.user) throw new BerthError('FORBIDDEN', `only an owner of team ${key.owner} can remove other members' keys`);
    await this.store.deleteApiKey(id);
  }

  /**
   * On a store with no keys, creates the admin key and writes it to `<dataDir>/admin.key` (0600).
   * Returns the path when it did.
   */
  async bootstrap(dataDir: string): Promise<string | undefined> {
    if ((await this.store.listApiKeys()).length > 0) return undefined;
    const { secret } = await this.create({ owner: 'admin' as OwnerId, admin: true }, { name: 'admin', admin: true });
    const path = join(dataDir, 'admin.key');
    await writeFile(path, secret + '\n', { mode: 0o600 });
    await chmod(path, 0o600);
    return path;
  }
}
