#include "sim_bills.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <stdexcept>

#include "base/time.hpp"
#include "sim_wire.hpp"

namespace wxrecon::sim {

namespace bill = protocol::bill;
using domain::refund_status;
using domain::trade_state;

namespace {

constexpr std::int64_t day_seconds = 24 * 3600;

bool is_paid(const order_record& o) {
    return (o.state == trade_state::success || o.state == trade_state::refund) && !o.transaction_id.empty();
}

bool in_day(std::int64_t t, std::int64_t day_start) {
    return t >= day_start && t < day_start + day_seconds;
}

// Free text never carries what would split or end a value (docs/protocol-notes.md §6.6).
std::string clean(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) out.push_back(c == '`' ? '\'' : c == '\n' || c == '\r' ? ' ' : c);
    return out;
}

std::string rate_text(std::int64_t bp) {
    char out[32];
    std::snprintf(out, sizeof out, "%lld.%02lld%%", static_cast<long long>(bp / 100),
                  static_cast<long long>(bp % 100));
    return out;
}

std::string count_text(std::int64_t n, const bill_style& style) {
    return std::to_string(n) + (style.count_dot_zero ? ".0" : "");
}

// A fee in fen written as the bill's 5-decimal yuan.
std::string fee_text(std::int64_t fen) {
    return bill::format_fee(fen * (bill::fee_units_per_yuan / 100));
}

// Header line, detail lines, summary header, summary line.
std::string assemble(const std::vector<std::string_view>& header,
                     const std::vector<std::vector<std::string>>& rows,
                     const std::vector<std::string_view>& summary_header,
                     const std::vector<std::string>& summary, const bill_style& style) {
    const std::string_view eol = style.crlf ? "\r\n" : "\n";
    std::string out = style.bom ? "\xEF\xBB\xBF" : "";
    const auto names = [&](const std::vector<std::string_view>& list) {
        for (std::size_t i = 0; i < list.size(); ++i) (out += i ? "," : "") += list[i];
        out += eol;
    };
    const auto values = [&](const std::vector<std::string>& list) {
        for (std::size_t i = 0; i < list.size(); ++i) (out += i ? ",`" : "`") += list[i];
        out += eol;
    };
    names(header);
    for (const auto& r : rows) values(r);
    names(summary_header);
    values(summary);
    return out;
}

// One detail line of a trade bill, by column name (docs/protocol-notes.md §6.4).
struct trade_line {
    std::int64_t at = 0;
    bool refund = false;
    std::vector<std::pair<std::string_view, std::string>> values;
    std::int64_t settlement = 0, refund_amount = 0, order_amount = 0, requested = 0, fee = 0;
};

trade_line payment_line(const order_record& o) {
    trade_line l;
    l.at = o.success_at;
    l.settlement = settlement_fen(o);
    l.order_amount = o.payer_total;
    l.fee = fee_fen(l.settlement, o.fee_rate_bp);
    l.values = {{"交易时间", beijing_spaced(o.success_at)},
                {"公众账号ID", o.appid},
                {"商户号", o.mchid},
                {"特约商户号", "0"},
                {"设备号", ""},
                {"微信订单号", o.transaction_id},
                {"商户订单号", o.out_trade_no},
                {"用户标识", o.openid},
                {"交易类型", "JSAPI"},
                {"交易状态", "SUCCESS"},
                {"付款银行", "OTHERS"},
                {"货币种类", "CNY"},
                {"应结订单金额", bill::format_yuan(l.settlement)},
                {"代金券金额", bill::format_yuan(o.coupon)},
                {"退款申请时间", ""},
                {"退款成功时间", ""},
                {"微信退款单号", "0"},
                {"商户退款单号", "0"},
                {"退款金额", "0.00"},
                {"充值券退款金额", "0.00"},
                {"退款类型", ""},
                {"退款状态", ""},
                {"商品名称", clean(o.description)},
                {"商户数据包", clean(o.attach)},
                {"手续费", fee_text(l.fee)},
                {"费率", rate_text(o.fee_rate_bp)},
                {"订单金额", bill::format_yuan(o.payer_total)},
                {"申请退款金额", "0.00"},
                {"费率备注", ""}};
    return l;
}

// A refund line: the order's identity, the refund's amounts, the fee handed back as a negative fee.
trade_line refund_line(const order_record& o, const refund_record& r, std::int64_t returned_fee) {
    trade_line l = payment_line(o);
    l.at = r.success_at;
    l.refund = true;
    l.settlement = l.order_amount = 0;
    l.refund_amount = l.requested = r.amount;
    l.fee = -returned_fee;
    for (auto& [name, value] : l.values) {
        if (name == "交易时间") value = beijing_spaced(r.success_at);
        if (name == "交易状态") value = "REFUND";
        if (name == "应结订单金额" || name == "代金券金额" || name == "订单金额") value = "0.00";
        if (name == "退款申请时间") value = beijing_spaced(r.created_at);
        if (name == "退款成功时间") value = beijing_spaced(r.success_at);
        if (name == "微信退款单号") value = r.refund_id;
        if (name == "商户退款单号") value = r.out_refund_no;
        if (name == "退款金额" || name == "申请退款金额") value = bill::format_yuan(r.amount);
        if (name == "退款类型") value = "ORIGINAL";
        if (name == "退款状态") value = "SUCCESS";
        if (name == "手续费") value = returned_fee == 0 ? "0.00000" : "-" + fee_text(returned_fee);
    }
    return l;
}

bool column_of(bill::trade_bill_type type, std::string_view name) {
    const bool refund_time = name == "退款申请时间" || name == "退款成功时间";
    if (type == bill::trade_bill_type::refund) return true;
    if (refund_time) return false;
    if (type == bill::trade_bill_type::all) return true;
    static constexpr std::array<std::string_view, 7> refund_only = {
        "微信退款单号", "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态", "申请退款金额"};
    return std::find(refund_only.begin(), refund_only.end(), name) == refund_only.end();
}

// One movement of the merchant's BASIC account.
struct movement {
    std::int64_t at = 0;
    std::size_t seq = 0;  // creation order, to keep a payment's income before its fee
    std::string business_id, name, voucher, remark;
    bool income = true;
    std::int64_t amount = 0;
};

std::vector<movement> movements_of(const std::vector<const order_record*>& orders, std::int64_t until) {
    std::vector<movement> out;
    const auto add = [&](std::int64_t at, std::string id, std::string_view name, bool income,
                         std::int64_t amount, std::string voucher, std::string remark) {
        if (amount == 0 || at >= until) return;
        out.push_back({at, out.size(), std::move(id), std::string(name), std::move(voucher),
                       std::move(remark), income, amount});
    };
    for (const order_record* o : orders) {
        if (!is_paid(*o)) continue;
        const std::int64_t settled = settlement_fen(*o);
        add(o->success_at, o->transaction_id, "交易", true, settled, o->out_trade_no, "");
        add(o->success_at, o->transaction_id, "扣除交易手续费", false, fee_fen(settled, o->fee_rate_bp),
            o->out_trade_no, "");
        const auto fees = returned_fees(*o);
        for (std::size_t i = 0; i < o->refunds.size(); ++i) {
            const refund_record& r = o->refunds[i];
            if (r.status != refund_status::success) continue;
            add(r.success_at, r.refund_id, "退款", false, r.amount, "REF" + o->transaction_id,
                clean(r.reason));
            add(r.success_at, r.refund_id, "退还交易手续费", true, fees[i], "REF" + o->transaction_id, "");
        }
    }
    std::sort(out.begin(), out.end(), [](const movement& a, const movement& b) {
        return a.at != b.at ? a.at < b.at : a.seq < b.seq;
    });
    return out;
}

}  // namespace

