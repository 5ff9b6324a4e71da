// UTF-8 as PostgreSQL's text accepts it: well-formed (RFC 3629: no overlong forms, no surrogates,
// nothing past U+10FFFF) and without NUL. Everything that is stored checks with these, so text the
// database would refuse is refused (or replaced) before it gets there.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace wxrecon {

// Length of the well-formed character starting at s[i], 0 when none starts there. NUL counts as one.
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept;

// Offset of the first byte that does not start a well-formed character, or of a NUL; npos when clean.
std::size_t first_bad_utf8(std::string_view s) noexcept;

inline bool is_valid_utf8(std::string_view s) noexcept {
    return first_bad_utf8(s) == std::string_view::npos;
}

// Valid UTF-8 of at most max_bytes: invalid bytes and NULs become U+FFFD, cut on a character boundary.
std::string sanitize_utf8(std::string_view s, std::size_t max_bytes);

}  // namespace wxrecon
