// Live weft nodes for the client's tests: one node on the embedded store, or
// three on Redis + Cassandra. Nodes are real `weft serve` processes, started
// here and killed when the test ends.

import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync, openSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

import { WeftClient, WeftRest } from '../dist/index.js';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

let built = false;
/** The weft binary: `WEFT_BIN`, or `target/debug/weft` (built with cargo when missing). */
export function weftBin() {
  if (process.env.WEFT_BIN) return process.env.WEFT_BIN;
  const bin = join(REPO, 'target/debug/weft');
  if (!existsSync(bin) && !built) {
    const r = spawnSync('cargo', ['build', '--bin', 'weft'], { cwd: REPO, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('cargo build --bin weft failed');
    built = true;
  }
  if (!existsSync(bin)) throw new Error(`no weft binary at ${bin}`);
  return bin;
}

/** A TCP port nobody listens on right now. */
export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it is truthy; fails after `ms` (a hang guard, not a speed claim). */
export async function until(what, check, ms = 30_000, every = 50) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(every);
  }
}

function cleanEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('WEFT_') && k !== 'RUST_LOG') env[k] = v;
  env.RUST_LOG = 'info';
  return { ...env, ...extra };
}

const nodes = new Set();
process.on('exit', () => {
  for (const n of nodes) n.kill();
});
// The test runner ends a file that hangs with a signal: its nodes go with it.
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.once(sig, () => {
    for (const n of nodes) n.kill();
    process.exit(128 + (sig === 'SIGTERM' ? 15 : 2));
  });
}

/** A `weft serve` process; `restart()` starts it again with the same settings. */
export class Node {
  constructor(env, name) {
    this.env = env;
    this.name = name;
    this.port = Number(env.WEFT_SERVER_LISTEN.split(':')[1]);
    this.base = `http://127.0.0.1:${this.port}`;
    this.ws = `ws://127.0.0.1:${this.port}/ws`;
    this.logDir = mkdtempSync(join(tmpdir(), `weft-js-log-`));
    this.starts = 0;
    this.proc = undefined;
    nodes.add(this);
  }

  async start() {
    this.starts++;
    const log = join(this.logDir, `${this.name}-${this.starts}.log`);
    this.logFile = log;
    const fd = openSync(log, 'w');
    this.proc = spawn(weftBin(), ['serve'], { env: cleanEnv(this.env), stdio: ['ignore', fd, fd] });
    const proc = this.proc;
    let exited = false;
    proc.on('exit', () => (exited = true));
    await until(`${this.name} ready (log ${log})`, async () => {
      if (exited) throw new Error(`${this.name} exited at start:\n${this.logTail()}`);
      try {
        const r = await fetch(`${this.base}/readyz`);
        await r.body?.cancel();
        return r.ok;
      } catch {
        return false;
      }
    }, 60_000, 50);
    return this;
  }

  logTail(lines = 40) {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** Sends `signal` and waits for the process to exit. */
  async stop(signal = 'SIGKILL') {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const done = new Promise((r) => proc.once('exit', r));
    proc.kill(signal);
    await done;
  }

  async restart(signal = 'SIGKILL') {
    await this.stop(signal);
    return this.start();
  }

  kill() {
    try {
      this.proc?.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }

  async dispose() {
    await this.stop('SIGKILL');
    nodes.delete(this);
    rmSync(this.logDir, { recursive: true, force: true });
  }
}

/** One node on the embedded store in a fresh data dir (`extra`: more `WEFT_*` settings). */
export async function singleNode(extra = {}) {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'weft-js-data-'));
  const node = new Node(
    {
      WEFT_SERVER_LISTEN: `127.0.0.1:${port}`,
      WEFT_STORE_DATA_DIR: dataDir,
      WEFT_SERVER_DRAIN_WINDOW_MS: '200',
      WEFT_SERVER_SHUTDOWN_GRACE_MS: '3000',
      WEFT_GATEWAY_PRESENCE_DEBOUNCE_MS: '200',
      ...extra,
    },
    'node',
  );
  node.dataDir = dataDir;
  const dispose = node.dispose.bind(node);
  node.dispose = async () => {
    await dispose();
    rmSync(dataDir, { recursive: true, force: true });
  };
  return node.start();
}

