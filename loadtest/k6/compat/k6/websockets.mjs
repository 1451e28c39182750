// `k6/websockets` for the compat runner, over Node's WebSocket client (Node 22+,
// or Node 20.10+ with --experimental-websocket). Events carry what k6's do:
// message {data}, error {error}, close {code, reason}.
import { sample } from './state.mjs';

const Native = globalThis.WebSocket;

export class WebSocket {
  constructor(url, protocols, params) {
    if (!Native) throw new Error('this Node has no WebSocket client: use Node 22+, or Node 20.10+ with --experimental-websocket');
    if (params && params.headers) throw new Error('the compat runner cannot send WebSocket handshake headers');
    this.url = url;
    this.onopen = null;
    this.onmessage = null;
    this.onclose = null;
    this.onerror = null;
    this.onping = null;
    this.onpong = null;
    this._listeners = { open: [], message: [], close: [], error: [], ping: [], pong: [] };
    const t0 = Date.now();
    const ws = protocols ? new Native(url, protocols) : new Native(url);
    this._ws = ws;
    ws.onopen = () => {
      sample('ws_sessions', 'counter', 1);
      sample('ws_connecting', 'trend', Date.now() - t0, true);
      this._emit('open', { type: 'open' });
    };
    ws.onmessage = (e) => {
      sample('ws_msgs_received', 'counter', 1);
      this._emit('message', { type: 'message', data: e.data });
    };
    ws.onerror = (e) => {
      const why = (e && (e.message || (e.error && e.error.message))) || 'websocket error';
      this._emit('error', { type: 'error', error: why });
    };
    ws.onclose = (e) => {
      this._emit('close', { type: 'close', code: e.code, reason: e.reason });
    };
  }

  get readyState() {
    return this._ws.readyState;
  }

  get bufferedAmount() {
    return this._ws.bufferedAmount;
  }

  send(data) {
    sample('ws_msgs_sent', 'counter', 1);
    this._ws.send(data);
  }

  close(code, reason) {
    this._ws.close(code, reason);
  }

  ping() {
    // Node's client has no ping(); it answers the server's pings by itself.
  }

  addEventListener(name, listener) {
    if (!this._listeners[name]) throw new Error(`unknown WebSocket event ${name}`);
    this._listeners[name].push(listener);
  }

  _emit(name, event) {
    const own = this[`on${name}`];
    if (typeof own === 'function') own.call(this, event);
    for (const l of this._listeners[name]) l.call(this, event);
  }
}

WebSocket.CONNECTING = 0;
WebSocket.OPEN = 1;
WebSocket.CLOSING = 2;
WebSocket.CLOSED = 3;

export default { WebSocket };
