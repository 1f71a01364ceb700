/**
 * The server's claim on the CPU (`berth server --nice`).
 *
 * On a machine whose cores are saturated by container start-up — each start forks runc, iptables
 * and re-executions of dockerd — a thread that wakes for a request waits its turn behind them: on
 * 2 cores, 100 to 300 ms at the p99, whether Berth or the docker CLI asked for the containers
 * (docs/benchmarks.md, burst). Linux schedules each session as one group (autogroup), so the
 * nice(1) of the server's threads alone only orders them among themselves; the group's own nice
 * (`/proc/self/autogroup`, sched(7)) is what weighs the server against dockerd's group. Both are
 * set: the thread's nice for a kernel without autogroup, the group's where it is in effect and the
 * server leads its session.
 *
 * Under systemd with the cpu controller on, the service's cgroup weighs instead (CPUWeight=,
 * docs/cli.md). Lowering a nice needs root (CAP_SYS_NICE); without it the server runs as it
 * was and says so.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/** `--nice`'s default: the API answers first, on a machine busy starting containers. */
export const DEFAULT_SERVER_NICE = -20;

export interface PriorityClaim {
  /** The nice asked for. */
  nice: number;
  /** The main thread's nice now. */
  thread: number;
  /** The session group's nice now, where the kernel groups sessions; null where it does not. */
  autogroup: number | null;
  /** Why the session group was left as it was (not this process's session), else undefined. */
  sessionLeftAlone?: string;
  /** Why part of the claim was not made (no privilege), else undefined. */
  refused?: string;
}

const PROC_SELF = { autogroup: '/proc/self/autogroup', stat: '/proc/self/stat' };

/**
 * Sets the calling thread's nice (on Linux, setpriority on the main thread; threads and processes
 * it starts after inherit it) to `nice` (-20..19), and its session group's where this process leads
 * its session (a service, `setsid`): a server started from a shell shares the shell's session, and
 * raising that would raise everything else the terminal runs. Never throws: a refusal is in the answer.
 */
export function claimCpuPriority(nice: number, paths: { autogroup?: string; stat?: string } = {}): PriorityClaim {
  const autogroupPath = paths.autogroup ?? PROC_SELF.autogroup;
  const refusals: string[] = [];
  try {
    setPriority(nice);
  } catch (err) {
    refusals.push(`thread: ${(err as Error).message}`);
  }
  let autogroup = readAutogroup(autogroupPath);
  let sessionLeftAlone: string | undefined;
  if (autogroup !== null) {
    const session = sessionOf(paths.stat ?? PROC_SELF.stat);
    if (session !== process.pid) sessionLeftAlone = `it shares session ${session ?? '?'} with the program that started it`;
    else {
      try {
        writeFileSync(autogroupPath, String(nice));
      } catch (err) {
        refusals.push(`session group: ${(err as Error).message}`);
      }
      autogroup = readAutogroup(autogroupPath);
    }
  }
  return {
    nice,
    thread: getPriority(),
    autogroup,
    ...(sessionLeftAlone ? { sessionLeftAlone } : {}),
    ...(refusals.length ? { refused: refusals.join('; ') } : {}),
  };
}

/** The session id in `/proc/<pid>/stat` (the 6th field; the 2nd, the name, may hold spaces), or null. */
export function sessionOf(path: string): number | null {
  const text = textOf(path);
  if (text === null) return null;
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const session = Number(fields[3]);
  return Number.isInteger(session) ? session : null;
}

/** The nice in `/proc/<pid>/autogroup` ("/autogroup-25 nice 0"), or null where there is none (no autogroup, not Linux). */
export function readAutogroup(path: string): number | null {
  const text = textOf(path);
  if (text === null) return null;
  const match = /nice\s+(-?\d+)/.exec(text);
  return match ? Number(match[1]) : null;
}

/** A file's text, or null where it cannot be read (not Linux, no such file). */
function textOf(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** `--nice`: an integer from -20 to 19. */
export function isNice(value: number): boolean {
  return Number.isInteger(value) && value >= -20 && value <= 19;
}
