#!/usr/bin/env node
// A small runner for k6 scripts on Node, for machines and CI without k6: it
// implements the part of k6's API that weft's scripts use (k6, k6/http,
// k6/websockets, k6/metrics, k6/execution, k6/timers), the per-vu-iterations
// executor, setup/teardown, checks, and thresholds on count, rate, avg, min,
// max, med and p(N). Each VU runs in a worker thread of its own. It prints a
// summary like k6's and exits 99 when a threshold fails, as k6 does.
//
//   node [--experimental-websocket] run.mjs [-e NAME=VALUE]... script.js
//
// Like `k6 run`, the script sees the process environment in __ENV (-e adds to it).
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

const here = path.dirname(new URL(import.meta.url).pathname);

function usage(msg) {
  if (msg) console.error(`compat runner: ${msg}`);
  console.error('usage: node [--experimental-websocket] run.mjs [-e NAME=VALUE]... script.js');
  process.exit(2);
}

const env = { ...process.env };
let script = null;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '-e' || a === '--env') {
    const kv = argv[++i];
    if (!kv || kv.indexOf('=') < 1) usage(`-e wants NAME=VALUE, not ${kv}`);
    env[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
  } else if (a === '-h' || a === '--help') usage();
  else if (a.startsWith('-')) usage(`unknown option ${a}`);
  else if (script) usage('one script at a time');
  else script = path.resolve(a);
}
if (!script) usage('no script');
if (typeof globalThis.WebSocket !== 'function') {
  usage('this Node has no WebSocket client: use Node 22+, or Node 20.10+ with --experimental-websocket');
}
const root = pathToFileURL(path.dirname(script)).href;

// ------------------------------------------------------------------ metrics

const metrics = new Map();
const checks = new Map();

function merge(samples) {
  if (!samples) return;
  for (const s of samples.metrics) {
    let e = metrics.get(s.name);
    if (!e) {
      e = { type: s.type, isTime: s.isTime, sum: 0, pass: 0, total: 0, values: [], last: null, min: null, max: null };
      metrics.set(s.name, e);
    }
    e.sum += s.sum;
    e.pass += s.pass;
    e.total += s.total;
    for (const v of s.values) e.values.push(v);
    if (s.last !== null) e.last = s.last;
    if (s.min !== null) e.min = e.min === null ? s.min : Math.min(e.min, s.min);
    if (s.max !== null) e.max = e.max === null ? s.max : Math.max(e.max, s.max);
  }
  for (const c of samples.checks) {
    const e = checks.get(c.name) || { pass: 0, fail: 0 };
    e.pass += c.pass;
    e.fail += c.fail;
    checks.set(c.name, e);
  }
}

// ------------------------------------------------------------------ workers

let aborted = null;

/** Runs one worker to its end (or `limitMs`); its result, or throws. */
function stage(data, limitMs) {
  return new Promise((resolve, reject) => {
    const w = new Worker(path.join(here, 'worker.mjs'), { workerData: { script, root, env, ...data } });
    let settled = false;
    const finish = (fn, v) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      w.terminate();
      fn(v);
    };
    const timer = limitMs
      ? setTimeout(() => finish(reject, new Error(`${data.mode}${data.vu ? ' of VU ' + data.vu : ''} took longer than ${limitMs / 1000} s; stopped`)), limitMs)
      : null;
    w.on('message', (msg) => {
      merge(msg.samples);
      if (msg.kind === 'done') finish(resolve, msg.result);
      else if (msg.kind === 'failed') {
        const e = new Error(String(msg.error).split('\n')[0]);
        e.stack = msg.error;
        finish(reject, e);
      }
      else if (msg.kind === 'abort') aborted = msg.reason || 'aborted';
    });
    w.on('error', (e) => finish(reject, e));
    w.on('exit', (code) => finish(reject, new Error(`${data.mode} worker exited (${code}) without a result`)));
  });
}

