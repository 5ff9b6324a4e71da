// Refunds not yet final are followed to their end: the tracker claims due
// refunds under a lease (as the poller claims orders), asks WeChat Pay where
// each stands on a schedule of its own, and applies every answer through the
// ledger as a fact (sources refund_query_v3 / refund_query_v2), so a
// notification and a query never apply one refund status twice. A refund of
// ours that WeChat Pay has never heard of (the first attempt was lost) is sent
// again, as stored, under the same out_refund_no.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "base/metrics.hpp"
#include "base/time.hpp"
#include "config/config.hpp"
#include "domain/schedule.hpp"
#include "store/refund_store.hpp"
#include "workflow/merchant_rate.hpp"
#include "workflow/notify_intake.hpp"
#include "workflow/wechat_access.hpp"

namespace wxrecon::store {
class db_pool;
class ledger;
}  // namespace wxrecon::store

namespace wxrecon::workflow {

struct refund_tracker_options {
    std::chrono::milliseconds tick{1000};    // how often due refunds are looked for
    std::chrono::milliseconds lease{60000};  // how long a claim keeps other instances away
    std::string owner;                       // this instance's name in poll_lease_owner
    wall_clock clock;
    std::shared_ptr<merchant_rate_limiter> rate;  // shared with the poller (its own when null)
};

class refund_tracker {
public:
    refund_tracker(boost::asio::any_io_executor ex, const config::config& cfg, key_holder& keys,
                   wechat_clients& clients, store::db_pool& pool, store::ledger& ledger,
                   std::shared_ptr<metrics> m, refund_tracker_options options);

    void start();
    // Stops claiming and waits (bounded) for the queries in flight; their leases make them safe to abandon.
    boost::asio::awaitable<void> stop(std::chrono::milliseconds grace);

private:
    boost::asio::awaitable<void> run();
    boost::asio::awaitable<void> track_checked(store::claimed_refund refund);
    boost::asio::awaitable<void> track(store::claimed_refund refund);
    domain::micros next_due(const store::claimed_refund& refund) const;
    domain::micros backoff(const wechat::call_result& r) const;

    boost::asio::any_io_executor executor_;
    const config::config& cfg_;
    key_holder& keys_;
    wechat_clients& clients_;
    store::db_pool& pool_;
    store::ledger& ledger_;
    std::shared_ptr<metrics> metrics_;
    refund_tracker_options options_;
    domain::poll_schedule schedule_;
    boost::asio::steady_timer wake_;
    int in_flight_ = 0;
    bool stopping_ = false;
    bool running_ = false;
};

}  // namespace wxrecon::workflow
