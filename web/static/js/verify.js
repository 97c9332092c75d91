// Verification of one event in the browser, trusting nothing the server
// says but the log key pinned on first use:
//
//  1. leaf:       the event's body (without seq and leaf_hash) canonicalized
//                 with RFC 8785 (JCS) and hashed as an RFC 6962 leaf,
//                 SHA-256(0x00 ‖ canonical), must equal its leaf_hash;
//  2. key:        the pinned note verifier key must name the log's origin;
//  3. signature:  the checkpoint (a C2SP signed note) must carry a valid
//                 Ed25519 signature by that key;
//  4. checkpoint: its origin, size and root must be well formed and match
//                 the proof;
//  5. proof:      the inclusion proof folded from the recomputed leaf
//                 (RFC 9162 §2.1.3.2) must give the checkpoint's root.
//
// All hashing and signature checks use WebCrypto. This module touches no
// DOM, so tests can call it directly.

const encoder = new TextEncoder();

// Note signature algorithm bytes (C2SP signed-note).
const ALG_ED25519 = 0x01;
const ALG_COSIGNATURE = 0x04;

// VerifyError is a failed verification step.
export class VerifyError extends Error {
  constructor(step, message) {
    super(message);
    this.step = step;
  }
}

// canonicalize returns the RFC 8785 canonical JSON text of a value parsed
// by JSON.parse: object members sorted by the UTF-16 code units of their
// names, numbers in ECMAScript's shortest round-trip form, strings with
// only the escapes RFC 8785 requires.
export function canonicalize(value) {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      return canonicalNumber(value);
    case 'string':
      return canonicalString(value);
    case 'object':
      if (Array.isArray(value)) return '[' + value.map(canonicalize).join(',') + ']';
      return canonicalObject(value);
  }
  throw new VerifyError('leaf', `a value of type ${typeof value} has no JSON form`);
}

function canonicalNumber(n) {
  if (!Number.isFinite(n)) throw new VerifyError('leaf', 'NaN and Infinity have no JSON form');
  // Number.prototype.toString is the serialization RFC 8785 adopts;
  // -0 becomes "0" as it requires.
  return Object.is(n, -0) ? '0' : String(n);
}

function canonicalObject(obj) {
  // Array.prototype.sort without a comparator compares UTF-16 code units.
  const names = Object.keys(obj).sort();
  const members = names.map((name) => canonicalString(name) + ':' + canonicalize(obj[name]));
  return '{' + members.join(',') + '}';
}

const shortEscapes = { 0x08: '\\b', 0x09: '\\t', 0x0a: '\\n', 0x0c: '\\f', 0x0d: '\\r', 0x22: '\\"', 0x5c: '\\\\' };

function canonicalString(s) {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) throw new VerifyError('leaf', 'a string holds a lone surrogate, which RFC 8785 forbids');
      out += s[i] + s[i + 1];
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      throw new VerifyError('leaf', 'a string holds a lone surrogate, which RFC 8785 forbids');
    } else if (shortEscapes[c] !== undefined) {
      out += shortEscapes[c];
    } else if (c < 0x20) {
      out += '\\u' + c.toString(16).padStart(4, '0');
    } else {
      out += s[i];
    }
  }
  return out + '"';
}

// eventBody returns the leaf's part of an exported event: every member but
// seq and leaf_hash.
export function eventBody(event) {
  const body = {};
  for (const [name, v] of Object.entries(event)) {
    if (name !== 'seq' && name !== 'leaf_hash') {
      Object.defineProperty(body, name, { value: v, enumerable: true, configurable: true, writable: true });
    }
  }
  return body;
}

async function sha256(...parts) {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const buf = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    buf.set(p, at);
    at += p.length;
  }
  return new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
}

// leafHash returns the RFC 6962 leaf hash of canonical JSON text.
export function leafHash(canonical) {
  return sha256(Uint8Array.of(0), encoder.encode(canonical));
}

function nodeHash(left, right) {
  return sha256(Uint8Array.of(1), left, right);
}

// rootFromInclusionProof folds an RFC 9162 inclusion proof for the leaf at
// index in a tree of size leaves, and returns the root it implies.
export async function rootFromInclusionProof(index, size, leaf, proof) {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) {
    throw new VerifyError('proof', `index ${index} is not inside a tree of size ${size}`);
  }
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) throw new VerifyError('proof', 'the inclusion proof is longer than a tree of this size allows');
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new VerifyError('proof', 'the inclusion proof is shorter than a tree of this size needs');
  return r;
}

