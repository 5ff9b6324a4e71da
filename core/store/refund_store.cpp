#include "store/refund_store.hpp"

#include <pqxx/pqxx>

namespace wxrecon::store {
namespace {

refund_start begin_refund(pqxx::connection_base& conn, const refund_registration& r,
                          const refund_request_builder& build, const std::string& owner,
                          std::chrono::milliseconds lease, std::chrono::milliseconds first_query) {
    pqxx::work tx(conn);
    refund_start out;
    // The order first, then its refunds: the fact path locks in the same order, so neither waits on the
    // other in a cycle. WeChat's own total comes from the payment it reported.
    const auto order = tx.exec_params(
        "SELECT o.state, o.transaction_id, coalesce(o.payer_total, o.amount_total), o.currency,"
        " coalesce((SELECT e.amount_total FROM wxrecon.payment_events e"
        "           WHERE e.mchid = o.mchid AND e.out_trade_no = o.out_trade_no AND e.out_refund_no IS NULL"
        "           AND e.trade_state = 'SUCCESS' AND e.amount_total IS NOT NULL ORDER BY e.id LIMIT 1),"
        "          o.amount_total)"
        " FROM wxrecon.orders o WHERE o.mchid = $1 AND o.out_trade_no = $2 FOR UPDATE",
        r.mchid, r.out_trade_no);
    const auto existing = tx.exec_params(
        "SELECT r.out_trade_no, r.amount_refund, q.state, q.api_version, q.request, q.out_trade_no,"
        " q.amount_refund"
        " FROM (SELECT $1::text AS mchid, $2::text AS out_refund_no) k"
        " LEFT JOIN wxrecon.refunds r ON r.mchid = k.mchid AND r.out_refund_no = k.out_refund_no"
        " LEFT JOIN wxrecon.refund_requests q ON q.mchid = k.mchid AND q.out_refund_no = k.out_refund_no"
        " WHERE r.mchid IS NOT NULL OR q.mchid IS NOT NULL",
        r.mchid, r.out_refund_no);
    bool retry_refused = false;
    if (!existing.empty()) {
        const auto& row = existing[0];
        const std::string out_trade_no =
            row[0].is_null() ? row[5].as<std::string>() : row[0].as<std::string>();
        const std::int64_t amount = row[1].is_null() ? row[6].as<std::int64_t>() : row[1].as<std::int64_t>();
        if (out_trade_no != r.out_trade_no) {
            out.outcome = refund_start_outcome::conflict;
            out.conflict = "out_trade_no";
        } else if (amount != r.amount) {
            out.outcome = refund_start_outcome::conflict;
            out.conflict = "amount";
        } else if (!row[2].is_null() && row[2].as<std::string>() == "refused" && row[0].is_null()) {
            retry_refused = true;  // WeChat Pay said no last time; ask again, checks and all
        } else {
            out.outcome = refund_start_outcome::same;
            if (!row[2].is_null())
                out.request = stored_refund_request{row[3].as<std::string>(), row[4].as<std::string>()};
        }
        if (!retry_refused) {
            tx.commit();
            return out;
        }
    }
    if (order.empty()) {
        out.outcome = refund_start_outcome::no_order;
        return out;
    }
    out.order_state = order[0][0].as<std::string>();
    out.paid = order[0][2].as<std::int64_t>();
    if ((out.order_state != "SUCCESS" && out.order_state != "REFUND") || order[0][1].is_null()) {
        out.outcome = refund_start_outcome::not_paid;
        return out;
    }
    out.committed = tx.exec_params1(
                          "SELECT coalesce(sum(amount_refund), 0) FROM wxrecon.refunds"
                          " WHERE mchid = $1 AND out_trade_no = $2"
                          " AND status IN ('PROCESSING', 'SUCCESS', 'ABNORMAL')",
                          r.mchid, r.out_trade_no)[0]
                        .as<std::int64_t>();
    if (out.committed + r.amount > out.paid) {
        out.outcome = refund_start_outcome::exceeds;
        return out;
    }
    refund_order o;
    o.mchid = r.mchid;
    o.out_trade_no = r.out_trade_no;
    o.out_refund_no = r.out_refund_no;
    o.transaction_id = order[0][1].as<std::string>();
    o.currency = order[0][3].as<std::string>();
    o.amount_total = order[0][4].as<std::int64_t>();
    o.amount = r.amount;
    o.reason = r.reason;
    if (retry_refused) {
        const auto row = tx.exec_params1(
            "UPDATE wxrecon.refund_requests SET state = 'pending', updated_at = now()"
            " WHERE mchid = $1 AND out_refund_no = $2 RETURNING api_version, request",
            r.mchid, r.out_refund_no);
        out.request = stored_refund_request{row[0].as<std::string>(), row[1].as<std::string>()};
        out.outcome = refund_start_outcome::same;
    } else {
        out.request = build(o);
        tx.exec_params(
            "INSERT INTO wxrecon.refund_requests (mchid, out_refund_no, out_trade_no, api_version,"
            " amount_refund, reason, request) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            r.mchid, r.out_refund_no, r.out_trade_no, out.request->api_version, r.amount, r.reason,
            out.request->request);
        out.outcome = refund_start_outcome::created;
    }
    tx.exec_params(
        "INSERT INTO wxrecon.refunds (mchid, out_refund_no, out_trade_no, transaction_id, amount_refund,"
        " amount_total, status, next_poll_at, poll_lease_until, poll_lease_owner)"
        " VALUES ($1, $2, $3, $4, $5, $6, 'PROCESSING', now() + make_interval(secs => $9::double precision / "
        "1000),"
        " now() + make_interval(secs => $8::double precision / 1000), $7)",
        r.mchid, r.out_refund_no, r.out_trade_no, o.transaction_id, r.amount, o.amount_total, owner,
        static_cast<std::int64_t>(lease.count()), static_cast<std::int64_t>(first_query.count()));
    tx.commit();
    return out;
}

std::optional<std::string> record_refund_attempt(pqxx::connection_base& conn, const std::string& mchid,
                                                 const std::string& out_refund_no, const refund_attempt& a) {
    pqxx::work tx(conn);
    const char* state = a.outcome == refund_attempt_outcome::accepted  ? "accepted"
                        : a.outcome == refund_attempt_outcome::refused ? "refused"
                                                                       : "pending";
    tx.exec_params(
        "UPDATE wxrecon.refund_requests SET state = CASE WHEN state = 'accepted' THEN state ELSE $3 END,"
        " attempts = attempts + 1, sent_at = now(), last_code = nullif($4, ''), last_error = nullif($5, ''),"
        " updated_at = now() WHERE mchid = $1 AND out_refund_no = $2",
        mchid, out_refund_no, std::string(state), a.code, a.error);
    if (a.outcome == refund_attempt_outcome::refused) {
        // WeChat Pay has no such refund: the row would hold back money that can still be refunded.
        tx.exec_params(
            "DELETE FROM wxrecon.refunds r WHERE r.mchid = $1 AND r.out_refund_no = $2"
            " AND r.status = 'PROCESSING' AND r.refund_id IS NULL AND NOT EXISTS ("
            "  SELECT FROM wxrecon.payment_events e WHERE e.mchid = r.mchid AND e.out_trade_no = "
            "r.out_trade_no"
            "  AND e.out_refund_no = r.out_refund_no)",
            mchid, out_refund_no);
    } else {
        tx.exec_params(
            "UPDATE wxrecon.refunds SET refund_id = coalesce(refund_id, $3),"
            " poll_lease_until = CASE WHEN poll_lease_owner = $4 THEN NULL ELSE poll_lease_until END,"
            " poll_lease_owner = CASE WHEN poll_lease_owner = $4 THEN NULL ELSE poll_lease_owner END,"
            " updated_at = now() WHERE mchid = $1 AND out_refund_no = $2",
            mchid, out_refund_no, a.refund_id, a.owner);
    }
    const auto json = tx.exec_params1("SELECT wxrecon.refund_json($1, $2)::text", mchid, out_refund_no);
    tx.commit();
    if (json[0].is_null()) return std::nullopt;
    return json[0].as<std::string>();
}

std::vector<claimed_refund> claim_due_refunds(pqxx::connection_base& conn, const std::string& owner,
                                              std::chrono::milliseconds lease, std::size_t limit) {
    pqxx::nontransaction tx(conn);  // one statement, one round trip
    const auto rows = tx.exec_params(
        "UPDATE wxrecon.refunds r SET poll_lease_until = now() + make_interval(secs => $2::double precision"
        " / 1000), poll_lease_owner = $1"
        " FROM (SELECT mchid, out_refund_no FROM wxrecon.refunds"
        "       WHERE next_poll_at <= now() AND (poll_lease_until IS NULL OR poll_lease_until < now())"
        "       ORDER BY next_poll_at LIMIT $3 FOR UPDATE SKIP LOCKED) due"
        " LEFT JOIN wxrecon.refund_requests q ON q.mchid = due.mchid AND q.out_refund_no = due.out_refund_no"
        " WHERE r.mchid = due.mchid AND r.out_refund_no = due.out_refund_no"
        " RETURNING r.mchid, r.out_refund_no, r.out_trade_no, r.status, wxrecon.to_micros(r.created_at),"
        " r.poll_attempts, q.state, q.api_version, q.request",
        owner, static_cast<std::int64_t>(lease.count()), static_cast<std::int64_t>(limit));
    std::vector<claimed_refund> out;
    out.reserve(rows.size());
    for (const auto& row : rows) {
        claimed_refund c;
        c.mchid = row[0].as<std::string>();
        c.out_refund_no = row[1].as<std::string>();
        c.out_trade_no = row[2].as<std::string>();
        c.status =
            domain::parse_refund_status(row[3].as<std::string>()).value_or(domain::refund_status::processing);
        c.created_at = row[4].as<std::int64_t>();
        c.poll_attempts = row[5].as<int>();
        if (!row[6].is_null() && row[6].as<std::string>() != "refused")
            c.request = stored_refund_request{row[7].as<std::string>(), row[8].as<std::string>()};
        out.push_back(std::move(c));
    }
    return out;
}

void finish_refund_poll(pqxx::connection_base& conn, const std::string& owner, const refund_poll_update& u) {
    pqxx::nontransaction tx(conn);
    // Release and reschedule, then judge the order's refunds as they now stand for refund_stuck.
    tx.exec_params(
        "WITH r AS ("
        " UPDATE wxrecon.refunds SET"
        "  next_poll_at = CASE WHEN status IN ('PROCESSING', 'ABNORMAL') THEN wxrecon.from_micros($4) END,"
        "  poll_attempts = poll_attempts + CASE WHEN $5 THEN 1 ELSE 0 END,"
        "  last_polled_at = CASE WHEN $5 THEN now() ELSE last_polled_at END,"
        "  last_poll_error = $6, poll_lease_until = NULL, poll_lease_owner = NULL"
        " WHERE mchid = $1 AND out_refund_no = $2 AND poll_lease_owner = $3"
        " RETURNING mchid, out_trade_no),"
        " late AS ("
        " SELECT r.mchid, r.out_trade_no, jsonb_agg(jsonb_build_object('out_refund_no', x.out_refund_no,"
        "  'amount_refund', x.amount_refund, 'created_at', wxrecon.rfc3339(x.created_at),"
        "  'last_poll_error', CASE WHEN x.out_refund_no = $2 THEN $6 ELSE x.last_poll_error END)"
        "  ORDER BY x.created_at) AS refunds"
        " FROM r JOIN wxrecon.refunds x ON x.mchid = r.mchid AND x.out_trade_no = r.out_trade_no"
        " WHERE $7::bigint > 0 AND x.status = 'PROCESSING'"
        "  AND x.created_at < now() - $7::float8 * interval '1 microsecond'"
        " GROUP BY r.mchid, r.out_trade_no),"
        " opened AS ("
        " INSERT INTO wxrecon.discrepancies (mchid, out_trade_no, kind, detail)"
        " SELECT mchid, out_trade_no, 'refund_stuck', jsonb_build_object('refunds', refunds) FROM late"
        " ON CONFLICT DO NOTHING RETURNING 1)"
        " UPDATE wxrecon.discrepancies d"
        " SET resolved_at = now(), status = 'resolved', resolved_by = 'wxrecond',"
        "  resolution = 'no refund of the order is PROCESSING any more'"
        " FROM r"
        " WHERE $7::bigint > 0 AND d.mchid = r.mchid AND d.out_trade_no = r.out_trade_no"
        " AND d.kind = 'refund_stuck' AND d.resolved_at IS NULL"
        " AND NOT EXISTS (SELECT FROM late)",
        u.mchid, u.out_refund_no, owner, u.next_poll_at, u.answered, u.error, u.stuck_after);
}

}  // namespace

boost::asio::awaitable<refund_start> begin_refund(db_pool& pool, refund_registration r,
                                                  refund_request_builder build, std::string owner,
                                                  std::chrono::milliseconds lease,
                                                  std::chrono::milliseconds first_query, deadline until) {
    auto job = [r = std::move(r), build = std::move(build), owner = std::move(owner), lease, first_query](
                   pqxx::connection_base& c) { return begin_refund(c, r, build, owner, lease, first_query); };
    co_return co_await pool.run<refund_start>(std::move(job), until);
}

boost::asio::awaitable<std::optional<std::string>> record_refund_attempt(db_pool& pool, std::string mchid,
                                                                         std::string out_refund_no,
                                                                         refund_attempt attempt,
                                                                         deadline until) {
    auto job = [mchid = std::move(mchid), out_refund_no = std::move(out_refund_no),
                attempt = std::move(attempt)](pqxx::connection_base& c) {
        return record_refund_attempt(c, mchid, out_refund_no, attempt);
    };
    co_return co_await pool.run<std::optional<std::string>>(std::move(job), until);
}

boost::asio::awaitable<std::vector<claimed_refund>> claim_due_refunds(db_pool& pool, std::string owner,
                                                                      std::chrono::milliseconds lease,
                                                                      std::size_t limit) {
    auto job = [owner = std::move(owner), lease, limit](pqxx::connection_base& c) {
        return claim_due_refunds(c, owner, lease, limit);
    };
    co_return co_await pool.run<std::vector<claimed_refund>>(std::move(job));
}

boost::asio::awaitable<void> finish_refund_poll(db_pool& pool, std::string owner, refund_poll_update update) {
    auto job = [owner = std::move(owner), update = std::move(update)](pqxx::connection_base& c) {
        finish_refund_poll(c, owner, update);
        return true;
    };
    co_await pool.run<bool>(std::move(job));
}

}  // namespace wxrecon::store
