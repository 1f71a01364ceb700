/** Long-running commands (`server`, `agent`): run until the first signal, then close gracefully. */
import type { Output } from '../output.js';

/** Resolves at the first SIGINT or SIGTERM; a second one exits at once. */
export function untilSignal(out: Output): Promise<void> {
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      out.note(`${signal}: shutting down (again to force)`);
      process.once('SIGINT', () => process.exit(130));
      process.once('SIGTERM', () => process.exit(143));
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
