#include "workflow/bill_reconciler.hpp"

#include <spdlog/spdlog.h>

#include "base/encoding.hpp"
#include "base/json_writer.hpp"

namespace wxrecon::workflow {
namespace {

// A bill's payment waits for its commit no longer than this; the run then fails and can simply be repeated.
constexpr std::chrono::seconds fact_deadline{30};

}  // namespace

std::string bill_day_result::json() const {
    std::string files_json = "[";
    for (const auto& f : files) {
        json_object o;
        o.add("outcome", store::to_string(f.outcome)).add("bill_id", f.bill_id).add("rows", f.rows);
        o.add("hash_value", f.hash_value);
        f.totals_json.empty() ? o.add_null("totals") : o.add_raw("totals", f.totals_json);
        if (!f.error.empty()) o.add("error", f.error);
        files_json += (files_json.size() > 1 ? "," : "") + o.str();
    }
    return json_object{}
        .add_raw("files", files_json + "]")
        .add("payments_applied", static_cast<std::int64_t>(payments_applied))
        .add_raw("reconciliation", day.json())
        .str();
}

boost::asio::awaitable<bill_day_result> reconcile_bill_day(store::db_pool& pool, store::ledger& ledger,
                                                           bill_day_request request) {
    bill_day_result out;
    for (auto& file : request.files) {
        auto stored = co_await store::store_bill_file(pool, file);
        spdlog::info("bills: file mchid={} bill_date={} kind={} outcome={} rows={} hash={}{}", request.mchid,
                     request.bill_date, protocol::bill::to_string(file.kind),
                     store::to_string(stored.outcome), stored.rows, stored.hash_value,
                     stored.error.empty() ? "" : " error=" + log_quote(stored.error));
        out.files.push_back(std::move(stored));
    }
    if (request.no_trade_bill) co_await store::record_no_trade_bill(pool, request.mchid, request.bill_date);

    // The day is matched, then the ledger learns the payments only the bill knows through the one fact
    // path, and the day is matched again if it learned any: their orders are paid now (and stay
    // missing_in_ledger for finance). Learning first would cost another join of the whole bill with the
    // ledger on every day, for the few days that have such payments.
    const auto matching = std::chrono::steady_clock::now();
    out.day = co_await store::reconcile_bill_day(pool, request.mchid, request.bill_date,
                                                 request.cross_day_tolerance);
    const auto learning = std::chrono::steady_clock::now();
    for (const auto& fact :
         co_await store::bill_payments_unknown_to_ledger(pool, request.mchid, request.bill_date)) {
        if (!domain::valid_out_trade_no(fact.out_trade_no())) {
            // Stays missing_in_ledger for finance; the orders table could not hold the number.
            spdlog::warn("bills: not learned mchid={} out_trade_no={}: not a WeChat Pay order number",
                         request.mchid, log_quote(fact.out_trade_no()));
            continue;
        }
        const auto applied = co_await ledger.apply(fact, std::chrono::steady_clock::now() + fact_deadline);
        if (applied.outcome == domain::outcome::applied) ++out.payments_applied;
    }
    if (out.payments_applied > 0)
        out.day = co_await store::reconcile_bill_day(pool, request.mchid, request.bill_date,
                                                     request.cross_day_tolerance);
    const auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
    spdlog::info(
        "bills: reconciled mchid={} bill_date={} status={} differences={} payments_applied={} learn_ms={} "
        "match_ms={}",
        request.mchid, request.bill_date, out.day.status, out.day.differences, out.payments_applied,
        ms(std::chrono::steady_clock::now() - learning), ms(learning - matching));
    co_return out;
}

}  // namespace wxrecon::workflow
