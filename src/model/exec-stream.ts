/**
 * A process started in a container with its stdin attached: a shell with a PTY, a command, an SFTP
 * helper. One type from the runtime that starts it, through the node access that carries it, to
 * the SSH gateway and the web terminal.
 */
export interface ExecStream {
  /** The process's stdin; `end()` closes it (EOF) while output keeps coming. */
  stdin: NodeJS.WritableStream;
  /** With a PTY, stdout and stderr together. */
  stdout: NodeJS.ReadableStream;
  /** Empty with a PTY. */
  stderr: NodeJS.ReadableStream;
  resize(cols: number, rows: number): Promise<void>;
  /** The exit code once the process has ended (-1 when the runtime could not tell). */
  exitCode: Promise<number>;
  /** Stops listening; the process may linger, as Docker cannot kill an exec. */
  close(): void;
}
