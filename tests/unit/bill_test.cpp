// Bill files (docs/protocol-notes.md §6): the streaming trade / fund-flow parser on the fixtures in
// tests/data/bills and on broken variants of them, the scalar values, and gzip (core/base/gzip).
#include "protocol/bill.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "base/gzip.hpp"
#include "fixture_files.hpp"

namespace wxrecon::protocol::bill {
namespace {

std::string bill_fixture(std::string_view name) {
    return fixtures::read_data("bills/" + std::string(name));
}

// Replaces the one occurrence of `from` (the test fails if it is missing or not unique).
std::string replace_once(std::string text, std::string_view from, std::string_view to) {
    const std::size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << "not in the text: " << from;
    if (at == std::string::npos) return text;
    EXPECT_EQ(text.find(from, at + 1), std::string::npos) << "more than once in the text: " << from;
    return text.replace(at, from.size(), to);
}

// Everything one parse produced: the rows handed out and the outcome.
struct parsed {
    std::vector<trade_row> trade_rows;
    std::vector<fundflow_row> fund_rows;
    std::optional<result<bill_totals>> outcome;

    const trade_totals& trade() const { return std::get<trade_totals>(outcome->value()); }
    const fundflow_totals& fundflow() const { return std::get<fundflow_totals>(outcome->value()); }
    bool ok() const { return outcome->has_value(); }
    std::string error() const { return ok() ? "(no error)" : outcome->err().message; }
};

// Feeds `text` in chunks of `chunk` bytes (0: all at once).
parsed parse_in_chunks(std::string_view text, std::size_t chunk = 0,
                       std::optional<bill_kind> expected = std::nullopt, parser_limits limits = {}) {
    parsed out;
    row_handlers handlers{
        [&out](const trade_row& row) {
            out.trade_rows.push_back(row);
            return status{ok};
        },
        [&out](const fundflow_row& row) {
            out.fund_rows.push_back(row);
            return status{ok};
        },
    };
    bill_parser parser(std::move(handlers), expected, limits);
    if (chunk == 0) chunk = std::max<std::size_t>(text.size(), 1);
    for (std::size_t at = 0; at < text.size(); at += chunk) {
        if (auto fed = parser.feed(text.substr(at, chunk)); !fed) {
            out.outcome = result<bill_totals>(fed.err());
            return out;
        }
    }
    out.outcome = parser.finish();
    return out;
}

void expect_failure(const std::string& text, std::string_view message_part) {
    const parsed p = parse_in_chunks(text);
    ASSERT_FALSE(p.ok()) << "accepted, expected: " << message_part;
    EXPECT_EQ(p.outcome->err().code, errc::parse_error);
    EXPECT_NE(p.error().find(message_part), std::string::npos)
        << p.error() << "\n  expected: " << message_part;
}

const std::string all_summary_line = "`7.0,`202.91,`39.90,`0.00,`1.22,`207.91,`39.90";

// ---- Values ------------------------------------------------------------------------------------------

TEST(bill_values, yuan_to_fen_exactly) {
    const std::vector<std::pair<std::string, std::int64_t>> good = {
        {"0.01", 1},
        {"0.00", 0},
        {"0", 0},
        {"0.0", 0},  // "0.0": SDK summary line
        {"12", 1200},
        {"128.00", 12800},
        {"9.9", 990},
        {"202.91", 20291},
        {"0.29", 29},
        {"1641.12", 164112},
        {"92233720368547758.07", std::numeric_limits<std::int64_t>::max()},
    };
    for (const auto& [text, fen] : good) {
        const auto parsed = parse_yuan(text);
        ASSERT_TRUE(parsed.has_value()) << text << ": " << parsed.err().message;
        EXPECT_EQ(*parsed, fen) << text;
    }
}

TEST(bill_values, refuses_what_is_not_an_amount) {
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"", "is empty"},
        {"0.001", "more than 2 decimals"},
        {"1.234", "more than 2 decimals"},
        {"-1.00", "sign where none is allowed"},
        {"+1.00", "sign where none is allowed"},
        {"92233720368547758.08", "too large"},
        {"99999999999999999999.00", "too large"},
        {"1.", "is not an amount"},
        {".5", "is not an amount"},
        {"1,000.00", "is not an amount"},
        {"1e3", "is not an amount"},
        {" 1.00", "is not an amount"},
        {"1.00 ", "is not an amount"},
        {"０.01", "is not an amount"},  // full-width digit
        {"01.00", "leading zero"},
    };
    for (const auto& [text, why] : bad) {
        const auto parsed = parse_yuan(text);
        ASSERT_FALSE(parsed.has_value()) << text;
        EXPECT_EQ(parsed.err().code, errc::parse_error);
        EXPECT_NE(parsed.err().message.find(why), std::string::npos) << text << ": " << parsed.err().message;
    }
    EXPECT_EQ(*parse_signed_yuan("-0.15"), -15);
    EXPECT_FALSE(parse_signed_yuan("+0.15").has_value());
}

TEST(bill_values, fees_to_the_hundred_thousandth) {
    EXPECT_EQ(*parse_fee("0.00000"), 0);
    EXPECT_EQ(*parse_fee("0.01000"), 1000);
    EXPECT_EQ(*parse_fee("0.00006"), 6);
    EXPECT_EQ(*parse_fee("0.76800"), 76800);
    EXPECT_EQ(*parse_fee("0"), 0);  // the older samples write a zero fee without decimals
    EXPECT_EQ(*parse_fee("0.08"), 8000);
    EXPECT_EQ(*parse_fee("-0.05940"), -5940);  // a fee returned with a refund
    EXPECT_FALSE(parse_fee("0.000001").has_value());
    EXPECT_FALSE(parse_fee("0.60%").has_value());
    EXPECT_EQ(format_fee(8000), "0.08000");
    EXPECT_EQ(format_fee(121746), "1.21746");
    EXPECT_EQ(format_fee(6), "0.00006");
    EXPECT_EQ(format_fee(0), "0.00000");
    EXPECT_EQ(format_fee(-5940), "-0.05940");
    EXPECT_EQ(format_fee(std::numeric_limits<std::int64_t>::min()), "-92233720368547.75808");
    EXPECT_EQ(format_yuan(20291), "202.91");
    EXPECT_EQ(format_yuan(5), "0.05");
    EXPECT_EQ(format_yuan(-105), "-1.05");
}

