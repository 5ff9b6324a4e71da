// WeChat Pay bill files (docs/protocol-notes.md §6): the trade bill (ALL / SUCCESS / REFUND) and the
// fund-flow bill, parsed strictly and as a stream. Bytes go in as they arrive, in chunks of any size;
// each detail line comes out through a callback as soon as it is complete, so memory stays flat
// whatever the file's size; the summary line is checked against the rows at the end.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/result.hpp"

namespace wxrecon::protocol::bill {

enum class bill_kind { trade, fundflow };
enum class trade_bill_type { all, success, refund };

const char* to_string(bill_kind kind) noexcept;        // "trade", "fundflow"
const char* to_string(trade_bill_type type) noexcept;  // "ALL", "SUCCESS", "REFUND"
std::optional<bill_kind> parse_bill_kind(std::string_view text) noexcept;

// Fees are finer than a fen: the trade bill writes 手续费 with 5 decimals, so they are counted in
// units of 1/100000 yuan.
inline constexpr std::int64_t fee_units_per_yuan = 100000;

enum class trade_row_kind { payment, refund };

// One detail line of a trade bill. Columns the bill type does not have stay empty / zero.
struct trade_row {
    std::int64_t line = 0;  // 1-based line of the file
    trade_row_kind kind = trade_row_kind::payment;
    std::int64_t trade_time = 0;  // 交易时间, Unix seconds (payment time; refund initiation in ALL bills)
    std::string appid;            // 公众账号ID
    std::string mchid;            // 商户号
    std::string sub_mchid;        // 特约商户号 ("0" for a direct merchant)
    std::string device_info;      // 设备号
    std::string transaction_id;   // 微信订单号
    std::string out_trade_no;     // 商户订单号
    std::string openid;           // 用户标识
    std::string trade_type;       // 交易类型 (JSAPI, NATIVE, ...)
    std::string trade_state;      // 交易状态 (SUCCESS, REFUND)
    std::string bank_type;        // 付款银行
    std::string currency;         // 货币种类
    std::int64_t settlement_amount_fen = 0;       // 应结订单金额
    std::int64_t coupon_amount_fen = 0;           // 代金券金额
    std::string refund_id;                        // 微信退款单号 ("0" on payment rows)
    std::string out_refund_no;                    // 商户退款单号
    std::int64_t refund_amount_fen = 0;           // 退款金额
    std::int64_t recharge_coupon_refund_fen = 0;  // 充值券退款金额
    std::string refund_type;                      // 退款类型
    std::string refund_status;                    // 退款状态
    std::string description;                      // 商品名称
    std::string attach;                           // 商户数据包
    std::int64_t fee = 0;               // 手续费, 1/100000 yuan; negative when a refund returns it
    std::string fee_rate;               // 费率, kept as written ("0.60%")
    std::int64_t order_amount_fen = 0;  // 订单金额
    std::int64_t refund_requested_amount_fen = 0;     // 申请退款金额
    std::string fee_rate_note;                        // 费率备注
    std::optional<std::int64_t> refund_requested_at;  // 退款申请时间 (REFUND bills), Unix seconds
    std::optional<std::int64_t> refund_succeeded_at;  // 退款成功时间 (REFUND bills; empty until it succeeded)
};

enum class fund_direction { income, expense };  // 收入 / 支出

// One detail line of a fund-flow bill.
struct fundflow_row {
    std::int64_t line = 0;
    std::int64_t booked_at = 0;  // 记账时间, Unix seconds
    std::string business_order_id;  // 微信支付业务单号 (transaction id of a payment, refund id of a refund)
    std::string flow_id;            // 资金流水单号
    std::string business_name;  // 业务名称
    std::string business_type;  // 业务类型 (交易, 退款, 扣除交易手续费, 提现, ...: kept as written)
    fund_direction direction = fund_direction::income;
    std::int64_t amount_fen = 0;   // 收支金额(元), never negative: the direction says which way
    std::int64_t balance_fen = 0;  // 账户结余(元), after this movement
    std::string applicant;         // 资金变更提交申请人
    std::string remark;            // 备注
    std::string voucher_id;        // 业务凭证号
};

// Sums over the detail lines of a trade bill; after finish() they agree with its summary line.
struct trade_totals {
    trade_bill_type bill_type = trade_bill_type::all;
    std::int64_t rows = 0;
    std::int64_t payment_rows = 0;
    std::int64_t refund_rows = 0;
    std::int64_t settlement_total_fen = 0;              // 应结订单金额
    std::int64_t coupon_total_fen = 0;                  // 代金券金额 (no summary field to check it with)
    std::int64_t refund_total_fen = 0;                  // 退款金额
    std::int64_t recharge_coupon_refund_total_fen = 0;  // 充值券退款金额
    std::int64_t order_total_fen = 0;                   // 订单金额
    std::int64_t refund_requested_total_fen = 0;        // 申请退款金额
    std::int64_t fee_total = 0;                         // 手续费, 1/100000 yuan
};

struct fundflow_totals {
    std::int64_t rows = 0;
    std::int64_t income_rows = 0;
    std::int64_t income_total_fen = 0;
    std::int64_t expense_rows = 0;
    std::int64_t expense_total_fen = 0;
    // Lines whose 账户结余 does not follow from the line before (balance before ± amount). Reported, never
    // an error on its own: whether WeChat Pay always writes the rows in booking order is unconfirmed.
    std::int64_t balance_breaks = 0;
    std::vector<std::string> balance_warnings;  // the first parser_limits::max_warnings of them
};

using bill_totals = std::variant<trade_totals, fundflow_totals>;

// Where the rows go. A handler's error stops the parse and is what feed()/finish() return.
struct row_handlers {
    std::function<status(const trade_row&)> trade;
    std::function<status(const fundflow_row&)> fundflow;
};

struct parser_limits {
    std::size_t max_line_bytes =
        64 * 1024;                // a longer line is refused, so a line never grows the buffer past it
    std::size_t max_fields = 64;  // no bill has half as many columns
    std::size_t max_warnings = 100;
};

// The streaming parser. Every malformed or self-contradicting input is an errc::parse_error whose
// message names the line and column (1-based; the column is the value's position, with its header
// name) or the summary field that disagrees. The first error sticks: later calls return it again.
class bill_parser {
public:
    // expected: the kind the caller asked for; a file of the other kind is refused on its header line.
    explicit bill_parser(row_handlers handlers = {}, std::optional<bill_kind> expected = std::nullopt,
                         parser_limits limits = {});
    ~bill_parser();
    bill_parser(bill_parser&&) noexcept;
    bill_parser& operator=(bill_parser&&) noexcept;