std::int64_t fee_fen(std::int64_t amount_fen, std::int64_t rate_bp) noexcept {
    // Basis points of fen: amount × bp / 10000, the remainder of one half or more rounds up.
    return (amount_fen * rate_bp + 5000) / 10000;
}

std::int64_t settlement_fen(const order_record& o) noexcept {
    return o.payer_total - o.coupon;
}

std::vector<std::int64_t> returned_fees(const order_record& o) {
    std::vector<std::int64_t> out(o.refunds.size(), 0);
    std::int64_t left = fee_fen(settlement_fen(o), o.fee_rate_bp);
    for (std::size_t i = 0; i < o.refunds.size(); ++i) {
        if (o.refunds[i].status != refund_status::success) continue;
        out[i] = std::min(left, fee_fen(o.refunds[i].amount, o.fee_rate_bp));
        left -= out[i];
    }
    return out;
}

std::optional<std::int64_t> beijing_day_start(std::string_view text) {
    if (text.size() != 10 || text[4] != '-' || text[7] != '-') return std::nullopt;
    int parts[3] = {0, 0, 0};
    const std::size_t from[3] = {0, 5, 8}, len[3] = {4, 2, 2};
    for (int p = 0; p < 3; ++p) {
        for (std::size_t i = from[p]; i < from[p] + len[p]; ++i) {
            if (text[i] < '0' || text[i] > '9') return std::nullopt;
            parts[p] = parts[p] * 10 + (text[i] - '0');
        }
    }
    const auto utc = civil_to_unix(parts[0], parts[1], parts[2], 0, 0, 0);
    if (!utc) return std::nullopt;
    return *utc - beijing_offset_seconds;
}

