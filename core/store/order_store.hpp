// Orders registered through the internal API: insert-or-compare in one short
// transaction, and the order as JSON (wxrecon.order_json). Blocking functions,
// run on db_pool workers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "domain/facts.hpp"

namespace pqxx {
class connection_base;
}

namespace wxrecon::store {

struct order_registration {
    std::string mchid;
    std::string out_trade_no;
    std::int64_t amount_total = 0;
    std::string appid;                  // the merchant's when the request gave none
    std::string currency = "CNY";
    std::optional<std::string> description;
    std::optional<std::string> payer_openid;
    domain::micros expire_at = 0;
};

enum class registration_outcome {
    created,    // 201
    same,       // 200: already registered with the same amount, appid and currency
    adopted,    // 200: created by a notification; now registered, its unknown_order resolved
    conflict,   // 409: registered with a different amount, appid or currency
};

struct registration_result {
    registration_outcome outcome = registration_outcome::created;
    std::string conflict;   // which field differs, for the 409 message
    std::string order_json;
};

registration_result register_order(pqxx::connection_base& conn, const order_registration& r);

// The order with its events and refunds; nullopt when there is no such order.
std::optional<std::string> order_json(pqxx::connection_base& conn, const std::string& mchid,
                                      const std::string& out_trade_no);

}  // namespace wxrecon::store
