/** `berth token ...`: join tokens, which machines join the server with (`berth agent --token`). The token is shown once. */
import { age, table, UserError } from '../output.js';
import { defineCommand, defineGroup } from './define.js';
import { keyValues } from './input.js';
import { parseDuration } from './lifetime-flags.js';

interface TokenView {
  id: string;
  description: string;
  labels: Record<string, string>;
  maxUses: number | null;
  uses: number;
  status: string;
  expiresAt: string | null;
  createdAt: string;
  lastUsedAt: string | null;
}

/** The request body `berth token create`'s flags make; checked here, before the server sees them. */
export function tokenInput(flags: { ttl?: string | undefined; uses?: number | undefined; label: readonly string[]; description?: string | undefined }): Record<string, unknown> {
  const ttl = flags.ttl === undefined ? undefined : parseDuration('--ttl', flags.ttl);
  if (flags.uses !== undefined && !(Number.isInteger(flags.uses) && flags.uses >= 1)) throw new UserError('--uses is how many machines may join with the token: a whole number, 1 or more');
  return {
    ...(ttl !== undefined ? { ttlSeconds: ttl === null ? 0 : Math.round(ttl) } : {}),
    ...(flags.uses !== undefined ? { maxUses: flags.uses } : {}),
    ...(flags.label.length ? { labels: keyValues('--label', flags.label) } : {}),
    ...(flags.description !== undefined ? { description: flags.description } : {}),
  };
}

const create = defineCommand({
  name: 'create',
  description: 'Make a join token for machines to join with (admin key); prints the token, which is never shown again',
  options: {
    ttl: { kind: 'string', flags: '--ttl <duration>', description: 'how long it can be used: 30m, 24h, 7d; 0: never expires (default 24h)' },
    uses: { kind: 'number', flags: '--uses <n>', integer: true, description: 'how many machines may join with it (default: any number until it expires)' },
    label: { kind: 'list', flags: '--label <KEY=VALUE>', description: 'a label for every node that joins with it, e.g. berth.io/datacenter=eu-1 (repeatable)' },
    description: { kind: 'string', flags: '--description <text>', description: 'what the token is for' },
  },
  examples: ['berth token create', 'berth token create --ttl 1h --uses 1 --label berth.io/datacenter=eu-1 --description "gpu box 7"'],
  async handler({ opts, ctx }) {
    const body = tokenInput(opts);
    const client = await ctx.client();
    const t = await client.post<TokenView & { token: string }>('/tokens', body);
    if (!ctx.out.json) {
      ctx.out.note(`join token ${t.id}: ${t.maxUses === null ? 'any number of joins' : `${t.maxUses} join${t.maxUses === 1 ? '' : 's'}`}, ${t.expiresAt ? `until ${t.expiresAt}` : 'never expires'}. Shown only now; on the machine to join:`);
      ctx.out.note(`  BERTH_TOKEN=<token> berth agent --server ${client.url}`);
    }
    ctx.out.result(t, () => `${t.token}\n`);
  },
});

const list = defineCommand({
  name: 'list',
  aliases: ['ls'],
  description: 'List join tokens: uses, expiry, status (the tokens themselves are not kept)',
  examples: ['berth token ls'],
  async handler({ ctx }) {
    const client = await ctx.client();
    const res = await client.get<{ tokens: TokenView[] }>('/tokens');
    const now = Date.now();
    ctx.out.result(res, () =>
      table(res.tokens, [
        { header: 'ID', value: (t) => t.id },
        { header: 'DESCRIPTION', value: (t) => t.description || '-' },
        { header: 'LABELS', value: (t) => Object.entries(t.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-' },
        { header: 'USES', value: (t) => `${t.uses}/${t.maxUses ?? '∞'}` },
        { header: 'STATUS', value: (t) => t.status },
        { header: 'EXPIRES', value: (t) => (t.expiresAt ? (Date.parse(t.expiresAt) > now ? `in ${age(new Date(now - (Date.parse(t.expiresAt) - now)).toISOString(), now)}` : `${age(t.expiresAt, now)} ago`) : 'never') },
        { header: 'CREATED', value: (t) => `${age(t.createdAt, now)} ago` },
        { header: 'LAST USED', value: (t) => (t.lastUsedAt ? `${age(t.lastUsedAt, now)} ago` : 'never') },
      ]),
    );
  },
});

const rm = defineCommand({
  name: 'rm',
  aliases: ['delete', 'revoke'],
  description: 'Revoke a join token; nodes that joined with it stay (remove them with berth node rm)',
  args: [{ name: 'id', description: 'token id', required: true }],
  examples: ['berth token rm k3f9a2'],
  async handler({ args, ctx }) {
    const client = await ctx.client();
    await client.delete(`/tokens/${encodeURIComponent(args.id)}`);
    ctx.out.result({ id: args.id, revoked: true }, () => `join token ${args.id} revoked\n`);
  },
});

export const tokenCommands = defineGroup({
  name: 'token',
  aliases: ['tokens'],
  description: 'Join tokens: what machines join the server with',
  commands: [create, list, rm],
});
