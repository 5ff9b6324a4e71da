// The app-event outbox (migration 0015): triggers write an event in the
// transaction of the change it announces; these operations hand the events to
// the sender in order per order (only the oldest undelivered event of an
// order is ever out at once), under a lease, and record what became of each.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "store/db_pool.hpp"

namespace wxrecon::store {

using connection_setup = std::function<void(pqxx::connection_base&)>;
// A pool's prepare step that, when `on` ([app_events] is configured), also turns the app-event triggers on
// for its connections: every pool whose writes may announce something gets it.
connection_setup with_app_events(connection_setup prepare, bool on);
// The pusher's own connections. Its writes (leases, deliveries) commit without waiting for the WAL flush:
// one lost in a crash only means an event is sent again (at least once, as promised), and waiting would
// put its flushes in the queue of the fact batches' commits. Prepares the statements of the operations
// below, which run only on such connections.
void prepare_app_event_connection(pqxx::connection_base& conn);

struct app_event {
    std::int64_t id = 0;
    std::string body;  // the JSON sent, the same on every attempt
    int attempts = 0;  // including this one
};

// Claims up to `limit` due events, each the oldest undelivered one of its order, leased for `lease`.
std::vector<app_event> claim_app_events_now(pqxx::connection_base& conn, const std::string& owner,
                                            std::chrono::milliseconds lease, std::size_t limit);
// The same on a connection of the pool.
boost::asio::awaitable<std::vector<app_event>> claim_app_events(db_pool& pool, std::string owner,
                                                                std::chrono::milliseconds lease,
                                                                std::size_t limit, deadline until);

// Delivered (a 2xx came back): recorded for many at once, one statement. Or to be tried again after `after`.
boost::asio::awaitable<void> finish_app_events(db_pool& pool, std::vector<std::int64_t> ids,
                                               std::string owner, deadline until);
// Claimed and not sent (the pusher stops, or too little of the lease was left to send): the lease ends now,
// and the claim does not count as an attempt.
boost::asio::awaitable<void> release_app_events(db_pool& pool, std::vector<std::int64_t> ids,
                                                std::string owner, deadline until);
boost::asio::awaitable<void> retry_app_event(db_pool& pool, std::int64_t id, std::string owner, int status,
                                             std::string error, std::chrono::milliseconds after,
                                             deadline until);

struct app_event_gauges {
    long pending = 0;           // undelivered events
    double oldest_seconds = 0;  // age of the oldest undelivered event
};
// Forgets events delivered more than a day ago, and counts what waits.
boost::asio::awaitable<app_event_gauges> tidy_app_events(db_pool& pool, deadline until);

}  // namespace wxrecon::store
