// APIv3 notifications: signature checks with the official wechatpay-go vector
// and an injected clock, envelope and payload parsing (good and hostile
// input), and the WeChat Pay side round trip used by tools and tests.
#include <gtest/gtest.h>

#include <limits>

#include <simdjson.h>

#include "base/encoding.hpp"
#include "base/time.hpp"
#include "crypto/crypto.hpp"
#include "fixture_files.hpp"
#include "protocol/v3.hpp"

namespace wxrecon::protocol::v3 {
namespace {

struct go_vector {
    std::string body, timestamp, nonce, signature, serial;
    std::int64_t now = 0;
    crypto::public_key key;
};

go_vector load_go_vector() {
    const std::string json = fixtures::read_data("v3_notification_vector.json");
    simdjson::dom::parser parser;
    const auto doc = parser.parse(json);
    go_vector v;
    v.body = std::string(std::string_view(doc["body"]));
    v.now = int64_t(doc["now_unix"]);
    const auto h = doc["headers"];
    v.timestamp = std::string(std::string_view(h["Wechatpay-Timestamp"]));
    v.nonce = std::string(std::string_view(h["Wechatpay-Nonce"]));
    v.signature = std::string(std::string_view(h["Wechatpay-Signature"]));
    v.serial = std::string(std::string_view(h["Wechatpay-Serial"]));
    auto cert = crypto::load_certificate_pem(fixtures::read_data("wechatpay_go_test_cert.pem"));
    EXPECT_TRUE(cert.has_value());
    v.key = cert->key;
    return v;
}

status check(const go_vector& v, std::int64_t now, std::string_view body, std::string_view serial_known) {
    const signature_headers h{v.timestamp, v.nonce, v.signature, v.serial};
    return verify_signature(h, body, now,
                            [&](std::string_view serial, std::int64_t) -> const crypto::public_key* {
                                return serial == serial_known ? &v.key : nullptr;
                            });
}

TEST(V3Signature, OfficialVectorVerifiesAtItsInstant) {
    const auto v = load_go_vector();
    EXPECT_TRUE(check(v, v.now, v.body, v.serial).has_value());
    EXPECT_TRUE(check(v, v.now + 300, v.body, v.serial).has_value());
    EXPECT_TRUE(check(v, v.now - 300, v.body, v.serial).has_value());
}

TEST(V3Signature, ReplayWindowIs300Seconds) {
    const auto v = load_go_vector();
    EXPECT_EQ(check(v, v.now + 301, v.body, v.serial).err().code, errc::stale_timestamp);
    EXPECT_EQ(check(v, v.now - 301, v.body, v.serial).err().code, errc::stale_timestamp);
}

// Whatever a sender puts in Wechatpay-Timestamp, the distance to now is computed without overflow (UBSan
// checks this run): the extremes of 64 bits are stale, a sign or out-of-range digits are not a Unix time.
TEST(V3Signature, ExtremeTimestampsAreStaleOrRefusedWithoutOverflow) {
    const auto v = load_go_vector();
    const auto verdict = [&](std::string_view ts, std::int64_t now) {
        const signature_headers h{ts, v.nonce, v.signature, v.serial};
        return verify_signature(h, v.body, now, [&](std::string_view, std::int64_t) { return &v.key; })
            .err()
            .code;
    };
    EXPECT_EQ(verdict("9223372036854775807", v.now), errc::stale_timestamp);
    EXPECT_EQ(verdict("18446744073709551615", v.now), errc::stale_timestamp);
    EXPECT_EQ(verdict("0", v.now), errc::stale_timestamp);
    EXPECT_EQ(verdict("0", std::numeric_limits<std::int64_t>::max()), errc::stale_timestamp);
    EXPECT_EQ(verdict("-9223372036854775808", v.now), errc::bad_signature);
    EXPECT_EQ(verdict("-1", v.now), errc::bad_signature);
    EXPECT_EQ(verdict("+1624523846", v.now), errc::bad_signature);
    EXPECT_EQ(verdict("99999999999999999999999", v.now), errc::bad_signature);
}

TEST(V3Signature, UnknownSerialTamperedBodyAndMissingHeadersFail) {
    const auto v = load_go_vector();
    EXPECT_EQ(check(v, v.now, v.body, "OTHER").err().code, errc::unknown_serial);
    std::string tampered = v.body;
    tampered[10] ^= 1;
    EXPECT_EQ(check(v, v.now, tampered, v.serial).err().code, errc::bad_signature);
    EXPECT_EQ(check(v, v.now, v.body + " ", v.serial).err().code, errc::bad_signature);
    const signature_headers missing{v.timestamp, "", v.signature, v.serial};
    EXPECT_EQ(verify_signature(missing, v.body, v.now, [](std::string_view, std::int64_t) { return nullptr; })
                  .err()
                  .code,
              errc::missing_signature);
    const signature_headers garbled{"16245x3846", v.nonce, v.signature, v.serial};
    EXPECT_EQ(verify_signature(garbled, v.body, v.now, [](std::string_view, std::int64_t) { return nullptr; })
                  .err()
                  .code,
              errc::bad_signature);
}

TEST(V3Signature, ProbePrefix) {
    EXPECT_TRUE(is_probe("WECHATPAY/SIGNTEST/abc"));
    EXPECT_FALSE(is_probe("wechatpay/signtest/abc"));
    EXPECT_FALSE(is_probe("abc"));
}

TEST(V3Envelope, OfficialVectorParsesAndItsSixteenByteKeyIsRefused) {
    const auto v = load_go_vector();
    const auto env = parse_envelope(v.body);
    ASSERT_TRUE(env.has_value()) << env.err().message;
    EXPECT_EQ(env->id, "3119dfba-e649-5eec-ab1e-3412bc4d2e17");
    EXPECT_EQ(env->event_type, "PAYSCORE.USER_OPEN_SERVICE");
    EXPECT_EQ(env->res.algorithm, "AEAD_AES_256_GCM");
    EXPECT_EQ(env->res.nonce, "Kj7QIyUiYx1q");
    EXPECT_EQ(env->res.associated_data, "payscore");
    EXPECT_EQ(decrypt_resource(env->res, "testMchAPIv3Key0").err().code, errc::decrypt_failed);
}

TEST(V3Envelope, HostileBodiesAreErrorsNotCrashes) {
    const char* bodies[] = {
        "",
        "null",
        "[]",
        "{",
        "{\"id\":1}",
        "{\"id\":\"a\",\"event_type\":\"X\"}",
        "{\"id\":\"a\",\"event_type\":\"X\",\"resource\":[]}",
        "{\"id\":\"a\",\"event_type\":\"X\",\"resource\":{\"algorithm\":\"AEAD_AES_256_GCM\"}}"};
    for (const char* b : bodies) EXPECT_FALSE(parse_envelope(b).has_value()) << b;
}

TEST(V3Envelope, WrongAlgorithmAndBadBase64AreDecryptFailures) {
    resource r{"AES_128_CBC", "AAAA", "123456789012", "transaction", "transaction"};
    EXPECT_EQ(decrypt_resource(r, std::string(32, 'k')).err().code, errc::decrypt_failed);
    r.algorithm = "AEAD_AES_256_GCM";
    r.ciphertext = "***";
    EXPECT_EQ(decrypt_resource(r, std::string(32, 'k')).err().code, errc::decrypt_failed);
}

// The DERIVED transaction vector of docs/protocol-notes.md §9.2.
TEST(V3Transaction, DerivedVectorDecryptsAndParses) {
    const std::string ciphertext =
        "fCGbTgyG47RB1xNUbNfsU48xCoj5jS4HfzDwc7ROSY8uBCbgWxPu2DiMvBo+"
        "CU8l6T8rCFx27uHXvbLeYOpFno7az0uh6ehWiGYFjGtRlaC3"
        "QnGN7p70mH2dHfqq3x4wXByrT6RRGwN+XvPfDi4kyvtYzshghxe55HFj5SJ1MHM8SGJ++"
        "foaube3deQ5b98brxJGZ1ZBpTEPh1JjAnxWx3fo"
        "7HjyPo6KvqaNXRJwaQ+vFlRjmG1htYDgY11UVotfJ7aLDQFLcJXWWMRXlpwBNnZvB5MBJsLauIB0/"
        "PbfkjHj28DfYMkEu0w34UBUiIBu2bTf"
        "wrREV6btwgBPZEJFH6E2hCsDQguO5qXVg+magE819iIClKFkDzMrcQFYL8tFSPpvy/"
        "8aaWQIlQWvyKBMwgGWSWdhvodjszJZROaqNCRTOBMA"
        "BmUGAYe0yQyGuy6YOplUu7uT06NtrUw4P9t3BU8rWvI6tT6NHAQmh5QRRrYsC9ziVoIOEwkRLmp9+"
        "zlYjE7QRoWjR2g2IEUEzrDfAPDm4ikN"
        "YCj1Drm9JkpOBP5SacKnZ25P9QnCv18FQ9nEuYs23HXFFA886TiQjUZ+";
    const resource r{"AEAD_AES_256_GCM", ciphertext, "EtBsrrWLbVSr", "transaction", "transaction"};
    const auto plain = decrypt_resource(r, "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb");
    ASSERT_TRUE(plain.has_value()) << plain.err().message;
    const auto tx = parse_transaction(*plain);
    ASSERT_TRUE(tx.has_value()) << tx.err().message;
    EXPECT_EQ(tx->mchid, "1230000109");
    EXPECT_EQ(tx->payment.out_trade_no, "1217752501201407033233368018");
    EXPECT_EQ(tx->payment.transaction_id, "4200000000000000000000000001");
    EXPECT_EQ(tx->payment.state, domain::trade_state::success);
    EXPECT_EQ(tx->payment.amount_total, 100);
    EXPECT_EQ(tx->payment.payer_total, 100);
    EXPECT_EQ(tx->payment.payer_openid, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o");
    EXPECT_EQ(tx->payment.success_time, *parse_rfc3339("2018-06-08T10:34:56+08:00") * 1'000'000);
}

TEST(V3Transaction, UnpaidOrderWithoutOptionalFieldsParses) {
    const auto tx = parse_transaction(
        R"({"mchid":"1900000109","out_trade_no":"T1","trade_state":"NOTPAY","trade_state_desc":"未支付"})");
    ASSERT_TRUE(tx.has_value()) << tx.err().message;
    EXPECT_EQ(tx->payment.state, domain::trade_state::notpay);
    EXPECT_FALSE(tx->payment.amount_total);
    EXPECT_TRUE(tx->payment.payer_openid.empty());
}

TEST(V3Transaction, InvalidPayloadsAreRefused) {
    const char* payloads[] = {
        "not json",
        R"({"out_trade_no":"T1","trade_state":"SUCCESS"})",
        R"({"mchid":"1","out_trade_no":"T1"})",
        R"({"mchid":"1","out_trade_no":"T1","trade_state":"PAID"})",
        R"({"mchid":"1","out_trade_no":"","trade_state":"SUCCESS"})",
        R"({"mchid":"1","out_trade_no":"T1","trade_state":"SUCCESS","amount":{"total":-1}})",
        R"({"mchid":"1","out_trade_no":"T1","trade_state":"SUCCESS","amount":{"total":"100"}})",
        R"({"mchid":"1","out_trade_no":"T1","trade_state":"SUCCESS","success_time":"2018-06-08 10:34:56"})",
        R"({"mchid":"1","out_trade_no":"T1","trade_state":"SUCCESS","payer":"x","amount":[]})",
    };
    for (const char* p : payloads) {
        const auto tx = parse_transaction(p);
        // A payer or amount of the wrong shape is ignored; everything else must be refused.
        if (std::string_view(p).find("\"payer\":\"x\"") != std::string_view::npos) continue;
        EXPECT_FALSE(tx.has_value()) << p;
    }
}

// A field twice in one object: the readers would take the first value and jsonb (the stored payload) the
// last, so the document is refused, naming the field, at any depth.
TEST(V3Transaction, AFieldTwiceInOneObjectIsRefused) {
    const std::pair<const char*, const char*> cases[] = {
        {R"({"mchid":"1","out_trade_no":"T1","trade_state":"NOTPAY","trade_state":"SUCCESS"})",
         "trade_state"},
        {R"({"mchid":"1","out_trade_no":"T1","trade_state":"SUCCESS","amount":{"total":1,"total":100}})",
         "total"},
        {R"({"mchid":"1","out_trade_no":"T1","trade_state":"SUCCESS","promotion_detail":[{"a":1,"a":2}]})",
         "a"},
    };
    for (const auto& [payload, field] : cases) {
        const auto tx = parse_transaction(payload);
        ASSERT_FALSE(tx.has_value()) << payload;
        EXPECT_NE(tx.err().message.find(std::string("\"") + field + "\" more than once"), std::string::npos)
            << tx.err().message;
    }
    EXPECT_FALSE(parse_envelope(R"({"id":"a","id":"b","event_type":"X","resource":{}})").has_value());
    // The same keys in different objects are not duplicates.
    EXPECT_TRUE(
        parse_transaction(R"({"mchid":"1","out_trade_no":"T1","trade_state":"SUCCESS","amount":{"total":1},)"
                          R"("payer":{"total":1}})")
            .has_value());
}

TEST(V3Refund, ParsesNotificationAndApiSpellings) {
    const auto r = parse_refund(
        R"({"mchid":"1900000109","out_trade_no":"T1","transaction_id":"42","out_refund_no":"R1","refund_id":"50",)"
        R"("refund_status":"SUCCESS","success_time":"2018-06-08T10:34:56+08:00","amount":{"total":100,"refund":40}})");
    ASSERT_TRUE(r.has_value()) << r.err().message;
    EXPECT_EQ(r->refund.status, domain::refund_status::success);
    EXPECT_EQ(r->refund.amount_refund, 40);
    EXPECT_EQ(r->refund.amount_total, 100);
    const auto api = parse_refund(
        R"({"mchid":"1","out_trade_no":"T1","out_refund_no":"R1","status":"PROCESSING","amount":{"refund":1}})");
    ASSERT_TRUE(api.has_value());
    EXPECT_EQ(api->refund.status, domain::refund_status::processing);
    EXPECT_FALSE(
        parse_refund(R"({"mchid":"1","out_trade_no":"T1","out_refund_no":"R1","refund_status":"DONE",)"
                     R"("amount":{"refund":1}})")
            .has_value());
    EXPECT_FALSE(
        parse_refund(R"({"mchid":"1","out_trade_no":"T1","out_refund_no":"R1","refund_status":"SUCCESS"})")
            .has_value());
}

TEST(V3RoundTrip, MadeNotificationVerifiesDecryptsAndParses) {
    fixtures::temp_dir dir;
    ASSERT_TRUE(fixtures::openssl(dir, "genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out key.pem"));
    const auto key = crypto::load_private_key_pem(fixtures::read_file(dir.path() / "key.pem"));
    ASSERT_TRUE(key.has_value());
    domain::payment_fact p;
    p.out_trade_no = "T9";
    p.state = domain::trade_state::success;
    p.transaction_id = "4200000009";
    p.amount_total = 990;
    p.payer_total = 900;
    const std::string apiv3_key(32, 'K');
    const notification_spec spec{
        "EV-9",        "2026-11-26T12:00:00+08:00",      "TRANSACTION.SUCCESS", "支付成功", "transaction",
        "transaction", transaction_json("1900000109", p)};
    const auto n = make_notification(spec, apiv3_key, *key, "PUB_KEY_ID_01", 1764129600);
    ASSERT_TRUE(n.has_value());
    const auto pub = key->public_part();
    const signature_headers h{n->timestamp, n->nonce, n->signature, n->serial};
    EXPECT_TRUE(verify_signature(h, n->body, 1764129600, [&](std::string_view, std::int64_t) {
                    return &pub;
                }).has_value());
    const auto env = parse_envelope(n->body);
    ASSERT_TRUE(env.has_value());
    const auto plain = decrypt_resource(env->res, apiv3_key);
    ASSERT_TRUE(plain.has_value());
    const auto tx = parse_transaction(*plain);
    ASSERT_TRUE(tx.has_value());
    EXPECT_EQ(tx->payment.amount_total, 990);
    EXPECT_EQ(tx->payment.payer_total, 900);
}

}  // namespace
}  // namespace wxrecon::protocol::v3
