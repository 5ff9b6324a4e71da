// OpenSSL wrappers against WeChat Pay's published vectors (docs/protocol-notes.md §1.6, §5.2, §9) and
// against keys and signatures made independently with the openssl CLI.
#include "crypto/crypto.hpp"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <ctime>
#include <set>
#include <string>
#include <vector>

#include "base/encoding.hpp"
#include "base/time.hpp"
#include "fixture_files.hpp"

namespace wxrecon::crypto {
namespace {

using namespace std::string_literals;

std::string b64(std::string_view text) {
    auto decoded = base64_decode(text);
    if (!decoded) throw std::runtime_error("bad Base64 in test vector");
    return *decoded;
}

std::string json_string(simdjson::dom::element element) {
    std::string_view value;
    if (element.get(value) != simdjson::SUCCESS) throw std::runtime_error("expected a JSON string");
    return std::string(value);
}

const std::string prepay_body =
    R"({"appid":"wxd678efh567hg6787","mchid":"1230000109","description":"Image形象店-深圳腾大-QQ公仔",)"
    R"("out_trade_no":"1217752501201407033233368018","notify_url":"https://www.weixin.qq.com/wxpay/pay.php",)"
    R"("amount":{"total":100,"currency":"CNY"},"payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}})";

struct rsa_vector {
    const char* name;
    std::string message;
    std::string signature;
};

// docs/protocol-notes.md §9.1: all four signatures WeChat Pay's documentation made with
// apiclient_test_key.pem.
const std::vector<rsa_vector> official_rsa_vectors = {
    {"GET with path parameter (docs/protocol-notes.md §1.6 (a))",
     "GET\n/v3/refund/domestic/refunds/123123123123\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n",
     "Lc9VXxmeonkdV8Xk9tmigQFLhl0vRWTerdmoRu01aAnYwIrD/"
     "5nsSwE1WlmZGLRlAFTNQ3QsMa0+VRDlJp1Wp5p0nO8EK68b5sJBbjouxaFciIfq1"
     "zfDWWz+jqhcMoKXI1A6dPm1AW7D4d30WsMTNzp6g23OXakIsh9LO3lUmwvTuE0BY8ncf6tNGk4wKmvXwERd/"
     "ZpoQY3MAVKz+Nakwc+2XBmzT66K"
     "cUehU5kr4IvGa/lEU5RZb/q00zP9VLdBhC/jQSX3X1UcJLCtEc4gTmib4tnmAT+bHF/"
     "e17ZAuxDNcx6rqT8gNEXqaJGG+1OflMSTU2tpyG65G4dM"
     "KdFcoA=="},
    {"POST JSAPI prepay (docs/protocol-notes.md §1.6 (b))",
     "POST\n/v3/pay/transactions/jsapi\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n" + prepay_body + "\n",
     "gEuexJ547PHFV77TQ6eiE4tphVYfWfUe1Wc2dBmVnoMYU2rl/"
     "M4zhw+b3vBhuMw6AC7pteNkryLA7UWU2h+umo0OdSuuLm1++O3NckQPCSfm6dyps"
     "jn4GYm84KMqXWFrhFmyxEwIdEJDr3w1UYfxOcu55OQupfLkrt/"
     "ZzuOspnliJFrPzGQFUk7lGqMMtpz3EfbDUNxnVsHblORg3hVmuYNmbGWnS2ovU3"
     "0Y2Q+iKFDxzkaXBk8LTy6HzvxizRo6Q+J4SVM7O0hKXfgo1QdI68kpzNULb3EVBXlhTyPUzhkHzzLxECL1qHl3HH2hEv8++C+"
     "4wBlsagF3j/O6PA"
     "BojA=="},
    {"paySign, mini-program (docs/protocol-notes.md §5.2)",
     "wx2421b1c4370ec43b\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\nprepay_id="
     "wx201410272009395522657a690389285100\n",
     "mI35pfNEQV6777ke/1T+LJLQDNTm7yeoUJH+j/"
     "adPGhmCCi0PbgkvYQTRcXH0uibcLVtvFLdGLpmoYO9FV6lBBsTAjuhh5YOvQi0e2g3e0yytitiN"
     "ET9FEuqM0pjnKfRW4K6LIZDdbWJv9KhZUx3DrJa5TL7OJ7VdADVivxVySIlPVKjGwuCXzuXSJes0UcILgWQUMyha5/"
     "3nYofuHtS7r+KYyMuxD+oJ9"
     "VM1Qdxk4UIG59CP5Y3wtYIFybyF3bdu1caHTRRX+DLyMXyYA/"
     "IrTmiW01c4RPjpHBX5Dk1sZyY1zVsWNsvMHr2e1NTWtBxKJ+qk5N61J7caYoepH"
     "Faxw=="},
    {"paySign, APP style (docs/protocol-notes.md §5.2)",
     "wx2421b1c4370ec43b\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\nwx201410272009395522657a690389285100"
     "\n",
     "gXx9KhTP6IooKV1SuG3OCGlBIgZbKtubCZvnau6khw1iffvNT28IzLbKmztq2xA/"
     "RCNbZa1XOsoiuVmAEeTZQicWfhv4P+O4oBRIrx0X9f3cnWFkM"
     "BU9alTWs0nyQ1N9fcILOTe0f4kxOhVh+/Xhn5hOiUK7Sz3XA1mcpa3R2NCWf/e+0ow/RDf15iTymOHgDrEkT/gedg/"
     "3E0iXfDX3mFicSZhrHESZD"
     "OTXcl9RzELREBUFznd/o2NQM99WcL86m23HY0cTy+QGWU4QDmNrbQ9ihmLW71qPb0Cx/d7EQvw/"
     "Kyx0A6s64ZQp3hHdcmiRcLnjVXrKCk7LShaCK+"
     "lS3Q=="},
};

