-- Issue 16 item 4: an order number is WeChat Pay's (6 to 32 of [0-9A-Za-z_-|*]) however the row arrives,
-- API or plain SQL, so it can never carry CR/LF, '?', '#' or '/' into a request path. A ledger that
-- already holds other numbers stops here with their count and one example, to be fixed by hand first:
-- such an order could never have been paid, and no row is changed behind finance's back.
DO $$
DECLARE
    bad_count bigint;
    example   text;
BEGIN
    SELECT count(*), min(mchid || '/' || quote_literal(out_trade_no))
      INTO bad_count, example
      FROM wxrecon.orders
     WHERE out_trade_no !~ '^[0-9A-Za-z_|*-]{6,32}$';
    IF bad_count > 0 THEN
        RAISE EXCEPTION 'orders.out_trade_no: % orders have a number WeChat Pay does not issue (6 to 32 of [0-9A-Za-z_-|*]), e.g. %',
            bad_count, example;
    END IF;
END
$$;

ALTER TABLE wxrecon.orders
    ADD CONSTRAINT orders_out_trade_no_wechat CHECK (out_trade_no ~ '^[0-9A-Za-z_|*-]{6,32}$');
