/**
 * The image integration tests run: built here FROM scratch with the host's static busybox, since test
 * machines have no registry to pull from. Built once per machine and rebuilt when its inputs change.
 */

import { createHash } from 'node:crypto';
import { copyFile, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';

export const TEST_IMAGE = 'berth-test/busybox:1';

const BUSYBOX = '/bin/busybox';
// Outside the berth.* namespace: containers inherit image labels, and the agent reads berth.* as its own.
const HASH_LABEL = 'berth-test.image-hash';

// /tmp world-writable for `mktemp`; /www for httpd; /etc/passwd and /etc/group so `id`, `whoami`
// and httpd's user lookups find root.
const DOCKERFILE = `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN ["/bin/busybox", "mkdir", "-p", "/tmp", "/www", "/root", "/etc"]
RUN ["/bin/busybox", "chmod", "1777", "/tmp"]
COPY passwd group /etc/
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["/bin/sh"]
`;
const PASSWD = 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n';
const GROUP = 'root:x:0:\nnogroup:x:65534:\n';

/** True when the ELF binary asks for a dynamic loader, which an image FROM scratch lacks. */
async function isDynamic(path: string): Promise<boolean> {
  const file = await open(path, 'r');
  try {
    const header = Buffer.alloc(64);
    await file.read(header, 0, 64, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2 || header[5] !== 1) return false;
    const phoff = Number(header.readBigUInt64LE(0x20));
    const phentsize = header.readUInt16LE(0x36);
    const phnum = header.readUInt16LE(0x38);
    const table = Buffer.alloc(phentsize * phnum);
    await file.read(table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) {
      // PT_INTERP
      if (table.readUInt32LE(i * phentsize) === 3) return true;
    }
    return false;
  } finally {
    await file.close();
  }
}

async function buildOutput(docker: Docker, stream: NodeJS.ReadableStream, tag = TEST_IMAGE): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let failure: string | null = null;
    docker.modem.followProgress(
      stream,
      (err) => (err ? reject(err) : failure ? reject(new Error(`building ${tag} failed: ${failure}`)) : resolve()),
      (msg: unknown) => {
        if (failure === null && typeof msg === 'object' && msg !== null && 'error' in msg) failure = String(msg.error);
      },
    );
  });
}

/** Builds `berth-test/busybox:1` unless an image with the same inputs is already there; returns its tag. */
export async function ensureTestImage(docker: Docker = new Docker()): Promise<string> {
  let binary: Buffer;
  try {
    binary = await readFile(BUSYBOX);
  } catch {
    throw new Error(`${BUSYBOX} is missing: the test image needs a static busybox (apt-get install busybox-static)`);
  }
  if (await isDynamic(BUSYBOX)) {
    throw new Error(`${BUSYBOX} is dynamically linked and cannot run in an image FROM scratch (apt-get install busybox-static)`);
  }
  const hash = createHash('sha256').update(DOCKERFILE).update(PASSWD).update(GROUP).update(binary).digest('hex').slice(0, 16);

  try {
    const info = await docker.getImage(TEST_IMAGE).inspect();
    if (info.Config?.Labels?.[HASH_LABEL] === hash) return TEST_IMAGE;
  } catch (err) {
    if (!(typeof err === 'object' && err !== null && 'statusCode' in err && err.statusCode === 404)) throw err;
  }

  const dir = await mkdtemp(join(tmpdir(), 'berth-test-image-'));
  try {
    await copyFile(BUSYBOX, join(dir, 'busybox'));
    await writeFile(join(dir, 'Dockerfile'), DOCKERFILE);
    await writeFile(join(dir, 'passwd'), PASSWD);
    await writeFile(join(dir, 'group'), GROUP);
    // Two test processes may build at once: both produce the same image and the tag ends on one of
    // them, so a concurrent build is harmless.
    const stream = await docker.buildImage(
      { context: dir, src: ['Dockerfile', 'busybox', 'passwd', 'group'] },
      { t: TEST_IMAGE, labels: { [HASH_LABEL]: hash }, rm: true, forcerm: true },
    );
    await buildOutput(docker, stream);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return TEST_IMAGE;
}

/**
 * An image with no shell (no /bin/sh, only /bin/busybox): it sleeps until told to stop, and stops at
 * once on SIGTERM. Tests of what Berth does in images without tools run it.
 */
export const PAUSE_IMAGE = 'berth-test/pause:1';

const PAUSE_DOCKERFILE = `FROM scratch
COPY busybox /bin/busybox
ENTRYPOINT ["/bin/busybox", "sh", "-c", "trap 'exit 0' TERM INT; while :; do /bin/busybox sleep 3600 & wait $!; done"]
`;

/** Builds berth-test/pause:1 unless it is there with the same inputs; returns its tag. */
export async function ensurePauseImage(docker: Docker = new Docker()): Promise<string> {
  const binary = await readFile(BUSYBOX);
  const hash = createHash('sha256').update(PAUSE_DOCKERFILE).update(binary).digest('hex').slice(0, 16);
  try {
    const info = await docker.getImage(PAUSE_IMAGE).inspect();
    if (info.Config?.Labels?.[HASH_LABEL] === hash) return PAUSE_IMAGE;
  } catch (err) {
    if (!(typeof err === 'object' && err !== null && 'statusCode' in err && err.statusCode === 404)) throw err;
  }
  const dir = await mkdtemp(join(tmpdir(), 'berth-pause-image-'));
  try {
    await copyFile(BUSYBOX, join(dir, 'busybox'));
    await writeFile(join(dir, 'Dockerfile'), PAUSE_DOCKERFILE);
    const stream = await docker.buildImage({ context: dir, src: ['Dockerfile', 'busybox'] }, { t: PAUSE_IMAGE, labels: { [HASH_LABEL]: hash }, rm: true, forcerm: true });
    await buildOutput(docker, stream, PAUSE_IMAGE);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return PAUSE_IMAGE;
}
