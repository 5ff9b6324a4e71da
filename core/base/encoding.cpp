#include "base/encoding.hpp"
#include "base/json_writer.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>

namespace wxrecon {

namespace {

constexpr char base64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// 0..63 for alphabet characters, -1 for everything else (including '=' and whitespace).
constexpr std::array<std::int8_t, 256> make_base64_table() {
    std::array<std::int8_t, 256> table{};
    for (auto& entry : table) entry = -1;
    for (int i = 0; i < 64; ++i) {
        table[static_cast<unsigned char>(base64_alphabet[i])] = static_cast<std::int8_t>(i);
    }
    return table;
}

constexpr auto base64_table = make_base64_table();

std::string to_hex(std::string_view bytes, const char* digits) {
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char byte : bytes) {
        out.push_back(digits[byte >> 4]);
        out.push_back(digits[byte & 0x0f]);
    }
    return out;
}

constexpr char ascii_lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        const std::uint32_t group = (std::uint32_t{static_cast<unsigned char>(bytes[i])} << 16) |
                                    (std::uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8) |
                                    std::uint32_t{static_cast<unsigned char>(bytes[i + 2])};
        out.push_back(base64_alphabet[(group >> 18) & 0x3f]);
        out.push_back(base64_alphabet[(group >> 12) & 0x3f]);
        out.push_back(base64_alphabet[(group >> 6) & 0x3f]);
        out.push_back(base64_alphabet[group & 0x3f]);
    }
    const std::size_t rest = bytes.size() - i;
    if (rest == 1) {
        const std::uint32_t group = std::uint32_t{static_cast<unsigned char>(bytes[i])} << 16;
        out.push_back(base64_alphabet[(group >> 18) & 0x3f]);
        out.push_back(base64_alphabet[(group >> 12) & 0x3f]);
        out.append("==");
    } else if (rest == 2) {
        const std::uint32_t group = (std::uint32_t{static_cast<unsigned char>(bytes[i])} << 16) |
                                    (std::uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8);
        out.push_back(base64_alphabet[(group >> 18) & 0x3f]);
        out.push_back(base64_alphabet[(group >> 12) & 0x3f]);
        out.push_back(base64_alphabet[(group >> 6) & 0x3f]);
        out.push_back('=');
    }
    return out;
}

// Strict on purpose: a signature or ciphertext has exactly one canonical encoding, so anything
// else (missing padding, line breaks, non-zero trailing bits) points at a mangled message.
std::optional<std::string> base64_decode(std::string_view text) {
    if (text.size() % 4 != 0) return std::nullopt;
    std::size_t padding = 0;
    if (!text.empty() && text.back() == '=') padding = (text[text.size() - 2] == '=') ? 2 : 1;

    std::string out;
    out.reserve(text.size() / 4 * 3);
    const std::size_t data_chars = text.size() - padding;
    std::uint32_t group = 0;
    int bits = 0;
    for (std::size_t i = 0; i < data_chars; ++i) {
        const std::int8_t value = base64_table[static_cast<unsigned char>(text[i])];
        if (value < 0) return std::nullopt;
        group = (group << 6) | static_cast<std::uint32_t>(value);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((group >> bits) & 0xff));
        }
    }
    // Leftover bits come from the last character before the padding and must be zero.
    if (bits > 0 && (group & ((1u << bits) - 1)) != 0) return std::nullopt;
    return out;
}

std::string hex_upper(std::string_view bytes) {
    return to_hex(bytes, "0123456789ABCDEF");
}

std::string hex_lower(std::string_view bytes) {
    return to_hex(bytes, "0123456789abcdef");
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
    // Lengths are public (a signature's or token's length is no secret); only contents are guarded.
    if (a.size() != b.size()) return false;
    if (a.empty()) return true;
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    }
    return true;
}

std::string single_line(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
    return out;
}

std::string log_quote(std::string_view s, std::size_t max_bytes) {
    const std::string text = single_line(sanitize_utf8(s, max_bytes));
    std::string out = "\"";
    for (const char c : text) {
        if (c == '"' || c == '\\') out.push_back('\\');
        out.push_back(c);
    }
    if (s.size() > max_bytes) out += "…";
    out.push_back('"');
    return out;
}

std::string log_id(std::string_view s) {
    const bool bare = !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '|' || c == '*';
    });
    return bare ? std::string(s) : log_quote(s, 64);
}

bool is_wechat_request_id(std::string_view s) {
    if (s.size() < 16 || s.size() > 64 || s.front() == '-' || s.back() == '-') return false;
    std::size_t hex_digits = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (std::isxdigit(static_cast<unsigned char>(s[i]))) {
            ++hex_digits;
        } else if (s[i] != '-' || s[i - 1] == '-') {
            return false;
        }
    }
    return hex_digits >= 16;
}

std::string log_token(std::string_view s) {
    if (s.empty()) return "-";
    std::string out(s.substr(0, 64));
    for (char& c : out)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != ':' && c != '-')
            c = '_';
    return out;
}

}  // namespace wxrecon
