import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { OwnerId } from '../model/index.js';
import { openStore } from '../store/index.js';
import type { Store } from '../store/types.js';
import { AuditLog } from './audit.js';
import type { Caller } from './caller.js';

const DAY = 86_400_000;

describe('the audit log\'s retention', () => {
  let store: Store;
  before(async () => {
    store = await openStore();
  });
  after(async () => {
    await store.close();
  });

  const caller: Caller = { owner: 'red' as OwnerId, admin: false, user: 'ann', role: 'owner', keyId: 'k1' };
  const at = (daysAgo: number, now: number): string => new Date(now - daysAgo * DAY).toISOString();

  it('deletes only what is older than the retention, and keeps everything with 0', async () => {
    const now = Date.parse('2026-12-05T12:00:00.000Z');
    for (const [i, days] of [10, 29, 31, 400].entries()) {
      await store.appendAudit({ id: `e${i}`, at: at(days, now), team: 'red', user: 'ann', keyId: null, action: `a${days}`, objectType: 'pods', objectId: 'p', detail: {} });
    }
    const forever = new AuditLog(store, { retentionDays: 0 });
    assert.equal(await forever.prune(now), 0);
    forever.close();

    const month = new AuditLog(store, { retentionDays: 30 });
    assert.equal(await month.prune(now), 2);
    month.close();
    const reader = new AuditLog(store);
    const left = await reader.list(caller, {});
    reader.close();
    assert.deepEqual(left.map((e) => e.action), ['a10', 'a29']);
  });
});
