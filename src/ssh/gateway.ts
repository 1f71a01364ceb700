/**
 * The SSH gateway: `ssh -p 2222 {podId}@host` with the owner's registered keys. Shells (with a PTY
 * and window resizes), commands with their exit status, SFTP (so scp and sftp work) and `-L`/`-R`
 * forwarding, all through the pod's node access: no sshd in the image.
 *
 * About 500 lines, one file: a connection's login (the key, its user and role, checked again for
 * each session and channel), its sessions and its forwards share that connection's state. SFTP
 * (sftp.ts), the words of a command (split-words.ts) and the in-container script live apart.
 */
import { readFile, writeFile, chmod } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { join } from 'node:path';
import v8 from 'node:v8';
import type { Logger } from 'pino';
import ssh2 from 'ssh2';
import type { AuthContext, Connection, ServerChannel, Session } from 'ssh2';
import type { ExecStream, NodeAccess } from '../control/agent-protocol.js';
import type { ActivitySink } from '../control/activity.js';
import type { AuditLog } from '../control/audit.js';
import type { Caller } from '../control/caller.js';
import type { InstanceResolver, Resolved } from '../control/resolve.js';
import { lacksShell, LOGIN_SHELL, NO_SHELL } from '../control/shell.js';
import { BerthError, checkExec, type InstanceId, type OwnerId, type PodId, type SshKey } from '../model/index.js';
import type { Store } from '../store/types.js';
import { sshRight } from '../control/ssh-rights.js';
import { refuse, refusedSession } from './refused.js';
import { offerLimits } from './sftp-channel.js';
import { splitWords } from './split-words.js';
import { SftpSession } from './sftp.js';

const { Server, utils } = ssh2;

/**
 * The client picks the first cipher of its own list that the server offers: OpenSSH's list starts
 * chacha20-poly1305, aes128-ctr, aes192-ctr, aes256-ctr, then AES-GCM, so without chacha20 it
 * picks aes128-ctr with hmac-sha2-256-etm, not AES-GCM. ssh2 runs chacha20-poly1305 in C with its
 * optional native binding (it decrypts 1.3 GB/s on the benchmark machine, aes128-ctr with
 * hmac-sha2-256-etm 0.64 GB/s; OpenSSH's client spends less on it too) and in JavaScript without
 * it, so it is offered only with the binding. CTR stays for clients with neither (Paramiko).
 */
const GATEWAY_CIPHERS: ssh2.CipherAlgorithm[] = [
  ...(nativeCrypto() ? (['chacha20-poly1305@openssh.com'] as const) : []),
  'aes128-gcm@openssh.com',
  'aes256-gcm@openssh.com',
  'aes128-ctr',
  'aes192-ctr',
  'aes256-ctr',
];

/** Whether ssh2's optional native crypto binding was built (it says so in a module of its own). */
function nativeCrypto(): boolean {
  try {
    const crypto = createRequire(import.meta.url)('ssh2/lib/protocol/crypto.js') as { bindingAvailable?: unknown };
    return crypto.bindingAvailable === true;
  } catch {
    return false;
  }
}

export interface SshGatewayOptions {
  store: Store;
  resolver: InstanceResolver;
  logger: Logger;
  /** The host key lives here as `ssh_host_ed25519_key`, made on first start. */
  dataDir: string;
  /** @default 2222; 0 picks a free port */
  port?: number;
  /** @default 0.0.0.0 */
  host?: string;
  /** Where an open connection counts as use of its pod (the idle policy's `ssh` signal). */
  activity?: ActivitySink;
  /** Where each session is recorded. */
  audit?: AuditLog;
}

/** `{podId}`, `{podId}-{ordinal}` for one instance, `.{container}` for another container. */
const USER = /^([0-9a-z]{14})(?:-(\d{1,4}))?(?:\.([a-z0-9]([-a-z0-9]*[a-z0-9])?))?$/;
/** Only the pod itself is a -L destination: the gateway is no open relay into the node's network. */
const LOCAL_NAMES = new Set(['localhost', '127.0.0.1', '::1', '0.0.0.0', '']);

