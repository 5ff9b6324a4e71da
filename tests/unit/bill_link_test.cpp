// The answer to an APIv3 bill application (docs/protocol-notes.md §6.1): read strictly, because its
// hash_value is what the downloaded file is checked against.
#include <gtest/gtest.h>

#include "protocol/bill_link.hpp"

namespace wxrecon::protocol::bill {
namespace {

TEST(BillLink, OfficialExampleIsRead) {
    const auto link =
        parse_bill_link(R"({"hash_type":"SHA1","hash_value":"79BB0F45FC4C42234A918000B2668D689E2BDE04",)"
                        R"("download_url":"https://api.mch.weixin.qq.com/v3/billdownload/file?token=xxx"})");
    ASSERT_TRUE(link) << link.err().message;
    EXPECT_EQ(link->hash_value, "79bb0f45fc4c42234a918000b2668d689e2bde04");
    EXPECT_EQ(link->download_url, "https://api.mch.weixin.qq.com/v3/billdownload/file?token=xxx");
}

TEST(BillLink, AnythingElseIsRefusedNamingWhat) {
    const std::string url = R"(,"download_url":"https://api.mch.weixin.qq.com/f")";
    const std::pair<std::string, std::string> cases[] = {
        {"not json", "not a JSON object"},
        {R"({"hash_value":"79bb0f45fc4c42234a918000b2668d689e2bde04")" + url + "}", "no hash_type"},
        {R"({"hash_type":"MD5","hash_value":"79bb0f45fc4c42234a918000b2668d689e2bde04")" + url + "}", "MD5"},
        {R"({"hash_type":"SHA1","hash_value":"79bb0f45")" + url + "}", "40 hex digits"},
        {R"({"hash_type":"SHA1","hash_value":"79bb0f45fc4c42234a918000b2668d689e2bdeZZ")" + url + "}",
         "40 hex digits"},
        {R"({"hash_type":"SHA1","hash_value":"79bb0f45fc4c42234a918000b2668d689e2bde04"})",
         "no download_url"},
    };
    for (const auto& [json, why] : cases) {
        const auto link = parse_bill_link(json);
        ASSERT_FALSE(link) << json;
        EXPECT_EQ(link.err().code, errc::parse_error);
        EXPECT_NE(link.err().message.find(why), std::string::npos) << link.err().message;
    }
}

}  // namespace
}  // namespace wxrecon::protocol::bill
