/** `berth cluster`: the servers on this database and which one leads (docs/ha.md). */
import { table } from '../output.js';
import { defineCommand } from './define.js';

interface ServerView {
  id: string;
  url: string;
  startedAt: string | null;
  ageMs: number;
  leader: boolean;
}

export const cluster = defineCommand({
  name: 'cluster',
  description: 'Show the servers on this database and which one leads (admin key)',
  examples: ['berth cluster', 'berth cluster --json'],
  async handler({ ctx }) {
    const client = await ctx.client();
    const res = await client.get<{ self: { id: string }; leader: { id: string; url: string; epoch: number } | null; servers: ServerView[] }>('/cluster');
    ctx.out.result(res, () =>
      table(res.servers, [
        { header: 'SERVER', value: (s) => s.id + (s.id === res.self.id ? ' (answered)' : '') },
        { header: 'URL', value: (s) => s.url },
        { header: 'ROLE', value: (s) => (s.leader ? `leader (epoch ${res.leader?.epoch ?? 0})` : 'follower') },
        { header: 'SEEN', value: (s) => `${(s.ageMs / 1000).toFixed(1)}s ago` },
      ]) + (res.leader ? '' : 'no server leads at the moment (a failover takes a few seconds)\n'),
    );
  },
});