class official_test_key : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        auto key = load_private_key_pem(fixtures::read_data("apiclient_test_key.pem"));
        ASSERT_TRUE(key.has_value()) << key.err().message;
        key_ = new private_key(*key);
    }
    static void TearDownTestSuite() {
        delete key_;
        key_ = nullptr;
    }
    static private_key* key_;
};
private_key* official_test_key::key_ = nullptr;

TEST_F(official_test_key, is_the_documented_key) {
    EXPECT_EQ(public_key_fingerprint(key_->public_part()),
              "0076df9361cc1f5744359234d7df9fd43442cf369fb98826562f1d10a347ec5c");
}

TEST_F(official_test_key, reproduces_every_official_signature) {
    for (const auto& v : official_rsa_vectors) {
        const auto signature = rsa_sha256_sign(*key_, v.message);
        ASSERT_TRUE(signature.has_value()) << v.name;
        EXPECT_EQ(signature->size(), 256u) << v.name;
        EXPECT_EQ(base64_encode(*signature), v.signature) << v.name;
    }
}

TEST_F(official_test_key, verifies_every_official_signature) {
    const public_key pub = key_->public_part();
    for (const auto& v : official_rsa_vectors) {
        EXPECT_TRUE(rsa_sha256_verify(pub, v.message, b64(v.signature))) << v.name;
    }
}

TEST_F(official_test_key, rejects_signatures_over_other_messages) {
    const public_key pub = key_->public_part();
    // Each vector's signature must fail against every other vector's message (e.g. the APP-style
    // paySign is the documented negative for the mini-program string).
    for (std::size_t i = 0; i < official_rsa_vectors.size(); ++i) {
        for (std::size_t j = 0; j < official_rsa_vectors.size(); ++j) {
            if (i == j) continue;
            EXPECT_FALSE(rsa_sha256_verify(pub, official_rsa_vectors[j].message,
                                           b64(official_rsa_vectors[i].signature)))
                << official_rsa_vectors[i].name << " over " << official_rsa_vectors[j].name;
        }
    }
    const auto& v = official_rsa_vectors[0];
    std::string flipped = b64(v.signature);
    flipped[100] = static_cast<char>(flipped[100] ^ 0x01);
    EXPECT_FALSE(rsa_sha256_verify(pub, v.message, flipped));
    EXPECT_FALSE(rsa_sha256_verify(pub, v.message, b64(v.signature).substr(1)));
    EXPECT_FALSE(rsa_sha256_verify(pub, v.message, ""));
    EXPECT_FALSE(rsa_sha256_verify(pub, v.message.substr(0, v.message.size() - 1), b64(v.signature)));
    EXPECT_FALSE(rsa_sha256_verify(pub, v.message + "\n", b64(v.signature)));
}

TEST_F(official_test_key, public_part_carries_no_private_key) {
    const public_key pub = key_->public_part();
    ASSERT_TRUE(pub);
    const std::string pem = public_key_to_pem(pub);
    EXPECT_EQ(pem.rfind("-----BEGIN PUBLIC KEY-----\n", 0), 0u) << pem;
    EXPECT_EQ(pem.find("PRIVATE"), std::string::npos);
    const auto reloaded = load_public_key_pem(pem);
    ASSERT_TRUE(reloaded.has_value());
    EXPECT_EQ(public_key_fingerprint(*reloaded), public_key_fingerprint(pub));
}

