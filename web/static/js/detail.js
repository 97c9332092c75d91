// The event detail: a modal drawer with every field of the event, its
// context pretty-printed, its place in the log, and its verification done
// here in the browser (verify.js) against the pinned log key.

import { describe, get } from './api.js';
import { actorLabel, data, displayName, h, replace, utc, visible } from './dom.js';
import { verifyEvent } from './verify.js';

const STEPS = [
  ['leaf', 'Leaf hash recomputed from the event (RFC 8785 canonical JSON, SHA-256)'],
  ['key', 'Log key pinned in this browser names this log'],
  ['signature', 'Checkpoint signed by the pinned key (Ed25519)'],
  ['checkpoint', 'Checkpoint matches this log and the proof'],
  ['proof', 'Inclusion proof leads from the leaf to the signed root'],
];

export class Detail {
  // onActor(id) shows the events of an actor.
  constructor(session, onActor) {
    this.session = session;
    this.onActor = onActor;
    this.dialog = null;
    this.opener = null;
    this.loading = 0;
  }

  isOpen() {
    return !!(this.dialog && this.dialog.open);
  }

  // open shows the event with id; focus returns to opener on close.
  async open(id, opener) {
    this.close();
    this.opener = opener;
    const gen = ++this.loading;
    this.body = h('div', { class: 'drawer-body', id: 'detail-body' }, h('p', { class: 'muted' }, 'Loading the event…'));
    this.title = h('h2', { id: 'detail-title', tabindex: '-1' }, 'Event');
    const close = h('button', { type: 'button', class: 'btn btn-quiet', id: 'detail-close', onclick: () => this.close() }, 'Close');
    this.dialog = h('dialog', { class: 'drawer', id: 'detail', 'aria-labelledby': 'detail-title' },
      h('div', { class: 'drawer-head' }, this.title, close), this.body);
    this.dialog.addEventListener('close', () => this.closed());
    this.dialog.addEventListener('click', (ev) => {
      if (ev.target === this.dialog) this.close(); // the backdrop
    });
    document.body.append(this.dialog);
    this.dialog.showModal();
    this.title.focus();
    history.replaceState(null, '', location.pathname + location.search + '#event=' + encodeURIComponent(id));
    try {
      const resp = await get('/v1/events/' + encodeURIComponent(id));
      if (gen !== this.loading) return;
      this.show(resp);
    } catch (e) {
      if (gen !== this.loading) return;
      replace(this.body, h('div', { class: 'state-error', role: 'alert' },
        e.status === 404 ? 'There is no event with this id in this workspace.' : describe(e)));
    }
  }

  close() {
    if (this.dialog && this.dialog.open) this.dialog.close();
  }

  closed() {
    this.loading++;
    this.dialog.remove();
    this.dialog = null;
    if (location.hash) history.replaceState(null, '', location.pathname + location.search);
    if (this.opener && this.opener.isConnected) this.opener.focus();
  }

  show(resp) {
    const e = resp.event;
    replace(this.title, displayName(e.type));
    this.status = h('div', { class: 'verify', id: 'verify-status', role: 'status' });
    const actor = e.actor || {};
    const res = e.resource;
    replace(this.body,
      h('section', { 'aria-label': 'Verification' }, this.status),
      h('section', {},
        h('h3', {}, 'Event'),
        dl([
          ['Time (UTC)', h('time', { datetime: e.time }, e.time)],
          ['Type', [h('code', {}, e.type), ' · category ', data(e.category)]],
          ['Outcome', h('span', { class: e.outcome === 'failure' ? 'badge badge-fail' : 'badge badge-ok' }, e.outcome)],
          ['Actor', [data(actorLabel(actor), 'strong'), actor.name && actor.name !== actor.id ? [' · id ', data(actor.id, 'mono')] : null, ' · ', data(actor.type)]],
          ['Node', e.node ? data(e.node) : none()],
          ['Resource', res ? [data(res.type), ' ', data(res.id, 'mono'), res.name ? [' · ', data(res.name)] : null] : none()],
          ['IP', e.ip ? data(e.ip, 'mono') : none()],
          ['Event id', data(e.id, 'mono')],
          ['Received (UTC)', h('time', { datetime: e.received_at }, e.received_at)],
        ]),
        h('p', {}, h('button', { type: 'button', class: 'btn btn-small', id: 'detail-actor-filter', onclick: () => this.onActor(actor.id) }, 'Show all events of this actor'))),
      h('section', {},
        h('h3', {}, 'Context'),
        e.context === undefined ? h('p', { class: 'muted' }, 'This event has no context.') : h('pre', { class: 'json', id: 'detail-context' }, prettyJSON(e.context))),
      h('section', {},
        h('h3', {}, 'Place in the log'),
        dl([
          ['Seq', h('span', { class: 'mono', id: 'detail-seq' }, String(e.seq))],
          ['Leaf hash', h('span', { class: 'mono hash', id: 'detail-leaf' }, e.leaf_hash)],
          ['Emitter', [data(e.emitter?.workspace), e.emitter?.key_id ? [' · key ', data(e.emitter.key_id, 'mono')] : ' · the service itself',
            e.emitter?.ip ? [' · from ', data(e.emitter.ip, 'mono')] : null]],
        ])),
      resp.checkpoint ? h('details', { class: 'raw' },
        h('summary', {}, 'Checkpoint and inclusion proof'),
        h('pre', { class: 'json' }, visibleLines(resp.checkpoint)),
        h('pre', { class: 'json' }, prettyJSON(resp.proof))) : null);
    this.verify(resp);
  }

