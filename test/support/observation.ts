/** What an agent reports of an instance in the given state, for unit tests; `extra` overrides. */
import type { InstanceObservation, InstanceState } from '../../src/model/index.js';

export function testObservation(state: InstanceState, extra: Partial<InstanceObservation> = {}): InstanceObservation {
  return {
    state,
    message: null,
    exitCode: null,
    ports: {},
    containers: [],
    pull: null,
    lastLogLines: [],
    startedAt: null,
    restartCount: 0,
    observedSpecVersion: 1,
    observedResetGeneration: 0,
    observedRestartGeneration: 0,
    disk: null,
    updatedAt: '2024-01-01T00:00:00.000Z',
    ...extra,
  };
}
