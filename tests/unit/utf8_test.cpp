// UTF-8 as PostgreSQL's text accepts it (base/utf8.hpp): every class of malformed input is found at its
// first byte, the edges of each valid range pass, and what is written as JSON is always accepted by jsonb.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/json_writer.hpp"
#include "base/utf8.hpp"

namespace wxrecon {
namespace {

TEST(Utf8, EveryEdgeOfEachValidRangePasses) {
    const std::vector<std::string> valid = {
        "",
        "plain ASCII \x7F",
        "\xC2\x80",                   // U+0080, the first two-byte character
        "\xDF\xBF",                   // U+07FF
        "\xE0\xA0\x80",               // U+0800, the first three-byte character
        "\xED\x9F\xBF",               // U+D7FF, just below the surrogates
        "\xEE\x80\x80",               // U+E000, just above them
        "\xEF\xBF\xBF",               // U+FFFF
        "\xF0\x90\x80\x80",           // U+10000, the first four-byte character
        "\xF4\x8F\xBF\xBF",           // U+10FFFF, the last code point
        "支付成功 \xF0\x9F\x98\x80",  // CJK and an emoji
    };
    for (const auto& s : valid) {
        EXPECT_TRUE(is_valid_utf8(s)) << s;
        EXPECT_EQ(sanitize_utf8(s, 1024), s);
    }
}

TEST(Utf8, EveryClassOfMalformedInputIsFoundAtItsFirstByte) {
    struct bad_case {
        const char* name;
        std::string text;
        std::size_t offset;
    };
    const std::vector<bad_case> cases = {
        {"surrogate (high)", "ab\xED\xA0\x80", 2},
        {"surrogate (low)", "\xED\xBF\xBF", 0},
        {"overlong two-byte (C0)", "\xC0\xAF", 0},
        {"overlong two-byte (C1)", "\xC1\xBF", 0},
        {"overlong three-byte", "x\xE0\x80\xAF", 1},
        {"overlong three-byte (U+07FF)", "\xE0\x9F\xBF", 0},
        {"overlong four-byte", "\xF0\x80\x80\xAF", 0},
        {"overlong four-byte (U+FFFF)", "\xF0\x8F\xBF\xBF", 0},
        {"past U+10FFFF", "\xF4\x90\x80\x80", 0},
        {"F5 lead byte", "\xF5\x80\x80\x80", 0},
        {"FF byte", "\xFF", 0},
        {"stray continuation", "ok\x80", 2},
        {"cut short at the end", "\xE4\xB8", 0},
        {"cut short by ASCII", "\xE4\xB8x", 0},
        {"bad continuation", "\xF0\x90\x28\x80", 0},
        {"NUL", std::string("a\0b", 3), 1},
    };
    for (const auto& c : cases) {
        EXPECT_FALSE(is_valid_utf8(c.text)) << c.name;
        EXPECT_EQ(first_bad_utf8(c.text), c.offset) << c.name;
        const std::string clean = sanitize_utf8(c.text, 1024);
        EXPECT_TRUE(is_valid_utf8(clean)) << c.name;
        EXPECT_NE(clean.find("\xEF\xBF\xBD"), std::string::npos) << c.name;
    }
}

TEST(Utf8, JsonStringsNeverCarryWhatJsonbRefuses) {
    std::string out;
    append_json_string(out, std::string("a\0b\xED\xA0\x80"
                                        "c\x01",
                                        8));
    // NUL would be \u0000 (jsonb refuses it), each byte of the surrogate one replacement character.
    EXPECT_EQ(out, "\"a\\ufffdb\\ufffd\\ufffd\\ufffdc\\u0001\"");
    EXPECT_TRUE(is_valid_utf8(out));
}

TEST(Utf8, SanitizingCutsOnACharacterBoundary) {
    EXPECT_EQ(sanitize_utf8("ab支付", 4), "ab");  // 支 needs three bytes: it does not fit after "ab"
    EXPECT_EQ(sanitize_utf8("ab支付", 5), "ab支");
}

}  // namespace
}  // namespace wxrecon
