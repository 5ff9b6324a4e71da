// Applying facts: the one code path through which every source (notification,
// query, close) changes the ledger. Concurrent facts are group-committed: each
// pool worker takes whatever has queued up (up to a maximum), decides every
// fact in arrival order against the locked rows, writes the batch with
// set-based statements and commits once; each caller resumes only after the
// commit that holds its fact. A batch that fails falls back to halves, so one
// bad fact gets its own error and never fails its batch-mates.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "domain/facts.hpp"
#include "domain/transitions.hpp"
#include "store/delivery.hpp"

namespace pqxx {
class connection_base;
}

namespace wxrecon::store {

class db_pool;

struct apply_result {
    domain::outcome outcome = domain::outcome::unchanged;
    bool duplicate = false;                        // the fact's identity was already recorded
    std::vector<domain::discrepancy_kind> opened;  // discrepancies this fact opened
};

// The commit did not happen, or its outcome is unknown: nothing may be acknowledged (503).
struct commit_not_confirmed : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Blocking: applies facts in arrival order in one transaction and returns one result per fact, as if
// they had been applied one at a time. Throws on any failure; then nothing of the batch is applied.
// With `until` (the earliest caller's deadline), statements time out and the commit is not attempted
// once it is too close, so a caller answered "no commit in time" never sees its fact committed later.
std::vector<apply_result> apply_batch(pqxx::connection_base& conn,
                                      const std::vector<const domain::fact*>& facts,
                                      std::optional<deadline> until = std::nullopt);

// Session setup for pool connections used by the ledger.
void prepare_ledger_connection(pqxx::connection_base& conn);

struct ledger_limits {
    std::size_t max_batch = 128;    // facts per transaction
    std::size_t max_queued = 8192;  // facts waiting for a worker; beyond: database_overloaded (503)
    // Transactions in flight at once. Two keep one batch filling while the other commits; more only
    // shrink the batches and make the server work harder per fact.
    std::size_t max_concurrent_batches = 2;
    // A further transaction starts only once this many facts wait. Below that, one batch after another
    // keeps up, and a second would only split the same facts between two batches that each cost the
    // server their fixed part: round trips, a snapshot, a commit. Not more: with at most 64 notifications
    // in flight, 16 often kept the second transaction from starting under full load (bench/run-
    // throughput.sh: 1.96x pgbench against 2.44x with 1 and 2.37x with 4). The price: up to three facts
    // can wait behind a batch that is held up (a row lock) until it ends or their deadline nears; then
    // the caller gets an error, never an acknowledgement, and WeChat Pay sends the notification again.
    std::size_t facts_for_another_batch = 4;
};

// The interface callers use: hand over a fact, resume after the commit that contains it.
class ledger {
public:
    explicit ledger(db_pool& pool, ledger_limits limits = {});
    ~ledger();
    // f is copied before the first suspension; the caller's object may go away afterwards.
    boost::asio::awaitable<apply_result> apply(const domain::fact& f, deadline until);
    // Called on the pool worker once per committed batch in which a fact changed something, so that
    // whatever reads what facts leave behind (the app-event outbox) can look at once: one wake-up for
    // the batch rather than a cross-thread post per fact.
    void on_applied(std::function<void()> listener) { applied_listener_ = std::move(listener); }
    // Called on the pool worker after each committed batch with its number of facts (for the metric).
    void on_batch(std::function<void(std::size_t)> listener) { batch_listener_ = std::move(listener); }

private:
    struct item {
        std::shared_ptr<const domain::fact> fact;
        std::shared_ptr<delivery<apply_result>> done;
        deadline until;
    };
    void drain(pqxx::connection_base& conn);
    void fail_queued(std::exception_ptr error);
    void run_batch(pqxx::connection_base& conn, std::vector<item> items);

    db_pool& pool_;
    ledger_limits limits_;
    std::mutex mutex_;
    std::deque<item> queue_;
    std::function<void()> applied_listener_;
    std::function<void(std::size_t)> batch_listener_;
    // Posted or running; each runs until it finds the queue empty, or too few facts for two while another
    // runs.
    std::size_t active_drains_ = 0;
};

}  // namespace wxrecon::store
