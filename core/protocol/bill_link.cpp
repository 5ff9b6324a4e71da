#include "protocol/bill_link.hpp"

#include <simdjson.h>

#include <algorithm>

namespace wxrecon::protocol::bill {

result<bill_link> parse_bill_link(std::string_view json) {
    simdjson::dom::parser parser;
    const simdjson::padded_string text(json);
    simdjson::dom::element doc;
    if (parser.parse(text).get(doc) != simdjson::SUCCESS || !doc.is_object())
        return make_error(errc::parse_error, "bill application answer: not a JSON object");
    bill_link link;
    for (auto [name, slot] : {std::pair<const char*, std::string*>{"hash_type", &link.hash_type},
                              {"hash_value", &link.hash_value},
                              {"download_url", &link.download_url}}) {
        std::string_view value;
        if (doc[name].get(value) != simdjson::SUCCESS || value.empty())
            return make_error(errc::parse_error, std::string("bill application answer: no ") + name);
        *slot = std::string(value);
    }
    if (link.hash_type != "SHA1")
        return make_error(errc::parse_error,
                          "bill application answer: hash_type " + link.hash_type + " (only SHA1 is known)");
    std::transform(link.hash_value.begin(), link.hash_value.end(), link.hash_value.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    const bool hex = link.hash_value.size() == 40 &&
                     std::all_of(link.hash_value.begin(), link.hash_value.end(),
                                 [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
    if (!hex)
        return make_error(errc::parse_error, "bill application answer: hash_value is not 40 hex digits");
    return link;
}

}  // namespace wxrecon::protocol::bill
