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
        " expire_at, origin, next_poll_at) VALUES ($1, $2, $3, $4, $5, $6, $7, wxrecon.from_micros($8), "
        "'api',"
        " now() + $9::bigint * interval '1 microsecond')"
        " ON CONFLICT (mchid, out_trade_no) DO NOTHING RETURNING 1",
        r.mchid, r.out_trade_no, r.amount_total, r.appid, r.currency, r.description, r.payer_openid,
        r.expire_at, r.first_poll_after);
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

// An order's or refund's JSON from its SQL function (order_json, refund_json), nullopt when absent.
std::optional<std::string> object_json(pqxx::connection_base& conn, const char* sql, const std::string& mchid,
                                       const std::string& key) {
    pqxx::nontransaction tx(conn);
    const auto row = tx.exec_params1(sql, mchid, key);
    if (row[0].is_null()) return std::nullopt;
    return row[0].as<std::string>();
}

order_list_page list_orders(pqxx::connection_base& conn, const order_list_filter& f) {
    // The SQL names only the filters given, so each is planned on its index (custom plans take the
    // values as they are: an absent filter is folded away).
    std::string sql =
        "SELECT wxrecon.order_list_json(o)::text, wxrecon.to_micros(o.created_at), o.mchid, o.out_trade_no"
        " FROM wxrecon.orders o WHERE ($1::text IS NULL OR o.mchid = $1) AND ($2::text IS NULL OR o.state = "
        "$2)"
        " AND ($3::bigint IS NULL OR o.created_at >= wxrecon.from_micros($3))"
        " AND ($4::bigint IS NULL OR o.created_at < wxrecon.from_micros($4))";
    // The previous page's end; within one merchant's list, its position in (created_at, out_trade_no).
    sql += f.mchid ? " AND ($5::bigint IS NULL OR ((o.created_at, o.out_trade_no) < "
                     "(wxrecon.from_micros($5), $7::text)"
                     " AND $6::text = $1))"
                   : " AND ($5::bigint IS NULL OR (o.created_at, o.mchid, o.out_trade_no)"
                     " < (wxrecon.from_micros($5), $6::text, $7::text))";
    sql += f.mchid ? " ORDER BY o.created_at DESC, o.out_trade_no DESC LIMIT $8"
                   : " ORDER BY o.created_at DESC, o.mchid DESC, o.out_trade_no DESC LIMIT $8";
    pqxx::read_transaction tx(conn);
    tx.exec("SET LOCAL statement_timeout = '5s'");
    const auto rows = tx.exec_params(
        sql, f.mchid, f.state, f.since, f.until,
        f.after ? std::optional<std::int64_t>(f.after->created_at) : std::nullopt,
        f.after ? std::optional<std::string>(f.after->mchid) : std::nullopt,
        f.after ? std::optional<std::string>(f.after->out_trade_no) : std::nullopt, f.limit + 1);
    order_list_page page;
    for (const auto& row : rows) {
        if (static_cast<int>(page.orders_json.size()) == f.limit) {
            const auto& last = rows[f.limit - 1];
            page.next = order_list_position{last[1].as<std::int64_t>(), last[2].as<std::string>(),
                                            last[3].as<std::string>()};
            break;
        }
        page.orders_json.push_back(row[0].as<std::string>());
    }
    return page;
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
        return object_json(c, "SELECT wxrecon.order_json($1, $2)::text", mchid, out_trade_no);
    };
    co_return co_await pool.run<std::optional<std::string>>(std::move(job), until);
}

boost::asio::awaitable<std::optional<std::string>> refund_json(db_pool& pool, std::string mchid,
                                                               std::string out_refund_no, deadline until) {
    auto job = [mchid = std::move(mchid),
                out_refund_no = std::move(out_refund_no)](pqxx::connection_base& c) {
        return object_json(c, "SELECT wxrecon.refund_json($1, $2)::text", mchid, out_refund_no);
    };
    co_return co_await pool.run<std::optional<std::string>>(std::move(job), until);
}

}  // namespace wxrecon::store

namespace wxrecon::store {

boost::asio::awaitable<order_list_page> list_orders(db_pool& pool, order_list_filter filter, deadline until) {
    auto job = [filter = std::move(filter)](pqxx::connection_base& c) { return list_orders(c, filter); };
    co_return co_await pool.run<order_list_page>(std::move(job), until);
}

}  // namespace wxrecon::store
