-- One notification applied the plain way, for comparison with wxrecond's group commit:
-- one transaction per fact, one event insert and one order update, a realistic payload.
-- Orders P500001..P1000000 of the benchmark's table belong to pgbench; wxrecond uses lower numbers.
\set n random(500001, 1000000)
BEGIN;
INSERT INTO wxrecon.payment_events (mchid, out_trade_no, source, notify_id, event_type, trade_state, transaction_id,
    amount_total, payer_total, occurred_at, payload, raw_body, raw_headers)
VALUES ('1900000109', 'PERF-' || :n, 'notify_v3', 'pgbench-' || md5(random()::text), 'TRANSACTION.SUCCESS', 'SUCCESS',
    'pgbench-' || md5(random()::text), 100, 100, now(),
    '{"mchid":"1900000109","appid":"wxd678efh567hg6787","trade_state":"SUCCESS","trade_type":"JSAPI","bank_type":"OTHERS","amount":{"total":100,"payer_total":100,"currency":"CNY","payer_currency":"CNY"},"payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}',
    repeat('x', 900), '{"Wechatpay-Serial":"PUB_KEY_ID_0119000001092026112600000001","Wechatpay-Nonce":"0123456789abcdef0123456789abcdef"}')
ON CONFLICT DO NOTHING;
UPDATE wxrecon.orders SET state = 'SUCCESS', state_source = 'notify', state_changed_at = now(), updated_at = now()
WHERE mchid = '1900000109' AND out_trade_no = 'PERF-' || :n;
END;
