#include "workflow/bill_schedule.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <cstdio>

#include "base/encoding.hpp"
#include "base/time.hpp"
#include "store/bill_store.hpp"
#include "workflow/escapes.hpp"

namespace wxrecon::workflow {
namespace {

constexpr std::int64_t seconds_per_day = 86400;

bill_fetch_policy policy_of(const config::config& cfg) {
    const config::bills_config bills = cfg.bills ? *cfg.bills : config::bills_config{};
    bill_fetch_policy p;
    p.trade = bills.trade;
    p.fundflow = bills.fundflow;
    p.cross_day_tolerance = std::chrono::duration_cast<std::chrono::microseconds>(bills.cross_day_tolerance);
    // One fetch lease per host: a restarted daemon takes its own lease back at once.
    std::array<char, 256> host{};
    if (::gethostname(host.data(), host.size() - 1) == 0) p.owner = "wxrecond@" + std::string(host.data());
    return p;
}

}  // namespace

bill_schedule::bill_schedule(boost::asio::any_io_executor ex, const config::config& cfg, key_holder& keys,
                             store::db_pool& pool, store::ledger& ledger, std::shared_ptr<metrics> stats,
                             wall_clock clock)
    : cfg_(cfg),
      keys_(keys),
      pool_(pool),
      clock_(clock),
      metrics_(stats),
      fetcher_(ex, pool, ledger, std::move(stats), clock, policy_of(cfg)),
      timer_(ex) {}

void bill_schedule::start() {
    boost::asio::co_spawn(timer_.get_executor(), run(), report_escapes(metrics_, "bill_schedule"));
}

void bill_schedule::stop() {
    stopping_ = true;
    timer_.cancel();
}

std::int64_t bill_schedule::seconds_until_run(std::chrono::minutes fetch_at, std::int64_t now_unix,
                                              bool done_today) {
    const std::int64_t beijing = now_unix + beijing_offset_seconds;
    const std::int64_t since_midnight = beijing % seconds_per_day;
    const std::int64_t run_at = fetch_at.count() * 60;
    if (since_midnight >= run_at && !done_today) return 0;
    const std::int64_t until = run_at - since_midnight;
    return until > 0 ? until : until + seconds_per_day;
}

boost::asio::awaitable<void> bill_schedule::purge_old_bills() {
    using namespace std::chrono;
    const auto today = floor<days>(sys_seconds{seconds{clock_.seconds() + beijing_offset_seconds}});
    const year_month_day oldest_kept{today - days{cfg_.bills->keep_days}};
    char day[16];
    std::snprintf(day, sizeof day, "%04d-%02u-%02u", static_cast<int>(oldest_kept.year()),
                  static_cast<unsigned>(oldest_kept.month()), static_cast<unsigned>(oldest_kept.day()));
    try {
        const auto gone = co_await store::purge_bills_before(pool_, day);
        if (gone > 0) spdlog::info("bills: {} bill file(s) of days before {} removed (keep_days)", gone, day);
    } catch (const std::exception& e) {
        spdlog::warn("bills: removing bills before {} failed: {}", day, log_quote(e.what()));
    }
}

boost::asio::awaitable<void> bill_schedule::run() {
    constexpr std::int64_t retry_failed_after = 3600;
    std::int64_t retry_at = 0;  // after a failed fetch: not before then
    while (!stopping_) {
        const std::string day = bill_fetcher::previous_beijing_day(clock_.seconds());
        // From the database, every few minutes: a restarted daemon knows what is done already, and the
        // gauges follow days fetched and differences resolved by hand (`wxrecond bills`, `discrepancies`).
        for (const auto& m : cfg_.merchants) {
            try {
                const auto last = co_await fetcher_.publish_gauges(m.mchid);
                if (last && *last == day) done_[m.mchid] = day;
            } catch (const std::exception& e) {
                spdlog::warn("bills: cannot read the reconciliations of mchid={}: {}", m.mchid,
                             log_quote(e.what()));
            }
        }
        const bool all_done = std::all_of(cfg_.merchants.begin(), cfg_.merchants.end(),
                                          [&](const auto& m) { return done_[m.mchid] == day; });
        std::int64_t wait = seconds_until_run(cfg_.bills->fetch_at, clock_.seconds(), all_done);
        if (wait == 0 && clock_.seconds() < retry_at) wait = retry_at - clock_.seconds();
        if (wait == 0) {
            const auto keys = keys_.get();
            bool failed = false;
            for (const auto& m : cfg_.merchants) {
                const auto* merchant_keys = keys->find(m.mchid);
                if (done_[m.mchid] == day || stopping_) continue;
                if (merchant_keys == nullptr) {
                    spdlog::warn("bills: no keys for mchid={}: its bills are not fetched", m.mchid);
                    done_[m.mchid] = day;
                    continue;
                }
                try {
                    co_await fetcher_.fetch_day(m, *merchant_keys, day);
                    done_[m.mchid] = day;
                } catch (const std::exception& e) {
                    failed = true;
                    spdlog::error("bills: fetch failed mchid={} bill_date={}: {}", m.mchid, day,
                                  log_quote(e.what()));
                }
            }
            co_await purge_old_bills();
            retry_at = failed ? clock_.seconds() + retry_failed_after : 0;
            wait = 1;
        }
        // At most five minutes at a time: the gauges stay fresh and a wall clock that jumps is followed.
        timer_.expires_after(std::chrono::seconds(std::min<std::int64_t>(wait, 300)));
        boost::system::error_code ec;
        co_await timer_.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    }
}

}  // namespace wxrecon::workflow
