/** Shells in pods, for the SSH gateway and the web terminal. */
import { BerthError, type InstanceId } from '../model/index.js';
import type { NodeAccess } from './agent-protocol.js';

/** A login shell, as sshd opens one: bash where the image has it, else sh. */
export const LOGIN_SHELL = ['/bin/sh', '-c', 'if [ -x /bin/bash ]; then exec /bin/bash -l; else exec /bin/sh -l; fi'];

/** Said when a shell is asked of an image without one. */
export const NO_SHELL = 'the image has no /bin/sh, so there is no shell to open';

/**
 * Whether the container lacks /bin/sh (distroless, FROM scratch), as the node tells without running
 * anything in it; false when the node cannot tell.
 */
export async function lacksShell(access: NodeAccess, instanceId: InstanceId, container: string | undefined): Promise<boolean> {
  if (!access.statFile) return false;
  return access.statFile(instanceId, container, '/bin/sh').then(
    () => false,
    (err: unknown) => err instanceof BerthError && err.kind === 'NOT_FOUND',
  );
}
