-- Formula and rollup summary fields (issue 16): Zoho recomputes them without
-- moving Modified_Time, so reconcile re-reads them every [sync]
-- formula_refresh seconds (common/formula.c). When a module's refresh last
-- completed, in our clock: "due" survives restarts. NULL: never.
ALTER TABLE sync_state ADD COLUMN formula_refreshed_at timestamptz;
