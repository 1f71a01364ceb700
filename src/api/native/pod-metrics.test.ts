import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BerthError } from '../../model/index.js';
import { parseSince } from './pod-metrics.js';

describe('parseSince', () => {
  const now = Date.parse('2026-12-05T12:00:00.000Z');
  it('takes durations back from now and ISO times; defaults to an hour', () => {
    assert.equal(parseSince('90s', now), '2026-12-05T11:58:30.000Z');
    assert.equal(parseSince('30m', now), '2026-12-05T11:30:00.000Z');
    assert.equal(parseSince('6h', now), '2026-12-05T06:00:00.000Z');
    assert.equal(parseSince('1d', now), '2026-12-04T12:00:00.000Z');
    assert.equal(parseSince('2026-12-05T10:00:00Z', now), '2026-12-05T10:00:00.000Z');
    assert.equal(parseSince(undefined, now), '2026-12-05T11:00:00.000Z');
  });
  it('refuses anything else, naming the parameter', () => {
    assert.throws(() => parseSince('yesterday', now), (e: unknown) => e instanceof BerthError && e.kind === 'VALIDATION' && e.problems[0]?.path === 'query:/since');
  });
});
