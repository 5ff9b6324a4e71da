#include "base/log_format.hpp"

#include <cctype>
#include <set>

#include "base/json_writer.hpp"

namespace wxrecon {
namespace {

// JSON's own number grammar (from_chars would also take "nan", "inf", ".5" and "01").
bool is_json_number(std::string_view v) {
    std::size_t i = 0;
    if (i < v.size() && v[i] == '-') ++i;
    if (i == v.size() || !std::isdigit(static_cast<unsigned char>(v[i]))) return false;
    if (v[i] == '0' && i + 1 < v.size() && std::isdigit(static_cast<unsigned char>(v[i + 1]))) return false;
    while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]))) ++i;
    if (i < v.size() && v[i] == '.') {
        ++i;
        if (i == v.size()) return false;
        while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]))) ++i;
    }
    return i == v.size();
}

// Measurements become JSON numbers; everything else stays a string, so an identifier made of digits (an
// mchid, an out_trade_no) keeps its type in every line and log stores never see a field change type.
bool is_measurement(std::string_view key, std::string_view value) {
    const bool numeric_key =
        key == "ms" || key.ends_with("_ms") || key.ends_with("_s") || key == "version" || key == "attempts";
    return numeric_key && value.size() <= 24 && is_json_number(value);
}

}  // namespace

std::string json_log_line(std::string_view time, std::string_view level, std::string_view message) {
    json_object out;
    out.add("time", time).add("level", level);
    std::string_view rest = message;
    if (const auto colon = rest.find(": "); colon != std::string_view::npos && colon > 0 &&
                                            rest.substr(0, colon).find(' ') == std::string_view::npos) {
        out.add("component", rest.substr(0, colon));
        rest.remove_prefix(colon + 2);
    }
    std::string event;
    std::string fields;  // rendered "key":value pairs, appended after the fixed ones
    // The fixed keys, then each key once (the first wins): a value that sneaks in " level=..." cannot
    // override what wxrecond wrote.
    std::set<std::string, std::less<>> seen = {"time", "level", "component", "event", "msg"};
    while (!rest.empty()) {
        if (rest.front() == ' ') {
            rest.remove_prefix(1);
            continue;
        }
        const std::string_view word = rest.substr(0, rest.find(' '));
        const auto eq = word.find('=');
        if (eq == std::string_view::npos || eq == 0) {
            if (!event.empty()) event.push_back(' ');
            event.append(word);
            rest.remove_prefix(word.size());
            continue;
        }
        const std::string_view key = word.substr(0, eq);
        rest.remove_prefix(eq + 1);
        std::string value;
        bool quoted = false;
        if (!rest.empty() && rest.front() == '"') {
            quoted = true;
            std::size_t i = 1;
            for (; i < rest.size() && rest[i] != '"'; ++i) {
                if (rest[i] == '\\' && i + 1 < rest.size()) ++i;
                value.push_back(rest[i]);
            }
            rest.remove_prefix(std::min(i + 1, rest.size()));
        } else {
            const std::string_view raw = rest.substr(0, rest.find(' '));
            value.assign(raw);
            rest.remove_prefix(raw.size());
        }
        if (!seen.emplace(key).second) continue;
        fields.push_back(',');
        append_json_string(fields, key);
        fields.push_back(':');
        if (!quoted && is_measurement(key, value))
            fields += value;
        else
            append_json_string(fields, value);
    }
    if (!event.empty()) out.add("event", event);
    out.add("msg", message);
    std::string text = out.str();
    text.insert(text.size() - 1, fields);
    return text;
}

}  // namespace wxrecon