export function decodeBase64(s, what, step) {
  if (typeof s !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) {
    throw new VerifyError(step, `${what} is not standard base64`);
  }
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function encodeBase64(bytes) {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

function equalBytes(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function hex8(n) {
  return n.toString(16).padStart(8, '0');
}

// keyHash is a note key's 4-byte id: the start of SHA-256(name ‖ "\n" ‖ alg ‖ key).
async function keyHash(name, alg, pub) {
  const h = await sha256(encoder.encode(name + '\n'), Uint8Array.of(alg), pub);
  return new DataView(h.buffer).getUint32(0);
}

// parseVerifierKey reads a note verifier key "name+hash+base64(alg ‖ key)"
// of an Ed25519 signer, checking that its hash matches its name and key.
export async function parseVerifierKey(vkey) {
  // The name holds no '+'; the base64 key may.
  const parts = /^([^+]+)\+([^+]*)\+(.*)$/.exec(String(vkey).trim())?.slice(1) || [];
  if (parts.length !== 3 || !/^[0-9a-f]{8}$/.test(parts[1])) {
    throw new VerifyError('key', 'the pinned log key is not a note verifier key (name+hash+key)');
  }
  const raw = decodeBase64(parts[2], 'the pinned log key', 'key');
  if (raw.length !== 33 || raw[0] !== ALG_ED25519) throw new VerifyError('key', 'the pinned log key is not an Ed25519 key');
  const pub = raw.slice(1);
  const hash = parseInt(parts[1], 16);
  if ((await keyHash(parts[0], ALG_ED25519, pub)) !== hash) {
    throw new VerifyError('key', 'the pinned log key’s hash does not match its name and key');
  }
  return { name: parts[0], hash, pub };
}

// parseNote splits a signed note into its text and signature lines.
export function parseNote(note) {
  const fail = (why) => new VerifyError('signature', `the checkpoint is not a well-formed signed note: ${why}`);
  if (typeof note !== 'string' || !note.endsWith('\n')) throw fail('it does not end with a newline');
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw fail('no blank line before the signatures');
  const text = note.slice(0, split + 1);
  const signatures = [];
  for (const line of note.slice(split + 2, -1).split('\n')) {
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m) throw fail('a signature line is malformed');
    const raw = decodeBase64(m[2], 'a signature', 'signature');
    if (raw.length < 5) throw fail('a signature is too short');
    signatures.push({ name: m[1], hash: new DataView(raw.buffer).getUint32(0), bytes: raw.slice(4) });
  }
  if (signatures.length === 0) throw fail('it has no signature');
  return { text, signatures };
}

async function importEd25519(pub) {
  try {
    return await crypto.subtle.importKey('raw', pub, { name: 'Ed25519' }, false, ['verify']);
  } catch (e) {
    throw new VerifyError('signature', `this browser cannot check Ed25519 signatures with WebCrypto (${e.message})`);
  }
}

// verifyNoteSignature checks that the note carries a valid Ed25519
// signature by key. Signatures by other keys are ignored, as signed notes
// require.
export async function verifyNoteSignature(note, key) {
  const mine = note.signatures.filter((s) => s.name === key.name && s.hash === key.hash);
  if (mine.length === 0) {
    throw new VerifyError('signature', `the checkpoint carries no signature by the pinned key ${key.name}+${hex8(key.hash)}`);
  }
  const k = await importEd25519(key.pub);
  for (const s of mine) {
    if (s.bytes.length === 64 && (await crypto.subtle.verify('Ed25519', k, s.bytes, encoder.encode(note.text)))) return;
  }
  throw new VerifyError('signature', 'the checkpoint’s signature by the pinned key does not verify: the checkpoint was altered or forged');
}

// signedAt returns the time of the note's timestamped cosignature by the
// same Ed25519 key (C2SP tlog-cosignature/v1), or null when it has none
// that verifies.
export async function signedAt(note, key) {
  const hash = await keyHash(key.name, ALG_COSIGNATURE, key.pub);
  const k = await importEd25519(key.pub);
  for (const s of note.signatures) {
    if (s.name !== key.name || s.hash !== hash || s.bytes.length !== 72) continue;
    const ts = new DataView(s.bytes.buffer, s.bytes.byteOffset).getBigUint64(0);
    const msg = encoder.encode(`cosignature/v1\ntime ${ts}\n` + note.text);
    if (await crypto.subtle.verify('Ed25519', k, s.bytes.slice(8), msg)) return new Date(Number(ts) * 1000);
  }
  return null;
}

// parseCheckpoint reads a C2SP checkpoint body: origin, size, root.
export function parseCheckpoint(text) {
  const lines = text.split('\n');
  const fail = (why) => new VerifyError('checkpoint', `the checkpoint is malformed: ${why}`);
  if (lines.length < 4) throw fail('it has fewer than three lines');
  const [origin, sizeText, rootText] = lines;
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText) || !Number.isSafeInteger(Number(sizeText))) throw fail('its size is not a number');
  const root = decodeBase64(rootText, 'the checkpoint root', 'checkpoint');
  if (root.length !== 32) throw fail('its root is not a SHA-256 hash');
  return { origin, size: Number(sizeText), root };
}

