-- App events (issue 14): the application is told when its orders change. Each event is written by a
-- trigger in the transaction that commits the change it announces, so there is never an event for a
-- change that did not commit, nor a committed change without its event; wxrecond delivers them from
-- here at least once, in id order per order. Triggers fire only on connections where wxrecond set
-- wxrecon.app_events = 'on' ([app_events] configured): otherwise they cost a WHEN test and nothing else.
CREATE TABLE wxrecon.app_events (
    id           bigserial   PRIMARY KEY,
    mchid        text        NOT NULL,
    out_trade_no text        NOT NULL,
    type         text        NOT NULL CHECK (type IN ('order.paid', 'order.closed', 'order.refunded',
                                                      'refund.succeeded', 'refund.closed', 'refund.abnormal',
                                                      'discrepancy.opened')),
    occurred_at  timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    object_key   text        NOT NULL CHECK (object_key IN ('order', 'refund')),
    object       jsonb,      -- the order (as listed) or refund (as read) when the event was written
    extra        jsonb,      -- more members of the body (discrepancy.opened: "discrepancy")
    due_at       timestamptz NOT NULL DEFAULT now(),
    attempts     integer     NOT NULL DEFAULT 0,
    lease_until  timestamptz,
    lease_owner  text,
    last_status  integer,
    last_error   text,
    delivered_at timestamptz
);
-- What is waiting, by order (the head of each order's queue) and overall (oldest first).
CREATE INDEX app_events_pending ON wxrecon.app_events (mchid, out_trade_no, id) WHERE delivered_at IS NULL;
CREATE INDEX app_events_queue ON wxrecon.app_events (id) WHERE delivered_at IS NULL;

CREATE FUNCTION wxrecon.queue_order_app_events() RETURNS trigger
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
        INSERT INTO wxrecon.app_events (mchid, out_trade_no, type, occurred_at, object_key, object)
        VALUES (NEW.mchid, NEW.out_trade_no, 'order.refunded', NEW.state_changed_at, 'order',
                wxrecon.order_list_json(NEW));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER orders_app_events_insert AFTER INSERT ON wxrecon.orders FOR EACH ROW
    WHEN (current_setting('wxrecon.app_events', true) = 'on'
          AND (NEW.transaction_id IS NOT NULL OR NEW.state IN ('CLOSED', 'REFUND')))
    EXECUTE FUNCTION wxrecon.queue_order_app_events();
CREATE TRIGGER orders_app_events_update AFTER UPDATE ON wxrecon.orders FOR EACH ROW
    WHEN (current_setting('wxrecon.app_events', true) = 'on'
          AND (OLD.state IS DISTINCT FROM NEW.state
               OR (OLD.transaction_id IS NULL AND NEW.transaction_id IS NOT NULL)))
    EXECUTE FUNCTION wxrecon.queue_order_app_events();

CREATE FUNCTION wxrecon.queue_refund_app_events() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO wxrecon.app_events (mchid, out_trade_no, type, occurred_at, object_key, object)
    VALUES (NEW.mchid, NEW.out_trade_no,
            CASE NEW.status WHEN 'SUCCESS' THEN 'refund.succeeded' WHEN 'CLOSED' THEN 'refund.closed'
                            ELSE 'refund.abnormal' END,
            coalesce(NEW.success_time, NEW.status_changed_at), 'refund',
            wxrecon.refund_json(NEW.mchid, NEW.out_refund_no));
    -- The refund that brought the refunds up to what was paid made the order REFUND.
    IF NEW.status = 'SUCCESS' THEN
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
CREATE TRIGGER refunds_app_events_insert AFTER INSERT ON wxrecon.refunds FOR EACH ROW
    WHEN (current_setting('wxrecon.app_events', true) = 'on' AND NEW.status <> 'PROCESSING')
    EXECUTE FUNCTION wxrecon.queue_refund_app_events();
CREATE TRIGGER refunds_app_events_update AFTER UPDATE ON wxrecon.refunds FOR EACH ROW
    WHEN (current_setting('wxrecon.app_events', true) = 'on' AND OLD.status IS DISTINCT FROM NEW.status
          AND NEW.status <> 'PROCESSING')
    EXECUTE FUNCTION wxrecon.queue_refund_app_events();

CREATE FUNCTION wxrecon.queue_discrepancy_app_event() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO wxrecon.app_events (mchid, out_trade_no, type, occurred_at, object_key, object, extra)
    VALUES (NEW.mchid, NEW.out_trade_no, 'discrepancy.opened', NEW.detected_at, 'order',
            (SELECT wxrecon.order_list_json(o) FROM wxrecon.orders o
              WHERE o.mchid = NEW.mchid AND o.out_trade_no = NEW.out_trade_no),
            jsonb_build_object('discrepancy', jsonb_build_object(
                'id', NEW.id, 'kind', NEW.kind, 'mchid', NEW.mchid, 'out_trade_no', NEW.out_trade_no,
                'bill_date', to_char(NEW.bill_date, 'YYYY-MM-DD'), 'detail', NEW.detail,
                'detected_at', wxrecon.rfc3339(NEW.detected_at))));
    RETURN NULL;
END $$;
CREATE TRIGGER discrepancies_app_event AFTER INSERT ON wxrecon.discrepancies FOR EACH ROW
    WHEN (current_setting('wxrecon.app_events', true) = 'on')
    EXECUTE FUNCTION wxrecon.queue_discrepancy_app_event();

-- The body sent for an event, the same on every attempt.
CREATE FUNCTION wxrecon.app_event_body(e wxrecon.app_events) RETURNS text
    LANGUAGE sql STABLE
    RETURN (jsonb_build_object('id', e.id::text, 'type', e.type, 'occurred_at', wxrecon.rfc3339(e.occurred_at),
                               e.object_key, e.object) || coalesce(e.extra, '{}'))::text;
