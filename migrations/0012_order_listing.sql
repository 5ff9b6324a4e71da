-- The application lists its orders newest first (GET /api/v1/orders, docs/interfaces.md §4.5): keyset
-- pagination on (created_at, mchid, out_trade_no), never OFFSET. Those columns never change after the
-- insert, so the fact path's HOT updates of orders are unaffected; there is deliberately no index on
-- state (every state change would then have to update it).
CREATE INDEX orders_newest ON wxrecon.orders (created_at, mchid, out_trade_no);
CREATE INDEX orders_newest_by_merchant ON wxrecon.orders (mchid, created_at, out_trade_no);

-- An order as a list shows it: its columns and what its successful refunds came to, without the
-- events and refunds wxrecon.order_json adds for a single order.
CREATE FUNCTION wxrecon.order_list_json(o wxrecon.orders) RETURNS jsonb
    LANGUAGE sql STABLE
    RETURN jsonb_build_object(
        'mchid', o.mchid, 'out_trade_no', o.out_trade_no, 'appid', o.appid, 'description', o.description,
        'amount_total', o.amount_total, 'currency', o.currency, 'state', o.state, 'state_desc', o.state_desc,
        'transaction_id', o.transaction_id, 'trade_type', o.trade_type, 'bank_type', o.bank_type,
        'payer_total', o.payer_total, 'success_time', wxrecon.rfc3339(o.success_time), 'origin', o.origin,
        'state_source', o.state_source, 'state_changed_at', wxrecon.rfc3339(o.state_changed_at),
        'created_at', wxrecon.rfc3339(o.created_at), 'updated_at', wxrecon.rfc3339(o.updated_at),
        'expire_at', wxrecon.rfc3339(o.expire_at),
        'refunded_total', (SELECT coalesce(sum(r.amount_refund), 0) FROM wxrecon.refunds r
                            WHERE r.mchid = o.mchid AND r.out_trade_no = o.out_trade_no AND r.status = 'SUCCESS'));