// docs/protocol-notes.md §9.3: a complete signed notification from wechatpay-go.
class wechatpay_go_notification : public ::testing::Test {
protected:
    void SetUp() override {
        json_ = fixtures::read_data("v3_notification_vector.json");
        simdjson::dom::element doc;
        ASSERT_EQ(parser_.parse(json_).get(doc), simdjson::SUCCESS);
        timestamp_ = json_string(doc["headers"]["Wechatpay-Timestamp"]);
        nonce_ = json_string(doc["headers"]["Wechatpay-Nonce"]);
        serial_ = json_string(doc["headers"]["Wechatpay-Serial"]);
        signature_ = json_string(doc["headers"]["Wechatpay-Signature"]);
        body_ = json_string(doc["body"]);
        apiv3_key_ = json_string(doc["apiv3_key"]);
        auto cert = load_certificate_pem(fixtures::read_data("wechatpay_go_test_cert.pem"));
        ASSERT_TRUE(cert.has_value()) << cert.err().message;
        cert_ = *cert;
    }
    std::string message() const { return timestamp_ + "\n" + nonce_ + "\n" + body_ + "\n"; }

    std::string json_;
    simdjson::dom::parser parser_;
    std::string timestamp_, nonce_, serial_, signature_, body_, apiv3_key_;
    certificate cert_;
};

TEST_F(wechatpay_go_notification, certificate_fields) {
    EXPECT_EQ(cert_.serial, "D7CE59D1F522D701");
    EXPECT_EQ(cert_.serial, serial_);
    EXPECT_EQ(cert_.not_before, 1619513723);  // 2021-04-27T08:55:23Z
    EXPECT_EQ(cert_.not_after, 1934873723);   // 2031-04-25T08:55:23Z
    EXPECT_EQ(cert_.pem, fixtures::read_data("wechatpay_go_test_cert.pem"));
}

TEST_F(wechatpay_go_notification, signature_verifies) {
    EXPECT_EQ(signature_.size(), 344u);
    EXPECT_TRUE(rsa_sha256_verify(cert_.key, message(), b64(signature_)));
}

TEST_F(wechatpay_go_notification, altered_inputs_do_not_verify) {
    std::string body = body_;
    body[body.find("\"total") == std::string::npos ? 10 : body.find("\"total")] ^= 0x01;
    const std::string sig = b64(signature_);
    EXPECT_FALSE(rsa_sha256_verify(cert_.key, timestamp_ + "\n" + nonce_ + "\n" + body + "\n", sig));
    EXPECT_FALSE(rsa_sha256_verify(cert_.key, "1624523847\n" + nonce_ + "\n" + body_ + "\n", sig));
    EXPECT_FALSE(
        rsa_sha256_verify(cert_.key, timestamp_ + "\n" + nonce_ + "\n" + body_, sig));  // no final LF
    EXPECT_FALSE(rsa_sha256_verify(cert_.key, timestamp_ + "\r\n" + nonce_ + "\r\n" + body_ + "\r\n", sig));
    // The merchant's own key is not WeChat Pay's key.
    auto merchant = load_private_key_pem(fixtures::read_data("apiclient_test_key.pem"));
    ASSERT_TRUE(merchant.has_value());
    EXPECT_FALSE(rsa_sha256_verify(merchant->public_part(), message(), sig));
    EXPECT_FALSE(rsa_sha256_verify(public_key{}, message(), sig));
}

TEST_F(wechatpay_go_notification, sixteen_byte_apiv3_key_is_rejected) {
    // Negative vector: WeChat Pay's APIv3 key is 32 bytes; this SDK test key is 16 (AES-128).
    ASSERT_EQ(apiv3_key_.size(), 16u);
    simdjson::dom::element doc;
    ASSERT_EQ(parser_.parse(body_).get(doc), simdjson::SUCCESS);
    const std::string nonce = json_string(doc["resource"]["nonce"]);
    const std::string aad = json_string(doc["resource"]["associated_data"]);
    const std::string ciphertext = b64(json_string(doc["resource"]["ciphertext"]));
    const auto plain = aes256_gcm_decrypt(apiv3_key_, nonce, aad, ciphertext);
    ASSERT_FALSE(plain.has_value());
    EXPECT_EQ(plain.err().code, errc::invalid_argument);
    EXPECT_NE(plain.err().message.find("32-byte key"), std::string::npos) << plain.err().message;
}

TEST(aes256_gcm, go_sdk_aes128_vector_is_rejected_for_key_length) {
    const auto plain =
        aes256_gcm_decrypt("testAPIv3Key0000", "wCq51qZv4Yfg", "Dl56FrqWQJF1t9LtC3vEUsniZKvbqdR8",
                           b64("FsdXzxryWfKwvLJKf8LG/ToRPTRh8RN9wROC"));
    ASSERT_FALSE(plain.has_value());
    EXPECT_EQ(plain.err().code, errc::invalid_argument);
}

