import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BerthError } from './errors.js';
import { checkExec, execProblems, inputProblem, jsonDepthOver, LIMITS, parseJsonBounded } from './limits.js';
import { toDockerTimestamp } from './timestamps.js';

describe('inputProblem', () => {
  it('passes ordinary input', () => {
    assert.equal(inputProblem({ name: 'web', env: { A: 'b' }, ports: ['8080/http'], gpuCount: 1, memoryGb: 0.5 }), undefined);
  });

  it('finds NUL bytes in values and keys, with their path', () => {
    assert.deepEqual(inputProblem({ env: { A: 'x\u0000' } }), { path: '/env/A', message: 'holds a NUL byte' });
    assert.equal(inputProblem({ ['a\u0000']: 1 })?.message, 'the key holds a NUL byte');
    assert.deepEqual(inputProblem({ limit: 'a\u0000' }, 'query:'), { path: 'query:/limit', message: 'holds a NUL byte' });
  });

  it('bounds strings, identifiers tighter', () => {
    assert.equal(inputProblem({ readme: 'x'.repeat(LIMITS.stringChars) }), undefined);
    assert.match(inputProblem({ readme: 'x'.repeat(LIMITS.stringChars + 1) })!.message, /longer than/);
    assert.match(inputProblem({ owner: 'x'.repeat(256 * 1024) })!.message, /longer than 512/);
    assert.match(inputProblem({ templateId: 'x'.repeat(600) })!.message, /longer than 512/);
    assert.equal(inputProblem({ command: ['x'.repeat(600)] }), undefined);
  });

  it('refuses numbers no column holds', () => {
    assert.equal(inputProblem({ n: Infinity })?.message, 'must be a finite number');
    assert.equal(inputProblem({ n: NaN })?.message, 'must be a finite number');
    assert.match(inputProblem({ sizeGb: 1e308 })!.message, /at most/);
    assert.equal(inputProblem({ n: -(2 ** 31 - 1) }), undefined);
  });

  it('refuses deep nesting without recursing', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    assert.match(inputProblem({ a: deep })!.message, /deeper than/);
    assert.ok(jsonDepthOver(deep, LIMITS.jsonDepth));
    assert.equal(jsonDepthOver({ a: [{ b: 1 }] }, LIMITS.jsonDepth), false);
  });
});

describe('parseJsonBounded', () => {
  it('parses JSON and refuses a 10,000-deep array as VALIDATION', () => {
    assert.deepEqual(parseJsonBounded('{"a":[1]}'), { a: [1] });
    assert.throws(() => parseJsonBounded(`{"a":${'['.repeat(10_000)}${']'.repeat(10_000)}}`), (e: unknown) => e instanceof BerthError && e.kind === 'VALIDATION');
  });
});

describe('execProblems', () => {
  it('passes an ordinary command and refuses one argument of 256 KiB, naming the limit', () => {
    assert.deepEqual(execProblems(['sh', '-c', 'echo hi']), []);
    const problems = execProblems(['echo', 'x'.repeat(256 * 1024)]);
    assert.equal(problems[0]?.path, '/command(1)');
    assert.match(problems[0]!.message, new RegExp(`at most ${LIMITS.execArgBytes}`));
  });

  it('bounds argv and env together', () => {
    const third = 'x'.repeat(LIMITS.execArgBytes - 10);
    assert.deepEqual(execProblems([third]), []);
    assert.match(execProblems([third], [`A=${third}`])[0]!.message, new RegExp(`at most ${LIMITS.execTotalBytes}`));
    assert.throws(() => checkExec(['a\u0000']), BerthError);
  });
});

describe('toDockerTimestamp', () => {
  it('refuses what Docker cannot parse', () => {
    assert.equal(toDockerTimestamp('1714557600.5'), '1714557600.5');
    assert.equal(toDockerTimestamp('99999999999999999999'), null);
    assert.equal(toDockerTimestamp('253402300800'), null);
    assert.equal(toDockerTimestamp('2024-05-01T10:00:00Z'), '1714557600.000000000');
  });
});
