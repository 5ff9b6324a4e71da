-- A small ledger for the finance views (tests/pg/finance_test.cpp, and the example queries of
-- docs/finance.md): two merchants, orders on both sides of a Beijing midnight (16:00 UTC), paid by
-- notification and by query, a mismatch, a payment after close, refunds, discrepancies open and
-- resolved. Times are UTC; the comments give the Beijing day each order and refund belongs to.

INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, state, state_source, origin, transaction_id,
                            payer_total, success_time, created_at) VALUES
    -- merchant 1900000109
    ('1900000109', 'A-NOTIFY', 100, 'SUCCESS', 'notify', 'api', 'T-A1', 100,
     '2026-11-26T15:59:59Z', '2026-11-26T15:00:00Z'),                      -- paid 11-26 23:59:59
    ('1900000109', 'A-QUERY', 200, 'SUCCESS', 'query', 'api', 'T-A2', 200,
     '2026-11-26T16:00:00Z', '2026-11-26T15:30:00Z'),                      -- created 11-26, paid 11-27 00:00
    ('1900000109', 'A-MISMATCH', 300, 'SUCCESS', 'notify', 'api', 'T-A3', 250,
     '2026-11-26T02:00:00Z', '2026-11-26T01:50:00Z'),                      -- paid 11-26, WeChat took 250
    ('1900000109', 'A-CLOSED', 400, 'CLOSED', 'close', 'api', NULL, NULL,
     NULL, '2026-11-26T01:00:00Z'),                                        -- created 11-26, closed unpaid
    ('1900000109', 'A-PAID-AFTER-CLOSE', 500, 'CLOSED', 'close', 'api', 'T-A5', 500,
     '2026-11-27T03:00:00Z', '2026-11-26T03:00:00Z'),                      -- closed, then paid 11-27
    ('1900000109', 'A-REFUND', 600, 'REFUND', 'notify', 'api', 'T-A6', 600,
     '2026-11-26T04:00:00Z', '2026-11-26T03:50:00Z'),                      -- paid 11-26, refunded 11-28
    ('1900000109', 'A-OPEN', 700, 'NOTPAY', 'register', 'api', NULL, NULL,
     NULL, '2026-11-27T05:00:00Z'),                                        -- created 11-27, unpaid
    ('1900000109', 'A-UNKNOWN', 800, 'SUCCESS', 'notify', 'notify', 'T-A8', 800,
     '2026-11-27T01:00:00Z', '2026-11-27T01:00:05Z'),                      -- nobody registered it; paid 11-27
    -- merchant 1900000209
    ('1900000209', 'B-NOTIFY', 1000, 'SUCCESS', 'notify', 'sql', 'T-B1', 1000,
     '2026-11-26T10:00:00Z', '2026-11-26T09:55:00Z'),                      -- paid 11-26
    ('1900000209', 'B-CLOSED', 80, 'CLOSED', 'close', 'sql', NULL, NULL,
     NULL, '2026-11-26T15:59:59Z'),                                        -- created 11-26 23:59:59
    ('1900000209', 'B-QUERY', 2000, 'SUCCESS', 'query', 'sql', 'T-B2', 2000,
     '2026-11-26T16:00:00Z', '2026-11-26T15:00:00Z'),                      -- paid 11-27 00:00
    ('1900000209', 'B-SQL-PAID', 50, 'SUCCESS', 'register', 'sql', 'T-B3', NULL,
     '2026-11-27T06:00:00Z', '2026-11-27T05:00:00Z'),                      -- marked paid by SQL, no event
    ('1900000209', 'B-PAYERROR', 70, 'PAYERROR', 'query', 'sql', NULL, NULL,
     NULL, '2026-11-27T07:00:00Z'),                                        -- created 11-27, failed
    ('1900000209', 'B-REFUND-FIRST', 900, 'REFUND', 'query', 'sql', 'T-B6', 900,
     '2026-11-27T08:00:00Z', '2026-11-27T07:50:00Z'),                      -- refund heard of before payment
    ('1900000209', 'B-NOTIFY-THEN-QUERY', 300, 'REFUND', 'query', 'sql', 'T-B7', 300,
     '2026-11-27T10:00:00Z', '2026-11-27T09:50:00Z'),                      -- paid by notify, refund by query
    ('1900000209', 'B-QUERY-THEN-NOTIFY', 400, 'REFUND', 'notify', 'sql', 'T-B8', 400,
     '2026-11-27T12:00:00Z', '2026-11-27T11:50:00Z');                      -- query first, notification later