// docs/protocol-notes.md §9.4: /v3/certificates response from wechatpay-java.
TEST(aes256_gcm, decrypts_the_v3_certificates_vector) {
    const std::string json = fixtures::read_data("v3_certificates_vector.json");
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS);
    simdjson::dom::element item;
    ASSERT_EQ(doc["response_body"]["data"].at(0).get(item), simdjson::SUCCESS);
    const std::string key = json_string(doc["apiv3_key"]);
    const std::string nonce = json_string(item["encrypt_certificate"]["nonce"]);
    const std::string aad = json_string(item["encrypt_certificate"]["associated_data"]);
    const std::string ciphertext = b64(json_string(item["encrypt_certificate"]["ciphertext"]));
    ASSERT_EQ(aad, "certificate");
    ASSERT_EQ(nonce, "14b16c03dc1b");

    const auto pem = aes256_gcm_decrypt(key, nonce, aad, ciphertext);
    ASSERT_TRUE(pem.has_value()) << pem.err().message;
    EXPECT_EQ(pem->rfind("-----BEGIN CERTIFICATE-----", 0), 0u);

    const auto cert = load_certificate_pem(*pem);
    ASSERT_TRUE(cert.has_value()) << cert.err().message;
    EXPECT_EQ(cert->serial, "5DEA10EF55877E3CF6C33255C2E7DEFFF7E427EC");
    EXPECT_EQ(cert->serial, json_string(item["serial_no"]));
    EXPECT_EQ(cert->serial, json_string(doc["expected_serial"]));
    // The validity in the certificate matches what the response lists next to it.
    EXPECT_EQ(cert->not_before, *parse_rfc3339(json_string(item["effective_time"])));
    EXPECT_EQ(cert->not_after, *parse_rfc3339(json_string(item["expire_time"])));

    const auto wrong_aad = aes256_gcm_decrypt(key, nonce, "transaction", ciphertext);
    ASSERT_FALSE(wrong_aad.has_value());
    EXPECT_EQ(wrong_aad.err().code, errc::decrypt_failed);
}

struct gcm_vector {
    const char* name;
    std::string key, nonce, aad, ciphertext_b64, plaintext;
};

const std::string derived_transaction_plaintext =
    R"({"mchid":"1230000109","appid":"wxd678efh567hg6787","out_trade_no":"1217752501201407033233368018",)"
    R"("transaction_id":"4200000000000000000000000001","trade_type":"JSAPI","trade_state":"SUCCESS",)"
    R"("trade_state_desc":"支付成功","bank_type":"OTHERS","attach":"","success_time":"2018-06-08T10:34:56+08:00",)"
    R"("payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},"amount":{"total":100,"payer_total":100,"currency":"CNY",)"
    R"("payer_currency":"CNY"}})";

// docs/protocol-notes.md §9.2: the wechatpay-java vector and the DERIVED transaction vector.
const std::vector<gcm_vector> gcm_vectors = {
    {"wechatpay-java AeadAesCipherTest", "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb", "uluk4a9R25RW", "associatedData",
     "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwI=", "message"},
    {"DERIVED transaction", "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb", "EtBsrrWLbVSr", "transaction",
     "fCGbTgyG47RB1xNUbNfsU48xCoj5jS4HfzDwc7ROSY8uBCbgWxPu2DiMvBo+"
     "CU8l6T8rCFx27uHXvbLeYOpFno7az0uh6ehWiGYFjGtRlaC3QnGN7"
     "p70mH2dHfqq3x4wXByrT6RRGwN+XvPfDi4kyvtYzshghxe55HFj5SJ1MHM8SGJ++"
     "foaube3deQ5b98brxJGZ1ZBpTEPh1JjAnxWx3fo7HjyPo6Kv"
     "qaNXRJwaQ+vFlRjmG1htYDgY11UVotfJ7aLDQFLcJXWWMRXlpwBNnZvB5MBJsLauIB0/"
     "PbfkjHj28DfYMkEu0w34UBUiIBu2bTfwrREV6btwgBPZ"
     "EJFH6E2hCsDQguO5qXVg+magE819iIClKFkDzMrcQFYL8tFSPpvy/"
     "8aaWQIlQWvyKBMwgGWSWdhvodjszJZROaqNCRTOBMABmUGAYe0yQyGuy6YOp"
     "lUu7uT06NtrUw4P9t3BU8rWvI6tT6NHAQmh5QRRrYsC9ziVoIOEwkRLmp9+"
     "zlYjE7QRoWjR2g2IEUEzrDfAPDm4ikNYCj1Drm9JkpOBP5SacKnZ2"
     "5P9QnCv18FQ9nEuYs23HXFFA886TiQjUZ+",
     derived_transaction_plaintext},
};

TEST(aes256_gcm, decrypts_the_published_vectors) {
    for (const auto& v : gcm_vectors) {
        const auto plain = aes256_gcm_decrypt(v.key, v.nonce, v.aad, b64(v.ciphertext_b64));
        ASSERT_TRUE(plain.has_value()) << v.name << ": " << plain.err().message;
        EXPECT_EQ(*plain, v.plaintext) << v.name;
    }
    EXPECT_EQ(derived_transaction_plaintext.size(), 431u);
    EXPECT_EQ(b64(gcm_vectors[1].ciphertext_b64).size(), 447u);
}

