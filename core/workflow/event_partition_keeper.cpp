#include "workflow/event_partition_keeper.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

#include "base/encoding.hpp"
#include "store/event_partitions.hpp"
#include "workflow/escapes.hpp"

namespace wxrecon::workflow {

event_partition_keeper::event_partition_keeper(boost::asio::any_io_executor ex,
                                               const config::database_config& cfg, store::db_pool& pool,
                                               std::shared_ptr<metrics> stats, std::chrono::seconds every)
    : cfg_(cfg), pool_(pool), stats_(std::move(stats)), every_(every), timer_(ex) {}

void event_partition_keeper::start() {
    // 0 until a round succeeds: maintenance that never works raises the alert rather than nothing.
    stats_->set("wxrecon_event_partition_months_ahead", 0);
    boost::asio::co_spawn(timer_.get_executor(), run(), report_escapes(stats_, "event_partitions"));
}

void event_partition_keeper::stop() {
    stopping_ = true;
    timer_.cancel();
}

boost::asio::awaitable<bool> event_partition_keeper::maintain() {
    try {
        const auto changes = co_await store::maintain_event_partitions(pool_, months_ahead, cfg_.keep_months);
        for (const auto& name : changes.created) spdlog::info("database: partition {} made", name);
        for (const auto& name : changes.detached)
            spdlog::info("database: partition {} detached (keep_months = {}); it stays as a table", name,
                         *cfg_.keep_months);
        stats_->set("wxrecon_event_partition_months_ahead", changes.months_ahead);
        co_return true;
    } catch (const std::exception& e) {
        spdlog::warn("database: maintaining the event partitions failed (tried again in 5 minutes): {}",
                     log_quote(e.what()));
    }
    try {
        stats_->set("wxrecon_event_partition_months_ahead",
                    co_await store::event_partition_months_ahead(pool_));
    } catch (const std::exception&) {
        // The database is out of reach: the gauge keeps its last value, and the database alerts fire.
    }
    co_return false;
}

boost::asio::awaitable<void> event_partition_keeper::run() {
    while (!stopping_) {
        const bool done = co_await maintain();
        if (stopping_) break;
        timer_.expires_after(done ? every_ : std::min<std::chrono::seconds>(every_, std::chrono::minutes(5)));
        boost::system::error_code ec;
        co_await timer_.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    }
}

}  // namespace wxrecon::workflow
