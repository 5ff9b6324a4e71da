-- Refunds made through the internal API (issue 14): the request is stored before it is sent, so every
-- retry resends it identically under the same out_refund_no (WeChat Pay refunds once per number), and
-- every refund not yet final is queried by the refund tracker on a schedule of its own, under a lease.
CREATE TABLE wxrecon.refund_requests (
    mchid         text        NOT NULL,
    out_refund_no text        NOT NULL,
    out_trade_no  text        NOT NULL,
    api_version   text        NOT NULL CHECK (api_version IN ('v3', 'v2')),
    amount_refund bigint      NOT NULL CHECK (amount_refund > 0),
    reason        text,
    request       text        NOT NULL,  -- APIv3 JSON body, or APIv2 XML of the unsigned fields
    -- pending: WeChat Pay's answer is not known yet; accepted: it took the refund; refused: it said no
    -- for certain, and the refund row is gone (nothing was refunded).
    state         text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'accepted', 'refused')),
    attempts      integer     NOT NULL DEFAULT 0,
    last_code     text,
    last_error    text,
    sent_at       timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mchid, out_refund_no),
    FOREIGN KEY (mchid, out_trade_no) REFERENCES wxrecon.orders (mchid, out_trade_no)
);
CREATE INDEX refund_requests_order ON wxrecon.refund_requests (mchid, out_trade_no);

-- The refund tracker's schedule and lease, as the poller's on orders (0003).
ALTER TABLE wxrecon.refunds
    ADD COLUMN next_poll_at     timestamptz,
    ADD COLUMN poll_attempts    integer NOT NULL DEFAULT 0,
    ADD COLUMN last_polled_at   timestamptz,
    ADD COLUMN last_poll_error  text,
    ADD COLUMN poll_lease_until timestamptz,
    ADD COLUMN poll_lease_owner text;
CREATE INDEX refunds_next_poll_at ON wxrecon.refunds (next_poll_at) WHERE next_poll_at IS NOT NULL;

-- A refund that is not final when it is first recorded, whatever recorded it (the API, a notification,
-- a bill), is queried until it is.
CREATE FUNCTION wxrecon.schedule_new_refund() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.next_poll_at IS NULL AND NEW.status IN ('PROCESSING', 'ABNORMAL') THEN
        NEW.next_poll_at := now();
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refunds_schedule_new BEFORE INSERT ON wxrecon.refunds
    FOR EACH ROW EXECUTE FUNCTION wxrecon.schedule_new_refund();
UPDATE wxrecon.refunds SET next_poll_at = now() WHERE status IN ('PROCESSING', 'ABNORMAL');

-- The refund JSON gains where it came from and the reason asked for.
CREATE OR REPLACE FUNCTION wxrecon.refund_json(p_mchid text, p_out_refund_no text) RETURNS jsonb
    LANGUAGE sql STABLE
    RETURN (
        SELECT jsonb_build_object(
            'mchid', r.mchid, 'out_refund_no', r.out_refund_no, 'out_trade_no', r.out_trade_no,
            'refund_id', r.refund_id, 'transaction_id', r.transaction_id, 'amount_refund', r.amount_refund,
            'amount_total', r.amount_total, 'status', r.status, 'success_time', wxrecon.rfc3339(r.success_time),
            'status_changed_at', wxrecon.rfc3339(r.status_changed_at), 'created_at', wxrecon.rfc3339(r.created_at),
            'updated_at', wxrecon.rfc3339(r.updated_at),
            'origin', CASE WHEN q.mchid IS NULL THEN 'wechat' ELSE 'api' END,
            'reason', q.reason,
            'events', coalesce((
                SELECT jsonb_agg(jsonb_build_object(
                    'id', e.id, 'source', e.source, 'notify_id', e.notify_id, 'event_type', e.event_type,
                    'refund_status', e.refund_status, 'amount_refund', e.amount_refund,
                    'occurred_at', wxrecon.rfc3339(e.occurred_at), 'received_at', wxrecon.rfc3339(e.received_at))
                    ORDER BY e.id)
                FROM wxrecon.payment_events e
                WHERE e.mchid = r.mchid AND e.out_trade_no = r.out_trade_no AND e.out_refund_no = r.out_refund_no),
                '[]'))
        FROM wxrecon.refunds r
        LEFT JOIN wxrecon.refund_requests q ON q.mchid = r.mchid AND q.out_refund_no = r.out_refund_no
        WHERE r.mchid = p_mchid AND r.out_refund_no = p_out_refund_no);

