// Compiled (never run) by scripts/test-js.sh: the published types serve an app as documented.
import { WeftClient, WeftRest, WeftAdmin, WeftError, WeftHttpError } from '../dist/index.js';
import type { Message, MessageInfo, SendAck, ReactionFrame, ConnectedEvent, Chat, HistoryOptions, MessagesFrame } from '../dist/index.js';

export async function example(): Promise<void> {
  const rest: WeftRest = new WeftAdmin({ baseUrl: 'http://127.0.0.1:8080', appToken: 'x' });
  const chat: Chat = await rest.createChat({ created_by: 'alice' });
  const client = new WeftClient({
    url: ['ws://127.0.0.1:8081/ws', 'http://127.0.0.1:8082'],
    getToken: async ({ reason }) => (reason === 'initial' ? 'a' : (await rest.createUserToken('alice')).token),
    positions: { [chat.number]: 0 },
  });
  const off = client.on('message', (m: Message, info: MessageInfo) => {
    const seq: number = m.seq;
    const body: string | null = m.body;
    const src: 'live' | 'resume' | 'sync' | 'own' = info.source;
    void [seq, body, src];
  });
  client.on('reaction', (r: ReactionFrame) => void r.emoji);
  client.on('disconnected', (d) => void (d.willReconnect && d.delayMs));
  const w: ConnectedEvent = await client.connect();
  const ack: SendAck = await client.send({ chat: chat.number, body: `hi from ${w.user}` });
  await client.read(ack.chat, ack.seq);
  const page = await client.sync(chat.number, 0, 50);
  void page.items.map((m) => m.sent_at);
  const newest: MessagesFrame = await client.history(chat.number);
  const older: HistoryOptions = { before: newest.items[0]?.seq ?? 1, limit: 50 };
  if (newest.has_more) void (await client.history(chat.number, older)).items;
  client.on('messages', (f) => void (f.done === true && f.has_more));
  client.on('error', (e) => void (e.chat === undefined ? e.requestId : e.chat));
  try {
    await rest.getChat(42);
  } catch (e) {
    if (e instanceof WeftHttpError && e.status === 404) void e.code;
    else if (e instanceof WeftError && e.retryable) void e.retryAfterMs;
  }
  off();
  client.close();
}