interface Login {
  podId: PodId;
  ordinal: number | undefined;
  container: string | undefined;
  owner: OwnerId;
  /** The key it came in with: its user's role is read again at each session and channel. */
  key: Pick<SshKey, 'id' | 'user' | 'fingerprint'>;
  /** Why the key may not use the pod, found at authentication: every session says so. */
  refused?: string;
}

/**
 * An ed25519 key pair ssh2 itself can read back. About one in 256 that ssh2's generator makes is
 * malformed (it strips a public key's leading zero byte: mscdex/ssh2#1390, #1513), and the gateway
 * would then fail to start with "Malformed OpenSSH private key".
 */
export function newHostKeyPair(): { private: string; public: string } {
  for (;;) {
    const pair = utils.generateKeyPairSync('ed25519', { comment: 'berth gateway' });
    if (!(utils.parseKey(pair.private) instanceof Error) && !(utils.parseKey(pair.public) instanceof Error)) return pair;
  }
}

/**
 * Lets the heap grow 3x its live size after a full collection instead of V8's adaptive 1.1-2x.
 * A transfer allocates about 2.5 bytes of short-lived buffers per byte copied (socket reads,
 * decrypted packets), and V8 counts buffers not yet swept against the old generation's limit.
 * Once a full collection set that limit close to the live heap (it does so when collections are
 * cheap), every 60 ms of a transfer started another one: 15-19 per 200 MB upload, a third slower
 * (1.1-1.3 s against 0.75-0.85 s, measured over 14 download/upload cycles; with this, none in
 * 14). The flag is read at each limit computation, so setting it at start takes effect; an
 * operator's own `--heap-growing-percent` is left alone.
 */
function roomForTransfers(): void {
  const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((a) => a.includes('heap-growing-percent'));
  if (!given) v8.setFlagsFromString('--heap-growing-percent=200');
}

/** Loads the gateway's host key, or makes one (ed25519, 0600) on first start. */
async function hostKey(dataDir: string): Promise<string> {
  const path = join(dataDir, 'ssh_host_ed25519_key');
  const existing = await readFile(path, 'utf8').catch(() => undefined);
  if (existing) return existing;
  const pair = newHostKeyPair();
  await writeFile(path, pair.private, { mode: 0o600 });
  await chmod(path, 0o600);
  await writeFile(`${path}.pub`, pair.public + '\n', { mode: 0o644 });
  return pair.private;
}

export class SshGateway {
  private readonly server: InstanceType<typeof Server>;
  /** Accepts the connections and hands them to `server`, which never listens itself. */
  private readonly listener: TcpServer;
  private readonly clients = new Set<Connection>();
  /** The client sockets open now, for their bytes so far. */
  private readonly sockets = new Set<Socket>();
  /** For the metrics endpoint; bytes of closed connections (open ones are added in `stats`). */
  private readonly counts = { connections: 0, sessions: 0, logins: 0, bytesReceived: 0, bytesSent: 0 };
  port = 0;
  /** The host key's public half, as a known_hosts line has it after the host: `ssh-ed25519 AAAA...`. */
  readonly hostKey: string;

  private constructor(
    private readonly opts: SshGatewayOptions,
    key: string,
  ) {
    const parsed = utils.parseKey(key) as ssh2.ParsedKey;
    this.hostKey = `${parsed.type} ${parsed.getPublicSSH().toString('base64')}`;
    this.server = new Server({ hostKeys: [key], ident: 'Berth', algorithms: { cipher: GATEWAY_CIPHERS } }, (client) => this.onClient(client));
    this.listener = createTcpServer((socket) => {
      // Small packets (SFTP acknowledgements, window adjustments) must not wait behind Nagle's algorithm.
      socket.setNoDelay(true);
      this.counts.connections++;
      this.sockets.add(socket);
      socket.once('close', () => {
        this.sockets.delete(socket);
        this.counts.bytesReceived += socket.bytesRead;
        this.counts.bytesSent += socket.bytesWritten;
      });
      gatherWrites(socket);
      this.server.injectSocket(socket);
    });
  }

