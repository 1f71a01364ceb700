/** `berth pod logs` and `berth pod exec`: a pod's output, and commands run inside it. */
import { UserError } from '../output.js';
import { defineCommand } from './define.js';
import { sinceValue } from './input.js';

interface LogLine {
  stream: 'stdout' | 'stderr';
  time: string;
  text: string;
}

const parse = <T>(data: string): T => {
  try {
    return JSON.parse(data) as T;
  } catch {
    throw new UserError(`the server sent an event that is not JSON: ${data.slice(0, 200)}`);
  }
};

export const podLogs = defineCommand({
  name: 'logs',
  description: "Print a pod's logs: the container's stdout to stdout, its stderr to stderr",
  args: [{ name: 'id', description: 'pod id', required: true }],
  options: {
    follow: { kind: 'boolean', flags: '-f, --follow', description: 'keep printing new lines until the container stops (Ctrl-C to leave)' },
    tail: { kind: 'number', integer: true, flags: '--tail <n>', description: 'the last N lines (server default: 100)' },
    since: { kind: 'string', flags: '--since <time>', description: 'lines since: Unix seconds, an RFC 3339 time, or a duration like 10m' },
    container: { kind: 'string', flags: '--container <name>', description: 'which container of a multi-container pod' },
    instance: { kind: 'number', integer: true, flags: '--instance <n>', description: 'which instance (default 0)' },
    timestamps: { kind: 'boolean', flags: '-t, --timestamps', description: 'prefix each line with its time' },
  },
  examples: ['berth pod logs 2s56cp0pof1rmt --tail 20', 'berth pod logs 2s56cp0pof1rmt -f --since 10m'],
  async handler({ args, opts, ctx }) {
    const client = await ctx.client();
    const events = await client.stream(`/pods/${encodeURIComponent(args.id)}/logs`, {
      tail: opts.tail,
      since: opts.since !== undefined ? sinceValue(opts.since) : undefined,
      follow: opts.follow || undefined,
      container: opts.container,
      instance: opts.instance,
    });
    const { stdout, stderr } = ctx.out.streams;
    for await (const e of events) {
      if (e.event === 'log') {
        const line = parse<LogLine>(e.data);
        if (ctx.out.json) stdout.write(`${JSON.stringify(line)}\n`);
        else (line.stream === 'stderr' ? stderr : stdout).write(`${opts.timestamps ? `${line.time} ` : ''}${line.text}\n`);
      } else if (e.event === 'error') {
        throw new UserError(`the log stream failed: ${parse<{ message?: string }>(e.data).message ?? e.data}`);
      } else if (e.event === 'end') {
        break;
      }
    }
  },
});

export const podExec = defineCommand({
  name: 'exec',
  description: "Run a command in a running pod (no shell unless you run one); exits with the command's exit code",
  args: [
    { name: 'id', description: 'pod id', required: true },
    { name: 'command', description: 'the command and its arguments, after --', required: true, variadic: true },
  ],
  options: {
    container: { kind: 'string', flags: '--container <name>', description: 'which container of a multi-container pod' },
    instance: { kind: 'number', integer: true, flags: '--instance <n>', description: 'which instance (default 0)' },
    timeout: { kind: 'number', flags: '--timeout <seconds>', description: 'give up after this long (server default: 60, at most 3600)' },
  },
  examples: ['berth pod exec 2s56cp0pof1rmt -- nvidia-smi', "berth pod exec 2s56cp0pof1rmt -- sh -c 'df -h /workspace'"],
  async handler({ args, opts, ctx }) {
    const client = await ctx.client();
    const res = await client.post<{ exitCode: number; stdout: string; stderr: string }>(`/pods/${encodeURIComponent(args.id)}/exec`, {
      command: args.command,
      ...(opts.container !== undefined ? { container: opts.container } : {}),
      ...(opts.instance !== undefined ? { instance: opts.instance } : {}),
      ...(opts.timeout !== undefined ? { timeoutSeconds: opts.timeout } : {}),
    });
    if (ctx.out.json) ctx.out.result(res, () => '');
    else {
      ctx.out.streams.stdout.write(res.stdout);
      ctx.out.streams.stderr.write(res.stderr);
    }
    return res.exitCode >= 0 && res.exitCode <= 255 ? res.exitCode : 1;
  },
});
