// The stored evidence of a notification, read back for `wxrecond replay`: a
// rejected_notifications row, or the raw request behind a payment_events row.
// Awaited; the SQL runs on a db_pool worker.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "domain/facts.hpp"
#include "store/db_pool.hpp"

namespace wxrecon::store {

struct stored_notification {
    std::string path;          // rejected: the endpoint it was posted to (events keep no path)
    std::string source;        // an event: notify_v3, notify_v2, query_v3, ... (rejected: empty)
    bool refund = false;       // an event: a refund fact
    std::string mchid;         // empty when the path named no merchant
    std::string headers_json;  // {name: value}, as received
    std::string body;
    domain::micros received_at = 0;
    std::string reason;  // rejected: why it was refused
};

// nullopt: no rejected notification has that id (it may have aged out of the bounded log).
boost::asio::awaitable<std::optional<stored_notification>> load_rejected_notification(db_pool& pool,
                                                                                      std::int64_t id);

// The request behind a recorded event. nullopt: no event has that id. An event from a query, a close or a
// bill has no request behind it: its source says so and its headers and body are empty.
boost::asio::awaitable<std::optional<stored_notification>> load_event_notification(db_pool& pool,
                                                                                   std::int64_t id);

// Notes on the rejected row what its replay came to (accepted, duplicate, ignored, or the refusal again).
boost::asio::awaitable<void> mark_replayed(db_pool& pool, std::int64_t id, std::string result);

}  // namespace wxrecon::store
