#include "base/json_writer.hpp"

namespace wxrecon {

void append_json_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out.push_back('"');
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(static_cast<char>(c));
            ++i;
        } else if (c == 0) {
            out += "\\ufffd";  // jsonb refuses \u0000: PostgreSQL text cannot hold a NUL
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

namespace wxrecon {}  // namespace wxrecon
