// Placing an order at WeChat Pay, the database side: the request is built
// once from the order row and stored, then every attempt resends it; the
// outcome of each attempt is recorded. Blocking functions, run on db_pool
// workers.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "domain/facts.hpp"

namespace pqxx {
class connection_base;
}

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
    std::string state;                 // the order's trade_state
    domain::micros expire_at = 0;
    stored_prepay prepay;
};

using prepay_builder = std::function<stored_prepay(const prepay_order&)>;

// Locks the order and returns its stored request, storing the one build() makes when there is none.
// nullopt when the order does not exist.
std::optional<prepay_start> begin_prepay(pqxx::connection_base& conn, const std::string& mchid,
                                         const std::string& out_trade_no, const prepay_builder& build);

// Records an attempt: the prepay_id on success; placed says WeChat Pay may know the order now (placed_at),
// which keeps the poller from closing it locally as never placed.
void record_prepay(pqxx::connection_base& conn, const std::string& mchid, const std::string& out_trade_no,
                   const std::optional<std::string>& prepay_id, bool placed, const std::optional<std::string>& error);

}  // namespace wxrecon::store