/** The services a cluster needs, from `scripts/services.sh env`: fails loudly when missing. */
export function services() {
  const redis = process.env.WEFT_TEST_REDIS_URL;
  const cql = process.env.WEFT_TEST_CQL_NODES;
  if (!redis || !cql) {
    throw new Error(
      'WEFT_TEST_REDIS_URL and WEFT_TEST_CQL_NODES must be set: run `bash scripts/services.sh up` and ' +
        '`eval "$(bash scripts/services.sh env)"` (scripts/test-js.sh does both)',
    );
  }
  return { redis, cql: cql.split(',').filter(Boolean) };
}

/**
 * Three nodes on Redis + Cassandra in a fresh keyspace (`weft_js_<secs>_<hex>`),
 * with a cluster CA for QUIC's mutual TLS (as tests/common/trio.rs).
 */
export async function threeNodes(extra = {}) {
  const svc = services();
  const certs = mkdtempSync(join(tmpdir(), 'weft-js-certs-'));
  const ca = spawnSync(weftBin(), ['cluster-ca', '--out', certs], { encoding: 'utf8', env: cleanEnv({}) });
  if (ca.status !== 0) throw new Error(`weft cluster-ca failed: ${ca.stderr}`);
  const keyspace = `weft_js_${Math.floor(Date.now() / 1000)}_${randomBytes(4).toString('hex')}`;
  const shared = {
    WEFT_STORE_BACKEND: 'cql',
    WEFT_CQL_NODES: JSON.stringify(svc.cql),
    WEFT_CQL_KEYSPACE: keyspace,
    WEFT_CQL_REQUEST_TIMEOUT_MS: '10000',
    WEFT_REDIS_URL: svc.redis,
    WEFT_REDIS_KEY_PREFIX: `weft-js-${randomBytes(6).toString('hex')}`,
    WEFT_CLUSTER_ENABLED: 'true',
    WEFT_GOSSIP_GOSSIP_INTERVAL_MS: '100',
    WEFT_TLS_CA_CERT: join(certs, 'ca.pem'),
    WEFT_TLS_NODE_CERT: join(certs, 'node.pem'),
    WEFT_TLS_NODE_KEY: join(certs, 'node.key'),
    WEFT_SERVER_DRAIN_WINDOW_MS: '300',
    WEFT_SERVER_SHUTDOWN_GRACE_MS: '5000',
    WEFT_SEQUENCE_CLAIM_ABANDON_MS: '5000',
    WEFT_GATEWAY_PRESENCE_DEBOUNCE_MS: '300',
    // The search index and attachments are not what these tests are about.
    WEFT_SEARCH_BACKEND: 'none',
    ...extra,
  };
  const migrate = spawnSync(weftBin(), ['migrate'], {
    encoding: 'utf8',
    env: cleanEnv({ ...shared, WEFT_SERVER_LISTEN: '127.0.0.1:0', WEFT_CLUSTER_ENABLED: 'false' }),
  });
  if (migrate.status !== 0) throw new Error(`weft migrate failed (keyspace ${keyspace}): ${migrate.stderr}`);
  const list = [];
  let seed;
  for (const id of ['a', 'b', 'c']) {
    const [http, gossip, quic] = [await freePort(), await freePort(), await freePort()];
    const env = {
      ...shared,
      WEFT_SERVER_LISTEN: `127.0.0.1:${http}`,
      WEFT_GOSSIP_GOSSIP_LISTEN: `127.0.0.1:${gossip}`,
      WEFT_QUIC_LISTEN: `127.0.0.1:${quic}`,
      WEFT_CLUSTER_NODE_ID: `node-${id}`,
      WEFT_GOSSIP_SEEDS: JSON.stringify(seed ? [seed] : []),
    };
    const node = await new Node(env, `node-${id}`).start();
    seed ??= `127.0.0.1:${gossip}`;
    list.push(node);
  }
  for (const node of list) {
    await until(`three members seen by ${node.name}`, async () => {
      const r = await fetch(`${node.base}/api/v1/cluster`);
      const body = await r.json();
      return (body.members ?? []).length === 3;
    }, 60_000, 100);
  }
  return {
    nodes: list,
    keyspace,
    async dispose() {
      for (const n of list) await n.dispose();
      rmSync(certs, { recursive: true, force: true });
    },
  };
}

