// Pushes new discrepancies to alerts.webhook_url from the database outbox
// (migration 0007): at least once per discrepancy, across restarts and
// instances; at most alerts.webhook_per_minute in any minute (per instance),
// retried with backoff, and on its own connection so the notification path
// never waits for it. A WeCom group-robot URL (path
// /cgi-bin/webhook/send) gets the robot's markdown message; anything else a
// plain JSON object.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "base/metrics.hpp"
#include "config/config.hpp"
#include "net/http_client.hpp"
#include "store/alert_outbox.hpp"
#include "store/db_pool.hpp"

namespace wxrecon::workflow {

struct alert_pusher_options {
    std::chrono::milliseconds tick{1000};
    std::chrono::milliseconds tidy_every{std::chrono::minutes(1)};
    std::chrono::milliseconds lease{
        std::chrono::minutes(2)};  // a claimed push another instance may retry after
    std::chrono::milliseconds first_retry{std::chrono::seconds(5)};
    std::chrono::milliseconds last_retry{std::chrono::hours(1)};
};

bool is_wecom_robot(const std::string& url);
// The body POSTed for one discrepancy.
std::string alert_message(const store::pending_alert& a, bool wecom);

class alert_pusher {
public:
    alert_pusher(boost::asio::any_io_executor ex, const config::config& cfg, store::db_pool& pool,
                 std::shared_ptr<metrics> m, alert_pusher_options options = {});
    void start();
    // Stops claiming and waits (bounded) for a push in flight.
    boost::asio::awaitable<void> stop(std::chrono::milliseconds grace);

private:
    boost::asio::awaitable<void> run();
    boost::asio::awaitable<void> tidy();
    boost::asio::awaitable<void> push_due();
    // Empty when the receiver took it; otherwise why not, and how long to wait before the next try.
    boost::asio::awaitable<std::pair<std::string, std::chrono::milliseconds>> push(
        const store::pending_alert& a);
    std::chrono::milliseconds backoff(int attempts) const;

    boost::asio::any_io_executor executor_;
    const config::config& cfg_;
    store::db_pool& pool_;
    std::shared_ptr<metrics> metrics_;
    alert_pusher_options options_;
    net::http_client client_;
    boost::asio::steady_timer timer_;
    std::deque<std::chrono::steady_clock::time_point> sent_;  // pushes of the last minute
    std::chrono::steady_clock::time_point next_tidy_{};
    std::chrono::steady_clock::time_point next_error_log_{};
    bool stopping_ = false;
    bool running_ = false;
};

}  // namespace wxrecon::workflow
