#include "store/order_store.hpp"

#include <pqxx/pqxx>

namespace wxrecon::store {
namespace {

registration_result register_order(pqxx::connection_base& conn, const order_registration& r) {
    pqxx::work tx(conn);
    registration_result out;
    const auto inserted = tx.exec_params(
        "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, appid, currency, description, "
        "payer_openid,"
        " expire_at, origin) VALUES ($1, $2, $3, $4, $5, $6, $7, wxrecon.from_micros($8), 'api')"
        " ON CONFLICT (mchid, out_trade_no) DO NOTHING RETURNING 1",
        r.mchid, r.out_trade_no, r.amount_total, r.appid, r.currency, r.description, r.payer_openid,
        r.expire_at);
    if (inserted.empty()) {
        const auto row = tx.exec_params1(
            "SELECT amount_total, appid, currency, origin FROM wxrecon.orders"
            " WHERE mchid = $1 AND out_trade_no = $2 FOR UPDATE",
            r.mchid, r.out_trade_no);
        if (row[0].as<std::int64_t>() != r.amount_total) {
            out.conflict = "amount_total";
        } else if (!row[1].is_null() && row[1].as<std::string>() != r.appid) {
            out.conflict = "appid";
        } else if (row[2].as<std::string>() != r.currency) {
            out.conflict = "currency";
        }
        if (!out.conflict.empty()) {
            out.outcome = registration_outcome::conflict;
        } else if (row[3].as<std::string>() == "notify") {
            // Money arrived before the registration: the order is now known; origin stays notify.
            tx.exec_params(
                "UPDATE wxrecon.orders SET appid = coalesce(appid, $3), description = coalesce(description, "
                "$4),"
                " payer_openid = coalesce(payer_openid, $5), expire_at = coalesce(expire_at, "
                "wxrecon.from_micros($6)),"
                " updated_at = now() WHERE mchid = $1 AND out_trade_no = $2",
                r.mchid, r.out_trade_no, r.appid, r.description, r.payer_openid, r.expire_at);
            const auto resolved = tx.exec_params(
                "UPDATE wxrecon.discrepancies"
                " SET resolved_at = now(), status = 'resolved', resolved_by = 'wxrecond',"
                " resolution = 'a registration with the same amount took the order over'"
                " WHERE mchid = $1 AND out_trade_no = $2"
                " AND kind = 'unknown_order' AND resolved_at IS NULL RETURNING 1",
                r.mchid, r.out_trade_no);
            out.outcome = resolved.empty() ? registration_outcome::same : registration_outcome::adopted;
        } else {
            out.outcome = registration_outcome::same;
        }
    }
    out.order_json = tx.exec_params1("SELECT wxrecon.order_json($1, $2)::text", r.mchid, r.out_trade_no)[0]
                         .as<std::string>();
    tx.commit();
    return out;
}

std::optional<std::string> order_json(pqxx::connection_base& conn, const std::string& mchid,
                                      const std::string& out_trade_no) {
    pqxx::nontransaction tx(conn);
    const auto row = tx.exec_params1("SELECT wxrecon.order_json($1, $2)::text", mchid, out_trade_no);
    if (row[0].is_null()) return std::nullopt;
    return row[0].as<std::string>();
}

}  // namespace

boost::asio::awaitable<registration_result> register_order(db_pool& pool, order_registration r,
                                                           deadline until) {
    auto job = [r = std::move(r)](pqxx::connection_base& c) { return register_order(c, r); };
    co_return co_await pool.run<registration_result>(std::move(job), until);
}

boost::asio::awaitable<std::optional<std::string>> order_json(db_pool& pool, std::string mchid,
                                                              std::string out_trade_no, deadline until) {
    auto job = [mchid = std::move(mchid), out_trade_no = std::move(out_trade_no)](pqxx::connection_base& c) {
        return order_json(c, mchid, out_trade_no);
    };
    co_return co_await pool.run<std::optional<std::string>>(std::move(job), until);
}

}  // namespace wxrecon::store
