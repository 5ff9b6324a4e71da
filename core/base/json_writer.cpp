#include "base/json_writer.hpp"

namespace wxrecon {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is not valid.
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0 && c >= 0xC2)
        n = 2;
    else if ((c & 0xF0) == 0xE0)
        n = 3;
    else if ((c & 0xF8) == 0xF0 && c <= 0xF4)
        n = 4;
    else
        return 0;
    if (i + n > s.size()) return 0;
    for (std::size_t k = 1; k < n; ++k)
        if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 0;
    return n;
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out.push_back('"');
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(static_cast<char>(c));
            ++i;
        } else if (c < 0x20) {
            out += "\\u00";
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 0xF]);
            ++i;
        } else if (const std::size_t n = utf8_sequence_length(s, i); n > 0) {
            out.append(s.substr(i, n));
            i += n;
        } else {
            out += "\\ufffd";  // an invalid byte: replaced, so jsonb never refuses the document
            ++i;
        }
    }
    out.push_back('"');
}

void json_object::key(std::string_view k) {
    if (text_.size() > 1) text_.push_back(',');
    append_json_string(text_, k);
    text_.push_back(':');
}

json_object& json_object::add(std::string_view k, std::string_view value) {
    key(k);
    append_json_string(text_, value);
    return *this;
}

json_object& json_object::add(std::string_view k, std::int64_t value) {
    key(k);
    text_ += std::to_string(value);
    return *this;
}

json_object& json_object::add(std::string_view k, bool value) {
    key(k);
    text_ += value ? "true" : "false";
    return *this;
}

json_object& json_object::add_raw(std::string_view k, std::string_view json) {
    key(k);
    text_.append(json);
    return *this;
}

json_object& json_object::add_null(std::string_view k) {
    key(k);
    text_ += "null";
    return *this;
}

}  // namespace wxrecon

namespace wxrecon {

bool is_valid_utf8(std::string_view s) noexcept {
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t n = utf8_sequence_length(s, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

std::string sanitize_utf8(std::string_view s, std::size_t max_bytes) {
    std::string out;
    out.reserve(std::min(s.size(), max_bytes));
    for (std::size_t i = 0; i < s.size();) {
        std::size_t n = utf8_sequence_length(s, i);
        const bool replace = n == 0 || s[i] == '\0';
        const std::string_view piece = replace ? std::string_view("\xEF\xBF\xBD") : s.substr(i, n);
        if (out.size() + piece.size() > max_bytes) break;
        out.append(piece);
        i += replace ? 1 : n;
    }
    return out;
}

}  // namespace wxrecon
