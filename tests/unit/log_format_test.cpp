// --log-format json: each line one valid JSON object whose fields come from
// the line's key=value pairs, and which text inside a value cannot forge.
#include <gtest/gtest.h>
#include <simdjson.h>

#include "base/encoding.hpp"
#include "base/log_format.hpp"

namespace wxrecon {
namespace {

simdjson::dom::element parse(simdjson::dom::parser& parser, const std::string& line) {
    simdjson::dom::element doc;
    EXPECT_FALSE(parser.parse(line).get(doc)) << "not JSON: " << line;
    return doc;
}

TEST(JsonLogLine, FieldsComeFromKeyValuePairs) {
    simdjson::dom::parser parser;
    const std::string line = json_log_line("2026-11-27T03:00:00.000Z", "info",
                                           "notify: result=accepted api=v3 mchid=1900000109 out_trade_no=007 "
                                           "ms=3.4 detail=\"a \\\"quoted\\\" word\"");
    const auto doc = parse(parser, line);
    EXPECT_EQ(std::string_view(doc["component"]), "notify");
    EXPECT_EQ(std::string_view(doc["result"]), "accepted");
    EXPECT_EQ(std::string_view(doc["mchid"]), "1900000109") << "identifiers stay strings";
    EXPECT_EQ(std::string_view(doc["out_trade_no"]), "007");
    EXPECT_DOUBLE_EQ(double(doc["ms"]), 3.4);
    EXPECT_EQ(std::string_view(doc["detail"]), "a \"quoted\" word");
    EXPECT_EQ(std::string_view(doc["level"]), "info");
    const auto words =
        parse(parser, json_log_line("t", "info", "poll: closed locally mchid=1 (never placed)"));
    EXPECT_EQ(std::string_view(words["event"]), "closed locally (never placed)");
}

TEST(JsonLogLine, HostileValuesNeitherBreakTheLineNorForgeFields) {
    simdjson::dom::parser parser;
    // What a forged notification's header could put into detail=, once log_quote has escaped it.
    const std::string forged = std::string("x\" result=accepted level=debug ms=nan z=");
    const std::string message = "notify: result=rejected ms=1.0 detail=" + log_quote(forged);
    const auto doc = parse(parser, json_log_line("t", "info", message));
    EXPECT_EQ(std::string_view(doc["result"]), "rejected");
    EXPECT_EQ(std::string_view(doc["level"]), "info");
    EXPECT_EQ(std::string_view(doc["detail"]), forged);

    // Unescaped, the same text still yields valid JSON with the first value of each key kept.
    const auto raw =
        parse(parser, json_log_line("t", "info", "notify: result=rejected detail=\"" + forged + "\""));
    EXPECT_EQ(std::string_view(raw["result"]), "rejected");
    EXPECT_EQ(std::string_view(raw["level"]), "info");
    std::string_view ms;
    EXPECT_FALSE(raw["ms"].get(ms)) << "nan is not a JSON number, so it stays a string";
    EXPECT_EQ(ms, "nan");

    for (const char* odd : {"a=\"unterminated", "trailing\\", "=leading", "k=", "k=\"\\", "ms=01", "ms=.5",
                            "ms=-", "\x01\x02 control=\x7f", "中文=值 ms=1e5"})
        parse(parser, json_log_line("t", "warning", odd));
}

TEST(LogQuote, OneLineEscapedAndBounded) {
    EXPECT_EQ(log_quote("a \"b\" \\ c\nd"), "\"a \\\"b\\\" \\\\ c d\"");
    const std::string quoted = log_quote(std::string(1000, 'x'), 300);
    EXPECT_EQ(quoted.size(), 1 + 300 + std::string("…").size() + 1);
    EXPECT_EQ(log_id("ORDER_2026-11|27*1"), "ORDER_2026-11|27*1");  // WeChat Pay's characters stay bare
    EXPECT_EQ(log_id("A1 result=applied\nforged"), "\"A1 result=applied forged\"");
    EXPECT_EQ(log_id(""), "\"\"");
    EXPECT_EQ(log_id(std::string(65, 'a')).front(), '"');
    EXPECT_EQ(log_token(""), "-");
    EXPECT_EQ(log_token("08F1-abc.1:2 x\"y"), "08F1-abc.1:2_x_y");
    EXPECT_EQ(log_token(std::string(100, 'a')).size(), 64u);
}

}  // namespace
}  // namespace wxrecon
