-- The ledger: orders, refunds, the append-only event log, discrepancies for
-- finance and the bounded log of rejected notifications.
-- Money is bigint fen; times are timestamptz.

CREATE TABLE wxrecon.orders (
    mchid            text        NOT NULL,
    out_trade_no     text        NOT NULL,
    appid            text,
    description      text,
    amount_total     bigint      NOT NULL CHECK (amount_total >= 0),
    currency         text        NOT NULL DEFAULT 'CNY',
    state            text        NOT NULL DEFAULT 'NOTPAY'
        CHECK (state IN ('NOTPAY', 'USERPAYING', 'SUCCESS', 'REFUND', 'CLOSED', 'REVOKED', 'PAYERROR')),
    state_desc       text,
    transaction_id   text,
    trade_type       text,
    bank_type        text,
    payer_openid     text,
    payer_total      bigint,
    success_time     timestamptz,
    origin           text        NOT NULL DEFAULT 'sql' CHECK (origin IN ('api', 'sql', 'notify')),
    state_source     text        NOT NULL DEFAULT 'register'
        CHECK (state_source IN ('register', 'notify', 'query', 'close')),
    state_changed_at timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    expire_at        timestamptz,
    placed_at        timestamptz,
    notified_at      timestamptz,
    next_poll_at     timestamptz,
    poll_attempts    integer     NOT NULL DEFAULT 0,
    last_polled_at   timestamptz,
    last_poll_error  text,
    PRIMARY KEY (mchid, out_trade_no)
);
CREATE INDEX orders_transaction_id ON wxrecon.orders (mchid, transaction_id) WHERE transaction_id IS NOT NULL;
CREATE INDEX orders_next_poll_at ON wxrecon.orders (next_poll_at) WHERE next_poll_at IS NOT NULL;

CREATE TABLE wxrecon.refunds (
    mchid             text        NOT NULL,
    out_refund_no     text        NOT NULL,
    out_trade_no      text        NOT NULL,
    refund_id         text,
    transaction_id    text,
    amount_refund     bigint      NOT NULL CHECK (amount_refund >= 0),
    amount_total      bigint      CHECK (amount_total >= 0),
    status            text        NOT NULL CHECK (status IN ('PROCESSING', 'SUCCESS', 'CLOSED', 'ABNORMAL')),
    success_time      timestamptz,
    status_changed_at timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mchid, out_refund_no)
);
CREATE INDEX refunds_order ON wxrecon.refunds (mchid, out_trade_no);

CREATE TABLE wxrecon.payment_events (
    id             bigserial   PRIMARY KEY,
    mchid          text        NOT NULL,
    out_trade_no   text        NOT NULL,
    source         text        NOT NULL CHECK (source IN ('notify_v3', 'notify_v2', 'query_v3', 'query_v2', 'close')),
    notify_id      text,
    event_type     text        NOT NULL,
    trade_state    text,
    refund_status  text,
    transaction_id text,
    out_refund_no  text,
    amount_total   bigint,
    payer_total    bigint,
    amount_refund  bigint,
    occurred_at    timestamptz,
    received_at    timestamptz NOT NULL DEFAULT now(),
    payload        jsonb       NOT NULL,
    raw_body       text,
    raw_headers    jsonb,
    CHECK ((out_refund_no IS NULL) = (refund_status IS NULL))
);
-- Fact identities: a fact already recorded is recognised whatever its source.
CREATE UNIQUE INDEX payment_events_notify_id ON wxrecon.payment_events (mchid, notify_id)
    WHERE notify_id IS NOT NULL;
CREATE UNIQUE INDEX payment_events_payment_fact ON wxrecon.payment_events (mchid, transaction_id, trade_state)
    WHERE out_refund_no IS NULL AND transaction_id IS NOT NULL;
CREATE UNIQUE INDEX payment_events_unpaid_fact ON wxrecon.payment_events (mchid, out_trade_no, trade_state)
    WHERE out_refund_no IS NULL AND transaction_id IS NULL;
CREATE UNIQUE INDEX payment_events_refund_fact ON wxrecon.payment_events (mchid, out_refund_no, refund_status)
    WHERE out_refund_no IS NOT NULL;
CREATE INDEX payment_events_order ON wxrecon.payment_events (mchid, out_trade_no);

-- The log is evidence: the database itself refuses to rewrite it.
CREATE FUNCTION wxrecon.refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'wxrecon.payment_events is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER payment_events_append_only
    BEFORE UPDATE OR DELETE ON wxrecon.payment_events
    FOR EACH ROW EXECUTE FUNCTION wxrecon.refuse_event_change();
CREATE TRIGGER payment_events_no_truncate
    BEFORE TRUNCATE ON wxrecon.payment_events
    FOR EACH STATEMENT EXECUTE FUNCTION wxrecon.refuse_event_change();

CREATE TABLE wxrecon.discrepancies (
    id           bigserial   PRIMARY KEY,
    mchid        text        NOT NULL,
    out_trade_no text        NOT NULL,
    kind         text        NOT NULL,
    detail       jsonb       NOT NULL DEFAULT '{}',
    detected_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz
);
CREATE UNIQUE INDEX discrepancies_one_open ON wxrecon.discrepancies (mchid, out_trade_no, kind)
    WHERE resolved_at IS NULL;

CREATE TABLE wxrecon.rejected_notifications (
    id          bigserial   PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    path        text        NOT NULL,
    mchid       text,
    reason      text        NOT NULL,
    remote_addr text,
    headers     jsonb       NOT NULL DEFAULT '{}',
    body        text        CHECK (octet_length(body) <= 16384)
);

-- Exact conversions between timestamptz and Unix microseconds (the daemon's time unit).
CREATE FUNCTION wxrecon.from_micros(bigint) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN timestamptz 'epoch' + $1 * interval '1 microsecond';
CREATE FUNCTION wxrecon.to_micros(timestamptz) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (extract(epoch FROM $1) * 1000000)::bigint;
