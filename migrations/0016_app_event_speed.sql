-- App events cost the fact path a trigger per changed order (issue 14, Performance). Measured with
-- pg_stat_statements at 2,000 notifications/s: the batch UPDATE of orders went from 0.48 to 5.7 ms with
-- events on, almost all of it spent planning the bodies of order_list_json and refund_json again on
-- every call (a SQL function called from PL/pgSQL is planned per call, and these are not inlinable:
-- they hold subqueries). The same bodies in PL/pgSQL keep their plans for the session: 250 -> 45 us
-- per event. What they return is unchanged.
CREATE OR REPLACE FUNCTION wxrecon.order_list_json(o wxrecon.orders) RETURNS jsonb
    LANGUAGE plpgsql STABLE AS $$
BEGIN
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
END $$;

CREATE OR REPLACE FUNCTION wxrecon.refund_json(p_mchid text, p_out_refund_no text) RETURNS jsonb
    LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
        SELECT jsonb_build_object(
            'mchid', r.mchid, 'out_refund_no', r.out_refund_no, 'out_trade_no', r.out_trade_no,
            'refund_id', r.refund_id, 'transaction_id', r.transaction_id, 'amount_refund', r.amount_refund,
            'amount_total', r.amount_total, 'status', r.status, 'success_time', wxrecon.rfc3339(r.success_time),
            'status_changed_at', wxrecon.rfc3339(r.status_changed_at), 'created_at', wxrecon.rfc3339(r.created_at),
            'updated_at', wxrecon.rfc3339(r.updated_at),
            'origin', CASE WHEN q.mchid IS NULL THEN 'wechat' ELSE 'api' END,
            'reason', q.reason,
            'events', coalesce((
                SELECT jsonb_agg(jsonb_build_object(
                    'id', e.id, 'source', e.source, 'notify_id', e.notify_id, 'event_type', e.event_type,
                    'refund_status', e.refund_status, 'amount_refund', e.amount_refund,
                    'occurred_at', wxrecon.rfc3339(e.occurred_at), 'received_at', wxrecon.rfc3339(e.received_at))
                    ORDER BY e.id)
                FROM wxrecon.payment_events e
                WHERE e.mchid = r.mchid AND e.out_trade_no = r.out_trade_no AND e.out_refund_no = r.out_refund_no),
                '[]'))
        FROM wxrecon.refunds r
        LEFT JOIN wxrecon.refund_requests q ON q.mchid = r.mchid AND q.out_refund_no = r.out_refund_no
        WHERE r.mchid = p_mchid AND r.out_refund_no = p_out_refund_no);
END $$;

-- The outbox is a queue: every delivery leaves a dead entry at the head of its partial indexes, and the
-- claim, which reads from the oldest pending event, stepped over all of them until autovacuum came by
-- (at its default, once a fifth of the table had changed): 3,111 buffers to claim 27 events with 35,000
-- delivered since the last vacuum. Vacuumed after every few thousand deliveries instead, without the
-- cost delay; the claim's lease update leaves room on the page to stay a heap-only update.
ALTER TABLE wxrecon.app_events SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
                                    autovacuum_vacuum_cost_delay = 0, fillfactor = 80);
