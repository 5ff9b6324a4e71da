-- The poller claims due orders with a lease: a claimed order is not claimed again before the lease runs
-- out, so two daemons on one database never query the same order at once, and the claims of a daemon
-- that died come back by themselves.
ALTER TABLE wxrecon.orders ADD COLUMN poll_lease_until timestamptz, ADD COLUMN poll_lease_owner text;

-- An order registered without a schedule (by SQL, with only mchid, out_trade_no and amount_total) is due
-- at once: the poller works out its real schedule when it first claims it, and fills a missing
-- expire_at from poller.default_expiry.
CREATE FUNCTION wxrecon.schedule_new_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.next_poll_at IS NULL AND NEW.state IN ('NOTPAY', 'USERPAYING') THEN
        NEW.next_poll_at := NEW.created_at;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER orders_schedule_new BEFORE INSERT ON wxrecon.orders
    FOR EACH ROW EXECUTE FUNCTION wxrecon.schedule_new_order();

-- Orders that existed before this migration and are still open get the same treatment.
UPDATE wxrecon.orders SET next_poll_at = created_at
 WHERE next_poll_at IS NULL AND state IN ('NOTPAY', 'USERPAYING');
