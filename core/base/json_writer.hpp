// A minimal JSON writer for the objects wxrecon emits (replies, jsonb columns,
// notification plaintexts in tests and tools). Parsing is simdjson's job.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/utf8.hpp"

namespace wxrecon {

// Appends s as a JSON string literal (quotes included); control characters are escaped and invalid
// UTF-8 bytes and NULs replaced, so the output is always valid JSON that jsonb accepts.
void append_json_string(std::string& out, std::string_view s);

class json_object {
public:
    json_object() : text_("{") {}
    json_object& add(std::string_view key, std::string_view value);
    json_object& add(std::string_view key, const char* value) { return add(key, std::string_view(value)); }
    json_object& add(std::string_view key, std::int64_t value);
    json_object& add(std::string_view key, int value) { return add(key, static_cast<std::int64_t>(value)); }
    json_object& add(std::string_view key, bool value);
    json_object& add_raw(std::string_view key, std::string_view json);  // value already JSON
    json_object& add_null(std::string_view key);
    std::string str() const { return text_ + "}"; }

private:
    void key(std::string_view k);
    std::string text_;
};

}  // namespace wxrecon