TEST(aes256_gcm, encrypts_to_the_published_vectors) {
    for (const auto& v : gcm_vectors) {
        const auto sealed = aes256_gcm_encrypt(v.key, v.nonce, v.aad, v.plaintext);
        ASSERT_TRUE(sealed.has_value()) << v.name;
        EXPECT_EQ(base64_encode(*sealed), v.ciphertext_b64) << v.name;
    }
}

TEST(aes256_gcm, any_tampering_fails_authentication) {
    const auto& v = gcm_vectors[1];
    const std::string sealed = b64(v.ciphertext_b64);
    auto flip = [](std::string s, std::size_t i) {
        s[i] = static_cast<char>(s[i] ^ 0x01);
        return s;
    };
    struct tamper_case {
        const char* name;
        std::string key, nonce, aad, data;
    };
    const std::vector<tamper_case> cases = {
        {"first ciphertext byte", v.key, v.nonce, v.aad, flip(sealed, 0)},
        {"middle ciphertext byte", v.key, v.nonce, v.aad, flip(sealed, 200)},
        {"first tag byte", v.key, v.nonce, v.aad, flip(sealed, sealed.size() - 16)},
        {"last tag byte", v.key, v.nonce, v.aad, flip(sealed, sealed.size() - 1)},
        {"tag dropped one byte", v.key, v.nonce, v.aad, sealed.substr(0, sealed.size() - 1)},
        {"ciphertext dropped first byte", v.key, v.nonce, v.aad, sealed.substr(1)},
        {"extra byte appended", v.key, v.nonce, v.aad, sealed + "\0"s},
        {"tag only", v.key, v.nonce, v.aad, sealed.substr(sealed.size() - 16)},
        {"other associated data", v.key, v.nonce, "refund", sealed},
        {"empty associated data", v.key, v.nonce, "", sealed},
        {"other nonce", v.key, "EtBsrrWLbVSs", v.aad, sealed},
        {"other key", "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gc", v.nonce, v.aad, sealed},
    };
    for (const auto& c : cases) {
        const auto plain = aes256_gcm_decrypt(c.key, c.nonce, c.aad, c.data);
        ASSERT_FALSE(plain.has_value()) << c.name;
        EXPECT_EQ(plain.err().code, errc::decrypt_failed) << c.name;
    }
}

TEST(aes256_gcm, rejects_bad_arguments) {
    const std::string good_key(32, 'k');
    for (std::size_t size : {0, 1, 16, 24, 31, 33, 64}) {
        const std::string key(size, 'k');
        const auto sealed = aes256_gcm_encrypt(key, "0123456789ab", "", "x");
        ASSERT_FALSE(sealed.has_value()) << size;
        EXPECT_EQ(sealed.err().code, errc::invalid_argument);
        const auto plain = aes256_gcm_decrypt(key, "0123456789ab", "", std::string(32, '\0'));
        ASSERT_FALSE(plain.has_value()) << size;
        EXPECT_EQ(plain.err().code, errc::invalid_argument);
    }
    for (std::size_t size : {0, 1, 15}) {
        const auto plain = aes256_gcm_decrypt(good_key, "0123456789ab", "", std::string(size, '\0'));
        ASSERT_FALSE(plain.has_value()) << size;
        EXPECT_EQ(plain.err().code, errc::invalid_argument) << "shorter than a tag";
    }
    const auto no_nonce = aes256_gcm_encrypt(good_key, "", "", "x");
    ASSERT_FALSE(no_nonce.has_value());
    EXPECT_EQ(no_nonce.err().code, errc::invalid_argument);
}

TEST(aes256_gcm, round_trips) {
    const std::string key = random_bytes(32);
    for (std::size_t size : {0, 1, 15, 16, 17, 431, 4096}) {
        for (const std::string aad : {"", "transaction", "refund", "certificate"}) {
            for (const std::string nonce : {"0123456789ab", "n", "a-longer-nonce-than-twelve"}) {
                const std::string plaintext = random_bytes(size);
                const auto sealed = aes256_gcm_encrypt(key, nonce, aad, plaintext);
                ASSERT_TRUE(sealed.has_value());
                ASSERT_EQ(sealed->size(), size + 16);
                const auto opened = aes256_gcm_decrypt(key, nonce, aad, *sealed);
                ASSERT_TRUE(opened.has_value()) << size << " " << aad << " " << nonce;
                EXPECT_EQ(*opened, plaintext);
            }
        }
    }
}

