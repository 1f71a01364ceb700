import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BerthError } from '../model/errors.js';
import { withDeadline } from './daemon.js';

describe('withDeadline', () => {
  it('answers what the call answers in time', async () => {
    assert.equal(await withDeadline('ping', 1_000, async () => 'pong'), 'pong');
    await assert.rejects(withDeadline('ping', 1_000, async () => Promise.reject(new Error('no'))), /no/);
  });

  it('gives up on a call that never answers with a retryable RUNTIME error naming it', async () => {
    // The deadline's timer does not hold the process open (unref): this one does, for the test.
    const alive = setInterval(() => undefined, 1_000);
    try {
      await assert.rejects(
        withDeadline('remove container abc', 50, () => new Promise(() => undefined)),
        (e: unknown) => e instanceof BerthError && e.kind === 'RUNTIME' && e.retryable && /remove container abc: Docker did not answer/.test(e.message),
      );
    } finally {
      clearInterval(alive);
    }
  });
});
