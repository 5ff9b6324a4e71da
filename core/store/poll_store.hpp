// The poller's operations: claim due orders with a lease in one short
// statement (no transaction stays open while WeChat Pay is called), then
// write back when each is due next. Awaited; the SQL runs on a db_pool worker.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "domain/facts.hpp"
#include "store/db_pool.hpp"

namespace wxrecon::store {

struct claimed_order {
    std::string mchid;
    std::string out_trade_no;
    domain::trade_state state = domain::trade_state::notpay;
    std::int64_t amount_total = 0;
    domain::micros created_at = 0;
    std::optional<domain::micros> expire_at;
    std::optional<domain::micros> placed_at;  // set when wxrecon placed it at WeChat Pay
    int poll_attempts = 0;                    // queries answered so far
    std::optional<domain::micros> last_polled_at;
};

// Claims up to `limit` orders whose next_poll_at has passed and whose lease (if any) has run out, oldest
// due first, for `lease`. Uses the partial index on next_poll_at: the cost does not grow with idle orders.
boost::asio::awaitable<std::vector<claimed_order>> claim_due_orders(db_pool& pool, std::string owner,
                                                                    std::chrono::milliseconds lease,
                                                                    std::size_t limit);

// An order taken out of turn, leased like a claimed one. close_now (the application asked to close it):
// only an open order, made to expire now, so the poller's close follows even if this attempt stops
// half-way. repoll (an operator asked for a query now): an order in any state, nothing else changed.
enum class out_of_turn { close_now, repoll };
enum class order_lease_outcome { leased, unknown, busy, settled };
struct order_lease {
    order_lease_outcome outcome = order_lease_outcome::unknown;
    claimed_order order;  // leased; settled: state only
};
boost::asio::awaitable<order_lease> lease_order(db_pool& pool, std::string mchid, std::string out_trade_no,
                                                std::string owner, std::chrono::milliseconds lease,
                                                out_of_turn purpose);

struct poll_update {
    std::string mchid;
    std::string out_trade_no;
    std::optional<domain::micros> next_poll_at;    // nullopt: nothing more is scheduled
    bool answered = false;                         // a query got an answer: poll_attempts + 1, last_polled_at
    std::optional<std::string> error;              // last_poll_error (cleared when answered without one)
    std::optional<domain::micros> fill_expire_at;  // set expire_at when it is still null
    domain::micros stuck_after = 0;                // alerts.stuck_after; 0 leaves stuck discrepancies alone
};

// Releases each lease and records its outcome, only while the lease is still ours; all in one statement
// (a statement per poll cost about 250 us of PostgreSQL time, as much as 20 notifications). Of several
// updates of one order the last counts. A terminal order gets next_poll_at null whatever the update says:
// what is left of its schedule is cancelled.
// It also opens a `stuck` discrepancy when the order is still open stuck_after past its expiry, or has
// been failing to poll for stuck_after (since its last answer, or its creation), and resolves an open one
// once neither holds. Done here because every stuck order is still visited by the poller (backoff or
// close retries), so idle orders cost nothing.
// Returns, for each update, why the database refused it (nullopt: written, or superseded by a later update
// of its order). When one is refused the others are written one by one, so it costs only its own order its
// outcome (that order's lease runs out); a row lock held elsewhere fails a round after lock_timeout (5 s).
// Throws when the database cannot be reached (outcomes not written are retried when the leases run out).
boost::asio::awaitable<std::vector<std::optional<std::string>>> finish_polls(
    db_pool& pool, std::string owner, std::vector<poll_update> updates);

// Session setup for the poller's own connections (the pool's prepare step): asynchronous commit for its
// bookkeeping, and its prepared statements.
void prepare_poll_connection(pqxx::connection_base& conn);

// What the poller's gauges show, read in the background (never per scrape).
struct poll_gauges {
    long stuck = 0;          // open `stuck` discrepancies
    double lag_seconds = 0;  // how overdue the most overdue scheduled query is
    std::vector<std::pair<std::string, long>> orders_by_state;  // empty unless asked for
};
boost::asio::awaitable<poll_gauges> read_poll_gauges(db_pool& pool, bool with_orders_by_state,
                                                     deadline until);

}  // namespace wxrecon::store
