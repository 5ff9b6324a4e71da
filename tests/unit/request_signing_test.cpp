// APIv3 request signing (docs/protocol-notes.md §1): the string to sign and the
// Authorization header against the official worked examples, the verifier the
// simulator uses, and the certificates it issues (checked with the openssl CLI).
#include <gtest/gtest.h>

#include "base/encoding.hpp"
#include "crypto/crypto.hpp"
#include "fixture_files.hpp"
#include "protocol/v3.hpp"

namespace wxrecon::protocol::v3 {
namespace {

constexpr std::int64_t example_time = 1554208460;
const std::string example_nonce = "593BEC0C930BF1AFEB40B4A08C8FB242";
const std::string example_serial = "408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB";
const std::string example_get_signature =
    "Lc9VXxmeonkdV8Xk9tmigQFLhl0vRWTerdmoRu01aAnYwIrD/"
    "5nsSwE1WlmZGLRlAFTNQ3QsMa0+VRDlJp1Wp5p0nO8EK68b5sJBbjouxaFc"
    "iIfq1zfDWWz+jqhcMoKXI1A6dPm1AW7D4d30WsMTNzp6g23OXakIsh9LO3lUmwvTuE0BY8ncf6tNGk4wKmvXwERd/"
    "ZpoQY3MAVKz+Nakwc+2"
    "XBmzT66KcUehU5kr4IvGa/lEU5RZb/q00zP9VLdBhC/jQSX3X1UcJLCtEc4gTmib4tnmAT+bHF/"
    "e17ZAuxDNcx6rqT8gNEXqaJGG+1OflMSTU2"
    "tpyG65G4dMKdFcoA==";

crypto::private_key official_key() {
    auto key = crypto::load_private_key_pem(fixtures::read_data("apiclient_test_key.pem"));
    if (!key) throw std::runtime_error(key.err().message);
    return *key;
}

TEST(RequestSigning, StringToSignMatchesTheOfficialGetExample) {
    EXPECT_EQ(
        message_to_sign("GET", "/v3/refund/domestic/refunds/123123123123", "1554208460", example_nonce, ""),
        "GET\n/v3/refund/domestic/refunds/123123123123\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n");
}

TEST(RequestSigning, ParsesTheOfficialHeaderInTheJavaSampleOrder) {
    const std::string header = "WECHATPAY2-SHA256-RSA2048 mchid=\"1900007291\",nonce_str=\"" + example_nonce +
                               "\",signature=\"" + example_get_signature +
                               "\",timestamp=\"1554208460\",serial_no=\"" + example_serial + "\"";
    const auto a = parse_authorization(header);
    ASSERT_TRUE(a.has_value()) << a.err().message;
    EXPECT_EQ(a->mchid, "1900007291");
    EXPECT_EQ(a->nonce_str, example_nonce);
    EXPECT_EQ(a->timestamp, "1554208460");
    EXPECT_EQ(a->serial_no, example_serial);
    EXPECT_EQ(a->signature, example_get_signature);
    // And the official signature verifies through the same path the simulator uses.
    const auto key = official_key().public_part();
    EXPECT_TRUE(
        verify_request(*a, "GET", "/v3/refund/domestic/refunds/123123123123", "", key, example_time + 10)
            .has_value());
    const auto wrong_url =
        verify_request(*a, "GET", "/v3/refund/domestic/refunds/123123123124", "", key, example_time);
    ASSERT_FALSE(wrong_url.has_value());
    EXPECT_EQ(wrong_url.err().code, errc::bad_signature);
    const auto late =
        verify_request(*a, "GET", "/v3/refund/domestic/refunds/123123123123", "", key, example_time + 301);
    ASSERT_FALSE(late.has_value());
    EXPECT_EQ(late.err().code, errc::stale_timestamp);
}

TEST(RequestSigning, FormatsTheGoSdkOrderAndRoundTrips) {
    authorization a{"1900007291", example_nonce, "1554208460", example_serial, "c2ln"};
    const std::string header = format_authorization(a);
    EXPECT_EQ(header, "WECHATPAY2-SHA256-RSA2048 mchid=\"1900007291\",nonce_str=\"" + example_nonce +
                          "\",timestamp=\"1554208460\",serial_no=\"" + example_serial +
                          "\",signature=\"c2ln\"");
    const auto back = parse_authorization(header);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->signature, "c2ln");
}

TEST(RequestSigning, RefusesMalformedHeadersWithTheReason) {
    const struct {
        std::string header;
        std::string reason;
    } cases[] = {
        {"", "does not start with"},
        {"Bearer abc", "does not start with"},
        {"WECHATPAY2-SHA256-RSA2048", "does not start with"},
        {"WECHATPAY2-SHA256-RSA2048 mchid=1", "key=\"value\""},
        {"WECHATPAY2-SHA256-RSA2048 mchid=\"1", "unterminated"},
        {"WECHATPAY2-SHA256-RSA2048 mchid=\"1\" nonce_str=\"2\"", "expected ','"},
        {"WECHATPAY2-SHA256-RSA2048 color=\"red\"", "unknown parameter color"},
        {"WECHATPAY2-SHA256-RSA2048 mchid=\"1\",mchid=\"2\"", "repeated parameter mchid"},
        {"WECHATPAY2-SHA256-RSA2048 mchid=\"1\",nonce_str=\"2\"", "needs mchid, nonce_str"},
    };
    for (const auto& c : cases) {
        const auto a = parse_authorization(c.header);
        ASSERT_FALSE(a.has_value()) << c.header;
        EXPECT_EQ(a.err().code, errc::invalid_argument);
        EXPECT_NE(a.err().message.find(c.reason), std::string::npos) << c.header << " -> " << a.err().message;
    }
}

TEST(RequestSigning, SignRequestProducesAVerifiableHeader) {
    const auto key = official_key();
    const std::string body = R"({"mchid":"1900007291"})";
    const auto header = sign_request("POST", "/v3/pay/transactions/out-trade-no/T1/close", body, "1900007291",
                                     example_serial, key, example_time);
    ASSERT_TRUE(header.has_value());
    const auto a = parse_authorization(*header);
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(a->nonce_str.size(), 32u);
    EXPECT_TRUE(verify_request(*a, "POST", "/v3/pay/transactions/out-trade-no/T1/close", body,
                               key.public_part(), example_time)
                    .has_value());
    const auto tampered = verify_request(*a, "POST", "/v3/pay/transactions/out-trade-no/T1/close",
                                         R"({"mchid":"1900007292"})", key.public_part(), example_time);
    EXPECT_FALSE(tampered.has_value());
}

TEST(ResponseSigning, SignMessageVerifiesWithTheNotificationVerifier) {
    const auto key = official_key();
    const auto sig = sign_message("", key, "PUB_KEY_ID_0000000000000000000000000000000001", example_time);
    ASSERT_TRUE(sig.has_value());
    const crypto::public_key pub = key.public_part();
    const auto verdict = verify_signature({sig->timestamp, sig->nonce, sig->signature, sig->serial}, "",
                                          example_time, [&](std::string_view, std::int64_t) { return &pub; });
    EXPECT_TRUE(verdict.has_value());
}

TEST(Certificates, IssuedChainVerifiesWithTheOpensslCli) {
    const fixtures::temp_dir dir;
    const auto ca_key = crypto::generate_rsa_key();
    const auto leaf_key = crypto::generate_rsa_key();
    ASSERT_TRUE(ca_key.has_value() && leaf_key.has_value());
    crypto::certificate_request ca_req;
    ca_req.common_name = "wxpay-sim test CA";
    ca_req.organization = "wxpay-sim";
    ca_req.serial_hex = "01";
    ca_req.not_before = 1700000000;
    ca_req.not_after = 1700000000 + 3650LL * 86400;
    ca_req.is_ca = true;
    const auto ca_pem = crypto::issue_certificate(ca_req, ca_key->public_part(), *ca_key);
    ASSERT_TRUE(ca_pem.has_value()) << ca_pem.err().message;

    crypto::certificate_request leaf_req;
    leaf_req.common_name = "Tenpay.com sign";
    leaf_req.organization = "Tenpay.com";
    leaf_req.serial_hex = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
    leaf_req.not_before = 1700000000;
    leaf_req.not_after = 1700000000 + 5 * 365LL * 86400;
    leaf_req.subject_alt_names = {"DNS:localhost", "IP:127.0.0.1"};
    const auto leaf_pem = crypto::issue_certificate(leaf_req, leaf_key->public_part(), *ca_key, *ca_pem);
    ASSERT_TRUE(leaf_pem.has_value()) << leaf_pem.err().message;

    const auto leaf = crypto::load_certificate_pem(*leaf_pem);
    ASSERT_TRUE(leaf.has_value());
    EXPECT_EQ(leaf->serial, leaf_req.serial_hex);
    EXPECT_EQ(leaf->not_before, leaf_req.not_before);
    EXPECT_EQ(leaf->not_after, leaf_req.not_after);
    EXPECT_EQ(crypto::public_key_fingerprint(leaf->key),
              crypto::public_key_fingerprint(leaf_key->public_part()));

    fixtures::write_file(dir / "ca.pem", *ca_pem);
    fixtures::write_file(dir / "leaf.pem", *leaf_pem);
    fixtures::write_file(dir / "leaf_key.pem", crypto::private_key_to_pem(*leaf_key));
    // -attime: the chain is checked at a moment inside both validity windows, whatever today is.
    EXPECT_TRUE(fixtures::openssl(dir, "verify -attime 1700000100 -CAfile ca.pem leaf.pem"));
    // The written private key is the leaf's: the CLI signs, our verifier accepts.
    fixtures::write_file(dir / "msg", "hello");
    ASSERT_TRUE(fixtures::openssl(dir, "dgst -sha256 -sign leaf_key.pem -out sig msg"));
    EXPECT_TRUE(crypto::rsa_sha256_verify(leaf->key, "hello", fixtures::read_file(dir / "sig")));
}

TEST(Certificates, RefusesABadSerial) {
    const auto key = crypto::generate_rsa_key();
    ASSERT_TRUE(key.has_value());
    crypto::certificate_request req;
    req.serial_hex = "not hex";
    const auto pem = crypto::issue_certificate(req, key->public_part(), *key);
    ASSERT_FALSE(pem.has_value());
    EXPECT_EQ(pem.err().code, errc::invalid_argument);
}

}  // namespace
}  // namespace wxrecon::protocol::v3
