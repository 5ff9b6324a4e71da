// WeChat Pay's bills in PostgreSQL (docs/interfaces.md §7.4): a bill file is stored once per content
// (its rows COPYed as they are parsed, the file itself in parts), a day without a bill is recorded, the
// bill's payments the ledger does not know come back as facts for the one fact path, and a merchant's
// day is matched in SQL (wxrecon.reconcile_bill_day). Awaited; the SQL runs on a db_pool worker.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "domain/facts.hpp"
#include "protocol/bill.hpp"
#include "store/db_pool.hpp"

namespace wxrecon::store {

// A bill file on local disk (downloaded, or handed over by an operator), and whose day it is.
struct bill_file {
    std::string mchid;
    std::string bill_date;  // YYYY-MM-DD, Beijing
    protocol::bill::bill_kind kind = protocol::bill::bill_kind::trade;
    std::string bill_type = "ALL";          // ALL / SUCCESS / REFUND, or the fund account (BASIC ...)
    std::string path;                       // plain or gzip
    std::optional<std::string> hash_value;  // WeChat Pay's SHA-1 of the decompressed file, when it gave one
};

enum class bill_store_outcome {
    stored,         // new content: the bill row, its rows and the file are committed
    same_file,      // this content was stored before: nothing new
    malformed,      // the file disagrees with itself: recorded with status 'malformed', no rows
    hash_mismatch,  // not what WeChat Pay said it sent: nothing stored (fetch it again)
};
const char* to_string(bill_store_outcome outcome) noexcept;

struct stored_bill {
    bill_store_outcome outcome = bill_store_outcome::stored;
    std::int64_t bill_id = 0;  // 0 for hash_mismatch
    std::int64_t rows = 0;
    std::string hash_value;   // of the decompressed content
    std::string totals_json;  // as `wxrecond bills check` prints them; empty unless parsed
    std::string error;        // malformed / hash_mismatch: what and where
};

// Reads the file once to parse, COPY and hash it when WeChat Pay gave a hash (nothing is committed unless
// it matches), or hashes it first when not; then once more to store it in parts. Never holds it whole. A file
// that cannot be read or a database failure throws; a malformed file is an outcome, not an exception.
boost::asio::awaitable<stored_bill> store_bill_file(db_pool& pool, bill_file file);

// Takes the merchant's day for fetching, for `lease`, unless another owner holds it: true when taken.
boost::asio::awaitable<bool> claim_bill_fetch(db_pool& pool, std::string mchid, std::string bill_date,
                                              std::string owner, std::chrono::milliseconds lease);
boost::asio::awaitable<void> release_bill_fetch(db_pool& pool, std::string mchid, std::string bill_date,
                                                std::string owner);

// WeChat Pay says the day has no trade bill (NO_STATEMENT_EXIST / No Bill Exist).
boost::asio::awaitable<void> record_no_trade_bill(db_pool& pool, std::string mchid, std::string bill_date);

// The bill payments the day's matching found missing in the ledger (open missing_in_ledger rows) that
// the ledger still does not show as paid with that transaction id, as facts (source bill) ready for the
// ledger. Asked after reconcile_bill_day.
boost::asio::awaitable<std::vector<domain::fact>> bill_payments_unknown_to_ledger(db_pool& pool,
                                                                                  std::string mchid,
                                                                                  std::string bill_date);

struct reconciliation {
    std::string mchid;
    std::string bill_date;
    std::string status;  // pending | balanced | differences | no_bill
    std::int64_t ledger_payments = 0, ledger_paid_fen = 0, ledger_refunds = 0, ledger_refunded_fen = 0;
    std::int64_t bill_payments = 0, bill_paid_fen = 0, bill_refunds = 0, bill_refunded_fen = 0;
    std::optional<std::string> trade_fee_total, fund_fee_total;  // yuan, as numeric text
    std::int64_t differences = 0;
    std::string json() const;
};

// Unresolved bill discrepancies of the merchant, all days.
boost::asio::awaitable<std::int64_t> open_bill_differences(db_pool& pool, std::string mchid);

// Deletes the bills (files and rows) of days before `before_day` (YYYY-MM-DD), every merchant; the
// reconciliations and discrepancies of those days stay. Returns how many bill files went.
boost::asio::awaitable<std::int64_t> purge_bills_before(db_pool& pool, std::string before_day);

// The newest day of the merchant, not after `not_after` (YYYY-MM-DD), that has been reconciled, if any.
boost::asio::awaitable<std::optional<std::string>> last_reconciled_day(db_pool& pool, std::string mchid,
                                                                       std::string not_after);

// Matches the merchant's day against its newest bills (see migrations/0008_bills.sql).
boost::asio::awaitable<reconciliation> reconcile_bill_day(db_pool& pool, std::string mchid,
                                                          std::string bill_date,
                                                          std::chrono::microseconds cross_day_tolerance);

}  // namespace wxrecon::store
