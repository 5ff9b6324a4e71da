-- Finance views over the ledger (docs/interfaces.md §7.7, docs/finance.md) and the read-only role
-- wxrecon_finance that finance staff are made members of.

-- The calendar day in Beijing time (Asia/Shanghai, UTC+8 all year), the day WeChat Pay's bills use.
CREATE FUNCTION wxrecon.beijing_day(timestamptz) RETURNS date
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN ($1 AT TIME ZONE 'Asia/Shanghai')::date;

-- One row per Beijing day and merchant. Definitions (docs/finance.md explains them for finance):
--
-- An order is paid when WeChat Pay has reported its payment: it has a success_time and a
-- transaction_id. That is every SUCCESS and REFUND order, and also an order in another state that
-- WeChat reports paid all the same (CLOSED with paid_after_close, REVOKED or PAYERROR with
-- state_conflict): the money arrived, so it is counted, and the discrepancy says why the state
-- disagrees. A paid order belongs to the day of its success_time, any other order to the day of
-- its created_at.
--
--   orders              orders belonging to the day: paid ones by payment, the rest by creation
--   paid_count          paid orders of the day
--   paid_amount         fen: the sum of payer_total, what WeChat reports the payer paid (coupons
--                       taken off), or of amount_total for an order paid without a payer_total.
--                       WeChat's figure, not the registered amount_total: on an amount_mismatch
--                       the registration is what was wrong, and the money taken is what counts.
--   paid_by_notify      paid orders whose payment wxrecon first learned from a notification (the
--                       first payment_events row reporting it SUCCESS or REFUND came from notify_v3
--                       or notify_v2)
--   paid_by_query       paid orders whose payment it first learned by asking (query_v3, query_v2,
--                       or the final query before closing: source close). A paid order with no
--                       such event at all (marked paid by SQL) is in neither column.
--   refunded_amount     fen: the sum of amount_refund of refunds in status SUCCESS, by the day of the
--                       refund's success_time (when WeChat gave none, of status_changed_at: when
--                       wxrecon recorded the SUCCESS), whatever the order refunded and its day
--   closed_count        orders of the day in state CLOSED without a payment (an order closed and
--                       paid all the same is counted as paid): orders = paid_count + closed_count +
--                       those unpaid in any other state
--   open_discrepancies  unresolved discrepancies concerning the day's orders (by the order's day, so
--                       a day is settled when it has none); one without an order row (a refund for
--                       an order not on record) by the day it was detected
--
-- A day has a row when it has any of these; days with only refunds or only discrepancies too.
-- Cost: plain joins, which the planner hashes for the whole view or drives from the orders of the
-- days asked for (through the existing indexes); no new index, so applying a fact keeps its HOT
-- updates of orders. The paid test appears twice below and must stay the same in both places.
CREATE VIEW wxrecon.daily_summary AS
SELECT day, mchid,
       sum(orders) AS orders,
       sum(paid_count) AS paid_count,
       sum(paid_amount)::bigint AS paid_amount,
       sum(paid_by_notify) AS paid_by_notify,
       sum(paid_by_query) AS paid_by_query,
       sum(refunded_amount)::bigint AS refunded_amount,
       sum(closed_count) AS closed_count,
       sum(open_discrepancies) AS open_discrepancies
  FROM (
        SELECT wxrecon.beijing_day(CASE WHEN o.paid THEN o.success_time ELSE o.created_at END) AS day,
               o.mchid,
               1 AS orders,
               CASE WHEN o.paid THEN 1 ELSE 0 END AS paid_count,
               CASE WHEN o.paid THEN coalesce(o.payer_total, o.amount_total) ELSE 0 END AS paid_amount,
               CASE WHEN o.paid AND f.source IN ('notify_v3', 'notify_v2') THEN 1 ELSE 0 END AS paid_by_notify,
               CASE WHEN o.paid AND f.source NOT IN ('notify_v3', 'notify_v2') THEN 1 ELSE 0 END AS paid_by_query,
               0::bigint AS refunded_amount,
               CASE WHEN NOT o.paid AND o.state = 'CLOSED' THEN 1 ELSE 0 END AS closed_count,
               0 AS open_discrepancies
          FROM (SELECT mchid, out_trade_no, state, amount_total, payer_total, success_time, created_at,
                       success_time IS NOT NULL AND transaction_id IS NOT NULL AS paid
                  FROM wxrecon.orders) o
          -- How each payment was first learned: the event reporting the order paid with no earlier one.
          -- Written as an anti-join rather than an aggregate, so that a query for some days looks up
          -- only their orders' events (index payment_events_order) and the whole view hashes them.
          LEFT JOIN (SELECT e.mchid, e.out_trade_no, e.source
                       FROM wxrecon.payment_events e
                      WHERE e.out_refund_no IS NULL AND e.trade_state IN ('SUCCESS', 'REFUND')
                        AND NOT EXISTS (SELECT FROM wxrecon.payment_events earlier
                                         WHERE earlier.mchid = e.mchid AND earlier.out_trade_no = e.out_trade_no
                                           AND earlier.out_refund_no IS NULL
                                           AND earlier.trade_state IN ('SUCCESS', 'REFUND')
                                           AND earlier.id < e.id)) f
            ON f.mchid = o.mchid AND f.out_trade_no = o.out_trade_no
        UNION ALL
        SELECT wxrecon.beijing_day(coalesce(r.success_time, r.status_changed_at)), r.mchid,
               0, 0, 0, 0, 0, r.amount_refund, 0, 0
          FROM wxrecon.refunds r
         WHERE r.status = 'SUCCESS'
        UNION ALL
        SELECT coalesce(wxrecon.beijing_day(CASE WHEN o.success_time IS NOT NULL AND o.transaction_id IS NOT NULL
                                                 THEN o.success_time ELSE o.created_at END),
                        wxrecon.beijing_day(d.detected_at)),
               d.mchid,
               0, 0, 0, 0, 0, 0, 0, 1
          FROM wxrecon.discrepancies d
          LEFT JOIN wxrecon.orders o ON o.mchid = d.mchid AND o.out_trade_no = d.out_trade_no
         WHERE d.resolved_at IS NULL
       ) facts
 GROUP BY day, mchid;

