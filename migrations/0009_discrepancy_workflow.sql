-- The discrepancy lifecycle finance works (docs/interfaces.md §7.5, docs/finance.md "Working
-- discrepancies"): open -> acknowledged -> resolved, who did each step and why, an append-only history
-- of every change, the two functions people use to move a discrepancy on, and the role allowed to call
-- them. Also: the webhook push covers the bill kinds.

-- The workflow columns. A row the daemon resolved before this migration is resolved by the daemon.
ALTER TABLE wxrecon.discrepancies
    ADD COLUMN status          text NOT NULL DEFAULT 'open',
    ADD COLUMN acknowledged_at timestamptz,
    ADD COLUMN acknowledged_by text,
    ADD COLUMN resolved_by     text,
    ADD COLUMN resolution      text;

UPDATE wxrecon.discrepancies
   SET status = 'resolved', resolved_by = 'wxrecond',
       resolution = 'resolved by wxrecond before the discrepancy workflow existed'
 WHERE resolved_at IS NOT NULL;

-- The status agrees with the timestamps: resolved exactly when resolved_at is set (so the unique index
-- discrepancies_one_open, on resolved_at, still means "at most one unresolved row"), a resolution says
-- who and why, an acknowledgement says who and when.
ALTER TABLE wxrecon.discrepancies
    ADD CONSTRAINT discrepancies_status_check CHECK (status IN ('open', 'acknowledged', 'resolved')),
    ADD CONSTRAINT discrepancies_status_times CHECK (
        (status = 'resolved') = (resolved_at IS NOT NULL)
        AND (status = 'resolved') = (resolved_by IS NOT NULL)
        AND (status = 'resolved') = (resolution IS NOT NULL)
        AND (acknowledged_at IS NULL) = (acknowledged_by IS NULL)
        AND (status <> 'acknowledged' OR acknowledged_at IS NOT NULL)
        AND (status <> 'open' OR acknowledged_at IS NULL));

-- Every change of status, never altered afterwards. by: the person (acknowledge_discrepancy,
-- resolve_discrepancy) or 'wxrecond' (opened, or resolved by the daemon); note: the acknowledgement's
-- note or the resolution.
CREATE TABLE wxrecon.discrepancy_history (
    id             bigserial   PRIMARY KEY,
    discrepancy_id bigint      NOT NULL REFERENCES wxrecon.discrepancies (id),
    at             timestamptz NOT NULL DEFAULT now(),
    by             text        NOT NULL,
    from_status    text,                  -- null when the row was opened
    to_status      text        NOT NULL,
    note           text
);
CREATE INDEX discrepancy_history_discrepancy ON wxrecon.discrepancy_history (discrepancy_id, id);

-- What was there before: when each row was opened and, if so, resolved.
INSERT INTO wxrecon.discrepancy_history (discrepancy_id, at, by, from_status, to_status, note)
SELECT id, detected_at, 'wxrecond', NULL, 'open', NULL FROM wxrecon.discrepancies
UNION ALL
SELECT id, resolved_at, 'wxrecond', 'open', 'resolved', resolution FROM wxrecon.discrepancies
 WHERE status = 'resolved'
 ORDER BY 1, 2;

-- Append-only like payment_events: a trigger refuses changes (a superuser too), and no one, the owner
-- included, holds the privileges to change rows.
CREATE FUNCTION wxrecon.refuse_history_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'wxrecon.discrepancy_history is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER discrepancy_history_append_only
    BEFORE UPDATE OR DELETE ON wxrecon.discrepancy_history
    FOR EACH ROW EXECUTE FUNCTION wxrecon.refuse_history_change();
CREATE TRIGGER discrepancy_history_no_truncate
    BEFORE TRUNCATE ON wxrecon.discrepancy_history
    FOR EACH STATEMENT EXECUTE FUNCTION wxrecon.refuse_history_change();
REVOKE UPDATE, DELETE, TRUNCATE ON wxrecon.discrepancy_history FROM PUBLIC;
DO $$
BEGIN
    EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON wxrecon.discrepancy_history FROM %I', current_user);
END
$$;

-- Keeps the workflow columns right whoever writes the row. A statement that knows only resolved_at (SQL
-- by hand as the owner, wxrecon.reconcile_bill_day of 0008) resolves as the daemon, saying why by the
-- kind; the daemon's own statements in core/store set the columns themselves. Nothing goes back:
-- a resolved row stays resolved (the daemon opens a new row when the difference comes back), an
-- acknowledged one is not reopened.
CREATE FUNCTION wxrecon.discrepancy_status_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.status IS DISTINCT FROM OLD.status
       AND (OLD.status = 'resolved' OR (OLD.status = 'acknowledged' AND NEW.status = 'open')) THEN
        RAISE EXCEPTION 'discrepancy %: % cannot go back to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.resolved_at IS NOT NULL AND NEW.status <> 'resolved' THEN
        NEW.status := 'resolved';
        NEW.resolved_by := coalesce(NEW.resolved_by, 'wxrecond');
        NEW.resolution := coalesce(NEW.resolution, CASE
            WHEN NEW.kind IN ('missing_in_ledger', 'missing_in_bill', 'bill_amount_mismatch',
                              'refund_missing_in_ledger', 'refund_missing_in_bill', 'fee_mismatch',
                              'fund_flow_unmatched')
                THEN 'no longer found when the day was reconciled against its bills'
            WHEN NEW.kind = 'stuck' THEN 'the order is no longer stuck'
            WHEN NEW.kind = 'unknown_order' THEN 'a registration with the same amount took the order over'
            WHEN NEW.kind = 'refund_without_payment' THEN 'the payment behind the refund was reported'
            WHEN NEW.kind = 'refund_abnormal' THEN 'the refund was reported SUCCESS'
            ELSE 'resolved by wxrecond' END);
    ELSIF NEW.status = 'resolved' AND NEW.resolved_at IS NULL
          AND (TG_OP = 'INSERT' OR OLD.status <> 'resolved') THEN
        NEW.resolved_at := now();
    END IF;
    IF NEW.status = 'acknowledged' AND NEW.acknowledged_at IS NULL THEN
        NEW.acknowledged_at := now();
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER discrepancies_status_sync
    BEFORE INSERT OR UPDATE ON wxrecon.discrepancies
    FOR EACH ROW EXECUTE FUNCTION wxrecon.discrepancy_status_sync();

-- One history row per insert and per change of status. The note of an acknowledgement is not a column of
-- discrepancies: acknowledge_discrepancy hands it over in the transaction-local setting
-- wxrecon.history_note.
CREATE FUNCTION wxrecon.record_discrepancy_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO wxrecon.discrepancy_history (discrepancy_id, at, by, from_status, to_status, note)
        VALUES (NEW.id, now(), 'wxrecond', NULL, 'open', NULL);
        IF NEW.status = 'open' THEN
            RETURN NULL;
        END IF;
    END IF;
    INSERT INTO wxrecon.discrepancy_history (discrepancy_id, at, by, from_status, to_status, note)
    VALUES (NEW.id, now(),
            CASE NEW.status WHEN 'acknowledged' THEN NEW.acknowledged_by
                            WHEN 'resolved' THEN NEW.resolved_by ELSE 'wxrecond' END,
            CASE WHEN TG_OP = 'INSERT' THEN 'open' ELSE OLD.status END,
            NEW.status,
            CASE NEW.status WHEN 'resolved' THEN NEW.resolution
                            ELSE nullif(current_setting('wxrecon.history_note', true), '') END);
    RETURN NULL;
END
$$;
CREATE TRIGGER discrepancies_history_insert
    AFTER INSERT ON wxrecon.discrepancies
    FOR EACH ROW EXECUTE FUNCTION wxrecon.record_discrepancy_history();
-- Not "UPDATE OF status": that would miss a status set by discrepancies_status_sync.
CREATE TRIGGER discrepancies_history_status
    AFTER UPDATE ON wxrecon.discrepancies
    FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status)
    EXECUTE FUNCTION wxrecon.record_discrepancy_history();