TEST(bill_values, counts_with_or_without_a_zero_fraction) {
    EXPECT_EQ(*parse_count("45.0"), 45);  // the SDK fixture's 总交易单数
    EXPECT_EQ(*parse_count("12"), 12);    // the official samples
    EXPECT_EQ(*parse_count("0"), 0);
    EXPECT_EQ(*parse_count("7.00"), 7);
    for (const std::string bad : {"45.5", "45.", "", "-1", "4 5", "1e2", ".0", "99999999999999999999"}) {
        EXPECT_FALSE(parse_count(bad).has_value()) << bad;
    }
}

TEST(bill_values, beijing_times) {
    EXPECT_EQ(*parse_beijing_datetime("2026-03-14 09:12:05"), 1773450725);
    EXPECT_EQ(*parse_beijing_datetime("2019-02-19 18:19:32"), 1550571572);  // the doc's example line
    EXPECT_EQ(*parse_beijing_datetime("1970-01-01 08:00:00"), 0);
    for (const std::string bad : {"2026-03-14T09:12:05", "2026-03-14 09:12", "2026-02-30 00:00:00",
                                  "2026-03-14 24:00:00", "20260314091205", "2026-03-14 09:12:05 ", ""}) {
        EXPECT_FALSE(parse_beijing_datetime(bad).has_value()) << bad;
    }
}

// ---- Trade bills -------------------------------------------------------------------------------------

TEST(trade_bill, all_fixture_with_bom_crlf_and_a_45_0_style_count) {
    const std::string text = bill_fixture("trade_all.csv");
    ASSERT_TRUE(text.starts_with("\xEF\xBB\xBF"));
    ASSERT_NE(text.find("\r\n"), std::string::npos);
    const parsed p = parse_in_chunks(text);
    ASSERT_TRUE(p.ok()) << p.error();
    const trade_totals& t = p.trade();
    EXPECT_EQ(t.bill_type, trade_bill_type::all);
    EXPECT_EQ(t.rows, 7);
    EXPECT_EQ(t.payment_rows, 5);
    EXPECT_EQ(t.refund_rows, 2);
    EXPECT_EQ(t.settlement_total_fen, 20291);
    EXPECT_EQ(t.coupon_total_fen, 1000);
    EXPECT_EQ(t.refund_total_fen, 3990);
    EXPECT_EQ(t.recharge_coupon_refund_total_fen, 0);
    EXPECT_EQ(t.order_total_fen, 20791);
    EXPECT_EQ(t.refund_requested_total_fen, 3990);
    EXPECT_EQ(t.fee_total, 121746);  // 1.21746 yuan; the summary says 1.22
    EXPECT_EQ(format_fee(t.fee_total), "1.21746");

    ASSERT_EQ(p.trade_rows.size(), 7u);
    const trade_row& first = p.trade_rows[0];
    EXPECT_EQ(first.line, 2);
    EXPECT_EQ(first.kind, trade_row_kind::payment);
    EXPECT_EQ(first.trade_time, 1773450725);
    EXPECT_EQ(first.appid, "wxd678efh567hg6787");
    EXPECT_EQ(first.mchid, "1900000109");
    EXPECT_EQ(first.sub_mchid, "0");
    EXPECT_EQ(first.device_info, "POS-01");
    EXPECT_EQ(first.transaction_id, "4200002301202603141234567801");
    EXPECT_EQ(first.out_trade_no, "ORD20260314000101");
    EXPECT_EQ(first.trade_type, "JSAPI");
    EXPECT_EQ(first.bank_type, "CMB_DEBIT");
    EXPECT_EQ(first.currency, "CNY");
    EXPECT_EQ(first.settlement_amount_fen, 12800);
    EXPECT_EQ(first.refund_id, "0");
    EXPECT_EQ(first.description, "拿铁咖啡, 大杯");  // a comma inside a value stays in it
    EXPECT_EQ(first.attach, "table=7");
    EXPECT_EQ(first.fee, 76800);
    EXPECT_EQ(first.fee_rate, "0.60%");
    EXPECT_EQ(first.order_amount_fen, 12800);
    EXPECT_EQ(first.fee_rate_note, "");
    EXPECT_FALSE(first.refund_requested_at.has_value());

    EXPECT_EQ(p.trade_rows[2].attach, "{\"store\":\"S01,S02\"}");
    EXPECT_EQ(p.trade_rows[3].coupon_amount_fen, 500);
    EXPECT_EQ(p.trade_rows[3].order_amount_fen, 2500);
    const trade_row& refund = p.trade_rows[5];
    EXPECT_EQ(refund.kind, trade_row_kind::refund);
    EXPECT_EQ(refund.trade_state, "REFUND");
    EXPECT_EQ(refund.refund_id, "50300903452026031412345678902");
    EXPECT_EQ(refund.out_refund_no, "RF20260314000977");
    EXPECT_EQ(refund.refund_amount_fen, 3000);
    EXPECT_EQ(refund.refund_requested_amount_fen, 3000);
    EXPECT_EQ(refund.refund_type, "ORIGINAL");
    EXPECT_EQ(refund.refund_status, "SUCCESS");
    EXPECT_EQ(refund.description, "生日蛋糕,8寸");
    EXPECT_EQ(p.trade_rows[6].fee, 6);  // 0.00006 yuan
    EXPECT_EQ(p.trade_rows[6].device_info, "");
}

TEST(trade_bill, success_fixture) {
    const parsed p = parse_in_chunks(bill_fixture("trade_success.csv"));
    ASSERT_TRUE(p.ok()) << p.error();
    const trade_totals& t = p.trade();
    EXPECT_EQ(t.bill_type, trade_bill_type::success);
    EXPECT_EQ(t.rows, 5);
    EXPECT_EQ(t.payment_rows, 5);
    EXPECT_EQ(t.refund_rows, 0);
    EXPECT_EQ(t.settlement_total_fen, 20291);
    EXPECT_EQ(t.order_total_fen, 20791);
    EXPECT_EQ(t.refund_total_fen, 0);
    EXPECT_EQ(t.fee_total, 121746);
    EXPECT_EQ(p.trade_rows[0].refund_id, "");  // no such column in a SUCCESS bill
}

