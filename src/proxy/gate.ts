/**
 * Who may pass a private port: the checks the proxy makes against the server's keys and signed
 * tokens. The server process answers them itself (LocalAccess); a proxy worker asks the server
 * over IPC and keeps the answers a while (worker-ipc.ts).
 */
import type { ProxyGrant, ProxyTokens } from '../control/access.js';
import type { Caller } from '../control/caller.js';

/** A redeemed one-time link: what it grants, and the session cookie it becomes. */
export interface Login {
  grant: ProxyGrant;
  session: { value: string; maxAgeS: number };
}

export interface ProxyAccess {
  /** The grant of a session cookie's value, when it is genuine and current. */
  session(value: string): ProxyGrant | undefined | Promise<ProxyGrant | undefined>;
  /** The owner of a Berth API key, or undefined for an unknown or revoked key. */
  caller(secret: string): Caller | undefined | Promise<Caller | undefined>;
  /** Redeems a one-time link (once: a second try is undefined) and opens its session. */
  login(token: string): Promise<Login | undefined>;
}

/** How long a key's owner is remembered: a revoked key stops working within this. */
export const KEY_CACHE_MS = 30_000;
const MAX_CACHED = 10_000;

/** The checks made in this process, against the key service and the token secret. */
export class LocalAccess implements ProxyAccess {
  private readonly keyCache = new Map<string, { caller: Caller | undefined; until: number }>();

  constructor(
    private readonly tokens: ProxyTokens,
    private readonly keys: { authenticate(secret: string): Promise<Caller | undefined> },
    private readonly cacheMs = KEY_CACHE_MS,
  ) {}

  session(value: string): ProxyGrant | undefined {
    return this.tokens.checkSession(value);
  }

  async caller(secret: string): Promise<Caller | undefined> {
    if (this.cacheMs <= 0) return this.keys.authenticate(secret);
    const now = Date.now();
    const hit = this.keyCache.get(secret);
    if (hit && hit.until > now) return hit.caller;
    const caller = await this.keys.authenticate(secret);
    if (this.keyCache.size > MAX_CACHED) this.keyCache.clear();
    this.keyCache.set(secret, { caller, until: now + this.cacheMs });
    return caller;
  }

  async login(token: string): Promise<Login | undefined> {
    const grant = await this.tokens.redeemOnce(token);
    if (!grant) return undefined;
    return { grant, session: this.tokens.session({ podId: grant.podId, port: grant.port, owner: grant.owner }) };
  }
}
