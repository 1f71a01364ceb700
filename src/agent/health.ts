/**
 * Marathon-style health checks, run by the agent for one instance's running containers: http (a GET
 * answered 200-399), tcp (a connection accepted) and exec (a command exiting 0). Timers exist only
 * while an instance with health checks runs; nothing polls for pods without them.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as tcpConnect } from 'node:net';
import type { HealthCheckSpec } from '../model/index.js';

/** Where an http or tcp check connects. */
export interface HealthAddress {
  host: string;
  port: number;
}

export interface HealthTarget {
  /** The container's name in the spec. */
  container: string;
  containerId: string;
  check: HealthCheckSpec;
  /** http/tcp: where to connect; asked before each check (the container's address can be unknown at first). */
  address?: () => Promise<HealthAddress>;
}

/** What the monitor needs to run an exec check. */
export type ExecProbe = (containerId: string, argv: string[], timeoutMs: number) => Promise<{ exitCode: number }>;

export interface HealthVerdict {
  /** null: no verdict yet. */
  healthy: boolean | null;
  /** Consecutive failures counted now. */
  failures: number;
}

export interface HealthMonitorOptions {
  targets: HealthTarget[];
  exec: ExecProbe;
  /** When the containers started: the grace period runs from here. */
  startedAtMs: number;
  /** A verdict or a failure count changed. */
  onChange: () => void;
  /** A container reached its maxConsecutiveFailures; the monitor has stopped. */
  onUnhealthy: (container: string, failures: number) => void;
}

interface TargetState extends HealthVerdict {
  target: HealthTarget;
  everHealthy: boolean;
  timer: NodeJS.Timeout | null;
  /** The next wait while failures are still ignored (see tick). */
  startupDelayMs: number;
}

/** The first re-check of a service still starting; doubled each time up to the interval. */
const STARTUP_RETRY_MS = 100;

/** GET scheme://host:port/path; healthy on 200-399, as Marathon. Redirects are not followed. */
export function httpCheck(scheme: 'HTTP' | 'HTTPS', addr: HealthAddress, path: string, timeoutMs: number): Promise<boolean> {
  const request = scheme === 'HTTPS' ? httpsRequest : httpRequest;
  return new Promise((resolve) => {
    const req = request(
      {
        host: addr.host,
        port: addr.port,
        path: path.startsWith('/') ? path : `/${path}`,
        method: 'GET',
        timeout: timeoutMs,
        // As Marathon: a self-signed certificate does not make a service unhealthy.
        rejectUnauthorized: false,
        headers: { 'user-agent': 'berth-health-check', connection: 'close' },
      },
      (res) => {
        const status = res.statusCode ?? 0;
        res.resume();
        req.destroy();
        resolve(status >= 200 && status < 400);
      },
    );
    req.once('timeout', () => req.destroy(new Error('timed out')));
    req.once('error', () => resolve(false));
    req.end();
  });
}

/** Healthy when a TCP connection is accepted within the timeout. */
export function tcpCheck(addr: HealthAddress, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: addr.host, port: addr.port });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Runs one check of a target; any error is a failure. */
async function probe(t: HealthTarget, exec: ExecProbe): Promise<boolean> {
  const c = t.check;
  // The compiler keeps timeout below interval; 0 leaves the whole interval.
  const timeoutMs = (c.timeoutSeconds > 0 ? c.timeoutSeconds : c.intervalSeconds) * 1000;
  if (c.kind === 'exec') return (await exec(t.containerId, c.argv, timeoutMs)).exitCode === 0;
  if (!t.address) return false;
  const addr = await t.address();
  if (c.kind === 'http') return httpCheck(c.scheme, addr, c.path ?? '/', timeoutMs);
  return tcpCheck(addr, timeoutMs);
}

/** The health checks of one instance's containers, each on its own timer. */
export class HealthMonitor {
  private readonly states: TargetState[];
  private stopped = false;

  constructor(private readonly opts: HealthMonitorOptions) {
    this.states = opts.targets.map((target) => ({ target, healthy: null, failures: 0, everHealthy: false, timer: null, startupDelayMs: STARTUP_RETRY_MS }));
    const sinceStart = Date.now() - opts.startedAtMs;
    for (const s of this.states) this.schedule(s, Math.max(0, s.target.check.delaySeconds * 1000 - sinceStart));
  }

  /** The verdict for a container, by container id; undefined: it has no health check here. */
  verdict(containerId: string): HealthVerdict | undefined {
    const s = this.states.find((x) => x.target.containerId === containerId);
    return s ? { healthy: s.healthy, failures: s.failures } : undefined;
  }

  /** Stops every timer; the last verdicts stay readable. */
  stop(): void {
    this.stopped = true;
    for (const s of this.states) {
      if (s.timer) clearTimeout(s.timer);
      s.timer = null;
    }
  }

  get active(): boolean {
    return !this.stopped;
  }

  private schedule(s: TargetState, delayMs: number): void {
    if (this.stopped) return;
    s.timer = setTimeout(() => void this.tick(s), delayMs);
    s.timer.unref();
  }

  private async tick(s: TargetState): Promise<void> {
    s.timer = null;
    if (this.stopped) return;
    const began = Date.now();
    const ok = await probe(s.target, this.opts.exec).catch(() => false);
    if (this.stopped) return;
    this.record(s, ok);
    const intervalMs = s.target.check.intervalSeconds * 1000;
    // While failures are ignored (a service still starting, inside its grace period), checking again
    // sooner than the interval changes no count: the first verdict then comes when the service is up,
    // not up to one interval later.
    if (!ok && this.ignoring(s)) {
      const wait = Math.min(s.startupDelayMs, intervalMs);
      s.startupDelayMs *= 2;
      return this.schedule(s, wait);
    }
    this.schedule(s, Math.max(0, intervalMs - (Date.now() - began)));
  }

  /** As Marathon: failures inside the grace period do not count until the first success. */
  private ignoring(s: TargetState): boolean {
    return !s.everHealthy && Date.now() - this.opts.startedAtMs < s.target.check.gracePeriodSeconds * 1000;
  }

  private record(s: TargetState, ok: boolean): void {
    const check = s.target.check;
    if (ok) {
      s.everHealthy = true;
      if (s.healthy === true && s.failures === 0) return;
      s.healthy = true;
      s.failures = 0;
      this.opts.onChange();
      return;
    }
    if (this.ignoring(s)) return;
    s.healthy = false;
    s.failures++;
    if (check.maxConsecutiveFailures > 0 && s.failures >= check.maxConsecutiveFailures) {
      this.stop();
      this.opts.onUnhealthy(s.target.container, s.failures);
      return;
    }
    this.opts.onChange();
  }
}
