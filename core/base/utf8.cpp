#include "base/utf8.hpp"

#include <algorithm>
#include <cstring>

#include <simdjson.h>

namespace wxrecon {

std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) return 1;
    std::size_t n = 0;
    unsigned char low = 0x80, high = 0xBF;  // the range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) low = 0xA0;   // overlong
        if (c == 0xED) high = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) low = 0x90;   // overlong
        if (c == 0xF4) high = 0x8F;  // past U+10FFFF
    } else {
        return 0;  // a continuation byte, C0/C1 (overlong) or F5..FF (past U+10FFFF)
    }
    if (i + n > s.size()) return 0;
    const auto second = static_cast<unsigned char>(s[i + 1]);
    if (second < low || second > high) return 0;
    for (std::size_t k = 2; k < n; ++k)
        if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 0;
    return n;
}

std::size_t first_bad_utf8(std::string_view s) noexcept {
    // Nearly all text is clean: checked whole at SIMD speed (the same rules: RFC 3629), walked byte by byte
    // only to find where it is not. A million-line bill spent a third of its parsing in the walk.
    if (simdjson::validate_utf8(s.data(), s.size()) && std::memchr(s.data(), '\0', s.size()) == nullptr)
        return std::string_view::npos;
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t n = utf8_sequence_length(s, i);
        if (n == 0 || s[i] == '\0') return i;
        i += n;
    }
    return std::string_view::npos;
}

std::string sanitize_utf8(std::string_view s, std::size_t max_bytes) {
    std::string out;
    out.reserve(std::min(s.size(), max_bytes));
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t n = utf8_sequence_length(s, i);
        const bool replace = n == 0 || s[i] == '\0';
        const std::string_view piece = replace ? std::string_view("\xEF\xBF\xBD") : s.substr(i, n);
        if (out.size() + piece.size() > max_bytes) break;
        out.append(piece);
        i += replace ? 1 : n;
    }
    return out;
}

}  // namespace wxrecon
