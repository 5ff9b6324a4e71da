// wx.requestPayment parameters (再次签名): the APIv3 paySign of docs/protocol-notes.md §5.2 and the
// APIv2 paySign of docs/protocol-notes.md §7.4, reproduced from the official worked examples.
#include <gtest/gtest.h>

#include "crypto/crypto.hpp"
#include "fixture_files.hpp"
#include "protocol/request_payment.hpp"

namespace wxrecon::protocol {
namespace {

const std::string official_pay_sign_v3 =
    "mI35pfNEQV6777ke/1T+LJLQDNTm7yeoUJH+j/"
    "adPGhmCCi0PbgkvYQTRcXH0uibcLVtvFLdGLpmoYO9FV6lBBsTAjuhh5YOvQi0e2g3e0yytitiN"
    "ET9FEuqM0pjnKfRW4K6LIZDdbWJv9KhZUx3DrJa5TL7OJ7VdADVivxVySIlPVKjGwuCXzuXSJes0UcILgWQUMyha5/"
    "3nYofuHtS7r+KYyMuxD+oJ9"
    "VM1Qdxk4UIG59CP5Y3wtYIFybyF3bdu1caHTRRX+DLyMXyYA/"
    "IrTmiW01c4RPjpHBX5Dk1sZyY1zVsWNsvMHr2e1NTWtBxKJ+qk5N61J7caYoepH"
    "Faxw==";
// The same data signed APP-style (bare prepay_id on line 4): what a mini program must not get.
const std::string app_style_pay_sign =
    "gXx9KhTP6IooKV1SuG3OCGlBIgZbKtubCZvnau6khw1iffvNT28IzLbKmztq2xA/"
    "RCNbZa1XOsoiuVmAEeTZQicWfhv4P+O4oBRIrx0X9f3cnWFkM"
    "BU9alTWs0nyQ1N9fcILOTe0f4kxOhVh+/Xhn5hOiUK7Sz3XA1mcpa3R2NCWf/e+0ow/RDf15iTymOHgDrEkT/gedg/"
    "3E0iXfDX3mFicSZhrHESZD"
    "OTXcl9RzELREBUFznd/o2NQM99WcL86m23HY0cTy+QGWU4QDmNrbQ9ihmLW71qPb0Cx/d7EQvw/"
    "Kyx0A6s64ZQp3hHdcmiRcLnjVXrKCk7LShaCK+"
    "lS3Q==";

TEST(RequestPayment, ApiV3PaySignIsTheOfficialExample) {
    const auto key = crypto::load_private_key_pem(fixtures::read_data("apiclient_test_key.pem"));
    ASSERT_TRUE(key.has_value()) << key.err().message;
    const auto p = sign_request_payment_v3(*key, "wx2421b1c4370ec43b", "wx201410272009395522657a690389285100",
                                           1554208460, "593BEC0C930BF1AFEB40B4A08C8FB242");
    ASSERT_TRUE(p.has_value()) << p.err().message;
    EXPECT_EQ(p->package, "prepay_id=wx201410272009395522657a690389285100");
    EXPECT_EQ(p->sign_type, "RSA");
    EXPECT_EQ(p->time_stamp, "1554208460");
    EXPECT_EQ(p->pay_sign, official_pay_sign_v3);
    EXPECT_NE(p->pay_sign, app_style_pay_sign);
    EXPECT_EQ(request_payment_message_v3(p->app_id, p->time_stamp, p->nonce_str, p->package),
              "wx2421b1c4370ec43b\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n"
              "prepay_id=wx201410272009395522657a690389285100\n");
}

TEST(RequestPayment, ApiV2PaySignIsTheOfficialExample) {
    const auto p = sign_request_payment_v2("qazwsxedcrfvtgbyhnujmikolp111111", v2::sign_type::md5,
                                           "wxd678efh567hg6787", "wx2017033010242291fcfe0db70013231072",
                                           1490840662, "5K8264ILTKCH16CQ2502SI8ZNMTM67VS");
    EXPECT_EQ(p.pay_sign, "22D9B4E54AB1950F51E0649E8810ACD6");
    EXPECT_EQ(p.sign_type, "MD5");
    // HMAC-SHA256 signs the same five fields, signType included, keyed with the APIv2 key.
    const auto h = sign_request_payment_v2("qazwsxedcrfvtgbyhnujmikolp111111", v2::sign_type::hmac_sha256,
                                           "wxd678efh567hg6787", "wx2017033010242291fcfe0db70013231072",
                                           1490840662, "5K8264ILTKCH16CQ2502SI8ZNMTM67VS");
    EXPECT_EQ(h.sign_type, "HMAC-SHA256");
    const v2::fields signed_fields{{"appId", "wxd678efh567hg6787"},
                                   {"nonceStr", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"},
                                   {"package", "prepay_id=wx2017033010242291fcfe0db70013231072"},
                                   {"signType", "HMAC-SHA256"},
                                   {"timeStamp", "1490840662"},
                                   {"sign", h.pay_sign}};
    EXPECT_EQ(h.pay_sign.size(), 64u);
    EXPECT_TRUE(v2::verify(signed_fields, "qazwsxedcrfvtgbyhnujmikolp111111"));
}

TEST(RequestPayment, JsonCarriesTheSixFieldsByTheirFrontEndNames) {
    const auto p = sign_request_payment_v2("qazwsxedcrfvtgbyhnujmikolp111111", v2::sign_type::md5,
                                           "wxd678efh567hg6787", "wx2017033010242291fcfe0db70013231072",
                                           1490840662, "5K8264ILTKCH16CQ2502SI8ZNMTM67VS");
    EXPECT_EQ(
        p.json(),
        "{\"appId\":\"wxd678efh567hg6787\",\"timeStamp\":\"1490840662\",\"nonceStr\":"
        "\"5K8264ILTKCH16CQ2502SI8ZNMTM67VS\",\"package\":\"prepay_id=wx2017033010242291fcfe0db70013231072\","
        "\"signType\":\"MD5\",\"paySign\":\"22D9B4E54AB1950F51E0649E8810ACD6\"}");
}

}  // namespace
}  // namespace wxrecon::protocol
