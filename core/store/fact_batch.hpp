// One batch of facts inside the ledger's transaction: lock the orders and
// refunds the facts touch, decide each fact in arrival order against them
// (domain::decide), and write the net effect with set-based statements.
// Internal to the store; the ledger owns the transaction and its commit.
#pragma once

#include <stdexcept>
#include <vector>

#include <pqxx/pqxx>

#include "domain/facts.hpp"
#include "store/ledger.hpp"

namespace wxrecon::store {

// A batch lost a race it can win on a retry (a concurrent creation of the same order).
struct batch_conflict : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Applies the facts within tx and returns one result per fact, as if they had been applied one at a
// time. Lock waits and statements end after statement_timeout_ms.
std::vector<apply_result> apply_in(pqxx::work& tx, const std::vector<const domain::fact*>& facts,
                                   long statement_timeout_ms);

// The statements apply_in uses, prepared once per connection.
void prepare_fact_batch(pqxx::connection_base& conn);

}  // namespace wxrecon::store
