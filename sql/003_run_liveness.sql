-- 003_run_liveness.sql — a run row knows the PostgreSQL session that holds
-- its job lock, so that a reader can tell a run that is going from one whose
-- process was killed (issue 14 item 11).
--
-- A batch program takes the (job, module) advisory lock on its data
-- connection before it inserts its `runs` row, and holds it until the row
-- is closed. When the process dies, its session ends and the lock with it:
-- a row still 'running' whose backend_pid holds no advisory lock is dead.
-- zcrm-status shows such a row as 'abandoned' when it reads it; the next
-- run of its kind writes 'abandoned' into it.
ALTER TABLE runs ADD COLUMN backend_pid integer;
ALTER TABLE runs DROP CONSTRAINT runs_outcome_check;
ALTER TABLE runs ADD CONSTRAINT runs_outcome_check
    CHECK (outcome IN ('running', 'ok', 'failed', 'interrupted', 'dry-run', 'abandoned'));