-- The event log, in the order wxrecon learned the facts (ids fix that order).
INSERT INTO wxrecon.payment_events (id, mchid, out_trade_no, source, notify_id, event_type, trade_state,
                                    refund_status, transaction_id, out_refund_no, amount_total, payer_total,
                                    amount_refund, occurred_at, payload) VALUES
    (1, '1900000109', 'A-NOTIFY', 'notify_v3', 'N-1', 'TRANSACTION.SUCCESS', 'SUCCESS', NULL, 'T-A1', NULL,
     100, 100, NULL, '2026-11-26T15:59:59Z', '{}'),
    (2, '1900000109', 'A-QUERY', 'query_v3', NULL, 'QUERY', 'SUCCESS', NULL, 'T-A2', NULL,
     200, 200, NULL, '2026-11-26T16:05:00Z', '{}'),
    (3, '1900000109', 'A-MISMATCH', 'notify_v2', NULL, 'TRANSACTION.SUCCESS', 'SUCCESS', NULL, 'T-A3', NULL,
     250, 250, NULL, '2026-11-26T02:00:00Z', '{}'),
    (4, '1900000109', 'A-CLOSED', 'close', NULL, 'CLOSE', 'CLOSED', NULL, NULL, NULL,
     NULL, NULL, NULL, '2026-11-26T03:00:00Z', '{}'),
    (5, '1900000109', 'A-PAID-AFTER-CLOSE', 'close', NULL, 'CLOSE', 'CLOSED', NULL, NULL, NULL,
     NULL, NULL, NULL, '2026-11-26T05:00:00Z', '{}'),
    (6, '1900000109', 'A-PAID-AFTER-CLOSE', 'query_v3', NULL, 'QUERY', 'SUCCESS', NULL, 'T-A5', NULL,
     500, 500, NULL, '2026-11-27T03:00:00Z', '{}'),
    (7, '1900000109', 'A-REFUND', 'notify_v3', 'N-7', 'TRANSACTION.SUCCESS', 'SUCCESS', NULL, 'T-A6', NULL,
     600, 600, NULL, '2026-11-26T04:00:00Z', '{}'),
    (8, '1900000109', 'A-REFUND', 'notify_v3', 'N-8', 'REFUND.SUCCESS', NULL, 'SUCCESS', 'T-A6', 'R-A6-1',
     600, NULL, 150, '2026-11-27T16:30:00Z', '{}'),
    (9, '1900000109', 'A-UNKNOWN', 'notify_v3', 'N-9', 'TRANSACTION.SUCCESS', 'SUCCESS', NULL, 'T-A8', NULL,
     800, 800, NULL, '2026-11-27T01:00:00Z', '{}'),
    (10, '1900000209', 'B-NOTIFY', 'notify_v2', NULL, 'TRANSACTION.SUCCESS', 'SUCCESS', NULL, 'T-B1', NULL,
     1000, 1000, NULL, '2026-11-26T10:00:00Z', '{}'),
    (11, '1900000209', 'B-QUERY', 'query_v2', NULL, 'QUERY', 'SUCCESS', NULL, 'T-B2', NULL,
     2000, 2000, NULL, '2026-11-26T16:10:00Z', '{}'),
    (12, '1900000209', 'B-PAYERROR', 'query_v2', NULL, 'QUERY', 'PAYERROR', NULL, NULL, NULL,
     70, NULL, NULL, '2026-11-27T07:10:00Z', '{}'),
    (13, '1900000209', 'B-REFUND-FIRST', 'notify_v3', 'N-13', 'REFUND.SUCCESS', NULL, 'SUCCESS', 'T-B6', 'R-B6',
     900, NULL, 900, '2026-11-27T09:00:00Z', '{}'),
    (14, '1900000209', 'B-REFUND-FIRST', 'query_v3', NULL, 'QUERY', 'REFUND', NULL, 'T-B6', NULL,
     900, 900, NULL, '2026-11-27T09:05:00Z', '{}'),
    (15, '1900000209', 'B-NOTIFY-THEN-QUERY', 'notify_v3', 'N-15', 'TRANSACTION.SUCCESS', 'SUCCESS', NULL, 'T-B7', NULL,
     300, 300, NULL, '2026-11-27T10:00:00Z', '{}'),
    (16, '1900000209', 'B-NOTIFY-THEN-QUERY', 'query_v3', NULL, 'QUERY', 'REFUND', NULL, 'T-B7', NULL,
     300, 300, NULL, '2026-11-27T11:05:00Z', '{}'),
    (17, '1900000209', 'B-QUERY-THEN-NOTIFY', 'query_v3', NULL, 'QUERY', 'REFUND', NULL, 'T-B8', NULL,
     400, 400, NULL, '2026-11-27T12:30:00Z', '{}'),
    (18, '1900000209', 'B-QUERY-THEN-NOTIFY', 'notify_v3', 'N-18', 'TRANSACTION.SUCCESS', 'SUCCESS', NULL, 'T-B8', NULL,
     400, 400, NULL, '2026-11-27T12:00:00Z', '{}');

