// One batch of facts inside the ledger's transaction: lock the orders and
// refunds the facts touch, decide each fact in arrival order against them
// (domain::decide), and write the net effect with set-based statements.
// Internal to the store; the ledger owns the transaction and its commit.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "domain/facts.hpp"
#include "store/ledger.hpp"

namespace wxrecon::store {

// A batch lost a race it can win on a retry (a concurrent creation of the same order).
struct batch_conflict : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The settings of a batch's transaction (SET LOCAL): synchronous commit whatever the server's default,
// lock waits and statements bounded by statement_timeout_ms, and plans that are key probes only, planned
// once per connection (see prepare_fact_batch).
std::string batch_settings(long statement_timeout_ms);

// A batch's transaction, opened with its settings in one round trip; rolled back unless committed.
// (pqxx::work sends BEGIN on its own, then the settings. Round trips are dear on the development machine:
// perf put 18 % of all its samples in PostgreSQL's send, recv and epoll at 2,000 notifications/s.)
class batch_transaction {
public:
    batch_transaction(pqxx::connection_base& conn, long statement_timeout_ms);
    ~batch_transaction();
    batch_transaction(const batch_transaction&) = delete;
    batch_transaction& operator=(const batch_transaction&) = delete;

    pqxx::transaction_base& tx() { return *tx_; }
    void commit();

private:
    pqxx::connection_base& conn_;
    std::optional<pqxx::nontransaction> tx_;
    bool open_ = true;
};

// Applies the facts within tx and returns one result per fact, as if they had been applied one at a
// time.
std::vector<apply_result> apply_in(batch_transaction& tx, const std::vector<const domain::fact*>& facts);

// The statements apply_in uses, prepared once per connection.
void prepare_fact_batch(pqxx::connection_base& conn);

}  // namespace wxrecon::store
