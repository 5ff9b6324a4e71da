// The state rules of the ledger as pure functions: given what is recorded and
// what a source observed, decide what changes. The store executes the decision
// inside one transaction; these functions never see a database.
#pragma once

#include <optional>
#include <vector>

#include "domain/facts.hpp"

namespace wxrecon::domain {

// Terminal for payment: SUCCESS, CLOSED, REVOKED, PAYERROR (and REFUND, reachable only from SUCCESS).
bool is_terminal(trade_state s) noexcept;
// A move the ledger may make on its own authority.
bool is_forward(trade_state from, trade_state to) noexcept;
bool is_forward(refund_status from, refund_status to) noexcept;

// What is recorded for the order (locked by the caller).
struct order_snapshot {
    trade_state state = trade_state::notpay;
    // When the recorded state was observed: the observed_at of the fact that set it, so that a fact is
    // compared with it on one clock (the daemons'), never with the database's. Rows from before that was
    // kept, or changed by SQL, have the database's time of the change instead.
    micros state_observed_at = 0;
    std::int64_t amount_total = 0;
    std::optional<std::string> appid;
    std::string currency = "CNY";
    std::string transaction_id;               // empty until a payment is recorded
    std::optional<std::int64_t> payer_total;  // what the payer paid, once recorded
    std::int64_t refunded_total = 0;          // the order's SUCCESS refunds together
};

// What was paid for the order: the payer's part when recorded, else the order's amount. Refunds up to it
// are allowed, and reaching it makes the order REFUND (partial refunds keep SUCCESS).
std::int64_t paid_total(const order_snapshot& order) noexcept;

struct refund_snapshot {
    refund_status status = refund_status::processing;
    micros status_observed_at = 0;  // as order_snapshot::state_observed_at
};

enum class outcome {
    applied,     // something changed: append the event
    unchanged,   // consistent with what is recorded: nothing to write
    stale,       // older than the recorded state: dropped and counted
    regression,  // newer observation of an older state: not applied, state_regression opened
    unmatched,   // an unauthenticated refund that matches no paid order: rejected
};

struct decision {
    outcome result = outcome::unchanged;
    bool create_order = false;             // order row is missing: create it (origin notify or bill)
    std::optional<trade_state> new_state;  // order state to set
    bool record_payment_details = false;   // store transaction_id, payer_total, success_time ...
    bool upsert_refund = false;            // write the refund row with the fact's status
    std::vector<discrepancy_kind> open;
    std::vector<discrepancy_kind> resolve;
};

// order is nullopt when no row exists for (mchid, out_trade_no).
decision decide(const fact& f, const payment_fact& p, const std::optional<order_snapshot>& order);
decision decide(const fact& f, const refund_fact& r, const std::optional<order_snapshot>& order,
                const std::optional<refund_snapshot>& refund);

}  // namespace wxrecon::domain
