// Module hooks of the compat runner: `k6` and `k6/…` resolve to this runner's own
// modules, remote imports are refused, and the scripts' plain `.js` files load as
// ES modules (as k6 reads them).
import { readFile } from 'node:fs/promises';

const here = new URL('./k6/', import.meta.url);
const modules = {
  k6: 'index.mjs',
  'k6/http': 'http.mjs',
  'k6/websockets': 'websockets.mjs',
  'k6/experimental/websockets': 'websockets.mjs',
  'k6/metrics': 'metrics.mjs',
  'k6/execution': 'execution.mjs',
  'k6/timers': 'timers.mjs',
};
let root = null;

export function initialize(data) {
  root = data && data.root ? data.root : null;
}

export async function resolve(specifier, context, next) {
  if (specifier === 'k6' || specifier.startsWith('k6/')) {
    const file = modules[specifier];
    if (!file) throw new Error(`the compat runner does not implement ${specifier}; run this script with k6`);
    return { url: new URL(file, here).href, shortCircuit: true };
  }
  if (/^https?:\/\//.test(specifier)) throw new Error(`remote import refused: ${specifier}`);
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (root && url.startsWith(root) && url.endsWith('.js')) {
    return { format: 'module', source: await readFile(new URL(url), 'utf8'), shortCircuit: true };
  }
  return next(url, context);
}
