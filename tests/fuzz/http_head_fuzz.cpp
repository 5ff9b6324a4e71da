// libFuzzer target for a request as the public listener reads it: the listener's parser with its default
// header and body limits (net/http_request_head, shared with the server), fed in pieces (the first input
// byte picks their size), then what the handlers read from the parsed request (headers, the query string, the
// headers' JSON kept as evidence). Whatever the bytes: no crash, no hang, and the parser never accepts more
// than the limits. Like the listener, it stops at a chunked body (Boost 1.74's chunk parser asserts on some
// split inputs).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "net/http_request_head.hpp"

namespace http = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    if (size == 0) return 0;
    const std::size_t piece = 1 + bytes[0] % 64;
    const std::string_view data(reinterpret_cast<const char*>(bytes) + 1, size - 1);
    wxrecon::request_parser parser;
    wxrecon::limit_request(parser, wxrecon::default_max_header_bytes, wxrecon::default_max_body_bytes);
    parser.eager(true);
    boost::beast::error_code ec;
    std::string pending;
    for (std::size_t at = 0; at < data.size() && !ec && !parser.is_done(); at += piece) {
        pending.append(data.substr(at, piece));
        const std::size_t used = parser.put(boost::asio::buffer(pending), ec);
        if (ec == http::error::need_more) ec = {};
        pending.erase(0, used);
        if (parser.is_header_done() && parser.chunked()) return 0;  // the listener refuses it here (411)
    }
    if (ec || !parser.is_done()) return 0;
    if (parser.get().body().size() > wxrecon::default_max_body_bytes) std::abort();
    const wxrecon::inbound_request req = wxrecon::to_inbound(parser.release());
    (void)req.header("Wechatpay-Signature");
    (void)req.header_count("Wechatpay-Serial");
    (void)req.headers_json();
    (void)wxrecon::parse_query(req.query());
    return 0;
}
