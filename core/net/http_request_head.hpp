// How a listener reads a request: Beast's parser held to the listener's limits, and the request the
// handlers see. Shared by the HTTP server and the request-head fuzz target, so that what is fuzzed is
// what the listener runs.
#pragma once

#include <cstddef>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "base/http_message.hpp"

namespace wxrecon {

constexpr std::size_t default_max_header_bytes = 16 * 1024;
constexpr std::size_t default_max_body_bytes = 65536;

using request_parser = boost::beast::http::request_parser<boost::beast::http::string_body>;

void limit_request(request_parser& parser, std::size_t max_header_bytes, std::size_t max_body_bytes);

// The parsed request's method, target, path, headers (in arrival order) and body; the listener adds what
// it knows of the connection.
inbound_request to_inbound(boost::beast::http::request<boost::beast::http::string_body>&& msg);

}  // namespace wxrecon
