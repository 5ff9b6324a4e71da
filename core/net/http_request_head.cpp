#include "net/http_request_head.hpp"

#include <cstdint>
#include <string>
#include <utility>

namespace wxrecon {

void limit_request(request_parser& parser, std::size_t max_header_bytes, std::size_t max_body_bytes) {
    parser.header_limit(static_cast<std::uint32_t>(max_header_bytes));
    parser.body_limit(max_body_bytes);
}

inbound_request to_inbound(boost::beast::http::request<boost::beast::http::string_body>&& msg) {
    inbound_request req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    req.path = req.target.substr(0, req.target.find('?'));
    for (const auto& h : msg) req.headers.emplace_back(std::string(h.name_string()), std::string(h.value()));
    req.body = std::move(msg.body());
    return req;
}

}  // namespace wxrecon