INSERT INTO wxrecon.refunds (mchid, out_refund_no, out_trade_no, transaction_id, amount_refund, amount_total,
                             status, success_time, status_changed_at) VALUES
    ('1900000109', 'R-A6-1', 'A-REFUND', 'T-A6', 150, 600, 'SUCCESS',
     '2026-11-27T16:30:00Z', '2026-11-27T16:30:02Z'),                      -- refunded 11-28 00:30
    ('1900000109', 'R-A6-2', 'A-REFUND', 'T-A6', 100, 600, 'CLOSED',
     NULL, '2026-11-27T17:00:00Z'),                                        -- failed: no money moved
    ('1900000109', 'R-X1', 'X-NOT-ON-RECORD', NULL, 80, NULL, 'PROCESSING',
     NULL, '2026-11-30T20:00:00Z'),                                        -- for an order not on record
    ('1900000209', 'R-B6', 'B-REFUND-FIRST', 'T-B6', 900, 900, 'SUCCESS',
     '2026-11-27T09:00:00Z', '2026-11-27T09:00:01Z'),                      -- refunded 11-27
    ('1900000209', 'R-B7', 'B-NOTIFY-THEN-QUERY', 'T-B7', 100, 300, 'SUCCESS',
     NULL, '2026-11-27T11:05:00Z');                                        -- no success_time: recorded 11-27

INSERT INTO wxrecon.discrepancies (mchid, out_trade_no, kind, detail, detected_at, resolved_at) VALUES
    ('1900000109', 'A-MISMATCH', 'amount_mismatch', '{"reported_total": 250, "recorded_total": 300}',
     '2026-11-26T02:00:01Z', NULL),
    ('1900000109', 'A-PAID-AFTER-CLOSE', 'paid_after_close', '{"reported_state": "SUCCESS"}',
     '2026-11-27T03:00:01Z', NULL),
    ('1900000109', 'A-UNKNOWN', 'unknown_order', '{"reported_total": 800}',
     '2026-11-27T01:00:05Z', NULL),
    ('1900000109', 'A-OPEN', 'stuck', '{}',
     '2026-11-27T07:00:00Z', '2026-11-27T08:00:00Z'),                      -- resolved: not counted
    ('1900000109', 'X-NOT-ON-RECORD', 'refund_without_payment', '{"out_refund_no": "R-X1"}',
     '2026-11-30T20:00:00Z', NULL),                                        -- no order: detected 12-01
    ('1900000209', 'B-NOTIFY', 'appid_mismatch', '{"reported_appid": "wx0000000000000000"}',
     '2026-11-26T10:00:01Z', NULL),
    ('1900000209', 'B-QUERY', 'state_regression', '{}',
     '2026-11-27T02:00:00Z', '2026-11-27T03:00:00Z'),
    ('1900000209', 'B-REFUND-FIRST', 'refund_without_payment', '{"out_refund_no": "R-B6"}',
     '2026-11-27T09:00:00Z', '2026-11-27T09:05:00Z');
-- The ids above were given by hand: later rows continue after them.
SELECT setval(pg_get_serial_sequence('wxrecon.payment_events', 'id'), 18);
