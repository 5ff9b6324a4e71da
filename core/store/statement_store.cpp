#include "store/statement_store.hpp"

#include <pqxx/pqxx>

#include <string_view>
#include <utility>

namespace wxrecon::store {
namespace {

// The day's orders: placed or paid that Beijing day in the ledger, or in the day's newest trade bill.
// Refunds are the ledger's, of any day; the bill's refund column is what that day's bill refunded.
constexpr const char* statement_query = R"(
WITH bounds AS (
    SELECT wxrecon.beijing_midnight(%DAY%::date) AS lo, wxrecon.beijing_midnight(%DAY%::date + 1) AS hi
), bill AS (
    SELECT out_trade_no,
           max(transaction_id) AS transaction_id,
           sum(order_amount_fen) FILTER (WHERE NOT is_refund) AS order_fen,
           sum(settlement_amount_fen) FILTER (WHERE NOT is_refund) AS settlement_fen,
           sum(refund_amount_fen) FILTER (WHERE is_refund) AS refund_fen,
           sum(fee) FILTER (WHERE NOT is_refund) AS fee
      FROM wxrecon.bill_trade_rows
     WHERE bill_id = wxrecon.latest_bill(%MCHID%, %DAY%::date, 'trade')
     GROUP BY out_trade_no
), day_orders AS (
    SELECT o.out_trade_no FROM wxrecon.orders o, bounds b
     WHERE o.mchid = %MCHID% AND o.created_at >= b.lo AND o.created_at < b.hi
    UNION
    SELECT o.out_trade_no FROM wxrecon.orders o, bounds b
     WHERE o.mchid = %MCHID% AND o.success_time >= b.lo AND o.success_time < b.hi
    UNION
    SELECT out_trade_no FROM bill
)
SELECT d.out_trade_no,
       coalesce(o.transaction_id, bill.transaction_id, ''),
       coalesce(to_char(o.created_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD HH24:MI:SS'), ''),
       coalesce(o.state, ''),
       coalesce(o.state_source, ''),
       coalesce(to_char(o.success_time AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD HH24:MI:SS'), ''),
       o.amount_total, o.payer_total,
       (SELECT coalesce(sum(r.amount_refund), 0) FROM wxrecon.refunds r
         WHERE r.mchid = %MCHID% AND r.out_trade_no = d.out_trade_no AND r.status = 'SUCCESS'),
       bill.order_fen, bill.settlement_fen, bill.refund_fen, bill.fee::text,
       (SELECT coalesce(string_agg(DISTINCT x.kind, ';'), '') FROM wxrecon.discrepancies x
         WHERE x.mchid = %MCHID% AND x.out_trade_no = d.out_trade_no AND x.resolved_at IS NULL)
  FROM day_orders d
  LEFT JOIN wxrecon.orders o ON o.mchid = %MCHID% AND o.out_trade_no = d.out_trade_no
  LEFT JOIN bill ON bill.out_trade_no = d.out_trade_no
 ORDER BY coalesce(o.success_time, o.created_at), d.out_trade_no
)";

// One pass over the template: a value put in is never searched again, so one cannot smuggle in the other.
std::string with_values(std::string_view query, const std::string& mchid, const std::string& day) {
    std::string out;
    for (std::size_t at = 0; at < query.size();) {
        if (query.substr(at).starts_with("%MCHID%")) {
            out += mchid;
            at += 7;
        } else if (query.substr(at).starts_with("%DAY%")) {
            out += day;
            at += 5;
        } else {
            out += query[at++];
        }
    }
    return out;
}

std::optional<std::int64_t> optional_fen(const pqxx::field& f) {
    return f.is_null() ? std::nullopt : std::optional<std::int64_t>{f.as<std::int64_t>()};
}

std::int64_t stream_statement(pqxx::connection_base& c, const std::string& mchid, const std::string& day,
                              const std::function<void(const statement_row&)>& each) {
    pqxx::work tx(c);
    // A cursor, because the query takes no parameters: the values go in quoted by the server's rules.
    pqxx::icursorstream rows(tx, with_values(statement_query, tx.quote(mchid), tx.quote(day)),
                             "day_statement", 1000);
    std::int64_t count = 0;
    pqxx::result batch;
    while (rows >> batch) {
        for (const auto& r : batch) {
            statement_row row;
            row.out_trade_no = r[0].as<std::string>();
            row.transaction_id = r[1].as<std::string>();
            row.created_at = r[2].as<std::string>();
            row.state = r[3].as<std::string>();
            row.settled_by = r[4].as<std::string>();
            row.success_time = r[5].as<std::string>();
            row.amount_total_fen = optional_fen(r[6]);
            row.payer_total_fen = optional_fen(r[7]);
            row.refunded_fen = r[8].as<std::int64_t>();
            row.bill_order_fen = optional_fen(r[9]);
            row.bill_settlement_fen = optional_fen(r[10]);
            row.bill_refund_fen = optional_fen(r[11]);
            if (!r[12].is_null()) row.bill_fee = r[12].as<std::string>();
            row.open_discrepancies = r[13].as<std::string>();
            each(row);
            ++count;
        }
    }
    tx.commit();
    return count;
}

}  // namespace

boost::asio::awaitable<std::int64_t> day_statement(db_pool& pool, std::string mchid, std::string day,
                                                   std::function<void(const statement_row&)> each) {
    auto job = [mchid = std::move(mchid), day = std::move(day), each = std::move(each)](
                   pqxx::connection_base& c) { return stream_statement(c, mchid, day, each); };
    co_return co_await pool.run<std::int64_t>(std::move(job));
}

}  // namespace wxrecon::store
