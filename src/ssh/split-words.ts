import { BerthError } from '../model/index.js';

/**
 * A command line's words as sh splits them, without sh's expansions: blanks separate words, single
 * quotes keep everything, double quotes keep all but `\\`, `\"`, `\$` and `` \` ``, a backslash
 * outside quotes keeps the next character. Throws on an unclosed quote.
 */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === ' ' || ch === '\t' || ch === '\n') {
      if (word !== null) words.push(word);
      word = null;
    } else if (ch === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new BerthError('VALIDATION', 'the command has an unclosed single quote');
      word = (word ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (ch === '"') {
      word ??= '';
      for (i++; i < line.length && line[i] !== '"'; i++) {
        const next = line[i + 1];
        if (line[i] === '\\' && next !== undefined && '\\"$`'.includes(next)) i++;
        word += line[i];
      }
      if (i >= line.length) throw new BerthError('VALIDATION', 'the command has an unclosed double quote');
    } else if (ch === '\\') {
      word = (word ?? '') + (line[++i] ?? '');
    } else word = (word ?? '') + ch;
  }
  if (word !== null) words.push(word);
  return words;
}
