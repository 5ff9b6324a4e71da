// Applying a fact: the one code path through which every source (notification,
// query, close) changes the ledger. One transaction per fact: the event row,
// the order and refund rows and the discrepancies commit together or not at all.
#pragma once

#include <chrono>
#include <stdexcept>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "domain/facts.hpp"
#include "domain/transitions.hpp"

namespace pqxx {
class connection_base;
}

namespace wxrecon::store {

class db_pool;

struct apply_result {
    domain::outcome outcome = domain::outcome::unchanged;
    bool duplicate = false;                          // the fact's identity was already recorded
    std::vector<domain::discrepancy_kind> opened;    // discrepancies this fact opened
};

// The commit did not happen in time, or its outcome is unknown: nothing may be acknowledged (503).
struct commit_not_confirmed : std::runtime_error {
    using std::runtime_error::runtime_error;
};

using deadline = std::chrono::steady_clock::time_point;

// Blocking: runs on a pool worker. Throws database_unavailable, commit_not_confirmed, or pqxx errors
// for facts the database refuses (constraint violations).
apply_result apply_fact(pqxx::connection_base& conn, const domain::fact& f, deadline until);

// Session setup for pool connections used by the ledger.
void prepare_ledger_connection(pqxx::connection_base& conn);

// The interface callers use: hand over a fact, resume after the commit that contains it.
class ledger {
public:
    explicit ledger(db_pool& pool) : pool_(pool) {}
    // f is copied before the first suspension; the caller's object may go away afterwards.
    boost::asio::awaitable<apply_result> apply(const domain::fact& f, deadline until);

private:
    db_pool& pool_;
};

}  // namespace wxrecon::store