TEST(trade_bill, refund_fixture_with_refund_times) {
    const parsed p = parse_in_chunks(bill_fixture("trade_refund.csv"));
    ASSERT_TRUE(p.ok()) << p.error();
    const trade_totals& t = p.trade();
    EXPECT_EQ(t.bill_type, trade_bill_type::refund);
    EXPECT_EQ(t.rows, 2);
    EXPECT_EQ(t.refund_rows, 2);
    EXPECT_EQ(t.payment_rows, 0);
    EXPECT_EQ(t.refund_total_fen, 3990);
    EXPECT_EQ(t.refund_requested_total_fen, 3990);
    ASSERT_EQ(p.trade_rows.size(), 2u);
    EXPECT_EQ(p.trade_rows[0].kind, trade_row_kind::refund);
    ASSERT_TRUE(p.trade_rows[0].refund_succeeded_at.has_value());
    EXPECT_EQ(*p.trade_rows[0].refund_succeeded_at, 1773476445);  // 2026-03-14 16:20:45 Beijing
    EXPECT_EQ(*p.trade_rows[0].refund_requested_at, 1773476431);
    EXPECT_FALSE(p.trade_rows[1].refund_succeeded_at.has_value());  // still PROCESSING
    EXPECT_EQ(p.trade_rows[1].refund_status, "PROCESSING");
}

TEST(trade_bill, the_protocol_docs_example_line) {
    // protocol doc §6.4, the example detail line (from an SDK fixture), with a summary of our own.
    const std::string text =
        "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
        "付款银行,"
        "货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,"
        "退款状态,"
        "商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\n"
        "`2019-02-19 18:19:32,`wxab8acd895ab1638a,`1921000401,`0,`harryma007,`4200000263201902167700134203,"
        "`autotest_20190219181930_76386,`oHkLxt5HnHcBDewv4dLc8xivG1DuE,`JSAPI,`SUCCESS,`OTHERS,`CNY,`0.01,`0."
        "00,"
        "`0,`0,`0.00,`0.00,`,`,`<商品名称>,`,`0.00000,`39.00%,`0.01,`0.00,`\n"
        "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n"
        "`1.0,`0.01,`0.00,`0.0,`0.00,`0.01,`0.00\n";
    const parsed p = parse_in_chunks(text);
    ASSERT_TRUE(p.ok()) << p.error();
    ASSERT_EQ(p.trade_rows.size(), 1u);
    EXPECT_EQ(p.trade_rows[0].trade_time, 1550571572);
    EXPECT_EQ(p.trade_rows[0].description, "<商品名称>");
    EXPECT_EQ(p.trade_rows[0].fee_rate, "39.00%");
    EXPECT_EQ(p.trade().settlement_total_fen, 1);
}

TEST(trade_bill, columns_are_found_by_name_not_position) {
    // The same SUCCESS bill with its first two columns swapped in the header and in every line.
    std::string text =
        "公众账号ID,交易时间,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
        "付款银行,货币种类,应结订单金额,代金券金额,商品名称,商户数据包,手续费,费率,订单金额,费率备注\n"
        "`wxd678efh567hg6787,`2026-03-14 09:12:05,`1900000109,`0,`,`4200002301202603141234567801,"
        "`ORD1,`oX3k,`JSAPI,`SUCCESS,`CFT,`CNY,`1.00,`0.00,`a,b,`,`0.00600,`0.60%,`1.00,`\n"
        "总交易单数,订单总金额,应结订单总金额,手续费总金额\n"
        "`1,`1.00,`1.00,`0.01\n";
    const parsed p = parse_in_chunks(text);
    ASSERT_TRUE(p.ok()) << p.error();
    EXPECT_EQ(p.trade().bill_type, trade_bill_type::success);
    EXPECT_EQ(p.trade_rows[0].trade_time, 1773450725);
    EXPECT_EQ(p.trade_rows[0].appid, "wxd678efh567hg6787");
    EXPECT_EQ(p.trade_rows[0].description, "a,b");
}

TEST(trade_bill, back_ticks_split_values) {
    const std::string base = bill_fixture("trade_success.csv");
    // A back-tick inside a value (not after a comma) stays, and only one leading back-tick is removed.
    std::string text = replace_once(base, "`美式咖啡", "``美式`咖啡");
    parsed p = parse_in_chunks(text);
    ASSERT_TRUE(p.ok()) << p.error();
    EXPECT_EQ(p.trade_rows[1].description, "`美式`咖啡");
    // ",`" inside a value cannot be told from a boundary: the line has one value too many.
    text = replace_once(base, "`美式咖啡", "`美式,`咖啡");
    expect_failure(text, "line 3, column 21: more values than the header's 20 columns");
}

TEST(trade_bill, a_value_without_its_back_tick_is_named_by_line_and_column) {
    const std::string base = bill_fixture("trade_all.csv");
    expect_failure(replace_once(base, "`0,`POS-01,`4200002301202603141234567801",
                                "`0,POS-01,`4200002301202603141234567801"),
                   "line 2, column 5 (设备号): the value does not start with a back-tick");
    expect_failure(replace_once(base, "\r\n`2026-03-14 10:03:47", "\r\n2026-03-14 10:03:47"),
                   "line 3, column 1 (交易时间): the value does not start with a back-tick");
    expect_failure(replace_once(base, ",`128.00,`0.00,`0,`0,", ",128.00,`0.00,`0,`0,"),
                   "line 2, column 13 (应结订单金额): the value does not start with a back-tick");
    // After a free-text column the comma is taken as part of that text, so only the count can tell.
    expect_failure(replace_once(base, ",`table=7", ",table=7"),
                   "line 2: 26 values where the header has 27 columns");
}

TEST(trade_bill, detail_lines_need_the_headers_number_of_values) {
    const std::string base = bill_fixture("trade_all.csv");
    // The last value (费率备注) removed from line 4, then an extra one added.
    expect_failure(replace_once(base, "`45.00,`0.00,`\r\n", "`45.00,`0.00\r\n"),
                   "line 4: 26 values where the header has 27 columns");
    expect_failure(replace_once(base, "`45.00,`0.00,`\r\n", "`45.00,`0.00,`,`x\r\n"),
                   "line 4, column 28: more values than the header's 27 columns");
    // A line cut short, as in a truncated download that happens to end with a line break.
    const std::size_t cut = base.find("`2026-03-14 11:30:00");
    expect_failure(base.substr(0, cut + 60) + "\r\n", "line 4: 5 values where the header has 27 columns");
}

