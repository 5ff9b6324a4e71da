// WeChat Pay's daily bills as the simulator writes them (docs/protocol-notes.md §6.4, §6.5, §6.7): the
// trade bill (ALL / SUCCESS / REFUND) and the BASIC account's fund-flow bill of one merchant's Beijing
// day, computed from the truth ledger, plus the damage a test can ask for. Pure: no I/O, no clock.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/bill.hpp"
#include "sim_model.hpp"

namespace wxrecon::sim {

// The byte-level readings docs/protocol-notes.md §11 leaves open, one choice each.
struct bill_style {
    bool bom = false;             // a UTF-8 BOM before the header line
    bool crlf = false;            // CRLF line ends (else LF)
    bool count_dot_zero = false;  // summary counts written "45.0" (else "45")
};

inline constexpr std::int64_t default_fee_rate_bp = 60;       // 0.60 %
inline constexpr std::int64_t opening_balance_fen = 1000000;  // 10000.00 yuan before the first movement

// The fee rule (docs/protocol-notes.md §6.7): amount × rate, rounded half-up to the fen, in fen.
std::int64_t fee_fen(std::int64_t amount_fen, std::int64_t rate_bp) noexcept;
// What WeChat Pay settles for a payment: the order total less the (merchant-funded) coupon.
std::int64_t settlement_fen(const order_record& o) noexcept;
// The fee handed back by each refund of o (same order as o.refunds; 0 for refunds not SUCCESS): the fee
// rule on the refund amount, never more than what is left of the payment's fee.
std::vector<std::int64_t> returned_fees(const order_record& o);

// Unix seconds of Beijing midnight starting the day "yyyy-MM-dd"; nullopt when it is not a real date.
std::optional<std::int64_t> beijing_day_start(std::string_view yyyy_mm_dd);
// The Beijing midnight at or before t.
std::int64_t beijing_midnight_before(std::int64_t unix_seconds) noexcept;
// The earliest day start whose bill may still be asked for (3 months before today, Beijing).
std::int64_t earliest_bill_day(std::int64_t now) noexcept;
// "yyyyMMdd" -> "yyyy-MM-dd" (APIv2); "" when the text is not 8 digits.
std::string dashed_date(std::string_view compact);

// Whether the merchant had a payment or a successful refund in the day starting at day_start.
bool has_activity(const std::vector<const order_record*>& orders, std::int64_t day_start);

std::string trade_bill(const std::vector<const order_record*>& orders, std::int64_t day_start,
                       protocol::bill::trade_bill_type type, const bill_style& style);
// Balances run from opening_balance_fen over every movement of the merchant before the day.
// fee_adjustment_fen: a 手续费调整 line at 23:59:59 with no business order behind it (positive: debited,
// negative: credited), so the day's fees differ from the trade bill's; it moves that day's balance only.
std::string fundflow_bill(const std::vector<const order_record*>& orders, std::string_view mchid,
                          std::int64_t day_start, const bill_style& style,
                          std::int64_t fee_adjustment_fen = 0);

enum class bill_corruption { none, flip_digit, truncate };
std::optional<bill_corruption> parse_corruption(std::string_view text);
// flip_digit: the last digit of the file (in the summary line) moves by one; truncate: the second half of
// the file is cut off.
std::string corrupt(std::string text, bill_corruption c);

// RFC 1952 gzip of the bytes (one member, no file name, mtime 0: the same input gives the same bytes).
std::string gzip_compress(std::string_view bytes);

}  // namespace wxrecon::sim