  static async start(opts: SshGatewayOptions): Promise<SshGateway> {
    roomForTransfers();
    const gw = new SshGateway(opts, await hostKey(opts.dataDir));
    await new Promise<void>((resolve, reject) => {
      gw.listener.once('error', reject);
      gw.listener.listen(opts.port ?? 2222, opts.host ?? '0.0.0.0', () => {
        gw.listener.off('error', reject);
        resolve();
      });
    });
    const addr = gw.listener.address();
    gw.port = typeof addr === 'object' && addr ? addr.port : (opts.port ?? 2222);
    return gw;
  }

  /** Connections, sessions and bytes so far, and the connections open now. */
  stats(): { connections: number; open: number; sessions: number; logins: number; bytesReceived: number; bytesSent: number } {
    let rx = this.counts.bytesReceived;
    let tx = this.counts.bytesSent;
    for (const s of this.sockets) {
      rx += s.bytesRead;
      tx += s.bytesWritten;
    }
    return { ...this.counts, open: this.clients.size, bytesReceived: rx, bytesSent: tx };
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.end();
    await new Promise<void>((resolve) => this.listener.close(() => resolve()));
  }

  private get log(): Logger {
    return this.opts.logger;
  }

  private onClient(client: Connection): void {
    this.clients.add(client);
    let login: Login | undefined;
    const forwards = new Map<string, { close(): unknown }>();
    client.on('error', (err) => this.log.debug({ err }, 'ssh client error'));
    client.on('close', () => {
      this.clients.delete(client);
      for (const s of forwards.values()) s.close();
    });
    client.on('authentication', (ctx) => {
      this.authenticate(ctx).then(
        (ok) => {
          // Set before accept(): 'ready' follows accept() at once.
          if (ok === 'rejected') return ctx.reject(['publickey']);
          if (ok !== 'key-ok') {
            login = ok;
            this.counts.logins++;
          }
          ctx.accept();
        },
        (err: unknown) => {
          this.log.warn({ err }, 'ssh authentication failed');
          ctx.reject(['publickey']);
        },
      );
    });
    client.on('ready', () => {
      const who = login!;
      const where = { ...(who.ordinal !== undefined ? { instance: who.ordinal } : {}), ...(who.container ? { container: who.container } : {}) };
      // A refusal is audited once per connection, however many channels it refuses.
      let audited = false;
      const refusal = async (): Promise<string | undefined> => {
        const right = who.refused !== undefined ? { ok: false as const, reason: who.refused } : await sshRight(this.opts.store, who.key, who.owner);
        if (right.ok) return undefined;
        if (!audited) void this.opts.audit?.record(this.callerOf(who), 'ssh.refused', 'pod', who.podId, { ...where, sshKey: who.key.fingerprint, reason: right.reason });
        audited = true;
        return right.reason;
      };
      if (who.refused === undefined) {
        // Shells, commands, SFTP and forwards alike: the pod is in use while the connection is open.
        const release = this.opts.activity?.open(who.podId, 'ssh');
        if (release) client.once('close', release);
        void this.opts.audit?.record(this.callerOf(who), 'ssh.session', 'pod', who.podId, { ...where, sshKey: who.key.fingerprint });
      } else void refusal();
      client.on('session', (accept, reject) => {
        this.counts.sessions++;
        refusal().then(
          (reason) => (reason === undefined ? this.onSession(accept(), who) : refusedSession(accept(), reason)),
          () => reject(),
        );
      });
      client.on('tcpip', (accept, reject, info) => {
        if (!LOCAL_NAMES.has(info.destIP) && info.destIP !== who.podId) {
          this.log.info({ pod: who.podId, dest: info.destIP }, 'refused a forward to another host');
          return reject();
        }
        refusal()
          .then((reason) => {
            if (reason !== undefined) throw new BerthError('FORBIDDEN', reason);
            return this.target(who);
          })
          .then(({ access, instance }) => access.connect!(instance.id, info.destPort))
          .then(
            (socket) => pipeChannel(accept(), socket),
            (err: unknown) => {
              this.log.info({ pod: who.podId, port: info.destPort, err: (err as Error).message }, 'forward refused');
              reject();
            },
          );
      });
      client.on('request', (accept, reject, name, info) => {
        if (name === 'tcpip-forward' && 'bindPort' in info) {
          return void refusal().then(
            (reason) => (reason === undefined ? this.remoteForward(client, who, info.bindAddr, info.bindPort, forwards, accept, reject) : reject?.()),
            () => reject?.(),
          );
        }
        if (name === 'cancel-tcpip-forward' && 'bindPort' in info) {
          const key = `${info.bindAddr}:${info.bindPort}`;
          forwards.get(key)?.close();
          forwards.delete(key);
          return accept?.();
        }
        reject?.();
      });
    });
  }

