// selftest: the scripts' own bookkeeping, fed made-up frames (no node, no network):
// duplicates on one connection, catch-up at or below the resume position, a gap that a
// `sync` finds empty, acks, lost and unexpected numbers. Run it after changing lib/weft.js:
//
//   k6 run selftest.js
//
// It passes when every check passes; the duplicates and losses it makes up on purpose
// also show in the weft_* counters of its summary.

import { check } from 'k6';
import { Client, tally } from './lib/weft.js';

export const options = {
  scenarios: { selftest: { executor: 'per-vu-iterations', vus: 1, iterations: 1, maxDuration: '60s' } },
  thresholds: { checks: ['rate==1'] },
};

function msg(chat, seq, body) {
  return { type: 'message', chat: chat, seq: seq, sender: 'x', body: body || `${Date.now()}:x:pad`, sent_at: '' };
}

function client() {
  return new Client({ user: 'u', jwt: 'j', urls: ['http://127.0.0.1:1'], chats: [7] });
}

export default function () {
  // Live messages: a number twice on one connection is a duplicate; out of order is not.
  let c = client();
  c.onFrame(msg(7, 2));
  c.onFrame(msg(7, 1));
  c.onFrame(msg(7, 2));
  check(c, {
    'live: first copies delivered': (x) => x.delivered === 2,
    'live: the second copy is a duplicate': (x) => x.duplicates === 1,
    'live: held up to 2 without a gap': (x) => x.mark[7] === 2,
  });

  // A new connection resumed after 3: catch-up at or below 3 is a duplicate; above it,
  // a number held from the old connection is a re-read (asked for), not a duplicate.
  c = client();
  for (const s of [1, 2, 3, 5]) c.onFrame(msg(7, s));
  c.here = {};
  c.after = { 7: 3 };
  c.onFrame({ type: 'messages', id: 'h2', chat: 7, items: [msg(7, 3), msg(7, 4), msg(7, 5), msg(7, 6)], has_more: false });
  c.onFrame(msg(7, 6));
  c.onFrame(msg(7, 7));
  check(c, {
    'resume: 3 (at the resume position) is a duplicate, 6 live after its catch-up too': (x) => x.duplicates === 2,
    'resume: 4, 6 and 7 are new': (x) => x.delivered === 4 + 3,
    'resume: held up to 7': (x) => x.mark[7] === 7,
  });

  // A gap that a sync finds empty: the number was skipped for good, the mark moves on.
  c = client();
  c.onFrame(msg(7, 1));
  c.onFrame(msg(7, 3));
  check(c, { 'gap: the mark stops before it': (x) => x.mark[7] === 1 });
  c.requests.g1 = { chat: 7, from: 1, to: 3 };
  c.onFrame({ type: 'messages', id: 'g1', chat: 7, items: [], has_more: false });
  check(c, { 'gap: an empty sync skips it': (x) => x.mark[7] === 3 && x.duplicates === 0 });
  // ...and if it arrives after all, it counts once.
  c.onFrame(msg(7, 2));
  check(c, { 'gap: a late arrival is delivered once': (x) => x.delivered === 3 && x.duplicates === 0 });

  // Acks: the acked number is held (the sender gets no copy of its own message).
  c = client();
  c.inFlight.set(1, { text: '{}', sentAt: Date.now() });
  c.onFrame({ type: 'ack', id: 1, chat: 7, seq: 4 });
  check(c, {
    'ack: recorded and held': (x) => x.acked.length === 1 && x.acked[0][1] === 4 && x.held[7].has(4),
    'ack: nothing left in flight': (x) => x.inFlight.size === 0,
  });

  // Compared with the store: 3 not received is lost, 9 not stored is unexpected.
  c = client();
  for (const s of [1, 2, 9]) c.onFrame(msg(7, s));
  const wrong = tally([c], 7, new Set([1, 2, 3]), 'selftest');
  check(wrong, { 'tally: one lost and one unexpected': (n) => n === 2 });
}
