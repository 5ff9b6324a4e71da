#include "base/result.hpp"

namespace wxrecon {

const char* to_string(errc code) noexcept {
    switch (code) {
        case errc::invalid_argument:
            return "invalid_argument";
        case errc::config_error:
            return "config_error";
        case errc::missing_signature:
            return "missing_signature";
        case errc::bad_signature:
            return "bad_signature";
        case errc::unknown_serial:
            return "unknown_serial";
        case errc::stale_timestamp:
            return "stale_timestamp";
        case errc::decrypt_failed:
            return "decrypt_failed";
        case errc::forbidden_xml:
            return "forbidden_xml";
        case errc::parse_error:
            return "parse_error";
        case errc::io_error:
            return "io_error";
        case errc::unavailable:
            return "unavailable";
        case errc::internal:
            return "internal";
    }
    return "unknown";
}

}  // namespace wxrecon
