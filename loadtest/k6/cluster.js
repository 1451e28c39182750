// cluster: the fan-out of fanout.js over the nodes of a cluster, the senders and the
// receivers on different nodes: every sending socket connects to the first URL of
// WEFT_URLS, the receiving sockets to the others in turn. So every delivery crosses
// nodes (the directory in Redis, then QUIC between the nodes). Checks as fanout.js:
// latency, and every stored message received exactly once by every receiving socket;
// also that the receivers' `welcome` names another node than the senders' (when the
// URLs differ; WEFT_CHECK_NODES=0 turns it off, e.g. for URLs behind one balancer).
//
//   k6 run -e WEFT_URLS=http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083 \
//          -e WEFT_ADMIN_KEY=... -e WEFT_MEMBERS=100 -e WEFT_SENDERS=2 -e WEFT_RATE=20 cluster.js
//
// Settings: those of fanout.js; WEFT_URLS (two nodes at least) is required.

import { fanoutConfig, fanoutOptions, fanoutSetup, fanoutRun } from './lib/fanout.js';
import { guarded } from './lib/weft.js';

const cfg = fanoutConfig(true);

export const options = fanoutOptions(cfg, 'cluster');

export function setup() {
  return fanoutSetup(cfg, 'k6 cluster');
}

export default async function (data) {
  await guarded('cluster', () => fanoutRun(cfg, data));
}
