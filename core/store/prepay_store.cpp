#include "store/prepay_store.hpp"

#include <pqxx/pqxx>

namespace wxrecon::store {
namespace {

std::optional<prepay_start> begin_prepay(pqxx::connection_base& conn, const std::string& mchid,
                                         const std::string& out_trade_no, const prepay_builder& build) {
    pqxx::work tx(conn);
    const auto rows = tx.exec_params(
        "SELECT state, amount_total, coalesce(appid, ''), currency, description, payer_openid,"
        " wxrecon.to_micros(coalesce(expire_at, created_at + interval '2 hours'))"
        " FROM wxrecon.orders WHERE mchid = $1 AND out_trade_no = $2 FOR UPDATE",
        mchid, out_trade_no);
    if (rows.empty()) return std::nullopt;
    const auto row = rows[0];
    prepay_start out;
    const auto state = domain::parse_trade_state(row[0].as<std::string>());
    if (!state)
        throw std::runtime_error("order " + out_trade_no + " has an unknown state " +
                                 row[0].as<std::string>());
    out.state = *state;
    out.expire_at = row[6].as<std::int64_t>();
    const auto stored = tx.exec_params(
        "SELECT api_version, appid, request, prepay_id, wxrecon.to_micros(prepaid_at) FROM "
        "wxrecon.prepay_requests"
        " WHERE mchid = $1 AND out_trade_no = $2",
        mchid, out_trade_no);
    if (!stored.empty()) {
        const auto s = stored[0];
        out.prepay.api_version = s[0].as<std::string>();
        out.prepay.appid = s[1].as<std::string>();
        out.prepay.request = s[2].as<std::string>();
        if (!s[3].is_null()) out.prepay.prepay_id = s[3].as<std::string>();
        if (!s[4].is_null()) out.prepay.prepaid_at = s[4].as<std::int64_t>();
    } else {
        prepay_order o;
        o.mchid = mchid;
        o.out_trade_no = out_trade_no;
        o.amount_total = row[1].as<std::int64_t>();
        o.appid = row[2].as<std::string>();
        o.currency = row[3].as<std::string>();
        if (!row[4].is_null()) o.description = row[4].as<std::string>();
        if (!row[5].is_null()) o.payer_openid = row[5].as<std::string>();
        o.expire_at = out.expire_at;
        out.prepay = build(o);
        tx.exec_params(
            "INSERT INTO wxrecon.prepay_requests (mchid, out_trade_no, api_version, appid, request)"
            " VALUES ($1, $2, $3, $4, $5)",
            mchid, out_trade_no, out.prepay.api_version, out.prepay.appid, out.prepay.request);
    }
    tx.commit();
    return out;
}

std::string record_prepay(pqxx::connection_base& conn, const std::string& mchid,
                          const std::string& out_trade_no, const prepay_attempt& attempt) {
    const auto& [prepay_id, placed, error] = attempt;
    pqxx::work tx(conn);
    tx.exec_params(
        "UPDATE wxrecon.prepay_requests SET attempts = attempts + 1, last_error = $3,"
        " prepay_id = coalesce($4, prepay_id), prepaid_at = CASE WHEN $4::text IS NULL THEN prepaid_at ELSE "
        "now() END,"
        " updated_at = now() WHERE mchid = $1 AND out_trade_no = $2",
        mchid, out_trade_no, error, prepay_id);
    if (placed)
        tx.exec_params(
            "UPDATE wxrecon.orders SET placed_at = coalesce(placed_at, now()) WHERE mchid = $1 AND "
            "out_trade_no = $2"
            " AND placed_at IS NULL",
            mchid, out_trade_no);
    auto json =
        tx.exec_params1("SELECT coalesce(wxrecon.order_json($1, $2)::text, '{}')", mchid, out_trade_no)[0]
            .as<std::string>();
    tx.commit();
    return json;
}

}  // namespace

boost::asio::awaitable<std::optional<prepay_start>> begin_prepay(db_pool& pool, std::string mchid,
                                                                 std::string out_trade_no,
                                                                 prepay_builder build, deadline until) {
    auto job = [mchid = std::move(mchid), out_trade_no = std::move(out_trade_no), build = std::move(build)](
                   pqxx::connection_base& c) { return begin_prepay(c, mchid, out_trade_no, build); };
    co_return co_await pool.run<std::optional<prepay_start>>(std::move(job), until);
}

boost::asio::awaitable<std::string> record_prepay(db_pool& pool, std::string mchid, std::string out_trade_no,
                                                  prepay_attempt attempt, deadline until) {
    auto job = [mchid = std::move(mchid), out_trade_no = std::move(out_trade_no),
                attempt = std::move(attempt)](pqxx::connection_base& c) {
        return record_prepay(c, mchid, out_trade_no, attempt);
    };
    co_return co_await pool.run<std::string>(std::move(job), until);
}

}  // namespace wxrecon::store
