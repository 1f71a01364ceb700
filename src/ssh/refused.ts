import type { ServerChannel, Session } from 'ssh2';

/** Says why on stderr and ends the channel with status 1: a clear message, not a dropped connection. */
export function refuse(channel: ServerChannel, err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  if (channel.closed) return;
  channel.stderr.write(`berth: ${message}\r\n`);
  channel.exit(1);
  channel.end();
}

/**
 * A session of a key that may not use the pod: whatever it asks to run (a shell, a command, SFTP
 * or any other subsystem) is answered with the reason on stderr and status 1. With no 'sftp'
 * listener, ssh2 hands SFTP to 'subsystem' as a plain channel, which can carry the message.
 */
export function refusedSession(session: Session, reason: string): void {
  const err = new Error(reason);
  session.on('pty', (accept) => accept?.());
  session.on('env', (accept) => accept?.());
  session.on('window-change', (accept) => accept?.());
  session.on('shell', (accept) => refuse(accept(), err));
  session.on('exec', (accept) => refuse(accept(), err));
  session.on('subsystem', (accept) => refuse(accept(), err));
}
