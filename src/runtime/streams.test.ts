import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { exitCodeFromStatus, FrameDemuxer, JsonObjectSplitter, LogLineSplitter, nanosToDockerTimestamp, toDockerTimestamp } from './streams.js';
import type { LogLine } from './types.js';

function frame(type: number, text: string | Buffer): Buffer {
  const payload = typeof text === 'string' ? Buffer.from(text) : text;
  const header = Buffer.alloc(8);
  header[0] = type;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

/** Feeds `data` one byte at a time: the worst case for chunk boundaries. */
function byteByByte<T>(data: Buffer, push: (b: Buffer) => T[]): T[] {
  const out: T[] = [];
  for (let i = 0; i < data.length; i++) out.push(...push(data.subarray(i, i + 1)));
  return out;
}

describe('FrameDemuxer', () => {
  it('splits frames whatever the chunk boundaries', () => {
    const data = Buffer.concat([frame(1, 'out\n'), frame(2, 'err\n'), frame(1, '')]);
    const whole = new FrameDemuxer().push(data);
    const d = new FrameDemuxer();
    const split = byteByByte(data, (b) => d.push(b));
    for (const frames of [whole, split]) {
      assert.deepEqual(
        frames.map((f) => [f.stream, f.payload.toString()]),
        [['stdout', 'out\n'], ['stderr', 'err\n'], ['stdout', '']],
      );
    }
    assert.equal(d.leftover, 0);
  });

  it('keeps a truncated frame as leftover', () => {
    const d = new FrameDemuxer();
    assert.deepEqual(d.push(frame(1, 'abc').subarray(0, 9)), []);
    assert.equal(d.leftover, 9);
  });
});

describe('JsonObjectSplitter', () => {
  it('handles several objects per chunk, split objects and braces inside strings', () => {
    const text = '{"a":1}\n{"b":"x}{\\"y"}{"c":{"d":[1,2]}}\n\n{"e":"é"}\n';
    const whole = new JsonObjectSplitter().push(text).map((t) => JSON.parse(t) as unknown);
    const s = new JsonObjectSplitter();
    const split = byteByByte(Buffer.from(text), (b) => s.push(b)).map((t) => JSON.parse(t) as unknown);
    const expected = [{ a: 1 }, { b: 'x}{"y' }, { c: { d: [1, 2] } }, { e: 'é' }];
    assert.deepEqual(whole, expected);
    assert.deepEqual(split, expected);
  });
});

describe('LogLineSplitter', () => {
  const T1 = '2024-05-01T10:00:00.123456789Z';
  const T2 = '2024-05-01T10:00:01.5Z';
  const fixed = (): string => 'FALLBACK';

  it('reads stamped frames, keeping streams apart', () => {
    const s = new LogLineSplitter(fixed);
    const d = new FrameDemuxer();
    const data = Buffer.concat([frame(1, `${T1} hello world\n`), frame(2, `${T2} oops\n`), frame(1, `${T2} \n`)]);
    const lines = byteByByte(data, (b) => d.push(b).flatMap((f) => s.pushFrame(f)));
    assert.deepEqual(lines, [
      { stream: 'stdout', time: T1, text: 'hello world' },
      { stream: 'stderr', time: T2, text: 'oops' },
      { stream: 'stdout', time: T2, text: '' },
    ] satisfies LogLine[]);
  });

  it('joins a message Docker cut into partial frames, keeping the first stamp and whole UTF-8', () => {
    const s = new LogLineSplitter(fixed);
    const text = Buffer.from('ab€cd');
    // Cut inside the euro sign's three bytes.
    const lines = [
      ...s.pushFrame({ stream: 'stdout', payload: Buffer.concat([Buffer.from(`${T1} `), text.subarray(0, 3)]) }),
      ...s.pushFrame({ stream: 'stdout', payload: Buffer.concat([Buffer.from(`${T2} `), text.subarray(3), Buffer.from('\n')]) }),
    ];
    assert.deepEqual(lines, [{ stream: 'stdout', time: T1, text: 'ab€cd' }]);
  });

  it('reads raw TTY output with a stamp per line and CRLF endings', () => {
    const s = new LogLineSplitter(fixed);
    const data = Buffer.from(`${T1} one\r\n${T2} two\r\nno stamp`);
    const lines = [...byteByByte(data, (b) => s.pushRaw(b)), ...s.end()];
    assert.deepEqual(lines, [
      { stream: 'stdout', time: T1, text: 'one' },
      { stream: 'stdout', time: T2, text: 'two' },
      { stream: 'stdout', time: 'FALLBACK', text: 'no stamp' },
    ] satisfies LogLine[]);
  });
});

describe('Docker text fields', () => {
  it('parses the exit code from the list API status', () => {
    assert.equal(exitCodeFromStatus('Exited (137) 5 minutes ago'), 137);
    assert.equal(exitCodeFromStatus('Exited (0) Less than a second ago'), 0);
    assert.equal(exitCodeFromStatus('Up 3 minutes'), null);
    assert.equal(exitCodeFromStatus('Created'), null);
  });

  it('converts times to Docker timestamps', () => {
    assert.equal(toDockerTimestamp('1714557600'), '1714557600');
    assert.equal(toDockerTimestamp('1714557600.5'), '1714557600.5');
    assert.equal(toDockerTimestamp('2024-05-01T10:00:00Z'), '1714557600.000000000');
    assert.equal(toDockerTimestamp('2024-05-01T10:00:00.123456789Z'), '1714557600.123456789');
    assert.equal(toDockerTimestamp('2024-05-01T12:00:00.5+02:00'), '1714557600.500000000');
    assert.equal(toDockerTimestamp('yesterday'), null);
    assert.equal(nanosToDockerTimestamp(1714557600000000042n), '1714557600.000000042');
  });
});
