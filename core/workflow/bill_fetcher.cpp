#include "workflow/bill_fetcher.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <map>
#include <optional>

#include "base/encoding.hpp"
#include "base/time.hpp"
#include "crypto/crypto.hpp"
#include "protocol/bill_link.hpp"
#include "store/bill_store.hpp"
#include "wechat/pay_client.hpp"
#include "workflow/wechat_access.hpp"

namespace wxrecon::workflow {
namespace {

namespace bill = protocol::bill;
using namespace std::chrono;

std::optional<year_month_day> parse_day(const std::string& text) {
    unsigned y = 0, m = 0, d = 0;
    char tail = 0;
    if (text.size() != 10 || std::sscanf(text.c_str(), "%4u-%2u-%2u%c", &y, &m, &d, &tail) != 3)
        return std::nullopt;
    const year_month_day day{year{static_cast<int>(y)}, month{m}, std::chrono::day{d}};
    if (!day.ok()) return std::nullopt;
    return day;
}

std::string format_day(year_month_day d) {
    char out[16];
    std::snprintf(out, sizeof out, "%04d-%02u-%02u", static_cast<int>(d.year()),
                  static_cast<unsigned>(d.month()), static_cast<unsigned>(d.day()));
    return out;
}

year_month_day beijing_today(std::int64_t now_unix) {
    return year_month_day{floor<days>(sys_seconds{seconds{now_unix + beijing_offset_seconds}})};
}

// A file under work_dir for one download, removed when done with.
class temp_file {
public:
    temp_file(const std::filesystem::path& dir, const std::string& name)
        : path_(dir / ("wxrecon-bill-" + name + "-" + crypto::random_alnum(12))) {}
    ~temp_file() {
        std::error_code ec;
        std::filesystem::remove(path_, ec);
    }
    std::string path() const { return path_.string(); }

private:
    std::filesystem::path path_;
};

enum class download_result { file, no_bill, not_ready, error };

struct download {
    download_result result = download_result::error;
    std::optional<std::string> hash_value;  // APIv3: what the file must be
    std::string error;
};

download from_call(const wechat::call_result& r, std::optional<std::string> hash = std::nullopt) {
    if (r.outcome == wechat::call_outcome::ok) return {download_result::file, std::move(hash), {}};
    // docs/protocol-notes.md §6.1 (APIv3 codes), §7.9 and §6.5 (APIv2 return_msg / error_code).
    const bool no_bill = r.code == "NO_STATEMENT_EXIST" || r.code == "NO_BILL_EXIST" || r.code == "20002" ||
                         r.message.find("No Bill Exist") != std::string::npos;
    // downloadbill says "Bill Creating" with error_code 20003 (§7.9), downloadfundflow BILL_CREATING.
    const bool not_ready = r.code == "STATEMENT_CREATING" || r.code == "BILL_CREATING" || r.code == "20003" ||
                           r.message.find("BILL_CREATING") != std::string::npos ||
                           r.message.find("Bill Creating") != std::string::npos;
    return {no_bill     ? download_result::no_bill
            : not_ready ? download_result::not_ready
                        : download_result::error,
            std::nullopt, r.error};
}

const char* metric_result(const store::stored_bill& s) {
    switch (s.outcome) {
        case store::bill_store_outcome::malformed:
            return "malformed";
        case store::bill_store_outcome::hash_mismatch:
            return "hash_mismatch";
        default:
            return s.rows == 0 ? "empty" : "parsed";
    }
}

}  // namespace

struct bill_fetcher::impl {
    boost::asio::any_io_executor ex;
    store::db_pool& pool;
    store::ledger& ledger;
    std::shared_ptr<metrics> stats;
    wall_clock clock;
    bill_fetch_policy policy;
    std::map<std::string, std::unique_ptr<wechat::pay_client>> clients;  // by client_key_of

    wechat::pay_client& client_for(const config::merchant_config& m) {
        const auto options = merchant_client_options(m, policy.download_timeout);
        auto& slot = clients[client_key_of(options)];
        if (!slot) slot = std::make_unique<wechat::pay_client>(ex, options, clock);
        return *slot;
    }

    boost::asio::awaitable<std::optional<std::string>> publish_gauges(std::string mchid) {
        // Not after yesterday: a day loaded by hand ahead of time must not stand for yesterday.
        auto day = co_await store::last_reconciled_day(pool, mchid, previous_beijing_day(clock.seconds()));
        if (!stats) co_return day;
        double day_start = 0;
        if (day) {
            const auto midnight = sys_days{*parse_day(*day)} - seconds{beijing_offset_seconds};
            day_start = static_cast<double>(duration_cast<seconds>(midnight.time_since_epoch()).count());
        }
        const double open = static_cast<double>(co_await store::open_bill_differences(pool, mchid));
        set_merchant_gauges(mchid, day_start, open);
        co_return day;
    }

