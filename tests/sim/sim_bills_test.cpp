// wxpay-sim's daily bills through the APIv3 apply + download the daemon uses (core/wechat/pay_client): the
// files parse with the daemon's parser and agree with the truth ledger (payments, refunds, coupons, the fee
// rule, a payment half a second before midnight, a hand payment, unannounced refunds), the fund-flow bill's
// rows carry the ids the reconciliation matches on, and every refusal of docs/protocol-notes.md §6.1–6.3.
#include "sim_bills_support.hpp"

namespace wxrecon::testing::bills {
namespace {

using wechat::call_outcome;

class SimBillsV3 : public SimBills {
protected:
    // The Beijing day 2026-03-14 of merchant 0, with its neighbours.
    void make_day() {
        pay(0, "BILL-A", 12800, "2026-03-14T09:12:05+08:00");      // fee 76.8 fen -> 77
        pay(0, "BILL-B", 990, "2026-03-14T10:03:47+08:00");        // 5.94 -> 6
        pay(0, "BILL-C", 2500, "2026-03-14T14:45:12+08:00", 500);  // settles 2000: fee 12
        pay(0, "BILL-D", 1, "2026-03-14T21:58:40+08:00");          // 0.006 -> 0
        pay(0, "BILL-E", 250, "2026-03-14T22:00:00+08:00");        // 1.5 -> 2 (half up)
        pay(0, "BILL-F", 100, "2026-03-14T23:59:59.5+08:00");      // still the 14th: fee 1
        pay(0, "BILL-G", 700, "2026-03-15T00:00:00+08:00");        // the 15th
        pay(0, "BILL-J", 1000, "2026-03-13T20:00:00+08:00");       // the 13th, refunded on the 14th
        control("/sim/hand-payment", json_object()
                                         .add("mchid", mchid(0))
                                         .add("out_trade_no", "BILL-HAND")
                                         .add("amount", 5000)
                                         .add("at", "2026-03-14T12:00:00+08:00")
                                         .str());                      // fee 30
        refund(0, "BILL-B", 990, "2026-03-14T16:20:31+08:00", false);  // fee 6 back
        refund(0, "BILL-A", 3000, "2026-03-14T18:05:09+08:00");        // fee 18 back
        refund(0, "BILL-J", 1000, "2026-03-14T13:00:00+08:00");        // fee 6 back
    }
    // The fee a refund hands back at 0.60 %, in the parser's 1/100000 yuan.
    static std::int64_t fee_back(std::int64_t fen) { return (fen * 60 + 5000) / 10000 * 1000; }
    std::map<std::string, std::string> truth_transaction_ids() {
        std::map<std::string, std::string> out;
        for (const auto& [key, o] : sim_truth(port())) out[key.substr(key.find('/') + 1)] = o.transaction_id;
        return out;
    }
};

TEST_F(SimBillsV3, TradeBillAgreesWithTheTruth) {
    make_day();
    for (const bool gzip : {true, false}) {
        const std::string text =
            get_v3(0, std::string("/v3/bill/tradebill?bill_date=2026-03-14&bill_type=ALL") +
                          (gzip ? "&tar_type=GZIP" : ""));
        const auto p = parse(text);
        ASSERT_TRUE(p.totals.has_value()) << p.totals.err().message << "\n" << text;
        const auto& t = std::get<bill::trade_totals>(*p.totals);
        EXPECT_EQ(t.rows, 10);
        EXPECT_EQ(t.payment_rows, 7);
        EXPECT_EQ(t.refund_rows, 3);
        EXPECT_EQ(t.settlement_total_fen, 12800 + 990 + 2000 + 1 + 250 + 100 + 5000);
        EXPECT_EQ(t.coupon_total_fen, 500);
        EXPECT_EQ(t.order_total_fen, 12800 + 990 + 2500 + 1 + 250 + 100 + 5000);
        EXPECT_EQ(t.refund_total_fen, 990 + 3000 + 1000);
        EXPECT_EQ(t.refund_requested_total_fen, 990 + 3000 + 1000);
        // Fees per payment rounded half up to the fen, written with 5 decimals; refunds hand theirs back.
        EXPECT_EQ(t.fee_total, (77 + 6 + 12 + 0 + 2 + 1 + 30 - 6 - 18 - 6) * 1000);
    }
    // Neither the hand payment nor the refund made at WeChat only was announced.
    const std::string deliveries = http_get(port(), "/sim/deliveries").body;
    EXPECT_EQ(deliveries.find("\"out_trade_no\":\"BILL-HAND\""), std::string::npos);
    EXPECT_EQ(deliveries.find("RBILL-B-1"), std::string::npos);
    EXPECT_NE(deliveries.find("RBILL-A-1"), std::string::npos);
    const auto p = parse(get_v3(0, "/v3/bill/tradebill?bill_date=2026-03-14&bill_type=ALL"));
    auto ids = truth_transaction_ids();
    std::map<std::string, bill::trade_row> payments;
    for (const auto& r : p.trade)
        if (r.kind == bill::trade_row_kind::payment) payments[r.out_trade_no] = r;
    ASSERT_EQ(payments.count("BILL-F"), 1u) << "paid at 23:59:59.5 Beijing: the 14th";
    EXPECT_EQ(payments["BILL-F"].trade_time, beijing(2026, 3, 14, 23, 59, 59));
    EXPECT_EQ(payments.count("BILL-G"), 0u);
    EXPECT_EQ(payments.count("BILL-J"), 0u);
    ASSERT_EQ(payments.count("BILL-HAND"), 1u) << "a payment nobody announced is billed";
    EXPECT_EQ(payments["BILL-HAND"].transaction_id, ids["BILL-HAND"]);
    EXPECT_EQ(payments["BILL-A"].fee, 77000);
    EXPECT_EQ(payments["BILL-A"].fee_rate, "0.60%");
    EXPECT_EQ(payments["BILL-E"].fee, 2000);
    EXPECT_EQ(payments["BILL-C"].settlement_amount_fen, 2000);
    EXPECT_EQ(payments["BILL-C"].coupon_amount_fen, 500);
    EXPECT_EQ(payments["BILL-C"].order_amount_fen, 2500);
    for (const auto& [no, r] : payments) EXPECT_EQ(r.transaction_id, ids[no]) << no;
    for (const auto& r : p.trade) {
        if (r.kind != bill::trade_row_kind::refund) continue;
        EXPECT_EQ(r.trade_state, "REFUND");
        EXPECT_EQ(r.refund_status, "SUCCESS");
        EXPECT_EQ(r.transaction_id, ids[r.out_trade_no]);
        EXPECT_EQ(r.fee, -fee_back(r.refund_amount_fen)) << r.out_trade_no;
    }

    // SUCCESS and REFUND bills split the same day.
    const auto s =
        parse(get_v3(0, "/v3/bill/tradebill?bill_date=2026-03-14&bill_type=SUCCESS&tar_type=GZIP"));
    ASSERT_TRUE(s.totals.has_value()) << s.totals.err().message;
    EXPECT_EQ(std::get<bill::trade_totals>(*s.totals).bill_type, bill::trade_bill_type::success);
    EXPECT_EQ(std::get<bill::trade_totals>(*s.totals).rows, 7);
    const auto r = parse(get_v3(0, "/v3/bill/tradebill?bill_date=2026-03-14&bill_type=REFUND"));
    ASSERT_TRUE(r.totals.has_value()) << r.totals.err().message;
    EXPECT_EQ(std::get<bill::trade_totals>(*r.totals).rows, 3);
    for (const auto& row : r.trade) EXPECT_TRUE(row.refund_succeeded_at.has_value());
}

TEST_F(SimBillsV3, FundFlowBillCarriesTheIdsTheReconciliationMatches) {
    make_day();
    const auto trade = parse(get_v3(0, "/v3/bill/tradebill?bill_date=2026-03-14"));
    for (const std::string gz : {"&tar_type=GZIP", ""}) {
        const std::string text =
            get_v3(0, "/v3/bill/fundflowbill?bill_date=2026-03-14&account_type=BASIC" + gz);
        const auto f = parse(text);
        ASSERT_TRUE(f.totals.has_value()) << f.totals.err().message << "\n" << text;
        const auto& t = std::get<bill::fundflow_totals>(*f.totals);
        EXPECT_EQ(t.rows, 19);
        EXPECT_EQ(t.income_rows, 10);
        EXPECT_EQ(t.expense_rows, 9);
        EXPECT_EQ(t.income_total_fen, 21141 + 30);
        EXPECT_EQ(t.expense_total_fen, 128 + 4990);
        EXPECT_EQ(t.balance_breaks, 0);
        // From 10000.00, the 13th's payment and fee, then the 14th.
        ASSERT_FALSE(f.fund.empty());
        EXPECT_EQ(f.fund.back().balance_fen, 1000000 + 1000 - 6 + 21171 - 5118);
        std::int64_t fees = 0;
        for (const auto& row : f.fund) {
            const bool fee = row.business_type.find("手续费") != std::string::npos;
            if (fee) {
                fees += row.direction == bill::fund_direction::expense ? row.amount_fen : -row.amount_fen;
                continue;
            }
            bool matched = false;
            for (const auto& tr : trade.trade) {
                if (row.direction == bill::fund_direction::income)
                    matched |= tr.kind == bill::trade_row_kind::payment &&
                               tr.transaction_id == row.business_order_id &&
                               tr.settlement_amount_fen == row.amount_fen;
                else
                    matched |= tr.kind == bill::trade_row_kind::refund &&
                               tr.refund_id == row.business_order_id &&
                               tr.refund_amount_fen == row.amount_fen;
            }
            EXPECT_TRUE(matched) << row.business_type << " " << row.business_order_id;
        }
        EXPECT_EQ(fees * 1000, std::get<bill::trade_totals>(*trade.totals).fee_total);
    }
    // The other accounts saw no movement.
    const auto ops = apply(0, "/v3/bill/fundflowbill?bill_date=2026-03-14&account_type=OPERATION");
    EXPECT_EQ(ops.code, "NO_STATEMENT_EXIST");
}

TEST_F(SimBillsV3, FeeRateIsTheOneOfThePaymentsTime) {
    control("/sim/fee-rate", R"({"mchid":")" + mchid(0) + R"(","fee_rate_bp":38})");
    pay(0, "RATE-1", 10000, "2026-03-14T08:00:00+08:00");  // 38.0 fen
    control("/sim/fee-rate", R"({"fee_rate_bp":125})");
    pay(0, "RATE-2", 1234, "2026-03-14T08:00:01+08:00");  // 15.425 -> 15
    const auto p = parse(get_v3(0, "/v3/bill/tradebill?bill_date=2026-03-14&bill_type=SUCCESS"));
    ASSERT_EQ(p.trade.size(), 2u);
    EXPECT_EQ(p.trade[0].fee, 38000);
    EXPECT_EQ(p.trade[0].fee_rate, "0.38%");
    EXPECT_EQ(p.trade[1].fee, 15000);
    EXPECT_EQ(p.trade[1].fee_rate, "1.25%");
}

TEST_F(SimBillsV3, DatesOutsideTheWindowAreRefused) {
    pay(0, "WINDOW-1", 100, "2025-12-15T10:00:00+08:00");
    for (const std::string day : {"2026-3-14", "2026-02-30", "2026-03-15", "2026-03-20", "2025-12-14"}) {
        const auto a = apply(0, "/v3/bill/tradebill?bill_date=" + day + "&bill_type=ALL");
        EXPECT_EQ(a.status, 400) << day;
        EXPECT_EQ(a.code, "PARAM_ERROR") << day;
        const auto f = apply(0, "/v3/bill/fundflowbill?bill_date=" + day);
        EXPECT_EQ(f.code, "PARAM_ERROR") << day;
    }
    EXPECT_EQ(apply(0, "/v3/bill/tradebill?bill_date=2025-12-15").outcome, call_outcome::ok)
        << "3 months back";
    EXPECT_EQ(apply(0, "/v3/bill/tradebill?bill_date=2026-03-14&bill_type=NOPE").code, "PARAM_ERROR");
    EXPECT_EQ(apply(0, "/v3/bill/tradebill?bill_date=2026-03-14&tar_type=ZIP").code, "PARAM_ERROR");
    const auto none = apply(0, "/v3/bill/tradebill?bill_date=2026-03-10");
    EXPECT_EQ(none.status, 400);
    EXPECT_EQ(none.code, "NO_STATEMENT_EXIST");
    EXPECT_EQ(apply(0, "/v3/bill/fundflowbill?bill_date=2026-03-10").code, "NO_STATEMENT_EXIST");
}

TEST_F(SimBillsV3, YesterdayIsBeingMadeUntilTenAndWhileHeld) {
    pay(0, "MADE-1", 100, "2026-03-14T10:00:00+08:00");
    set_beijing(2026, 3, 15, 9, 59, 59);
    const auto early = apply(0, "/v3/bill/tradebill?bill_date=2026-03-14");
    EXPECT_EQ(early.status, 400);
    EXPECT_EQ(early.code, "STATEMENT_CREATING");
    EXPECT_EQ(apply(0, "/v3/bill/fundflowbill?bill_date=2026-03-14").code, "STATEMENT_CREATING");
    set_beijing(2026, 3, 15, 10, 0, 0);
    EXPECT_EQ(apply(0, "/v3/bill/tradebill?bill_date=2026-03-14").outcome, call_outcome::ok);

    control("/sim/bill-creating",
            R"({"mchid":")" + mchid(0) + R"(","bill":"trade","bill_date":"2026-03-14","requests":2})");
    for (int i = 0; i < 2; ++i)
        EXPECT_EQ(apply(0, "/v3/bill/tradebill?bill_date=2026-03-14").code, "STATEMENT_CREATING") << i;
    EXPECT_EQ(apply(0, "/v3/bill/fundflowbill?bill_date=2026-03-14").outcome, call_outcome::ok)
        << "trade only";
    EXPECT_EQ(apply(0, "/v3/bill/tradebill?bill_date=2026-03-14").outcome, call_outcome::ok)
        << "after 2 asks";
}

TEST_F(SimBillsV3, DownloadLinksExpireAndBelongToTheirMerchant) {
    pay(0, "LINK-1", 100, "2026-03-14T10:00:00+08:00");
    const auto a = apply(0, "/v3/bill/tradebill?bill_date=2026-03-14&tar_type=GZIP");
    ASSERT_EQ(a.outcome, call_outcome::ok) << a.body;
    const auto link = bill::parse_bill_link(a.body);
    ASSERT_TRUE(link.has_value());
    EXPECT_TRUE(link->download_url.starts_with(base() + "/v3/billdownload/file?token="))
        << link->download_url;

    const auto other = fetch(2, link->download_url);
    EXPECT_EQ(other.call.status, 403);
    EXPECT_EQ(other.call.code, "NO_AUTH");
    const auto unknown = fetch(0, base() + "/v3/billdownload/file?token=nope");
    EXPECT_EQ(unknown.call.status, 400);
    EXPECT_EQ(unknown.call.code, "INVALID_REQUEST");
    clock_.advance(299'000'000);
    EXPECT_EQ(fetch(0, link->download_url).call.outcome, call_outcome::ok) << "within 5 minutes";
    clock_.advance(1'000'000);
    const auto expired = fetch(0, link->download_url);
    EXPECT_EQ(expired.call.status, 400);
    EXPECT_EQ(expired.call.code, "INVALID_REQUEST");

    // The download is signed by the merchant like any call: a wrong key is refused.
    auto wrong = view_of(*keys_, 0, base());
    wrong->access.merchant_key = *crypto::generate_rsa_key();
    const auto again = apply(0, "/v3/bill/tradebill?bill_date=2026-03-14");
    const auto link2 = bill::parse_bill_link(again.body);
    ASSERT_TRUE(link2.has_value());
    const auto unsigned_right = run([&](wechat::pay_client& c) {
        return c.v3_download(
            wrong->access, link2->download_url,
            (std::filesystem::temp_directory_path() / ("sim-bill-" + crypto::random_alnum(8))).string());
    });
    EXPECT_EQ(unsigned_right.status, 401);
    EXPECT_EQ(unsigned_right.code, "SIGN_ERROR");
}

}  // namespace
}  // namespace wxrecon::testing::bills
