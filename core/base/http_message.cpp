#include "base/http_message.hpp"

#include "base/encoding.hpp"
#include "base/json_writer.hpp"

namespace wxrecon {

std::string_view inbound_request::header(std::string_view name) const noexcept {
    for (const auto& [k, v] : headers)
        if (iequals(k, name)) return v;
    return {};
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

}  // namespace wxrecon
