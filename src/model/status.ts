/**
 * The pod lifecycle, as RunPod REST v2 names it. One table says which status may follow which and
 * which user actions each status allows; everything else derives from it.
 */
export const POD_STATUSES = ['PROVISIONING', 'STARTING', 'RUNNING', 'EXITED', 'ERROR', 'TERMINATED'] as const;
export type PodStatus = (typeof POD_STATUSES)[number];

/** What the user asked for; RunPod's `desiredStatus`. */
export const DESIRED_STATUSES = ['RUNNING', 'EXITED', 'TERMINATED'] as const;
export type DesiredStatus = (typeof DESIRED_STATUSES)[number];

export const POD_ACTIONS = ['start', 'stop', 'restart', 'reset', 'terminate'] as const;
export type PodAction = (typeof POD_ACTIONS)[number];

interface StatusRule {
  /** Statuses this one may move to. */
  readonly next: readonly PodStatus[];
  /** Actions a user may take in this status. */
  readonly actions: readonly PodAction[];
}

export const STATUS_TABLE: Readonly<Record<PodStatus, StatusRule>> = {
  PROVISIONING: { next: ['STARTING', 'RUNNING', 'EXITED', 'ERROR', 'TERMINATED'], actions: ['stop', 'terminate'] },
  STARTING: { next: ['RUNNING', 'EXITED', 'ERROR', 'PROVISIONING', 'TERMINATED'], actions: ['stop', 'restart', 'reset', 'terminate'] },
  RUNNING: { next: ['STARTING', 'EXITED', 'ERROR', 'PROVISIONING', 'TERMINATED'], actions: ['stop', 'restart', 'reset', 'terminate'] },
  EXITED: { next: ['PROVISIONING', 'STARTING', 'RUNNING', 'ERROR', 'TERMINATED'], actions: ['start', 'reset', 'terminate'] },
  ERROR: { next: ['PROVISIONING', 'STARTING', 'RUNNING', 'EXITED', 'TERMINATED'], actions: ['start', 'stop', 'restart', 'reset', 'terminate'] },
  TERMINATED: { next: [], actions: [] },
};

export const allowedActions = (status: PodStatus): readonly PodAction[] => STATUS_TABLE[status].actions;
export const canTransition = (from: PodStatus, to: PodStatus): boolean =>
  from === to || STATUS_TABLE[from].next.includes(to);

/** The desired status an action leaves behind. */
export const DESIRED_AFTER: Readonly<Record<PodAction, DesiredStatus>> = {
  start: 'RUNNING',
  stop: 'EXITED',
  restart: 'RUNNING',
  reset: 'RUNNING',
  terminate: 'TERMINATED',
};

/**
 * What the agent last saw of an instance. `pulling`/`creating` are PROVISIONING/STARTING work;
 * `stopped` means the user's stop took effect; `exited`/`failed` are the process ending on its own.
 */
export const INSTANCE_STATES = ['pending', 'pulling', 'creating', 'running', 'exited', 'failed', 'stopped', 'removed'] as const;
export type InstanceState = (typeof INSTANCE_STATES)[number];

/** The pod's status from what the user wants and what its (first) instance reports. */
export function derivePodStatus(desired: DesiredStatus, observed: InstanceState | undefined, exitCode?: number | null): PodStatus {
  if (desired === 'TERMINATED') return 'TERMINATED';
  switch (observed) {
    case undefined:
    case 'pending':
    case 'pulling':
      return desired === 'EXITED' ? 'EXITED' : 'PROVISIONING';
    case 'creating':
      return desired === 'EXITED' ? 'EXITED' : 'STARTING';
    case 'running':
      return 'RUNNING';
    case 'stopped':
    case 'removed':
      return desired === 'EXITED' ? 'EXITED' : 'PROVISIONING';
    case 'exited':
      return exitCode === 0 || exitCode == null ? 'EXITED' : 'ERROR';
    case 'failed':
      return 'ERROR';
  }
}
