// Domain vocabulary: order and refund states, the facts every source reports
// (notification, query, close, bill), and the discrepancy kinds finance sees.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace wxrecon::domain {

// Unix time in microseconds: the resolution PostgreSQL's timestamptz keeps.
using micros = std::int64_t;

enum class trade_state { notpay, userpaying, success, refund, closed, revoked, payerror };
enum class refund_status { processing, success, closed, abnormal };
// bill: a payment found in WeChat Pay's trade bill that the ledger did not show as paid.
// refund_query_v3 / refund_query_v2: a refund query's answer (the refund tracker, issue 14).
enum class fact_source {
    notify_v3,
    notify_v2,
    query_v3,
    query_v2,
    close,
    bill,
    refund_query_v3,
    refund_query_v2
};

std::string_view to_string(trade_state s) noexcept;    // "NOTPAY", ...
std::string_view to_string(refund_status s) noexcept;  // "PROCESSING", ...
std::string_view to_string(fact_source s) noexcept;    // "notify_v3", ...
std::optional<trade_state> parse_trade_state(std::string_view s) noexcept;
std::optional<refund_status> parse_refund_status(std::string_view s) noexcept;

bool is_notification(fact_source s) noexcept;

// WeChat Pay's rule for a merchant order number: 6 to 32 of [0-9A-Za-z_-|*]. The orders table holds the
// same rule as a CHECK constraint, so a number that fails here is refused before it reaches a statement.
bool valid_out_trade_no(std::string_view s) noexcept;
// The rule in words, for the refusals that name it.
inline constexpr std::string_view out_trade_no_rule = "6 to 32 of [0-9A-Za-z_-|*]";

// What WeChat Pay says about an order.
struct payment_fact {
    std::string out_trade_no;
    trade_state state = trade_state::notpay;
    std::string state_desc;
    std::string appid;
    std::string transaction_id;  // empty before payment
    std::string trade_type;
    std::string bank_type;
    std::string payer_openid;
    std::string currency;
    std::optional<std::int64_t> amount_total;  // fen
    std::optional<std::int64_t> payer_total;   // fen
    std::optional<micros> success_time;
};

// What WeChat Pay says about a refund.
struct refund_fact {
    std::string out_trade_no;
    std::string out_refund_no;
    std::string refund_id;
    std::string transaction_id;
    refund_status status = refund_status::processing;
    std::int64_t amount_refund = 0;            // fen
    std::optional<std::int64_t> amount_total;  // fen, the order's total as WeChat reports it
    std::optional<micros> success_time;
    // APIv2 refund notifications authenticate nothing (AES-ECB): apply only when transaction_id,
    // out_trade_no and amount_total match a paid order on record.
    bool require_paid_order_match = false;
};

// One verified observation, with the evidence it came with.
struct fact {
    std::string mchid;
    fact_source source = fact_source::notify_v3;
    std::string event_type;                // "TRANSACTION.SUCCESS", "REFUND.SUCCESS", "QUERY", ...
    std::optional<std::string> notify_id;  // APIv3 notification id
    micros observed_at = 0;                // receive time (notification) or send time (query)
    std::optional<micros> occurred_at;     // WeChat's time of the fact
    std::string payload_json;              // the decrypted business object as JSON
    std::optional<std::string> raw_body;   // notification exactly as received
    std::optional<std::string> raw_headers_json;
    std::variant<payment_fact, refund_fact> body;

    const std::string& out_trade_no() const noexcept;
};

enum class discrepancy_kind {
    amount_mismatch,
    unknown_order,
    appid_mismatch,
    state_regression,
    paid_after_close,
    state_conflict,  // SUCCESS reported for an order recorded as REVOKED or PAYERROR
    refund_without_payment,
    refund_abnormal,
    stuck,
    refund_stuck,  // a refund still PROCESSING long after it was made
};
std::string_view to_string(discrepancy_kind k) noexcept;

}  // namespace wxrecon::domain
