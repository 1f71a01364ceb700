/**
 * Reading a running container's files from the node, through the root of its first process
 * (`/proc/<pid>/root`), without Docker in the data path: Docker's archive API costs about 0.5 s of
 * the daemon's CPU per 200 MB and starts 100-250 ms late, which kept scp downloads at half of sshd's.
 *
 * The danger is a path that leads out of the container. The container's user owns its files and may
 * plant links anywhere in them (`ln -s / /escape`, `../../..`, a link in a directory on the way);
 * the kernel, asked to open `/proc/<pid>/root/escape/etc/shadow`, would resolve `/` against the
 * node's root. So the kernel is never asked to follow a link of the container: every component is
 * opened on its own with O_PATH | O_NOFOLLOW, relative to the directory opened before it (through
 * `/proc/self/fd/<n>/`, as openat(2) would, which Node does not offer), and a link found on the way
 * is read as text and walked again from the container's root (absolute) or its directory
 * (relative), as openat2(2)'s RESOLVE_IN_ROOT does. `..` goes back along the directories walked and
 * stops at the root. O_PATH opens nothing: a device node the container made is never opened on the
 * node (the container's device cgroup does not apply to the node's processes); the file is opened
 * for reading only once its descriptor shows a regular file, through that same descriptor.
 */
import { open, readFile, readlink, statfs, type FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { constants } from 'node:fs';
import { Readable } from 'node:stream';
import { BerthError } from '../model/errors.js';

/** Linux's O_PATH on every architecture Node runs on (alpha, parisc and sparc differ; Node has no port there). */
const O_PATH = 0o10000000;

/** As Linux's MAXSYMLINKS. */
const MAX_LINKS = 40;

/**
 * Bytes per read: four of the 255 KiB (261,120 bytes) that OpenSSH's client asks for at a time
 * through the SSH gateway, so that no answer to its front-to-back reads straddles two of these and
 * has to be copied together (Node's default of 64 KiB would read four times as often and join every answer).
 */
const READ_SIZE = 4 * 261_120;

export interface OpenedFile {
  size: number;
  /** POSIX st_mode. */
  mode: number;
  mtimeMs: number;
  /** Exactly `size` bytes, or fewer if the file shrinks while it is read; destroy it to close the file early. */
  content: Readable;
}

/**
 * Filesystems whose "regular files" are the kernel's own (the container's /proc and /sys are the
 * node's kernel talking): left to the archive API, which reads the container's image and volumes.
 */
const KERNEL_FILESYSTEMS = new Set([
  0x9fa0, // proc
  0x62656572, // sysfs
  0x27e0eb, // cgroup
  0x63677270, // cgroup2
  0x64626720, // debugfs
  0x74726163, // tracefs
  0x73636673, // securityfs
  0xcafe4a11, // bpf
  0x62656570, // configfs
  0xde5e81e4, // efivarfs
  0x6165676c, // pstore
  0xf97cff8c, // selinuxfs
  0x65735543, // fusectl
  0x42494e4d, // binfmt_misc
]);

/**
 * Opens `path` as the container whose first process is `pid` sees it, links resolved inside its
 * root. Undefined when this process cannot read that root (not root on the node, the process gone,
 * another pid namespace) or `pid` is no longer the container `containerId`, or the file is the
 * kernel's (see KERNEL_FILESYSTEMS): the caller reads through Docker then. NOT_FOUND when there is
 * no such file, VALIDATION when it is not a regular file.
 */
export async function openInContainer(pid: number, containerId: string, path: string): Promise<OpenedFile | undefined> {
  let root: FileHandle;
  try {
    root = await open(`/proc/${pid}/root`, O_PATH | constants.O_DIRECTORY);
  } catch {
    return undefined;
  }
  try {
    // Checked after the root is held: a pid reused by another process between Docker's answer and
    // the open shows here, as that process's cgroup does not name the container.
    if (!(await cgroupNames(pid, containerId))) return undefined;
    return await openInRoot(root, path);
  } finally {
    await root.close();
  }
}

async function cgroupNames(pid: number, containerId: string): Promise<boolean> {
  try {
    return (await readFile(`/proc/${pid}/cgroup`, 'utf8')).includes(containerId);
  } catch {
    return false;
  }
}

/**
 * Opens `path` below the directory `root` (held open; the caller closes it), never leaving it:
 * see the module's comment. Exported for tests, which walk a directory of their own.
 */
export async function openInRoot(root: FileHandle, path: string): Promise<OpenedFile | undefined> {
  const walked: FileHandle[] = [];
  const top = (): FileHandle => walked[walked.length - 1] ?? root;
  const todo = components(path);
  let links = 0;
  try {
    for (;;) {
      const name = todo.shift();
      if (name === undefined) {
        // The path named the root itself, or ended in `..`/`.`: a directory.
        throw notRegular(path);
      }
      if (name === '..') {
        await walked.pop()?.close();
        continue;
      }
      const at = `/proc/self/fd/${top().fd}/${name}`;
      let next: FileHandle;
      try {
        next = await open(at, O_PATH | constants.O_NOFOLLOW);
      } catch (err) {
        throw missing(err, path);
      }
      let st: Stats;
      try {
        st = await next.stat();
      } catch (err) {
        await next.close();
        throw err;
      }
      if (st.isSymbolicLink()) {
        await next.close();
        if (++links > MAX_LINKS) throw new BerthError('VALIDATION', `${path}: too many levels of symbolic links`, { extra: { path } });
        // The link's text, never followed by the kernel; if it changed since, the newer text is walked.
        let target: string;
        try {
          target = await readlink(at);
        } catch (err) {
          throw missing(err, path);
        }
        if (target.startsWith('/')) while (walked.length > 0) await walked.pop()!.close();
        todo.unshift(...components(target));
        continue;
      }
      if (todo.length > 0) {
        if (!st.isDirectory()) {
          await next.close();
          throw new BerthError('NOT_FOUND', `${path}: not a directory on the way`, { extra: { path } });
        }
        walked.push(next);
        continue;
      }
      try {
        if (!st.isFile()) throw notRegular(path);
        return await readThrough(next);
      } finally {
        await next.close();
      }
    }
  } finally {
    for (const fh of walked) await fh.close();
  }
}

/** Opens the regular file held by the O_PATH descriptor `held` for reading: the same inode, no name looked up again. */
async function readThrough(held: FileHandle): Promise<OpenedFile | undefined> {
  // Asked before the open: opening some of the kernel's files does something.
  if (KERNEL_FILESYSTEMS.has((await statfs(`/proc/self/fd/${held.fd}`)).type)) return undefined;
  const fh = await open(`/proc/self/fd/${held.fd}`, constants.O_RDONLY | constants.O_NOCTTY);
  try {
    const st = await fh.stat();
    const content = st.size === 0 ? emptyStream(fh) : fh.createReadStream({ start: 0, end: st.size - 1, highWaterMark: READ_SIZE });
    return { size: st.size, mode: st.mode, mtimeMs: st.mtimeMs, content };
  } catch (err) {
    await fh.close();
    throw err;
  }
}

function emptyStream(fh: FileHandle): Readable {
  void fh.close();
  return Readable.from([]);
}

/** The path's names, empty and `.` ones dropped; `..` kept for the walk. */
function components(path: string): string[] {
  return path.split('/').filter((c) => c !== '' && c !== '.');
}

function notRegular(path: string): BerthError {
  return new BerthError('VALIDATION', `${path}: not a regular file`, { extra: { path } });
}

function missing(err: unknown, path: string): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return new BerthError('NOT_FOUND', `${path}: no such file or directory`, { cause: err, extra: { path } });
  return err;
}
