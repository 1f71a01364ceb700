/**
 * The node's own infra image: the container that holds a multi-container instance's network
 * namespace runs catatonit in pause mode, from an image the agent builds on the node the first
 * time it needs one. No registry is involved, so air-gapped and closed machines run Marathon pods
 * as they are. Podman does the same with its local pause image (catatonit -P, FROM scratch).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { BerthError } from '../model/index.js';
import { needsLoader } from '../runtime/images.js';
import type { Runtime } from '../runtime/types.js';

/** Where Debian's, Fedora's and openSUSE's catatonit packages, and Podman's, put the binary. */
export const CATATONIT_PATHS = ['/usr/bin/catatonit', '/usr/libexec/podman/catatonit', '/usr/libexec/catatonit/catatonit', '/usr/local/bin/catatonit'];

// -P: pause until signalled; as PID 1 it also reaps anything that joins the namespace and dies.
const DOCKERFILE = `FROM scratch
COPY catatonit /catatonit
ENTRYPOINT ["/catatonit", "-P"]
`;

/** `localhost/berth-infra:<hash>`: named by its inputs, so a new catatonit makes a new image and an old one is never mistaken for it. */
export function infraImageTag(catatonit: Buffer): string {
  const hash = createHash('sha256').update(DOCKERFILE).update(catatonit).digest('hex').slice(0, 12);
  return `localhost/berth-infra:${hash}`;
}

async function readCatatonit(paths: readonly string[]): Promise<{ path: string; binary: Buffer }> {
  for (const path of paths) {
    const binary = await readFile(path).catch(() => undefined);
    if (!binary) continue;
    if (needsLoader(binary)) {
      throw new BerthError('RUNTIME', `${path} is dynamically linked and cannot run in an image of its own; install a static catatonit (Debian's package is) or start the agent with --infra-image`);
    }
    return { path, binary };
  }
  throw new BerthError(
    'RUNTIME',
    `this node has no catatonit to build its infra image from (looked in ${paths.join(', ')}): install it (apt-get install catatonit) or start Berth with --infra-image <image>`,
  );
}

/** Builds the node's infra image when a launch needs it and the node lacks it; concurrent launches share one build. */
export class LocalInfraImage {
  private source: Promise<{ path: string; binary: Buffer; tag: string }> | undefined;
  private building: Promise<void> | undefined;

  constructor(
    private readonly runtime: Runtime,
    private readonly logger: Logger,
    /** Where to look for catatonit: one path the operator gave, or the usual places. */
    private readonly paths: readonly string[] = CATATONIT_PATHS,
  ) {}

  /** The image's tag, built now if the node does not have it (also when it was removed since). */
  async ensure(): Promise<string> {
    // A missing catatonit is looked for again at the next launch: it may have been installed since.
    this.source ??= readCatatonit(this.paths).then(
      (found) => ({ ...found, tag: infraImageTag(found.binary) }),
      (err: unknown) => {
        this.source = undefined;
        throw err;
      },
    );
    const { path, binary, tag } = await this.source;
    if (await this.runtime.imageExists(tag)) return tag;
    this.building ??= (async () => {
      this.logger.info({ image: tag, from: path }, 'building the infra image for multi-container pods');
      await this.runtime.buildImage(tag, [
        { name: 'Dockerfile', content: Buffer.from(DOCKERFILE) },
        { name: 'catatonit', content: binary, mode: 0o755 },
      ]);
    })().finally(() => {
      this.building = undefined;
    });
    await this.building;
    return tag;
  }
}