  /**
   * Accepts only a key registered in the pod's team, with a valid signature. A key whose user may not
   * use the pod (a viewer, a removed user) is let in to be told why on each session it opens.
   */
  private async authenticate(ctx: AuthContext): Promise<Login | 'key-ok' | 'rejected'> {
    const m = USER.exec(ctx.username);
    if (ctx.method !== 'publickey' || !m) return 'rejected';
    const detail = await this.opts.store.getPod(m[1] as PodId);
    if (!detail || detail.pod.status === 'TERMINATED') return 'rejected';
    const keys = await this.opts.store.listSshKeys(detail.pod.owner);
    for (const k of keys) {
      const parsed = utils.parseKey(k.publicKey);
      if (parsed instanceof Error) continue;
      if (parsed.type !== ctx.key.algo && !(ctx.key.algo.startsWith('rsa-sha2') && parsed.type === 'ssh-rsa')) continue;
      if (!parsed.getPublicSSH().equals(ctx.key.data)) continue;
      // Without a signature the client only asks whether this key would do.
      if (!ctx.signature) return 'key-ok';
      if (parsed.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) !== true) break;
      const right = await sshRight(this.opts.store, k, detail.pod.owner);
      return {
        podId: detail.pod.id,
        ordinal: m[2] !== undefined ? Number(m[2]) : undefined,
        container: m[3],
        owner: detail.pod.owner,
        key: { id: k.id, user: k.user ?? null, fingerprint: k.fingerprint },
        ...(right.ok ? {} : { refused: right.reason }),
      };
    }
    return 'rejected';
  }

  /** The key's user in the pod's team, for the audit log and the resolver. */
  private callerOf(who: Login): Caller {
    return { owner: who.owner, admin: false, user: who.key.user ?? null };
  }

  /** The pod's running instance and its node's access, or a BerthError saying why there is none. */
  private target(who: Login): Promise<Resolved> {
    // The login already proved the key is the team's: the team is the caller.
    return this.opts.resolver.resolve(this.callerOf(who), who.podId, { instance: who.ordinal, container: who.container, running: true, interactive: true });
  }

  private onSession(session: Session, who: Login): void {
    let pty: { term: string; cols: number; rows: number } | undefined;
    const env: Record<string, string> = {};
    let running: ExecStream | undefined;
    session.on('pty', (accept, _reject, info) => {
      pty = { term: info.term, cols: info.cols, rows: info.rows };
      accept?.();
    });
    session.on('env', (accept, _reject, info) => {
      if (/^(LANG|LC_[A-Z]+|TZ|COLORTERM)$/.test(info.key)) env[info.key] = info.val;
      accept?.();
    });
    session.on('window-change', (accept, _reject, info) => {
      void running?.resize(info.cols, info.rows);
      accept?.();
    });
    session.on('signal', (accept) => accept?.());
    const start = (channel: ServerChannel, what: Run): void => {
      this.run(channel, who, what, pty, env).then(
        (exec) => (running = exec),
        () => undefined,
      );
    };
    session.on('shell', (accept) => {
      // A login shell: bash where the image has it, else sh.
      start(accept(), { shell: true });
    });
    session.on('exec', (accept, _reject, info) => start(accept(), { command: info.command }));
    // 'sftp' has its own event; no other subsystem is served.
    session.on('subsystem', (_accept, reject) => reject());
    session.on('sftp', (accept) => {
      const sftp = accept();
      // Before the client's INIT is read: the VERSION answer carries it.
      offerLimits(sftp);
      this.target(who).then(
        ({ access, instance }) => new SftpSession(sftp, { access, instanceId: instance.id as InstanceId, container: who.container, logger: this.log }),
        (err: unknown) => {
          this.log.info({ pod: who.podId, err: (err as Error).message }, 'sftp refused');
          sftp.end();
        },
      );
    });
  }

  /** Runs a shell or a command in the pod, wiring the channel to it both ways; the exit status goes back at the end. */
  private async run(channel: ServerChannel, who: Login, what: Run, pty: { term: string; cols: number; rows: number } | undefined, env: Record<string, string>): Promise<ExecStream> {
    let exec: ExecStream;
    try {
      // Before anything runs in the pod: an argv or env the runtime would hang on is refused here.
      const envEntries = Object.entries(env).map(([k, v]) => `${k}=${v}`);
      checkExec('command' in what ? ['/bin/sh', '-c', what.command] : LOGIN_SHELL, envEntries, 'command');
      const { access, instance } = await this.target(who);
      const argv = await this.argvFor(what, access, instance.id, who.container);
      checkExec(argv, envEntries, 'command');
      exec = await access.openExec!(instance.id, who.container, {
        argv,
        tty: pty !== undefined,
        env: { ...env, ...(pty ? { TERM: pty.term || 'xterm-256color' } : {}) },
        ...(pty ? { cols: pty.cols, rows: pty.rows } : {}),
      });
    } catch (err) {
      refuse(channel, err);
      throw err;
    }
    let open = 2;
    const finish = (): void => {
      if (--open > 0) return;
      void exec.exitCode.then((code) => {
        if (channel.closed) return;
        channel.exit(code < 0 ? 255 : code);
        channel.end();
      });
    };
    exec.stdout.on('end', finish);
    exec.stderr.on('end', finish);
    exec.stdout.pipe(channel, { end: false });
    exec.stderr.pipe(channel.stderr, { end: false });
    channel.on('data', (d: Buffer) => {
      if (!exec.stdin.write(d)) {
        channel.pause();
        exec.stdin.once('drain', () => channel.resume());
      }
    });
    // As sshd: EOF closes a command's stdin, but a PTY has no half-close (Docker would drop the output).
    channel.on('end', () => {
      if (!pty) exec.stdin.end();
    });
    channel.on('close', () => exec.close());
    return exec;
  }

  /**
   * As sshd: a login shell (bash where the image has it, else sh), or the command run by `sh -c`.
   * An image without /bin/sh (distroless, FROM scratch) has no shell to open, and its command is
   * split into words (quotes and backslashes as sh reads them) and run as a program.
   */
  private async argvFor(what: Run, access: NodeAccess, instanceId: InstanceId, container: string | undefined): Promise<string[]> {
    const noShell = await lacksShell(access, instanceId, container);
    if ('shell' in what) {
      if (noShell) throw new BerthError('VALIDATION', `${NO_SHELL}; run one of its programs instead: ssh ... -- /path/to/program args`);
      return LOGIN_SHELL;
    }
    if (!noShell) return ['/bin/sh', '-c', what.command];
    const argv = splitWords(what.command);
    if (argv.length === 0) throw new BerthError('VALIDATION', 'no command to run (the image has no /bin/sh)');
    return argv;
  }

  /**
   * `-R`: the gateway cannot open a listener inside the pod's network namespace without a helper in
   * the image, so it listens on the pod's node at the Docker network's gateway address, which the pod
   * reaches (BERTH_HOST_GATEWAY in docs/access.md), and forwards each connection back to the client.
   */
  private remoteForward(client: Connection, who: Login, bindAddr: string, bindPort: number, forwards: Map<string, { close(): unknown }>, accept: ((port?: number) => void) | undefined, reject: (() => void) | undefined): void {
    this.target(who)
      .then(async ({ access, instance }) => {
        if (access.listenForPod) {
          // The pod's node is another machine: it listens there, and each connection comes over its channel.
          const remote = await access.listenForPod(instance.id, bindPort, (socket, from) => {
            client.forwardOut(bindAddr, bindPort, from.address, from.port, (err, channel) => {
              if (err) return socket.destroy();
              pipeChannel(channel, socket);
            });
          });
          forwards.set(`${bindAddr}:${bindPort}`, { close: () => void remote.close() });
          this.log.info({ pod: who.podId, address: remote.address, port: remote.port }, 'remote forward listening on the node');
          return accept?.(remote.port);
        }
        const address = await access.hostAddress!(instance.id);
        const listener = createTcpServer((socket: Socket) => {
          const remote = socket.remoteAddress ?? '';
          client.forwardOut(bindAddr, bindPort, remote, socket.remotePort ?? 0, (err, channel) => {
            if (err) return socket.destroy();
            pipeChannel(channel, socket);
          });
        });
        await new Promise<void>((resolve, reject2) => {
          listener.once('error', reject2);
          listener.listen(bindPort, address, () => resolve());
        });
        const addr = listener.address();
        const port = typeof addr === 'object' && addr ? addr.port : bindPort;
        // The node's firewall keeps pods off the node: let this pod reach this listener while it is open.
        const close = await access.openToPod?.(instance.id, address, port);
        if (close) listener.once('close', () => void close());
        forwards.set(`${bindAddr}:${bindPort}`, listener);
        this.log.info({ pod: who.podId, address, port }, 'remote forward listening');
        accept?.(port);
      })
      .catch((err: unknown) => {
        this.log.info({ pod: who.podId, err: (err as Error).message }, 'remote forward refused');
        reject?.();
      });
  }
}

