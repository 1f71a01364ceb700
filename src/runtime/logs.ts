/** A container's log lines over Docker's logs stream, with Docker's timestamps. */

import type { IncomingMessage } from 'node:http';
import { BerthError } from '../model/errors.js';
import { dialStream, fail, isAbort, type Daemon } from './daemon.js';
import { FrameDemuxer, LogLineSplitter, toDockerTimestamp } from './streams.js';
import type { LogLine, LogOptions } from './types.js';

export async function* readLogs(daemon: Daemon, id: string, opts: LogOptions, signal?: AbortSignal): AsyncGenerator<LogLine> {
  const query: Record<string, unknown> = { stdout: true, stderr: true, timestamps: true, follow: opts.follow === true };
  if (opts.tail !== undefined) query.tail = String(Math.max(0, Math.floor(opts.tail)));
  if (opts.since !== undefined) {
    const since = toDockerTimestamp(opts.since);
    if (since === null) throw new BerthError('VALIDATION', `since: expected Unix seconds or an ISO time, got ${opts.since}`, { problems: [{ path: '/since', message: 'expected Unix seconds or an ISO time' }] });
    query.since = since;
  }
  if (signal?.aborted) return;
  let tty: boolean;
  try {
    tty = (await daemon.docker.getContainer(id).inspect()).Config.Tty === true;
  } catch (err) {
    throw fail(daemon, err, `logs of container ${id}`, 'container', id);
  }
  let res: IncomingMessage;
  try {
    res = await dialStream(daemon, `/containers/${encodeURIComponent(id)}/logs?`, query, signal);
  } catch (err) {
    if (signal?.aborted) return;
    throw fail(daemon, err, `logs of container ${id}`, 'container', id);
  }
  const demux = new FrameDemuxer();
  const splitter = new LogLineSplitter();
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      if (tty) {
        yield* splitter.pushRaw(chunk);
      } else {
        for (const frame of demux.push(chunk)) yield* splitter.pushFrame(frame);
      }
    }
    yield* splitter.end();
  } catch (err) {
    if (signal?.aborted || isAbort(err)) return;
    throw fail(daemon, err, `logs of container ${id}`);
  } finally {
    res.destroy();
  }
}
