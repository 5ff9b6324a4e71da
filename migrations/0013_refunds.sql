-- Refunds through the internal API (issue 14). A refund query's answer is a fact like any other, with
-- its own sources (the refund tracker asks WeChat Pay about refunds not yet final).
ALTER TABLE wxrecon.payment_events
    DROP CONSTRAINT payment_events_source_check,
    ADD CONSTRAINT payment_events_source_check
        CHECK (source IN ('notify_v3', 'notify_v2', 'query_v3', 'query_v2', 'close', 'bill',
                          'refund_query_v3', 'refund_query_v2'));

-- A refund as the internal API shows it (GET /api/v1/refunds/{mchid}/{out_refund_no},
-- docs/interfaces.md §4.4c): its row and the facts recorded about it, oldest first.
CREATE FUNCTION wxrecon.refund_json(p_mchid text, p_out_refund_no text) RETURNS jsonb
    LANGUAGE sql STABLE
    RETURN (
        SELECT jsonb_build_object(
            'mchid', r.mchid, 'out_refund_no', r.out_refund_no, 'out_trade_no', r.out_trade_no,
            'refund_id', r.refund_id, 'transaction_id', r.transaction_id, 'amount_refund', r.amount_refund,
            'amount_total', r.amount_total, 'status', r.status, 'success_time', wxrecon.rfc3339(r.success_time),
            'status_changed_at', wxrecon.rfc3339(r.status_changed_at), 'created_at', wxrecon.rfc3339(r.created_at),
            'updated_at', wxrecon.rfc3339(r.updated_at),
            'events', coalesce((
                SELECT jsonb_agg(jsonb_build_object(
                    'id', e.id, 'source', e.source, 'notify_id', e.notify_id, 'event_type', e.event_type,
                    'refund_status', e.refund_status, 'amount_refund', e.amount_refund,
                    'occurred_at', wxrecon.rfc3339(e.occurred_at), 'received_at', wxrecon.rfc3339(e.received_at))
                    ORDER BY e.id)
                FROM wxrecon.payment_events e
                WHERE e.mchid = r.mchid AND e.out_trade_no = r.out_trade_no AND e.out_refund_no = r.out_refund_no),
                '[]'))
        FROM wxrecon.refunds r WHERE r.mchid = p_mchid AND r.out_refund_no = p_out_refund_no);
