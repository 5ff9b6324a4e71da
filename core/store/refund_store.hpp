// Refunds made through the internal API and tracked until final, the
// database side: the request is checked against the order and stored before
// it is sent (every retry resends it identically), each attempt's outcome is
// recorded, and refunds not yet final are claimed under a lease for the
// refund tracker's queries. Awaited; the SQL runs on a db_pool worker.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "domain/facts.hpp"
#include "store/db_pool.hpp"

namespace wxrecon::store {

struct refund_registration {
    std::string mchid, out_trade_no, out_refund_no;
    std::int64_t amount = 0;  // fen
    std::optional<std::string> reason;
};

// The paid order a refund request is built from.
struct refund_order {
    std::string mchid, out_trade_no, out_refund_no, transaction_id, currency;
    std::int64_t amount_total = 0;  // the order's total as WeChat Pay reported it (amount.total / total_fee)
    std::int64_t amount = 0;        // the refund
    std::optional<std::string> reason;
};

struct stored_refund_request {
    std::string api_version;  // "v3" or "v2"
    std::string request;      // APIv3 JSON body or APIv2 XML of the unsigned fields
};
using refund_request_builder = std::function<stored_refund_request(const refund_order&)>;

enum class refund_start_outcome {
    created,   // stored now: send it
    same,      // the same refund again: resend the stored request (if any)
    conflict,  // the number is taken by another order or amount
    no_order,  // no such order
    not_paid,  // the order is not paid
    exceeds,   // the refunds would come to more than was paid
};
struct refund_start {
    refund_start_outcome outcome = refund_start_outcome::no_order;
    std::string conflict;  // conflict: "out_trade_no" or "amount"
    std::string order_state;
    std::int64_t paid = 0;       // what the payer paid
    std::int64_t committed = 0;  // refunds SUCCESS, PROCESSING or ABNORMAL before this one
    // created, same: the request to send; same without it: the refund was learned from WeChat Pay, there
    // is nothing of ours to resend.
    std::optional<stored_refund_request> request;
};

// Locks the order (before its refunds, as the fact path does), then stores the request build() makes and
// a PROCESSING refund row, leased to `owner` for `lease` so the refund tracker does not query it while the
// first attempt is on its way. A request WeChat Pay refused for certain is taken up again, checks and all.
// The refund tracker first asks about it first_query after now.
boost::asio::awaitable<refund_start> begin_refund(db_pool& pool, refund_registration r,
                                                  refund_request_builder build, std::string owner,
                                                  std::chrono::milliseconds lease,
                                                  std::chrono::milliseconds first_query, deadline until);

enum class refund_attempt_outcome {
    accepted,  // WeChat Pay took the refund (its status comes as a fact)
    refused,   // refused for certain: nothing was refunded
    unknown,   // no answer, or one that does not say: the tracker finds out
};
struct refund_attempt {
    refund_attempt_outcome outcome = refund_attempt_outcome::unknown;
    std::optional<std::string> refund_id;
    std::string code, error;
    std::string owner;  // whose lease on the refund row ends with this attempt
};

// Records an attempt. Refused: the request is marked refused and the PROCESSING row removed (unless a
// fact about it arrived meanwhile). Returns the refund JSON afterwards, nullopt when the row is gone.
boost::asio::awaitable<std::optional<std::string>> record_refund_attempt(db_pool& pool, std::string mchid,
                                                                         std::string out_refund_no,
                                                                         refund_attempt attempt,
                                                                         deadline until);

struct claimed_refund {
    std::string mchid, out_refund_no, out_trade_no;
    domain::refund_status status = domain::refund_status::processing;
    domain::micros created_at = 0;
    int poll_attempts = 0;
    std::optional<stored_refund_request> request;  // ours and not settled by an answer: may be resent
};

// Claims up to `limit` refunds whose next_poll_at has passed and whose lease has run out.
boost::asio::awaitable<std::vector<claimed_refund>> claim_due_refunds(db_pool& pool, std::string owner,
                                                                      std::chrono::milliseconds lease,
                                                                      std::size_t limit);

struct refund_poll_update {
    std::string mchid, out_refund_no;
    std::optional<domain::micros> next_poll_at;  // ignored once the refund is SUCCESS or CLOSED
    bool answered = false;
    std::optional<std::string> error;
    domain::micros stuck_after = 0;  // alerts.refund_stuck_after; 0 leaves refund_stuck alone
};

// Releases the lease and records the outcome, only while the lease is still ours. Opens `refund_stuck`
// for the order when one of its refunds has been PROCESSING for stuck_after, and resolves it once none is.
boost::asio::awaitable<void> finish_refund_poll(db_pool& pool, std::string owner, refund_poll_update update);

}  // namespace wxrecon::store