-- What finance must still look at, beside what the order says. An unknown_order has its order row
-- (created from the notification); a refund for an order not on record has none, hence the outer join.
CREATE VIEW wxrecon.open_discrepancies AS
SELECT d.id, d.mchid, d.out_trade_no, d.kind, d.detail, d.detected_at, d.resolved_at,
       o.amount_total, o.payer_total, o.state
  FROM wxrecon.discrepancies d
  LEFT JOIN wxrecon.orders o ON o.mchid = d.mchid AND o.out_trade_no = d.out_trade_no
 WHERE d.resolved_at IS NULL;

-- The read-only role. Roles belong to the whole cluster: it may exist already (made by a DBA, or by
-- the migration of another database), and the migrating user may not be allowed to create it; then
-- the schema is migrated all the same and the daemon logs this warning.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'wxrecon_finance') THEN
        BEGIN
            CREATE ROLE wxrecon_finance NOLOGIN;
        EXCEPTION
            -- Created meanwhile by a migration of another database on the same server.
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RAISE WARNING 'role wxrecon_finance does not exist and % may not create it: no one can read the finance views yet', current_user
                    USING HINT = format('As a superuser: CREATE ROLE wxrecon_finance NOLOGIN; then as %I: GRANT USAGE ON SCHEMA wxrecon TO wxrecon_finance; GRANT SELECT ON ALL TABLES IN SCHEMA wxrecon TO wxrecon_finance; ALTER DEFAULT PRIVILEGES IN SCHEMA wxrecon GRANT SELECT ON TABLES TO wxrecon_finance (docs/finance.md)', current_user);
                RETURN;
        END;
    END IF;
    GRANT USAGE ON SCHEMA wxrecon TO wxrecon_finance;
    GRANT SELECT ON ALL TABLES IN SCHEMA wxrecon TO wxrecon_finance;
    -- Tables and views that later migrations create (as this same user) are readable too.
    ALTER DEFAULT PRIVILEGES IN SCHEMA wxrecon GRANT SELECT ON TABLES TO wxrecon_finance;
END
$$;
