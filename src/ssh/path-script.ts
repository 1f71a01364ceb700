/**
 * What the SFTP session runs in the container and how it reads the answers: the stat format both
 * GNU and busybox `stat` print, the script that answers a path's looks and streams an upload into
 * place, and the parsers of their output.
 */
import type { Attributes } from 'ssh2';

/** `%f` raw mode in hex, size, uid, gid, atime, mtime, then the name: GNU and busybox stat both read this. */
export const STAT_FORMAT = '%f %s %u %g %X %Y %n';

/**
 * One command in the container from the client's first look at a path to its CLOSE: each `docker
 * exec` costs 50-250 ms on the benchmark machine. OpenSSH's scp looks at a file with LSTAT and
 * STAT before it downloads it, and with STAT before it uploads over it. Arguments: `$1` the temp
 * file, `$2` the path, `$3` a random token. It prints the path's lstat line, then its stat line
 * (each, or `- ` and stat's complaint), which answer the looks, and waits for a line `go`: without
 * it (no upload came; stdin closed) it ends having touched nothing. Then it copies stdin into the
 * temp file. The gateway ends stdin with a trailer of TRAILER bytes, only when the client
 * closed the file: the token, the bytes written before it, where and how many of the old file's
 * bytes to keep past them, the size to set, the mode (`-` for none). Without the token (the
 * connection broke) the temp file goes and the old file stays whole; with it, the file is completed
 * and renamed into place. Values travel as arguments and in the trailer, never in the script.
 *
 * The old file is renamed aside (to `$1.old`) rather than renamed over: ext4 takes a rename over an
 * existing file for a replace and writes the new file's pages out within the rename (auto_da_alloc),
 * 0.1 s for 200 MB. The cost is an instant between the two renames in which the target is missing.
 * The script says `done <token>` once the file is in place, and the gateway answers the client then:
 * freeing the old file's blocks (50 ms for 200 MB) and Docker noticing the exec's end come after.
 */
export const PATH_SCRIPT = [
  'set -f',
  't=$1 p=$2 token=$3',
  'fail() { rm -f -- "$t"; echo "$p: $1" >&2; exit 1; }',
  `look() { if s=$(stat "$@" -c '${STAT_FORMAT}' -- "$p" 2>&1); then echo "$s"; else echo "- $s"; fi; }`,
  'look; look -L',
  'IFS= read -r go && [ "$go" = go ] || exit 0',
  'cat > "$t" || fail "writing the upload failed"',
  'set -- $(tail -c 128 -- "$t")',
  '[ "$1" = "$token" ] || fail "the upload was not finished"',
  '[ "$(stat -c %s -- "$t")" = "$(($2 + 128))" ] || fail "bytes were lost on the way into the pod"',
  'dd if=/dev/null of="$t" bs=1 seek="$2" count=0 2>/dev/null || fail "cannot cut the trailer off the upload"',
  'if [ "$4" -gt 0 ]; then tail -c +"$3" -- "$p" | head -c "$4" >> "$t" || fail "cannot keep the old bytes past the upload"; fi',
  // dd truncates (or extends) its output at the seek offset: POSIX, in busybox and coreutils alike.
  'if [ "$5" != - ]; then dd if=/dev/null of="$t" bs=1 seek="$5" count=0 2>/dev/null; [ "$(stat -c %s -- "$t")" = "$5" ] || fail "cannot set the size to $5"; fi',
  'if [ "$6" != - ]; then chmod "$6" -- "$t" || fail "cannot set the mode"; fi',
  'if [ -e "$p" ] || [ -L "$p" ]; then mv -f -- "$p" "$t.old" || fail "cannot move the old file aside"; fi',
  'mv -f -- "$t" "$p" || { mv -f -- "$t.old" "$p"; fail "cannot rename the upload into place"; }',
  'echo "done $token"',
  'exec rm -f -- "$t.old"',
].join('\n');
/** The trailer's length, as the script reads it. */
export const TRAILER = 128;

export function parseStatLine(line: string): { name: string; attrs: Attributes } | undefined {
  const m = /^([0-9a-f]+) (\d+) (\d+) (\d+) (\d+) (\d+) (.*)$/.exec(line);
  if (!m) return undefined;
  const name = m[7]!.replace(/^\.\//, '');
  return { name, attrs: { mode: parseInt(m[1]!, 16), size: Number(m[2]), uid: Number(m[3]), gid: Number(m[4]), atime: Number(m[5]), mtime: Number(m[6]) } };
}

/** `ls -l`-style line, which sftp's `ls -l` shows as it is. */
export function longname(name: string, a: Attributes): string {
  const type = { 0o040000: 'd', 0o120000: 'l', 0o020000: 'c', 0o060000: 'b', 0o010000: 'p', 0o140000: 's' }[a.mode & 0o170000] ?? '-';
  const rwx = (bits: number): string => `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${bits & 1 ? 'x' : '-'}`;
  const perms = type + rwx((a.mode >> 6) & 7) + rwx((a.mode >> 3) & 7) + rwx(a.mode & 7);
  const date = new Date(a.mtime * 1000).toISOString().slice(0, 16).replace('T', ' ');
  return `${perms}    1 ${String(a.uid).padEnd(8)} ${String(a.gid).padEnd(8)} ${String(a.size).padStart(10)} ${date} ${name}`;
}

/** The next `n` lines a stream gives (without their newlines; fewer if it ends first); the stream is left paused. */
export function readLines(stream: NodeJS.ReadableStream, n: number): Promise<string[]> {
  return new Promise((resolve) => {
    const lines: string[] = [];
    let text = '';
    const settle = (): void => {
      stream.off('data', onData);
      stream.off('end', settle);
      stream.pause();
      resolve(lines);
    };
    const onData = (d: Buffer): void => {
      text += d.toString();
      for (let nl = text.indexOf('\n'); nl >= 0 && lines.length < n; nl = text.indexOf('\n')) {
        lines.push(text.slice(0, nl));
        text = text.slice(nl + 1);
      }
      if (lines.length === n) settle();
    };
    stream.on('data', onData);
    stream.on('end', settle);
  });
}

/** Resolves once `stream` has given `text` (the stream is read on to its end). */
export function saysDone(stream: NodeJS.ReadableStream, text: string): Promise<void> {
  return new Promise((resolve) => {
    let seen = '';
    stream.on('data', (d: Buffer) => {
      seen = (seen + d.toString()).slice(-2 * text.length);
      if (seen.includes(text)) resolve();
    });
    stream.resume();
  });
}
