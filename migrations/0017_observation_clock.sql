-- Stale or regression (issue 16, item 8): a fact's observed_at (when a daemon received it or sent the query)
-- was compared with state_changed_at, the database's now() at the change: two clocks, so a daemon whose
-- clock ran ahead turned stale answers into regressions, and one running behind the reverse. The time the
-- recorded state was observed, on the same clock as the facts, is kept beside it and compared instead.
-- Rows changed before (or by hand) have none; their state_changed_at stands in.
ALTER TABLE wxrecon.orders ADD COLUMN state_observed_at timestamptz;
ALTER TABLE wxrecon.refunds ADD COLUMN status_observed_at timestamptz;
