// RFC 3339 parsing/formatting and civil-date arithmetic (no libc time zone state involved).
#include "base/time.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace wxrecon {
namespace {

struct parse_case {
    std::string text;
    std::int64_t unix;
};

TEST(parse_rfc3339, accepts_offsets_and_fractions) {
    const std::vector<parse_case> cases = {
        {"2018-06-08T10:34:56+08:00", 1528425296},  // docs/protocol-notes.md §0.4 example
        {"2018-06-08T02:34:56Z", 1528425296},
        {"2018-06-08T02:34:56z", 1528425296},
        {"2018-06-08t02:34:56Z", 1528425296},
        {"2018-06-08T02:34:56+00:00", 1528425296},
        {"2018-06-08T02:34:56-00:00", 1528425296},
        {"2018-06-08T10:34:56.123+08:00", 1528425296},  // fraction dropped
        {"2018-06-08T10:34:56.999999999+08:00", 1528425296},
        {"2018-06-07T21:04:56-05:30", 1528425296},
        {"2021-06-24T16:37:26+08:00", 1624523846},  // wechatpay-go notification create_time
        {"1970-01-01T00:00:00Z", 0},
        {"1970-01-01T08:00:00+08:00", 0},
        {"1969-12-31T23:59:59Z", -1},
        {"2024-02-29T20:00:00+08:00", 1709208000},  // leap day
        {"2000-03-01T00:00:00Z", 951868800},
        {"2023-09-19T23:15:58+08:00", 1695136558},
        {"9999-12-31T23:59:59Z", 253402300799},
        {"0000-01-01T00:00:00Z", -62167219200},
    };
    for (const auto& c : cases) {
        const auto parsed = parse_rfc3339(c.text);
        ASSERT_TRUE(parsed.has_value()) << c.text << ": " << parsed.err().message;
        EXPECT_EQ(*parsed, c.unix) << c.text;
    }
}

TEST(parse_rfc3339, rejects_anything_without_a_valid_offset_or_date) {
    const std::vector<std::string> bad = {
        "",
        "2018-06-08",
        "2018-06-08T10:34:56",        // no offset: ambiguous local time
        "2018-06-08T10:34:56.123",    // fraction but no offset
        "2018-06-08 10:34:56+08:00",  // space separator
        "2018-06-08T10:34+08:00",     // no seconds
        "2018-6-08T10:34:56+08:00",   // one-digit month
        "18-06-08T10:34:56+08:00",
        "2018/06/08T10:34:56+08:00",
        "2018-13-08T10:34:56+08:00",  // month 13
        "2018-00-08T10:34:56+08:00",  // month 0
        "2018-06-00T10:34:56+08:00",  // day 0
        "2018-06-31T10:34:56+08:00",  // 31 June
        "2023-02-29T10:34:56+08:00",  // not a leap year
        "2100-02-29T10:34:56+08:00",  // century, not a leap year
        "2018-06-08T24:00:00+08:00",  // hour 24
        "2018-06-08T10:60:56+08:00",
        "2018-06-08T10:34:60+08:00",  // leap second
        "2018-06-08T10:34:56+0800",   // offset without colon
        "2018-06-08T10:34:56+08",
        "2018-06-08T10:34:56+8:00",
        "2018-06-08T10:34:56+24:00",
        "2018-06-08T10:34:56+08:60",
        "2018-06-08T10:34:56.+08:00",  // '.' without digits
        "2018-06-08T10:34:56,5+08:00",
        "2018-06-08T10:34:56+08:00 ",  // trailing space
        "2018-06-08T10:34:56Z+08:00",
        "2018-06-08T10:34:56UTC",
        " 2018-06-08T10:34:56+08:00",
        "+2018-06-08T10:34:56+08:00",
        "2018-06-08T1a:34:56+08:00",
    };
    for (const auto& text : bad) {
        const auto parsed = parse_rfc3339(text);
        ASSERT_FALSE(parsed.has_value()) << '"' << text << "\" parsed as " << *parsed;
        EXPECT_EQ(parsed.err().code, errc::invalid_argument) << text;
        EXPECT_NE(parsed.err().message.find("RFC 3339"), std::string::npos) << parsed.err().message;
    }
}

TEST(format_rfc3339, writes_numeric_offsets) {
    struct format_case {
        std::int64_t unix;
        int offset_minutes;
        std::string text;
    };
    const std::vector<format_case> cases = {
        {1528425296, 480, "2018-06-08T10:34:56+08:00"},
        {0, 480, "1970-01-01T08:00:00+08:00"},
        {0, 0, "1970-01-01T00:00:00+00:00"},
        {-1, 0, "1969-12-31T23:59:59+00:00"},
        {-86400, 0, "1969-12-31T00:00:00+00:00"},
        {-86401, 0, "1969-12-30T23:59:59+00:00"},
        {1528425296, -330, "2018-06-07T21:04:56-05:30"},
        {1709208000, 480, "2024-02-29T20:00:00+08:00"},
        {1709222400 - 1, 480, "2024-02-29T23:59:59+08:00"},
        {1709222400, 480, "2024-03-01T00:00:00+08:00"},
        {253402300799, 0, "9999-12-31T23:59:59+00:00"},
    };
    for (const auto& c : cases) EXPECT_EQ(format_rfc3339(c.unix, c.offset_minutes), c.text) << c.unix;
    EXPECT_EQ(format_rfc3339(1528425296), "2018-06-08T10:34:56+08:00");  // Beijing is the default
}

TEST(format_rfc3339, round_trips_through_parse) {
    for (std::int64_t t = -400LL * 86400 * 365; t < 200LL * 86400 * 365; t += 7919LL * 3607) {
        for (int offset : {480, 0, -330, 345, -720, 840}) {
            const auto parsed = parse_rfc3339(format_rfc3339(t, offset));
            ASSERT_TRUE(parsed.has_value()) << format_rfc3339(t, offset);
            ASSERT_EQ(*parsed, t) << format_rfc3339(t, offset);
        }
    }
}

TEST(civil_to_unix, validates_fields) {
    EXPECT_EQ(civil_to_unix(1970, 1, 1, 0, 0, 0), 0);
    EXPECT_EQ(civil_to_unix(2021, 4, 27, 8, 55, 23), 1619513723);
    EXPECT_EQ(civil_to_unix(2024, 2, 29, 0, 0, 0), 1709164800);
    EXPECT_FALSE(civil_to_unix(2023, 2, 29, 0, 0, 0));
    EXPECT_FALSE(civil_to_unix(2023, 4, 31, 0, 0, 0));
    EXPECT_FALSE(civil_to_unix(2023, 0, 1, 0, 0, 0));
    EXPECT_FALSE(civil_to_unix(2023, 1, 1, -1, 0, 0));
    EXPECT_FALSE(civil_to_unix(10000, 1, 1, 0, 0, 0));
    EXPECT_FALSE(civil_to_unix(-1, 1, 1, 0, 0, 0));
}

TEST(wall_clock, defaults_to_the_system_clock) {
    const std::int64_t before = system_micros();
    const std::int64_t read = wall_clock{}.micros();
    EXPECT_GE(read, before);
    EXPECT_LT(read - before, 60'000'000);
}

TEST(wall_clock, follows_a_manual_clock_it_was_handed) {
    manual_clock manual(1'528'425'296'500'000);
    const wall_clock a = manual.clock(), b = manual.clock();
    EXPECT_EQ(a.micros(), 1'528'425'296'500'000);
    EXPECT_EQ(a.seconds(), 1'528'425'296);
    manual.advance(600'000);
    EXPECT_EQ(b.micros(), 1'528'425'297'100'000);
    EXPECT_EQ(a.seconds(), 1'528'425'297);
    manual.set(0);
    EXPECT_EQ(a.micros(), 0);
}

}  // namespace
}  // namespace wxrecon
