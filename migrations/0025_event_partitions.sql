-- payment_events by month (issue 15): history no longer slows the hot path, and retention detaches a month
-- instead of deleting rows from the evidence.
--
-- A unique index of a partitioned table must contain the partition key, so the four partial unique
-- indexes that recognised a fact already recorded (notification id, paid and unpaid payment facts, refund
-- facts) cannot stay on the events. The identities move to fact_identities, one narrow unpartitioned table
-- whose primary key is the fact's identity: uniqueness holds across every partition, attached or
-- detached, because there is only one table to be unique in. A statement trigger on payment_events
-- writes the identities of the rows it inserts, whoever inserts them, in the inserting statement: two
-- transactions recording one fact collide on the key exactly as they collided on the partial indexes.
-- No event may be written between the copy of the identities below and the swap of the table (another
-- instance still running the previous build during a rolling upgrade): it would have no identity.
LOCK TABLE wxrecon.payment_events IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE wxrecon.fact_identities (
    mchid    text   NOT NULL,
    kind     "char" NOT NULL CHECK (kind IN ('n', 'p', 'u', 'r')),  -- notify id, paid, unpaid, refund
    subject  text   NOT NULL,  -- notify_id, transaction_id, out_trade_no, out_refund_no
    state    text   NOT NULL,  -- '' for a notify id; trade_state; refund_status
    event_id bigint NOT NULL,  -- the event that first recorded it
    PRIMARY KEY (mchid, subject, state, kind)
);

-- Rows go in through wxrecon.payment_events, whose statement trigger records their identities. A
-- statement trigger fires only for the table an INSERT names, so on a partition (attached or detached)
-- this refuses exactly the inserts that would bypass it.
CREATE FUNCTION wxrecon.refuse_partition_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are inserted into wxrecon.payment_events, not into its partition % (their identities are recorded there)',
        TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END;
$$;

