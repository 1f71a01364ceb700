import type { Deployment } from '../model/index.js';
import type { StoreContext } from './context.js';
import { deploymentFromRow, deploymentToRow } from './rows.js';

/**
 * Marathon rollouts in progress: written when one starts, deleted when it ends, so a restarted
 * server resumes them. No change is recorded: only the control plane reads them.
 */
export interface DeploymentStore {
  /** Creates the deployment, or moves an existing one (same id) to its new action and versions. */
  putDeployment(d: Deployment): Promise<void>;
  deleteDeployment(id: string): Promise<void>;
  listDeployments(): Promise<Deployment[]>;
}

export function deploymentStore(ctx: StoreContext): DeploymentStore {
  return {
    async putDeployment(d) {
      const row = deploymentToRow(d);
      await ctx.db
        .insertInto('deployments')
        .values(row)
        .onConflict((oc) => oc.column('id').doUpdateSet({ action: row.action, version: row.version, to_version: row.to_version, from_version: row.from_version }))
        .execute();
    },

    async deleteDeployment(id) {
      await ctx.db.deleteFrom('deployments').where('id', '=', id).execute();
    },

    async listDeployments() {
      const rows = await ctx.db.selectFrom('deployments').selectAll().orderBy('started_at').orderBy('id').execute();
      return rows.map(deploymentFromRow);
    },
  };
}
