#include "store/evidence_store.hpp"

#include <pqxx/pqxx>

namespace wxrecon::store {

namespace {

std::optional<stored_notification> rejected_row(pqxx::connection_base& conn, std::int64_t id) {
    pqxx::nontransaction tx(conn);
    const auto rows = tx.exec_params(
        "SELECT path, coalesce(mchid, ''), headers::text, coalesce(body, ''), wxrecon.to_micros(received_at),"
        " reason FROM wxrecon.rejected_notifications WHERE id = $1",
        id);
    if (rows.empty()) return std::nullopt;
    const auto& r = rows[0];
    stored_notification n;
    n.path = r[0].as<std::string>();
    n.mchid = r[1].as<std::string>();
    n.headers_json = r[2].as<std::string>();
    n.body = r[3].as<std::string>();
    n.received_at = r[4].as<std::int64_t>();
    n.reason = r[5].as<std::string>();
    return n;
}

std::optional<stored_notification> event_row(pqxx::connection_base& conn, std::int64_t id) {
    pqxx::nontransaction tx(conn);
    const auto rows = tx.exec_params(
        "SELECT source, out_refund_no IS NOT NULL, mchid, coalesce(raw_headers::text, '{}'),"
        " coalesce(raw_body, ''), wxrecon.to_micros(received_at) FROM wxrecon.payment_events WHERE id = $1",
        id);
    if (rows.empty()) return std::nullopt;
    const auto& r = rows[0];
    stored_notification n;
    n.source = r[0].as<std::string>();
    n.refund = r[1].as<bool>();
    n.mchid = r[2].as<std::string>();
    n.headers_json = r[3].as<std::string>();
    n.body = r[4].as<std::string>();
    n.received_at = r[5].as<std::int64_t>();
    return n;
}

}  // namespace

boost::asio::awaitable<std::optional<stored_notification>> load_rejected_notification(db_pool& pool,
                                                                                      std::int64_t id) {
    co_return co_await pool.run<std::optional<stored_notification>>(
        [id](pqxx::connection_base& c) { return rejected_row(c, id); });
}

boost::asio::awaitable<std::optional<stored_notification>> load_event_notification(db_pool& pool,
                                                                                   std::int64_t id) {
    co_return co_await pool.run<std::optional<stored_notification>>(
        [id](pqxx::connection_base& c) { return event_row(c, id); });
}

boost::asio::awaitable<void> mark_replayed(db_pool& pool, std::int64_t id, std::string result) {
    auto job = [id, result = std::move(result)](pqxx::connection_base& c) {
        pqxx::work tx(c);
        tx.exec_params(
            "UPDATE wxrecon.rejected_notifications SET replayed_at = now(), replay_result = $2 WHERE id = $1",
            id, result);
        tx.commit();
        return true;
    };
    co_await pool.run<bool>(std::move(job));
}

}  // namespace wxrecon::store