/** A fresh application on `base` and a REST handle bound to it. */
export async function newApp(base) {
  const rest = new WeftRest({ baseUrl: base });
  const app = await rest.createApplication({ name: `js-${randomBytes(3).toString('hex')}` });
  return { rest, app };
}

/** A client for `user`, its tokens minted over REST; collects its messages per chat. */
export function clientFor(rest, user, urls, opts = {}) {
  const tokens = [];
  const client = new WeftClient({
    url: urls,
    getToken: async (req) => {
      const { token } = await rest.createUserToken(user, opts.ttl ? { ttl_seconds: opts.ttl } : {});
      tokens.push({ req, token });
      return token;
    },
    reconnect: { minDelayMs: 50, maxDelayMs: 1_000 },
    ...opts.client,
  });
  client.tokens = tokens;
  client.got = new Map();
  client.all = [];
  client.on('message', (m, info) => {
    if (!client.got.has(m.chat)) client.got.set(m.chat, []);
    client.got.get(m.chat).push(m);
    client.all.push({ m, info });
  });
  return client;
}

/** The bodies `client` received in `chat`, in the order received. */
export const bodies = (client, chat) => (client.got.get(chat) ?? []).map((m) => m.body);
export const seqs = (client, chat) => (client.got.get(chat) ?? []).map((m) => m.seq);

/** Asserts each number 1..n once and in order. */
export function assertContiguous(assert, list, n, what) {
  assert.deepEqual(list, Array.from({ length: n }, (_, i) => i + 1), what);
}

/**
 * A TCP proxy in front of a node: `cut()` drops every connection (the client
 * sees 1006), `blocked` refuses new ones, `muteDown` drops what the node sends
 * (an answer lost on the way).
 */
export async function tcpProxy(targetPort) {
  const { createServer: tcpServer, connect } = await import('node:net');
  const pairs = new Set();
  const proxy = {
    blocked: false,
    muteDown: false,
    port: 0,
    url: '',
    base: '',
    cut() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
    },
    close() {
      proxy.cut();
      srv.close();
    },
  };
  const srv = tcpServer((down) => {
    if (proxy.blocked) return down.destroy();
    const up = connect(targetPort, '127.0.0.1');
    const pair = [down, up];
    pairs.add(pair);
    down.on('data', (d) => up.write(d));
    up.on('data', (d) => {
      if (!proxy.muteDown) down.write(d);
    });
    const end = () => {
      down.destroy();
      up.destroy();
      pairs.delete(pair);
    };
    down.on('close', end).on('error', end);
    up.on('close', end).on('error', end);
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  proxy.port = srv.address().port;
  proxy.url = `ws://127.0.0.1:${proxy.port}/ws`;
  proxy.base = `http://127.0.0.1:${proxy.port}`;
  return proxy;
}

/** Every message of a chat over REST, oldest first. */
export async function history(rest, chat) {
  const out = [];
  for (let page = 1; ; page++) {
    const items = await rest.listMessages(chat, { page, per_page: 500 });
    out.push(...items);
    if (items.length < 500) break;
  }
  return out.sort((a, b) => a.number - b.number);
}