TEST(trade_bill, amounts_that_are_not_exact_fen_are_refused) {
    const std::string base = bill_fixture("trade_all.csv");
    expect_failure(replace_once(base, "`128.00,`0.00,`0,", "`12a.00,`0.00,`0,"),
                   "line 2, column 13 (应结订单金额): \"12a.00\" is not an amount");
    expect_failure(replace_once(base, "`128.00,`0.00,`0,", "`128.001,`0.00,`0,"),
                   "line 2, column 13 (应结订单金额): \"128.001\" has more than 2 decimals");
    expect_failure(replace_once(base, "`128.00,`0.00,`0,", "`-128.00,`0.00,`0,"),
                   "line 2, column 13 (应结订单金额): \"-128.00\" has a sign where none is allowed");
    expect_failure(replace_once(base, "`128.00,`0.00,`0,", "`99999999999999999999.00,`0.00,`0,"),
                   "line 2, column 13 (应结订单金额): \"99999999999999999999.00\" is too large");
    expect_failure(replace_once(base, "`128.00,`0.00,`0,", "`,`0.00,`0,"),
                   "line 2, column 13 (应结订单金额): \"\" is empty where an amount is required");
    expect_failure(replace_once(base, "`0.76800", "`0.768001"),
                   "line 2, column 23 (手续费): \"0.768001\" has more than 5 decimals");
    expect_failure(replace_once(base, "`2026-03-14 09:12:05", "`2026-03-14 9:12:05"),
                   "line 2, column 1 (交易时间): \"2026-03-14 9:12:05\" is not a time yyyy-MM-dd HH:mm:ss");
    expect_failure(replace_once(base, "`JSAPI,`SUCCESS,`CMB_DEBIT", "`JSAPI,`REVOKED,`CMB_DEBIT"),
                   "line 2, column 10 (交易状态): \"REVOKED\" is neither SUCCESS nor REFUND");
}

TEST(trade_bill, running_totals_that_overflow_are_refused) {
    const std::string base = bill_fixture("trade_success.csv");
    std::string text = replace_once(base, "`128.00,`0.00,`拿铁", "`92233720368547758.07,`0.00,`拿铁");
    text = replace_once(text, "`9.90,`0.00,`美式", "`0.01,`0.00,`美式");
    expect_failure(text, "line 3: the running totals overflow");
}

TEST(trade_bill, every_summary_field_is_checked) {
    const std::string base = bill_fixture("trade_all.csv");
    struct mismatch_case {
        std::string summary;
        std::string message;
    };
    const std::vector<mismatch_case> cases = {
        {"`8.0,`202.91,`39.90,`0.00,`1.22,`207.91,`39.90",
         "summary field 总交易单数 (line 10, column 1): the bill says 8.0, its detail lines add up to 7"},
        {"`7.0,`202.92,`39.90,`0.00,`1.22,`207.91,`39.90",
         "summary field 应结订单总金额 (line 10, column 2): the bill says 202.92, its detail lines add up to "
         "202.91"},
        {"`7.0,`202.91,`39.80,`0.00,`1.22,`207.91,`39.90",
         "summary field 退款总金额 (line 10, column 3): the bill says 39.80, its detail lines add up to "
         "39.90"},
        {"`7.0,`202.91,`39.90,`0.01,`1.22,`207.91,`39.90",
         "summary field 充值券退款总金额 (line 10, column 4): the bill says 0.01, its detail lines add up to "
         "0.00"},
        {"`7.0,`202.91,`39.90,`0.00,`1.21,`207.91,`39.90",
         "summary field 手续费总金额 (line 10, column 5): the bill says 1.21, its detail lines add up to "
         "1.21746"},
        {"`7.0,`202.91,`39.90,`0.00,`1.23,`207.91,`39.90", "summary field 手续费总金额"},
        {"`7.0,`202.91,`39.90,`0.00,`1.22,`202.91,`39.90",
         "summary field 订单总金额 (line 10, column 6): the bill says 202.91, its detail lines add up to "
         "207.91"},
        {"`7.0,`202.91,`39.90,`0.00,`1.22,`207.91,`9.90",
         "summary field 申请退款总金额 (line 10, column 7): the bill says 9.90, its detail lines add up to "
         "39.90"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.summary);
        expect_failure(replace_once(base, all_summary_line, c.summary), c.message);
    }
    // The fee total may be written with up to 5 decimals: rounded to what it shows, exact at 5.
    for (const std::string fee : {"1.22", "1.2175", "1.21746"}) {
        const parsed p = parse_in_chunks(
            replace_once(base, all_summary_line, "`7.0,`202.91,`39.90,`0.00,`" + fee + ",`207.91,`39.90"));
        EXPECT_TRUE(p.ok()) << fee << ": " << p.error();
    }
    for (const std::string fee :
         {"1.21747", "1.2174", "1.2", "1", "92233720368547.75807", "-92233720368547.75807"}) {
        const parsed p = parse_in_chunks(
            replace_once(base, all_summary_line, "`7.0,`202.91,`39.90,`0.00,`" + fee + ",`207.91,`39.90"));
        EXPECT_FALSE(p.ok()) << fee;
    }
    // Summary values are typed like detail values.
    expect_failure(replace_once(base, all_summary_line, "`7.5,`202.91,`39.90,`0.00,`1.22,`207.91,`39.90"),
                   "line 10, column 1 (总交易单数): \"7.5\" is not a whole number");
    expect_failure(replace_once(base, all_summary_line, "`7.0,`202.910,`39.90,`0.00,`1.22,`207.91,`39.90"),
                   "line 10, column 2 (应结订单总金额): \"202.910\" has more than 2 decimals");
    expect_failure(replace_once(base, all_summary_line, "`7.0,`202.91,`39.90,`0.00,`1.22,`207.91"),
                   "line 10: 6 values where the header has 7 columns");
}

TEST(trade_bill, a_refund_may_return_its_fee) {
    // A negative 手续费 on a refund row nets against the payments' fees.
    std::string text =
        replace_once(bill_fixture("trade_all.csv"), "`美式咖啡,`,`0.00000", "`美式咖啡,`,`-0.05940");
    text = replace_once(text, all_summary_line, "`7.0,`202.91,`39.90,`0.00,`1.16,`207.91,`39.90");
    const parsed p = parse_in_chunks(text);
    ASSERT_TRUE(p.ok()) << p.error();
    EXPECT_EQ(p.trade().fee_total, 115806);
    EXPECT_EQ(format_fee(p.trade().fee_total), "1.15806");
}

