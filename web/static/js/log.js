// The audit log page: filters kept in the URL under the API's parameter
// names, the count of matching events, the events-over-time chart, the
// table (newest first, more rows by cursor), exports of exactly what the
// filters select, and the event detail.

import { describe, get } from './api.js';
import { Chart, chooseInterval } from './chart.js';
import { actorLabel, announce, data, displayName, h, placeLabel, plural, replace, utc } from './dom.js';
import { Detail } from './detail.js';

// FILTER_PARAMS are the API's filter parameters that a page URL may carry.
export const FILTER_PARAMS = ['actor', 'type', 'category', 'node', 'resource', 'ip', 'outcome', 'since', 'until', 'q', 'order'];
// Parameters without a field of their own in the filter form.
const EXTRA_PARAMS = ['resource', 'ip', 'outcome', 'order'];
const PAGE_SIZE = 50;
const PRESETS = [['', 'Any time'], ['1h', 'Last hour'], ['24h', 'Last 24 hours'], ['7d', 'Last 7 days'], ['30d', 'Last 30 days']];
const MAX_CHART_SPAN_MS = 3653 * 86400e3;
const UNIT_MS = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3 };

// filtersFrom returns the filter parameters of a URL query, in a fixed
// order; other parameters are dropped.
export function filtersFrom(search) {
  const src = new URLSearchParams(search);
  const out = new URLSearchParams();
  for (const name of FILTER_PARAMS) {
    const v = src.get(name);
    if (v) out.set(name, v);
  }
  return out;
}

// relativeMs reads "15m", "24h", "7d" as milliseconds; null otherwise.
function relativeMs(v) {
  const m = /^(\d+)([smhdw])$/.exec(v || '');
  return m ? Number(m[1]) * UNIT_MS[m[2]] : null;
}

// timeParam turns a since/until parameter into a Date (relative to now).
function timeParam(v, now) {
  const rel = relativeMs(v);
  return rel !== null ? new Date(now - rel) : new Date(v);
}

let catalogPromise = null;
function catalog() {
  catalogPromise ||= fetch('/ui/catalog.json', { credentials: 'same-origin' }).then((r) => r.json()).catch(() => ({ categories: [] }));
  return catalogPromise;
}

// logPage draws the page into main and returns it.
export function logPage(main, ctx) {
  return new LogPage(main, ctx);
}

class LogPage {
  constructor(main, ctx) {
    this.ctx = ctx;
    this.params = filtersFrom(location.search);
    this.generation = 0;
    this.rows = [];
    this.next = '';
    this.total = null;
    this.detail = new Detail(ctx.session, (actor) => this.applyParams(new URLSearchParams({ actor })));
    this.chart = new Chart((since, until) => {
      const p = new URLSearchParams(this.params);
      p.set('since', since.toISOString().replace('.000Z', 'Z'));
      p.set('until', until.toISOString().replace('.000Z', 'Z'));
      this.applyParams(p);
    });
    this.onKey = (ev) => this.shortcut(ev);
    document.addEventListener('keydown', this.onKey);
    this.draw(main);
    this.fillForm();
    this.load();
    const m = /^#event=(.+)$/.exec(location.hash);
    if (m) this.detail.open(decodeURIComponent(m[1]), null);
  }

  leave() {
    this.generation++;
    document.removeEventListener('keydown', this.onKey);
    this.chart.leave();
    this.detail.close();
  }

