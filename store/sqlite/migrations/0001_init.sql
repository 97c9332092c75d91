-- Stele schema, version 1.
--
-- Positions: an event's rowid is (workspace number << 40) | seq, so the
-- table's own B-tree is ordered by (workspace, seq), every secondary index
-- ends in that order for free, and the full-text index shares the rowid.
-- A workspace holds at most 2^40 events.

CREATE TABLE workspaces (
	n          INTEGER PRIMARY KEY,        -- internal number, the high bits of rowids
	id         TEXT NOT NULL UNIQUE,
	name       TEXT NOT NULL,
	created_ns INTEGER NOT NULL
) STRICT;

-- The head of each workspace's log, rewritten by every commit that appends.
CREATE TABLE logs (
	ws               INTEGER PRIMARY KEY REFERENCES workspaces(n),
	size             INTEGER NOT NULL,
	root             BLOB NOT NULL,
	last_received_ns INTEGER NOT NULL
) STRICT;

CREATE TABLE events (
	rowid         INTEGER PRIMARY KEY,     -- (ws << 40) | seq
	ws            INTEGER NOT NULL,
	id            BLOB NOT NULL,           -- 16-byte UUID
	time_ns       INTEGER NOT NULL,
	received_ns   INTEGER NOT NULL,
	type          TEXT NOT NULL,
	type_root     TEXT NOT NULL,           -- first segment of type, for prefix filters
	category      TEXT NOT NULL,
	actor_id      TEXT NOT NULL,
	node          TEXT,
	resource_type TEXT,
	resource_id   TEXT,
	ip            BLOB,                    -- 16-byte form (IPv4 mapped), for CIDR ranges
	outcome       TEXT NOT NULL,
	body          BLOB NOT NULL,           -- canonical JSON: the Merkle leaf
	leaf_hash     BLOB NOT NULL,
	request_hash  BLOB                     -- set when the emitter supplied the id
) STRICT;

CREATE UNIQUE INDEX events_id ON events (ws, id);
CREATE INDEX events_time ON events (ws, time_ns);
CREATE INDEX events_actor ON events (ws, actor_id, time_ns);
CREATE INDEX events_type ON events (ws, type, time_ns);
CREATE INDEX events_type_root ON events (ws, type_root, time_ns);
CREATE INDEX events_category ON events (ws, category, time_ns);
CREATE INDEX events_node ON events (ws, node, time_ns) WHERE node IS NOT NULL;
CREATE INDEX events_resource ON events (ws, resource_type, resource_id, time_ns) WHERE resource_type IS NOT NULL;
CREATE INDEX events_ip ON events (ws, ip, time_ns) WHERE ip IS NOT NULL;

-- Searchable words of each event (stele.Tokens), sharing the event's rowid.
CREATE VIRTUAL TABLE events_text USING fts5 (words, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 0');

-- The Merkle tree: for each leaf, the hashes tlog.StoredHashes produced when
-- it was appended (leaf hash first), and the row MAC.
CREATE TABLE tree (
	rowid  INTEGER PRIMARY KEY,            -- (ws << 40) | seq
	hashes BLOB NOT NULL,
	mac    BLOB NOT NULL
) STRICT;

CREATE TABLE checkpoints (
	ws     INTEGER NOT NULL,
	size   INTEGER NOT NULL,
	root   BLOB NOT NULL,
	time_s INTEGER NOT NULL,
	note   BLOB NOT NULL,
	PRIMARY KEY (ws, size)
) STRICT, WITHOUT ROWID;

CREATE TABLE api_keys (
	id               TEXT PRIMARY KEY,
	ws               INTEGER NOT NULL REFERENCES workspaces(n),
	name             TEXT NOT NULL,
	scopes           TEXT NOT NULL,        -- space-separated
	secret_hash      BLOB NOT NULL,
	prev_secret_hash BLOB,
	prev_valid_ns    INTEGER NOT NULL DEFAULT 0,
	created_ns       INTEGER NOT NULL,
	created_by       TEXT NOT NULL,
	expires_ns       INTEGER NOT NULL DEFAULT 0,
	revoked_ns       INTEGER NOT NULL DEFAULT 0,
	last_used_ns     INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX api_keys_ws ON api_keys (ws, created_ns);

-- Guards: the log is append-only in the database itself. They are a second
-- line of defence; tamper evidence comes from the signed tree (stele check).
CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'stele: events are append-only'); END;
CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'stele: events are append-only'); END;
CREATE TRIGGER tree_append_only_update BEFORE UPDATE ON tree
BEGIN SELECT RAISE(ABORT, 'stele: tree hashes are append-only'); END;
CREATE TRIGGER tree_append_only_delete BEFORE DELETE ON tree
BEGIN SELECT RAISE(ABORT, 'stele: tree hashes are append-only'); END;
CREATE TRIGGER checkpoints_append_only_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'stele: checkpoints are append-only'); END;
CREATE TRIGGER checkpoints_append_only_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'stele: checkpoints are append-only'); END;
CREATE TRIGGER logs_never_shrink BEFORE UPDATE ON logs WHEN NEW.size < OLD.size
BEGIN SELECT RAISE(ABORT, 'stele: a log never shrinks'); END;
CREATE TRIGGER logs_no_delete BEFORE DELETE ON logs
BEGIN SELECT RAISE(ABORT, 'stele: logs are never deleted'); END;

CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	ws            INTEGER NOT NULL REFERENCES workspaces(n),
	email         TEXT NOT NULL UNIQUE,
	name          TEXT NOT NULL,
	role          TEXT NOT NULL,
	password_hash TEXT NOT NULL,
	created_ns    INTEGER NOT NULL,
	disabled_ns   INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX users_ws ON users (ws, email);

CREATE TABLE sessions (
	token_hash  BLOB PRIMARY KEY,
	id          TEXT NOT NULL UNIQUE,
	user_id     TEXT NOT NULL REFERENCES users(id),
	ws          INTEGER NOT NULL REFERENCES workspaces(n),
	csrf_token  TEXT NOT NULL,
	ip          TEXT NOT NULL,
	created_ns  INTEGER NOT NULL,
	expires_ns  INTEGER NOT NULL,
	revoked_ns  INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions (user_id);
