// A merchant's day against WeChat Pay's bills (docs/interfaces.md §7, docs/finance.md): the day's files
// are stored, the trade bill's payments the ledger does not show as paid go through the one fact path
// (source bill), and the day is matched. The same day again changes nothing.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "store/bill_store.hpp"
#include "store/db_pool.hpp"
#include "store/ledger.hpp"

namespace wxrecon::workflow {

struct bill_day_request {
    std::string mchid;
    std::string bill_date;                // YYYY-MM-DD, Beijing
    std::vector<store::bill_file> files;  // downloaded, or handed over by an operator
    bool no_trade_bill = false;           // WeChat Pay said the day has no trade bill
    std::chrono::microseconds cross_day_tolerance = std::chrono::minutes(10);
};

struct bill_day_result {
    std::vector<store::stored_bill> files;  // one per request file, in order
    std::size_t payments_applied = 0;       // payments the ledger learned from the bill
    store::reconciliation day;
    std::string json() const;
};

boost::asio::awaitable<bill_day_result> reconcile_bill_day(store::db_pool& pool, store::ledger& ledger,
                                                           bill_day_request request);

}  // namespace wxrecon::workflow
