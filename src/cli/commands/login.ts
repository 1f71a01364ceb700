/** `berth login`, `berth logout`, `berth whoami`: which server the CLI talks to, and as whom. */
import { rm } from 'node:fs/promises';
import { BerthClient, normalizeUrl } from '../client.js';
import { DEFAULT_URL, readConfig, writeConfig } from '../config.js';
import { UserError } from '../output.js';
import { defineCommand } from './define.js';
import { readSecret } from './input.js';

interface Caller {
  owner: string;
  admin: boolean;
}

export const login = defineCommand({
  name: 'login',
  description: 'Check a server URL and API key and save them in the config file (the key is read from stdin or a prompt when --api-key is not given)',
  examples: ['berth login --url http://gpu-box:7700 --api-key "$(cat admin.key)"', 'berth login --url http://gpu-box:7700 < key.txt'],
  async handler({ ctx }) {
    const file = await readConfig(ctx.configPath).catch(() => undefined);
    const url = normalizeUrl(ctx.globals.url ?? (process.env.BERTH_URL || undefined) ?? file?.url ?? DEFAULT_URL);
    const apiKey = ctx.globals.apiKey ?? (process.env.BERTH_API_KEY || undefined) ?? (await readSecret(`API key for ${url}: `)).trim();
    if (!apiKey) throw new UserError('no API key given');
    const me = await new BerthClient({ url, apiKey, keySource: ctx.globals.apiKey !== undefined ? '--api-key' : 'the key given' }).get<Caller>('/whoami');
    await writeConfig(ctx.configPath, { url, apiKey });
    ctx.out.result({ url, ...me, configPath: ctx.configPath }, () => `Logged in to ${url} as ${me.owner}${me.admin ? ' (admin)' : ''}; saved in ${ctx.configPath}\n`);
  },
});

export const logout = defineCommand({
  name: 'logout',
  description: 'Forget the saved server and key (the key itself stays valid; revoke it with `berth key rm`)',
  examples: ['berth logout'],
  async handler({ ctx }) {
    const file = await readConfig(ctx.configPath).catch(() => undefined);
    await rm(ctx.configPath, { force: true });
    ctx.out.result({ configPath: ctx.configPath, removed: file !== undefined }, () => (file ? `removed ${ctx.configPath}\n` : `nothing saved in ${ctx.configPath}\n`));
  },
});

export const whoami = defineCommand({
  name: 'whoami',
  description: 'Show the server, the account the API key acts for, and where the key came from',
  examples: ['berth whoami'],
  async handler({ ctx }) {
    const connection = await ctx.connection();
    const me = await (await ctx.client()).get<Caller>('/whoami');
    ctx.out.result(me, () => `${me.owner}${me.admin ? ' (admin)' : ''} at ${normalizeUrl(connection.url)} (key from ${connection.keySource})\n`);
  },
});
