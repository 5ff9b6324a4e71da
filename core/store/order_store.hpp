// Orders registered through the internal API: insert-or-compare in one short
// transaction, and the order as JSON (wxrecon.order_json). Awaited; the SQL
// runs on a db_pool worker.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "domain/facts.hpp"
#include "store/db_pool.hpp"

namespace wxrecon::store {

struct order_registration {
    std::string mchid;
    std::string out_trade_no;
    std::int64_t amount_total = 0;
    std::string appid;  // the merchant's when the request gave none
    std::string currency = "CNY";
    std::optional<std::string> description;
    std::optional<std::string> payer_openid;
    domain::micros expire_at = 0;
    // The poller's first look, this long after created_at (the database's now()); nullopt: at once.
    std::optional<domain::micros> first_poll_after;
};

enum class registration_outcome {
    created,   // 201
    same,      // 200: already registered with the same amount, appid and currency
    adopted,   // 200: created by a notification; now registered, its unknown_order resolved
    conflict,  // 409: registered with a different amount, appid or currency
};

struct registration_result {
    registration_outcome outcome = registration_outcome::created;
    std::string conflict;  // which field differs, for the 409 message
    std::string order_json;
};

boost::asio::awaitable<registration_result> register_order(db_pool& pool, order_registration r,
                                                           deadline until);

// The order with its events and refunds; nullopt when there is no such order.
boost::asio::awaitable<std::optional<std::string>> order_json(db_pool& pool, std::string mchid,
                                                              std::string out_trade_no, deadline until);

// The refund as JSON (wxrecon.refund_json), or nullopt when there is none with that number.
boost::asio::awaitable<std::optional<std::string>> refund_json(db_pool& pool, std::string mchid,
                                                               std::string out_refund_no, deadline until);

// Where a page of the newest-first list ends: the last order's position. Orders created later never
// shift a page, so every order present when listing began is seen exactly once.
struct order_list_position {
    domain::micros created_at = 0;
    std::string mchid;
    std::string out_trade_no;
};

struct order_list_filter {
    std::optional<std::string> mchid;
    std::optional<std::string> state;            // NOTPAY, SUCCESS, ...
    std::optional<domain::micros> since, until;  // created_at: since inclusive, until exclusive
    std::optional<order_list_position> after;    // the previous page's end
    int limit = 50;
};

struct order_list_page {
    std::vector<std::string> orders_json;     // wxrecon.order_list_json, newest first
    std::optional<order_list_position> next;  // set when more orders follow
};

// Keyset pagination on (created_at, mchid, out_trade_no) through its indexes; at most 5 s.
boost::asio::awaitable<order_list_page> list_orders(db_pool& pool, order_list_filter filter, deadline until);

}  // namespace wxrecon::store
