/**
 * OpenSSH's SFTP extensions and channel manners that ssh2 has no call for: limits@openssh.com
 * (how much a client may read per request) and the exit-status a client waits for when the
 * subsystem ends. Both reach into ssh2's channel; each says which of its internals it uses.
 */
import type { SFTPWrapper } from 'ssh2';
import ssh2 from 'ssh2';

const { STATUS_CODE } = ssh2.utils.sftp;

/**
 * What the gateway tells OpenSSH's clients in answer to limits@openssh.com, as OpenSSH's own
 * sftp-server does: reads of up to 255 KiB. Without the extension the client reads 32 KiB per
 * request, and each answer of 32 KiB and 13 bytes of header left ssh2 as two SSH packets (the
 * client's packet size is 32 KiB), each encrypted, padded with fresh random bytes and written on
 * its own: twice the packets and eight times the requests of a download from sshd. Writes stay at
 * 32 KiB, the size uploads were tuned with (STREAM_HIGH, the ordered acknowledgements).
 */
const LIMITS = {
  /** ssh2 refuses SFTP packets longer than this from the client. */
  packetLength: 256 * 1024,
  readLength: 256 * 1024 - 1024,
  writeLength: 32 * 1024,
  /** No limit of its own (the spec's 0). */
  openHandles: 0,
};

/** The parts of ssh2's SFTP stream (server side) that offerLimits reaches into; ssh2 has no call for either. */
interface SftpInternals {
  outgoing: { id: number; window: number; state: string };
  _buffer: unknown[];
  _protocol: { channelData(id: number, data: Buffer): void };
}

/** SSH_FXP_VERSION 3 with no extensions, as ssh2 answers every INIT. */
const PLAIN_VERSION = Buffer.from([0, 0, 0, 5, 2, 0, 0, 0, 3]);

/**
 * Offers limits@openssh.com on an SFTP channel just accepted, before the client's INIT is read:
 * ssh2's VERSION answer gains the extension, and the client's request for the limits is answered.
 * ssh2 sends a fixed VERSION and has no call for an EXTENDED_REPLY, so both go to its protocol
 * layer directly, counted against the channel's window as ssh2 counts its own packets. Both happen
 * before any transfer (OpenSSH's client waits for each answer), so nothing of ssh2's is queued in
 * front of them; if something were, or the window were short, the channel is left as ssh2 made it.
 * Other extended requests are refused as ssh2 refuses them.
 */
export function offerLimits(sftp: SFTPWrapper): void {
  const s = sftp as unknown as Partial<SftpInternals>;
  const protocol = s._protocol;
  if (!protocol || !s.outgoing || !Array.isArray(s._buffer) || typeof protocol.channelData !== 'function') return;
  const internals = s as SftpInternals;
  const sendNow = (data: Buffer, counted: number): boolean => {
    const out = internals.outgoing;
    if (out.state !== 'open' || internals._buffer.length > 0 || out.window < data.length - counted) return false;
    out.window -= data.length - counted;
    protocol.channelData(out.id, data);
    return true;
  };
  let offered = false;
  const channelData = (id: number, data: Buffer): void => {
    internals._protocol = protocol;
    if (id === internals.outgoing.id && data.equals(PLAIN_VERSION)) {
      const name = Buffer.from('limits@openssh.com');
      const version = Buffer.alloc(9 + 4 + name.length + 4 + 1);
      version.writeUInt32BE(version.length - 4, 0);
      version[4] = 2; // SSH_FXP_VERSION
      version.writeUInt32BE(3, 5);
      version.writeUInt32BE(name.length, 9);
      name.copy(version, 13);
      version.writeUInt32BE(1, 13 + name.length);
      version[17 + name.length] = 0x31; // "1"
      // ssh2 has counted PLAIN_VERSION's bytes against the window already.
      if (sendNow(version, data.length)) return void (offered = true);
    }
    protocol.channelData(id, data);
  };
  // The first data ssh2 sends on this channel is its VERSION; once it has passed, the protocol is
  // this channel's again. Everything else reaches the protocol itself, reads and writes alike.
  internals._protocol = new Proxy(protocol, { get: (target, prop, receiver) => (prop === 'channelData' ? channelData : Reflect.get(target, prop, receiver)) });
  sftp.on('EXTENDED', (reqId: number, name: string) => {
    if (name === 'limits@openssh.com' && offered) {
      const reply = Buffer.alloc(4 + 1 + 4 + 4 * 8);
      reply.writeUInt32BE(reply.length - 4, 0);
      reply[4] = 201; // SSH_FXP_EXTENDED_REPLY
      reply.writeUInt32BE(reqId, 5);
      [LIMITS.packetLength, LIMITS.readLength, LIMITS.writeLength, LIMITS.openHandles].forEach((v, i) => reply.writeBigUInt64BE(BigInt(v), 9 + 8 * i));
      if (sendNow(reply, 0)) return;
    }
    sftp.status(reqId, STATUS_CODE.OP_UNSUPPORTED);
  });
}

/**
 * Sends exit-status on the SFTP channel before it closes, as sshd does when sftp-server exits: scp
 * exits 1 without one. ssh2 offers no call for it on an SFTP stream, so this reaches its channel.
 */
export function exitStatus(sftp: SFTPWrapper, code: number): void {
  const s = sftp as unknown as { _protocol?: { exitStatus?(id: number, code: number): void }; outgoing?: { id: number; state: string } };
  if (s.outgoing?.state === 'open' && typeof s._protocol?.exitStatus === 'function') s._protocol.exitStatus(s.outgoing.id, code);
}
