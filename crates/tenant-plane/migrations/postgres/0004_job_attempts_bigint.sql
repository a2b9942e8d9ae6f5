-- Attempt counts are read as 64-bit integers on both engines (SQLite's INTEGER is 64-bit).
ALTER TABLE ai_jobs ALTER COLUMN attempts TYPE BIGINT;