function duration(text, def) {
  if (text === undefined || text === null) return def;
  let ms = 0;
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/g;
  let m;
  let seen = '';
  while ((m = re.exec(String(text))) !== null) {
    ms += Number(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2]];
    seen += m[0];
  }
  if (seen !== String(text)) throw new Error(`bad duration ${text}`);
  return ms;
}

// ------------------------------------------------------------------ thresholds

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

function stats(e, secs) {
  switch (e.type) {
    case 'counter':
      return { count: e.sum, rate: secs > 0 ? e.sum / secs : 0 };
    case 'rate':
      return { rate: e.total > 0 ? e.pass / e.total : 0, passes: e.pass, fails: e.total - e.pass };
    case 'gauge':
      return { value: e.last === null ? 0 : e.last, min: e.min === null ? 0 : e.min, max: e.max === null ? 0 : e.max };
    case 'trend': {
      const v = e.sorted || (e.sorted = e.values.slice().sort((a, b) => a - b));
      const s = { count: v.length, avg: 0, min: 0, max: 0, med: percentile(v, 50) };
      if (v.length > 0) {
        s.avg = v.reduce((a, b) => a + b, 0) / v.length;
        s.min = v[0];
        s.max = v[v.length - 1];
      }
      return s;
    }
    default:
      return {};
  }
}

function aggregate(e, name, secs) {
  const s = stats(e, secs);
  const p = /^p\((\d+(?:\.\d+)?)\)$/.exec(name);
  if (p) {
    if (e.type !== 'trend') throw new Error(`${name} needs a trend`);
    return percentile(e.sorted, Number(p[1]));
  }
  if (!(name in s)) throw new Error(`no ${name} for a ${e.type}`);
  return s[name];
}

const ops = {
  '<': (a, b) => a < b,
  '<=': (a, b) => a <= b,
  '>': (a, b) => a > b,
  '>=': (a, b) => a >= b,
  '==': (a, b) => a === b,
  '===': (a, b) => a === b,
  '!=': (a, b) => a !== b,
};

function evaluate(thresholds, secs) {
  const out = [];
  for (const name of Object.keys(thresholds || {})) {
    if (name.includes('{')) throw new Error(`thresholds on tagged sub-metrics (${name}) are not implemented by the compat runner`);
    const list = Array.isArray(thresholds[name]) ? thresholds[name] : [thresholds[name]];
    const e = metrics.get(name) || { type: 'counter', sum: 0 };
    for (const t of list) {
      const expr = typeof t === 'string' ? t : t.threshold;
      const m = /^\s*(count|rate|value|avg|min|max|med|p\(\d+(?:\.\d+)?\))\s*(<=|>=|===|==|!=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$/.exec(expr);
      if (!m) throw new Error(`threshold ${name}: cannot read '${expr}'`);
      const got = aggregate(e, m[1], secs);
      out.push({ metric: name, expr, got, agg: m[1], ok: ops[m[2]](got, Number(m[3])) });
    }
  }
  return out;
}

// ------------------------------------------------------------------ summary

function fmt(e, v) {
  if (!e.isTime) return Number.isInteger(v) ? String(v) : v.toFixed(2);
  if (v >= 1000) return `${(v / 1000).toFixed(2)}s`;
  return `${v.toFixed(2)}ms`;
}

function line(name, e, secs, trendStats) {
  const s = stats(e, secs);
  switch (e.type) {
    case 'counter':
      return `${name}: ${s.count} ${s.rate.toFixed(2)}/s`;
    case 'rate':
      return `${name}: ${(s.rate * 100).toFixed(2)}% ${s.passes} out of ${s.passes + s.fails}`;
    case 'gauge':
      return `${name}: ${fmt(e, s.value)} min=${fmt(e, s.min)} max=${fmt(e, s.max)}`;
    default:
      return `${name}: ${trendStats.map((k) => `${k}=${fmt(e, aggregate(e, k, secs))}`).join(' ')}`;
  }
}

function summary(opts, results, secs) {
  const trendStats = opts.summaryTrendStats || ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)'];
  const out = [''];
  if (results.length > 0) {
    out.push('  THRESHOLDS', '');
    let last = null;
    for (const r of results) {
      if (r.metric !== last) out.push(`    ${r.metric}`);
      last = r.metric;
      const shown = r.agg === 'rate' && metrics.get(r.metric) && metrics.get(r.metric).type === 'rate' ? `${(r.got * 100).toFixed(2)}%` : fmt(metrics.get(r.metric) || {}, r.got);
      out.push(`    ${r.ok ? '✓' : '✗'} '${r.expr}' ${r.agg}=${shown}`);
    }
    out.push('');
  }
  out.push('  CHECKS', '');
  for (const [name, c] of checks) {
    out.push(`    ${c.fail === 0 ? '✓' : '✗'} ${name}${c.fail > 0 ? `  ↳ ${c.pass} passed, ${c.fail} failed` : ''}`);
  }
  out.push('', '  METRICS', '');
  for (const name of [...metrics.keys()].sort()) {
    const e = metrics.get(name);
    // As k6 does, metrics without samples are left out (counters count their add(0)s).
    if ((e.type === 'trend' && e.values.length === 0) || (e.type === 'rate' && e.total === 0) || (e.type === 'gauge' && e.last === null)) continue;
    out.push(`    ${line(name, e, secs, trendStats)}`);
  }
  out.push('');
  return out.join('\n');
}

