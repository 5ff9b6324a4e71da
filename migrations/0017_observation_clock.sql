-- Stale or regression (issue 16, item 8): a fact's observed_at (when a daemon received it or sent the query)
-- was compared with state_changed_at, the database's now() at the change: two clocks, so a daemon whose
-- clock ran ahead turned stale answers into regressions, and one running behind the reverse. The time the
-- recorded state was observed, on the same clock as the facts, is kept beside it and compared instead.
-- Rows changed before (or by hand) have none; their state_changed_at stands in.
ALTER TABLE wxrecon.orders ADD COLUMN state_observed_at timestamptz;
ALTER TABLE wxrecon.refunds ADD COLUMN status_observed_at timestamptz;

-- A state changed without a new observation time (by hand, by SQL outside the fact path) drops the old
-- one, which described the state before: state_changed_at then stands in. The fact path sets both at
-- once, so for it the WHEN test is all this costs.
CREATE FUNCTION wxrecon.forget_state_observation() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'orders' THEN
        NEW.state_observed_at := NULL;
    ELSE
        NEW.status_observed_at := NULL;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER orders_forget_state_observation BEFORE UPDATE OF state ON wxrecon.orders FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state AND OLD.state_observed_at IS NOT DISTINCT FROM NEW.state_observed_at)
    EXECUTE FUNCTION wxrecon.forget_state_observation();
CREATE TRIGGER refunds_forget_status_observation BEFORE UPDATE OF status ON wxrecon.refunds FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status AND OLD.status_observed_at IS NOT DISTINCT FROM NEW.status_observed_at)
    EXECUTE FUNCTION wxrecon.forget_state_observation();
