// Placing an order at WeChat Pay, the database side: the request is built
// once from the order row and stored, then every attempt resends it; the
// outcome of each attempt is recorded. Awaited; the SQL runs on a db_pool
// worker.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "domain/facts.hpp"
#include "store/db_pool.hpp"

namespace wxrecon::store {

// The order as the request is built from it.
struct prepay_order {
    std::string mchid, out_trade_no, appid, currency;
    std::int64_t amount_total = 0;
    std::optional<std::string> description, payer_openid;
    domain::micros expire_at = 0;
};

struct stored_prepay {
    std::string api_version;  // "v3" or "v2"
    std::string appid;
    std::string request;
    std::optional<std::string> prepay_id;
    std::optional<domain::micros> prepaid_at;
};

struct prepay_start {
    domain::trade_state state = domain::trade_state::notpay;
    domain::micros expire_at = 0;
    stored_prepay prepay;
};

using prepay_builder = std::function<stored_prepay(const prepay_order&)>;

// Locks the order and returns its stored request, storing the one build() makes when there is none
// (build runs on the worker, inside the transaction). nullopt when the order does not exist.
boost::asio::awaitable<std::optional<prepay_start>> begin_prepay(db_pool& pool, std::string mchid,
                                                                 std::string out_trade_no,
                                                                 prepay_builder build, deadline until);

// What became of one attempt at placing the order.
struct prepay_attempt {
    std::optional<std::string> prepay_id;  // on success
    bool placed = false;                   // WeChat Pay may know the order now (placed_at): the poller must
                                           // not close it locally as never placed
    std::optional<std::string> error;
};

// Records an attempt and returns the order JSON as it stands afterwards.
boost::asio::awaitable<std::string> record_prepay(db_pool& pool, std::string mchid, std::string out_trade_no,
                                                  prepay_attempt attempt, deadline until);

}  // namespace wxrecon::store