// ------------------------------------------------------------------ run

async function run() {
  const init = await stage({ mode: 'options' }, 60000);
  const opts = init.options;
  const scenarios = opts.scenarios || {};
  if (Object.keys(scenarios).length === 0) throw new Error('the compat runner needs options.scenarios (per-vu-iterations)');
  let data = null;
  if (init.setup) data = (await stage({ mode: 'setup', options: opts }, duration(opts.setupTimeout, 60000))).data;
  const t0 = Date.now();
  let vu = 0;
  const runs = [];
  for (const name of Object.keys(scenarios)) {
    const sc = scenarios[name];
    if (sc.executor !== 'per-vu-iterations') throw new Error(`scenario ${name}: the compat runner runs only per-vu-iterations`);
    const vus = sc.vus || 1;
    const limit = duration(sc.maxDuration, 600000) + duration(sc.gracefulStop, 30000);
    const start = duration(sc.startTime, 0);
    for (let i = 0; i < vus; i++) {
      const id = ++vu;
      runs.push(
        new Promise((r) => setTimeout(r, start))
          .then(() =>
            stage(
              {
                mode: 'vu',
                vu: id,
                vus,
                scenario: name,
                executor: sc.executor,
                exec: sc.exec,
                iterations: sc.iterations || 1,
                data,
                options: opts,
                env: { ...env, ...(sc.env || {}) },
              },
              limit,
            ),
          )
          .catch((e) => {
            console.error(`ERRO[vu ${id}] ${e.message}`);
          }),
      );
    }
  }
  await Promise.all(runs);
  const secs = (Date.now() - t0) / 1000;
  if (init.teardown) await stage({ mode: 'teardown', data, options: opts }, duration(opts.teardownTimeout, 60000));
  const results = evaluate(opts.thresholds, secs);
  console.log(summary(opts, results, secs));
  const crossed = [...new Set(results.filter((r) => !r.ok).map((r) => r.metric))];
  if (aborted) {
    console.error(`ERRO test aborted: ${aborted}`);
    return 108;
  }
  if (crossed.length > 0) {
    console.error(`ERRO thresholds on metrics '${crossed.join("', '")}' have been crossed`);
    return 99;
  }
  return 0;
}

run().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`ERRO ${e && e.stack ? e.stack : e}`);
    process.exit(107); // as k6 does for a script error
  },
);
