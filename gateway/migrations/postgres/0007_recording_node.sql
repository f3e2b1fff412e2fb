-- Cluster mode (issue 11 item 8): the node whose data dir holds a recording's file (its
-- cluster node id). NULL: written by a single-node venue (the file is in that data dir).
-- PostgreSQL twin of migrations/sqlite/0007.
ALTER TABLE recordings ADD COLUMN node TEXT;
