// A merchant's day as finance reads it (`wxrecond report`, docs/interfaces.md §7.1): every order placed,
// paid or billed that Beijing day, with the ledger's amounts and how it was settled beside the trade bill's
// amounts and fee, and the order's open discrepancies. Rows are streamed: a day of a million orders is never
// held whole.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "store/db_pool.hpp"

namespace wxrecon::store {

struct statement_row {
    std::string out_trade_no;
    std::string transaction_id;  // the ledger's, else the bill's; empty when neither has one
    std::string created_at;      // Beijing "YYYY-MM-DD HH:MM:SS"; empty when the ledger lacks the order
    std::string state;           // the ledger's state; empty when the ledger lacks the order
    std::string settled_by;      // register | notify | query | close | bill
    std::string success_time;    // Beijing; empty unless paid
    std::optional<std::int64_t> amount_total_fen, payer_total_fen;  // the ledger's
    std::int64_t refunded_fen = 0;                                  // the ledger's successful refunds
    std::optional<std::int64_t> bill_order_fen, bill_settlement_fen, bill_refund_fen;  // the day's trade bill
    std::optional<std::string> bill_fee;                                               // yuan, 5 decimals
    std::string open_discrepancies;                                                    // kinds, ';'-separated
};

// Calls `each` for the merchant's orders of the day (YYYY-MM-DD, Beijing), in time order, on a pool worker;
// returns how many rows there were.
boost::asio::awaitable<std::int64_t> day_statement(db_pool& pool, std::string mchid, std::string day,
                                                   std::function<void(const statement_row&)> each);

}  // namespace wxrecon::store
