// The workspace's administration: API keys (create, rotate, revoke; a
// secret is shown once), users (add, change role, disable), and the
// workspace's settings as they exist (its log origin and key).

import { describe, del, get, patch, post } from './api.js';
import { announce, confirmDialog, data, h, replace, utc } from './dom.js';

const SCOPES = [
  ['events:write', 'Append events'],
  ['events:read', 'Read, search and export events'],
  ['admin', 'Manage keys and users'],
];
const GRACES = [['0', 'Stops working now'], ['3600', 'Works for 1 more hour'], ['86400', 'Works for 24 more hours'], ['604800', 'Works for 7 more days']];

function field(id, label, input, hint) {
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hint ? h('span', { class: 'hint' }, hint) : null);
}

// secretPanel shows a secret once, with a copy button.
function secretPanel(container, title, secret, note) {
  const value = h('input', { id: 'secret-value', class: 'mono', type: 'text', readonly: true, value: secret, 'aria-label': title, spellcheck: 'false' });
  const copied = h('span', { class: 'muted', role: 'status' });
  const copy = h('button', {
    type: 'button', class: 'btn', onclick: async () => {
      value.select();
      try {
        await navigator.clipboard.writeText(secret);
        copied.textContent = 'Copied.';
      } catch {
        copied.textContent = 'Press Ctrl+C to copy the selected text.';
      }
    },
  }, 'Copy');
  const done = h('button', { type: 'button', class: 'btn btn-quiet', onclick: () => replace(container) }, 'Done');
  replace(container, h('div', { class: 'secret', id: 'secret-panel', role: 'region', 'aria-label': title },
    h('h2', {}, title), h('p', {}, note), h('div', { class: 'secret-row' }, value, copy, done), copied));
  value.focus();
  value.select();
}

function errorLine(id) {
  return h('p', { class: 'form-error', id, role: 'alert' });
}

function when(t) {
  return t ? utc(t) : '—';
}

