// The dashboard's client of the JSON API: same-origin requests with the
// session cookie, the CSRF token on every change, and the API's errors
// turned into ApiError with a message fit to show.

let csrfToken = '';
let onSignedOut = null;

// setSession installs the CSRF token of the session, and what to do when
// the server says the session is over.
export function setSession(token, signedOut) {
  csrfToken = token;
  onSignedOut = signedOut;
}

export class ApiError extends Error {
  constructor(status, code, message, field, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || '';
    this.retryAfter = retryAfter || 0;
  }
}

// request sends method path (with a JSON body when given) and resolves to
// the parsed JSON answer, or the text for text/plain answers.
export async function request(method, path, body) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store', redirect: 'error' };
  if (method !== 'GET') {
    headers['X-CSRF-Token'] = csrfToken;
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', 'The server could not be reached. Check the connection and try again.');
  }
  const type = res.headers.get('Content-Type') || '';
  const payload = type.startsWith('application/json') ? await res.json().catch(() => null) : await res.text();
  if (res.ok) return payload;
  const detail = payload && payload.error ? payload.error : {};
  const err = new ApiError(res.status, detail.code || 'http', detail.message || `The server answered ${res.status}.`,
    detail.field, Number(res.headers.get('Retry-After')) || 0);
  if (res.status === 401 && onSignedOut && !path.startsWith('/v1/auth/')) onSignedOut();
  throw err;
}

export const get = (path) => request('GET', path);
export const post = (path, body) => request('POST', path, body);
export const patch = (path, body) => request('PATCH', path, body);
export const del = (path) => request('DELETE', path);

// describe returns a sentence about err for people.
export function describe(err) {
  if (!(err instanceof ApiError)) return `Something went wrong: ${err.message}`;
  let m = err.message;
  if (err.field && !m.toLowerCase().startsWith(err.field)) m = `${err.field}: ${m}`;
  if (err.status === 429 && err.retryAfter) m += ` (retry in ${err.retryAfter} s)`;
  if (err.status === 503) m += ' The service is busy or cannot record the access right now; try again shortly.';
  return m;
}
