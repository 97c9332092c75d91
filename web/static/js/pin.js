// The log key pinned in this browser on first use (TOFU), per log origin.
// Verification trusts only the pinned key: if the server later presents
// another one, the dashboard says so loudly and checkpoints signed by the
// new key fail to verify until a person accepts it.

const prefix = 'stele.pinned-log-key:';

// pinLogKey compares the key the server presents for origin with the
// pinned one, pinning it when none is. It returns {state, pinned, since}:
// state is "first-use", "match" or "changed"; pinned is the key to verify
// with.
export function pinLogKey(origin, presented) {
  const name = prefix + origin;
  let saved = null;
  try {
    saved = JSON.parse(localStorage.getItem(name) || 'null');
  } catch {
    saved = null;
  }
  if (!saved || typeof saved.key !== 'string') {
    const entry = { key: presented, since: new Date().toISOString() };
    try {
      localStorage.setItem(name, JSON.stringify(entry));
    } catch {
      // Storage refused (private mode): verify with the presented key for
      // this page only.
    }
    return { state: 'first-use', pinned: presented, since: entry.since };
  }
  return { state: saved.key === presented ? 'match' : 'changed', pinned: saved.key, since: saved.since };
}

// repin replaces the pinned key of origin with key, after a person has
// confirmed the change.
export function repin(origin, key) {
  localStorage.setItem(prefix + origin, JSON.stringify({ key, since: new Date().toISOString() }));
}