    // Named, not braced in place: GCC 12 miscompiles braced label lists inside coroutines.
    void set_merchant_gauges(const std::string& mchid, double day_start, double open_differences) {
        stats->set("wxrecon_last_reconciled_day_timestamp_seconds", {{"mchid", mchid}}, day_start);
        stats->set("wxrecon_reconciliation_differences", {{"mchid", mchid}}, open_differences);
    }

    void count(bill::bill_kind kind, const char* result) {
        if (stats) stats->add("wxrecon_bills_total", {{"kind", bill::to_string(kind)}, {"result", result}});
    }

    boost::asio::awaitable<void> sleep(milliseconds how_long) {
        boost::asio::steady_timer timer(ex, how_long);
        co_await timer.async_wait(boost::asio::use_awaitable);
    }

    boost::asio::awaitable<download> download_v3(const config::merchant_config& m,
                                                 const wechat::merchant_access& access, bill::bill_kind kind,
                                                 const std::string& day, const std::string& path) {
        auto& client = client_for(m);
        const std::string apply =
            kind == bill::bill_kind::trade
                ? "/v3/bill/tradebill?bill_date=" + day + "&bill_type=ALL&tar_type=GZIP"
                : "/v3/bill/fundflowbill?bill_date=" + day + "&account_type=BASIC&tar_type=GZIP";
        const auto answer = co_await client.v3(access, "GET", apply, "", wechat::retry_safety::idempotent);
        if (answer.outcome != wechat::call_outcome::ok) co_return from_call(answer);
        auto link = bill::parse_bill_link(answer.body);
        if (!link) co_return download{download_result::error, std::nullopt, link.err().message};
        const auto file = co_await client.v3_download(access, link->download_url, path);
        co_return from_call(file, link->hash_value);
    }

    boost::asio::awaitable<download> download_v2(const config::merchant_config& m,
                                                 const wechat::merchant_access& access, bill::bill_kind kind,
                                                 const std::string& day, const std::string& path) {
        protocol::v2::fields fields;
        fields["appid"] = m.appid;
        fields["bill_date"] = day.substr(0, 4) + day.substr(5, 2) + day.substr(8, 2);
        fields["tar_type"] = "GZIP";
        if (kind == bill::bill_kind::trade)
            fields["bill_type"] = "ALL";
        else
            fields["account_type"] = "Basic";
        const auto answer = co_await client_for(m).v2_download(
            access, kind == bill::bill_kind::trade ? "/pay/downloadbill" : "/pay/downloadfundflow", fields,
            path);
        co_return from_call(answer);
    }

    // One kind of bill for the day: downloaded until it is stored, WeChat Pay says there is none, or the
    // tries run out. nullopt: no bill that day.
    boost::asio::awaitable<std::optional<store::stored_bill>> fetch_kind(
        const config::merchant_config& m, const wechat::merchant_access& access, bill::bill_kind kind,
        const std::string& day) {
        int not_ready = 0, failures = 0;
        while (true) {
            temp_file file(policy.work_dir, m.mchid + "-" + day + "-" + bill::to_string(kind));
            // Not a conditional expression with a co_await in each arm: GCC 12 destroys the result twice.
            const auto started = std::chrono::steady_clock::now();
            download got;
            if (m.version == config::api_version::v3)
                got = co_await download_v3(m, access, kind, day, file.path());
            else
                got = co_await download_v2(m, access, kind, day, file.path());
            if (got.result == download_result::no_bill) {
                count(kind, "empty");
                co_return std::nullopt;
            }
            if (got.result == download_result::not_ready) {
                count(kind, "not_ready");
                if (++not_ready >= policy.not_ready_tries)
                    throw bill_fetch_error(std::string(bill::to_string(kind)) + " bill of " + day +
                                           " is still being made at WeChat Pay; try again later");
                co_await sleep(policy.not_ready_wait);
                // Waiting for WeChat Pay can outlast the lease: keep the day ours (the same owner renews).
                const bool still_ours =
                    co_await store::claim_bill_fetch(pool, m.mchid, day, policy.owner, policy.lease);
                if (!still_ours)
                    throw bill_fetch_error("the bills of " + m.mchid + " for " + day +
                                           " were taken over by another instance while WeChat Pay made them");
                continue;
            }
            if (got.result == download_result::error) {
                count(kind, "error");
                if (++failures >= policy.download_tries)
                    throw bill_fetch_error(std::string(bill::to_string(kind)) + " bill of " + day + ": " +
                                           got.error);
                co_await sleep(seconds(1 << failures));
                continue;
            }
            const std::string bill_type = kind == bill::bill_kind::trade ? "ALL" : "BASIC";
            // Named, not braced in the call: GCC 12 frees a braced temporary inside a coroutine twice.
            store::bill_file to_store{m.mchid, day, kind, bill_type, file.path(), got.hash_value};
            const auto downloaded = std::chrono::steady_clock::now();
            auto stored = co_await store::store_bill_file(pool, std::move(to_store));
            count(kind, metric_result(stored));
            spdlog::info(
                "bills: file mchid={} bill_date={} kind={} outcome={} rows={} download_ms={} store_ms={}",
                m.mchid, day, bill::to_string(kind), store::to_string(stored.outcome), stored.rows,
                duration_cast<milliseconds>(downloaded - started).count(),
                duration_cast<milliseconds>(std::chrono::steady_clock::now() - downloaded).count());
            if (stored.outcome == store::bill_store_outcome::hash_mismatch) {
                spdlog::warn("bills: hash mismatch mchid={} bill_date={} kind={}: {}", m.mchid, day,
                             bill::to_string(kind), stored.error);
                if (++failures >= policy.download_tries)
                    throw bill_fetch_error(std::string(bill::to_string(kind)) + " bill of " + day +
                                           ": every download differed from WeChat Pay's hash_value");
                continue;
            }
            co_return stored;
        }
    }

