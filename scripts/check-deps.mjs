// Keeps the layers of docs/architecture.md pointing one way: a folder may import only from the
// folders listed for it. Fails the build on an upward or sideways import.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, dirname, resolve } from 'node:path';

const ALLOWED = {
  model: [],
  store: ['model'],
  runtime: ['model'],
  control: ['model', 'store'],
  agent: ['model', 'control', 'runtime'],
  api: ['model', 'store', 'control'],
  proxy: ['model', 'store', 'control'],
  ssh: ['model', 'store', 'control'],
  cli: ['model', 'store', 'control', 'runtime', 'agent', 'api', 'proxy', 'ssh'],
};

const root = resolve('src');
const problems = [];
function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith('.ts') && !p.endsWith('.test.ts')) check(p);
  }
}
function check(file) {
  const layer = relative(root, file).split('/')[0];
  const allowed = ALLOWED[layer];
  if (!allowed) return problems.push(`${file}: folder src/${layer} is not in scripts/check-deps.mjs`);
  const text = readFileSync(file, 'utf8');
  for (const m of text.matchAll(/from\s+'(\.[^']+)'/g)) {
    const target = relative(root, resolve(dirname(file), m[1])).split('/')[0];
    if (target !== layer && !allowed.includes(target)) problems.push(`${relative('.', file)} imports ${m[1]}: src/${layer} may not depend on src/${target}`);
  }
}
walk(root);
if (problems.length) {
  console.error('dependency direction check failed:\n  ' + problems.join('\n  '));
  process.exit(1);
}
