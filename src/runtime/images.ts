/**
 * Images a node makes or fetches for itself: whether a binary can run in an image of its own (the
 * infra image), and what a failed pull means in words a user can act on.
 */
import { registryOf } from '../model/image-ref.js';

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
