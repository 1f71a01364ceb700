import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { splitWords } from './split-words.js';

describe('splitWords (commands for images without /bin/sh)', () => {
  it('splits on blanks and keeps quoted text as sh does', () => {
    assert.deepEqual(splitWords('  /app/server  --port 80\t-v '), ['/app/server', '--port', '80', '-v']);
    assert.deepEqual(splitWords(`echo 'a  b' "c \\"d\\" \\$e \\x" f\\ g ''`), ['echo', 'a  b', 'c "d" $e \\x', 'f g', '']);
    assert.deepEqual(splitWords(`a'b'"c"d`), ['abcd']);
    assert.deepEqual(splitWords('trailing\\'), ['trailing']);
    assert.deepEqual(splitWords(''), []);
  });

  it('refuses an unclosed quote', () => {
    assert.throws(() => splitWords("echo 'open"), /unclosed single quote/);
    assert.throws(() => splitWords('echo "open\\"'), /unclosed double quote/);
  });
});
