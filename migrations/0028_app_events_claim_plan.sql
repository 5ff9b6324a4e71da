-- The outbox claim, made immune to the statistics (issue 14). The claim walks the pending events in id
-- order (app_events_queue) and keeps those at the head of their order, a probe of app_events_pending per
-- candidate. After an autovacuum had just emptied the pending set, the planner saw app_events_queue as a
-- page or two and probed each order's head through it instead (the lowest pending id, filtered by order),
-- but between vacuums that index also holds the entries of every event delivered since: each probe walked
-- them all, a claim took 8-27 ms instead of 0.5, a backlog made it worse, and the outbox lag reached 45 s
-- (bench/run-app-events.sh, third pair, plans from auto_explain). The queue index now carries a condition
-- only the claim's walk states (id > 0, which the constraint makes true of every event): the probe cannot
-- use it, whatever the statistics say, and is left with app_events_pending. The condition names a column
-- no update changes: one the claim changes (attempts) would have cost the claim its heap-only updates.
ALTER TABLE wxrecon.app_events ADD CONSTRAINT app_events_id_positive CHECK (id > 0);
CREATE INDEX app_events_claim_queue ON wxrecon.app_events (id) WHERE delivered_at IS NULL AND id > 0;
DROP INDEX wxrecon.app_events_queue;

-- Forgetting events delivered more than a day ago read the whole table every five seconds (a sequential
-- scan: nothing told it where the delivered events were), 40 ms at 60,000 events and growing with a day's
-- traffic. Delivered events are found by their delivery time now.
CREATE INDEX app_events_delivered ON wxrecon.app_events (delivered_at) WHERE delivered_at IS NOT NULL;
