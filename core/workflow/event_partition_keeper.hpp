// Keeps payment_events partitioned ahead of time (migration 0025): at start and every hour, the partitions
// through the third month after the current one are made, and with [database] keep_months the old ones
// are detached. The gauge wxrecon_event_partition_months_ahead says how far ahead rows have a month of
// their own; past it they go to the default partition (kept, but unsplittable later).
#pragma once

#include <chrono>
#include <memory>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "base/metrics.hpp"
#include "config/config.hpp"
#include "store/db_pool.hpp"

namespace wxrecon::workflow {

class event_partition_keeper {
public:
    static constexpr int months_ahead = 3;

    event_partition_keeper(boost::asio::any_io_executor ex, const config::database_config& cfg,
                           store::db_pool& pool, std::shared_ptr<metrics> stats,
                           std::chrono::seconds every = std::chrono::hours(1));
    void start();
    void stop();

    // One round: make, detach, publish the gauge. A failure is logged and false returned; the next
    // round, 5 minutes later, tries again.
    boost::asio::awaitable<bool> maintain();

private:
    boost::asio::awaitable<void> run();

    const config::database_config& cfg_;
    store::db_pool& pool_;
    std::shared_ptr<metrics> stats_;
    std::chrono::seconds every_;
    boost::asio::steady_timer timer_;
    bool stopping_ = false;
};

}  // namespace wxrecon::workflow