TEST(trade_bill, the_summary_header_must_be_the_bill_types) {
    const std::string base = bill_fixture("trade_success.csv");
    expect_failure(replace_once(base, "总交易单数,应结订单总金额,手续费总金额,订单总金额",
                                "总交易单数,应结订单总金额,手续费总金额"),
                   "the summary header of the SUCCESS trade bill lacks 订单总金额");
    expect_failure(replace_once(base, "总交易单数,应结订单总金额,手续费总金额,订单总金额",
                                "总交易单数,应结订单总金额,手续费总金额,订单总金额,退款总金额"),
                   "column 5: \"退款总金额\" is not a summary field of the SUCCESS trade bill");
    expect_failure(replace_once(base, "总交易单数,应结订单总金额,手续费总金额,订单总金额",
                                "总交易单数,应结订单总金额,应结订单总金额,订单总金额"),
                   "column 3: summary field \"应结订单总金额\" appears twice");
}

TEST(trade_bill, headers_pick_the_format_or_are_refused) {
    const std::string base = bill_fixture("trade_success.csv");
    const std::string header = base.substr(0, base.find('\n'));
    expect_failure(replace_once(base, "货币种类,", "货币种类,币种,"),
                   "line 1, column 13: \"币种\" is not a column of a trade bill");
    expect_failure(
        replace_once(base, ",费率备注\n", "\n"),
        "line 1: the columns are those of no trade bill type (ALL, SUCCESS, REFUND): nearest is SUCCESS, "
        "which lacks column 费率备注");
    expect_failure(replace_once(base, "货币种类,", "货币种类,货币种类,"),
                   "line 1, column 13: column \"货币种类\" appears twice");
    expect_failure(replace_once(base, "应结订单金额,代金券金额", "总金额,代金券或立减优惠金额"),
                   "line 1: the older trade bill layout (column \"总金额\") is not supported");
    expect_failure("date,amount\n`2026-03-14,`1.00\n", "line 1: not a WeChat Pay bill header");
    expect_failure("`" + base, "line 1: a value line where the bill's header line belongs");
    expect_failure("\n" + base, "line 1: empty where the bill's header line belongs");
    expect_failure("", "the file is empty");
    expect_failure(std::string(header) + "\n", "the file ends after line 1 without a summary");
}

TEST(trade_bill, structure_after_the_details) {
    const std::string base = bill_fixture("trade_success.csv");
    const std::size_t summary_header = base.find("总交易单数");
    expect_failure(base.substr(0, summary_header), "the file ends after line 6 without a summary: truncated");
    expect_failure(base.substr(0, base.find('\n', summary_header) + 1),
                   "the file ends after the summary header on line 7, without the summary line");
    expect_failure(replace_once(base, "\n总交易单数", "\n\n总交易单数"),
                   "line 7: an empty line among the detail lines");
    expect_failure(base + "`1,`2\n", "line 9: text after the summary line");
    // Trailing blank lines and a missing final line break are fine.
    EXPECT_TRUE(parse_in_chunks(base + "\n\r\n").ok());
    EXPECT_TRUE(parse_in_chunks(base.substr(0, base.size() - 1)).ok());
    // A bill with no detail lines at all.
    const std::string empty_day =
        base.substr(0, base.find('\n') + 1) +
        "总交易单数,应结订单总金额,手续费总金额,订单总金额\n`0,`0.00,`0.00000,`0.00\n";
    const parsed p = parse_in_chunks(empty_day);
    ASSERT_TRUE(p.ok()) << p.error();
    EXPECT_EQ(p.trade().rows, 0);
}

TEST(trade_bill, invalid_utf8_and_nul_bytes_are_refused) {
    const std::string base = bill_fixture("trade_all.csv");
    expect_failure(replace_once(base, "`早餐套餐", "`早餐\xE5\xA5"),  // a character cut in half
                   "line 4, column 21 (商品名称): invalid UTF-8 at byte 7 of the value");
    expect_failure(replace_once(base, "`早餐套餐", "`\xC0\xAF"),
                   "line 4, column 21 (商品名称): invalid UTF-8 at byte 1");
    expect_failure(replace_once(base, "`早餐套餐", "`\xED\xA0\x80"),
                   "invalid UTF-8 at byte 1");  // a surrogate
    expect_failure(replace_once(base, "`早餐套餐", "`\xF4\x90\x80\x80"),
                   "invalid UTF-8 at byte 1");  // past U+10FFFF
    expect_failure(replace_once(base, "`早餐套餐", std::string("`早\0", 5)),
                   "a NUL byte at byte 4 of the value");
    expect_failure(replace_once(base, "商品名称,", "商品\xFF名称,"),
                   "line 1: invalid UTF-8 at byte 302 of the header line");
}

TEST(trade_bill, overlong_lines_and_too_many_columns_are_refused) {
    const std::string base = bill_fixture("trade_success.csv");
    const std::string long_name(70000, 'x');
    const std::string text = replace_once(base, "`美式咖啡", "`" + long_name);
    for (std::size_t chunk : {0, 1000, 4096, 65536}) {
        const parsed p = parse_in_chunks(text, chunk);
        ASSERT_FALSE(p.ok());
        EXPECT_EQ(p.error(), "line 3: longer than 65536 bytes") << chunk;
    }
    // Without a line break at all the buffer stops at the limit too.
    const parsed endless = parse_in_chunks(std::string(200000, 'a'), 4096);
    EXPECT_EQ(endless.error(), "line 1: longer than 65536 bytes");
    std::string wide_header = "交易时间";
    for (int i = 0; i < 70; ++i) wide_header += ",交易时间";
    expect_failure(wide_header + "\n", "line 1: more than 64 columns");
}

TEST(trade_bill, a_handler_error_stops_the_parse) {
    int rows = 0;
    row_handlers handlers;
    handlers.trade = [&rows](const trade_row&) -> status {
        if (++rows == 2) return make_error(errc::unavailable, "database gone");
        return ok;
    };
    const auto outcome = parse_bill(bill_fixture("trade_all.csv"), handlers);
    ASSERT_FALSE(outcome.has_value());
    EXPECT_EQ(outcome.err().code, errc::unavailable);
    EXPECT_EQ(rows, 2);
}

