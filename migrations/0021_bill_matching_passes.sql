-- The day's matching in fewer passes (bench/run-bills.sh with auto_explain, a million payments): its one
-- statement for the payments took 3.8 s, of which the join itself 1.1 s. The rest was the two sides
-- materialized (CTEs written to and read back from tuple stores, four scans of them for the counts and sums)
-- and every paid order's day found by converting its time to Beijing time. Now each side goes straight into
-- the join, the counts and sums come from their tables (a seq scan each, 0.2-0.3 s, parallel where the
-- server allows), and an order's day is found by comparing its time with the day's bounds, converting only
-- the few near midnight that fall outside them.
CREATE OR REPLACE FUNCTION wxrecon.reconcile_bill_day(p_mchid text, p_day date, p_tolerance interval)
    RETURNS SETOF wxrecon.reconciliations
    LANGUAGE plpgsql
    SET work_mem = '256MB' SET jit = off
    AS $$
DECLARE
    v_trade   bigint := wxrecon.latest_bill(p_mchid, p_day, 'trade');
    v_fund    bigint := wxrecon.latest_bill(p_mchid, p_day, 'fundflow');
    v_no_bill boolean;
    v_start   timestamptz := wxrecon.beijing_midnight(p_day);
    v_end     timestamptz := wxrecon.beijing_midnight(p_day + 1);
    v_fee_trade numeric;
    v_fee_rows  numeric;
    v_fee_fund  numeric;
    -- The day's payments at each side, counted while they are joined.
    v_ledger_payments bigint;
    v_ledger_paid_fen bigint;
    v_bill_payments   bigint;
    v_bill_paid_fen   bigint;
    v_payment_fees    numeric;  -- the trade bill's payment rows: the sum, and the sum of each rounded to the fen
    v_payment_fees_rounded numeric;
