// The dashboard's entry point: the session, sign-in and sign-out, the top
// bar, and which page to draw for the URL.

import { ApiError, describe, get, post, setSession } from './api.js';
import { brandMark, confirmDialog, h, replace } from './dom.js';
import { pinLogKey, repin } from './pin.js';
import { logPage } from './log.js';
import { keysPage, settingsPage, usersPage } from './admin.js';

const main = document.getElementById('main');
const topbar = document.getElementById('topbar');
const banner = document.getElementById('key-banner');

// session is the signed-in user's session (GET /v1/auth/session), with the
// pinned log key; null when signed out.
let session = null;
// page is the drawn page, whose leave() is called before the next.
let page = null;

const routes = {
  '/': { title: 'Audit log', draw: logPage },
  '/admin/keys': { title: 'API keys', draw: keysPage, admin: true },
  '/admin/users': { title: 'Users', draw: usersPage, admin: true },
  '/admin/settings': { title: 'Workspace settings', draw: settingsPage },
};

function isAdmin() {
  return session && (session.user.role === 'owner' || session.user.role === 'admin');
}

async function start() {
  window.addEventListener('popstate', () => route());
  document.addEventListener('click', followLink);
  try {
    begin(await get('/v1/auth/session'));
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      signedOut('');
      return;
    }
    replace(main, h('div', { class: 'state state-error', role: 'alert' },
      h('h1', {}, 'The dashboard could not start'), h('p', {}, describe(e)),
      h('button', { type: 'button', class: 'btn', onclick: () => location.reload() }, 'Try again')));
  }
}

// begin starts a signed-in session.
function begin(s) {
  session = s;
  setSession(s.csrf_token, () => signedOut('Your session has ended. Sign in again to continue.'));
  session.pin = pinLogKey(s.origin, s.log_key);
  showKeyBanner();
  drawTopbar();
  route();
}

// followLink turns clicks on the dashboard's own links into page changes
// without a reload.
function followLink(ev) {
  const a = ev.target.closest('a[data-nav]');
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  ev.preventDefault();
  navigate(a.getAttribute('href'));
}

// navigate shows url (a path with its query) as a new history entry.
export function navigate(url) {
  history.pushState(null, '', url);
  route();
}

function route() {
  if (!session) return;
  if (page && page.leave) page.leave();
  page = null;
  const r = routes[location.pathname];
  for (const a of topbar.querySelectorAll('nav a')) {
    if (a.getAttribute('href') === location.pathname) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!r) {
    document.title = 'Not found · Stele';
    replace(main, h('div', { class: 'state' }, h('h1', {}, 'Page not found'),
      h('p', {}, h('a', { href: '/', 'data-nav': true }, 'Go to the audit log'))));
    return;
  }
  document.title = `${r.title} · Stele`;
  if (r.admin && !isAdmin()) {
    replace(main, h('div', { class: 'state' }, h('h1', {}, r.title),
      h('p', {}, `Your role (${session.user.role}) cannot manage this. Ask an owner or an admin of the workspace.`)));
    return;
  }
  page = r.draw(main, { session, navigate, isAdmin: isAdmin() }) || null;
}

function drawTopbar() {
  const links = [['/', 'Audit log']];
  if (isAdmin()) links.push(['/admin/keys', 'API keys'], ['/admin/users', 'Users']);
  links.push(['/admin/settings', 'Settings']);
  replace(topbar,
    h('a', { class: 'brand', href: '/', 'data-nav': true }, brandMark(), 'Stele'),
    h('span', { class: 'workspace', title: 'Workspace' }, session.user.workspace),
    h('nav', { 'aria-label': 'Main' }, h('ul', {}, links.map(([href, label]) => h('li', {}, h('a', { href, 'data-nav': true }, label))))),
    h('div', { class: 'account' },
      h('span', { class: 'who' }, h('bdi', {}, session.user.email), h('span', { class: 'role' }, session.user.role)),
      h('button', { type: 'button', class: 'btn btn-quiet', id: 'sign-out', onclick: signOut }, 'Sign out')));
  topbar.hidden = false;
}

// showKeyBanner warns, loudly, when the server presents a log key other
// than the one pinned in this browser.
function showKeyBanner() {
  const pin = session.pin;
  if (pin.state !== 'changed') {
    banner.hidden = true;
    return;
  }
  replace(banner,
    h('strong', {}, 'Warning: the log’s signing key has changed. '),
    `This browser pinned the key of ${session.origin} on ${pin.since.slice(0, 10)}; the server now presents another one. `,
    'Until the change is confirmed, events will not verify. A key change that nobody announced can mean the log was replaced. ',
    h('button', { type: 'button', class: 'btn btn-small', onclick: acceptNewKey }, 'Review the key change'));
  banner.hidden = false;
}

async function acceptNewKey() {
  const ok = await confirmDialog({
    title: 'Trust the new log key?',
    message: `Pinned: ${session.pin.pinned}. Presented now: ${session.log_key}. Trust the new key only if your operator confirms the change through another channel.`,
    confirm: 'Trust the new key',
    danger: true,
  });
  if (!ok) return;
  repin(session.origin, session.log_key);
  session.pin = pinLogKey(session.origin, session.log_key);
  showKeyBanner();
  route();
}

async function signOut() {
  try {
    await post('/v1/auth/logout');
    signedOut('You are signed out.');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) signedOut('You are signed out.');
    else alertBox(describe(e));
  }
}

function alertBox(message) {
  const box = h('div', { class: 'toast', role: 'alert' }, message);
  document.body.append(box);
  setTimeout(() => box.remove(), 6000);
}

// signedOut shows the sign-in form, with a notice when there is one.
function signedOut(notice) {
  if (page && page.leave) page.leave();
  page = null;
  session = null;
  setSession('', null);
  topbar.hidden = true;
  banner.hidden = true;
  document.title = 'Sign in · Stele';
  replace(main, loginForm(notice));
  main.querySelector('#login-email').focus();
}

function loginForm(notice) {
  const error = h('p', { class: 'form-error', id: 'login-error', role: 'alert' });
  const email = h('input', { id: 'login-email', name: 'email', type: 'email', autocomplete: 'username', required: true, 'aria-describedby': 'login-error' });
  const password = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true, 'aria-describedby': 'login-error' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-wide', id: 'login-submit' }, 'Sign in');
  const form = h('form', { class: 'login-card', id: 'login-form', novalidate: true },
    h('div', { class: 'login-brand' }, brandMark(), 'Stele'),
    h('h1', {}, 'Sign in to the audit log'),
    notice ? h('p', { class: 'notice', role: 'status' }, notice) : null,
    h('div', { class: 'field' }, h('label', { for: 'login-email' }, 'Email'), email),
    h('div', { class: 'field' }, h('label', { for: 'login-password' }, 'Password'), password),
    error, submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    if (!email.value.trim() || !password.value) {
      error.textContent = 'Enter your email and your password.';
      (email.value.trim() ? password : email).focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    try {
      const s = await post('/v1/auth/login', { email: email.value.trim(), password: password.value });
      begin(s);
    } catch (e) {
      submit.disabled = false;
      submit.textContent = 'Sign in';
      if (e instanceof ApiError && e.status === 401) error.textContent = 'Wrong email or password.';
      else if (e instanceof ApiError && e.status === 429) error.textContent = `Too many sign-in attempts. Try again in ${e.retryAfter || 60} seconds.`;
      else error.textContent = describe(e);
      password.value = '';
      password.focus();
    }
  });
  return h('div', { class: 'login-page' }, form);
}

start();
