// The alert outbox's operations (migration 0007): claim due pushes with a
// lease, record what became of each, and keep the table small. Awaited; the
// SQL runs on a db_pool worker.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "store/db_pool.hpp"

namespace wxrecon::store {

struct pending_alert {
    std::int64_t discrepancy_id = 0;
    std::string kind;
    std::string mchid;
    std::string out_trade_no;
    std::string detail_json;
    std::string detected_at;  // RFC 3339, Beijing time as WeChat writes it
    bool resolved = false;
    std::optional<std::string> order_state;  // the order as it stands now; none when there is no row
    std::optional<std::int64_t> amount_total;
    std::optional<std::int64_t> payer_total;
    int attempts = 0;  // including this one
};

// Claims up to `limit` pushes that are due, oldest first, leased for `lease`. An unknown_order is due only
// `unknown_order_grace` after it was queued: a registration racing its notification usually resolves it.
boost::asio::awaitable<std::vector<pending_alert>> claim_alerts(db_pool& pool, std::size_t limit,
                                                                std::chrono::milliseconds unknown_order_grace,
                                                                std::chrono::milliseconds lease,
                                                                deadline until);

// outcome: "pushed" or "resolved_before_push".
boost::asio::awaitable<void> finish_alert(db_pool& pool, std::int64_t discrepancy_id, std::string outcome,
                                          deadline until);
boost::asio::awaitable<void> retry_alert(db_pool& pool, std::int64_t discrepancy_id, std::string error,
                                         std::chrono::milliseconds after, deadline until);

struct outbox_tidy {
    long expired = 0;  // unsent for a day: given up
    long pending = 0;  // still waiting
};
// Gives up on pushes a day old, forgets finished ones after a week, and counts what is waiting.
boost::asio::awaitable<outbox_tidy> tidy_alert_outbox(db_pool& pool, deadline until);

}  // namespace wxrecon::store