    // The next bytes of the file, cut anywhere (inside a line, a UTF-8 character, the BOM, a CRLF).
    status feed(std::string_view bytes);
    // End of file: the last line, then the summary check. A file that stops before its summary line is
    // an error (a truncated download).
    result<bill_totals> finish();

private:
    struct state;
    std::unique_ptr<state> state_;
};

// A whole file in memory: feed() once, then finish().
result<bill_totals> parse_bill(std::string_view text, row_handlers handlers = {},
                               std::optional<bill_kind> expected = std::nullopt);

// Values as bills write them. Errors are errc::parse_error with a message about the value alone; the
// parser puts the line and column in front.

// Yuan with at most 2 decimals ("0.01", "12", "0.0") -> fen. No sign, no leading zeros, no exponent.
result<std::int64_t> parse_yuan(std::string_view text);
// As parse_yuan, but a leading '-' is allowed (an account balance).
result<std::int64_t> parse_signed_yuan(std::string_view text);
// 手续费: yuan with at most 5 decimals, a leading '-' allowed -> 1/100000 yuan.
result<std::int64_t> parse_fee(std::string_view text);
// A count written as "12" or "45.0" (any number of zeros after the point); "45.5" is refused.
result<std::int64_t> parse_count(std::string_view text);
// "yyyy-MM-dd HH:mm:ss" in Beijing time (UTC+8 all year) -> Unix seconds.
result<std::int64_t> parse_beijing_datetime(std::string_view text);

// 1/100000 yuan -> "0.08000", "-0.01000": the bill's own notation, exact.
std::string format_fee(std::int64_t fee_units);
// fen -> "0.47", "-1.05".
std::string format_yuan(std::int64_t fen);

// The totals as one JSON object, as `wxrecond bills check` prints them (docs/interfaces.md §7.1).
std::string totals_json(const bill_totals& totals);

}  // namespace wxrecon::protocol::bill
