// The bill formats as data: every column of the trade and fund-flow bills and of their summary lines
// (header name, value type, the member its value goes to), and each bill type as a set of those
// columns. Internal to the bill parser (bill.cpp), which is driven by these tables.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "protocol/bill.hpp"

namespace wxrecon::protocol::bill::detail {

// ---- Columns -------------------------------------------------------------------------------------

enum class value_type : std::uint8_t {
    text,           // kept as written
    free_text,      // kept as written; may hold commas
    amount,         // yuan, 2 decimals, no sign -> fen
    signed_amount,  // as amount, a leading '-' allowed
    fee,            // yuan, 5 decimals, a leading '-' allowed -> 1/100000 yuan
    count,          // "12" or "12.0"
    time,           // yyyy-MM-dd HH:mm:ss Beijing -> Unix seconds
    optional_time,  // as time, or empty
    direction,      // 收入 / 支出
};

// One column of a detail line (Record = trade_row / fundflow_row) or one summary field (Record = the
// totals it is checked against): its header name, its type, and the member its value goes to.
template <class Record>
struct column_spec {
    std::string_view name;
    value_type type;
    std::string Record::*text = nullptr;
    std::int64_t Record::*number = nullptr;
    std::optional<std::int64_t> Record::*optional_number = nullptr;
    fund_direction Record::*direction = nullptr;
};

template <class Record>
constexpr column_spec<Record> text_column(std::string_view name, std::string Record::*member) {
    return {name, value_type::text, member};
}
template <class Record>
constexpr column_spec<Record> free_text_column(std::string_view name, std::string Record::*member) {
    return {name, value_type::free_text, member};
}
template <class Record>
constexpr column_spec<Record> number_column(std::string_view name, value_type type,
                                            std::int64_t Record::*member) {
    return {name, type, nullptr, member};
}

using tr = trade_row;
using fr = fundflow_row;

inline constexpr std::array trade_columns = {
    number_column("交易时间", value_type::time, &tr::trade_time),
    text_column("公众账号ID", &tr::appid),
    text_column("商户号", &tr::mchid),
    text_column("特约商户号", &tr::sub_mchid),
    text_column("设备号", &tr::device_info),
    text_column("微信订单号", &tr::transaction_id),
    text_column("商户订单号", &tr::out_trade_no),
    text_column("用户标识", &tr::openid),
    text_column("交易类型", &tr::trade_type),
    text_column("交易状态", &tr::trade_state),
    text_column("付款银行", &tr::bank_type),
    text_column("货币种类", &tr::currency),
    number_column("应结订单金额", value_type::amount, &tr::settlement_amount_fen),
    number_column("代金券金额", value_type::amount, &tr::coupon_amount_fen),
    text_column("微信退款单号", &tr::refund_id),
    text_column("商户退款单号", &tr::out_refund_no),
    number_column("退款金额", value_type::amount, &tr::refund_amount_fen),
    number_column("充值券退款金额", value_type::amount, &tr::recharge_coupon_refund_fen),
    text_column("退款类型", &tr::refund_type),
    text_column("退款状态", &tr::refund_status),
    free_text_column("商品名称", &tr::description),
    free_text_column("商户数据包", &tr::attach),
    number_column("手续费", value_type::fee, &tr::fee),
    text_column("费率", &tr::fee_rate),
    number_column("订单金额", value_type::amount, &tr::order_amount_fen),
    number_column("申请退款金额", value_type::amount, &tr::refund_requested_amount_fen),
    free_text_column("费率备注", &tr::fee_rate_note),
    // REFUND bills only. 退款成功时间 is empty while a refund is still processing: the bill is written
    // once and never updated.
    column_spec<tr>{"退款申请时间", value_type::time, nullptr, nullptr, &tr::refund_requested_at},
    column_spec<tr>{"退款成功时间", value_type::optional_time, nullptr, nullptr, &tr::refund_succeeded_at},
};

inline constexpr std::array fund_columns = {
    number_column("记账时间", value_type::time, &fr::booked_at),
    text_column("微信支付业务单号", &fr::business_order_id),
    text_column("资金流水单号", &fr::flow_id),
    free_text_column("业务名称", &fr::business_name),
    free_text_column("业务类型", &fr::business_type),
    column_spec<fr>{"收支类型", value_type::direction, nullptr, nullptr, nullptr, &fr::direction},
    number_column("收支金额(元)", value_type::amount, &fr::amount_fen),
    number_column("账户结余(元)", value_type::signed_amount, &fr::balance_fen),
    text_column("资金变更提交申请人", &fr::applicant),
    free_text_column("备注", &fr::remark),
    text_column("业务凭证号", &fr::voucher_id),
};

// Summary fields, each with the total of the detail lines it must equal (docs/protocol-notes.md §6.6:
// the count is of all detail lines, each amount the sum of its column over all of them).
using tt = trade_totals;
using ft = fundflow_totals;

inline constexpr std::array trade_summary_fields = {
    number_column("总交易单数", value_type::count, &tt::rows),
    number_column("应结订单总金额", value_type::amount, &tt::settlement_total_fen),
    number_column("退款总金额", value_type::amount, &tt::refund_total_fen),
    number_column("充值券退款总金额", value_type::amount, &tt::recharge_coupon_refund_total_fen),
    number_column("手续费总金额", value_type::fee, &tt::fee_total),
    number_column("订单总金额", value_type::amount, &tt::order_total_fen),
    number_column("申请退款总金额", value_type::amount, &tt::refund_requested_total_fen),
};

inline constexpr std::array fund_summary_fields = {
    number_column("资金流水总笔数", value_type::count, &ft::rows),
    number_column("收入笔数", value_type::count, &ft::income_rows),
    number_column("收入金额", value_type::amount, &ft::income_total_fen),
    number_column("支出笔数", value_type::count, &ft::expense_rows),
    number_column("支出金额", value_type::amount, &ft::expense_total_fen),
};

// Column names of the trade bill's older layout (before 免充值券). Its summary is not documented well
// enough to check, so such a file is refused by name rather than misread.
inline constexpr std::array<std::string_view, 5> legacy_trade_columns = {
    "总金额", "代金券或立减优惠金额", "代金券或立减优惠退款金额", "子商户号", "总交易额"};

// ---- Bill types: sets of columns -----------------------------------------------------------------

// Bit i stands for entry i of a column table.
using column_set = std::uint64_t;
static_assert(trade_columns.size() <= 64 && fund_columns.size() <= 64);

template <class Record, std::size_t N>
inline constexpr std::size_t index_of(const std::array<column_spec<Record>, N>& table,
                                      std::string_view name) {
    for (std::size_t i = 0; i < N; ++i)
        if (table[i].name == name) return i;
    return N;
}

// Evaluated at compile time: a name missing from the table does not compile.
template <class Record, std::size_t N>
inline constexpr column_set set_of(const std::array<column_spec<Record>, N>& table,
                                   std::initializer_list<std::string_view> names) {
    column_set set = 0;
    for (std::string_view name : names) {
        const std::size_t i = index_of(table, name);
        if (i == N) throw "set_of: not a column of the table";
        set |= column_set{1} << i;
    }
    return set;
}

template <class Record, std::size_t N>
inline constexpr column_set all_of(const std::array<column_spec<Record>, N>&) {
    return N == 64 ? ~column_set{0} : (column_set{1} << N) - 1;
}

// The detail header names in the order WeChat Pay writes them (docs/protocol-notes.md §6.4); the order is not
// relied on, only the set.
inline constexpr column_set all_detail =
    set_of(trade_columns,
           {"交易时间",     "公众账号ID",   "商户号",       "特约商户号",   "设备号",   "微信订单号",
            "商户订单号",   "用户标识",     "交易类型",     "交易状态",     "付款银行", "货币种类",
            "应结订单金额", "代金券金额",   "微信退款单号", "商户退款单号", "退款金额", "充值券退款金额",
            "退款类型",     "退款状态",     "商品名称",     "商户数据包",   "手续费",   "费率",
            "订单金额",     "申请退款金额", "费率备注"});
inline constexpr column_set success_detail =
    set_of(trade_columns,
           {"交易时间", "公众账号ID", "商户号",   "特约商户号", "设备号",   "微信订单号",   "商户订单号",
            "用户标识", "交易类型",   "交易状态", "付款银行",   "货币种类", "应结订单金额", "代金券金额",
            "商品名称", "商户数据包", "手续费",   "费率",       "订单金额", "费率备注"});
inline constexpr column_set refund_detail =
    all_detail | set_of(trade_columns, {"退款申请时间", "退款成功时间"});

inline constexpr column_set all_summary = all_of(trade_summary_fields);
inline constexpr column_set success_summary =
    set_of(trade_summary_fields, {"总交易单数", "应结订单总金额", "手续费总金额", "订单总金额"});

struct trade_format {
    trade_bill_type type;
    column_set detail;
    column_set summary;
};

inline constexpr std::array<trade_format, 3> trade_formats = {{
    {trade_bill_type::all, all_detail, all_summary},
    {trade_bill_type::success, success_detail, success_summary},
    {trade_bill_type::refund, refund_detail, all_summary},
}};

template <class Record, std::size_t N>
const column_spec<Record>* find_column(const std::array<column_spec<Record>, N>& table,
                                       std::string_view name) {
    const std::size_t i = index_of(table, name);
    return i < N ? &table[i] : nullptr;
}

// The first name in `table` whose bit is in `set` (for "lacks ..." messages).
template <class Record, std::size_t N>
std::string first_name_in(const std::array<column_spec<Record>, N>& table, column_set set) {
    return set == 0 ? "?" : std::string(table[static_cast<std::size_t>(std::countr_zero(set))].name);
}

}  // namespace wxrecon::protocol::bill::detail
