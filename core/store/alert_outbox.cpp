#include "store/alert_outbox.hpp"

#include <pqxx/pqxx>

namespace wxrecon::store {
namespace {

std::vector<pending_alert> claim_alerts(pqxx::connection_base& conn, std::size_t limit,
                                        std::chrono::milliseconds unknown_order_grace,
                                        std::chrono::milliseconds lease) {
    pqxx::nontransaction tx(conn);  // one statement
    const auto rows = tx.exec_params(
        "WITH due AS ("
        " SELECT discrepancy_id FROM wxrecon.alert_outbox"
        " WHERE sent_at IS NULL AND due_at <= now()"
        "  AND (kind <> 'unknown_order' OR created_at <= now() - make_interval(secs => $2::float8 / 1000))"
        " ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED),"
        " claimed AS ("
        " UPDATE wxrecon.alert_outbox a SET due_at = now() + make_interval(secs => $3::float8 / 1000),"
        "  attempts = a.attempts + 1"
        " FROM due WHERE a.discrepancy_id = due.discrepancy_id"
        " RETURNING a.discrepancy_id, a.attempts)"
        " SELECT c.discrepancy_id, d.kind, d.mchid, d.out_trade_no, d.detail::text, "
        "wxrecon.rfc3339(d.detected_at),"
        "  d.resolved_at IS NOT NULL, o.state, o.amount_total, o.payer_total, c.attempts"
        " FROM claimed c JOIN wxrecon.discrepancies d ON d.id = c.discrepancy_id"
        " LEFT JOIN wxrecon.orders o ON o.mchid = d.mchid AND o.out_trade_no = d.out_trade_no"
        " ORDER BY c.discrepancy_id",
        static_cast<std::int64_t>(limit), static_cast<std::int64_t>(unknown_order_grace.count()),
        static_cast<std::int64_t>(lease.count()));
    std::vector<pending_alert> out;
    out.reserve(rows.size());
    for (const auto& row : rows) {
        pending_alert a;
        a.discrepancy_id = row[0].as<std::int64_t>();
        a.kind = row[1].as<std::string>();
        a.mchid = row[2].as<std::string>();
        a.out_trade_no = row[3].as<std::string>();
        a.detail_json = row[4].as<std::string>();
        a.detected_at = row[5].as<std::string>();
        a.resolved = row[6].as<bool>();
        if (!row[7].is_null()) a.order_state = row[7].as<std::string>();
        if (!row[8].is_null()) a.amount_total = row[8].as<std::int64_t>();
        if (!row[9].is_null()) a.payer_total = row[9].as<std::int64_t>();
        a.attempts = row[10].as<int>();
        out.push_back(std::move(a));
    }
    return out;
}

void finish_alert(pqxx::connection_base& conn, std::int64_t discrepancy_id, const std::string& outcome) {
    pqxx::nontransaction tx(conn);
    tx.exec_params(
        "UPDATE wxrecon.alert_outbox SET sent_at = now(), outcome = $2, last_error = NULL WHERE "
        "discrepancy_id = $1",
        discrepancy_id, outcome);
}

void retry_alert(pqxx::connection_base& conn, std::int64_t discrepancy_id, const std::string& error,
                 std::chrono::milliseconds after) {
    pqxx::nontransaction tx(conn);
    tx.exec_params(
        "UPDATE wxrecon.alert_outbox SET due_at = now() + make_interval(secs => $3::float8 / 1000), "
        "last_error = $2"
        " WHERE discrepancy_id = $1 AND sent_at IS NULL",
        discrepancy_id, error.substr(0, 500), static_cast<std::int64_t>(after.count()));
}

outbox_tidy tidy_alert_outbox(pqxx::connection_base& conn) {
    pqxx::work tx(conn);
    outbox_tidy t;
    t.expired = tx.exec(
                      "UPDATE wxrecon.alert_outbox SET sent_at = now(), outcome = 'expired'"
                      " WHERE sent_at IS NULL AND created_at < now() - interval '1 day'")
                    .affected_rows();
    tx.exec("DELETE FROM wxrecon.alert_outbox WHERE sent_at < now() - interval '7 days'");
    t.pending = tx.exec1("SELECT count(*) FROM wxrecon.alert_outbox WHERE sent_at IS NULL")[0].as<long>();
    tx.commit();
    return t;
}

}  // namespace

boost::asio::awaitable<std::vector<pending_alert>> claim_alerts(db_pool& pool, std::size_t limit,
                                                                std::chrono::milliseconds unknown_order_grace,
                                                                std::chrono::milliseconds lease,
                                                                deadline until) {
    auto job = [limit, unknown_order_grace, lease](pqxx::connection_base& c) {
        return claim_alerts(c, limit, unknown_order_grace, lease);
    };
    co_return co_await pool.run<std::vector<pending_alert>>(std::move(job), until);
}

boost::asio::awaitable<void> finish_alert(db_pool& pool, std::int64_t discrepancy_id, std::string outcome,
                                          deadline until) {
    auto job = [discrepancy_id, outcome = std::move(outcome)](pqxx::connection_base& c) {
        finish_alert(c, discrepancy_id, outcome);
        return true;
    };
    co_await pool.run<bool>(std::move(job), until);
}

boost::asio::awaitable<void> retry_alert(db_pool& pool, std::int64_t discrepancy_id, std::string error,
                                         std::chrono::milliseconds after, deadline until) {
    auto job = [discrepancy_id, error = std::move(error), after](pqxx::connection_base& c) {
        retry_alert(c, discrepancy_id, error, after);
        return true;
    };
    co_await pool.run<bool>(std::move(job), until);
}

boost::asio::awaitable<outbox_tidy> tidy_alert_outbox(db_pool& pool, deadline until) {
    auto job = [](pqxx::connection_base& c) { return tidy_alert_outbox(c); };
    co_return co_await pool.run<outbox_tidy>(std::move(job), until);
}

}  // namespace wxrecon::store
