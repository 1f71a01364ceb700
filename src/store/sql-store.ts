import type { Kysely } from 'kysely';
import { changeFeed, ChangeListeners, type StoreLogger } from './changes.js';
import { SqlContext } from './context.js';
import { deploymentStore } from './deployments.js';
import type { SqlDialect } from './dialect.js';
import { instanceStore } from './instances.js';
import { joinTokenStore, nodeCredentialStore } from './join-tokens.js';
import { leaseStore } from './leases.js';
import { apiKeyStore, sshKeyStore } from './keys.js';
import { nodeStore } from './nodes.js';
import { PodDetailCache } from './pod-cache.js';
import { podStore } from './pods.js';
import { networkVolumeStore, registryAuthStore, secretStore, templateStore } from './resources.js';
import type { Database } from './schema.js';
import type { Store } from './types.js';
import { auditStore, teamStore } from './teams.js';
import { usageStore } from './usage.js';

/*
 * The Store over Kysely, for SQLite and PostgreSQL alike, put together from one module per entity.
 *
 * How it composes: each entity module (pods.ts, instances.ts, nodes.ts, resources.ts, keys.ts,
 * deployments.ts) declares its slice of the Store (PodStore, InstanceStore, ...) and a function that
 * implements that slice over a StoreContext (context.ts): the database or the open transaction, the
 * dialect, the pod cache, and `write`, which runs a write in a transaction and records its changes in
 * the feed (changes.ts). `storeOn` below spreads the slices over one context into one object, so a
 * Store outside a transaction and the Store a transaction hands to its callback are built the same
 * way and differ only in their context. The modules share nothing else: no base class, no `this`, and
 * cross-entity rules are plain functions (instances.ts calls pods.ts's `requirePod` and `bumpPod`).
 *
 * Transactions: `transaction(fn)` opens one database transaction that first takes the writer lock
 * (SqlDialect.lockWriters: on PostgreSQL an advisory lock, so revisions commit in the order they
 * were handed out), hands `fn` a Store on a context bound to it — every call inside runs on that
 * transaction, and a nested `transaction` joins it — and announces the changes recorded in it to the
 * listeners only after it commits. A write outside a transaction does the same on its own.
 *
 * Invariant, which PodDetailCache relies on: every write to a pod row, its current version or its
 * instances records a change and sets pods.revision to the newest revision that write recorded.
 */

/**
 * A store over a migrated database; it owns `db` and destroys it on close. `podCacheSize` pod
 * details are kept for listPods (0: none).
 */
export function sqlStore(db: Kysely<Database>, dialect: SqlDialect, opts: { logger?: StoreLogger; podCacheSize: number }): Store {
  const cache = opts.podCacheSize > 0 ? new PodDetailCache(opts.podCacheSize) : null;
  return storeOn(SqlContext.root(db, dialect, new ChangeListeners(opts.logger), cache));
}

function storeOn(ctx: SqlContext): Store {
  const store: Store = {
    dialect: ctx.dialect.name,

    async close() {
      if (ctx.inTransaction) throw new Error('close the store, not one of its transactions');
      await ctx.db.destroy();
    },

    transaction: (fn) => (ctx.inTransaction ? fn(store) : ctx.transaction((tx) => fn(storeOn(tx)))),

    ...changeFeed(ctx.db, ctx.listeners),
    ...podStore(ctx),
    ...instanceStore(ctx),
    ...nodeStore(ctx),
    ...networkVolumeStore(ctx),
    ...templateStore(ctx),
    ...registryAuthStore(ctx),
    ...secretStore(ctx),
    ...deploymentStore(ctx),
    ...sshKeyStore(ctx),
    ...apiKeyStore(ctx),
    ...usageStore(ctx),
    ...teamStore(ctx),
    ...auditStore(ctx),
    ...joinTokenStore(ctx),
    ...nodeCredentialStore(ctx),
    ...leaseStore(ctx),
  };
  return store;
}
