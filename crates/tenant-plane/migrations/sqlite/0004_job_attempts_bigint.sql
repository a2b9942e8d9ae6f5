-- Nothing to change: SQLite's INTEGER is already 64-bit. Kept so both engines' migrations
-- carry the same versions.
SELECT 1;