BEGIN
    -- One reconciliation of a merchant's day at a time, whichever instance runs it.
    PERFORM pg_advisory_xact_lock(hashtext('wxrecon.reconcile_bill_day'), hashtext(p_mchid || '/' || p_day));
    INSERT INTO wxrecon.reconciliations (mchid, bill_date) VALUES (p_mchid, p_day) ON CONFLICT DO NOTHING;
    SELECT no_trade_bill INTO v_no_bill FROM wxrecon.reconciliations WHERE mchid = p_mchid AND bill_date = p_day;
    IF v_trade IS NULL AND NOT v_no_bill THEN
        -- Nothing to match against yet.
        RETURN QUERY UPDATE wxrecon.reconciliations SET status = 'pending', fund_bill_id = v_fund
                      WHERE mchid = p_mchid AND bill_date = p_day RETURNING *;
        RETURN;
    END IF;

    -- A second call in the same transaction (a backfill over several days) starts clean.
    DROP TABLE IF EXISTS pg_temp.bill_found, pg_temp.known_days, pg_temp.day_bills, pg_temp.billed_refunds,
        pg_temp.learned_from_bill, pg_temp.payment_pairs;
    CREATE TEMP TABLE bill_found (kind text, out_trade_no text, bill_date date, detail jsonb) ON COMMIT DROP;
    -- Which of the days around it have a known trade bill: asked once, not once per ledger row.
    CREATE TEMP TABLE known_days ON COMMIT DROP AS
    SELECT d::date AS day FROM generate_series(p_day - 2, p_day + 2, interval '1 day') AS g(d)
     WHERE wxrecon.trade_day_known(p_mchid, d::date);
    -- Payment rows of the trade bills of the day and its two neighbours.
    -- The trade bills of the days around it, found once: a join on latest_bill() itself calls it for every
    -- row it compares (6 s for a million rows).
    CREATE TEMP TABLE day_bills ON COMMIT DROP AS
    SELECT d::date AS day, wxrecon.latest_bill(p_mchid, d::date, 'trade') AS bill_id
      FROM generate_series(p_day - 7, p_day + 1, interval '1 day') AS g(d);
    DELETE FROM day_bills WHERE bill_id IS NULL;
    -- Refund rows of the trade bills of the week before up to the day after (a refund is billed the day it
    -- is requested); they are few: found through the partial index rather than a pass over each bill.
    CREATE TEMP TABLE billed_refunds ON COMMIT DROP AS
    SELECT d.day, b.bill_id, b.line, b.out_trade_no, b.refund_id, b.out_refund_no, b.refund_amount_fen,
           b.refund_status, b.fee
      FROM day_bills d JOIN wxrecon.bill_trade_rows b ON b.bill_id = d.bill_id AND b.is_refund;
    -- Orders whose payment the ledger first learned from a bill: few, found through a partial index rather
    -- than a lookup per bill line.
    CREATE TEMP TABLE learned_from_bill ON COMMIT DROP AS
    SELECT e.out_trade_no
      FROM wxrecon.payment_events e
     WHERE e.mchid = p_mchid AND e.source = 'bill' AND e.out_refund_no IS NULL
       AND e.trade_state IN ('SUCCESS', 'REFUND')
       AND NOT EXISTS (SELECT FROM wxrecon.payment_events f
                        WHERE f.mchid = e.mchid AND f.out_trade_no = e.out_trade_no AND f.out_refund_no IS NULL
                          AND f.trade_state IN ('SUCCESS', 'REFUND') AND f.id < e.id);

    -- The payments: the trade bills' of the day and its two neighbours beside the ledger's paid orders near
    -- the day (its own, and the neighbours' within the tolerance of midnight), joined once on the
    -- transaction id, a bill's payment to a ledger payment of its day or, within the tolerance of
    -- midnight, of the neighbouring day. A million payments a day: each side is read once, straight into
    -- the join, and only what does not pair up cleanly is kept (payment_pairs), to be judged below.
    CREATE TEMP TABLE payment_pairs (
        bill_id bigint, line bigint, b_transaction_id text, b_out_trade_no text, trade_time timestamptz,
        order_amount_fen bigint, settlement_amount_fen bigint,
        l_transaction_id text, l_out_trade_no text, success_time timestamptz, amount_total bigint, home_day date
    ) ON COMMIT DROP;
    INSERT INTO payment_pairs
    SELECT b.bill_id, b.line, b.transaction_id, b.out_trade_no, b.trade_time, b.order_amount_fen,
           b.settlement_amount_fen, l.transaction_id, l.out_trade_no, l.success_time, l.amount_total, l.home_day
      FROM (SELECT d.day, r.bill_id, r.line, r.transaction_id, r.out_trade_no, r.trade_time, r.order_amount_fen,
                   r.settlement_amount_fen
              FROM day_bills d JOIN wxrecon.bill_trade_rows r ON r.bill_id = d.bill_id
             WHERE d.day BETWEEN p_day - 1 AND p_day + 1 AND NOT r.is_refund) b
      FULL JOIN
           (SELECT o.out_trade_no, o.transaction_id, o.success_time, o.amount_total,
                   -- Nearly all are the day's own: compared, not converted to Beijing time one by one.
                   CASE WHEN o.success_time >= v_start AND o.success_time < v_end THEN p_day
                        ELSE wxrecon.beijing_day(o.success_time) END AS home_day
              FROM wxrecon.orders o
             WHERE o.mchid = p_mchid AND o.transaction_id IS NOT NULL
               AND o.success_time >= v_start - p_tolerance AND o.success_time < v_end + p_tolerance) l
        ON l.transaction_id = b.transaction_id
       AND (b.day = l.home_day
            OR (b.day = l.home_day - 1 AND l.success_time < wxrecon.beijing_midnight(l.home_day) + p_tolerance)
            OR (b.day = l.home_day + 1 AND l.success_time >= wxrecon.beijing_midnight(l.home_day + 1) - p_tolerance))
     WHERE b.transaction_id IS NULL
        OR (b.bill_id = v_trade
            AND (l.transaction_id IS NULL OR l.out_trade_no <> b.out_trade_no
                 OR l.amount_total <> b.order_amount_fen
                 OR b.out_trade_no IN (SELECT out_trade_no FROM learned_from_bill)));
    -- Each side's count and sum, read straight from its table (in parallel where the server allows): taken
    -- from the join's materialized inputs they cost more than the join itself.
    SELECT count(*), coalesce(sum(o.amount_total), 0)
      INTO v_ledger_payments, v_ledger_paid_fen
      FROM wxrecon.orders o
     WHERE o.mchid = p_mchid AND o.transaction_id IS NOT NULL AND o.success_time >= v_start AND o.success_time < v_end;
    SELECT count(*), coalesce(sum(r.order_amount_fen), 0), coalesce(sum(r.fee), 0), coalesce(sum(round(r.fee, 2)), 0)
      INTO v_bill_payments, v_bill_paid_fen, v_payment_fees, v_payment_fees_rounded
      FROM wxrecon.bill_trade_rows r
     WHERE r.bill_id = v_trade AND NOT r.is_refund;
    ANALYZE payment_pairs;

    -- The day's bill payments that did not pair up cleanly, beside their orders: a payment the ledger does
    -- not show as paid (or showed only once the bill told it) is missing_in_ledger; one paid at both for
    -- different amounts is bill_amount_mismatch.
    INSERT INTO bill_found
    SELECT DISTINCT 'missing_in_ledger', p.b_out_trade_no, p_day,
           jsonb_build_object('bill_id', p.bill_id, 'line', p.line, 'transaction_id', p.b_transaction_id,
                              'trade_time', wxrecon.rfc3339(p.trade_time), 'order_amount_fen', p.order_amount_fen,
                              'settlement_amount_fen', p.settlement_amount_fen, 'recorded_state', o.state)
      FROM payment_pairs p
      LEFT JOIN wxrecon.orders o ON o.mchid = p_mchid AND o.out_trade_no = p.b_out_trade_no
     WHERE p.bill_id = v_trade
       AND (o.success_time IS NULL OR o.transaction_id IS DISTINCT FROM p.b_transaction_id
            OR p.b_out_trade_no IN (SELECT out_trade_no FROM learned_from_bill));
    INSERT INTO bill_found
    SELECT DISTINCT 'bill_amount_mismatch', p.b_out_trade_no, p_day,
           jsonb_build_object('bill_id', p.bill_id, 'line', p.line, 'transaction_id', p.b_transaction_id,
                              'bill_order_amount_fen', p.order_amount_fen, 'recorded_total', o.amount_total)
      FROM payment_pairs p
      JOIN wxrecon.orders o ON o.mchid = p_mchid AND o.out_trade_no = p.b_out_trade_no
                           AND o.transaction_id = p.b_transaction_id AND o.success_time IS NOT NULL
     WHERE p.bill_id = v_trade AND p.order_amount_fen <> o.amount_total;

    -- Paid in the ledger, in neither its day's bill nor, within the tolerance of midnight, the neighbour's.
    -- Judged only once every bill that may hold it is known (a payment at 23:59:59 waits for the next day's).
    INSERT INTO bill_found
    SELECT 'missing_in_bill', l.l_out_trade_no, l.home_day,
           jsonb_build_object('transaction_id', l.l_transaction_id, 'success_time', wxrecon.rfc3339(l.success_time),
                              'amount_total', l.amount_total)
      FROM payment_pairs l
     WHERE l.bill_id IS NULL
       AND l.home_day IN (SELECT day FROM known_days)
       AND (l.success_time >= wxrecon.beijing_midnight(l.home_day) + p_tolerance
            OR l.home_day - 1 IN (SELECT day FROM known_days))
       AND (l.success_time < wxrecon.beijing_midnight(l.home_day + 1) - p_tolerance
            OR l.home_day + 1 IN (SELECT day FROM known_days));

    -- Refunds the bill shows and the ledger has never heard of.
    INSERT INTO bill_found
    SELECT 'refund_missing_in_ledger', b.out_trade_no, p_day,
           jsonb_build_object('refunds', jsonb_agg(jsonb_build_object(
               'bill_id', b.bill_id, 'line', b.line, 'out_refund_no', b.out_refund_no, 'refund_id', b.refund_id,
               'refund_amount_fen', b.refund_amount_fen, 'refund_status', b.refund_status) ORDER BY b.line))
      FROM billed_refunds b
     WHERE b.bill_id = v_trade
       AND NOT EXISTS (SELECT FROM wxrecon.refunds r
                        WHERE r.mchid = p_mchid AND (r.out_refund_no = b.out_refund_no OR r.refund_id = b.refund_id))
     GROUP BY b.out_trade_no;

    -- Refunds the ledger records as succeeded that day, in no trade bill of the week before up to the day (a
    -- refund is billed on the day it was initiated, which is at or before its success).
    INSERT INTO bill_found
    SELECT 'refund_missing_in_bill', r.out_trade_no, p_day,
           jsonb_build_object('refunds', jsonb_agg(jsonb_build_object(
               'out_refund_no', r.out_refund_no, 'refund_id', r.refund_id, 'amount_refund', r.amount_refund,
               'success_time', wxrecon.rfc3339(coalesce(r.success_time, r.status_changed_at))) ORDER BY r.out_refund_no))
      FROM wxrecon.refunds r
     WHERE r.mchid = p_mchid AND r.status = 'SUCCESS'
       AND wxrecon.beijing_day(coalesce(r.success_time, r.status_changed_at)) = p_day
       AND NOT EXISTS (SELECT FROM billed_refunds b
                        WHERE b.day <= p_day AND (b.out_refund_no = r.out_refund_no OR b.refund_id = r.refund_id))
     GROUP BY r.out_trade_no;

    IF v_fund IS NOT NULL THEN
        -- Money that moved with no payment or refund behind it: a payment credit matches a billed payment
        -- (by transaction id, for its settlement amount), a refund debit a billed refund (by refund id), fee
        -- lines are compared as a day's total below; anything else (a withdrawal, an unknown kind) is listed.
        INSERT INTO bill_found
        SELECT 'fund_flow_unmatched', coalesce(nullif(f.business_order_id, ''), f.flow_id), p_day,
               jsonb_build_object('bill_id', f.bill_id, 'line', f.line, 'flow_id', f.flow_id,
                                  'business_type', f.business_type, 'direction', f.direction,
                                  'amount_fen', f.amount_fen, 'booked_at', wxrecon.rfc3339(f.booked_at))
          FROM wxrecon.bill_fund_rows f
         WHERE f.bill_id = v_fund
           AND NOT (f.business_type LIKE '%手续费%' OR f.business_name LIKE '%手续费%')
           AND NOT (f.direction = 'income' AND (f.business_order_id, f.amount_fen) IN (
                    SELECT b.transaction_id, b.settlement_amount_fen
                      FROM day_bills d JOIN wxrecon.bill_trade_rows b ON b.bill_id = d.bill_id
                     WHERE d.day BETWEEN p_day - 1 AND p_day + 1 AND NOT b.is_refund))
           AND NOT (f.direction = 'expense' AND (f.business_order_id, f.amount_fen) IN (
                    SELECT b.refund_id, b.refund_amount_fen FROM billed_refunds b));

        -- Fees: the trade bill's are per row with 5 decimals, the fund flow's are fen. Either reading of how
        -- WeChat Pay rounds (the day's total, or each row) is accepted (docs/protocol-notes.md §6.6).
        SELECT v_payment_fees + coalesce(sum(fee), 0), v_payment_fees_rounded + coalesce(sum(round(fee, 2)), 0)
          INTO v_fee_trade, v_fee_rows
          FROM billed_refunds WHERE bill_id = v_trade;
        SELECT coalesce(sum(CASE WHEN direction = 'expense' THEN amount_fen ELSE -amount_fen END), 0) / 100.0
          INTO v_fee_fund
          FROM wxrecon.bill_fund_rows
         WHERE bill_id = v_fund AND (business_type LIKE '%手续费%' OR business_name LIKE '%手续费%');
        IF v_fee_fund <> round(v_fee_trade, 2) AND v_fee_fund <> v_fee_rows THEN
            INSERT INTO bill_found VALUES ('fee_mismatch', p_day::text, p_day,
                jsonb_build_object('trade_fee_total', v_fee_trade::text, 'fund_fee_total', v_fee_fund::text));
        END IF;
    END IF;

    INSERT INTO wxrecon.discrepancies (mchid, out_trade_no, kind, detail, bill_date)
    SELECT p_mchid, out_trade_no, kind, detail, bill_date FROM bill_found
    ON CONFLICT DO NOTHING;

    -- What no longer holds is resolved by the daemon: the day's rows, and missing_in_bill rows of the
    -- neighbouring payments judged here.
    UPDATE wxrecon.discrepancies d SET resolved_at = now()
     WHERE d.mchid = p_mchid AND d.resolved_at IS NULL
       AND d.kind IN ('missing_in_ledger', 'missing_in_bill', 'bill_amount_mismatch', 'refund_missing_in_ledger',
                      'refund_missing_in_bill', 'fee_mismatch', 'fund_flow_unmatched')
       AND (d.bill_date = p_day
            OR (d.kind = 'missing_in_bill'
                AND EXISTS (SELECT FROM wxrecon.orders o
                             WHERE o.mchid = p_mchid AND o.out_trade_no = d.out_trade_no
                               AND o.transaction_id IS NOT NULL AND o.success_time >= v_start - p_tolerance
                               AND o.success_time < v_end + p_tolerance)))
       AND NOT EXISTS (SELECT FROM bill_found f WHERE f.kind = d.kind AND f.out_trade_no = d.out_trade_no);

    IF v_fund IS NULL THEN
        v_fee_fund := NULL;
    END IF;
    -- The neighbouring days' rows, already reconciled, count what was judged for them here.
    UPDATE wxrecon.reconciliations r SET
        differences = n.open,
        status = CASE WHEN n.open > 0 THEN 'differences' WHEN r.trade_bill_id IS NULL THEN 'no_bill' ELSE 'balanced' END
      FROM (SELECT day, (SELECT count(*) FROM wxrecon.discrepancies d
                          WHERE d.mchid = p_mchid AND d.bill_date = day AND d.resolved_at IS NULL) AS open
              FROM (VALUES (p_day - 1), (p_day + 1)) AS v(day)) n
     WHERE r.mchid = p_mchid AND r.bill_date = n.day AND r.status <> 'pending';
    RETURN QUERY
    UPDATE wxrecon.reconciliations r SET
        trade_bill_id = v_trade, fund_bill_id = v_fund,
        ledger_payments = l.payments, ledger_paid_fen = l.paid_fen,
        ledger_refunds = lr.refunds, ledger_refunded_fen = lr.refunded_fen,
        bill_payments = b.payments, bill_paid_fen = b.paid_fen, bill_refunds = b.refunds, bill_refunded_fen = b.refunded_fen,
        trade_fee_total = b.fees, fund_fee_total = v_fee_fund,
        fund_income_fen = ff.income_fen, fund_expense_fen = ff.expense_fen,
        differences = dd.open,
        status = CASE WHEN dd.open > 0 THEN 'differences' WHEN v_trade IS NULL THEN 'no_bill' ELSE 'balanced' END,
        reconciled_at = now()
      FROM (SELECT v_ledger_payments AS payments, v_ledger_paid_fen AS paid_fen) l,
           (SELECT count(*) AS refunds, coalesce(sum(amount_refund), 0) AS refunded_fen
              FROM wxrecon.refunds
             WHERE mchid = p_mchid AND status = 'SUCCESS'
               AND wxrecon.beijing_day(coalesce(success_time, status_changed_at)) = p_day) lr,
           (SELECT v_bill_payments AS payments, v_bill_paid_fen AS paid_fen, count(*) AS refunds,
                   coalesce(sum(refund_amount_fen), 0) AS refunded_fen,
                   CASE WHEN v_trade IS NULL THEN NULL ELSE v_payment_fees + coalesce(sum(fee), 0) END AS fees
              FROM billed_refunds WHERE bill_id = v_trade) b,
           (SELECT sum(amount_fen) FILTER (WHERE direction = 'income') AS income_fen,
                   sum(amount_fen) FILTER (WHERE direction = 'expense') AS expense_fen
              FROM wxrecon.bill_fund_rows WHERE bill_id = v_fund) ff,
           (SELECT count(*) AS open FROM wxrecon.discrepancies
             WHERE mchid = p_mchid AND bill_date = p_day AND resolved_at IS NULL) dd
     WHERE r.mchid = p_mchid AND r.bill_date = p_day
    RETURNING r.*;
END;
$$;
