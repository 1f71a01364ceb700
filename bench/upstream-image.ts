/**
 * The proxy benchmark's upstream: Debian's nginx (the machine's own binary and the libraries it links)
 * in an image FROM scratch, answering a small fixed response on 8080. Machines here have no registry
 * to pull from, and busybox httpd forks per connection: with it as the upstream all three paths would
 * measure httpd, not the proxies. Built once per machine, rebuilt when the nginx binary changes.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import Docker from 'dockerode';

export const UPSTREAM_IMAGE = 'berth-bench/nginx:1';
const HASH_LABEL = 'berth-bench.image-hash';
export const UPSTREAM_BODY = 'hello from the pod\n';
const RECIPE = '2';

const CONF = `daemon off;
master_process off;
worker_processes 1;
error_log stderr;
pid /tmp/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path /tmp/body; proxy_temp_path /tmp/proxy; fastcgi_temp_path /tmp/fcgi; uwsgi_temp_path /tmp/uwsgi; scgi_temp_path /tmp/scgi;
  keepalive_requests 1000000;
  server { listen 8080; location / { default_type text/plain; return 200 "${UPSTREAM_BODY.replace('\n', '\\n')}"; } }
}
`;

/** The shared libraries `bin` links, from ldd. */
function libraries(bin: string): string[] {
  const out = execFileSync('ldd', [bin], { encoding: 'utf8' });
  return [...out.matchAll(/(\/\S+\.so[.\d]*)/g)].map((m) => m[1]!);
}

export async function ensureUpstreamImage(docker: Docker = new Docker()): Promise<string> {
  const nginx = '/usr/sbin/nginx';
  const libs = libraries(nginx);
  // Bump RECIPE when the Dockerfile below changes.
  const hash = createHash('sha256').update(RECIPE).update(CONF).update(await readFile(nginx)).update(libs.join(',')).digest('hex').slice(0, 16);
  try {
    const info = await docker.getImage(UPSTREAM_IMAGE).inspect();
    if (info.Config?.Labels?.[HASH_LABEL] === hash) return UPSTREAM_IMAGE;
  } catch {
    // not built yet
  }
  const dir = await mkdtemp(join(tmpdir(), 'berth-bench-image-'));
  try {
    // An image FROM scratch has no /tmp, where nginx keeps its temp paths.
    await mkdir(join(dir, 'tmp'));
    await writeFile(join(dir, 'tmp', '.keep'), '');
    const files = ['nginx', 'nginx.conf', 'passwd', 'group', 'tmp'];
    await copyFile(nginx, join(dir, 'nginx'));
    await writeFile(join(dir, 'nginx.conf'), CONF);
    await writeFile(join(dir, 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
    await writeFile(join(dir, 'group'), 'root:x:0:\nnogroup:x:65534:\n');
    const copies: string[] = [];
    for (const lib of libs) {
      const name = basename(lib);
      await copyFile(lib, join(dir, name));
      files.push(name);
      copies.push(`COPY ${name} ${lib}`);
    }
    await writeFile(
      join(dir, 'Dockerfile'),
      ['FROM scratch', ...copies, 'COPY nginx /usr/sbin/nginx', 'COPY nginx.conf /etc/nginx/nginx.conf', 'COPY passwd group /etc/', 'COPY tmp /tmp', 'CMD ["/usr/sbin/nginx", "-c", "/etc/nginx/nginx.conf"]', ''].join('\n'),
    );
    files.push('Dockerfile');
    const stream = await docker.buildImage({ context: dir, src: files }, { t: UPSTREAM_IMAGE, labels: { [HASH_LABEL]: hash }, rm: true, forcerm: true });
    await new Promise<void>((resolve, reject) => {
      let failure: string | null = null;
      docker.modem.followProgress(
        stream,
        (err) => (err ? reject(err) : failure ? reject(new Error(`building ${UPSTREAM_IMAGE} failed: ${failure}`)) : resolve()),
        (msg: unknown) => {
          if (failure === null && typeof msg === 'object' && msg !== null && 'error' in msg) failure = String(msg.error);
        },
      );
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return UPSTREAM_IMAGE;
}