// keysPage lists the workspace's API keys.
export function keysPage(main) {
  const error = errorLine('keys-error');
  const secret = h('div', { 'aria-live': 'polite' });
  const tbody = h('tbody', { id: 'keys-body' });
  const name = h('input', { id: 'key-name', type: 'text', required: true, maxlength: 100, autocomplete: 'off', placeholder: 'ingest-nyc-edge' });
  const expires = h('input', { id: 'key-expires', type: 'date' });
  const scopes = SCOPES.map(([scope, label]) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', name: 'scope', value: scope, checked: scope === 'events:write' }), h('code', {}, scope), ' ', label));
  const form = h('form', { class: 'card form-grid', id: 'key-form' },
    h('h2', {}, 'Create a key'),
    field('key-name', 'Name', name),
    h('fieldset', { class: 'field' }, h('legend', {}, 'Scopes'), scopes),
    field('key-expires', 'Expires (UTC, optional)', expires, 'The key stops working at the end of this day.'),
    h('div', {}, h('button', { type: 'submit', class: 'btn btn-primary', id: 'key-create' }, 'Create key')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    const chosen = [...form.querySelectorAll('input[name=scope]:checked')].map((i) => i.value);
    if (!name.value.trim()) {
      error.textContent = 'Give the key a name.';
      name.focus();
      return;
    }
    if (chosen.length === 0) {
      error.textContent = 'Choose at least one scope.';
      return;
    }
    const body = { name: name.value.trim(), scopes: chosen };
    if (expires.value) body.expires_at = expires.value + 'T23:59:59Z';
    try {
      const k = await post('/v1/keys', body);
      form.reset();
      secretPanel(secret, `Secret of the new key “${k.name}”`, k.key, 'Copy it now: it is shown only once. Stele stores only its hash.');
      await refresh();
    } catch (e) {
      error.textContent = describe(e);
    }
  });

  async function refresh() {
    try {
      const { keys } = await get('/v1/keys');
      replace(tbody, keys.length ? keys.map(row) : h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No keys yet.')));
    } catch (e) {
      replace(tbody, h('tr', {}, h('td', { colspan: 6 }, h('span', { role: 'alert' }, describe(e)))));
    }
  }

  function status(k) {
    if (k.revoked_at) return h('span', { class: 'badge badge-fail' }, `Revoked ${utc(k.revoked_at).slice(0, 10)}`);
    if (k.expires_at && new Date(k.expires_at) <= new Date()) return h('span', { class: 'badge badge-fail' }, 'Expired');
    return h('span', { class: 'badge badge-ok' }, 'Active');
  }

  function row(k) {
    const actions = k.revoked_at ? null : [
      h('button', { type: 'button', class: 'btn btn-small', dataset: { action: 'rotate' }, onclick: () => rotate(k) }, 'Rotate'),
      h('button', { type: 'button', class: 'btn btn-small btn-danger', dataset: { action: 'revoke' }, onclick: () => revoke(k) }, 'Revoke'),
    ];
    return h('tr', { dataset: { id: k.id } },
      h('td', {}, data(k.name, 'strong')),
      h('td', {}, data(k.prefix, 'mono')),
      h('td', {}, k.scopes.map((s) => h('code', { class: 'scope' }, s))),
      h('td', {}, when(k.created_at), k.expires_at ? h('div', { class: 'muted' }, `expires ${when(k.expires_at)}`) : null),
      h('td', {}, when(k.last_used_at)),
      h('td', {}, status(k)),
      h('td', { class: 'row-actions' }, actions));
  }

  async function rotate(k) {
    const grace = h('select', { id: 'rotate-grace' }, GRACES.map(([v, label]) => h('option', { value: v }, label)));
    const ok = await confirmDialog({
      title: `Rotate the key “${k.name}”?`,
      message: 'A new secret replaces the current one. Emitters must switch to the new secret.',
      extra: field('rotate-grace', 'The current secret', grace),
      confirm: 'Rotate key',
    });
    if (!ok) return;
    try {
      const r = await post(`/v1/keys/${encodeURIComponent(k.id)}/rotate`, { grace_seconds: Number(grace.value) });
      secretPanel(secret, `New secret of the key “${r.name}”`, r.key, 'Copy it now: it is shown only once.');
      await refresh();
    } catch (e) {
      error.textContent = describe(e);
    }
  }

  async function revoke(k) {
    const ok = await confirmDialog({
      title: `Revoke the key “${k.name}”?`,
      message: 'It stops working immediately and cannot be restored. The revocation is recorded in the audit log.',
      confirm: 'Revoke key',
      danger: true,
    });
    if (!ok) return;
    try {
      await del(`/v1/keys/${encodeURIComponent(k.id)}`);
      announce(`The key ${k.name} is revoked.`);
      await refresh();
    } catch (e) {
      error.textContent = describe(e);
    }
  }

  replace(main,
    h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, 'API keys'),
      h('p', { class: 'lede' }, 'Keys let emitters append events and tools read the log. Every change to a key is recorded in the audit log.'))),
    secret, form, error,
    h('div', { class: 'table-wrap' }, h('table', { class: 'admin', id: 'keys' },
      h('caption', { class: 'visually-hidden' }, 'API keys of the workspace'),
      h('thead', {}, h('tr', {}, ['Name', 'Key prefix', 'Scopes', 'Created (UTC)', 'Last used (UTC)', 'Status', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
      tbody)));
  refresh();
  return null;
}

// usersPage lists the workspace's users.
export function usersPage(main, { session }) {
  const me = session.user;
  const owner = me.role === 'owner';
  const error = errorLine('users-error');
  const secret = h('div', { 'aria-live': 'polite' });
  const tbody = h('tbody', { id: 'users-body' });
  const roles = owner ? ['viewer', 'admin', 'owner'] : ['viewer', 'admin'];
  const email = h('input', { id: 'user-email', type: 'email', required: true, autocomplete: 'off' });
  const name = h('input', { id: 'user-name', type: 'text', autocomplete: 'off', maxlength: 200 });
  const role = h('select', { id: 'user-role' }, roles.map((r) => h('option', { value: r }, r)));
  const password = h('input', { id: 'user-password', type: 'password', autocomplete: 'new-password', minlength: 12 });
  const form = h('form', { class: 'card form-grid', id: 'user-form' },
    h('h2', {}, 'Add a user'),
    field('user-email', 'Email', email), field('user-name', 'Name (optional)', name), field('user-role', 'Role', role),
    field('user-password', 'Password (optional)', password, 'Leave empty to generate one, shown once.'),
    h('div', {}, h('button', { type: 'submit', class: 'btn btn-primary', id: 'user-create' }, 'Add user')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    const body = { email: email.value.trim(), name: name.value.trim(), role: role.value };
    if (password.value) body.password = password.value;
    try {
      const u = await post('/v1/users', body);
      form.reset();
      if (u.password) secretPanel(secret, `Password of ${u.email}`, u.password, 'Give it to the user over a safe channel: it is shown only once.');
      else announce(`${u.email} can now sign in.`);
      await refresh();
    } catch (e) {
      error.textContent = describe(e);
      if (e.field === 'email') email.focus();
    }
  });

  async function refresh() {
    try {
      const { users } = await get('/v1/users');
      replace(tbody, users.map(row));
    } catch (e) {
      replace(tbody, h('tr', {}, h('td', { colspan: 5 }, h('span', { role: 'alert' }, describe(e)))));
    }
  }

  function row(u) {
    const self = u.id === me.id;
    const fixed = self || (u.role === 'owner' && !owner);
    const select = h('select', { 'aria-label': `Role of ${u.email}`, disabled: fixed, dataset: { action: 'role' } },
      (roles.includes(u.role) ? roles : [...roles, u.role]).map((r) => h('option', { value: r, selected: r === u.role }, r)));
    select.addEventListener('change', async () => {
      error.textContent = '';
      try {
        await patch(`/v1/users/${encodeURIComponent(u.id)}`, { role: select.value });
        announce(`${u.email} is now ${select.value}.`);
        await refresh();
      } catch (e) {
        select.value = u.role;
        error.textContent = describe(e);
      }
    });
    const toggle = self || fixed ? null : h('button', {
      type: 'button', class: u.disabled ? 'btn btn-small' : 'btn btn-small btn-danger', dataset: { action: u.disabled ? 'enable' : 'disable' },
      onclick: () => setDisabled(u, !u.disabled),
    }, u.disabled ? 'Enable' : 'Disable');
    return h('tr', { dataset: { id: u.id, email: u.email } },
      h('td', {}, data(u.email, 'strong'), self ? h('span', { class: 'muted' }, ' (you)') : null),
      h('td', {}, data(u.name)),
      h('td', {}, select),
      h('td', {}, u.disabled ? h('span', { class: 'badge badge-fail' }, 'Disabled') : h('span', { class: 'badge badge-ok' }, 'Active')),
      h('td', {}, when(u.created_at)),
      h('td', { class: 'row-actions' }, toggle));
  }

  async function setDisabled(u, disabled) {
    if (disabled) {
      const ok = await confirmDialog({
        title: `Disable ${u.email}?`,
        message: 'They are signed out at once and cannot sign in until enabled again.',
        confirm: 'Disable user',
        danger: true,
      });
      if (!ok) return;
    }
    try {
      await patch(`/v1/users/${encodeURIComponent(u.id)}`, { disabled });
      announce(`${u.email} is ${disabled ? 'disabled' : 'enabled'}.`);
      await refresh();
    } catch (e) {
      error.textContent = describe(e);
    }
  }

  replace(main,
    h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, 'Users'),
      h('p', { class: 'lede' }, 'Owners manage everything, admins manage keys and users, viewers read the log.'))),
    secret, form, error,
    h('div', { class: 'table-wrap' }, h('table', { class: 'admin', id: 'users' },
      h('caption', { class: 'visually-hidden' }, 'Users of the workspace'),
      h('thead', {}, h('tr', {}, ['Email', 'Name', 'Role', 'Status', 'Created (UTC)', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
      tbody)));
  refresh();
  return null;
}

// settingsPage shows the workspace's settings as they exist.
export function settingsPage(main, { session }) {
  const pin = session.pin;
  const pinState = {
    'first-use': 'Pinned in this browser just now (first use).',
    match: `Pinned in this browser since ${utc(pin.since)} UTC; the server presents the same key.`,
    changed: `CHANGED: this browser pinned another key on ${utc(pin.since)} UTC. Events do not verify until the change is confirmed.`,
  }[pin.state];
  replace(main,
    h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, 'Workspace settings'))),
    h('section', { class: 'card' },
      h('h2', {}, 'Workspace'),
      h('dl', { class: 'fields' },
        h('dt', {}, 'Workspace'), h('dd', {}, data(session.user.workspace, 'mono')),
        h('dt', {}, 'Log origin'), h('dd', {}, data(session.origin, 'mono'),
          h('div', { class: 'muted' }, 'The name on every checkpoint of this workspace’s log.')),
        h('dt', {}, 'Log key'), h('dd', {}, h('span', { class: 'mono hash', id: 'log-key' }, session.log_key),
          h('div', { class: 'muted' }, 'Auditors verify checkpoints and exports with this public key: stele verify --key <this key> FILE. Compare it with the key your operator published.')),
        h('dt', {}, 'In this browser'), h('dd', { id: 'pin-state', class: pin.state === 'changed' ? 'danger' : '' }, pinState))),
    h('section', { class: 'card' },
      h('h2', {}, 'Your session'),
      h('dl', { class: 'fields' },
        h('dt', {}, 'Signed in as'), h('dd', {}, data(session.user.email), ` (${session.user.role})`),
        h('dt', {}, 'Session ends'), h('dd', {}, `${utc(session.expires_at)} UTC`))));
  return null;
}