  draw(main) {
    this.count = h('p', { class: 'count', id: 'event-count', 'aria-live': 'polite' }, '\u00a0');
    this.exportCSV = h('a', { class: 'btn', id: 'export-csv', download: '' }, 'Export CSV');
    this.exportJSON = h('a', { class: 'btn', id: 'export-json', download: '' }, 'Export JSON');
    this.form = this.filterForm();
    this.tbody = h('tbody', { id: 'events-body' });
    this.more = h('button', { type: 'button', class: 'btn', id: 'load-more', hidden: true, onclick: () => this.loadMore() }, `Load ${PAGE_SIZE} more`);
    this.shown = h('p', { class: 'shown', id: 'shown' });
    replace(main,
      h('div', { class: 'page-head' },
        h('div', {}, h('h1', {}, 'Audit log'), this.count),
        h('div', { class: 'actions' }, this.exportCSV, this.exportJSON)),
      this.form,
      this.chart.el,
      h('div', { class: 'table-wrap' },
        h('table', { class: 'events', id: 'events' },
          h('caption', { class: 'visually-hidden' }, 'Audit events matching the filters, newest first. Choose an event to see its details and verification.'),
          h('colgroup', {}, h('col', { class: 'c-time' }), h('col', { class: 'c-event' }), h('col', { class: 'c-actor' }), h('col', { class: 'c-place' }), h('col', { class: 'c-ip' })),
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col' }, 'Timestamp (UTC)'), h('th', { scope: 'col' }, 'Event'), h('th', { scope: 'col' }, 'Actor'),
            h('th', { scope: 'col' }, 'Node / Resource'), h('th', { scope: 'col' }, 'IP'))),
          this.tbody)),
      h('div', { class: 'table-foot' }, this.shown, this.more));
  }

  filterForm() {
    const field = (id, label, input, hint) => h('div', { class: 'field' }, h('label', { for: id }, label), input, hint ? h('span', { class: 'hint', id: id + '-hint' }, hint) : null);
    this.fActor = h('input', { id: 'f-actor', name: 'actor', type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder: 'alice@acme.com', 'aria-describedby': 'f-actor-hint' });
    this.fType = h('select', { id: 'f-type', name: 'type' }, h('option', { value: '' }, 'Any event'));
    this.fNode = h('input', { id: 'f-node', name: 'node', type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder: 'nyc-edge-01' });
    this.fRange = h('select', { id: 'f-range', name: 'range' }, PRESETS.map(([v, label]) => h('option', { value: v }, label)), h('option', { value: 'custom' }, 'Custom range…'));
    this.fSince = h('input', { id: 'f-since', type: 'datetime-local', step: '1' });
    this.fUntil = h('input', { id: 'f-until', type: 'datetime-local', step: '1' });
    this.fQ = h('input', { id: 'f-q', name: 'q', type: 'search', autocomplete: 'off', placeholder: 'Words in actor, node, resource, context', 'aria-keyshortcuts': '/' });
    this.custom = h('div', { class: 'custom-range', id: 'custom-range', hidden: true },
      field('f-since', 'From (UTC)', this.fSince), field('f-until', 'To (UTC)', this.fUntil));
    this.chips = h('div', { class: 'chips', id: 'extra-filters' });
    this.formError = h('p', { class: 'form-error', id: 'filter-error', role: 'alert' });
    this.fRange.addEventListener('change', () => {
      this.custom.hidden = this.fRange.value !== 'custom';
      if (this.fRange.value === 'custom') this.fSince.focus();
      else this.submit();
    });
    this.fType.addEventListener('change', () => this.submit());
    const form = h('form', { class: 'filters', id: 'filters', role: 'search', 'aria-label': 'Filter events' },
      h('div', { class: 'filter-row' },
        field('f-actor', 'Actor', this.fActor, 'Exact actor id'),
        field('f-type', 'Event type', this.fType),
        field('f-node', 'Node', this.fNode),
        field('f-range', 'Time range', this.fRange),
        field('f-q', 'Search', this.fQ),
        h('div', { class: 'filter-buttons' },
          h('button', { type: 'submit', class: 'btn btn-primary', id: 'f-apply' }, 'Apply'),
          h('button', { type: 'button', class: 'btn btn-quiet', id: 'f-clear', onclick: () => this.applyParams(new URLSearchParams()) }, 'Clear'))),
      this.custom, this.chips, this.formError);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.submit();
    });
    return form;
  }

  // fillForm shows this.params in the form.
  async fillForm() {
    const p = this.params;
    this.fActor.value = p.get('actor') || '';
    this.fNode.value = p.get('node') || '';
    this.fQ.value = p.get('q') || '';
    await this.fillTypes();
    const since = p.get('since') || '';
    const until = p.get('until') || '';
    const preset = PRESETS.some(([v]) => v === since);
    if (!until && (preset || relativeMs(since) !== null)) {
      if (!preset) this.fRange.insertBefore(h('option', { value: since }, `Last ${since}`), this.fRange.lastChild);
      this.fRange.value = since;
      this.custom.hidden = true;
    } else {
      this.fRange.value = 'custom';
      this.custom.hidden = false;
      this.fSince.value = since ? localInput(timeParam(since, Date.now())) : '';
      this.fUntil.value = until ? localInput(timeParam(until, Date.now())) : '';
    }
    this.drawChips();
  }

  async fillTypes() {
    const { categories } = await catalog();
    const sel = this.fType;
    replace(sel, h('option', { value: '' }, 'Any event'));
    for (const { category, types } of categories) {
      sel.append(h('optgroup', { label: category },
        h('option', { value: 'category:' + category }, `All ${category} events`),
        types.map((t) => h('option', { value: 'type:' + t }, displayName(t)))));
    }
    const p = this.params;
    let want = '';
    if (p.get('type')) want = 'type:' + p.get('type');
    else if (p.get('category')) want = 'category:' + p.get('category');
    if (want && ![...sel.options].some((o) => o.value === want)) {
      const label = want.startsWith('type:') ? p.get('type') : `All ${p.get('category')} events`;
      sel.append(h('optgroup', { label: 'From the URL' }, h('option', { value: want }, label)));
    }
    sel.value = want;
    // A URL with both type and category keeps the category as a chip.
    if (p.get('type') && p.get('category')) this.extraCategory = p.get('category');
  }

  drawChips() {
    const p = this.params;
    const names = EXTRA_PARAMS.filter((n) => p.get(n));
    if (this.extraCategory) names.unshift('category');
    replace(this.chips, names.length ? h('span', { class: 'chips-label' }, 'Also filtered by') : null,
      names.map((n) => h('span', { class: 'chip' }, `${n} = `, data(p.get(n)),
        h('button', {
          type: 'button', class: 'chip-remove', 'aria-label': `Remove the ${n} filter`,
          onclick: () => {
            const q = new URLSearchParams(this.params);
            q.delete(n);
            this.applyParams(q);
          },
        }, '×'))));
  }

  // formParams reads the form into filter parameters, keeping the
  // parameters the form has no field for.
  formParams() {
    const p = new URLSearchParams();
    const set = (name, v) => { if (v) p.set(name, v); };
    set('actor', this.fActor.value.trim());
    const [kind, value] = splitOnce(this.fType.value, ':');
    if (kind === 'type') set('type', value);
    if (kind === 'category' || this.extraCategory) set('category', kind === 'category' ? value : this.extraCategory);
    set('node', this.fNode.value.trim());
    if (this.fRange.value === 'custom') {
      if (this.fSince.value) set('since', utcParam(this.fSince.value));
      if (this.fUntil.value) set('until', utcParam(this.fUntil.value));
    } else {
      set('since', this.fRange.value);
    }
    set('q', this.fQ.value.trim());
    for (const n of EXTRA_PARAMS) set(n, this.params.get(n));
    return filtersFrom(p.toString());
  }

  submit() {
    this.formError.textContent = '';
    const p = this.formParams();
    if (this.fRange.value === 'custom' && p.get('since') && p.get('until') && new Date(p.get('since')) >= new Date(p.get('until'))) {
      this.formError.textContent = 'The end of the time range must be later than its start.';
      this.fUntil.focus();
      return;
    }
    this.applyParams(p);
  }

  // applyParams makes p the page's filters: a new history entry, the
  // form, and the data.
  applyParams(p) {
    const search = filtersFrom(p.toString()).toString();
    history.pushState(null, '', search ? '/?' + search : '/');
    this.params = filtersFrom(search);
    this.extraCategory = '';
    this.detail.close();
    this.fillForm();
    this.load();
  }

  shortcut(ev) {
    const tag = (ev.target.tagName || '').toLowerCase();
    if (ev.key === '/' && !['input', 'select', 'textarea'].includes(tag) && !ev.ctrlKey && !ev.metaKey && !this.detail.isOpen()) {
      ev.preventDefault();
      this.fQ.focus();
    }
  }

  query(extra) {
    const p = new URLSearchParams(this.params);
    for (const [k, v] of Object.entries(extra || {})) p.set(k, v);
    return p.toString();
  }

  async load() {
    const gen = ++this.generation;
    const stale = () => gen !== this.generation;
    this.rows = [];
    this.next = '';
    this.total = null;
    for (const input of this.form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
    for (const [a, format] of [[this.exportCSV, 'csv'], [this.exportJSON, 'json']]) {
      a.href = '/v1/export?' + this.query({ format });
      a.removeAttribute('aria-disabled');
    }
    this.count.textContent = 'Counting…';
    this.count.classList.add('muted');
    this.more.hidden = true;
    this.shown.textContent = '';
    replace(this.tbody, stateRow(h('span', { class: 'muted' }, 'Loading events…')));
    this.chart.loading('Events over time');
    const table = this.tbody.closest('table');
    table.setAttribute('aria-busy', 'true');
    table.dataset.state = 'loading';
    let page;
    try {
      page = await get('/v1/events?' + this.query({ limit: PAGE_SIZE }));
    } catch (e) {
      if (stale()) return;
      this.showError(e);
      return;
    }
    if (stale()) return;
    table.removeAttribute('aria-busy');
    this.rows = page.events;
    this.next = page.next_cursor || '';
    this.drawRows(true);
    await Promise.all([this.loadCount(gen), this.loadChart(gen)]);
    // Tests and tools wait for this: the rows, count and chart are drawn.
    if (!stale()) table.dataset.state = 'ready';
  }

  async loadCount(gen) {
    try {
      const n = this.next ? (await get('/v1/stats/count?' + this.query({ cursor: this.next }))).count : this.rows.length;
      if (gen !== this.generation) return;
      this.total = n;
      this.count.classList.remove('muted');
      this.count.textContent = plural(n, 'event');
      this.drawShown();
      announce(`${plural(n, 'event')} match the filters.`);
    } catch (e) {
      if (gen !== this.generation) return;
      this.count.textContent = 'Count unavailable';
    }
  }

  async loadChart(gen) {
    const now = Date.now();
    const since = this.params.get('since');
    const until = this.params.get('until');
    const end = until ? timeParam(until, now) : new Date(now);
    let start;
    let label;
    const extra = {};
    if (since) {
      start = timeParam(since, now);
      const preset = PRESETS.find(([v]) => v === since);
      label = preset && !until ? preset[1].toLowerCase() : `${utc(start)} to ${until ? utc(end) : 'now'}`;
    } else {
      if (this.rows.length === 0) {
        this.chart.message('Events over time', 'No events to chart.');
        return;
      }
      const oldest = await this.oldestTime();
      if (gen !== this.generation) return;
      if (!oldest) {
        this.chart.message('Events over time', 'No events to chart.');
        return;
      }
      start = new Date(oldest);
      extra.since = oldest;
      label = `since the first matching event`;
    }
    // A day per bar: at most ten years of bars (the API draws 10,000).
    if (end - start > MAX_CHART_SPAN_MS) {
      start = new Date(end - MAX_CHART_SPAN_MS);
      extra.since = start.toISOString();
      label = 'the last ten years';
    }
    const interval = chooseInterval(end - start);
    extra.interval = interval;
    const caption = `Events per ${interval}, ${label} (UTC)`;
    try {
      const hist = await get('/v1/stats/histogram?' + this.query(extra));
      if (gen !== this.generation) return;
      this.chart.show(hist, caption);
    } catch (e) {
      if (gen !== this.generation) return;
      this.chart.message(caption, describe(e), true);
    }
  }

  // oldestTime returns the time of the oldest matching event.
  async oldestTime() {
    const newestFirst = this.params.get('order') !== 'asc';
    if (!this.next) return newestFirst ? this.rows[this.rows.length - 1].time : this.rows[0].time;
    if (!newestFirst) return this.rows[0].time;
    try {
      const r = await get('/v1/events?' + this.query({ order: 'asc', limit: 1 }));
      return r.events[0]?.time || null;
    } catch {
      return null;
    }
  }

  async loadMore() {
    if (!this.next) return;
    const gen = this.generation;
    this.more.disabled = true;
    this.more.textContent = 'Loading…';
    try {
      const page = await get('/v1/events?' + this.query({ limit: PAGE_SIZE, cursor: this.next }));
      if (gen !== this.generation) return;
      const first = this.rows.length;
      this.rows.push(...page.events);
      this.next = page.next_cursor || '';
      this.drawRows(false, first);
      const target = this.tbody.rows[first]?.querySelector('button');
      if (target) target.focus();
    } catch (e) {
      if (gen !== this.generation) return;
      this.shown.textContent = describe(e);
    } finally {
      this.more.disabled = false;
      this.more.textContent = `Load ${PAGE_SIZE} more`;
    }
  }

  drawRows(fresh, from = 0) {
    if (fresh) replace(this.tbody);
    if (this.rows.length === 0) {
      const filtered = [...this.params.keys()].length > 0;
      replace(this.tbody, stateRow(
        h('strong', {}, filtered ? 'No events match these filters.' : 'The log is empty.'), ' ',
        filtered ? h('button', { type: 'button', class: 'btn btn-small', onclick: () => this.applyParams(new URLSearchParams()) }, 'Clear the filters')
          : 'Events appear here as soon as an emitter sends them.'));
    }
    for (const e of this.rows.slice(from)) this.tbody.append(this.row(e));
    this.more.hidden = !this.next;
    this.drawShown();
  }

  drawShown() {
    if (this.rows.length === 0) {
      this.shown.textContent = '';
      return;
    }
    this.shown.textContent = this.total === null ? `Showing ${plural(this.rows.length, 'event')}` :
      `Showing ${this.rows.length.toLocaleString('en-US')} of ${plural(this.total, 'event')}`;
  }

  row(e) {
    const open = h('button', { type: 'button', class: 'link', onclick: () => this.detail.open(e.id, open) }, displayName(e.type));
    const tr = h('tr', { dataset: { id: e.id, type: e.type } },
      h('td', { class: 'c-time' }, h('time', { datetime: e.time }, utc(e.time))),
      h('td', { class: 'c-event' }, open, e.outcome === 'failure' ? h('span', { class: 'badge badge-fail' }, 'failed') : null),
      h('td', { class: 'c-actor' }, data(actorLabel(e.actor))),
      h('td', { class: 'c-place' }, data(placeLabel(e))),
      h('td', { class: 'c-ip' }, data(e.ip || '')));
    tr.addEventListener('click', (ev) => {
      if (ev.target.closest('button, a') || getSelection().toString()) return;
      this.detail.open(e.id, open);
    });
    return tr;
  }

  showError(e) {
    const table = this.tbody.closest('table');
    table.removeAttribute('aria-busy');
    table.dataset.state = 'error';
    // An export of filters the API refuses would download the refusal.
    for (const a of [this.exportCSV, this.exportJSON]) {
      a.removeAttribute('href');
      a.setAttribute('aria-disabled', 'true');
    }
    this.count.textContent = '';
    this.chart.message('Events over time', 'No chart: the events could not be loaded.', false);
    replace(this.tbody, stateRow(h('div', { class: 'state-error', role: 'alert' },
      h('strong', {}, 'The events could not be loaded. '), describe(e), ' ',
      h('button', { type: 'button', class: 'btn btn-small', onclick: () => this.load() }, 'Try again'))));
    const input = { actor: this.fActor, node: this.fNode, q: this.fQ, type: this.fType, category: this.fType, since: this.fRange, until: this.fRange }[e.field];
    if (input) input.setAttribute('aria-invalid', 'true');
  }
}

function stateRow(...children) {
  return h('tr', { class: 'state-row' }, h('td', { colspan: 5 }, ...children));
}

function splitOnce(s, sep) {
  const i = s.indexOf(sep);
  return i < 0 ? [s, ''] : [s.slice(0, i), s.slice(i + 1)];
}

// localInput formats a Date for a datetime-local input showing UTC.
function localInput(d) {
  return Number.isNaN(d.getTime()) ? '' : d.toISOString().slice(0, 19);
}

// utcParam reads a datetime-local value as UTC, for since and until.
function utcParam(v) {
  return (v.length === 16 ? v + ':00' : v.slice(0, 19)) + 'Z';
}
