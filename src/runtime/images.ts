/**
 * Images a node makes or fetches for itself: a small image built from files on the node (the infra
 * image), and what a failed pull means in words a user can act on.
 */
import { PassThrough, type Readable } from 'node:stream';
import { registryOf } from '../model/image-ref.js';

/** One file of a build context. */
export interface ContextFile {
  name: string;
  content: Buffer;
  /** @default 0o644 */
  mode?: number;
}

/** A ustar archive of a few small files held in memory: a build context for Docker's `/build`. */
export function contextTar(files: readonly ContextFile[]): Readable {
  const blocks: Buffer[] = [];
  for (const f of files) {
    if (Buffer.byteLength(f.name) > 100) throw new Error(`context file name too long: ${f.name}`);
    const h = Buffer.alloc(512);
    h.write(f.name, 0, 'utf8');
    h.write(octal(f.mode ?? 0o644, 8), 100, 'ascii');
    h.write(octal(0, 8), 108, 'ascii');
    h.write(octal(0, 8), 116, 'ascii');
    h.write(octal(f.content.length, 12), 124, 'ascii');
    h.write(octal(0, 12), 136, 'ascii');
    h.write('        ', 148, 'ascii');
    h.write('0', 156, 'ascii');
    h.write('ustar\0', 257, 'ascii');
    h.write('00', 263, 'ascii');
    let sum = 0;
    for (const b of h) sum += b;
    h.write(octal(sum, 7) + ' ', 148, 'ascii');
    blocks.push(h, f.content, Buffer.alloc((512 - (f.content.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  const out = new PassThrough();
  out.end(Buffer.concat(blocks));
  return out;
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/**
 * True when the ELF binary names a dynamic loader (PT_INTERP), which an image `FROM scratch` lacks;
 * false for a static binary and for anything that is not a 64-bit little-endian ELF.
 */
export function needsLoader(elf: Buffer): boolean {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) return false;
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 4 > elf.length) return false;
    if (elf.readUInt32LE(at) === 3) return true;
  }
  return false;
}

const UNREACHABLE = /connection refused|no such host|i\/o timeout|network is unreachable|no route to host|TLS handshake timeout|dial tcp|server misbehaving|context deadline exceeded|connection reset/i;
const MISSING = /manifest unknown|not found|repository does not exist|pull access denied|unauthorized|denied/i;

/**
 * A pull failure in words that say what is wrong: the image is not on the node (else nothing would
 * have been pulled), and either its registry cannot be reached or it has no such image for us.
 */
export function pullFailureMessage(ref: string, daemon: string): string {
  const registry = registryOf(ref);
  if (UNREACHABLE.test(daemon)) {
    return `image ${ref} is not on this node and its registry ${registry} cannot be reached (${daemon}); load it with \`docker load\` or use a registry this node can reach`;
  }
  if (MISSING.test(daemon)) {
    return `image ${ref} is not on this node and registry ${registry} does not give it (${daemon}); check the name and tag, or the pod's registry login`;
  }
  return `pull of ${ref} failed: ${daemon}`;
}
