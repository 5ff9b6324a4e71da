#include "workflow/notify_outcome.hpp"

namespace wxrecon::workflow {

std::string_view to_string(notify_api api) noexcept {
    switch (api) {
        case notify_api::v3:
            return "v3";
        case notify_api::v2:
            return "v2";
    }
    return "unknown";
}

std::string_view to_string(notify_kind kind) noexcept {
    switch (kind) {
        case notify_kind::payment:
            return "payment";
        case notify_kind::refund:
            return "refund";
        case notify_kind::unknown:
            return "unknown";
    }
    return "unknown";
}

std::string_view to_string(notify_result result) noexcept {
    switch (result) {
        case notify_result::accepted:
            return "accepted";
        case notify_result::duplicate:
            return "duplicate";
        case notify_result::ignored:
            return "ignored";
        case notify_result::rejected:
            return "rejected";
        case notify_result::error:
            return "error";
    }
    return "error";
}

std::string_view to_string(reject_reason reason) noexcept {
    switch (reason) {
        case reject_reason::unknown_merchant:
            return "unknown_merchant";
        case reject_reason::probe:
            return "probe";
        case reject_reason::missing_signature:
            return "missing_signature";
        case reject_reason::stale_timestamp:
            return "stale_timestamp";
        case reject_reason::unknown_serial:
            return "unknown_serial";
        case reject_reason::bad_signature:
            return "bad_signature";
        case reject_reason::forbidden_xml:
            return "forbidden_xml";
        case reject_reason::decrypt_failed:
            return "decrypt_failed";
        case reject_reason::malformed:
            return "malformed";
        case reject_reason::mchid_mismatch:
            return "mchid_mismatch";
        case reject_reason::refund_unmatched:
            return "refund_unmatched";
        case reject_reason::body_too_large:
            return "body_too_large";
    }
    return "malformed";
}

reject_reason reason_of(errc code) noexcept {
    switch (code) {
        case errc::missing_signature:
            return reject_reason::missing_signature;
        case errc::stale_timestamp:
            return reject_reason::stale_timestamp;
        case errc::unknown_serial:
            return reject_reason::unknown_serial;
        case errc::bad_signature:
            return reject_reason::bad_signature;
        case errc::forbidden_xml:
            return reject_reason::forbidden_xml;
        case errc::decrypt_failed:
            return reject_reason::decrypt_failed;
        default:
            return reject_reason::malformed;
    }
}

int v3_status_of(reject_reason reason) noexcept {
    switch (reason) {
        case reject_reason::probe:
        case reject_reason::missing_signature:
        case reject_reason::stale_timestamp:
        case reject_reason::unknown_serial:
        case reject_reason::bad_signature:
            return 401;
        case reject_reason::unknown_merchant:
            return 404;
        case reject_reason::body_too_large:
            return 413;
        default:
            return 400;
    }
}

}  // namespace wxrecon::workflow
