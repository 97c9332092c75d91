-- Stele schema, version 2: an index for every filter of the read API.
--
-- Every filter that selects by equality has an index (ws, column, time_ns)
-- (the rowid, that is the seq, ends every index), so that a page of events
-- newest or oldest first is a seek and a short walk in index order, however
-- far the cursor has gone. Version 1 had (ws, resource_type, resource_id,
-- time_ns), which cannot serve resource=type alone in time order; it is
-- replaced by one index per column. outcome gains its own.

DROP INDEX events_resource;
CREATE INDEX events_resource_type ON events (ws, resource_type, time_ns) WHERE resource_type IS NOT NULL;
CREATE INDEX events_resource_id ON events (ws, resource_id, time_ns) WHERE resource_id IS NOT NULL;
CREATE INDEX events_outcome ON events (ws, outcome, time_ns);