/** What a session asks to run: a login shell, or a command line. */
type Run = { shell: true } | { command: string };

/**
 * Gathers everything written to the client's socket in one turn of the event loop into one system
 * call: an upload gets an SFTP status for each 32 KiB written, each in its own SSH packet, and
 * without this each is a write(2) of its own and, with Nagle off, a TCP segment. The socket is
 * corked at the first write of a turn and uncorked once the turn is done (setImmediate runs right
 * after the poll phase), so nothing waits longer than that.
 */
function gatherWrites(socket: Socket): void {
  const write = socket.write;
  let corked = false;
  const uncork = (): void => {
    corked = false;
    socket.uncork();
  };
  socket.write = ((...args: Parameters<Socket['write']>) => {
    if (!corked) {
      corked = true;
      socket.cork();
      setImmediate(uncork);
    }
    return write.apply(socket, args);
  }) as Socket['write'];
}

function pipeChannel(channel: ServerChannel | NodeJS.ReadWriteStream, socket: Socket | NodeJS.ReadWriteStream): void {
  const ch = channel as ServerChannel;
  const s = socket as Socket;
  ch.pipe(s).pipe(ch);
  ch.on('close', () => s.destroy());
  s.on('close', () => ch.destroy());
  s.on('error', () => ch.destroy());
  ch.on('error', () => s.destroy());
}
