-- An order event keeps its order as a row, made JSON when the event is sent (issue 14, Performance). The
-- JSON was built inside the fact batch's UPDATE of orders, which every notification of the batch waits for.
-- bench/run-app-event-trigger.sh (statements paying 4 orders each, as at 2,000 notifications/s), the same
-- runs with the trigger of migration 0026 and with this one: the outbox added 58.0-59.4 us per event to the
-- UPDATE before, 33.5 us after (its INSERT 43-45 -> 24 us an event; building the row costs 2 us).
-- What is announced is unchanged: the order as it was when the event was written, refunded_total included
-- (taken then), in the same JSON; only where the JSON is made moves, from the batch to the pusher's claim.
CREATE TYPE wxrecon.order_snapshot AS (
    mchid            text,
    out_trade_no     text,
    appid            text,
    description      text,
    amount_total     bigint,
    currency         text,
    state            text,
    state_desc       text,
    transaction_id   text,
    trade_type       text,
    bank_type        text,
    payer_total      bigint,
    success_time     timestamptz,
    origin           text,
    state_source     text,
    state_changed_at timestamptz,
    created_at       timestamptz,
    updated_at       timestamptz,
    expire_at        timestamptz,
    refunded_total   bigint
);

-- Set instead of object for the order events written from here on; object keeps the refunds, the
-- discrepancies' orders and every event written before.
ALTER TABLE wxrecon.app_events ADD COLUMN order_snapshot wxrecon.order_snapshot;

-- PL/pgSQL so that the refunds' sum keeps its plan for the session (see migration 0016).
CREATE FUNCTION wxrecon.order_snapshot_of(o wxrecon.orders) RETURNS wxrecon.order_snapshot
    LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN ROW(o.mchid, o.out_trade_no, o.appid, o.description, o.amount_total, o.currency, o.state,
               o.state_desc, o.transaction_id, o.trade_type, o.bank_type, o.payer_total, o.success_time,
               o.origin, o.state_source, o.state_changed_at, o.created_at, o.updated_at, o.expire_at,
               (SELECT coalesce(sum(r.amount_refund), 0) FROM wxrecon.refunds r
                 WHERE r.mchid = o.mchid AND r.out_trade_no = o.out_trade_no AND r.status = 'SUCCESS'))
           ::wxrecon.order_snapshot;
END $$;

CREATE FUNCTION wxrecon.order_snapshot_json(s wxrecon.order_snapshot) RETURNS jsonb
    LANGUAGE sql STABLE
    RETURN jsonb_build_object(
        'mchid', s.mchid, 'out_trade_no', s.out_trade_no, 'appid', s.appid, 'description', s.description,
        'amount_total', s.amount_total, 'currency', s.currency, 'state', s.state, 'state_desc', s.state_desc,
        'transaction_id', s.transaction_id, 'trade_type', s.trade_type, 'bank_type', s.bank_type,
        'payer_total', s.payer_total, 'success_time', wxrecon.rfc3339(s.success_time), 'origin', s.origin,
        'state_source', s.state_source, 'state_changed_at', wxrecon.rfc3339(s.state_changed_at),
        'created_at', wxrecon.rfc3339(s.created_at), 'updated_at', wxrecon.rfc3339(s.updated_at),
        'expire_at', wxrecon.rfc3339(s.expire_at), 'refunded_total', s.refunded_total);

-- The listing's JSON is the snapshot's: one list of members for both.
CREATE OR REPLACE FUNCTION wxrecon.order_list_json(o wxrecon.orders) RETURNS jsonb
    LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN wxrecon.order_snapshot_json(wxrecon.order_snapshot_of(o));
END $$;

CREATE OR REPLACE FUNCTION wxrecon.app_event_body(e wxrecon.app_events) RETURNS text
    LANGUAGE sql STABLE
    RETURN (jsonb_build_object('id', e.id::text, 'type', e.type, 'occurred_at', wxrecon.rfc3339(e.occurred_at),
                               e.object_key,
                               CASE WHEN (e.order_snapshot).mchid IS NULL THEN e.object
                                    ELSE wxrecon.order_snapshot_json(e.order_snapshot) END)
            || coalesce(e.extra, '{}'))::text;

CREATE OR REPLACE FUNCTION wxrecon.queue_changed_orders_app_events() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('wxrecon.app_events', true) IS DISTINCT FROM 'on' THEN
        RETURN NULL;
    END IF;
    INSERT INTO wxrecon.app_events (mchid, out_trade_no, type, occurred_at, object_key, order_snapshot)
    SELECT n.mchid, n.out_trade_no, e.type, e.occurred_at, 'order', wxrecon.order_snapshot_of(n)
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

CREATE OR REPLACE FUNCTION wxrecon.queue_order_app_events() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.transaction_id IS NOT NULL AND (TG_OP = 'INSERT' OR OLD.transaction_id IS NULL) THEN
        INSERT INTO wxrecon.app_events (mchid, out_trade_no, type, occurred_at, object_key, order_snapshot)
        VALUES (NEW.mchid, NEW.out_trade_no, 'order.paid', coalesce(NEW.success_time, now()), 'order',
                wxrecon.order_snapshot_of(NEW));
    END IF;
    IF NEW.state = 'CLOSED' AND (TG_OP = 'INSERT' OR OLD.state <> 'CLOSED') THEN
        INSERT INTO wxrecon.app_events (mchid, out_trade_no, type, occurred_at, object_key, order_snapshot)
        VALUES (NEW.mchid, NEW.out_trade_no, 'order.closed', NEW.state_changed_at, 'order',
                wxrecon.order_snapshot_of(NEW));
    END IF;
    IF NEW.state = 'REFUND' AND (TG_OP = 'INSERT' OR OLD.state NOT IN ('SUCCESS', 'REFUND')) THEN
        IF NOT wxrecon.order_refunded_announced(NEW.mchid, NEW.out_trade_no) THEN
            INSERT INTO wxrecon.app_events (mchid, out_trade_no, type, occurred_at, object_key, order_snapshot)
            VALUES (NEW.mchid, NEW.out_trade_no, 'order.refunded', NEW.state_changed_at, 'order',
                    wxrecon.order_snapshot_of(NEW));
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
        INSERT INTO wxrecon.app_events (mchid, out_trade_no, type, occurred_at, object_key, order_snapshot)
        SELECT o.mchid, o.out_trade_no, 'order.refunded', coalesce(NEW.success_time, now()), 'order',
               wxrecon.order_snapshot_of(o)
          FROM wxrecon.orders o
         WHERE o.mchid = NEW.mchid AND o.out_trade_no = NEW.out_trade_no AND o.state = 'REFUND'
           AND (SELECT sum(r.amount_refund) FROM wxrecon.refunds r
                 WHERE r.mchid = o.mchid AND r.out_trade_no = o.out_trade_no AND r.status = 'SUCCESS')
               - NEW.amount_refund < coalesce(o.payer_total, o.amount_total);
    END IF;
    RETURN NULL;
END $$;