  async verify(resp) {
    const gen = this.loading;
    replace(this.status, h('p', { class: 'verify-title' }, 'Verifying in this browser…'));
    this.status.className = 'verify verify-running';
    const report = await verifyEvent(resp, { origin: this.session.origin, pinnedKey: this.session.pin.pinned });
    if (gen !== this.loading) return;
    this.status.className = 'verify verify-' + report.status;
    const again = h('button', { type: 'button', class: 'btn btn-small', id: 'verify-again', onclick: () => this.recheck(resp.event.id) }, 'Check again');
    const title = { verified: report.message, pending: 'Pending: not yet covered by a checkpoint', failed: 'Verification failed' }[report.status];
    const steps = h('ol', { class: 'steps' }, STEPS.map(([step, label]) => {
      let mark = 'todo';
      if (report.passed.includes(step)) mark = 'ok';
      else if (report.status === 'failed' && report.step === step) mark = 'fail';
      const sign = { ok: '✓', fail: '✗', todo: '–' }[mark];
      return h('li', { class: 'step step-' + mark, dataset: { step } }, h('span', { class: 'mark', 'aria-hidden': 'true' }, sign),
        h('span', { class: 'visually-hidden' }, { ok: 'passed: ', fail: 'failed: ', todo: 'not checked: ' }[mark]), label);
    }));
    let detail = null;
    if (report.status === 'verified') {
      detail = h('p', {}, `The event is entry ${resp.event.seq} of the log ${this.session.origin}, whose checkpoint of ${report.checkpointSize} events `,
        report.signedAt ? `was signed at ${utc(report.signedAt)} UTC ` : '', 'by the key pinned in this browser.');
    } else if (report.status === 'pending') {
      detail = h('p', {}, 'pending: not yet covered by a checkpoint. The log signs a new checkpoint within seconds; check again shortly.');
    } else {
      detail = h('p', { class: 'verify-failure', id: 'verify-failure' }, h('strong', {}, `Step “${report.step}” failed: `), report.message);
    }
    replace(this.status, h('p', { class: 'verify-title', id: 'verify-title' }, title), detail, steps,
      report.status === 'verified' ? null : again);
  }

  async recheck(id) {
    try {
      const resp = await get('/v1/events/' + encodeURIComponent(id));
      this.verify(resp);
    } catch (e) {
      replace(this.status, h('p', { role: 'alert' }, describe(e)));
    }
  }
}

function dl(rows) {
  return h('dl', { class: 'fields' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function none() {
  return h('span', { class: 'muted' }, '—');
}

// prettyJSON shows a value as indented JSON; JSON.stringify escapes the
// control characters inside strings, and visible() the bidi and invisible
// ones it leaves.
function prettyJSON(v) {
  return visibleLines(JSON.stringify(v, null, 2));
}

function visibleLines(text) {
  const frag = document.createDocumentFragment();
  text.split('\n').forEach((line, i) => {
    if (i > 0) frag.append('\n');
    frag.append(visible(line));
  });
  return frag;
}
