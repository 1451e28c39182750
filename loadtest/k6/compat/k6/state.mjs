// Per-worker state of the compat runner: metric samples and check results,
// handed to the main thread in batches.
import { parentPort } from 'node:worker_threads';

const metrics = new Map(); // name -> { type, isTime, ...aggregate since the last flush }
const checks = new Map(); // name -> { pass, fail }

function entry(name, type, isTime) {
  let e = metrics.get(name);
  if (!e) {
    e = { type, isTime: !!isTime, sum: 0, pass: 0, total: 0, values: [], last: null, min: null, max: null };
    metrics.set(name, e);
  }
  return e;
}

export function declare(name, type, isTime) {
  entry(name, type, isTime);
}

export function sample(name, type, value, isTime) {
  const e = entry(name, type, isTime);
  const v = Number(value);
  switch (type) {
    case 'counter':
      e.sum += v;
      break;
    case 'rate':
      e.total += 1;
      if (value && v !== 0) e.pass += 1;
      break;
    case 'trend':
      e.values.push(v);
      break;
    case 'gauge':
      e.last = v;
      e.min = e.min === null ? v : Math.min(e.min, v);
      e.max = e.max === null ? v : Math.max(e.max, v);
      break;
    default:
      throw new Error(`unknown metric type ${type}`);
  }
}

export function checked(name, ok) {
  let c = checks.get(name);
  if (!c) {
    c = { pass: 0, fail: 0 };
    checks.set(name, c);
  }
  if (ok) c.pass++;
  else c.fail++;
  sample('checks', 'rate', ok ? 1 : 0);
}

/** The samples since the last call, as plain data. */
export function take() {
  const out = { metrics: [], checks: [] };
  for (const [name, e] of metrics) {
    out.metrics.push({ name, ...e });
    metrics.set(name, { ...e, sum: 0, pass: 0, total: 0, values: [], last: null, min: null, max: null });
  }
  for (const [name, c] of checks) {
    out.checks.push({ name, ...c });
    checks.set(name, { pass: 0, fail: 0 });
  }
  return out;
}

export function flush() {
  if (parentPort) parentPort.postMessage({ kind: 'samples', samples: take() });
}