TEST(trade_bill, the_kind_asked_for_is_enforced) {
    EXPECT_TRUE(parse_in_chunks(bill_fixture("trade_all.csv"), 0, bill_kind::trade).ok());
    const parsed p = parse_in_chunks(bill_fixture("trade_all.csv"), 0, bill_kind::fundflow);
    EXPECT_EQ(p.error(), "line 1: this is a trade bill, not the fund-flow bill asked for");
    const parsed q = parse_in_chunks(bill_fixture("fundflow_basic.csv"), 0, bill_kind::trade);
    EXPECT_EQ(q.error(), "line 1: this is a fund-flow bill, not the trade bill asked for");
}

// ---- Fund-flow bills ---------------------------------------------------------------------------------

TEST(fundflow_bill, fixture_rows_and_totals) {
    const parsed p = parse_in_chunks(bill_fixture("fundflow_basic.csv"));
    ASSERT_TRUE(p.ok()) << p.error();
    const fundflow_totals& f = p.fundflow();
    EXPECT_EQ(f.rows, 12);
    EXPECT_EQ(f.income_rows, 5);
    EXPECT_EQ(f.income_total_fen, 20291);
    EXPECT_EQ(f.expense_rows, 7);
    EXPECT_EQ(f.expense_total_fen, 164112);
    EXPECT_EQ(f.balance_breaks, 0);
    EXPECT_TRUE(f.balance_warnings.empty());
    ASSERT_EQ(p.fund_rows.size(), 12u);
    const fundflow_row& first = p.fund_rows[0];
    EXPECT_EQ(first.line, 2);
    EXPECT_EQ(first.booked_at, 1773450725);
    EXPECT_EQ(first.business_order_id, "4200002301202603141234567801");
    EXPECT_EQ(first.flow_id, "1900000109202603140000000001");
    EXPECT_EQ(first.business_type, "交易");
    EXPECT_EQ(first.direction, fund_direction::income);
    EXPECT_EQ(first.amount_fen, 12800);
    EXPECT_EQ(first.balance_fen, 164835);
    EXPECT_EQ(first.applicant, "system");
    EXPECT_EQ(first.voucher_id, "ORD20260314000101");
    EXPECT_EQ(p.fund_rows[1].direction, fund_direction::expense);
    EXPECT_EQ(p.fund_rows[1].business_name, "扣除交易手续费");
    EXPECT_EQ(p.fund_rows[9].remark, "客户取消, 已协商");
}

TEST(fundflow_bill, the_protocol_docs_example_line) {
    const std::string text =
        "记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,收支金额(元),账户结余(元),"
        "资金变更提交申请人,备注,业务凭证号\n"
        "`2018-02-01 04:21:23,`50000305742018020103387128253,`1900009231201802015884652186,`退款,`退款,`支出,"
        "`0.02,`0.17,`system,`缺货,`REF4200000068201801293084726067\n"
        "资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额\n"
        "`1.0,`0.0,`0.00,`1.0,`0.02\n";
    const parsed p = parse_in_chunks(text);
    ASSERT_TRUE(p.ok()) << p.error();
    EXPECT_EQ(p.fund_rows[0].remark, "缺货");
    EXPECT_EQ(p.fund_rows[0].balance_fen, 17);
    EXPECT_EQ(p.fundflow().expense_total_fen, 2);
}

TEST(fundflow_bill, a_broken_balance_chain_is_reported_not_refused) {
    const std::string base = bill_fixture("fundflow_basic.csv");
    // Line 6's balance is off by a fen: line 6 does not follow from 5, nor line 7 from 6.
    const std::string text = replace_once(base, "`45.00,`1702.42", "`45.00,`1702.43");
    const parsed p = parse_in_chunks(text);
    ASSERT_TRUE(p.ok()) << p.error();
    const fundflow_totals& f = p.fundflow();
    EXPECT_EQ(f.balance_breaks, 2);
    ASSERT_EQ(f.balance_warnings.size(), 2u);
    EXPECT_EQ(f.balance_warnings[0],
              "line 6: 账户结余 1702.43 does not follow from line 5 (1657.42 + 45.00 = 1702.42)");
    EXPECT_EQ(f.balance_warnings[1],
              "line 7: 账户结余 1702.15 does not follow from line 6 (1702.43 - 0.27 = 1702.16)");
    // Only the first max_warnings are kept; all are counted.
    parser_limits limits;
    limits.max_warnings = 1;
    const parsed bounded = parse_in_chunks(text, 0, std::nullopt, limits);
    EXPECT_EQ(bounded.fundflow().balance_breaks, 2);
    EXPECT_EQ(bounded.fundflow().balance_warnings.size(), 1u);
}

TEST(fundflow_bill, errors_name_line_column_or_summary_field) {
    const std::string base = bill_fixture("fundflow_basic.csv");
    expect_failure(replace_once(base, "`提现,`支出", "`提现,`转出"),
                   "line 13, column 6 (收支类型): \"转出\" is neither 收入 nor 支出");
    expect_failure(replace_once(base, "`1600.00,", "`-1600.00,"),
                   "line 13, column 7 (收支金额(元)): \"-1600.00\" has a sign where none is allowed");
    expect_failure(replace_once(base, "`1600.00,", "`1600.005,"),
                   "line 13, column 7 (收支金额(元)): \"1600.005\" has more than 2 decimals");
    expect_failure(replace_once(base, "`12.0,`5.0,", "`13.0,`5.0,"),
                   "summary field 资金流水总笔数 (line 15, column 1): the bill says 13.0, its detail lines "
                   "add up to 12");
    expect_failure(replace_once(base, "`12.0,`5.0,", "`12.0,`6.0,"),
                   "summary field 收入笔数 (line 15, column 2)");
    expect_failure(replace_once(base, "`202.91,`7.0", "`202.90,`7.0"),
                   "summary field 收入金额 (line 15, column 3): the bill says 202.90, its detail lines add "
                   "up to 202.91");
    expect_failure(replace_once(base, "`7.0,`1641.12", "`6.0,`1641.12"),
                   "summary field 支出笔数 (line 15, column 4)");
    expect_failure(replace_once(base, "`7.0,`1641.12", "`7.0,`1641.13"),
                   "summary field 支出金额 (line 15, column 5): the bill says 1641.13, its detail lines add "
                   "up to 1641.12");
    expect_failure(replace_once(base, ",备注,", ","), "line 1: the fund-flow bill header lacks column 备注");
    // A value that lost its back-tick after a column that cannot hold a comma.
    expect_failure(replace_once(base, "`1600.00,`82.14", "`1600.00,82.14"),
                   "line 13, column 8 (账户结余(元)): the value does not start with a back-tick");
}

