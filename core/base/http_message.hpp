// An HTTP request and reply as the handlers see them, independent of the HTTP
// library: the server fills inbound_request, a handler returns a reply.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.hpp"

namespace wxrecon {

struct inbound_request {
    std::string method;
    std::string target;  // path and query string, as sent
    std::string path;    // target without the query string
    std::string remote_addr;
    std::vector<std::pair<std::string, std::string>> headers;  // in arrival order
    std::string body;
    // WeChat Pay's Request-ID when it sent a usable one, else one made up by the server: ties log lines
    // together.
    std::string request_id;
    std::chrono::steady_clock::time_point received{};  // when the whole request had been read
    // HTTPS with client certificates: the subject common name of the certificate the client presented and
    // the server's trusted CAs verified (mutual TLS). Empty: none presented, or plain HTTP.
    std::string client_certificate_subject;

    std::string_view header(std::string_view name) const noexcept;   // case-insensitive; "" when absent
    std::size_t header_count(std::string_view name) const noexcept;  // case-insensitive
    std::string_view query() const noexcept;                         // after '?', "" when none
    std::string headers_json() const;
    // Only what re-verifying a notification needs (Content-Type and WeChat Pay's signature headers), as
    // received: the evidence kept with an applied fact. Everything else a proxy or client adds is left out.
    std::string evidence_headers_json() const;
};

struct reply {
    int status = 200;
    std::string content_type;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers{};  // extra response headers
};

// The inverse of inbound_request::headers_json(): stored headers read back (to replay a notification). Not
// a JSON object of strings: an error naming what is wrong.
result<std::vector<std::pair<std::string, std::string>>> parse_headers_json(std::string_view json);

// A query string's name=value pairs in order, percent-decoded ('+' stays '+': a time's "+08:00" can be
// written as it is). A malformed %-escape is an error naming it.
result<std::vector<std::pair<std::string, std::string>>> parse_query(std::string_view query);

}  // namespace wxrecon
