// The daily fetch of the bills (docs/interfaces.md §7.2 [bills]): at fetch_at, Beijing time, every merchant's
// bills of the day before are fetched and the day reconciled; a daemon started later that day does it at once
// (fetching again is idempotent). A bill still being made is asked for again by the fetcher. After each run,
// bill files older than keep_days go.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "config/config.hpp"
#include "workflow/bill_fetcher.hpp"
#include "workflow/key_holder.hpp"

namespace wxrecon::workflow {

class bill_schedule {
public:
    bill_schedule(boost::asio::any_io_executor ex, const config::config& cfg, key_holder& keys,
                  store::db_pool& pool, store::ledger& ledger, std::shared_ptr<metrics> stats,
                  wall_clock clock);
    void start();
    // Stops waiting for the next run; a fetch in flight is abandoned (the next run repeats it).
    void stop();

    // Seconds from now_unix until the next fetch_at (Beijing); 0 when today's run is due and not done.
    static std::int64_t seconds_until_run(std::chrono::minutes fetch_at, std::int64_t now_unix,
                                          bool done_today);

private:
    boost::asio::awaitable<void> run();

    boost::asio::awaitable<void> purge_old_bills();

    const config::config& cfg_;
    key_holder& keys_;
    store::db_pool& pool_;
    wall_clock clock_;
    std::shared_ptr<metrics> metrics_;
    bill_fetcher fetcher_;
    boost::asio::steady_timer timer_;
    std::map<std::string, std::string> done_;  // mchid -> the bill day last fetched for it
    bool stopping_ = false;
};

}  // namespace wxrecon::workflow