// ---- Chunking: the same bytes in any pieces give the same result ----------------------------------------

void expect_same_for_every_chunk_size(const std::string& text) {
    const parsed whole = parse_in_chunks(text);
    for (std::size_t chunk = 1; chunk <= text.size(); ++chunk) {
        const parsed split = parse_in_chunks(text, chunk);
        ASSERT_EQ(split.ok(), whole.ok()) << "chunk " << chunk << ": " << split.error();
        if (!whole.ok()) {
            ASSERT_EQ(split.error(), whole.error()) << "chunk " << chunk;
            continue;
        }
        ASSERT_EQ(split.trade_rows.size(), whole.trade_rows.size()) << "chunk " << chunk;
        ASSERT_EQ(split.fund_rows.size(), whole.fund_rows.size()) << "chunk " << chunk;
        for (std::size_t i = 0; i < whole.trade_rows.size(); ++i) {
            const trade_row &a = whole.trade_rows[i], &b = split.trade_rows[i];
            ASSERT_TRUE(
                a.line == b.line && a.trade_time == b.trade_time && a.transaction_id == b.transaction_id &&
                a.description == b.description && a.attach == b.attach && a.fee == b.fee &&
                a.settlement_amount_fen == b.settlement_amount_fen && a.fee_rate_note == b.fee_rate_note)
                << "chunk " << chunk << ", row " << i;
        }
        for (std::size_t i = 0; i < whole.fund_rows.size(); ++i) {
            const fundflow_row &a = whole.fund_rows[i], &b = split.fund_rows[i];
            ASSERT_TRUE(a.line == b.line && a.flow_id == b.flow_id && a.remark == b.remark &&
                        a.amount_fen == b.amount_fen && a.balance_fen == b.balance_fen &&
                        a.voucher_id == b.voucher_id)
                << "chunk " << chunk << ", row " << i;
        }
        if (std::holds_alternative<trade_totals>(whole.outcome->value())) {
            const trade_totals &a = whole.trade(), &b = split.trade();
            ASSERT_TRUE(a.rows == b.rows && a.settlement_total_fen == b.settlement_total_fen &&
                        a.refund_total_fen == b.refund_total_fen && a.fee_total == b.fee_total &&
                        a.order_total_fen == b.order_total_fen)
                << "chunk " << chunk;
        } else {
            const fundflow_totals &a = whole.fundflow(), &b = split.fundflow();
            ASSERT_TRUE(a.rows == b.rows && a.income_total_fen == b.income_total_fen &&
                        a.expense_total_fen == b.expense_total_fen &&
                        a.balance_warnings == b.balance_warnings)
                << "chunk " << chunk;
        }
    }
}

TEST(bill_chunks, every_chunk_size_gives_the_same_rows_and_totals) {
    for (const char* name :
         {"trade_all.csv", "trade_success.csv", "trade_refund.csv", "fundflow_basic.csv"}) {
        SCOPED_TRACE(name);
        expect_same_for_every_chunk_size(bill_fixture(name));
    }
    // A broken chain, so the warnings are compared too.
    expect_same_for_every_chunk_size(
        replace_once(bill_fixture("fundflow_basic.csv"), "`1702.42", "`1702.43"));
}

TEST(bill_chunks, every_chunk_size_gives_the_same_error) {
    const std::string base = bill_fixture("trade_all.csv");
    expect_same_for_every_chunk_size(replace_once(base, "`0,`POS-01,`4200002301202603141234567801",
                                                  "`0,POS-01,`4200002301202603141234567801"));
    expect_same_for_every_chunk_size(
        replace_once(base, all_summary_line, "`7.0,`202.91,`39.90,`0.00,`1.23,`207.91,`39.90"));
    expect_same_for_every_chunk_size(replace_once(base, "`早餐套餐", "`早餐\xE5\xA5"));
    expect_same_for_every_chunk_size(base.substr(0, base.find("总交易单数")));
}

TEST(bill_robustness, damaged_files_are_refused_never_crash) {
    // Seeded damage to every fixture: bytes flipped, dropped, or replaced by the characters the parser
    // cares about. Each outcome is either a parse or a parse_error; nothing throws (run under ASan in CI).
    std::mt19937 random(20260314);
    std::string specials = ",`\r\n.-0\xE5";
    specials.push_back('\0');
    std::size_t refused = 0;
    for (const char* name :
         {"trade_all.csv", "trade_success.csv", "trade_refund.csv", "fundflow_basic.csv"}) {
        const std::string original = bill_fixture(name);
        for (int round = 0; round < 500; ++round) {
            std::string damaged = original;
            const int edits = 1 + static_cast<int>(random() % 4);
            for (int e = 0; e < edits && !damaged.empty(); ++e) {
                const std::size_t at = random() % damaged.size();
                switch (random() % 3) {
                    case 0:
                        damaged[at] = static_cast<char>(random() % 256);
                        break;
                    case 1:
                        damaged.erase(at, 1 + random() % 8);
                        break;
                    default:
                        damaged[at] = specials[random() % specials.size()];
                        break;
                }
            }
            const parsed p = parse_in_chunks(damaged, 1 + random() % 64);
            if (!p.ok()) {
                ++refused;
                EXPECT_EQ(p.outcome->err().code, errc::parse_error) << p.error();
                EXPECT_FALSE(p.error().empty());
            }
        }
    }
    EXPECT_GT(refused, 1500u);  // nearly every damage is caught (some, inside free text, are not damage)
}

// ---- gzip --------------------------------------------------------------------------------------------

