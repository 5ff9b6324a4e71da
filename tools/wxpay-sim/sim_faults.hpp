// Everything the simulator decides by chance is decided here, from the run's
// seed and the identity of what is decided (merchant, order, event, copy), never
// from timing or call order — so a seed reproduces a run's faults exactly.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace wxrecon::sim {

// SplitMix64 over FNV-1a of the parts: stable across platforms and runs.
std::uint64_t seeded_hash(std::uint64_t seed, std::string_view what, std::string_view subject,
                          std::uint64_t n = 0);
// Uniform in [0, 1).
double seeded_draw(std::uint64_t seed, std::string_view what, std::string_view subject, std::uint64_t n = 0);

// Per-merchant misbehaviour. Rates are probabilities in [0, 1].
struct fault_config {
    double drop = 0;        // a notification is never delivered, no attempt at all
    double duplicate = 0;   // a second copy follows the first
    double concurrent = 0;  // a second copy is sent at the same moment
    double delay = 0;       // the first attempt waits up to delay_ms (scaled)
    std::int64_t delay_ms = 0;
    bool reorder = false;  // every first attempt waits a random part of reorder_window_ms
    std::int64_t reorder_window_ms = 2000;
    double query_429 = 0;   // an API call is answered 429 FREQUENCY_LIMITED
    double query_500 = 0;   // ... 500 SYSTEM_ERROR
    double query_slow = 0;  // ... only after slow_ms
    double reply_slow = 0;  // the call is applied first, then its answer waits slow_ms (a client timeout)
    std::int64_t slow_ms = 3000;  // real milliseconds, not scaled: it is there to outlast client timeouts
    double bad_response_signature = 0;  // a 2xx answer carries a signature that does not verify
    double unsigned_errors = 0;  // an error answer (4xx/5xx) comes without WeChat Pay's signature headers
    double query_404_proxy = 0;  // an API call is answered 404 by a proxy in front: an HTML page, no code
    double forged = 0;           // a forged notification (signed with a key WeChat does not have) is sent too
    double probe = 0;            // a WECHATPAY/SIGNTEST/ probe goes ahead of the real notification
    std::int64_t rotate_certificate_after = 0;  // platform certificate replaced after this many notifications
    // Refunds made through the merchant APIs: PROCESSING for refund_processing_ms (scaled by the time
    // scale; 0: final at once), then ABNORMAL or CLOSED at these rates (drawn per mchid and
    // out_refund_no), else SUCCESS.
    std::int64_t refund_processing_ms = 0;
    double refund_abnormal = 0;
    double refund_closed = 0;

    std::string to_json() const;
};
// Applies the keys present in a JSON object to `into`; unknown keys and out-of-range rates are refused.
status apply_fault_json(std::string_view json, fault_config& into);

// Where WeChat Pay's behaviour is unconfirmed (docs/protocol-notes.md §11), each merchant gets one of the
// plausible readings.
struct protocol_variants {
    bool old_not_found_spelling = false;     // 404 ORDERNOTEXIST instead of ORDER_NOT_EXIST
    bool alt_rate_limit_spelling = false;    // 429 RATELIMIT_EXCEEDED instead of FREQUENCY_LIMITED
    bool old_system_error_spelling = false;  // 500 SYSTEMERROR instead of SYSTEM_ERROR
    bool close_paid_is_trade_error = false;  // closing a paid order: 403 TRADE_ERROR instead of 400 ORDERPAID
    bool close_closed_is_error = false;      // closing a closed order: 400 ORDER_CLOSED instead of 204
    bool unpaid_query_minimal = false;       // NOTPAY query: only the required fields (no amount, no appid)
    bool v2_notify_without_sign_type = false;
    // Bill bytes (docs/protocol-notes.md §6.7): the merchant's starting bill style, /sim/bill-style changes
    // it.
    bool bill_bom = false;
    bool bill_crlf = false;
    bool bill_count_dot_zero = false;

    std::string to_json() const;
};
protocol_variants pick_variants(std::uint64_t seed, std::string_view mchid);

}  // namespace wxrecon::sim