-- The triggers a partition needs of its own: statement triggers are not inherited from the table.
CREATE FUNCTION wxrecon.guard_event_partition(p_name text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TRIGGER payment_events_no_truncate BEFORE TRUNCATE ON wxrecon.%I'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION wxrecon.refuse_event_change()', p_name);
    EXECUTE format('CREATE TRIGGER payment_events_inserted_through_table BEFORE INSERT ON wxrecon.%I'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION wxrecon.refuse_partition_insert()', p_name);
END;
$$;

-- The identities of a set of events, as the partial indexes had them (a NULL state identified nothing).
CREATE FUNCTION wxrecon.record_fact_identities() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO wxrecon.fact_identities (mchid, kind, subject, state, event_id)
    SELECT e.mchid, i.kind, i.subject, i.state, e.id
      FROM inserted_events e
     CROSS JOIN LATERAL (VALUES
           ('n'::"char", e.notify_id, ''),
           (CASE WHEN e.out_refund_no IS NOT NULL THEN 'r'
                 WHEN e.transaction_id IS NOT NULL THEN 'p' ELSE 'u' END::"char",
            coalesce(e.out_refund_no, e.transaction_id, e.out_trade_no),
            coalesce(e.refund_status, e.trade_state))) AS i(kind, subject, state)
     WHERE i.subject IS NOT NULL AND i.state IS NOT NULL;
    RETURN NULL;
END;
$$;

INSERT INTO wxrecon.fact_identities (mchid, kind, subject, state, event_id)
SELECT e.mchid, i.kind, i.subject, i.state, e.id
  FROM wxrecon.payment_events e
 CROSS JOIN LATERAL (VALUES
       ('n'::"char", e.notify_id, ''),
       (CASE WHEN e.out_refund_no IS NOT NULL THEN 'r'
             WHEN e.transaction_id IS NOT NULL THEN 'p' ELSE 'u' END::"char",
        coalesce(e.out_refund_no, e.transaction_id, e.out_trade_no),
        coalesce(e.refund_status, e.trade_state))) AS i(kind, subject, state)
 WHERE i.subject IS NOT NULL AND i.state IS NOT NULL;

-- Every partition ever made, with its range, and when it was detached ([database] keep_months). Months
-- start at Beijing midnight, like the finance days.
CREATE TABLE wxrecon.event_partitions (
    name        text        PRIMARY KEY,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL CHECK (ends_at > starts_at),
    detached_at timestamptz
);

CREATE FUNCTION wxrecon.beijing_month_start(timestamptz, months integer DEFAULT 0) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN wxrecon.beijing_midnight((date_trunc('month', $1 AT TIME ZONE 'Asia/Shanghai')
                                     + make_interval(months => $2))::date);

-- The rows already recorded become one partition, from the beginning to the start of this month, or to
-- its end when some arrived this month: attaching the table reads it once (to check the range) and builds
-- its (id, received_at) key, where copying a year of evidence into monthly partitions would rewrite it
-- all during the upgrade (minutes for millions of events, while wxrecond waits to start). It is detached
-- whole once its last month is past keep_months. A new installation starts with this month's partition.
-- Views and SQL-standard function bodies bind to the table itself, not its name (daily_summary,
-- order_json): each is made again from its own definition on the partitioned table.
DO $$
DECLARE
    v_views     text[] := ARRAY(SELECT DISTINCT format('CREATE OR REPLACE VIEW %s AS %s', r.ev_class::regclass,
                                                       pg_get_viewdef(r.ev_class))
                                  FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
                                 WHERE d.classid = 'pg_rewrite'::regclass
                                   AND d.refobjid = 'wxrecon.payment_events'::regclass
                                   AND r.ev_class <> 'wxrecon.payment_events'::regclass);
    v_functions text[] := ARRAY(SELECT DISTINCT pg_get_functiondef(d.objid) FROM pg_depend d
                                 WHERE d.classid = 'pg_proc'::regclass
                                   AND d.refobjid = 'wxrecon.payment_events'::regclass);
    v_def       text;
    v_role      text;
    v_newest  timestamptz := (SELECT max(received_at) FROM wxrecon.payment_events);
    v_until   timestamptz := CASE WHEN v_newest >= wxrecon.beijing_month_start(now())
                                  THEN wxrecon.beijing_month_start(v_newest, 1)
                                  ELSE wxrecon.beijing_month_start(now()) END;
BEGIN
    IF v_until > wxrecon.beijing_month_start(now(), 1) THEN
        RAISE WARNING 'events received as late as % (a clock ahead when they were written) keep every event up to then in wxrecon.payment_events_before_partitioning; monthly partitions start after it',
            v_newest;
    END IF;
    ALTER TABLE wxrecon.payment_events RENAME TO payment_events_before_partitioning;
    DROP INDEX wxrecon.payment_events_notify_id, wxrecon.payment_events_payment_fact,
               wxrecon.payment_events_unpaid_fact, wxrecon.payment_events_refund_fact;
    ALTER TABLE wxrecon.payment_events_before_partitioning DROP CONSTRAINT payment_events_pkey;
    ALTER INDEX wxrecon.payment_events_order RENAME TO payment_events_before_partitioning_order;
    ALTER INDEX wxrecon.payment_events_from_bill RENAME TO payment_events_before_partitioning_from_bill;
    -- The parent's row trigger is cloned onto every partition, this one included.
    DROP TRIGGER payment_events_append_only ON wxrecon.payment_events_before_partitioning;

    CREATE TABLE wxrecon.payment_events (
        id             bigint      NOT NULL DEFAULT nextval('wxrecon.payment_events_id_seq'),
        mchid          text        NOT NULL,
        out_trade_no   text        NOT NULL,
        source         text        NOT NULL,
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
        -- Named as on the table before, so that it can be attached.
        CONSTRAINT payment_events_source_check
            CHECK (source IN ('notify_v3', 'notify_v2', 'query_v3', 'query_v2', 'close', 'bill',
                              'refund_query_v3', 'refund_query_v2')),
        CONSTRAINT payment_events_check CHECK ((out_refund_no IS NULL) = (refund_status IS NULL)),
        PRIMARY KEY (id, received_at)
    ) PARTITION BY RANGE (received_at);
    ALTER SEQUENCE wxrecon.payment_events_id_seq OWNED BY wxrecon.payment_events.id;
    CREATE INDEX payment_events_order ON wxrecon.payment_events (mchid, out_trade_no);
    CREATE INDEX payment_events_from_bill ON wxrecon.payment_events (mchid, out_trade_no)
        WHERE source = 'bill';
    CREATE TRIGGER payment_events_append_only
        BEFORE UPDATE OR DELETE ON wxrecon.payment_events
        FOR EACH ROW EXECUTE FUNCTION wxrecon.refuse_event_change();
    CREATE TRIGGER payment_events_no_truncate
        BEFORE TRUNCATE ON wxrecon.payment_events
        FOR EACH STATEMENT EXECUTE FUNCTION wxrecon.refuse_event_change();
    CREATE TRIGGER payment_events_identities
        AFTER INSERT ON wxrecon.payment_events REFERENCING NEW TABLE AS inserted_events
        FOR EACH STATEMENT EXECUTE FUNCTION wxrecon.record_fact_identities();

    EXECUTE format('ALTER TABLE wxrecon.payment_events ATTACH PARTITION wxrecon.payment_events_before_partitioning'
                   ' FOR VALUES FROM (MINVALUE) TO (%L)', to_char(v_until AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS+00'));
    INSERT INTO wxrecon.event_partitions (name, starts_at, ends_at)
    VALUES ('payment_events_before_partitioning', '-infinity', v_until);

    -- Rows past the last partition (a clock far ahead, the maintenance task stopped for months) are
    -- kept rather than refused. It is never detached.
    CREATE TABLE wxrecon.payment_events_later PARTITION OF wxrecon.payment_events DEFAULT;
    PERFORM wxrecon.guard_event_partition('payment_events_later');
    CREATE TRIGGER payment_events_inserted_through_table
        BEFORE INSERT ON wxrecon.payment_events_before_partitioning
        FOR EACH STATEMENT EXECUTE FUNCTION wxrecon.refuse_partition_insert();

    FOREACH v_def IN ARRAY v_views || v_functions LOOP
        EXECUTE v_def;
    END LOOP;

    -- Finance and operators read the events as they did (default privileges cover tables made later).
    FOREACH v_role IN ARRAY ARRAY['wxrecon_finance', 'wxrecon_operator'] LOOP
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = v_role)
           AND has_table_privilege(v_role, 'wxrecon.payment_events_before_partitioning', 'SELECT') THEN
            EXECUTE format('GRANT SELECT ON wxrecon.payment_events, wxrecon.fact_identities,'
                           ' wxrecon.event_partitions TO %I', v_role);
        END IF;
    END LOOP;
END;
$$;

-- The monthly partitions from the end of the last one through the month p_months_ahead after p_now's;
-- returns the names made. wxrecond calls it at start and every hour, from every instance (an advisory
-- lock makes them take turns). Each month is made as a table of its own, then attached: ATTACH takes
-- the table's SHARE UPDATE EXCLUSIVE lock, which inserts do not wait for, where CREATE TABLE ... PARTITION
-- OF would take its ACCESS EXCLUSIVE lock and, waiting behind a long reader, make every insert queue
-- behind it. A month whose rows already went to the default partition (PostgreSQL would refuse to attach
-- it) is left there, with a warning, and the months after it are made.
CREATE FUNCTION wxrecon.create_event_partitions(p_months_ahead integer, p_now timestamptz DEFAULT now())
    RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    v_until timestamptz := wxrecon.beijing_month_start(p_now, p_months_ahead + 1);
    v_start timestamptz;
    v_end   timestamptz;
    v_name  text;
    v_from  text;
    v_to    text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('wxrecon.event_partitions'));
    SELECT max(ends_at) INTO v_start FROM wxrecon.event_partitions;
    WHILE v_start < v_until LOOP
        v_end := wxrecon.beijing_month_start(v_start, 1);
        v_name := 'payment_events_' || to_char(v_start AT TIME ZONE 'Asia/Shanghai', '"y"YYYY"m"MM');
        IF EXISTS (SELECT FROM wxrecon.payment_events_later WHERE received_at >= v_start AND received_at < v_end) THEN
            RAISE WARNING 'the events of % stay in wxrecon.payment_events_later: some arrived before its partition was made', v_name;
            v_start := v_end;
            CONTINUE;
        END IF;
        -- Bounds written in UTC with an explicit offset: the session's DateStyle and TimeZone do not matter.
        v_from := to_char(v_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS+00');
        v_to := to_char(v_end AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS+00');
        EXECUTE format('CREATE TABLE wxrecon.%I (LIKE wxrecon.payment_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       v_name);
        -- The range as a constraint lets ATTACH skip its check of the rows (there are none).
        EXECUTE format('ALTER TABLE wxrecon.%I ADD CONSTRAINT %I CHECK (received_at >= %L AND received_at < %L)',
                       v_name, v_name || '_range', v_from, v_to);
        PERFORM wxrecon.guard_event_partition(v_name);
        EXECUTE format('ALTER TABLE wxrecon.payment_events ATTACH PARTITION wxrecon.%I FOR VALUES FROM (%L) TO (%L)',
                       v_name, v_from, v_to);
        EXECUTE format('ALTER TABLE wxrecon.%I DROP CONSTRAINT %I', v_name, v_name || '_range');
        INSERT INTO wxrecon.event_partitions (name, starts_at, ends_at) VALUES (v_name, v_start, v_end);
        RETURN NEXT v_name;
        v_start := v_end;
    END LOOP;
END;
$$;

-- Detaches (never drops) the partitions whose whole range ended before the month p_keep_months before
-- p_now's, oldest first; returns their names. A detached partition stays a table of its own, refusing
-- changes like the events, and its facts keep their identities: a notification of a detached month
-- sent again is still a duplicate.
CREATE FUNCTION wxrecon.detach_event_partitions(p_keep_months integer, p_now timestamptz DEFAULT now())
    RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    v_before timestamptz := wxrecon.beijing_month_start(p_now, -p_keep_months);
    v_name   text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('wxrecon.event_partitions'));
    FOR v_name IN SELECT name FROM wxrecon.event_partitions
                   WHERE detached_at IS NULL AND ends_at <= v_before ORDER BY starts_at LOOP
        EXECUTE format('ALTER TABLE wxrecon.payment_events DETACH PARTITION wxrecon.%I', v_name);
        IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = format('wxrecon.%I', v_name)::regclass
                                                AND tgname = 'payment_events_append_only') THEN
            EXECUTE format('CREATE TRIGGER payment_events_append_only BEFORE UPDATE OR DELETE ON wxrecon.%I'
                           ' FOR EACH ROW EXECUTE FUNCTION wxrecon.refuse_event_change()', v_name);
        END IF;
        UPDATE wxrecon.event_partitions SET detached_at = now() WHERE name = v_name;
        RETURN NEXT v_name;
    END LOOP;
END;
$$;

SELECT wxrecon.create_event_partitions(3);
-- A partitioned table is never analysed by autovacuum (its partitions are): the views' plans need it.
ANALYZE wxrecon.payment_events;
