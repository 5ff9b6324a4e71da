// The statements a batch of facts runs (fact_batch.cpp), prepared once per ledger connection: lock the
// rows, find the identities already recorded, and write each table set-based from array parameters.
#include "store/fact_batch.hpp"

namespace wxrecon::store {

void prepare_fact_batch(pqxx::connection_base& conn) {
    const std::string order_snapshot_columns =
        "o.mchid, o.out_trade_no, o.state, wxrecon.to_micros(coalesce(o.state_observed_at, "
        "o.state_changed_at)),"
        " o.amount_total, o.appid,"
        " o.transaction_id, 0::bigint, o.payer_total, o.currency";
    // Every lookup by key below is a LATERAL subquery the planner cannot flatten (LIMIT, an aggregate): the
    // batch's keys drive, each a probe of the table's key, whatever the statistics say. As joins, planned
    // while a table was nearly empty and not yet analysed (a new installation, until autovacuum's first
    // analyse), they read the table first, whole, through an index, for every batch: the identity check
    // took 7.7 ms a batch 20 s into a benchmark on a fresh database. The keys are sorted first, so that
    // rows are locked in one order whatever the batch (no deadlock between batches).
    conn.prepare("batch_lock_orders",
                 "SELECT " + order_snapshot_columns +
                     " FROM (SELECT * FROM unnest($1::text[], $2::text[]) AS u(mchid, out_trade_no)"
                     " ORDER BY 1, 2) AS k"
                     " CROSS JOIN LATERAL (SELECT * FROM wxrecon.orders o WHERE o.mchid = k.mchid"
                     " AND o.out_trade_no = k.out_trade_no LIMIT 1 FOR UPDATE) AS o");
    conn.prepare("batch_lock_refunds",
                 "SELECT r.mchid, r.out_refund_no, r.status,"
                 " wxrecon.to_micros(coalesce(r.status_observed_at, r.status_changed_at))"
                 " FROM (SELECT * FROM unnest($1::text[], $2::text[]) AS u(mchid, out_refund_no)"
                 " ORDER BY 1, 2) AS k"
                 " CROSS JOIN LATERAL (SELECT * FROM wxrecon.refunds r WHERE r.mchid = k.mchid"
                 " AND r.out_refund_no = k.out_refund_no LIMIT 1 FOR UPDATE) AS r");
    // A batch's statements look rows up by key, a few at a time. Their plans are cached for the life of
    // the connection, made once from the statistics of the moment: made while payment_events was small,
    // the identity check stayed a hash join over a sequential scan as the table grew (9.6 ms a batch at
    // 15,000 rows, against 0.27 ms by index). Inside a batch the planner may choose nothing else
    // (batch_settings). And the plans are kept: with the default plan_cache_mode, a statement over arrays
    // was planned again at every batch (a custom plan knows the arrays' length, so the generic plan always
    // looked dearer): 78-166 us of planning a statement, about 500 us a batch, more than the statements'
    // execution at 2,000 notifications/s (pg_stat_statements.track_planning). Forced generic, each is
    // planned once per connection, under settings that leave it nothing but key probes.
    //
    // What the batch reads once its locks are held, in one statement (one round trip): the clock (the
    // transaction's start), the orders' SUCCESS refunds summed, and which of the batch's identities are
    // recorded already: notification ids, paid and unpaid payment facts, refund facts, each a primary-key
    // lookup in fact_identities (migration 0025), whichever partition of payment_events holds the event
    // and whether or not it is still attached. It must not be part of the locking statement: under READ
    // COMMITTED a statement sees what committed before it began, so it would miss a refund another batch
    // committed while this one waited for the lock (found by the crash campaign: two partial refunds
    // adding up to the whole left the order SUCCESS).
    const auto known = [](const char* kind, const char* subject_and_state) {
        return std::string("SELECT '") + kind + "', k.mchid, k.subject, nullif(k.state, '')" +
               " FROM unnest(" + subject_and_state +
               ") AS k(mchid, subject, state) CROSS JOIN LATERAL (SELECT FROM wxrecon.fact_identities i"
               " WHERE i.mchid = k.mchid AND i.subject = k.subject AND i.state = k.state AND i.kind = '" +
               kind + "' LIMIT 1) AS found";
    };
    conn.prepare(
        "batch_read_state",
        "SELECT 'c', wxrecon.to_micros(now())::text, NULL::text, NULL::text"
        " UNION ALL SELECT 't', k.mchid, k.out_trade_no, t.total::text"
        " FROM (SELECT DISTINCT * FROM unnest($1::text[], $2::text[])) AS k(mchid, out_trade_no)"
        " CROSS JOIN LATERAL (SELECT sum(r.amount_refund)::bigint AS total FROM wxrecon.refunds r"
        " WHERE r.mchid = k.mchid AND r.out_trade_no = k.out_trade_no AND r.status = 'SUCCESS') AS t"
        " WHERE t.total IS NOT NULL UNION ALL " +
            known("n", "$3::text[], $4::text[], array_fill(''::text, ARRAY[cardinality($3::text[])])") +
            " UNION ALL " + known("p", "$5::text[], $6::text[], $7::text[]") + " UNION ALL " +
            known("u", "$8::text[], $9::text[], $10::text[]") + " UNION ALL " +
            known("r", "$11::text[], $12::text[], $13::text[]"));
    conn.prepare("batch_create_orders",
                 "INSERT INTO wxrecon.orders (mchid, out_trade_no, appid, amount_total, currency, origin, "
                 "state_source)"
                 " SELECT mchid, out_trade_no, appid, amount_total, coalesce(currency, 'CNY'), origin, origin"
                 " FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[])"
                 " AS n(mchid, out_trade_no, appid, amount_total, currency, origin)"
                 " ON CONFLICT DO NOTHING RETURNING 1");
    // The events and the orders' changes, one statement: a data-modifying WITH runs its INSERT exactly once
    // whether or not anything reads it. A plain INSERT: the identities were looked up under the orders'
    // locks, so a unique index refuses a row only when another transaction recorded the same fact meanwhile
    // (the batch is then retried). The ON CONFLICT form checked every arbiter index before each insert: 6.5 %
    // of PostgreSQL's CPU.
    conn.prepare(
        "batch_write_events_and_orders",
        "WITH appended AS (INSERT INTO wxrecon.payment_events (mchid, out_trade_no, source, notify_id,"
        " event_type, trade_state, refund_status, transaction_id, out_refund_no, amount_total, payer_total,"
        " amount_refund, occurred_at, received_at, payload, raw_body, raw_headers)"
        " SELECT mchid, out_trade_no, source, notify_id, event_type, trade_state, refund_status,"
        " transaction_id, out_refund_no, amount_total, payer_total, amount_refund,"
        " wxrecon.from_micros(occurred_at), wxrecon.from_micros(received_at), payload::jsonb, raw_body,"
        " raw_headers::jsonb"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
        " $8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[],"
        " $15::text[], $16::text[], $17::text[]) WITH ORDINALITY"
        " AS e(mchid, out_trade_no, source, notify_id, event_type, trade_state, refund_status, "
        "transaction_id,"
        " out_refund_no, amount_total, payer_total, amount_refund, occurred_at, received_at, payload,"
        " raw_body, raw_headers, arrival)"
        " ORDER BY arrival)"
        " UPDATE wxrecon.orders o SET"
        " state = coalesce(u.state, o.state),"
        " state_source = CASE WHEN u.state IS NULL THEN o.state_source ELSE u.state_source END,"
        " state_changed_at = CASE WHEN u.state IS NULL THEN o.state_changed_at ELSE now() END,"
        " state_observed_at = CASE WHEN u.state IS NULL THEN o.state_observed_at"
        "                     ELSE wxrecon.from_micros(u.observed_at) END,"
        " state_desc = coalesce(u.state_desc, o.state_desc),"
        " transaction_id = coalesce(o.transaction_id, u.transaction_id),"
        " trade_type = coalesce(u.trade_type, o.trade_type),"
        " bank_type = coalesce(u.bank_type, o.bank_type),"
        " payer_openid = coalesce(o.payer_openid, u.payer_openid),"
        " payer_total = coalesce(u.payer_total, o.payer_total),"
        " success_time = coalesce(o.success_time, wxrecon.from_micros(u.success_time)),"
        " notified_at = CASE WHEN u.notified THEN coalesce(o.notified_at, now()) ELSE o.notified_at END,"
        " updated_at = now()"
        " FROM unnest($18::text[], $19::text[], $20::text[], $21::text[], $22::text[], $23::text[],"
        " $24::text[], $25::text[], $26::text[], $27::bigint[], $28::bigint[], $29::boolean[],"
        " $30::bigint[])"
        " AS u(mchid, out_trade_no, state, state_source, state_desc, transaction_id, trade_type, bank_type,"
        " payer_openid, payer_total, success_time, notified, observed_at)"
        " WHERE o.mchid = u.mchid AND o.out_trade_no = u.out_trade_no");
    conn.prepare(
        "batch_upsert_refunds",
        "INSERT INTO wxrecon.refunds (mchid, out_refund_no, out_trade_no, refund_id, transaction_id,"
        " amount_refund, amount_total, status, success_time, status_observed_at)"
        " SELECT mchid, out_refund_no, out_trade_no, refund_id, transaction_id, amount_refund, amount_total,"
        " status, wxrecon.from_micros(success_time), wxrecon.from_micros(observed_at)"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],"
        " $8::text[], $9::bigint[], $10::bigint[])"
        " AS r(mchid, out_refund_no, out_trade_no, refund_id, transaction_id, amount_refund, amount_total,"
        " status, success_time, observed_at)"
        " ON CONFLICT (mchid, out_refund_no) DO UPDATE SET"
        " refund_id = coalesce(wxrecon.refunds.refund_id, excluded.refund_id),"
        " transaction_id = coalesce(wxrecon.refunds.transaction_id, excluded.transaction_id),"
        " amount_total = coalesce(excluded.amount_total, wxrecon.refunds.amount_total),"
        " status = excluded.status, status_changed_at = now(), status_observed_at = "
        "excluded.status_observed_at,"
        " success_time = coalesce(excluded.success_time, wxrecon.refunds.success_time),"
        " updated_at = now()");
    conn.prepare(
        "batch_open_discrepancies",
        "INSERT INTO wxrecon.discrepancies (mchid, out_trade_no, kind, detail)"
        " SELECT mchid, out_trade_no, kind, detail::jsonb"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS d(mchid, out_trade_no, kind, detail)"
        " ON CONFLICT (mchid, out_trade_no, kind) WHERE resolved_at IS NULL DO NOTHING");
    conn.prepare("batch_resolve_discrepancies",
                 "UPDATE wxrecon.discrepancies d SET resolved_at = now(), status = 'resolved',"
                 " resolved_by = 'wxrecond', resolution = CASE d.kind"
                 " WHEN 'refund_without_payment' THEN 'the payment behind the refund was reported'"
                 " WHEN 'refund_abnormal' THEN 'the refund was reported SUCCESS'"
                 " ELSE 'no longer holds after a fact from WeChat Pay' END"
                 " FROM unnest($1::text[], $2::text[], $3::text[]) AS k(mchid, out_trade_no, kind)"
                 " WHERE d.mchid = k.mchid AND d.out_trade_no = k.out_trade_no AND d.kind = k.kind"
                 " AND d.resolved_at IS NULL");
}

}  // namespace wxrecon::store
