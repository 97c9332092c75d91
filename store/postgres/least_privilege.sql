-- Grants for a role that runs `stele serve` but cannot rewrite history.
--
-- Run as the owner of Stele's tables (the role that ran the first start and
-- its migrations), in Stele's database, after creating the role:
--     CREATE ROLE stele_app LOGIN PASSWORD '...';
-- The role reads everything and appends to the log. It cannot UPDATE,
-- DELETE or TRUNCATE events, tree hashes or checkpoints (no grant), cannot
-- drop or disable the append-only triggers (not the owner), and cannot
-- change the schema. Upgrades that bring migrations run as the owner.
GRANT USAGE ON SCHEMA public TO stele_app;
GRANT SELECT ON stele_schema, workspaces, logs, events, tree, checkpoints, api_keys, users, sessions TO stele_app;
GRANT INSERT ON workspaces, logs, events, tree, checkpoints, api_keys, users, sessions TO stele_app;
GRANT USAGE ON SEQUENCE workspaces_n_seq TO stele_app;
-- The head of each log moves forward (a trigger refuses shrinking); the
-- workspace row is locked while a checkpoint is stored (FOR NO KEY UPDATE
-- needs an UPDATE grant on one column).
GRANT UPDATE (size, root, last_received_ns) ON logs TO stele_app;
GRANT UPDATE (name) ON workspaces TO stele_app;
-- Credentials and sessions change: rotation, revocation, last use, roles.
GRANT UPDATE (name, scopes, secret_hash, prev_secret_hash, prev_valid_ns, expires_ns, revoked_ns, last_used_ns) ON api_keys TO stele_app;
GRANT UPDATE (name, role, password_hash, disabled_ns) ON users TO stele_app;
GRANT UPDATE (revoked_ns) ON sessions TO stele_app;
