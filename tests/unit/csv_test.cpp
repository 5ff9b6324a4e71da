// CSV for spreadsheets: RFC 4180 quoting, and text from outside that a spreadsheet would run as a formula
// (CSV injection) neutralised with a leading apostrophe.
#include <gtest/gtest.h>

#include "base/csv.hpp"

namespace wxrecon {
namespace {

TEST(Csv, PlainTextIsWrittenAsItIs) {
    EXPECT_EQ(csv_field("ORDER-1"), "ORDER-1");
    EXPECT_EQ(csv_field(""), "");
    EXPECT_EQ(csv_field("咖啡"), "咖啡");
}

TEST(Csv, CommasQuotesAndLineBreaksAreQuoted) {
    EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
    EXPECT_EQ(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    EXPECT_EQ(csv_field("two\nlines"), "\"two\nlines\"");
}

TEST(Csv, FormulasFromOutsideNeverRun) {
    for (const char* formula : {"=HYPERLINK(\"http://x\")", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"})
        EXPECT_EQ(csv_field(formula).find_first_of("=+-@\t\r") == 0, false) << formula;
    EXPECT_EQ(csv_field("=1+1"), "'=1+1");
    EXPECT_EQ(csv_field("=A1,B1"), "\"'=A1,B1\"");
    // Numbers the report writes itself keep their sign.
    EXPECT_EQ(csv_number("-100"), "-100");
}

TEST(Csv, LinesEndWithCrLf) {
    EXPECT_EQ(csv_line({"a", csv_field("b,c"), ""}), "a,\"b,c\",\r\n");
    EXPECT_EQ(csv_line({}), "\r\n");
}

}  // namespace
}  // namespace wxrecon