-- A single order's JSON gains what its successful refunds came to, as the list already shows
-- (partial refunds leave the order SUCCESS: refunded_total tells how much went back).
CREATE OR REPLACE FUNCTION wxrecon.order_json(p_mchid text, p_out_trade_no text) RETURNS jsonb
    LANGUAGE sql STABLE
    RETURN (
        SELECT jsonb_build_object(
            'mchid', o.mchid, 'out_trade_no', o.out_trade_no, 'appid', o.appid, 'description', o.description,
            'amount_total', o.amount_total, 'currency', o.currency, 'state', o.state, 'state_desc', o.state_desc,
            'transaction_id', o.transaction_id, 'trade_type', o.trade_type, 'bank_type', o.bank_type,
            'payer_openid', o.payer_openid, 'payer_total', o.payer_total,
            'success_time', wxrecon.rfc3339(o.success_time), 'origin', o.origin, 'state_source', o.state_source,
            'state_changed_at', wxrecon.rfc3339(o.state_changed_at), 'created_at', wxrecon.rfc3339(o.created_at),
            'updated_at', wxrecon.rfc3339(o.updated_at), 'expire_at', wxrecon.rfc3339(o.expire_at),
            'placed_at', wxrecon.rfc3339(o.placed_at), 'notified_at', wxrecon.rfc3339(o.notified_at),
            'next_poll_at', wxrecon.rfc3339(o.next_poll_at), 'poll_attempts', o.poll_attempts,
            'last_polled_at', wxrecon.rfc3339(o.last_polled_at), 'last_poll_error', o.last_poll_error,
            'refunded_total', (SELECT coalesce(sum(r.amount_refund), 0) FROM wxrecon.refunds r
                                WHERE r.mchid = o.mchid AND r.out_trade_no = o.out_trade_no AND r.status = 'SUCCESS'),
            'events', coalesce((
                SELECT jsonb_agg(jsonb_build_object(
                    'id', e.id, 'source', e.source, 'notify_id', e.notify_id, 'event_type', e.event_type,
                    'trade_state', e.trade_state, 'refund_status', e.refund_status,
                    'transaction_id', e.transaction_id, 'out_refund_no', e.out_refund_no,
                    'amount_total', e.amount_total, 'payer_total', e.payer_total, 'amount_refund', e.amount_refund,
                    'occurred_at', wxrecon.rfc3339(e.occurred_at), 'received_at', wxrecon.rfc3339(e.received_at))
                    ORDER BY e.id)
                FROM wxrecon.payment_events e WHERE e.mchid = o.mchid AND e.out_trade_no = o.out_trade_no), '[]'),
            'refunds', coalesce((
                SELECT jsonb_agg(jsonb_build_object(
                    'out_refund_no', r.out_refund_no, 'refund_id', r.refund_id, 'transaction_id', r.transaction_id,
                    'amount_refund', r.amount_refund, 'amount_total', r.amount_total, 'status', r.status,
                    'success_time', wxrecon.rfc3339(r.success_time), 'created_at', wxrecon.rfc3339(r.created_at),
                    'updated_at', wxrecon.rfc3339(r.updated_at))
                    ORDER BY r.created_at, r.out_refund_no)
                FROM wxrecon.refunds r WHERE r.mchid = o.mchid AND r.out_trade_no = o.out_trade_no), '[]'))
        FROM wxrecon.orders o WHERE o.mchid = p_mchid AND o.out_trade_no = p_out_trade_no);