std::string gzip_compress(std::string_view plain) {
    z_stream z{};
    EXPECT_EQ(deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    std::string out(deflateBound(&z, static_cast<uLong>(plain.size())) + 64, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(plain.data()));
    z.avail_in = static_cast<uInt>(plain.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
    out.resize(z.total_out);
    deflateEnd(&z);
    return out;
}

// Inflates `compressed` fed in chunks of `chunk` bytes; the pieces handed out are appended together.
result<std::string> gunzip(std::string_view compressed, std::size_t chunk,
                           std::size_t piece_bytes = 64 * 1024, std::size_t* largest_piece = nullptr) {
    gzip_inflater inflater(piece_bytes);
    std::string out;
    const auto sink = [&](std::string_view piece) -> status {
        out.append(piece);
        if (largest_piece) *largest_piece = std::max(*largest_piece, piece.size());
        return ok;
    };
    for (std::size_t at = 0; at < compressed.size(); at += chunk) {
        if (auto fed = inflater.feed(compressed.substr(at, chunk), sink); !fed) return fed.err();
    }
    if (auto ended = inflater.finish(); !ended) return ended.err();
    return out;
}

TEST(gzip, round_trip_in_every_chunk_size_into_the_parser) {
    const std::string plain = bill_fixture("trade_all.csv");
    const std::string compressed = gzip_compress(plain);
    ASSERT_TRUE(has_gzip_magic(compressed));
    EXPECT_FALSE(has_gzip_magic(plain));
    EXPECT_FALSE(has_gzip_magic("\x1f"));
    for (std::size_t chunk = 1; chunk <= compressed.size(); ++chunk) {
        trade_totals totals;
        bill_parser parser;
        gzip_inflater inflater(97);  // small pieces, so a line is cut across several of them
        const auto to_parser = [&parser](std::string_view piece) { return parser.feed(piece); };
        for (std::size_t at = 0; at < compressed.size(); at += chunk) {
            ASSERT_TRUE(inflater.feed(std::string_view(compressed).substr(at, chunk), to_parser).has_value());
        }
        ASSERT_TRUE(inflater.finish().has_value()) << chunk;
        const auto outcome = parser.finish();
        ASSERT_TRUE(outcome.has_value()) << chunk << ": " << outcome.err().message;
        EXPECT_EQ(std::get<trade_totals>(*outcome).fee_total, 121746);
        EXPECT_EQ(inflater.total_out(), plain.size());
        EXPECT_EQ(inflater.total_in(), compressed.size());
    }
}

TEST(gzip, pieces_stay_bounded_whatever_the_ratio) {
    // 20 MB of zeros compress to about 20 KB; out they come in pieces of at most 64 KiB.
    const std::string bomb = gzip_compress(std::string(20'000'000, '0'));
    ASSERT_LT(bomb.size(), 100'000u);
    std::size_t largest = 0;
    const auto inflated = gunzip(bomb, 4096, 64 * 1024, &largest);
    ASSERT_TRUE(inflated.has_value()) << inflated.err().message;
    EXPECT_EQ(inflated->size(), 20'000'000u);
    EXPECT_EQ(largest, 64u * 1024u);
    // Into the parser it is an overlong first line, refused at the line limit.
    bill_parser parser;
    gzip_inflater inflater;
    const auto fed = inflater.feed(bomb, [&parser](std::string_view piece) { return parser.feed(piece); });
    ASSERT_FALSE(fed.has_value());
    EXPECT_EQ(fed.err().message, "line 1: longer than 65536 bytes");
    EXPECT_LE(inflater.total_out(), 2u * 64u * 1024u);  // stopped right there, not after 20 MB
    // A total limit, when one is set.
    gzip_inflater limited(64 * 1024, 1'000'000);
    const auto over = limited.feed(bomb, [](std::string_view) -> status { return ok; });
    ASSERT_FALSE(over.has_value());
    EXPECT_EQ(over.err().message, "gzip: the decompressed data exceeds 1000000 bytes");
}

TEST(gzip, corrupt_truncated_and_concatenated_streams) {
    const std::string plain = bill_fixture("fundflow_basic.csv");
    const std::string compressed = gzip_compress(plain);
    const auto truncated = gunzip(compressed.substr(0, compressed.size() - 10), 100);
    ASSERT_FALSE(truncated.has_value());
    EXPECT_EQ(truncated.err().code, errc::parse_error);
    EXPECT_NE(truncated.err().message.find("ends inside a member"), std::string::npos)
        << truncated.err().message;

    std::string corrupt = compressed;
    corrupt[corrupt.size() - 6] ^= 0x55;  // inside the CRC-32 trailer
    const auto bad_crc = gunzip(corrupt, 100);
    ASSERT_FALSE(bad_crc.has_value());
    EXPECT_NE(bad_crc.err().message.find("gzip: corrupt data"), std::string::npos) << bad_crc.err().message;

    const auto not_gzip = gunzip(plain, 100);
    ASSERT_FALSE(not_gzip.has_value());
    EXPECT_EQ(not_gzip.err().code, errc::parse_error);

    const auto nothing = gunzip("", 1);
    ASSERT_FALSE(nothing.has_value());
    EXPECT_EQ(nothing.err().message, "gzip: no data");

    // Two members one after the other read as one stream, as gunzip(1) does.
    const std::size_t half = plain.size() / 2;
    const auto joined = gunzip(gzip_compress(plain.substr(0, half)) + gzip_compress(plain.substr(half)), 7);
    ASSERT_TRUE(joined.has_value()) << joined.err().message;
    EXPECT_EQ(*joined, plain);
    // Bytes after a member that are not another member are refused.
    EXPECT_FALSE(gunzip(compressed + "trailing", 64).has_value());
}

TEST(gzip, a_file_read_as_stored_and_as_content) {
    const std::string plain = bill_fixture("fundflow_basic.csv");
    std::string compressed = gzip_compress(plain);
    compressed[compressed.size() - 6] ^= 0x55;  // a damaged trailer: only decompression can tell
    const auto path = (std::filesystem::temp_directory_path() / "wxrecon-gzip-read-test.gz").string();
    std::ofstream(path, std::ios::binary) << compressed;
    std::string raw, content;
    const auto append_to = [](std::string& out) {
        return [&out](std::string_view bytes) -> status {
            out.append(bytes);
            return ok;
        };
    };
    // The stored bytes only: handed over whole and as they are, not decompressed (nor checked).
    const auto stored = read_file_content(path, {}, append_to(raw));
    ASSERT_TRUE(stored.has_value()) << stored.err().message;
    EXPECT_EQ(raw, compressed);
    EXPECT_TRUE(stored->gzip);
    EXPECT_EQ(stored->file_bytes, compressed.size());
    // The content: decompressed, and the damage found.
    const auto read = read_file_content(path, append_to(content));
    ASSERT_FALSE(read.has_value());
    EXPECT_EQ(read.err().code, errc::parse_error);
    std::filesystem::remove(path);
}

}  // namespace
}  // namespace wxrecon::protocol::bill
