// What became of a notification, in one vocabulary: the metric labels of
// wxrecon_notifications_total, the fields of the intake's log line and the
// reason of a rejected_notifications row all come from these values
// (docs/interfaces.md §3.2, §3.7, §6.1).
#pragma once

#include <string_view>

#include "base/result.hpp"

namespace wxrecon::workflow {

enum class notify_api { v3, v2 };

enum class notify_kind { payment, refund, unknown };

enum class notify_result {
    accepted,   // a new fact, committed
    duplicate,  // the fact was on record already: acknowledged, nothing changed
    ignored,    // a genuine notification wxrecond does not act on (an event type, a failed result_code)
    rejected,   // refused: forged, stale, malformed or not ours
    error,      // not applied for now (the database): not acknowledged, WeChat Pay retries
};

enum class reject_reason {
    unknown_merchant,   // the path names no configured merchant
    probe,              // WeChat Pay's signature probe (WECHATPAY/SIGNTEST/)
    missing_signature,  // a signature header is absent
    stale_timestamp,    // outside the replay window
    unknown_serial,     // no trusted key has the serial
    bad_signature,      // the signature does not verify
    forbidden_xml,      // a DTD or entity declaration
    decrypt_failed,     // the resource or req_info does not decrypt
    malformed,          // verified, but not a notification wxrecond can read
    mchid_mismatch,     // the merchant inside differs from the path
    refund_unmatched,   // an APIv2 refund that matches no paid order
    body_too_large,     // over server.max_body_bytes
};

std::string_view to_string(notify_api api) noexcept;
std::string_view to_string(notify_kind kind) noexcept;
std::string_view to_string(notify_result result) noexcept;
std::string_view to_string(reject_reason reason) noexcept;

// The reason a failed check of the protocol layer gives, from its error code alone.
reject_reason reason_of(errc code) noexcept;

// The HTTP status an APIv3 refusal is answered with (APIv2 answers FAIL in XML instead).
int v3_status_of(reject_reason reason) noexcept;

}  // namespace wxrecon::workflow
