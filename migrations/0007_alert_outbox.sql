-- The durable outbox for alerts.webhook_url: a discrepancy finance or on-call
-- must hear about is queued by a trigger in the same transaction that opens it,
-- so a crash or restart loses no push, and one row per discrepancy means one
-- push per discrepancy however many instances run. Queued whether or not a
-- webhook is configured (the database cannot know); wxrecond drops what is
-- a day old unsent, so the table stays small.

CREATE TABLE wxrecon.alert_outbox (
    discrepancy_id bigint      PRIMARY KEY REFERENCES wxrecon.discrepancies (id) ON DELETE CASCADE,
    kind           text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    due_at         timestamptz NOT NULL DEFAULT now(),  -- next try; a claim moves it on as a lease
    attempts       integer     NOT NULL DEFAULT 0,
    last_error     text,
    sent_at        timestamptz,
    outcome        text CHECK (outcome IN ('pushed', 'resolved_before_push', 'expired'))
);
CREATE INDEX alert_outbox_due ON wxrecon.alert_outbox (due_at) WHERE sent_at IS NULL;

CREATE FUNCTION wxrecon.queue_alert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO wxrecon.alert_outbox (discrepancy_id, kind) VALUES (NEW.id, NEW.kind)
    ON CONFLICT (discrepancy_id) DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER discrepancies_queue_alert
    AFTER INSERT ON wxrecon.discrepancies
    FOR EACH ROW
    WHEN (NEW.kind IN ('stuck', 'amount_mismatch', 'unknown_order', 'paid_after_close')
          OR NEW.kind LIKE 'refund\_%')
    EXECUTE FUNCTION wxrecon.queue_alert();
