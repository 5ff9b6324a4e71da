// When bills are fetched: the Beijing day before, at bills.fetch_at, only days WeChat Pay still keeps.
#include <gtest/gtest.h>

#include "workflow/bill_fetcher.hpp"
#include "workflow/bill_schedule.hpp"

namespace wxrecon::workflow {
namespace {

constexpr std::int64_t dec_2_2026_0130_utc = 1796175000;  // 2026-12-02 01:30 UTC = 09:30 Beijing

TEST(BillSchedule, PreviousDayIsBeijings) {
    EXPECT_EQ(bill_fetcher::previous_beijing_day(dec_2_2026_0130_utc), "2026-12-01");
    // 2026-12-01 16:00 UTC is already 2026-12-02 00:00 in Beijing.
    EXPECT_EQ(bill_fetcher::previous_beijing_day(dec_2_2026_0130_utc - 9 * 3600 - 1800), "2026-12-01");
    EXPECT_EQ(bill_fetcher::previous_beijing_day(dec_2_2026_0130_utc - 9 * 3600 - 1801), "2026-11-30");
}

TEST(BillSchedule, OnlyDaysWeChatPayKeepsAreFetchable) {
    EXPECT_TRUE(bill_fetcher::fetchable("2026-12-01", dec_2_2026_0130_utc));
    EXPECT_FALSE(bill_fetcher::fetchable("2026-12-02", dec_2_2026_0130_utc)) << "today is not billed yet";
    EXPECT_FALSE(bill_fetcher::fetchable("2027-01-01", dec_2_2026_0130_utc));
    EXPECT_TRUE(bill_fetcher::fetchable("2026-09-02", dec_2_2026_0130_utc)) << "3 months back";
    EXPECT_FALSE(bill_fetcher::fetchable("2026-09-01", dec_2_2026_0130_utc));
    EXPECT_FALSE(bill_fetcher::fetchable("2026-02-30", dec_2_2026_0130_utc));
    EXPECT_FALSE(bill_fetcher::fetchable("2026-12-1", dec_2_2026_0130_utc));
    EXPECT_FALSE(bill_fetcher::fetchable("yesterday", dec_2_2026_0130_utc));
}

TEST(BillSchedule, RunsAtFetchAtBeijingTimeOncePerDay) {
    const std::chrono::minutes ten_thirty{10 * 60 + 30};
    // 09:30 Beijing: an hour to wait.
    EXPECT_EQ(bill_schedule::seconds_until_run(ten_thirty, dec_2_2026_0130_utc, false), 3600);
    // 11:00 Beijing, not done yet today: now.
    EXPECT_EQ(bill_schedule::seconds_until_run(ten_thirty, dec_2_2026_0130_utc + 5400, false), 0);
    // 11:00 Beijing, done: tomorrow at 10:30.
    EXPECT_EQ(bill_schedule::seconds_until_run(ten_thirty, dec_2_2026_0130_utc + 5400, true), 86400 - 1800);
}

}  // namespace
}  // namespace wxrecon::workflow
