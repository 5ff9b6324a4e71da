// GET /api/v1/orders: the application's orders newest first, filtered by merchant, state and creation
// time, a page at a time with an opaque cursor (keyset pagination: a page never shifts when orders are
// added, so each order present when listing began is seen exactly once).
#pragma once

#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "base/http_message.hpp"
#include "store/db_pool.hpp"

namespace wxrecon::workflow {

// The reply to GET /api/v1/orders?QUERY: 200 {"orders":[...],"next_cursor":...}, 400 naming a bad
// parameter. A database failure throws (the caller answers 503).
boost::asio::awaitable<reply> list_orders(store::db_pool& pool, std::string_view query);

}  // namespace wxrecon::workflow
