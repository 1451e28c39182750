// DOM building blocks of the demo chat. Everything a user typed goes in as
// text (textContent), never as HTML.

/** `document.createElement` with attributes, properties and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const PALETTE = ['#4f46e5', '#0e7490', '#b45309', '#be185d', '#15803d', '#7c3aed', '#c2410c', '#0369a1'];

/** A stable colour per user id. */
export function colour(user) {
  let hash = 0;
  for (const ch of String(user)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

/** Fills an avatar element for `label` (a user id or a chat name). */
export function paintAvatar(el, label, online) {
  el.textContent = initials(label);
  el.style.background = colour(label);
  el.classList.toggle('online', Boolean(online));
}

function initials(label) {
  const words = String(label || '?').split(/[\s._@:-]+/).filter(Boolean);
  // "Ada Lovelace" → "AL"; "alice-1f3" → "A" (a second word of digits is not a name).
  const second = words.length > 1 && /\p{L}/u.test(words[1][0]) ? words[1][0] : '';
  const letters = (words[0]?.[0] || '?') + second;
  return letters.toUpperCase();
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });

/** "14:02" today, "Nov 23" before. */
export function shortTime(iso) {
  if (!iso) return '';
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return '';
  const today = new Date();
  return at.toDateString() === today.toDateString() ? timeFormat.format(at) : dayFormat.format(at);
}

/** A full date and time, for titles and screen readers. */
export function longTime(iso) {
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? '' : at.toLocaleString();
}

/** A human size: 48213 → "47 KB". */
export function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/**
 * The server's search highlight (HTML-escaped body with <mark>…</mark>) as
 * nodes, without parsing it as HTML.
 */
export function highlight(text) {
  const unescape = (s) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'").replace(/&#x27;/g, "'").replace(/&amp;/g, '&');
  const nodes = [];
  const parts = String(text).split(/(<mark>|<\/mark>)/);
  let marked = false;
  for (const part of parts) {
    if (part === '<mark>') marked = true;
    else if (part === '</mark>') marked = false;
    else if (part) nodes.push(marked ? h('mark', { text: unescape(part) }) : document.createTextNode(unescape(part)));
  }
  return nodes;
}

/** The title of a chat for `me`: its name, else the other members. */
export function chatTitle(chat, me) {
  if (chat.name) return chat.name;
  const others = (chat.members || []).map((m) => m.user).filter((u) => u !== me);
  if (others.length === 0) return chat.kind === 'direct' ? me : `Chat ${chat.number}`;
  if (others.length <= 3) return others.join(', ');
  return `${others.slice(0, 3).join(', ')} +${others.length - 3}`;
}

/** The other member of a direct chat, if it is one. */
export function peerOf(chat, me) {
  if (chat.kind !== 'direct') return null;
  return (chat.members || []).map((m) => m.user).find((u) => u !== me) || null;
}

export const QUICK_REACTIONS = ['👍', '❤️', '😂', '🎉', '😮'];
