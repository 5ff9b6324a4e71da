// App events delivered to the application ([app_events] url): each event of
// the outbox is POSTed until a 2xx comes back, at least once and in order per
// order, signed X-Wxrecon-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
// "<t>.<body>"> so a receiver can check it and refuse replays. Failures are
// retried with exponential backoff and jitter; at most `concurrency` are in
// flight.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "base/metrics.hpp"
#include "base/time.hpp"
#include "config/config.hpp"
#include "net/http_client.hpp"
#include "store/app_event_store.hpp"

namespace wxrecon::workflow {

// The X-Wxrecon-Signature value for a body sent at unix time t.
std::string app_event_signature(std::string_view secret, std::int64_t t, std::string_view body);

struct app_event_pusher_options {
    std::chrono::milliseconds tick{200};  // how often due events are looked for when idle
    // After a wake-up or a finished delivery, how long to let more arrive before one round claims the new
    // events and records the finished ones together (no wait while there is a backlog).
    std::chrono::milliseconds gather{50};
    // At most this many events (or `concurrency`, if more) wait in memory for a free slot, claimed: a
    // claim's cost is mostly its own (planning, a round trip), so a round claims what has gathered.
    std::size_t claim_limit = 512;
    std::chrono::milliseconds lease{60000};  // how long a claimed event keeps other instances away
    std::string owner;
    std::chrono::milliseconds tidy_every{5000};  // gauges and clean-up
    std::chrono::milliseconds first_retry{1000};
    std::chrono::milliseconds last_retry{std::chrono::minutes(10)};
    wall_clock clock;
};

class app_event_pusher {
public:
    app_event_pusher(boost::asio::any_io_executor ex, const config::app_events_config& cfg,
                     std::string secret, store::db_pool& pool, std::shared_ptr<metrics> m,
                     app_event_pusher_options options);

    void start();
    // Stops claiming and waits (bounded) for the deliveries in flight; leases make them safe to abandon.
    // Records the 2xx received and releases the claims of events never sent.
    boost::asio::awaitable<void> stop(std::chrono::milliseconds grace);
    // Something that may have written events was committed here: look for them now, not at the next tick
    // (events committed by other instances or connections are still found by the tick).
    void wake();

private:
    struct claimed_event {
        store::app_event event;
        std::chrono::steady_clock::time_point lease_ends;
    };
    boost::asio::awaitable<void> run();
    void send_queued();
    void drop_queue();  // the queue's events are not to be sent: to unsent_
    boost::asio::awaitable<void> release_unsent(store::deadline until);
    boost::asio::awaitable<void> deliver(store::app_event e);
    void wake_here();
    std::chrono::milliseconds backoff(int attempts) const;

    boost::asio::any_io_executor executor_;
    const config::app_events_config& cfg_;
    std::string secret_;
    store::db_pool& pool_;
    std::shared_ptr<metrics> metrics_;
    app_event_pusher_options options_;
    net::http_client client_;
    boost::asio::steady_timer timer_;
    std::chrono::steady_clock::time_point next_tidy_{};
    std::vector<std::int64_t> delivered_;                    // 2xx received, not yet recorded
    std::chrono::steady_clock::time_point first_delivered_;  // when delivered_ got its first id
    std::deque<claimed_event> queued_;                       // claimed, waiting for a free slot
    std::vector<std::int64_t> unsent_;       // claimed, not to be sent by this claim: to be released
    std::chrono::milliseconds send_margin_;  // the longest one delivery can take
    int in_flight_ = 0;
    bool stopping_ = false;
    bool woken_ = false;      // a round is due once the gathering moment has passed
    bool gathering_ = false;  // waiting the gather moment: a wake-up must not cut it short
    bool backlog_ = false;    // the last claim got all it asked for: more are due now
    bool running_ = false;
};

}  // namespace wxrecon::workflow
