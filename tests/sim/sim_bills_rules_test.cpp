// The rules behind wxpay-sim's bills, without a server (docs/protocol-notes.md §6.7): the fee rounded half
// up to the fen, fees handed back never more than was charged, the 3-month window, the damage a test asks
// for, and gzip that the daemon's inflater reads.
#include <gtest/gtest.h>

#include "base/gzip.hpp"
#include "base/time.hpp"
#include "sim_bills.hpp"

namespace wxrecon::sim {
namespace {

std::int64_t day(const char* text) {
    return *beijing_day_start(text);
}

TEST(SimBillRules, FeeIsRoundedHalfUpToTheFen) {
    EXPECT_EQ(fee_fen(12800, 60), 77);  // 76.8
    EXPECT_EQ(fee_fen(250, 60), 2);     // 1.5: the half goes up
    EXPECT_EQ(fee_fen(249, 60), 1);     // 1.494
    EXPECT_EQ(fee_fen(84, 60), 1);      // 0.504
    EXPECT_EQ(fee_fen(83, 60), 0);      // 0.498
    EXPECT_EQ(fee_fen(1, 60), 0);
    EXPECT_EQ(fee_fen(1234, 125), 15);  // 15.425
    EXPECT_EQ(fee_fen(100000000000, 60), 600000000);
    EXPECT_EQ(fee_fen(12345, 0), 0);
}

TEST(SimBillRules, RefundsNeverHandBackMoreFeeThanWasCharged) {
    order_record o;
    o.payer_total = 170;  // fee 1.02 -> 1
    o.fee_rate_bp = 60;
    refund_record half;
    half.amount = 85;  // 0.51 -> 1 each, but only 1 was charged
    half.status = domain::refund_status::success;
    o.refunds = {half, half};
    EXPECT_EQ(returned_fees(o), (std::vector<std::int64_t>{1, 0}));
    o.refunds[0].status = domain::refund_status::closed;  // a refund that failed hands nothing back
    EXPECT_EQ(returned_fees(o), (std::vector<std::int64_t>{0, 1}));
    o.coupon = 70;  // the fee is on what is settled: 100 -> 0.6 -> 1
    EXPECT_EQ(settlement_fen(o), 100);
    EXPECT_EQ(returned_fees(o), (std::vector<std::int64_t>{0, 1}));
}

TEST(SimBillRules, DaysAreBeijingDaysWithinThreeMonths) {
    EXPECT_EQ(day("2026-03-14"), *civil_to_unix(2026, 3, 13, 16, 0, 0));
    EXPECT_FALSE(beijing_day_start("2026-02-29"));
    EXPECT_FALSE(beijing_day_start("2026-3-14"));
    EXPECT_FALSE(beijing_day_start("2026-03-14 "));
    EXPECT_EQ(beijing_midnight_before(day("2026-03-14") + 86399), day("2026-03-14"));
    EXPECT_EQ(beijing_midnight_before(day("2026-03-14") + 86400), day("2026-03-15"));
    EXPECT_EQ(earliest_bill_day(day("2026-03-15") + 3600), day("2025-12-15"));
    EXPECT_EQ(earliest_bill_day(day("2026-05-31")), day("2026-02-28"));  // 31 May - 3 months
    EXPECT_EQ(dashed_date("20260314"), "2026-03-14");
    EXPECT_EQ(dashed_date("2026-03-14"), "");
}

TEST(SimBillRules, DamageAndGzip) {
    EXPECT_EQ(corrupt("a,`1.05\n`2,`0.09\n", bill_corruption::flip_digit), "a,`1.05\n`2,`0.00\n");
    EXPECT_EQ(corrupt("0123456789", bill_corruption::truncate), "01234");
    EXPECT_EQ(corrupt("12", bill_corruption::none), "12");
    const std::string text = "交易时间,公众账号ID\n`2026-03-14 10:00:00,`wx1\n";
    const std::string gz = gzip_compress(text);
    EXPECT_TRUE(has_gzip_magic(gz));
    EXPECT_EQ(gzip_compress(text), gz) << "the same content, the same bytes";
    std::string back;
    gzip_inflater z;
    ASSERT_TRUE(z.feed(gz, [&back](std::string_view piece) -> status {
        back.append(piece);
        return ok;
    }));
    ASSERT_TRUE(z.finish());
    EXPECT_EQ(back, text);
}

}  // namespace
}  // namespace wxrecon::sim