// verifyEvent verifies one event as GET /v1/events/{id} returns it
// ({event, proof?, checkpoint?}) against the log's origin and the pinned
// verifier key. It resolves to a report: status "verified", "pending" (no
// checkpoint covers the event yet) or "failed", the step that failed and a
// message, the steps that passed, and what was learned on the way.
export async function verifyEvent(response, { origin, pinnedKey }) {
  const report = { status: 'failed', step: '', message: '', passed: [] };
  try {
    if (!globalThis.crypto || !crypto.subtle) {
      throw new VerifyError('crypto', 'WebCrypto is unavailable: this page is not a secure context (serve the dashboard over HTTPS, or open it on localhost)');
    }
    const { event, proof, checkpoint } = response;
    const canonical = canonicalize(eventBody(event));
    const leaf = await leafHash(canonical);
    report.leafHash = encodeBase64(leaf);
    report.canonical = canonical;
    if (report.leafHash !== event.leaf_hash) {
      throw new VerifyError('leaf', `the event’s content hashes to ${report.leafHash}, not to the leaf hash ${event.leaf_hash} the server reports: the event was altered`);
    }
    report.passed.push('leaf');
    if (!proof || !checkpoint) {
      report.status = 'pending';
      report.message = 'pending: not yet covered by a checkpoint';
      return report;
    }
    const key = await parseVerifierKey(pinnedKey);
    if (key.name !== origin) throw new VerifyError('key', `the pinned log key belongs to ${key.name}, not to this log (${origin})`);
    report.passed.push('key');
    const note = parseNote(checkpoint);
    await verifyNoteSignature(note, key);
    report.passed.push('signature');
    report.signedAt = await signedAt(note, key);
    const cp = parseCheckpoint(note.text);
    report.checkpointSize = cp.size;
    report.root = encodeBase64(cp.root);
    if (cp.origin !== origin) throw new VerifyError('checkpoint', `the checkpoint is of the log ${cp.origin}, not of ${origin}`);
    if (proof.size !== cp.size) throw new VerifyError('checkpoint', `the proof is for a tree of ${proof.size} events but the checkpoint covers ${cp.size}`);
    if (proof.index !== event.seq) throw new VerifyError('checkpoint', `the proof is for position ${proof.index}, but the event is at ${event.seq}`);
    report.passed.push('checkpoint');
    const hashes = (proof.hashes || []).map((h) => {
      const b = decodeBase64(h, 'a proof hash', 'proof');
      if (b.length !== 32) throw new VerifyError('proof', 'a proof hash is not a SHA-256 hash');
      return b;
    });
    const root = await rootFromInclusionProof(proof.index, proof.size, leaf, hashes);
    if (!equalBytes(root, cp.root)) {
      throw new VerifyError('proof', `the inclusion proof leads to the root ${encodeBase64(root)}, not to the checkpoint’s root ${report.root}: the event is not in the signed log`);
    }
    report.passed.push('proof');
    report.status = 'verified';
    report.message = `Verified against checkpoint ${cp.size}`;
    return report;
  } catch (e) {
    report.status = 'failed';
    report.step = e instanceof VerifyError ? e.step : 'internal';
    report.message = e instanceof VerifyError ? e.message : `verification stopped: ${e.message}`;
    return report;
  }
}
