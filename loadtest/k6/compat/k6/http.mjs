// `k6/http` for the compat runner: blocking calls through curl (as k6's are
// blocking), asyncRequest through fetch. Bodies are strings (or objects, sent
// form-encoded); responses have status, body, headers, error and json().
import { spawnSync } from 'node:child_process';
import { sample } from './state.mjs';

function seconds(timeout) {
  if (timeout === undefined || timeout === null) return 60;
  if (typeof timeout === 'number') return timeout / 1000;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(timeout).trim());
  if (!m) throw new Error(`bad timeout ${timeout}`);
  const n = Number(m[1]);
  return { ms: n / 1000, s: n, m: n * 60, h: n * 3600, undefined: n }[m[2]];
}

function encode(body) {
  if (body === undefined || body === null) return null;
  if (typeof body === 'string') return body;
  return Object.keys(body)
    .map((k) => `${encodeURIComponent(k)}=${encodeURIComponent(body[k])}`)
    .join('&');
}

class Response {
  constructor(method, url, status, body, headers, error, ms) {
    this.request = { method, url };
    this.url = url;
    this.status = status;
    this.body = body;
    this.headers = headers;
    this.error = error;
    this.error_code = error ? 1000 : 0;
    this.timings = { duration: ms };
  }

  json(selector) {
    if (selector) throw new Error('json(selector) is not implemented by the compat runner');
    return JSON.parse(this.body);
  }
}

function record(res) {
  sample('http_reqs', 'counter', 1);
  sample('http_req_duration', 'trend', res.timings.duration, true);
  sample('http_req_failed', 'rate', res.status === 0 || res.status >= 400 ? 1 : 0);
  return res;
}

export function request(method, url, body, params) {
  const p = params || {};
  const text = encode(body);
  const headers = { ...(p.headers || {}) };
  if (text !== null && body !== null && typeof body === 'object' && !headers['content-type']) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
  }
  const args = ['-sS', '-X', method, '--max-time', String(seconds(p.timeout)), '-o', '-', '-w', '\n%{http_code}'];
  for (const k of Object.keys(headers)) args.push('-H', `${k}: ${headers[k]}`);
  if (text !== null) args.push('--data-binary', '@-');
  args.push(url);
  const t0 = Date.now();
  const r = spawnSync('curl', args, { input: text === null ? '' : text, encoding: 'utf8', maxBuffer: 256 << 20 });
  const ms = Date.now() - t0;
  if (r.error) throw r.error;
  if (r.status !== 0) return record(new Response(method, url, 0, null, {}, String(r.stderr).trim() || `curl exit ${r.status}`, ms));
  const out = r.stdout;
  const cut = out.lastIndexOf('\n');
  return record(new Response(method, url, Number(out.slice(cut + 1)), out.slice(0, cut), {}, '', ms));
}

export async function asyncRequest(method, url, body, params) {
  const p = params || {};
  const text = encode(body);
  const headers = { ...(p.headers || {}) };
  const t0 = Date.now();
  try {
    const res = await fetch(url, {
      method,
      headers,
      body: text === null ? undefined : text,
      signal: AbortSignal.timeout(seconds(p.timeout) * 1000),
    });
    const out = await res.text();
    const h = {};
    res.headers.forEach((v, k) => {
      h[k] = v;
    });
    return record(new Response(method, url, res.status, out, h, '', Date.now() - t0));
  } catch (e) {
    const why = e && e.cause ? `${e.message}: ${e.cause.message || e.cause}` : String(e && e.message ? e.message : e);
    return record(new Response(method, url, 0, null, {}, why, Date.now() - t0));
  }
}

export const get = (url, params) => request('GET', url, null, params);
export const head = (url, params) => request('HEAD', url, null, params);
export const post = (url, body, params) => request('POST', url, body, params);
export const put = (url, body, params) => request('PUT', url, body, params);
export const patch = (url, body, params) => request('PATCH', url, body, params);
export const del = (url, body, params) => request('DELETE', url, body, params);

export function batch(requests) {
  return requests.map((r) => (Array.isArray(r) ? request(r[0], r[1], r[2], r[3]) : request(r.method, r.url, r.body, r.params)));
}

export default { request, asyncRequest, get, head, post, put, patch, del, batch };
