// DOM helpers. Data from the log is attacker-controlled: it only ever
// reaches the page as text nodes (never as markup; the Content-Security-
// Policy's Trusted Types would refuse it anyway), inside <bdi> so that bidi
// characters cannot reorder what surrounds it, with control, bidi and
// invisible characters shown as visible escapes.

// h creates an element. attrs are attributes, except: class, on<event>
// (a listener), and dataset. Children are nodes or strings (text nodes).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (name === 'class') el.className = v;
    else if (name.startsWith('on') && typeof v === 'function') el.addEventListener(name.slice(2), v);
    else if (name === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(name, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// replace sets el's children.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const svgNS = 'http://www.w3.org/2000/svg';

// s creates an SVG element.
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(svgNS, tag);
  for (const [name, v] of Object.entries(attrs)) {
    if (v === null || v === undefined) continue;
    if (name === 'class') el.setAttribute('class', v);
    else if (name.startsWith('on') && typeof v === 'function') el.addEventListener(name.slice(2), v);
    else el.setAttribute(name, String(v));
  }
  append(el, children);
  return el;
}

const shortEscapes = { 0x08: '\\b', 0x09: '\\t', 0x0a: '\\n', 0x0c: '\\f', 0x0d: '\\r' };

// brandMark is the logo: a stele (an upright inscribed slab).
export function brandMark() {
  return s('svg', { class: 'brand-mark', viewBox: '0 0 32 32', width: 22, height: 22, 'aria-hidden': 'true', focusable: 'false' },
    s('rect', { width: 32, height: 32, rx: 6, fill: 'currentColor' }),
    s('path', { class: 'ink', d: 'M10 7h12v18l-6-3-6 3z', fill: 'none', 'stroke-width': 2.4, 'stroke-linejoin': 'round' }),
    s('path', { class: 'ink', d: 'M13 12h6M13 16h6', 'stroke-width': 2, 'stroke-linecap': 'round' }));
}

// escapeFor returns how a character is shown, or '' when it is shown as
// itself: control characters (C0, DEL, C1), bidi controls, line and
// paragraph separators and invisible characters as escapes in the style of
// JSON and C (\r, \n, \u001B, \u202E), which every font can draw.
function escapeFor(c) {
  if (shortEscapes[c]) return shortEscapes[c];
  if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x061c || c === 0x200b || c === 0x200e || c === 0x200f ||
    (c >= 0x2028 && c <= 0x202e) || (c >= 0x2060 && c <= 0x2069) || c === 0xfeff) {
    return '\\u' + c.toString(16).toUpperCase().padStart(4, '0');
  }
  return '';
}

// visible returns a fragment that shows s as text, each special character
// as a marked escape (class "ctl", titled with its code point).
export function visible(s) {
  const frag = document.createDocumentFragment();
  const str = String(s ?? '');
  let plain = '';
  for (let i = 0; i < str.length; i++) {
    const c = str.charCodeAt(i);
    const esc = escapeFor(c);
    if (!esc) {
      plain += str[i];
      continue;
    }
    if (plain) frag.append(plain);
    plain = '';
    frag.append(h('span', { class: 'ctl', title: 'U+' + c.toString(16).toUpperCase().padStart(4, '0') }, esc));
  }
  if (plain) frag.append(plain);
  return frag;
}

// visibleString is visible as plain text, for attributes and messages.
export function visibleString(s) {
  let out = '';
  const str = String(s ?? '');
  for (let i = 0; i < str.length; i++) out += escapeFor(str.charCodeAt(i)) || str[i];
  return out;
}

// data returns a <bdi> holding s shown visibly: the one way log data
// enters the page.
export function data(s, cls) {
  return h('bdi', { class: cls }, visible(s));
}

// announce tells screen readers about a change.
export function announce(message) {
  const live = document.getElementById('live');
  live.textContent = '';
  setTimeout(() => { live.textContent = message; }, 50);
}

// plural returns "1 event", "3 events", "1,234 events".
export function plural(n, word) {
  return `${Number(n).toLocaleString('en-US')} ${word}${n === 1 ? '' : 's'}`;
}

// utc formats a time as "2026-03-09 14:02:11" (UTC).
export function utc(t) {
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return d.toISOString().slice(0, 19).replace('T', ' ');
}

// displayWords are the words of event types that people write otherwise
// than capitalized (as in stele.DisplayName).
const displayWords = {
  api: 'API', auditlog: 'Audit Log', ip: 'IP', ioc: 'IOC', pcap: 'PCAP',
  sso: 'SSO', mfa: 'MFA', tls: 'TLS', dns: 'DNS', ssh: 'SSH', url: 'URL',
};

// displayName turns an event type into words, as stele.DisplayName does:
// "incident.opened" → "Incident Opened", "api_key.rotated" → "API Key Rotated".
export function displayName(type) {
  return String(type).split(/[._]/).filter(Boolean)
    .map((w) => (Object.hasOwn(displayWords, w) ? displayWords[w] : w[0].toUpperCase() + w.slice(1)))
    .join(' ');
}

// actorLabel is the actor as the table shows it: the name if present,
// else the id.
export function actorLabel(actor) {
  return actor?.name || actor?.id || '';
}

// placeLabel is "node · resource id", or whichever of them exists.
export function placeLabel(e) {
  return [e.node, e.resource?.id].filter(Boolean).join(' · ');
}

// confirmDialog asks a yes/no question in a modal dialog; it resolves to
// true when the person confirms.
// extra, when given, is a node shown under the message (a choice).
export function confirmDialog({ title, message, confirm, danger = false, extra = null }) {
  return new Promise((resolve) => {
    const cancelBtn = h('button', { type: 'button', class: 'btn' }, 'Cancel');
    const okBtn = h('button', { type: 'submit', class: danger ? 'btn btn-danger' : 'btn btn-primary' }, confirm);
    const titleId = 'dlg-' + Math.random().toString(36).slice(2);
    const dlg = h('dialog', { class: 'dialog', 'aria-labelledby': titleId },
      h('form', { method: 'dialog' },
        h('h2', { id: titleId }, title),
        h('p', {}, message),
        extra,
        h('div', { class: 'dialog-actions' }, cancelBtn, okBtn)));
    let answer = false;
    okBtn.addEventListener('click', () => { answer = true; });
    cancelBtn.addEventListener('click', () => dlg.close());
    dlg.addEventListener('close', () => {
      dlg.remove();
      resolve(answer);
    });
    document.body.append(dlg);
    dlg.showModal();
    cancelBtn.focus();
  });
}
