/** Waiting for concurrent work so that nothing is left running behind a failure. */

/** Waits for every promise, then throws the first failure: nothing is left running behind a rejection. */
export async function settleAll<T>(work: Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(work);
  throwFirst(results);
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}

export function throwFirst(results: PromiseSettledResult<unknown>[]): void {
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