// docs/protocol-notes.md §9.5: wechatpay-php AesEcbTest.
TEST(aes256_ecb, encrypts_the_published_vector) {
    const auto sealed = aes256_ecb_encrypt("0123456789abcdef0123456789abcdef", "hello");
    ASSERT_TRUE(sealed.has_value());
    EXPECT_EQ(base64_encode(*sealed), "pZwJZBLuy3mDACEQT4YTBw==");
    const auto opened =
        aes256_ecb_decrypt("0123456789abcdef0123456789abcdef", b64("pZwJZBLuy3mDACEQT4YTBw=="));
    ASSERT_TRUE(opened.has_value());
    EXPECT_EQ(*opened, "hello");
}

TEST(aes256_ecb, round_trips_with_pkcs7_padding) {
    const std::string key = random_bytes(32);
    for (std::size_t size = 0; size <= 48; ++size) {
        const std::string plaintext = random_bytes(size);
        const auto sealed = aes256_ecb_encrypt(key, plaintext);
        ASSERT_TRUE(sealed.has_value());
        EXPECT_EQ(sealed->size(), (size / 16 + 1) * 16) << "PKCS#7 always adds 1..16 bytes";
        const auto opened = aes256_ecb_decrypt(key, *sealed);
        ASSERT_TRUE(opened.has_value()) << size;
        EXPECT_EQ(*opened, plaintext);
    }
}

TEST(aes256_ecb, rejects_bad_input) {
    const std::string key = "0123456789abcdef0123456789abcdef";
    const std::string sealed = b64("pZwJZBLuy3mDACEQT4YTBw==");
    struct ecb_case {
        const char* name;
        std::string key, data;
        errc code;
    };
    const std::vector<ecb_case> cases = {
        {"empty ciphertext", key, "", errc::decrypt_failed},
        {"partial block", key, sealed.substr(0, 15), errc::decrypt_failed},
        {"block and a half", key, sealed + sealed.substr(0, 8), errc::decrypt_failed},
        {"wrong key breaks the padding", "0123456789abcdef0123456789abcdeg", sealed, errc::decrypt_failed},
        {"16-byte key", "0123456789abcdef", sealed, errc::invalid_argument},
        {"33-byte key", key + "0", sealed, errc::invalid_argument},
    };
    for (const auto& c : cases) {
        const auto opened = aes256_ecb_decrypt(c.key, c.data);
        ASSERT_FALSE(opened.has_value()) << c.name;
        EXPECT_EQ(opened.err().code, c.code) << c.name;
    }
    const auto short_key = aes256_ecb_encrypt("short", "hello");
    ASSERT_FALSE(short_key.has_value());
    EXPECT_EQ(short_key.err().code, errc::invalid_argument);
}

