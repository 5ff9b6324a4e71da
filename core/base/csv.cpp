#include "base/csv.hpp"

namespace wxrecon {

std::string csv_field(std::string_view text) {
    std::string value;
    if (!text.empty() && (text[0] == '=' || text[0] == '+' || text[0] == '-' || text[0] == '@' ||
                          text[0] == '\t' || text[0] == '\r'))
        value = "'";
    value += text;
    if (value.find_first_of(",\"\r\n") == std::string::npos) return value;
    std::string quoted = "\"";
    for (const char c : value) {
        if (c == '"') quoted += '"';
        quoted += c;
    }
    return quoted + "\"";
}

std::string csv_number(std::string_view digits) {
    return std::string(digits);
}

std::string csv_line(std::initializer_list<std::string> fields) {
    std::string line;
    bool first = true;
    for (const auto& f : fields) {
        if (!first) line += ',';
        line += f;
        first = false;
    }
    return line + "\r\n";
}

}  // namespace wxrecon
