/**
 * Files inside a container: read from the node through the container's root where it can be (see
 * container-root.ts), else over Docker's archive API (read and write as tar, and one path's attributes).
 */

import type { IncomingMessage } from 'node:http';
import { BerthError } from '../model/errors.js';
import type { PathStat } from '../model/records.js';
import { openInContainer, type OpenedFile } from './container-root.js';
import { fail, statusCode, type Daemon } from './daemon.js';

/**
 * A running container's file read on the node, past Docker. Undefined where that cannot be: the
 * container is not running (a stopped one has no process whose root to read through), this process
 * may not read `/proc/<pid>/root` (not root, another pid namespace), or something unexpected failed
 * on the way; the caller reads through the archive API then, which works in all those cases. Its
 * NOT_FOUND and VALIDATION (not a regular file) are final.
 */
export async function openFile(daemon: Daemon, id: string, path: string): Promise<OpenedFile | undefined> {
  let pid: number | undefined;
  let fullId: string;
  try {
    const info = await daemon.docker.getContainer(id).inspect();
    pid = info.State?.Running ? info.State.Pid : undefined;
    fullId = info.Id;
  } catch {
    return undefined;
  }
  if (!pid) return undefined;
  try {
    return await openInContainer(pid, fullId, path);
  } catch (err) {
    if (err instanceof BerthError) throw err;
    return undefined;
  }
}

export async function getArchive(daemon: Daemon, id: string, path: string, signal?: AbortSignal): Promise<NodeJS.ReadableStream> {
  try {
    return await daemon.docker.getContainer(id).getArchive({ path, ...(signal ? { abortSignal: signal } : {}) });
  } catch (err) {
    if (statusCode(err) === 404) throw new BerthError('NOT_FOUND', `${path}: no such file or directory`, { cause: err, extra: { path } });
    throw fail(daemon, err, `read ${path} in container ${id}`);
  }
}

export async function putArchive(daemon: Daemon, id: string, dir: string, tar: NodeJS.ReadableStream): Promise<void> {
  try {
    const res: unknown = await daemon.docker.getContainer(id).putArchive(tar, { path: dir });
    // The answer's body is empty; reading it to the end frees the connection.
    if (typeof res === 'object' && res !== null && 'resume' in res && typeof res.resume === 'function') res.resume();
  } catch (err) {
    if (statusCode(err) === 404) throw new BerthError('NOT_FOUND', `${dir}: no such directory`, { cause: err, extra: { path: dir } });
    if (statusCode(err) === 403) throw new BerthError('FORBIDDEN', `${dir} is read-only in the container`, { cause: err, extra: { path: dir } });
    throw fail(daemon, err, `write into ${dir} in container ${id}`);
  }
}

export async function statPath(daemon: Daemon, id: string, path: string): Promise<PathStat> {
  let res: IncomingMessage;
  try {
    res = (await daemon.docker.getContainer(id).infoArchive({ path })) as IncomingMessage;
  } catch (err) {
    if (statusCode(err) === 404) throw new BerthError('NOT_FOUND', `${path}: no such file or directory`, { cause: err, extra: { path } });
    throw fail(daemon, err, `stat ${path} in container ${id}`);
  }
  res.resume();
  const header = res.headers['x-docker-container-path-stat'];
  if (typeof header !== 'string') throw new BerthError('RUNTIME', `the daemon said nothing of ${path}'s attributes`);
  const raw = JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as { name: string; size: number; mode: number; mtime: string; linkTarget: string };
  return { name: raw.name, size: raw.size, mode: posixMode(raw.mode), mtimeMs: Date.parse(raw.mtime), linkTarget: raw.linkTarget ?? '' };
}

/** Go's os.FileMode (what the archive API reports: type bits at the top) as a POSIX st_mode. */
export function posixMode(go: number): number {
  const bit = (n: number): boolean => Math.floor(go / 2 ** n) % 2 === 1;
  const type = bit(31)
    ? 0o040000 // ModeDir
    : bit(27)
      ? 0o120000 // ModeSymlink
      : bit(26)
        ? bit(21)
          ? 0o020000 // ModeDevice | ModeCharDevice
          : 0o060000 // ModeDevice: a block device
        : bit(25)
          ? 0o010000 // ModeNamedPipe
          : bit(24)
            ? 0o140000 // ModeSocket
            : 0o100000;
  return type | (go % 0o1000) | (bit(23) ? 0o4000 : 0) | (bit(22) ? 0o2000 : 0) | (bit(20) ? 0o1000 : 0);
}
