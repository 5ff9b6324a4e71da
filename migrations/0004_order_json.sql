-- Times as wxrecon writes them everywhere: RFC 3339 in Beijing time with a numeric offset.
CREATE FUNCTION wxrecon.rfc3339(timestamptz) RETURNS text
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    RETURN to_char($1 AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD"T"HH24:MI:SS"+08:00"');

-- An order as the internal API shows it: its columns, its events and its refunds.
CREATE FUNCTION wxrecon.order_json(p_mchid text, p_out_trade_no text) RETURNS jsonb
    LANGUAGE sql STABLE
    RETURN (
        SELECT jsonb_build_object(
            'mchid', o.mchid, 'out_trade_no', o.out_trade_no, 'appid', o.appid, 'description', o.description,
            'amount_total', o.amount_total, 'currency', o.currency, 'state', o.state, 'state_desc', o.state_desc,
            'transaction_id', o.transaction_id, 'trade_type', o.trade_type, 'bank_type', o.bank_type,
            'payer_openid', o.payer_openid, 'payer_total', o.payer_total,
            'success_time', wxrecon.rfc3339(o.success_time), 'origin', o.origin, 'state_source', o.state_source,
            'state_changed_at', wxrecon.rfc3339(o.state_changed_at), 'created_at', wxrecon.rfc3339(o.created_at),
            'updated_at', wxrecon.rfc3339(o.updated_at), 'expire_at', wxrecon.rfc3339(o.expire_at),
            'placed_at', wxrecon.rfc3339(o.placed_at), 'notified_at', wxrecon.rfc3339(o.notified_at),
            'next_poll_at', wxrecon.rfc3339(o.next_poll_at), 'poll_attempts', o.poll_attempts,
            'last_polled_at', wxrecon.rfc3339(o.last_polled_at), 'last_poll_error', o.last_poll_error,
            'events', coalesce((
                SELECT jsonb_agg(jsonb_build_object(
                    'id', e.id, 'source', e.source, 'notify_id', e.notify_id, 'event_type', e.event_type,
                    'trade_state', e.trade_state, 'refund_status', e.refund_status,
                    'transaction_id', e.transaction_id, 'out_refund_no', e.out_refund_no,
                    'amount_total', e.amount_total, 'payer_total', e.payer_total, 'amount_refund', e.amount_refund,
                    'occurred_at', wxrecon.rfc3339(e.occurred_at), 'received_at', wxrecon.rfc3339(e.received_at))
                    ORDER BY e.id)
                FROM wxrecon.payment_events e WHERE e.mchid = o.mchid AND e.out_trade_no = o.out_trade_no), '[]'),
            'refunds', coalesce((
                SELECT jsonb_agg(jsonb_build_object(
                    'out_refund_no', r.out_refund_no, 'refund_id', r.refund_id, 'transaction_id', r.transaction_id,
                    'amount_refund', r.amount_refund, 'amount_total', r.amount_total, 'status', r.status,
                    'success_time', wxrecon.rfc3339(r.success_time), 'created_at', wxrecon.rfc3339(r.created_at),
                    'updated_at', wxrecon.rfc3339(r.updated_at))
                    ORDER BY r.created_at, r.out_refund_no)
                FROM wxrecon.refunds r WHERE r.mchid = o.mchid AND r.out_trade_no = o.out_trade_no), '[]'))
        FROM wxrecon.orders o WHERE o.mchid = p_mchid AND o.out_trade_no = p_out_trade_no);
