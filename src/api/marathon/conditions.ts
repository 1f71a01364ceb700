/** Marathon's instance conditions (`core/condition/Condition.scala`) for Berth's instance phases. */
import { instancePhase, type InstancePhase } from '../../control/index.js';
import type { Instance } from '../../model/index.js';

/** One condition per phase: a change of phase is a change of condition, and the other way round. */
export const CONDITIONS: Record<InstancePhase, string> = {
  unplaced: 'Scheduled',
  placed: 'Provisioned',
  pulling: 'Staging',
  creating: 'Starting',
  running: 'Running',
  exited: 'Finished',
  failed: 'Failed',
  stopped: 'Killed',
};

/** Marathon's condition for what the agent last saw of the instance. */
export const conditionOf = (inst: Instance): string => CONDITIONS[instancePhase(inst)];
