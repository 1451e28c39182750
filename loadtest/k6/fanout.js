// fanout: one chat of WEFT_MEMBERS members, each with a receiving socket; the first
// WEFT_SENDERS members also send to the chat from a second socket, WEFT_RATE messages
// per second over all of them. Measures send → delivery latency (the sender puts its
// clock in the body) and checks by message number that every receiving socket got
// every stored message exactly once.
//
//   k6 run -e WEFT_URL=http://127.0.0.1:8080 -e WEFT_MEMBERS=100 -e WEFT_SENDERS=2 -e WEFT_RATE=20 fanout.js
//
// Settings: WEFT_MEMBERS (10), WEFT_SENDERS (1), WEFT_RATE (5 messages/s in all; 0 = as
// fast as the acks allow), WEFT_WINDOW (32 unacknowledged sends per sender), WEFT_DURATION
// (5 s of sending), WEFT_WARMUP (0 s of it not in the latency figures), WEFT_DRAIN (10 s
// at most for acks and deliveries afterwards), WEFT_VUS (10 at most), WEFT_BODY_BYTES (64),
// WEFT_P95_MS (a latency threshold, off), WEFT_URL / WEFT_URLS (sockets spread over the
// nodes in turn), WEFT_ADMIN_KEY.
//
// Each user may send WEFT_GATEWAY_SEND_RATE_PER_SEC messages per second (node default 20,
// burst WEFT_GATEWAY_SEND_BURST 40): keep WEFT_RATE / WEFT_SENDERS below that, or raise it
// on the node (tell the script with WEFT_SEND_LIMIT); rate_limited sends are retried.

import { fanoutConfig, fanoutOptions, fanoutSetup, fanoutRun } from './lib/fanout.js';
import { guarded } from './lib/weft.js';

const cfg = fanoutConfig(false);

export const options = fanoutOptions(cfg, 'fanout');

export function setup() {
  return fanoutSetup(cfg, 'k6 fanout');
}

export default async function (data) {
  await guarded('fanout', () => fanoutRun(cfg, data));
}
