// Base64 (strict), hex, constant-time comparison and ASCII case-insensitive equality.
#include "base/encoding.hpp"
#include "base/percent.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace wxrecon {
namespace {

using namespace std::string_literals;

struct base64_case {
    std::string bytes;
    std::string text;
};

// RFC 4648 section 10 plus binary edge cases.
const std::vector<base64_case> base64_cases = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
    {"\0"s, "AA=="},
    {"\0\0\0"s, "AAAA"},
    {"\xff\xfe\xfd", "//79"},
    {"\xfb\xff", "+/8="},
    {"message", "bWVzc2FnZQ=="},
};

TEST(base64, encodes_rfc4648_vectors) {
    for (const auto& c : base64_cases) EXPECT_EQ(base64_encode(c.bytes), c.text) << c.text;
}

TEST(base64, decodes_rfc4648_vectors) {
    for (const auto& c : base64_cases) {
        const auto decoded = base64_decode(c.text);
        ASSERT_TRUE(decoded.has_value()) << c.text;
        EXPECT_EQ(*decoded, c.bytes) << c.text;
    }
}

TEST(base64, round_trips_every_byte_value_and_length) {
    std::string bytes;
    for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
    for (std::size_t length = 0; length <= bytes.size(); ++length) {
        const std::string input = bytes.substr(bytes.size() - length);
        const std::string text = base64_encode(input);
        EXPECT_EQ(text.size(), (length + 2) / 3 * 4);
        const auto decoded = base64_decode(text);
        ASSERT_TRUE(decoded.has_value()) << length;
        EXPECT_EQ(*decoded, input);
    }
}

TEST(base64, rejects_non_canonical_or_malformed_text) {
    const std::vector<std::string> bad = {
        "Zg",          // missing padding
        "Zg=",         // short padding
        "Zm9",         // length not a multiple of 4
        "Zm9v\n",      // trailing line break
        "Zm9v\r\n",    // CRLF
        " Zm9v",       // leading space
        "Zm 9v",       // inner space
        "Zm9v=",       // padding after a full group
        "Zg==Zg==",    // padding in the middle
        "Z===",        // three padding characters
        "====",        // only padding
        "=Zm9",        // padding first
        "Zh==",        // non-zero bits after the last byte
        "Zm9=",        // non-zero bits after the last byte
        "Zm-v",        // URL-safe alphabet
        "Zm_v",        // URL-safe alphabet
        "Zm9\0"s,      // NUL
        "Zm\xc3\xa9",  // non-ASCII
        "Zm.v",        // punctuation
    };
    for (const auto& text : bad) EXPECT_FALSE(base64_decode(text).has_value()) << '"' << text << '"';
}

TEST(base64, decodes_a_wechatpay_signature_to_256_bytes) {
    const std::string signature =
        "Lc9VXxmeonkdV8Xk9tmigQFLhl0vRWTerdmoRu01aAnYwIrD/"
        "5nsSwE1WlmZGLRlAFTNQ3QsMa0+VRDlJp1Wp5p0nO8EK68b5sJBbjouxaFciIfq1"
        "zfDWWz+jqhcMoKXI1A6dPm1AW7D4d30WsMTNzp6g23OXakIsh9LO3lUmwvTuE0BY8ncf6tNGk4wKmvXwERd/"
        "ZpoQY3MAVKz+Nakwc+2XBmzT66K"
        "cUehU5kr4IvGa/lEU5RZb/q00zP9VLdBhC/jQSX3X1UcJLCtEc4gTmib4tnmAT+bHF/"
        "e17ZAuxDNcx6rqT8gNEXqaJGG+1OflMSTU2tpyG65G4dM"
        "KdFcoA==";
    ASSERT_EQ(signature.size(), 344u);
    const auto raw = base64_decode(signature);
    ASSERT_TRUE(raw.has_value());
    EXPECT_EQ(raw->size(), 256u);
    EXPECT_EQ(base64_encode(*raw), signature);
}

TEST(hex, encodes_upper_and_lower) {
    struct hex_case {
        std::string bytes, upper, lower;
    };
    const std::vector<hex_case> cases = {
        {"", "", ""},
        {"\0"s, "00", "00"},
        {"\x01\x23\x45\x67\x89\xab\xcd\xef", "0123456789ABCDEF", "0123456789abcdef"},
        {"\xff", "FF", "ff"},
        {"abc", "616263", "616263"},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(hex_upper(c.bytes), c.upper);
        EXPECT_EQ(hex_lower(c.bytes), c.lower);
    }
}