TEST(digests, match_reference_values) {
    struct digest_case {
        const char* name;
        std::string actual, expected_hex;
    };
    const std::vector<digest_case> cases = {
        {"md5 empty", md5(""), "d41d8cd98f00b204e9800998ecf8427e"},
        {"md5 abc", md5("abc"), "900150983cd24fb0d6963f7d28e17f72"},
        {"md5 APIv2 key (req_info AES key)", md5("192006250b4c09247ec02edce69f6a2d"),
         "d96eb16afdd491fa1e705096edbc2205"},
        {"sha256 empty", sha256(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"sha256 abc", sha256("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        // RFC 4231 test case 2.
        {"hmac-sha256 Jefe", hmac_sha256("Jefe", "what do ya want for nothing?"),
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        {"hmac-sha256 empty key and data", hmac_sha256("", ""),
         "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"},
        // RFC 4231 test case 6: a key longer than the block size is hashed first.
        {"hmac-sha256 long key",
         hmac_sha256(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First"),
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
    };
    for (const auto& c : cases) EXPECT_EQ(hex_lower(c.actual), c.expected_hex) << c.name;
}

TEST(random, bytes_have_the_requested_length_and_differ) {
    EXPECT_EQ(random_bytes(0), "");
    EXPECT_EQ(random_bytes(1).size(), 1u);
    EXPECT_EQ(random_bytes(1000).size(), 1000u);
    EXPECT_NE(random_bytes(32), random_bytes(32));
}

TEST(random, alnum_uses_only_the_alphabet_and_is_unbiased) {
    EXPECT_EQ(random_alnum(0), "");
    const std::string nonce = random_alnum(32);
    EXPECT_EQ(nonce.size(), 32u);
    EXPECT_NE(nonce, random_alnum(32));

    constexpr std::size_t per_symbol = 2000;
    const std::string sample = random_alnum(62 * per_symbol);
    ASSERT_EQ(sample.size(), 62 * per_symbol);
    std::array<std::size_t, 256> counts{};
    for (unsigned char c : sample) {
        ASSERT_TRUE(std::isalnum(c)) << int{c};
        ++counts[c];
    }
    // Chi-square over 62 symbols (61 degrees of freedom): a modulo-biased generator (bytes 248..255
    // folded onto '0'..'7') scores about 900 here; a fair one exceeds 150 less than once in 10^8 runs.
    double chi_square = 0;
    std::size_t symbols = 0;
    for (std::size_t count : counts) {
        if (count == 0) continue;
        ++symbols;
        const double diff = static_cast<double>(count) - per_symbol;
        chi_square += diff * diff / per_symbol;
    }
    EXPECT_EQ(symbols, 62u);
    EXPECT_LT(chi_square, 150.0);
}

// Keys, certificates and signatures made by the openssl CLI, so that our code is checked against an
// independent implementation and not only against itself.
class openssl_cli_keys : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new fixtures::temp_dir();
        auto& d = *dir_;
        const std::vector<std::string> commands = {
            "genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out pkcs8.pem",
            "rsa -in pkcs8.pem -traditional -out pkcs1.pem",
            "pkey -in pkcs8.pem -pubout -out spki.pem",
            "rsa -in pkcs8.pem -RSAPublicKey_out -out pkcs1_pub.pem",
            "req -x509 -new -key pkcs8.pem -subj /CN=wxrecon-test -days 30 -set_serial 0x0123ABCDEF -sha256 "
            "-out cert.pem",
            "x509 -in cert.pem -noout -serial -out serial.txt",
            "pkey -in pkcs8.pem -aes256 -passout pass:secret -out encrypted_pkcs8.pem",
            "rsa -in pkcs8.pem -aes256 -traditional -passout pass:secret -out encrypted_pkcs1.pem",
            "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem",
            "pkey -in ec.pem -pubout -out ec_pub.pem",
            "req -x509 -new -key ec.pem -subj /CN=wxrecon-ec -days 30 -out ec_cert.pem",
        };
        for (const auto& command : commands) {
            ASSERT_TRUE(fixtures::openssl(d, command)) << command << "\n"
                                                       << fixtures::read_file(d / "openssl.log");
        }
        fixtures::write_file(d / "message.txt", message);
        ASSERT_TRUE(fixtures::openssl(d, "dgst -sha256 -sign pkcs8.pem -out cli.sig message.txt"));
    }
    static void TearDownTestSuite() {
        delete dir_;
        dir_ = nullptr;
    }
    static std::string file(std::string_view name) { return fixtures::read_file(*dir_ / name); }

    static inline const std::string message =
        "1624523846\nEcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBz\n{\"id\":\"EV-2018022511223320873\"}\n";
    static fixtures::temp_dir* dir_;
};
fixtures::temp_dir* openssl_cli_keys::dir_ = nullptr;

TEST_F(openssl_cli_keys, every_encoding_of_the_key_is_the_same_key) {
    const auto pkcs8 = load_private_key_pem(file("pkcs8.pem"));
    const auto pkcs1 = load_private_key_pem(file("pkcs1.pem"));
    const auto spki = load_public_key_pem(file("spki.pem"));
    const auto pkcs1_pub = load_public_key_pem(file("pkcs1_pub.pem"));
    const auto cert = load_certificate_pem(file("cert.pem"));
    ASSERT_TRUE(pkcs8.has_value()) << pkcs8.err().message;
    ASSERT_TRUE(pkcs1.has_value()) << pkcs1.err().message;
    ASSERT_TRUE(spki.has_value()) << spki.err().message;
    ASSERT_TRUE(pkcs1_pub.has_value()) << pkcs1_pub.err().message;
    ASSERT_TRUE(cert.has_value()) << cert.err().message;
    EXPECT_EQ(file("pkcs1.pem").rfind("-----BEGIN RSA PRIVATE KEY-----", 0), 0u);
    EXPECT_EQ(file("pkcs1_pub.pem").rfind("-----BEGIN RSA PUBLIC KEY-----", 0), 0u);

    const std::string fingerprint = public_key_fingerprint(*spki);
    EXPECT_EQ(fingerprint.size(), 64u);
    EXPECT_EQ(public_key_fingerprint(pkcs8->public_part()), fingerprint);
    EXPECT_EQ(public_key_fingerprint(pkcs1->public_part()), fingerprint);
    EXPECT_EQ(public_key_fingerprint(*pkcs1_pub), fingerprint);
    EXPECT_EQ(public_key_fingerprint(cert->key), fingerprint);
    EXPECT_EQ(public_key_to_pem(*spki), file("spki.pem"));
    // PKCS#1 v1.5 is deterministic: both private encodings sign identically.
    EXPECT_EQ(*rsa_sha256_sign(*pkcs8, message), *rsa_sha256_sign(*pkcs1, message));
}

TEST_F(openssl_cli_keys, cli_signature_verifies_with_every_public_form) {
    const std::string signature = file("cli.sig");
    ASSERT_EQ(signature.size(), 256u);
    const std::vector<std::pair<const char*, public_key>> keys = {
        {"SubjectPublicKeyInfo", *load_public_key_pem(file("spki.pem"))},
        {"PKCS#1 public key", *load_public_key_pem(file("pkcs1_pub.pem"))},
        {"certificate", load_certificate_pem(file("cert.pem"))->key},
        {"private key's public part", load_private_key_pem(file("pkcs8.pem"))->public_part()},
    };
    for (const auto& [name, key] : keys) {
        EXPECT_TRUE(rsa_sha256_verify(key, message, signature)) << name;
        EXPECT_FALSE(rsa_sha256_verify(key, message + " ", signature)) << name;
    }
    // The well-known WeChat Pay test key did not make this signature.
    EXPECT_FALSE(rsa_sha256_verify(
        *load_public_key_pem(public_key_to_pem(
            load_private_key_pem(fixtures::read_data("apiclient_test_key.pem"))->public_part())),
        message, signature));
}

TEST_F(openssl_cli_keys, our_signature_verifies_with_the_cli) {
    const auto key = load_private_key_pem(file("pkcs1.pem"));
    ASSERT_TRUE(key.has_value());
    const auto signature = rsa_sha256_sign(*key, message);
    ASSERT_TRUE(signature.has_value());
    fixtures::write_file(*dir_ / "ours.sig", *signature);
    EXPECT_TRUE(fixtures::openssl(*dir_, "dgst -sha256 -verify spki.pem -signature ours.sig message.txt"));
    fixtures::write_file(*dir_ / "other.txt", message + "x");
    EXPECT_FALSE(fixtures::openssl(*dir_, "dgst -sha256 -verify spki.pem -signature ours.sig other.txt"));
}

TEST_F(openssl_cli_keys, certificate_serial_and_validity_match_the_cli) {
    const auto cert = load_certificate_pem(file("cert.pem"));
    ASSERT_TRUE(cert.has_value());
    EXPECT_EQ(cert->serial, "0123ABCDEF");
    EXPECT_EQ(file("serial.txt"), "serial=" + cert->serial + "\n");
    EXPECT_EQ(cert->not_after - cert->not_before, 30 * 86400);
    const std::int64_t now = std::time(nullptr);
    EXPECT_LE(cert->not_before, now);
    EXPECT_GT(cert->not_before, now - 3600);
}

TEST_F(openssl_cli_keys, refuses_what_is_not_an_unencrypted_rsa_key) {
    auto private_fails = [&](std::string_view pem) { return !load_private_key_pem(pem).has_value(); };
    auto public_fails = [&](std::string_view pem) { return !load_public_key_pem(pem).has_value(); };
    auto cert_fails = [&](std::string_view pem) { return !load_certificate_pem(pem).has_value(); };

    EXPECT_TRUE(private_fails(file("encrypted_pkcs8.pem"))) << "no passphrase prompt, just an error";
    EXPECT_TRUE(private_fails(file("encrypted_pkcs1.pem")));
    EXPECT_TRUE(private_fails(file("ec.pem"))) << "EC is not WeChat Pay's RSA mode";
    EXPECT_TRUE(public_fails(file("ec_pub.pem")));
    EXPECT_TRUE(cert_fails(file("ec_cert.pem")));
    EXPECT_TRUE(private_fails(file("spki.pem")));
    EXPECT_TRUE(private_fails(file("cert.pem")));
    EXPECT_TRUE(public_fails(file("pkcs8.pem"))) << "a private key file is not a public key file";
    EXPECT_TRUE(public_fails(file("cert.pem")));
    EXPECT_TRUE(cert_fails(file("spki.pem")));
    for (const std::string garbage :
         {"", "hello", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
          "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
          "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}) {
        EXPECT_TRUE(private_fails(garbage)) << garbage;
        EXPECT_TRUE(public_fails(garbage)) << garbage;
        EXPECT_TRUE(cert_fails(garbage)) << garbage;
    }
    const auto failure = load_private_key_pem("hello");
    ASSERT_FALSE(failure.has_value());
    EXPECT_EQ(failure.err().code, errc::parse_error);
    EXPECT_FALSE(failure.err().message.empty());
}

TEST(rsa, empty_keys_are_handled) {
    const private_key none;
    EXPECT_FALSE(none.public_part());
    const auto signature = rsa_sha256_sign(none, "x");
    ASSERT_FALSE(signature.has_value());
    EXPECT_EQ(signature.err().code, errc::invalid_argument);
    EXPECT_FALSE(rsa_sha256_verify(public_key{}, "x", std::string(256, 'x')));
    EXPECT_EQ(public_key_to_pem(public_key{}), "");
    EXPECT_EQ(public_key_fingerprint(public_key{}), "");
}

}  // namespace
}  // namespace wxrecon::crypto
