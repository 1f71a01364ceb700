/**
 * How users reach pods: the proxy's and the SSH gateway's public endpoints (for the URLs and the ssh
 * command every view shows), and the signed tokens behind private ports' one-time links and cookies.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { OwnerId, PodId, PodSpec } from '../model/index.js';

export interface AccessEndpoints {
  /** The HTTP proxy as users reach it: `{scheme}://{podId}-{port}.{domain}:{port}/`. */
  proxy?: { scheme: 'http' | 'https'; domain: string; port: number };
  /** The SSH gateway as users reach it. */
  /** `hostKey`: the gateway's public host key, `ssh-ed25519 AAAA...`, for clients to pin. */
  ssh?: { host: string; port: number; hostKey?: string };
}

/** A port the proxy serves at `{podId}-{port}.{domain}`. */
export interface HttpPort {
  port: number;
  /** Only the owner's key or link reaches it. */
  private: boolean;
  /** The Marathon endpoint it is: the node publishes it on the host port the instance reports under this name. */
  endpoint: string | null;
}

/**
 * The ports a spec serves through the proxy, each once: its `http` ports (`8888/http`), then the
 * endpoints with an `http` protocol (Marathon's `"protocol": ["http"]`) that the node publishes (a
 * host port asked for), at their container port, or at their fixed host port where the container
 * listens on that (host networking, or no container port).
 */
export function httpPorts(spec: PodSpec): HttpPort[] {
  const out = new Map<number, HttpPort>();
  for (const p of spec.containers.flatMap((c) => c.ports)) {
    if (p.protocol === 'http' && !out.has(p.port)) out.set(p.port, { port: p.port, private: p.private === true, endpoint: null });
  }
  for (const e of spec.containers.flatMap((c) => c.endpoints)) {
    if (e.hostPort === null || !e.protocols.some((x) => x.toLowerCase() === 'http')) continue;
    const port = (spec.network.mode !== 'host' && e.containerPort) || e.hostPort;
    if (port && !out.has(port)) out.set(port, { port, private: false, endpoint: e.name });
  }
  return [...out.values()];
}

/** `http://{podId}-{port}.{domain}:7780/`; the port is left out when it is the scheme's default. */
export function proxyUrl(proxy: NonNullable<AccessEndpoints['proxy']>, target: string, port: number): string {
  const defaultPort = (proxy.scheme === 'http' && proxy.port === 80) || (proxy.scheme === 'https' && proxy.port === 443);
  return `${proxy.scheme}://${target}-${port}.${proxy.domain}${defaultPort ? '' : `:${proxy.port}`}/`;
}

/** The exact command that opens a shell: `ssh -p 2222 {podId}@host`, `{podId}.{container}` for another container. */
export function sshCommand(ssh: NonNullable<AccessEndpoints['ssh']>, podId: string, container?: string): string {
  return `ssh ${ssh.port === 22 ? '' : `-p ${ssh.port} `}${podId}${container ? `.${container}` : ''}@${ssh.host}`;
}

/** Where a one-time link lands on the pod's own proxy host: it sets the cookie, then redirects. */
export const PROXY_LOGIN_PATH = '/__berth/login';

/** What a private port's cookie or one-time link grants. */
export interface ProxyGrant {
  podId: PodId;
  port: number;
  owner: OwnerId;
  /** Unix ms. */
  expiresAt: number;
}

const LINK_TTL_MS = 5 * 60_000;
const SESSION_TTL_MS = 24 * 3600_000;

/**
 * HMAC-signed grants: a one-time link (five minutes, redeemed once) and the session cookie it turns
 * into (a day). Checking one is a hash, not a store query, so private ports stay on the fast path.
 * The secret lives in the data dir, so cookies survive a restart.
 */
export class ProxyTokens {
  /** Nonces of redeemed links until they expire: a link works once. */
  private readonly used = new Map<string, number>();

  private constructor(private readonly secret: Buffer) {}

  static async open(dataDir: string): Promise<ProxyTokens> {
    const path = join(dataDir, 'proxy.secret');
    let secret = await readFile(path).catch(() => undefined);
    if (!secret || secret.length < 32) {
      secret = randomBytes(32);
      await writeFile(path, secret, { mode: 0o600 });
      await chmod(path, 0o600);
    }
    return new ProxyTokens(secret);
  }

  static ephemeral(): ProxyTokens {
    return new ProxyTokens(randomBytes(32));
  }

  /** A token for a one-time link to a private port. */
  link(podId: PodId, port: number, owner: OwnerId, now = Date.now()): { token: string; expiresAt: number } {
    const expiresAt = now + LINK_TTL_MS;
    return { token: this.sign('link', { podId, port, owner, expiresAt }, randomBytes(9).toString('base64url')), expiresAt };
  }

  /**
   * Several servers: a link must work once across all of them, so a redemption also claims the
   * nonce in the shared store (`claimOnce`). One server: the memory here is enough.
   */
  claim: ((nonce: string, expiresAt: number) => Promise<boolean>) | undefined;

  /** The grant of a link token, once here and, with `claim`, once across every server. */
  async redeemOnce(token: string, now = Date.now()): Promise<ProxyGrant | undefined> {
    const parsed = this.verify('link', token, now);
    if (!parsed || !this.redeem(token, now)) return undefined;
    if (this.claim && !(await this.claim(parsed.nonce, parsed.grant.expiresAt))) return undefined;
    return parsed.grant;
  }

  /** The grant of a link token, once: a second redemption is refused. */
  redeem(token: string, now = Date.now()): ProxyGrant | undefined {
    const parsed = this.verify('link', token, now);
    if (!parsed) return undefined;
    for (const [n, exp] of this.used) if (exp < now) this.used.delete(n);
    if (this.used.has(parsed.nonce)) return undefined;
    this.used.set(parsed.nonce, parsed.grant.expiresAt);
    return parsed.grant;
  }

  session(grant: Omit<ProxyGrant, 'expiresAt'>, now = Date.now()): { value: string; maxAgeS: number } {
    return { value: this.sign('session', { ...grant, expiresAt: now + SESSION_TTL_MS }, ''), maxAgeS: SESSION_TTL_MS / 1000 };
  }

  /** The grant of a session cookie, when it is genuine and current. */
  checkSession(value: string, now = Date.now()): ProxyGrant | undefined {
    return this.verify('session', value, now)?.grant;
  }

  private sign(kind: string, g: ProxyGrant, nonce: string): string {
    const body = `${g.podId}.${g.port}.${Buffer.from(g.owner).toString('base64url')}.${g.expiresAt.toString(36)}.${nonce}`;
    return `${body}.${this.mac(kind, body)}`;
  }

  private verify(kind: string, token: string, now: number): { grant: ProxyGrant; nonce: string } | undefined {
    const parts = token.split('.');
    if (parts.length !== 6) return undefined;
    const body = parts.slice(0, 5).join('.');
    const mac = Buffer.from(parts[5]!, 'base64url');
    const want = Buffer.from(this.mac(kind, body), 'base64url');
    if (mac.length !== want.length || !timingSafeEqual(mac, want)) return undefined;
    const [podId, port, owner, exp, nonce] = parts as [string, string, string, string, string];
    const expiresAt = parseInt(exp, 36);
    if (!(expiresAt > now)) return undefined;
    return { grant: { podId: podId as PodId, port: Number(port), owner: Buffer.from(owner, 'base64url').toString() as OwnerId, expiresAt }, nonce };
  }

  private mac(kind: string, body: string): string {
    return createHmac('sha256', this.secret).update(`${kind}:${body}`).digest('base64url');
  }
}
