-- Stele schema, version 3: deferred full-text indexing.
--
-- An append commits each event's searchable words here, in the same durable
-- transaction as the event; the store moves them into events_text in bulk
-- shortly after (one FTS5 segment per few hundred events instead of one per
-- commit), and before any free-text query runs. Rows are deleted once moved.
CREATE TABLE events_text_pending (
	rowid INTEGER PRIMARY KEY,             -- the event's rowid
	words TEXT NOT NULL
) STRICT;