    boost::asio::awaitable<bill_day_result> fetch_day_leased(const config::merchant_config& m,
                                                             const config::merchant_keys& keys,
                                                             const std::string& day) {
        const wechat::merchant_access access = merchant_access_for(m, keys);
        bill_day_request request;
        request.mchid = m.mchid;
        request.bill_date = day;
        request.cross_day_tolerance = policy.cross_day_tolerance;
        std::vector<store::stored_bill> stored;
        if (policy.trade) {
            auto trade = co_await fetch_kind(m, access, bill::bill_kind::trade, day);
            request.no_trade_bill = !trade;
            if (trade) stored.push_back(std::move(*trade));
        }
        if (policy.fundflow) {
            if (auto fund = co_await fetch_kind(m, access, bill::bill_kind::fundflow, day))
                stored.push_back(std::move(*fund));
        }
        auto result = co_await reconcile_bill_day(pool, ledger, std::move(request));
        result.files = std::move(stored);
        co_await publish_gauges(m.mchid);
        co_return result;
    }
};

bill_fetcher::bill_fetcher(boost::asio::any_io_executor ex, store::db_pool& pool, store::ledger& ledger,
                           std::shared_ptr<metrics> stats, wall_clock clock, bill_fetch_policy policy)
    : impl_(
          new impl{std::move(ex), pool, ledger, std::move(stats), std::move(clock), std::move(policy), {}}) {}

bill_fetcher::~bill_fetcher() = default;

boost::asio::awaitable<std::optional<std::string>> bill_fetcher::publish_gauges(std::string mchid) {
    co_return co_await impl_->publish_gauges(std::move(mchid));
}

std::string bill_fetcher::previous_beijing_day(std::int64_t now_unix) {
    return format_day(year_month_day{sys_days{beijing_today(now_unix)} - days{1}});
}

bool bill_fetcher::fetchable(const std::string& bill_date, std::int64_t now_unix) {
    const auto day = parse_day(bill_date);
    if (!day) return false;
    const year_month_day today = beijing_today(now_unix);
    year_month_day earliest = today - months{3};
    if (!earliest.ok()) earliest = earliest.year() / earliest.month() / last;  // 31 May - 3 months
    return sys_days{*day} < sys_days{today} && sys_days{*day} >= sys_days{earliest};
}

boost::asio::awaitable<bill_day_result> bill_fetcher::fetch_day(const config::merchant_config& merchant,
                                                                const config::merchant_keys& keys,
                                                                std::string bill_date) {
    if (!fetchable(bill_date, impl_->clock.seconds()))
        throw bill_fetch_error(
            "bill date " + log_quote(bill_date) +
            " is not a day WeChat Pay keeps bills for (yesterday back to 3 months, Beijing time)");
    const auto& p = impl_->policy;
    if (!co_await store::claim_bill_fetch(impl_->pool, merchant.mchid, bill_date, p.owner, p.lease))
        throw bill_fetch_error("the bills of " + merchant.mchid + " for " + bill_date +
                               " are being fetched by another instance");
    std::exception_ptr failure;
    bill_day_result result;
    try {
        result = co_await impl_->fetch_day_leased(merchant, keys, bill_date);
    } catch (...) {
        failure = std::current_exception();
    }
    co_await store::release_bill_fetch(impl_->pool, merchant.mchid, bill_date, p.owner);
    if (failure) std::rethrow_exception(failure);
    co_return result;
}

}  // namespace wxrecon::workflow
