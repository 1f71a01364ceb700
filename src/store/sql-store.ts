import type { Kysely } from 'kysely';
import { changeFeed, latestRevision, readChanges, type StoreLogger } from './changes.js';
import { SqlContext } from './context.js';
import { deploymentStore } from './deployments.js';
import type { SqlDialect } from './dialect.js';
import { instanceStore } from './instances.js';
import { joinTokenStore, nodeCredentialStore } from './join-tokens.js';
import { leaseStore, noticeChannel } from './leases.js';
import { NoticeListener } from './listen.js';
import { apiKeyStore, sshKeyStore } from './keys.js';
import { nodeStore } from './nodes.js';
import { PodDetailCache } from './pod-cache.js';
import { podStore } from './pods.js';
import { ChangeRelay } from './relay.js';
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
 * listeners only after it commits. A write outside a transaction does the same on its own. The
 * listeners hear every server's changes on the same database, in revision order (relay.ts): on
 * PostgreSQL each write transaction ends with a NOTIFY of its newest revision, which every store
 * LISTENs for (listen.ts) and catches up on.
 *
 * Invariant, which PodDetailCache relies on: every write to a pod row, its current version or its
 * instances records a change and sets pods.revision to the newest revision that write recorded.
 */

/** How often a PostgreSQL store catches up from the feed whatever it heard: the safety net for lost notices. */
const POLL_MS = 2000;

export interface SqlStoreOptions {
  logger?: StoreLogger;
  /** Pod details kept for listPods; 0: none. */
  podCacheSize: number;
  /** PostgreSQL: the URL a dedicated connection LISTENs on for other servers' changes. */
  listenUrl?: string;
}

/**
 * A store over a migrated database; it owns `db` and destroys it on close. On PostgreSQL it also
 * hears the other servers on the database (relay.ts, listen.ts) until it is closed.
 */
export async function sqlStore(db: Kysely<Database>, dialect: SqlDialect, opts: SqlStoreOptions): Promise<Store> {
  const cache = opts.podCacheSize > 0 ? new PodDetailCache(opts.podCacheSize) : null;
  const read = (since: number, limit: number) => readChanges(db, since, limit);
  if (opts.listenUrl === undefined) {
    const relay = new ChangeRelay({ read, start: await latestRevision(db), ...(opts.logger ? { logger: opts.logger } : {}) });
    return storeOn(SqlContext.root(db, dialect, relay, cache), async () => relay.close());
  }
  const channel = await noticeChannel({ db });
  // Listening first, the starting revision read after: a write that commits in between is either
  // below the start or heard. Notices that arrive before the relay exists wait for it.
  let relay: ChangeRelay | undefined;
  const early: string[] = [];
  const listener = await NoticeListener.start({
    url: opts.listenUrl,
    channel,
    onNotice: (payload) => (relay ? relay.notice(payload) : early.push(payload)),
    onRelisten: () => void relay?.catchUp(),
    ...(opts.logger ? { logger: opts.logger } : {}),
  });
  try {
    relay = new ChangeRelay({ read, start: await latestRevision(db), channel, pollMs: POLL_MS, ...(opts.logger ? { logger: opts.logger } : {}) });
  } catch (err) {
    await listener.close();
    throw err;
  }
  for (const payload of early.splice(0)) relay.notice(payload);
  const started = relay;
  return storeOn(SqlContext.root(db, dialect, started, cache), async () => {
    await listener.close();
    await started.close();
  });
}

/** `stop` ends what the root store runs beside its database (the relay, the LISTEN connection). */
function storeOn(ctx: SqlContext, stop?: () => Promise<void>): Store {
  const store: Store = {
    dialect: ctx.dialect.name,

    async close() {
      if (ctx.inTransaction || !stop) throw new Error('close the store, not one of its transactions');
      await stop();
      await ctx.db.destroy();
    },

    transaction: (fn) => (ctx.inTransaction ? fn(store) : ctx.transaction((tx) => fn(storeOn(tx)))),

    ...changeFeed(ctx.db, ctx.relay),
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
    ...leaseStore(ctx, ctx.relay.channel),
  };
  return store;
}
