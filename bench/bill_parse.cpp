// The bill parser alone, in memory: a trade bill of ROWS payment lines (default 1,000,000) is written
// once, then parsed in 64 KiB pieces as a download would arrive; prints rows per second and MB per second.
// Usage: bill_parse [ROWS]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "protocol/bill.hpp"

namespace bill = wxrecon::protocol::bill;

namespace {

std::string make_trade_bill(long rows) {
    std::string text =
        "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
        "付款银行,"
        "货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,"
        "退款状态,"
        "商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\n";
    text.reserve(static_cast<std::size_t>(rows) * 260 + 4096);
    long long fen_total = 0, fee_total = 0;
    char line[512];
    for (long i = 0; i < rows; ++i) {
        const long fen = 100 + i % 9900;
        const long fee = (fen * 60 + 5000) / 10000 * 1000;  // 0.6%, to the fen, written with 5 decimals
        fen_total += fen;
        fee_total += fee;
        std::snprintf(
            line, sizeof line,
            "`2026-11-30 %02ld:%02ld:%02ld,`wx2421b1c4370ec43b,`1900000101,`0,`,`42000000012026113%011ld,"
            "`BENCH%011ld,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`JSAPI,`SUCCESS,`OTHERS,`CNY,`%ld.%02ld,`0.00,`0,"
            "`0,`0.00,`0.00,`,`,`咖啡 大杯,`,`%ld.%05ld,`0.60%%,`%ld.%02ld,`0.00,`\n",
            i / 3600 % 24, i / 60 % 60, i % 60, i, i, fen / 100, fen % 100, fee / 100000, fee % 100000,
            fen / 100, fen % 100);
        text += line;
    }
    text += "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n";
    std::snprintf(line, sizeof line, "`%ld,`%lld.%02lld,`0.00,`0.00,`%lld.%05lld,`%lld.%02lld,`0.00\n", rows,
                  fen_total / 100, fen_total % 100, fee_total / 100000, fee_total % 100000, fen_total / 100,
                  fen_total % 100);
    text += line;
    return text;
}

}  // namespace

int main(int argc, char** argv) {
    const long rows = argc > 1 ? std::atol(argv[1]) : 1000000;
    const std::string text = make_trade_bill(rows);
    long seen = 0;
    bill::row_handlers handlers;
    handlers.trade = [&seen](const bill::trade_row&) -> wxrecon::status {
        ++seen;
        return wxrecon::ok;
    };
    const auto start = std::chrono::steady_clock::now();
    bill::bill_parser parser(handlers, bill::bill_kind::trade);
    constexpr std::size_t piece = 64 * 1024;
    for (std::size_t at = 0; at < text.size(); at += piece) {
        if (auto fed = parser.feed(std::string_view(text).substr(at, piece)); !fed) {
            std::fprintf(stderr, "bill_parse: %s\n", fed.err().message.c_str());
            return 1;
        }
    }
    const auto totals = parser.finish();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!totals || seen != rows) {
        std::fprintf(stderr, "bill_parse: %s\n", totals ? "row count differs" : totals.err().message.c_str());
        return 1;
    }
    std::printf("bill_parse: %ld rows, %.1f MB in %.3f s: %.2f M rows/s, %.0f MB/s\n", rows,
                static_cast<double>(text.size()) / 1e6, seconds, static_cast<double>(rows) / seconds / 1e6,
                static_cast<double>(text.size()) / 1e6 / seconds);
    return 0;
}
