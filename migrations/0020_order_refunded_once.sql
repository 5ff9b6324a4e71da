-- An order is announced refunded once. Two refunds completing an order in one transaction (the ledger's
-- group commit puts concurrent notifications in one) fire their AFTER ROW triggers at the end of the same
-- statement: each saw both SUCCESS rows, each found itself "the refund that brought the sum up to what was
-- paid", and the application was told order.refunded twice (found by the crash campaign, seed 168536744).
-- A refund and a late payment in one transaction could do the same through the orders trigger. Both now
-- look for the order's announcement first; the partial index keeps that look to the refunded orders.
CREATE INDEX app_events_order_refunded ON wxrecon.app_events (mchid, out_trade_no)
    WHERE type = 'order.refunded';

CREATE OR REPLACE FUNCTION wxrecon.order_refunded_announced(p_mchid text, p_out_trade_no text) RETURNS boolean
    LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM wxrecon.app_events
                    WHERE mchid = p_mchid AND out_trade_no = p_out_trade_no AND type = 'order.refunded')
$$;

CREATE OR REPLACE FUNCTION wxrecon.queue_order_app_events() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.transaction_id IS NOT NULL AND (TG_OP = 'INSERT' OR OLD.transaction_id IS NULL) THEN
        INSERT INTO wxrecon.app_events (mchid, out_trade_no, type, occurred_at, object_key, object)
        VALUES (NEW.mchid, NEW.out_trade_no, 'order.paid', coalesce(NEW.success_time, now()), 'order',
                wxrecon.order_list_json(NEW));
    END IF;
    IF NEW.state = 'CLOSED' AND (TG_OP = 'INSERT' OR OLD.state <> 'CLOSED') THEN
        INSERT INTO wxrecon.app_events (mchid, out_trade_no, type, occurred_at, object_key, object)
        VALUES (NEW.mchid, NEW.out_trade_no, 'order.closed', NEW.state_changed_at, 'order',
                wxrecon.order_list_json(NEW));
    END IF;
    -- SUCCESS becoming REFUND is announced after the refund that completed it (refunds trigger below);
    -- here only an order whose payment was learned after its refunds.
    IF NEW.state = 'REFUND' AND (TG_OP = 'INSERT' OR OLD.state NOT IN ('SUCCESS', 'REFUND')) THEN
        IF NOT wxrecon.order_refunded_announced(NEW.mchid, NEW.out_trade_no) THEN
            INSERT INTO wxrecon.app_events (mchid, out_trade_no, type, occurred_at, object_key, object)
            VALUES (NEW.mchid, NEW.out_trade_no, 'order.refunded', NEW.state_changed_at, 'order',
                    wxrecon.order_list_json(NEW));
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION wxrecon.queue_refund_app_events() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO wxrecon.app_events (mchid, out_trade_no, type, occurred_at, object_key, object)
    VALUES (NEW.mchid, NEW.out_trade_no,
            CASE NEW.status WHEN 'SUCCESS' THEN 'refund.succeeded' WHEN 'CLOSED' THEN 'refund.closed'
                            ELSE 'refund.abnormal' END,
            coalesce(NEW.success_time, NEW.status_changed_at), 'refund',
            wxrecon.refund_json(NEW.mchid, NEW.out_refund_no));
    -- The refund that brought the refunds up to what was paid made the order REFUND.
    IF NEW.status = 'SUCCESS' AND NOT wxrecon.order_refunded_announced(NEW.mchid, NEW.out_trade_no) THEN
        INSERT INTO wxrecon.app_events (mchid, out_trade_no, type, occurred_at, object_key, object)
        SELECT o.mchid, o.out_trade_no, 'order.refunded', coalesce(NEW.success_time, now()), 'order',
               wxrecon.order_list_json(o)
          FROM wxrecon.orders o
         WHERE o.mchid = NEW.mchid AND o.out_trade_no = NEW.out_trade_no AND o.state = 'REFUND'
           AND (SELECT sum(r.amount_refund) FROM wxrecon.refunds r
                 WHERE r.mchid = o.mchid AND r.out_trade_no = o.out_trade_no AND r.status = 'SUCCESS')
               - NEW.amount_refund < coalesce(o.payer_total, o.amount_total);
    END IF;
    RETURN NULL;
END $$;