TEST(constant_time_equal, compares_contents_and_lengths) {
    struct eq_case {
        std::string a, b;
        bool equal;
    };
    const std::vector<eq_case> cases = {
        {"", "", true},
        {"a", "a", true},
        {"9A0A8659F005D6984697E2CA0A9CF3B7", "9A0A8659F005D6984697E2CA0A9CF3B7", true},
        {"9A0A8659F005D6984697E2CA0A9CF3B7", "8A0A8659F005D6984697E2CA0A9CF3B7", false},  // first byte
        {"9A0A8659F005D6984697E2CA0A9CF3B7", "9A0A8659F005D6984697E2CA0A9CF3B6", false},  // last byte
        {"9A0A8659F005D6984697E2CA0A9CF3B7", "9a0a8659f005d6984697e2ca0a9cf3b7", false},  // case matters
        {"abc", "abcd", false},                                                           // prefix
        {"abcd", "abc", false},
        {"", "a", false},
        {"a\0b"s, "a\0b"s, true},
        {"a\0b"s, "a\0c"s, false},
    };
    for (const auto& c : cases) EXPECT_EQ(constant_time_equal(c.a, c.b), c.equal) << c.a << " vs " << c.b;
}

TEST(iequals, ignores_ascii_case_only) {
    struct ieq_case {
        std::string a, b;
        bool equal;
    };
    const std::vector<ieq_case> cases = {
        {"Wechatpay-Serial", "wechatpay-serial", true},
        {"WECHATPAY-NONCE", "Wechatpay-Nonce", true},
        {"d7ce59d1f522d701", "D7CE59D1F522D701", true},
        {"", "", true},
        {"abc", "abd", false},
        {"abc", "ab", false},
        {"[", "{", false},  // 0x5b vs 0x7b: not letters, so not a case pair
        {"\xc3\x89", "\xc3\xa9", false},
    };
    for (const auto& c : cases) EXPECT_EQ(iequals(c.a, c.b), c.equal) << c.a << " vs " << c.b;
}

TEST(single_line, turns_line_breaks_and_control_characters_into_spaces) {
    EXPECT_EQ(single_line("ERROR:  canceling statement\nCONTEXT: x\r\n\tend"),
              "ERROR:  canceling statement CONTEXT: x   end");
    EXPECT_EQ(single_line("中文 ok"), "中文 ok");  // UTF-8 bytes are not control characters
    EXPECT_EQ(single_line(std::string("a\0b\x7f", 4)), "a b ");
}

// An order or refund number goes into a request path as one segment whatever it holds: WeChat's own
// alphabet passes unchanged, everything else is %XX.
TEST(PercentEncode, KeepsWeChatsAlphabetAndEncodesEverythingElse) {
    EXPECT_EQ(percent_encode("1217752501201407033233368018"), "1217752501201407033233368018");
    EXPECT_EQ(percent_encode("Ab-9_x|y*z.~"), "Ab-9_x|y*z.~");
    EXPECT_EQ(percent_encode("EVIL/../../v3/x?y#z"), "EVIL%2F..%2F..%2Fv3%2Fx%3Fy%23z");
    EXPECT_EQ(percent_encode("a b\r\nc%"), "a%20b%0D%0Ac%25");
    EXPECT_EQ(percent_encode("支"), "%E6%94%AF");
    EXPECT_EQ(percent_encode(std::string("\0", 1)), "%00");
}

// Only an id shaped like WeChat Pay's names a request in the logs; anything else is replaced by one
// wxrecond makes up, which a caller cannot imitate (it names the listener, outside the hex alphabet).
TEST(WeChatRequestId, KeepsWeChatsShapeOnly) {
    EXPECT_TRUE(is_wechat_request_id("08F78BB5AA0610A7C2D5FC0318D7C3D9F702-268512771"));
    EXPECT_TRUE(is_wechat_request_id("0123456789abcdef"));
    EXPECT_TRUE(is_wechat_request_id("3f2504e0-4f89-11d3-9a0c-0305e82c3301"));
    EXPECT_TRUE(is_wechat_request_id(std::string(64, 'A')));
    EXPECT_FALSE(is_wechat_request_id(""));
    EXPECT_FALSE(is_wechat_request_id("0123456789abcde"));     // 15 characters
    EXPECT_FALSE(is_wechat_request_id(std::string(65, 'A')));  // over 64
    EXPECT_FALSE(is_wechat_request_id("1a2b3c4d-public-17"));  // the shape of wxrecond's own ids
    EXPECT_FALSE(is_wechat_request_id("0123-4567-89ab-cde"));  // 18 characters, 15 hex digits
    EXPECT_FALSE(is_wechat_request_id("-0123456789abcdef"));
    EXPECT_FALSE(is_wechat_request_id("0123456789abcdef-"));
    EXPECT_FALSE(is_wechat_request_id("01234567--89abcdef"));
    EXPECT_FALSE(is_wechat_request_id("0123456789abcdef.1"));
    EXPECT_FALSE(is_wechat_request_id("0123456789abcdef 1"));
    EXPECT_FALSE(is_wechat_request_id("0123456789abcdef\r\nx=1"));
    EXPECT_FALSE(is_wechat_request_id(std::string("0123456789abcdef\0", 17)));
}

}  // namespace
}  // namespace wxrecon
