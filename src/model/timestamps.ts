/**
 * Times in Docker's `seconds.nanoseconds` form, which its logs API takes for `since` and log
 * cursors carry: nanosecond order is kept where an ISO time with milliseconds would lose it.
 */

/** The end of year 9999 in Unix seconds. */
const MAX_UNIX_SECONDS = 253_402_300_799;

/**
 * Docker's `since`/`until` take Unix seconds with an optional fraction (`1714557600.123456789`);
 * accept that or an ISO time.
 */
export function toDockerTimestamp(value: string): string | null {
  // Docker parses the seconds as an int64 and answers a 500 for one it cannot hold: up to year 9999 only.
  if (/^\d+(\.\d+)?$/.test(value)) return /^\d{1,12}(\.\d{1,9})?$/.test(value) && Number(value.split('.')[0]) <= MAX_UNIX_SECONDS ? value : null;
  const m = /^(.*?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(value);
  if (!m) return null;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) return null;
  const seconds = Math.floor(ms / 1000);
  if (seconds < 0 || seconds > MAX_UNIX_SECONDS) return null;
  const fraction = (m[2] ?? '').padEnd(9, '0').slice(0, 9);
  return `${seconds}.${fraction}`;
}

/** `timeNano` (as Docker sends it) → Docker's `seconds.nanoseconds` form. */
export function nanosToDockerTimestamp(timeNano: bigint): string {
  const seconds = timeNano / 1_000_000_000n;
  const nanos = timeNano % 1_000_000_000n;
  return `${seconds}.${nanos.toString().padStart(9, '0')}`;
}
