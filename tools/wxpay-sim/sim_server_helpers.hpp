// What the simulator's parts (server, merchant APIs, login, control API,
// notifier) share: reading JSON bodies and query strings, JSON replies,
// made-up ids, and running RSA work on the signing pool. sim_server.cpp
// defines the functions.
#pragma once

#include <simdjson.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "base/http_message.hpp"

namespace wxrecon::sim {

// A JSON object from a request body (control and APIv3 bodies), or the reason it is not one.
struct json_body {
    simdjson::dom::parser parser;
    simdjson::dom::object object;
    std::string error;

    explicit json_body(std::string_view text) {
        simdjson::padded_string padded(text);
        if (parser.parse(padded).get(object) != simdjson::SUCCESS) error = "body is not a JSON object";
    }
    std::optional<std::string> str(std::string_view key) const {
        std::string_view v;
        if (object.at_key(key).get(v) != simdjson::SUCCESS) return std::nullopt;
        return std::string(v);
    }
    std::optional<std::int64_t> integer(std::string_view key) const {
        std::int64_t v = 0;
        if (object.at_key(key).get(v) != simdjson::SUCCESS) return std::nullopt;
        return v;
    }
    std::optional<bool> boolean(std::string_view key) const {
        bool v = false;
        if (object.at_key(key).get(v) != simdjson::SUCCESS) return std::nullopt;
        return v;
    }
    std::optional<std::int64_t> nested_integer(std::string_view outer, std::string_view key) const {
        simdjson::dom::object o;
        if (object.at_key(outer).get(o) != simdjson::SUCCESS) return std::nullopt;
        std::int64_t v = 0;
        if (o.at_key(key).get(v) != simdjson::SUCCESS) return std::nullopt;
        return v;
    }
    std::optional<std::string> nested_str(std::string_view outer, std::string_view key) const {
        simdjson::dom::object o;
        if (object.at_key(outer).get(o) != simdjson::SUCCESS) return std::nullopt;
        std::string_view v;
        if (o.at_key(key).get(v) != simdjson::SUCCESS) return std::nullopt;
        return std::string(v);
    }
};

reply json_reply(int status, std::string body);
// {"error":message}, how the control API and the login code issuer refuse.
reply control_error(int status, std::string_view message);

// The value of name in a query string ("" when absent; not percent-decoded).
std::string query_param(std::string_view query, std::string_view name);

// A UUID-shaped id from two numbers (Request-ID headers, notification ids).
std::string uuid_from(std::uint64_t a, std::uint64_t b);

// Runs f on the signing pool and resumes the caller on its own executor.
template <class F>
boost::asio::awaitable<std::optional<std::invoke_result_t<F>>> on_pool(boost::asio::thread_pool& pool, F f) {
    using value = std::optional<std::invoke_result_t<F>>;
    auto task = [f = std::move(f)]() -> boost::asio::awaitable<value> { co_return value(f()); };
    co_return co_await boost::asio::co_spawn(pool, std::move(task), boost::asio::use_awaitable);
}

}  // namespace wxrecon::sim
