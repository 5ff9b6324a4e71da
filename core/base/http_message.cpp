#include "base/http_message.hpp"

#include <algorithm>
#include <iterator>

#include <simdjson.h>

#include "base/encoding.hpp"
#include "base/json_writer.hpp"

namespace wxrecon {

std::string_view inbound_request::header(std::string_view name) const noexcept {
    for (const auto& [k, v] : headers)
        if (iequals(k, name)) return v;
    return {};
}

std::size_t inbound_request::header_count(std::string_view name) const noexcept {
    std::size_t n = 0;
    for (const auto& h : headers) n += iequals(h.first, name) ? 1 : 0;
    return n;
}

std::string_view inbound_request::query() const noexcept {
    const auto q = std::string_view(target).find('?');
    return q == std::string_view::npos ? std::string_view{} : std::string_view(target).substr(q + 1);
}

std::string inbound_request::headers_json() const {
    json_object o;
    for (const auto& [k, v] : headers) o.add(k, v);
    return o.str();
}

std::string inbound_request::evidence_headers_json() const {
    static constexpr std::string_view kept[] = {"Content-Type",     "Wechatpay-Timestamp",
                                                "Wechatpay-Nonce",  "Wechatpay-Signature",
                                                "Wechatpay-Serial", "Wechatpay-Signature-Type"};
    json_object o;
    for (const auto& header : headers)
        if (std::any_of(std::begin(kept), std::end(kept),
                        [&header](std::string_view name) { return iequals(header.first, name); }))
            o.add(header.first, header.second);
    return o.str();
}

result<std::vector<std::pair<std::string, std::string>>> parse_headers_json(std::string_view json) {
    simdjson::dom::parser parser;
    simdjson::dom::object object;
    if (parser.parse(json.data(), json.size()).get(object) != simdjson::SUCCESS)
        return make_error(errc::parse_error, "stored headers are not a JSON object");
    std::vector<std::pair<std::string, std::string>> headers;
    for (const auto field : object) {
        std::string_view value;
        if (field.value.get_string().get(value) != simdjson::SUCCESS)
            return make_error(errc::parse_error,
                              "stored header " + std::string(field.key) + " is not a string");
        headers.emplace_back(std::string(field.key), std::string(value));
    }
    return headers;
}

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

result<std::string> percent_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out.push_back(text[i]);
            continue;
        }
        const int high = i + 2 < text.size() ? hex_value(text[i + 1]) : -1;
        const int low = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
        if (high < 0 || low < 0)
            return make_error(errc::invalid_argument,
                              "bad %-escape \"" + std::string(text.substr(i, 3)) + "\" in the query string");
        out.push_back(static_cast<char>(high * 16 + low));
        i += 2;
    }
    return out;
}

}  // namespace

result<std::vector<std::pair<std::string, std::string>>> parse_query(std::string_view query) {
    std::vector<std::pair<std::string, std::string>> out;
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (pair.empty()) continue;
        const auto eq = pair.find('=');
        auto name = percent_decode(pair.substr(0, eq));
        if (!name) return name.err();
        auto value = percent_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
        if (!value) return value.err();
        out.emplace_back(std::move(*name), std::move(*value));
    }
    return out;
}

}  // namespace wxrecon