std::int64_t beijing_midnight_before(std::int64_t t) noexcept {
    const std::int64_t local = t + beijing_offset_seconds;
    const std::int64_t floor_days =
        local >= 0 ? local / day_seconds : -((-local + day_seconds - 1) / day_seconds);
    return floor_days * day_seconds - beijing_offset_seconds;
}

std::int64_t earliest_bill_day(std::int64_t now) noexcept {
    using namespace std::chrono;
    const year_month_day today{floor<days>(sys_seconds{seconds{now + beijing_offset_seconds}})};
    year_month_day earliest = today - months{3};
    if (!earliest.ok()) earliest = earliest.year() / earliest.month() / last;  // 31 May - 3 months
    return duration_cast<seconds>(sys_days{earliest}.time_since_epoch()).count() - beijing_offset_seconds;
}

std::string dashed_date(std::string_view compact) {
    if (compact.size() != 8 || compact.find_first_not_of("0123456789") != std::string_view::npos) return {};
    return std::string(compact.substr(0, 4)) + "-" + std::string(compact.substr(4, 2)) + "-" +
           std::string(compact.substr(6, 2));
}

bool has_activity(const std::vector<const order_record*>& orders, std::int64_t day_start) {
    for (const order_record* o : orders) {
        if (!is_paid(*o)) continue;
        if (in_day(o->success_at, day_start)) return true;
        for (const auto& r : o->refunds)
            if (r.status == refund_status::success && in_day(r.success_at, day_start)) return true;
    }
    return false;
}

std::string trade_bill(const std::vector<const order_record*>& orders, std::int64_t day_start,
                       bill::trade_bill_type type, const bill_style& style) {
    std::vector<trade_line> lines;
    for (const order_record* o : orders) {
        if (!is_paid(*o)) continue;
        if (type != bill::trade_bill_type::refund && in_day(o->success_at, day_start))
            lines.push_back(payment_line(*o));
        if (type == bill::trade_bill_type::success) continue;
        const auto fees = returned_fees(*o);
        for (std::size_t i = 0; i < o->refunds.size(); ++i) {
            const refund_record& r = o->refunds[i];
            if (r.status == refund_status::success && in_day(r.success_at, day_start))
                lines.push_back(refund_line(*o, r, fees[i]));
        }
    }
    std::stable_sort(lines.begin(), lines.end(), [](const trade_line& a, const trade_line& b) {
        return a.at != b.at ? a.at < b.at : !a.refund && b.refund;
    });
    std::vector<std::string_view> header;
    for (const auto& [name, value] : payment_line(order_record{}).values) {
        (void)value;
        if (column_of(type, name)) header.push_back(name);
    }
    std::vector<std::vector<std::string>> rows;
    std::int64_t settlement = 0, refunded = 0, fees = 0, ordered = 0, requested = 0;
    for (const auto& l : lines) {
        std::vector<std::string> row;
        for (const auto& [name, value] : l.values)
            if (column_of(type, name)) row.push_back(value);
        rows.push_back(std::move(row));
        settlement += l.settlement;
        refunded += l.refund_amount;
        fees += l.fee;
        ordered += l.order_amount;
        requested += l.requested;
    }
    const std::string count = count_text(static_cast<std::int64_t>(lines.size()), style);
    if (type == bill::trade_bill_type::success)
        return assemble(
            header, rows, {"总交易单数", "应结订单总金额", "手续费总金额", "订单总金额"},
            {count, bill::format_yuan(settlement), bill::format_yuan(fees), bill::format_yuan(ordered)},
            style);
    return assemble(header, rows,
                    {"总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额",
                     "订单总金额", "申请退款总金额"},
                    {count, bill::format_yuan(settlement), bill::format_yuan(refunded), "0.00",
                     bill::format_yuan(fees), bill::format_yuan(ordered), bill::format_yuan(requested)},
                    style);
}