-- Who is acting: a name, not blank, bounded (it is shown in lists and stored in every history row).
CREATE FUNCTION wxrecon.check_discrepancy_actor(who text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF who IS NULL OR btrim(who) = '' THEN
        RAISE EXCEPTION 'who must name the person acting' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF length(who) > 100 OR who ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'who must be at most 100 characters, without control characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- 'wxrecond' is the daemon's own name in the history: a person never signs as it.
    IF lower(btrim(who)) = 'wxrecond' THEN
        RAISE EXCEPTION 'who must name a person, not wxrecond' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN btrim(who);
END
$$;
REVOKE EXECUTE ON FUNCTION wxrecon.check_discrepancy_actor(text) FROM PUBLIC;

-- open -> acknowledged: someone is looking at it. False when the discrepancy is not open (no such id,
-- acknowledged already, or resolved). Runs as the owner, so the caller needs no right on the table.
CREATE FUNCTION wxrecon.acknowledge_discrepancy(id bigint, who text, note text DEFAULT NULL)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_who  text := wxrecon.check_discrepancy_actor(acknowledge_discrepancy.who);
    v_done boolean;
BEGIN
    IF length(acknowledge_discrepancy.note) > 4000 THEN
        RAISE EXCEPTION 'note must be at most 4000 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM set_config('wxrecon.history_note', coalesce(btrim(acknowledge_discrepancy.note), ''), true);
    UPDATE wxrecon.discrepancies d
       SET status = 'acknowledged', acknowledged_at = now(), acknowledged_by = v_who
     WHERE d.id = acknowledge_discrepancy.id AND d.status = 'open';
    v_done := FOUND;
    PERFORM set_config('wxrecon.history_note', '', true);
    RETURN v_done;
END
$$;

-- open or acknowledged -> resolved, with the reason (required). False when there is no such
-- discrepancy or it is resolved already.
CREATE FUNCTION wxrecon.resolve_discrepancy(id bigint, who text, note text)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_who text := wxrecon.check_discrepancy_actor(resolve_discrepancy.who);
BEGIN
    IF resolve_discrepancy.note IS NULL OR btrim(resolve_discrepancy.note) = '' THEN
        RAISE EXCEPTION 'a resolution needs a note saying why' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF length(resolve_discrepancy.note) > 4000 THEN
        RAISE EXCEPTION 'note must be at most 4000 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE wxrecon.discrepancies d
       SET status = 'resolved', resolved_at = now(), resolved_by = v_who,
           resolution = btrim(resolve_discrepancy.note)
     WHERE d.id = resolve_discrepancy.id AND d.status IN ('open', 'acknowledged');
    RETURN FOUND;
END
$$;
REVOKE EXECUTE ON FUNCTION wxrecon.acknowledge_discrepancy(bigint, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION wxrecon.resolve_discrepancy(bigint, text, text) FROM PUBLIC;

-- Finance sees where each unresolved discrepancy stands. Columns are added at the end, so the view keeps
-- its grants and what reads it by name. "Open" here means not resolved: acknowledged rows are listed.
CREATE OR REPLACE VIEW wxrecon.open_discrepancies AS
SELECT d.id, d.mchid, d.out_trade_no, d.kind, d.detail, d.detected_at, d.resolved_at,
       o.amount_total, o.payer_total, o.state,
       d.status, d.acknowledged_at, d.acknowledged_by
  FROM wxrecon.discrepancies d
  LEFT JOIN wxrecon.orders o ON o.mchid = d.mchid AND o.out_trade_no = d.out_trade_no
 WHERE d.resolved_at IS NULL;

-- The role that works discrepancies: what wxrecon_finance reads, plus the two functions; it writes
-- nothing else. Created like wxrecon_finance in 0006: it may exist already, and a migrating user that
-- may not create it gets a warning with the statements to run. Reading is granted both through
-- membership in wxrecon_finance (when this user may grant it) and directly, so the role reads the same
-- whether or not wxrecon_finance exists or may be granted.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'wxrecon_operator') THEN
        BEGIN
            CREATE ROLE wxrecon_operator NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RAISE WARNING 'role wxrecon_operator does not exist and % may not create it: no one can acknowledge or resolve discrepancies through it yet', current_user
                    USING HINT = format('As a superuser: CREATE ROLE wxrecon_operator NOLOGIN; GRANT wxrecon_finance TO wxrecon_operator; then as %I: GRANT USAGE ON SCHEMA wxrecon TO wxrecon_operator; GRANT SELECT ON ALL TABLES IN SCHEMA wxrecon TO wxrecon_operator; GRANT EXECUTE ON FUNCTION wxrecon.acknowledge_discrepancy(bigint, text, text), wxrecon.resolve_discrepancy(bigint, text, text) TO wxrecon_operator (docs/finance.md)', current_user);
                RETURN;
        END;
    END IF;
    BEGIN
        GRANT wxrecon_finance TO wxrecon_operator;
    EXCEPTION
        -- No wxrecon_finance, or this user may not grant it: the direct grants below suffice.
        WHEN undefined_object OR insufficient_privilege OR invalid_grant_operation THEN NULL;
    END;
    GRANT USAGE ON SCHEMA wxrecon TO wxrecon_operator;
    GRANT SELECT ON ALL TABLES IN SCHEMA wxrecon TO wxrecon_operator;
    ALTER DEFAULT PRIVILEGES IN SCHEMA wxrecon GRANT SELECT ON TABLES TO wxrecon_operator;
    GRANT EXECUTE ON FUNCTION wxrecon.acknowledge_discrepancy(bigint, text, text),
                              wxrecon.resolve_discrepancy(bigint, text, text) TO wxrecon_operator;
END
$$;

-- The webhook (0007) pushes the bill kinds too; refund_missing_in_ledger / refund_missing_in_bill match
-- refund\_% already.
DROP TRIGGER discrepancies_queue_alert ON wxrecon.discrepancies;
CREATE TRIGGER discrepancies_queue_alert
    AFTER INSERT ON wxrecon.discrepancies
    FOR EACH ROW
    WHEN (NEW.kind IN ('stuck', 'amount_mismatch', 'unknown_order', 'paid_after_close',
                       'missing_in_ledger', 'missing_in_bill', 'bill_amount_mismatch', 'fee_mismatch',
                       'fund_flow_unmatched')
          OR NEW.kind LIKE 'refund\_%')
    EXECUTE FUNCTION wxrecon.queue_alert();
