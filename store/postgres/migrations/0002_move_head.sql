-- Stele schema for PostgreSQL, version 2: the head moves in the same round
-- trip as the commit.
--
-- stele_move_head moves a log's head from size p_from to p_size, and raises
-- (SQLSTATE ST001) when the head is not at p_from: the transaction is then
-- aborted, so a COMMIT pipelined behind it rolls back instead of committing
-- rows that the head does not cover. It runs with the caller's rights.
CREATE FUNCTION stele_move_head(p_ws bigint, p_from bigint, p_size bigint, p_root bytea, p_last_received_ns bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	UPDATE logs SET size = p_size, root = p_root, last_received_ns = p_last_received_ns
		WHERE ws = p_ws AND size = p_from;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'stele: the head of log % is not at % (it moved during the transaction)', p_ws, p_from
			USING ERRCODE = 'ST001';
	END IF;
END
$$;