std::string fundflow_bill(const std::vector<const order_record*>& orders, std::string_view mchid,
                          std::int64_t day_start, const bill_style& style, std::int64_t fee_adjustment_fen) {
    std::int64_t balance = opening_balance_fen;
    std::vector<std::vector<std::string>> rows;
    std::int64_t income_rows = 0, income = 0, expense_rows = 0, expense = 0;
    const std::string day = beijing_compact(day_start).substr(0, 8);
    for (const movement& m : movements_of(orders, day_start + day_seconds)) {
        balance += m.income ? m.amount : -m.amount;
        if (m.at < day_start) continue;
        (m.income ? income_rows : expense_rows) += 1;
        (m.income ? income : expense) += m.amount;
        char flow[16];
        std::snprintf(flow, sizeof flow, "%010zu", rows.size() + 1);
        rows.push_back({beijing_spaced(m.at), m.business_id, std::string(mchid) + day + flow, m.name, m.name,
                        m.income ? "收入" : "支出", bill::format_yuan(m.amount), bill::format_yuan(balance),
                        "system", m.remark, m.voucher});
    }
    if (fee_adjustment_fen != 0) {
        const bool debit = fee_adjustment_fen > 0;
        const std::int64_t amount = debit ? fee_adjustment_fen : -fee_adjustment_fen;
        balance += debit ? -amount : amount;
        (debit ? expense_rows : income_rows) += 1;
        (debit ? expense : income) += amount;
        char flow[16];
        std::snprintf(flow, sizeof flow, "%010zu", rows.size() + 1);
        rows.push_back({beijing_spaced(day_start + day_seconds - 1), "", std::string(mchid) + day + flow,
                        "手续费调整", "手续费调整", debit ? "支出" : "收入", bill::format_yuan(amount),
                        bill::format_yuan(balance), "system", "", ""});
    }
    const auto n = static_cast<std::int64_t>(rows.size());
    return assemble({"记账时间", "微信支付业务单号", "资金流水单号", "业务名称", "业务类型", "收支类型",
                     "收支金额(元)", "账户结余(元)", "资金变更提交申请人", "备注", "业务凭证号"},
                    rows, {"资金流水总笔数", "收入笔数", "收入金额", "支出笔数", "支出金额"},
                    {count_text(n, style), count_text(income_rows, style), bill::format_yuan(income),
                     count_text(expense_rows, style), bill::format_yuan(expense)},
                    style);
}

std::optional<bill_corruption> parse_corruption(std::string_view text) {
    if (text == "none") return bill_corruption::none;
    if (text == "flip_digit") return bill_corruption::flip_digit;
    if (text == "truncate") return bill_corruption::truncate;
    return std::nullopt;
}

std::string corrupt(std::string text, bill_corruption c) {
    if (c == bill_corruption::truncate) return text.substr(0, text.size() / 2);
    if (c == bill_corruption::flip_digit) {
        const auto at = text.find_last_of("0123456789");
        if (at != std::string::npos) text[at] = static_cast<char>('0' + (text[at] - '0' + 1) % 10);
    }
    return text;
}

std::string gzip_compress(std::string_view bytes) {
    z_stream z{};
    // 15 window bits + 16: a gzip wrapper with a minimal header.
    if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        throw std::runtime_error("deflateInit2 failed");
    std::string out(deflateBound(&z, static_cast<uLong>(bytes.size())) + 32, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
    z.avail_in = static_cast<uInt>(bytes.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    const int rc = deflate(&z, Z_FINISH);
    out.resize(z.total_out);
    deflateEnd(&z);
    if (rc != Z_STREAM_END) throw std::runtime_error("deflate did not finish");
    return out;
}

}  // namespace wxrecon::sim
