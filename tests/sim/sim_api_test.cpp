// wxpay-sim's merchant-facing API over real HTTP, driven the way a merchant would drive WeChat Pay:
// hand-signed APIv3 requests (docs/protocol-notes.md §1), responses checked like §2 says, the query / close /
// refund endpoints of §4, JSAPI prepay (§1.6 b, §5.1), APIv2 XML (§7), the mini-program login exchange, the
// fault switches and the seeded reproducibility of the notification plan.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../unit/fixture_files.hpp"
#include "base/encoding.hpp"
#include "base/time.hpp"
#include "crypto/crypto.hpp"
#include "protocol/v2.hpp"
#include "protocol/v3.hpp"
#include "sim_env.hpp"
#include "test_env.hpp"

namespace wxrecon::testing {
namespace {

namespace fs = std::filesystem;
namespace v2 = protocol::v2;
namespace v3 = protocol::v3;
using header_list = std::vector<std::pair<std::string, std::string>>;

// A four-merchant key set: sim_keys.cpp cycles through these modes in this order.
constexpr std::size_t public_key_merchant = 0;     // APIv3, WeChat Pay public key
constexpr std::size_t v2_merchant = 1;             // APIv2
constexpr std::size_t platform_cert_merchant = 2;  // APIv3, platform certificate
constexpr std::size_t mixed_merchant = 3;          // APIv3, migrating between the two

// Nothing listens there: notifications fail and wait 15 s for their retry, long after a test ends.
const std::string unreachable_notify_url = "http://127.0.0.1:1/x";
constexpr const char* absent = "<absent>";

std::string json_string(std::string_view s) {
    return "\"" + std::string(s) + "\"";
}

// ---------------------------------------------------------------- JSON reading

// A parsed JSON document; fields are read by JSON pointer ("/amount/total").
class json_doc {
public:
    explicit json_doc(std::string_view text) : padded_(text) {
        valid_ = parser_.parse(padded_).get(root_) == simdjson::SUCCESS;
    }
    json_doc(const json_doc&) = delete;
    json_doc& operator=(const json_doc&) = delete;

    bool valid() const { return valid_; }
    simdjson::dom::element root() const { return root_; }
    bool has(std::string_view pointer) const {
        simdjson::dom::element e;
        return valid_ && root_.at_pointer(pointer).get(e) == simdjson::SUCCESS;
    }
    // The string at pointer, or "<absent>" when there is none (so a mismatch prints clearly).
    std::string str(std::string_view pointer) const {
        std::string_view v;
        if (!valid_ || root_.at_pointer(pointer).get(v) != simdjson::SUCCESS) return absent;
        return std::string(v);
    }
    std::optional<std::int64_t> integer(std::string_view pointer) const {
        std::int64_t v = 0;
        if (!valid_ || root_.at_pointer(pointer).get(v) != simdjson::SUCCESS) return std::nullopt;
        return v;
    }
    std::optional<bool> boolean(std::string_view pointer) const {
        bool v = false;
        if (!valid_ || root_.at_pointer(pointer).get(v) != simdjson::SUCCESS) return std::nullopt;
        return v;
    }
    simdjson::dom::array array(std::string_view pointer) const {
        simdjson::dom::array a;
        if (!valid_ || root_.at_pointer(pointer).get(a) != simdjson::SUCCESS)
            throw std::runtime_error("no JSON array at " + std::string(pointer));
        return a;
    }

private:
    simdjson::dom::parser parser_;
    simdjson::padded_string padded_;
    simdjson::dom::element root_;
    bool valid_ = false;
};

std::string element_str(simdjson::dom::element e, std::string_view pointer) {
    std::string_view v;
    if (e.at_pointer(pointer).get(v) != simdjson::SUCCESS) return absent;
    return std::string(v);
}

// ---------------------------------------------------------------- merchants and their keys

// What a merchant holds (docs/protocol-notes.md §0.2), read from the files `wxpay-sim keys` wrote.
struct merchant_identity {
    std::string mchid;
    std::string appid;
    sim::key_mode mode = sim::key_mode::public_key;
    std::string merchant_serial;      // serial_no of the Authorization header
    std::string public_key_id;        // PUB_KEY_ID_…
    fs::path dir;                     // <keydir>/<mchid>
    crypto::private_key signing_key;  // apiclient_key.pem
};

std::string key_file(const merchant_identity& m, std::string_view name) {
    return fixtures::read_file(m.dir / name);
}

crypto::public_key wechatpay_public_key(const merchant_identity& m) {
    auto key = crypto::load_public_key_pem(key_file(m, "wechatpay_pub_key.pem"));
    if (!key) throw std::runtime_error("wechatpay_pub_key.pem: " + key.err().message);
    return *key;
}

crypto::certificate platform_certificate(const merchant_identity& m) {
    auto cert = crypto::load_certificate_pem(key_file(m, "wechatpay_platform_cert.pem"));
    if (!cert) throw std::runtime_error("wechatpay_platform_cert.pem: " + cert.err().message);
    return *cert;
}

// The key WeChat Pay signs this merchant's API responses with (docs/protocol-notes.md §2.6) when the request
// carries no Wechatpay-Serial header: the public key in public_key mode, the platform certificate otherwise.
struct response_signer {
    crypto::public_key key;
    std::string serial;
};
response_signer default_response_signer(const merchant_identity& m) {
    if (m.mode == sim::key_mode::public_key) return {wechatpay_public_key(m), m.public_key_id};
    const auto cert = platform_certificate(m);
    return {cert.key, cert.serial};
}

// ---------------------------------------------------------------- signed APIv3 calls

std::string authorization(const merchant_identity& m, const std::string& method,
                          const std::string& canonical_url, const std::string& body,
                          const crypto::private_key& key, const std::string& serial, std::int64_t signed_at) {
    auto header = v3::sign_request(method, canonical_url, body, m.mchid, serial, key, signed_at);
    if (!header) throw std::runtime_error("sign_request: " + header.err().message);
    return *header;
}

// Sends method + target signed as docs/protocol-notes.md §1.1 says: canonical URL = the target exactly as
// sent.
http_response signed_call(unsigned short port, const merchant_identity& m, const std::string& method,
                          const std::string& target, const std::string& body = {}, header_list extra = {}) {
    header_list headers = {{"Accept", "application/json"},
                           {"User-Agent", "wxrecon-sim-test"},
                           {"Authorization", authorization(m, method, target, body, m.signing_key,
                                                           m.merchant_serial, wall_clock{}.seconds())}};
    if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
    for (auto& h : extra) headers.push_back(std::move(h));
    return http_request(port, method, target, headers, body);
}

http_response signed_get(unsigned short port, const merchant_identity& m, const std::string& target,
                         header_list extra = {}) {
    return signed_call(port, m, "GET", target, {}, std::move(extra));
}

http_response signed_post(unsigned short port, const merchant_identity& m, const std::string& target,
                          const std::string& body) {
    return signed_call(port, m, "POST", target, body);
}

std::string query_by_out_trade_no(const merchant_identity& m, const std::string& out_trade_no) {
    return "/v3/pay/transactions/out-trade-no/" + out_trade_no + "?mchid=" + m.mchid;
}

std::string query_by_transaction_id(const merchant_identity& m, const std::string& transaction_id) {
    return "/v3/pay/transactions/id/" + transaction_id + "?mchid=" + m.mchid;
}

// docs/protocol-notes.md §2.3 on a response: headers present, timestamp fresh, key chosen by serial,
// RSA-SHA256 over the raw body.
status check_response_signature(const http_response& r, const crypto::public_key& key,
                                const std::string& serial) {
    const std::string timestamp = r.header("Wechatpay-Timestamp");
    const std::string nonce = r.header("Wechatpay-Nonce");
    const std::string signature = r.header("Wechatpay-Signature");
    const std::string sent_serial = r.header("Wechatpay-Serial");
    const v3::signature_headers h{timestamp, nonce, signature, sent_serial};
    return v3::verify_signature(h, r.body, wall_clock{}.seconds(),
                                [&](std::string_view s, std::int64_t) -> const crypto::public_key* {
                                    return s == serial ? &key : nullptr;
                                });
}

::testing::AssertionResult signed_by(const http_response& r, const crypto::public_key& key,
                                     const std::string& serial) {
    const auto verdict = check_response_signature(r, key, serial);
    if (verdict) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "response signature (serial " << r.header("Wechatpay-Serial") << ") does not verify with "
           << serial << ": " << to_string(verdict.err().code) << ": " << verdict.err().message;
}

::testing::AssertionResult signed_by(const http_response& r, const response_signer& signer) {
    return signed_by(r, signer.key, signer.serial);
}

// ---------------------------------------------------------------- /sim control API

void create_order(unsigned short port, const merchant_identity& m, const std::string& out_trade_no,
                  std::int64_t amount, const std::string& notify_url = unreachable_notify_url) {
    sim_control(port, "/sim/orders",
                "{\"mchid\":" + json_string(m.mchid) + ",\"out_trade_no\":" + json_string(out_trade_no) +
                    ",\"amount\":" + std::to_string(amount) + ",\"notify_url\":" + json_string(notify_url) +
                    "}");
}

// The user pays (the order total unless amount is given); returns the transaction_id.
std::string pay_order(unsigned short port, const merchant_identity& m, const std::string& out_trade_no,
                      std::optional<std::int64_t> amount = std::nullopt) {
    std::string body =
        "{\"mchid\":" + json_string(m.mchid) + ",\"out_trade_no\":" + json_string(out_trade_no);
    if (amount) body += ",\"amount\":" + std::to_string(*amount);
    const json_doc answer(sim_control(port, "/sim/pay", body + "}"));
    const std::string transaction_id = answer.str("/transaction_id");
    if (transaction_id == absent) throw std::runtime_error("/sim/pay answered no transaction_id");
    return transaction_id;
}

// The protocol readings (docs/protocol-notes.md §11 UNCONFIRMED points) the simulator picked for one
// merchant.
struct merchant_variants {
    bool old_not_found_spelling = false;
    bool alt_rate_limit_spelling = false;
    bool old_system_error_spelling = false;
    bool close_paid_is_trade_error = false;
};

merchant_variants variants_of(unsigned short port, const std::string& mchid) {
    const auto r = http_request(port, "GET", "/sim/merchants");
    if (r.status != 200) throw std::runtime_error("/sim/merchants answered " + std::to_string(r.status));
    const json_doc list(r.body);
    for (const simdjson::dom::element entry : list.array("")) {
        if (element_str(entry, "/mchid") != mchid) continue;
        auto flag = [&](std::string_view name) {
            bool value = false;
            if (entry.at_pointer("/variants/" + std::string(name)).get(value) != simdjson::SUCCESS)
                throw std::runtime_error("/sim/merchants: no variants." + std::string(name));
            return value;
        };
        return {flag("old_not_found_spelling"), flag("alt_rate_limit_spelling"),
                flag("old_system_error_spelling"), flag("close_paid_is_trade_error")};
    }
    throw std::runtime_error("/sim/merchants does not list " + mchid);
}

// ---------------------------------------------------------------- APIv2

std::string v2_field(const v2::fields& f, std::string_view name) {
    const auto it = f.find(name);
    return it == f.end() ? absent : it->second;
}

v2::fields post_v2(unsigned short port, const std::string& path, const std::string& xml) {
    const auto r = http_request(port, "POST", path, {{"Content-Type", "text/xml"}}, xml);
    if (r.status != 200) throw std::runtime_error(path + " answered HTTP " + std::to_string(r.status));
    auto parsed = v2::parse_xml(r.body);
    if (!parsed) throw std::runtime_error(path + " answered unparsable XML: " + parsed.err().message);
    return *parsed;
}

// A signed /pay/orderquery request by out_trade_no; sign_type is sent only for HMAC-SHA256
// (MD5 is the default).
v2::fields signed_orderquery_fields(const merchant_identity& m, const std::string& api_key,
                                    const std::string& out_trade_no, v2::sign_type type) {
    v2::fields f{{"appid", m.appid},
                 {"mch_id", m.mchid},
                 {"out_trade_no", out_trade_no},
                 {"nonce_str", crypto::random_alnum(32)}};
    if (type == v2::sign_type::hmac_sha256) f["sign_type"] = "HMAC-SHA256";
    f["sign"] = v2::sign(f, api_key, type);
    return f;
}

// ---------------------------------------------------------------- the fixture

// One key set for the whole suite (RSA key generation is the slow part); a fresh simulator per test,
// so faults and certificate rotations never leak from one test into another.
class SimApi : public ::testing::Test {
protected:
    static void SetUpTestSuite() { key_dir_ = new sim_key_dir(4); }
    static void TearDownTestSuite() {
        delete key_dir_;
        key_dir_ = nullptr;
    }
    void SetUp() override { sim_ = std::make_unique<running_simulator>(*key_dir_, sim::sim_options{}); }
    void TearDown() override { sim_.reset(); }

    // Replaces this test's simulator by one with another seed (the protocol variants depend on it).
    void restart_with_seed(std::uint64_t seed) {
        sim_.reset();
        sim::sim_options options;
        options.seed = seed;
        sim_ = std::make_unique<running_simulator>(*key_dir_, options);
    }

    static const sim_key_dir& key_dir() { return *key_dir_; }
    unsigned short sim_port() const { return sim_->port(); }

    static merchant_identity identity(std::size_t index) {
        const sim::sim_merchant& k = key_dir_->keys.merchants.at(index);
        merchant_identity m;
        m.mchid = k.mchid;
        m.appid = k.appid;
        m.mode = k.mode;
        m.merchant_serial = k.merchant_serial;
        m.public_key_id = k.public_key_id;
        m.dir = key_dir_->dir / k.mchid;
        auto key = crypto::load_private_key_pem(fixtures::read_file(m.dir / "apiclient_key.pem"));
        if (!key) throw std::runtime_error("apiclient_key.pem: " + key.err().message);
        m.signing_key = *key;
        return m;
    }

    static inline sim_key_dir* key_dir_ = nullptr;
    std::unique_ptr<running_simulator> sim_;
};

// ================================================================ the tests

// docs/protocol-notes.md §1 signing + §4.1 query + §2.4/§2.5/§2.6: a hand-signed query is accepted, and the
// answer is signed with the key the merchant's key mode says — public key, platform certificate, or (mixed)
// whichever the request's Wechatpay-Serial asks for.
TEST_F(SimApi, QueryRoundTripIsSignedWithTheMerchantsKey) {
    const auto pub = identity(public_key_merchant);
    const auto cert = identity(platform_cert_merchant);
    const auto mixed = identity(mixed_merchant);

    create_order(sim_port(), pub, "QRT-PUBKEY-0001", 100);
    const auto by_public_key = signed_get(sim_port(), pub, query_by_out_trade_no(pub, "QRT-PUBKEY-0001"));
    ASSERT_EQ(by_public_key.status, 200) << by_public_key.body;
    const json_doc pub_answer(by_public_key.body);
    EXPECT_EQ(pub_answer.str("/trade_state"), "NOTPAY");
    EXPECT_EQ(pub_answer.str("/out_trade_no"), "QRT-PUBKEY-0001");
    EXPECT_EQ(pub_answer.str("/mchid"), pub.mchid);
    EXPECT_EQ(by_public_key.header("Wechatpay-Serial"), pub.public_key_id);
    EXPECT_EQ(by_public_key.header("Wechatpay-Signature-Type"), "WECHATPAY2-SHA256-RSA2048");
    EXPECT_TRUE(signed_by(by_public_key, wechatpay_public_key(pub), pub.public_key_id));
    // The platform certificate's key did not sign it: the check really depends on the key.
    const auto pub_platform = platform_certificate(pub);
    EXPECT_FALSE(check_response_signature(by_public_key, pub_platform.key, pub.public_key_id).has_value());

    create_order(sim_port(), cert, "QRT-CERT-0001", 100);
    const auto by_certificate = signed_get(sim_port(), cert, query_by_out_trade_no(cert, "QRT-CERT-0001"));
    ASSERT_EQ(by_certificate.status, 200) << by_certificate.body;
    EXPECT_EQ(json_doc(by_certificate.body).str("/trade_state"), "NOTPAY");
    const auto platform = platform_certificate(cert);
    EXPECT_EQ(by_certificate.header("Wechatpay-Serial"), platform.serial);
    EXPECT_TRUE(signed_by(by_certificate, platform.key, platform.serial));
    EXPECT_FALSE(
        check_response_signature(by_certificate, wechatpay_public_key(cert), platform.serial).has_value());

    // docs/protocol-notes.md §2.6 migration: responses use the public key only when the request sent
    // Wechatpay-Serial PUB_KEY_ID_.
    create_order(sim_port(), mixed, "QRT-MIXED-0001", 100);
    const auto mixed_default = signed_get(sim_port(), mixed, query_by_out_trade_no(mixed, "QRT-MIXED-0001"));
    ASSERT_EQ(mixed_default.status, 200) << mixed_default.body;
    const auto mixed_platform = platform_certificate(mixed);
    EXPECT_EQ(mixed_default.header("Wechatpay-Serial"), mixed_platform.serial);
    EXPECT_TRUE(signed_by(mixed_default, mixed_platform.key, mixed_platform.serial));
    const auto mixed_asking = signed_get(sim_port(), mixed, query_by_out_trade_no(mixed, "QRT-MIXED-0001"),
                                         {{"Wechatpay-Serial", mixed.public_key_id}});
    ASSERT_EQ(mixed_asking.status, 200) << mixed_asking.body;
    EXPECT_EQ(mixed_asking.header("Wechatpay-Serial"), mixed.public_key_id);
    EXPECT_TRUE(signed_by(mixed_asking, wechatpay_public_key(mixed), mixed.public_key_id));
}

// docs/protocol-notes.md §2.2 with an independent implementation: the openssl CLI verifies
// "<timestamp>\n<nonce>\n<body>\n" against the Base64-decoded Wechatpay-Signature and the merchant's WeChat
// Pay public key PEM.
TEST_F(SimApi, ResponseSignatureVerifiesWithOpensslCli) {
    const auto m = identity(public_key_merchant);
    create_order(sim_port(), m, "OSSL-0000000001", 100);
    const auto r = signed_get(sim_port(), m, query_by_out_trade_no(m, "OSSL-0000000001"));
    ASSERT_EQ(r.status, 200) << r.body;

    const fixtures::temp_dir tmp;
    const auto raw_signature = base64_decode(r.header("Wechatpay-Signature"));
    ASSERT_TRUE(raw_signature.has_value())
        << "Wechatpay-Signature is not Base64: " << r.header("Wechatpay-Signature");
    EXPECT_EQ(raw_signature->size(), 256u);  // RSA-2048
    fs::copy_file(m.dir / "wechatpay_pub_key.pem", tmp / "wechatpay_pub_key.pem");
    fixtures::write_file(tmp / "sig", *raw_signature);
    fixtures::write_file(tmp / "msg", r.header("Wechatpay-Timestamp") + "\n" + r.header("Wechatpay-Nonce") +
                                          "\n" + r.body + "\n");
    EXPECT_TRUE(fixtures::openssl(tmp, "dgst -sha256 -verify wechatpay_pub_key.pem -signature sig msg"))
        << fixtures::read_file(tmp / "openssl.log");

    // Control: the same check refuses the message without its final newline.
    fixtures::write_file(
        tmp / "msg2", r.header("Wechatpay-Timestamp") + "\n" + r.header("Wechatpay-Nonce") + "\n" + r.body);
    EXPECT_FALSE(fixtures::openssl(tmp, "dgst -sha256 -verify wechatpay_pub_key.pem -signature sig msg2"));
}

// docs/protocol-notes.md §1.5: a wrong key, a wrong serial_no, a timestamp more than 300 s old, a missing
// header and a canonical URL that is not the one sent are all 401 SIGN_ERROR.
TEST_F(SimApi, AuthorizationFailuresAreSignErrors) {
    const auto m = identity(public_key_merchant);
    create_order(sim_port(), m, "AUTH-0000000001", 100);
    const std::string target = query_by_out_trade_no(m, "AUTH-0000000001");
    auto send = [&](const std::string& auth_header) {
        return http_request(sim_port(), "GET", target,
                            {{"Accept", "application/json"}, {"Authorization", auth_header}});
    };
    auto expect_sign_error = [](const http_response& r, const std::string& what) {
        EXPECT_EQ(r.status, 401) << what << ": " << r.body;
        EXPECT_EQ(json_doc(r.body).str("/code"), "SIGN_ERROR") << what << ": " << r.body;
    };

    // Control: within the window (250 s old) with the right key and serial the call succeeds.
    const auto fine = send(
        authorization(m, "GET", target, "", m.signing_key, m.merchant_serial, wall_clock{}.seconds() - 250));
    EXPECT_EQ(fine.status, 200) << fine.body;

    auto stranger = crypto::generate_rsa_key();
    ASSERT_TRUE(stranger.has_value()) << stranger.err().message;
    expect_sign_error(
        send(authorization(m, "GET", target, "", *stranger, m.merchant_serial, wall_clock{}.seconds())),
        "signed with a key the merchant does not have");

    std::string wrong_serial = m.merchant_serial;
    wrong_serial.back() = wrong_serial.back() == 'A' ? 'B' : 'A';
    expect_sign_error(
        send(authorization(m, "GET", target, "", m.signing_key, wrong_serial, wall_clock{}.seconds())),
        "wrong serial_no");

    const auto stale = send(
        authorization(m, "GET", target, "", m.signing_key, m.merchant_serial, wall_clock{}.seconds() - 301));
    expect_sign_error(stale, "timestamp 301 s old");
    EXPECT_EQ(json_doc(stale.body).str("/message"),
              "Http头Authorization中的timestamp与发起请求的时间不得超过5分钟");

    // |now - timestamp| > 300 s: the future counts too.
    expect_sign_error(send(authorization(m, "GET", target, "", m.signing_key, m.merchant_serial,
                                         wall_clock{}.seconds() + 310)),
                      "timestamp 310 s ahead");

    expect_sign_error(http_request(sim_port(), "GET", target, {{"Accept", "application/json"}}),
                      "no Authorization");

    // docs/protocol-notes.md §1.1: the ?mchid= query string is part of the canonical URL.
    const std::string path_only = "/v3/pay/transactions/out-trade-no/AUTH-0000000001";
    expect_sign_error(send(authorization(m, "GET", path_only, "", m.signing_key, m.merchant_serial,
                                         wall_clock{}.seconds())),
                      "signed without the query string");
}

// docs/protocol-notes.md §4.1/§4.2: after payment both query forms answer SUCCESS with transaction_id,
// payer.openid and amount.total == payer_total == what the user paid — also when that differs from the order
// amount.
TEST_F(SimApi, PaidOrderQueriesAsSuccessByBothIds) {
    const auto m = identity(public_key_merchant);
    const auto signer = default_response_signer(m);
    create_order(sim_port(), m, "PAID-0000000001", 100);
    const std::string transaction_id = pay_order(sim_port(), m, "PAID-0000000001");
    ASSERT_FALSE(transaction_id.empty());

    for (const std::string& target :
         {query_by_out_trade_no(m, "PAID-0000000001"), query_by_transaction_id(m, transaction_id)}) {
        SCOPED_TRACE(target);
        const auto r = signed_get(sim_port(), m, target);
        ASSERT_EQ(r.status, 200) << r.body;
        EXPECT_TRUE(signed_by(r, signer));
        const json_doc q(r.body);
        EXPECT_EQ(q.str("/trade_state"), "SUCCESS");
        EXPECT_EQ(q.str("/out_trade_no"), "PAID-0000000001");
        EXPECT_EQ(q.str("/transaction_id"), transaction_id);
        EXPECT_EQ(q.str("/mchid"), m.mchid);
        EXPECT_EQ(q.str("/appid"), m.appid);
        EXPECT_EQ(q.integer("/amount/total"), 100);
        EXPECT_EQ(q.integer("/amount/payer_total"), 100);
        EXPECT_EQ(q.str("/amount/currency"), "CNY");
        EXPECT_NE(q.str("/payer/openid"), absent);
        EXPECT_FALSE(q.str("/payer/openid").empty());
        EXPECT_NE(q.str("/success_time"), absent);
    }

    // The user pays 150 on a 100 order: the query reports what WeChat took.
    create_order(sim_port(), m, "PAID-0000000002", 100);
    const std::string other_id = pay_order(sim_port(), m, "PAID-0000000002", 150);
    EXPECT_NE(other_id, transaction_id);
    const auto r = signed_get(sim_port(), m, query_by_transaction_id(m, other_id));
    ASSERT_EQ(r.status, 200) << r.body;
    const json_doc q(r.body);
    EXPECT_EQ(q.str("/trade_state"), "SUCCESS");
    EXPECT_EQ(q.str("/out_trade_no"), "PAID-0000000002");
    EXPECT_EQ(q.integer("/amount/total"), 150);
    EXPECT_EQ(q.integer("/amount/payer_total"), 150);
}

// docs/protocol-notes.md §4.4: an order WeChat does not know is 404 ORDER_NOT_EXIST, or ORDERNOTEXIST (older
// tables) — the spelling the simulator announces for that merchant in /sim/merchants. Seeds 1 and 2 are
// chosen so that both spellings occur among the APIv3 merchants (if the variant draw changes, pick other
// seeds).
TEST_F(SimApi, UnknownOrderIs404InTheAnnouncedSpelling) {
    std::set<std::string> spellings_seen;
    for (const std::uint64_t seed : {1u, 2u}) {
        restart_with_seed(seed);
        for (const std::size_t index : {public_key_merchant, platform_cert_merchant, mixed_merchant}) {
            const auto m = identity(index);
            SCOPED_TRACE("seed " + std::to_string(seed) + ", merchant " + m.mchid);
            const std::string expected =
                variants_of(sim_port(), m.mchid).old_not_found_spelling ? "ORDERNOTEXIST" : "ORDER_NOT_EXIST";
            spellings_seen.insert(expected);
            for (const std::string& target : {query_by_out_trade_no(m, "NEVER-CREATED-01"),
                                              query_by_transaction_id(m, "4200000000000000000000000001")}) {
                const auto r = signed_get(sim_port(), m, target);
                EXPECT_EQ(r.status, 404) << target << ": " << r.body;
                EXPECT_EQ(json_doc(r.body).str("/code"), expected) << target;
            }
        }
    }
    EXPECT_EQ(spellings_seen.size(), 2u) << "both spellings should have been exercised";
}

// docs/protocol-notes.md §4.1/§4.5: close answers 204 with an empty, still signed body (third line empty);
// the order is then CLOSED; closing a paid order is 400 ORDERPAID or 403 TRADE_ERROR as the merchant's
// variant says.
TEST_F(SimApi, CloseIs204SignedAndPaidOrdersRefuse) {
    std::set<std::string> refusals_seen;  // with seed 1 the three merchants use both readings
    for (const std::size_t index : {public_key_merchant, platform_cert_merchant, mixed_merchant}) {
        const auto m = identity(index);
        SCOPED_TRACE("merchant " + m.mchid);
        const auto signer = default_response_signer(m);
        const std::string close_body = "{\"mchid\":" + json_string(m.mchid) + "}";
        const std::string open_no = "CLOSE-OPEN-" + std::to_string(index);
        const std::string paid_no = "CLOSE-PAID-" + std::to_string(index);

        create_order(sim_port(), m, open_no, 100);
        const auto closed =
            signed_post(sim_port(), m, "/v3/pay/transactions/out-trade-no/" + open_no + "/close", close_body);
        EXPECT_EQ(closed.status, 204) << closed.body;
        EXPECT_EQ(closed.body, "");
        EXPECT_TRUE(signed_by(closed, signer));
        const auto after = signed_get(sim_port(), m, query_by_out_trade_no(m, open_no));
        ASSERT_EQ(after.status, 200) << after.body;
        EXPECT_EQ(json_doc(after.body).str("/trade_state"), "CLOSED");

        create_order(sim_port(), m, paid_no, 100);
        pay_order(sim_port(), m, paid_no);
        const auto refused =
            signed_post(sim_port(), m, "/v3/pay/transactions/out-trade-no/" + paid_no + "/close", close_body);
        if (variants_of(sim_port(), m.mchid).close_paid_is_trade_error) {
            EXPECT_EQ(refused.status, 403) << refused.body;
            EXPECT_EQ(json_doc(refused.body).str("/code"), "TRADE_ERROR");
        } else {
            EXPECT_EQ(refused.status, 400) << refused.body;
            EXPECT_EQ(json_doc(refused.body).str("/code"), "ORDERPAID");
        }
        refusals_seen.insert(json_doc(refused.body).str("/code"));
        const auto still_paid = signed_get(sim_port(), m, query_by_out_trade_no(m, paid_no));
        EXPECT_EQ(json_doc(still_paid.body).str("/trade_state"), "SUCCESS");
    }
    EXPECT_EQ(refusals_seen, (std::set<std::string>{"ORDERPAID", "TRADE_ERROR"}));
}

// docs/protocol-notes.md §1.6 (b) body + §5.1 re-entry rules: the same prepay again returns the same
// prepay_id; the same out_trade_no with other parameters is 400 INVALID_REQUEST; another app's appid is
// APPID_MCHID_NOT_MATCH.
TEST_F(SimApi, JsapiPrepayIsIdempotentAndChecksItsParameters) {
    const auto m = identity(public_key_merchant);
    const auto prepay_body = [&](const std::string& appid, const std::string& out_trade_no, int total) {
        return "{\"appid\":" + json_string(appid) + ",\"mchid\":" + json_string(m.mchid) +
               ",\"description\":\"Image形象店-深圳腾大-QQ公仔\",\"out_trade_no\":" +
               json_string(out_trade_no) +
               ",\"notify_url\":\"https://www.weixin.qq.com/wxpay/pay.php\",\"amount\":{\"total\":" +
               std::to_string(total) +
               ",\"currency\":\"CNY\"},\"payer\":{\"openid\":\"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o\"}}";
    };
    const std::string out_trade_no = "1217752501201407033233368018";
    const std::string jsapi = "/v3/pay/transactions/jsapi";

    const auto first = signed_post(sim_port(), m, jsapi, prepay_body(m.appid, out_trade_no, 100));
    ASSERT_EQ(first.status, 200) << first.body;
    EXPECT_TRUE(signed_by(first, default_response_signer(m)));
    const std::string prepay_id = json_doc(first.body).str("/prepay_id");
    EXPECT_TRUE(prepay_id.starts_with("wx")) << prepay_id;
    EXPECT_GT(prepay_id.size(), 2u);

    const auto again = signed_post(sim_port(), m, jsapi, prepay_body(m.appid, out_trade_no, 100));
    ASSERT_EQ(again.status, 200) << again.body;
    EXPECT_EQ(json_doc(again.body).str("/prepay_id"), prepay_id);

    const auto other_amount = signed_post(sim_port(), m, jsapi, prepay_body(m.appid, out_trade_no, 101));
    EXPECT_EQ(other_amount.status, 400) << other_amount.body;
    EXPECT_EQ(json_doc(other_amount.body).str("/code"), "INVALID_REQUEST");

    const auto wrong_app =
        signed_post(sim_port(), m, jsapi, prepay_body("wx00000000deadbeef", "PREPAY-WRONG-APP", 100));
    EXPECT_EQ(wrong_app.status, 400) << wrong_app.body;
    EXPECT_EQ(json_doc(wrong_app.body).str("/code"), "APPID_MCHID_NOT_MATCH");

    // The prepaid order exists and is unpaid.
    const auto q = signed_get(sim_port(), m, query_by_out_trade_no(m, out_trade_no));
    ASSERT_EQ(q.status, 200) << q.body;
    EXPECT_EQ(json_doc(q.body).str("/trade_state"), "NOTPAY");
}

// docs/protocol-notes.md §5.1 re-entry: "re-send with the same out_trade_no and identical parameters
// (re-entry is idempotent and returns the current prepay_id)". Parameters are JSON fields, not bytes: the
// same fields in another order (or with other whitespace) are the same parameters.
TEST_F(SimApi, JsapiPrepayReentryComparesParametersNotBytes) {
    const auto m = identity(public_key_merchant);
    const std::string jsapi = "/v3/pay/transactions/jsapi";
    const std::string fields_in_doc_order =
        "{\"appid\":" + json_string(m.appid) + ",\"mchid\":" + json_string(m.mchid) +
        ",\"description\":\"QQ公仔\",\"out_trade_no\":\"PREPAY-REENTRY-01\",\"notify_url\":"
        "\"https://www.weixin.qq.com/wxpay/pay.php\",\"amount\":{\"total\":100,\"currency\":\"CNY\"},"
        "\"payer\":{\"openid\":\"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o\"}}";
    const std::string same_fields_reordered =
        "{\"mchid\":" + json_string(m.mchid) + ", \"appid\":" + json_string(m.appid) +
        ", \"out_trade_no\":\"PREPAY-REENTRY-01\", \"description\":\"QQ公仔\", \"notify_url\":"
        "\"https://www.weixin.qq.com/wxpay/pay.php\", "
        "\"payer\":{\"openid\":\"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o\"},"
        " \"amount\":{\"currency\":\"CNY\", \"total\":100}}";

    const auto first = signed_post(sim_port(), m, jsapi, fields_in_doc_order);
    ASSERT_EQ(first.status, 200) << first.body;
    const auto again = signed_post(sim_port(), m, jsapi, same_fields_reordered);
    EXPECT_EQ(again.status, 200) << again.body;
    EXPECT_EQ(json_doc(again.body).str("/prepay_id"), json_doc(first.body).str("/prepay_id"));
}

// docs/protocol-notes.md §4.6: a refund is accepted as PROCESSING with a refund_id, its query then says
// SUCCESS, more than what remains is 403 NOT_ENOUGH, and the ledger shows the order in REFUND with the
// refunded amount.
TEST_F(SimApi, RefundIsAcceptedThenSucceedsAndCannotExceedThePayment) {
    const auto m = identity(public_key_merchant);
    const auto signer = default_response_signer(m);
    create_order(sim_port(), m, "REFUND-00000001", 100);
    const std::string transaction_id = pay_order(sim_port(), m, "REFUND-00000001");
    const auto refund_body = [&](const std::string& out_refund_no, int refund) {
        return "{\"out_trade_no\":\"REFUND-00000001\",\"out_refund_no\":" + json_string(out_refund_no) +
               ",\"reason\":\"test\",\"amount\":{\"refund\":" + std::to_string(refund) +
               ",\"total\":100,\"currency\":\"CNY\"}}";
    };

    const auto created =
        signed_post(sim_port(), m, "/v3/refund/domestic/refunds", refund_body("RF-0000000001", 30));
    ASSERT_EQ(created.status, 200) << created.body;
    EXPECT_TRUE(signed_by(created, signer));
    const json_doc accepted(created.body);
    EXPECT_EQ(accepted.str("/status"), "PROCESSING");
    const std::string refund_id = accepted.str("/refund_id");
    EXPECT_NE(refund_id, absent);
    EXPECT_FALSE(refund_id.empty());
    EXPECT_EQ(accepted.str("/out_refund_no"), "RF-0000000001");
    EXPECT_EQ(accepted.str("/transaction_id"), transaction_id);
    EXPECT_EQ(accepted.integer("/amount/refund"), 30);
    EXPECT_EQ(accepted.integer("/amount/total"), 100);

    const auto queried = signed_get(sim_port(), m, "/v3/refund/domestic/refunds/RF-0000000001");
    ASSERT_EQ(queried.status, 200) << queried.body;
    EXPECT_TRUE(signed_by(queried, signer));
    const json_doc done(queried.body);
    EXPECT_EQ(done.str("/status"), "SUCCESS");
    EXPECT_EQ(done.str("/refund_id"), refund_id);
    EXPECT_EQ(done.integer("/amount/refund"), 30);

    const auto too_much =
        signed_post(sim_port(), m, "/v3/refund/domestic/refunds", refund_body("RF-0000000002", 71));
    EXPECT_EQ(too_much.status, 403) << too_much.body;
    EXPECT_EQ(json_doc(too_much.body).str("/code"), "NOT_ENOUGH");

    const auto ledger = http_request(sim_port(), "GET", "/sim/ledger");
    ASSERT_EQ(ledger.status, 200);
    const json_doc truth(ledger.body);
    bool found = false;
    for (const simdjson::dom::element order : truth.array("/orders")) {
        if (element_str(order, "/out_trade_no") != "REFUND-00000001" ||
            element_str(order, "/mchid") != m.mchid)
            continue;
        found = true;
        EXPECT_EQ(element_str(order, "/trade_state"), "REFUND");
        std::int64_t refunded = -1;
        EXPECT_EQ(order.at_pointer("/refunded").get(refunded), simdjson::SUCCESS);
        EXPECT_EQ(refunded, 30);
    }
    EXPECT_TRUE(found) << ledger.body;
}

// docs/protocol-notes.md §2.4: /v3/certificates lists encrypted platform certificates that decrypt with the
// APIv3 key and carry the listed serial; a rotation adds the new one, and a platform_cert merchant's answers
// switch to it.
TEST_F(SimApi, CertificatesDecryptAndFollowRotation) {
    struct listed_certificate {
        std::string serial_no;
        crypto::certificate cert;
    };
    const auto fetch = [&](const merchant_identity& m, http_response* raw = nullptr) {
        const auto r = signed_get(sim_port(), m, "/v3/certificates");
        EXPECT_EQ(r.status, 200) << r.body;
        const std::string apiv3_key = key_file(m, "apiv3.key");
        std::vector<listed_certificate> out;
        const json_doc list(r.body);
        for (const simdjson::dom::element item : list.array("/data")) {
            const std::string serial_no = element_str(item, "/serial_no");
            EXPECT_EQ(element_str(item, "/encrypt_certificate/algorithm"), "AEAD_AES_256_GCM");
            EXPECT_EQ(element_str(item, "/encrypt_certificate/associated_data"), "certificate");
            const auto ciphertext = base64_decode(element_str(item, "/encrypt_certificate/ciphertext"));
            if (!ciphertext) throw std::runtime_error("ciphertext of " + serial_no + " is not Base64");
            const auto pem = crypto::aes256_gcm_decrypt(
                apiv3_key, element_str(item, "/encrypt_certificate/nonce"), "certificate", *ciphertext);
            if (!pem)
                throw std::runtime_error("certificate " + serial_no +
                                         " does not decrypt: " + pem.err().message);
            auto cert = crypto::load_certificate_pem(*pem);
            if (!cert)
                throw std::runtime_error("certificate " + serial_no +
                                         " does not load: " + cert.err().message);
            EXPECT_EQ(cert->serial, serial_no);
            EXPECT_EQ(parse_rfc3339(element_str(item, "/effective_time")).value(), cert->not_before)
                << serial_no;
            EXPECT_EQ(parse_rfc3339(element_str(item, "/expire_time")).value(), cert->not_after) << serial_no;
            out.push_back({serial_no, *cert});
        }
        if (raw != nullptr) *raw = r;
        return out;
    };

    const auto m = identity(platform_cert_merchant);
    http_response first_answer;
    const auto before = fetch(m, &first_answer);
    ASSERT_EQ(before.size(), 1u);
    EXPECT_EQ(before[0].serial_no, platform_certificate(m).serial);
    // Bootstrapping (docs/protocol-notes.md §2.4): the list is signed by the certificate it contains.
    EXPECT_TRUE(signed_by(first_answer, before[0].cert.key, before[0].serial_no));

    const json_doc rotated(
        sim_control(sim_port(), "/sim/rotate-certificate", "{\"mchid\":" + json_string(m.mchid) + "}"));
    const std::string new_serial = rotated.str("/serial");
    ASSERT_NE(new_serial, absent);
    EXPECT_NE(new_serial, before[0].serial_no);

    const auto after = fetch(m);
    ASSERT_EQ(after.size(), 2u);
    std::set<std::string> serials{after[0].serial_no, after[1].serial_no};
    EXPECT_EQ(serials, (std::set<std::string>{before[0].serial_no, new_serial}));
    EXPECT_EQ(after.back().serial_no, new_serial) << "the newest certificate comes last";
    EXPECT_GE(after.back().cert.not_before, after.front().cert.not_before);

    create_order(sim_port(), m, "ROTATE-00000001", 100);
    const auto q = signed_get(sim_port(), m, query_by_out_trade_no(m, "ROTATE-00000001"));
    ASSERT_EQ(q.status, 200) << q.body;
    EXPECT_EQ(q.header("Wechatpay-Serial"), new_serial);
    EXPECT_TRUE(signed_by(q, after.back().cert.key, new_serial));

    // A public_key merchant lists its certificates too, but keeps signing with the public key.
    const auto pub = identity(public_key_merchant);
    const auto pub_list = fetch(pub);
    ASSERT_EQ(pub_list.size(), 1u);
    EXPECT_EQ(pub_list[0].serial_no, platform_certificate(pub).serial);
}

// docs/protocol-notes.md §7.2/§7.6: /pay/orderquery signed with MD5 or HMAC-SHA256 — unknown order is
// result_code FAIL ORDERNOTEXIST, a paid one SUCCESS with total_fee and transaction_id, every answer signed
// with the request's algorithm; a wrong sign or a DOCTYPE (docs/protocol-notes.md §7.1) is return_code FAIL.
TEST_F(SimApi, ApiV2OrderQueryWithMd5AndHmacSha256) {
    const auto m = identity(v2_merchant);
    const std::string api_key = key_file(m, "apiv2.key");
    const struct {
        v2::sign_type type;
        std::string name;
        std::size_t sign_length;
    } algorithms[] = {{v2::sign_type::md5, "MD5", 32}, {v2::sign_type::hmac_sha256, "HMAC-SHA256", 64}};

    for (const auto& algorithm : algorithms) {
        SCOPED_TRACE(algorithm.name);
        const std::string out_trade_no = "V2Q-" + algorithm.name;

        const auto unknown =
            post_v2(sim_port(), "/pay/orderquery",
                    v2::to_xml(signed_orderquery_fields(m, api_key, out_trade_no, algorithm.type)));
        EXPECT_EQ(v2_field(unknown, "return_code"), "SUCCESS");
        EXPECT_EQ(v2_field(unknown, "result_code"), "FAIL");
        EXPECT_EQ(v2_field(unknown, "err_code"), "ORDERNOTEXIST");
        EXPECT_EQ(v2_field(unknown, "sign").size(), algorithm.sign_length);
        EXPECT_TRUE(v2::verify(unknown, api_key)) << v2::to_xml(unknown);

        create_order(sim_port(), m, out_trade_no, 888);
        const std::string transaction_id = pay_order(sim_port(), m, out_trade_no);
        const auto paid =
            post_v2(sim_port(), "/pay/orderquery",
                    v2::to_xml(signed_orderquery_fields(m, api_key, out_trade_no, algorithm.type)));
        EXPECT_EQ(v2_field(paid, "return_code"), "SUCCESS");
        EXPECT_EQ(v2_field(paid, "result_code"), "SUCCESS");
        EXPECT_EQ(v2_field(paid, "trade_state"), "SUCCESS");
        EXPECT_EQ(v2_field(paid, "total_fee"), "888");
        EXPECT_EQ(v2_field(paid, "transaction_id"), transaction_id);
        EXPECT_EQ(v2_field(paid, "out_trade_no"), out_trade_no);
        EXPECT_EQ(v2_field(paid, "mch_id"), m.mchid);
        EXPECT_EQ(v2_field(paid, "appid"), m.appid);
        EXPECT_EQ(v2_field(paid, "sign").size(), algorithm.sign_length);
        EXPECT_TRUE(v2::verify(paid, api_key)) << v2::to_xml(paid);
        // Control: the signature covers the fields.
        v2::fields altered = paid;
        altered["total_fee"] = "1";
        EXPECT_FALSE(v2::verify(altered, api_key));
    }

    v2::fields forged = signed_orderquery_fields(m, api_key, "V2Q-MD5", v2::sign_type::md5);
    forged["sign"] = std::string(32, '0');
    const auto bad_sign = post_v2(sim_port(), "/pay/orderquery", v2::to_xml(forged));
    EXPECT_EQ(v2_field(bad_sign, "return_code"), "FAIL");
    EXPECT_EQ(v2_field(bad_sign, "sign"), absent)
        << "a FAIL answer carries no sign (docs/protocol-notes.md §7.1)";

    const std::string signed_xml =
        v2::to_xml(signed_orderquery_fields(m, api_key, "V2Q-MD5", v2::sign_type::md5));
    const std::string with_doctype = "<!DOCTYPE xml [<!ENTITY name \"value\">]>" + signed_xml;
    const auto refused = post_v2(sim_port(), "/pay/orderquery", with_doctype);
    EXPECT_EQ(v2_field(refused, "return_code"), "FAIL");
    EXPECT_NE(v2_field(refused, "return_msg").find("XML"), std::string::npos)
        << v2_field(refused, "return_msg");
    EXPECT_EQ(v2_field(refused, "trade_state"), absent);
}

// Mini-program login: a code is exchanged once for the user's openid; a used code is 40163, a wrong
// secret 40125, and the same user always gets the same openid for the app.
TEST_F(SimApi, Jscode2sessionExchangesEachCodeOnce) {
    const auto m = identity(public_key_merchant);
    const std::string secret = key_file(m, "app_secret");
    const auto new_code = [&](const std::string& user) {
        const json_doc answer(
            sim_control(sim_port(), "/sim/login-code",
                        "{\"appid\":" + json_string(m.appid) + ",\"user\":" + json_string(user) + "}"));
        return std::pair{answer.str("/code"), answer.str("/openid")};
    };
    const auto exchange = [&](const std::string& app_secret, const std::string& code) {
        const auto r = http_request(sim_port(), "GET",
                                    "/sns/jscode2session?appid=" + m.appid + "&secret=" + app_secret +
                                        "&js_code=" + code + "&grant_type=authorization_code");
        EXPECT_EQ(r.status, 200) << r.body;
        return r.body;
    };

    const auto [code, openid] = new_code("alice");
    ASSERT_NE(code, absent);
    ASSERT_NE(openid, absent);
    const json_doc session(exchange(secret, code));
    EXPECT_EQ(session.str("/openid"), openid);
    EXPECT_NE(session.str("/session_key"), absent);
    EXPECT_FALSE(session.has("/errcode"));

    EXPECT_EQ(json_doc(exchange(secret, code)).integer("/errcode"), 40163);

    const auto [second_code, second_openid] = new_code("alice");
    EXPECT_NE(second_code, code);
    EXPECT_EQ(second_openid, openid);
    EXPECT_EQ(json_doc(exchange(secret + "0", second_code)).integer("/errcode"), 40125);
    // The refused attempt did not use the code up.
    EXPECT_EQ(json_doc(exchange(secret, second_code)).str("/openid"), openid);

    const auto [bob_code, bob_openid] = new_code("bob");
    EXPECT_NE(bob_openid, openid);
}

// docs/protocol-notes.md §4.4 error model under injected faults: 429 in the merchant's rate-limit spelling,
// 500 in its system-error spelling, and a 200 whose signature fails docs/protocol-notes.md §2.3; bad fault
// settings are refused with 400. With seed 1 the three APIv3 merchants use both spellings of each code.
TEST_F(SimApi, FaultsShapeTheNextAnswers) {
    std::set<std::string> rate_limit_codes, system_error_codes;
    for (const std::size_t index : {public_key_merchant, platform_cert_merchant, mixed_merchant}) {
        const auto m = identity(index);
        SCOPED_TRACE("merchant " + m.mchid);
        const auto signer = default_response_signer(m);
        const auto variants = variants_of(sim_port(), m.mchid);
        const std::string out_trade_no = "FAULT-00000000" + std::to_string(index);
        create_order(sim_port(), m, out_trade_no, 100);
        const std::string target = query_by_out_trade_no(m, out_trade_no);
        const std::string mchid_field = "{\"mchid\":" + json_string(m.mchid) + ",";

        sim_control(sim_port(), "/sim/faults", mchid_field + "\"query_429\":1}");
        const auto limited = signed_get(sim_port(), m, target);
        EXPECT_EQ(limited.status, 429) << limited.body;
        EXPECT_EQ(json_doc(limited.body).str("/code"),
                  variants.alt_rate_limit_spelling ? "RATELIMIT_EXCEEDED" : "FREQUENCY_LIMITED");
        rate_limit_codes.insert(json_doc(limited.body).str("/code"));

        sim_control(sim_port(), "/sim/faults", mchid_field + "\"query_429\":0,\"query_500\":1}");
        const auto failed = signed_get(sim_port(), m, target);
        EXPECT_EQ(failed.status, 500) << failed.body;
        EXPECT_EQ(json_doc(failed.body).str("/code"),
                  variants.old_system_error_spelling ? "SYSTEMERROR" : "SYSTEM_ERROR");
        system_error_codes.insert(json_doc(failed.body).str("/code"));

        sim_control(sim_port(), "/sim/faults", mchid_field + "\"query_500\":0,\"bad_response_signature\":1}");
        const auto forged = signed_get(sim_port(), m, target);
        ASSERT_EQ(forged.status, 200) << forged.body;
        EXPECT_EQ(json_doc(forged.body).str("/trade_state"), "NOTPAY");
        EXPECT_EQ(forged.header("Wechatpay-Serial"), signer.serial);
        const auto verdict = check_response_signature(forged, signer.key, signer.serial);
        ASSERT_FALSE(verdict.has_value()) << "a signature meant to be bad verified";
        EXPECT_EQ(verdict.err().code, errc::bad_signature) << verdict.err().message;

        sim_control(sim_port(), "/sim/faults", mchid_field + "\"bad_response_signature\":0}");
        const auto healthy = signed_get(sim_port(), m, target);
        EXPECT_EQ(healthy.status, 200) << healthy.body;
        EXPECT_TRUE(signed_by(healthy, signer));

        const header_list json_type = {{"Content-Type", "application/json"}};
        const auto unknown_key =
            http_request(sim_port(), "POST", "/sim/faults", json_type, mchid_field + "\"query_404\":1}");
        EXPECT_EQ(unknown_key.status, 400) << unknown_key.body;
        const auto out_of_range =
            http_request(sim_port(), "POST", "/sim/faults", json_type, mchid_field + "\"query_500\":1.5}");
        EXPECT_EQ(out_of_range.status, 400) << out_of_range.body;
        // Neither refused setting took effect.
        const auto unchanged = signed_get(sim_port(), m, target);
        EXPECT_EQ(unchanged.status, 200) << unchanged.body;
    }
    EXPECT_EQ(rate_limit_codes, (std::set<std::string>{"FREQUENCY_LIMITED", "RATELIMIT_EXCEEDED"}));
    EXPECT_EQ(system_error_codes, (std::set<std::string>{"SYSTEMERROR", "SYSTEM_ERROR"}));
}

// ---------------------------------------------------------------- reproducibility

// What a seeded run decided: the ids /sim/pay returned, and every planned delivery without the fields
// that depend on timing (attempts, finished, acknowledged).
struct notification_plan {
    std::vector<std::string> transaction_ids;
    std::vector<std::string> deliveries;
    std::map<std::string, int> kinds;
    int dropped = 0;
};

notification_plan run_notification_plan(const sim_key_dir& keys, std::uint64_t seed) {
    sim::sim_options options;
    options.seed = seed;
    options.time_scale = 1;  // the first retry comes 15 s after an attempt: after the test has read the plan
    running_simulator instance(keys, options);
    sim_control(instance.port(), "/sim/faults",
                R"({"drop":0.3,"duplicate":0.3,"concurrent":0.2,"forged":0.2,"probe":0.2,"reorder":true,)"
                R"("delay":0.5,"delay_ms":50})");
    notification_plan plan;
    const std::string closed_port_url = "http://127.0.0.1:9/n";
    for (int i = 0; i < 200; ++i) {
        const auto& merchant = keys.keys.merchants[static_cast<std::size_t>(i) % keys.keys.merchants.size()];
        const std::string out_trade_no = "PLAN-" + std::to_string(100000 + i);
        sim_control(instance.port(), "/sim/orders",
                    "{\"mchid\":" + json_string(merchant.mchid) + ",\"out_trade_no\":" +
                        json_string(out_trade_no) + ",\"amount\":" + std::to_string(100 + i) +
                        ",\"notify_url\":" + json_string(closed_port_url) + "}");
        const json_doc paid(sim_control(instance.port(), "/sim/pay",
                                        "{\"mchid\":" + json_string(merchant.mchid) +
                                            ",\"out_trade_no\":" + json_string(out_trade_no) + "}"));
        plan.transaction_ids.push_back(paid.str("/transaction_id"));
    }
    const auto r = http_request(instance.port(), "GET", "/sim/deliveries?limit=100000");
    if (r.status != 200) throw std::runtime_error("/sim/deliveries answered " + std::to_string(r.status));
    const json_doc log(r.body);
    for (const simdjson::dom::element d : log.array("/deliveries")) {
        simdjson::dom::object fields;
        if (d.get(fields) != simdjson::SUCCESS) throw std::runtime_error("a delivery is not an object");
        std::string decided;
        for (const auto field : fields) {
            if (field.key == "attempts" || field.key == "finished" || field.key == "acknowledged") continue;
            decided += std::string(field.key) + "=" + simdjson::to_string(field.value) + ";";
        }
        plan.deliveries.push_back(decided);
        ++plan.kinds[element_str(d, "/kind")];
        bool dropped = false;
        if (d.at_pointer("/dropped").get(dropped) == simdjson::SUCCESS && dropped) ++plan.dropped;
    }
    return plan;
}

// A seed reproduces the fault plan exactly: same deliveries (kinds, drops, delays, serials, notification
// ids) and the same transaction ids; another seed gives another plan.
TEST_F(SimApi, SameSeedReproducesTheNotificationPlan) {
    sim_.reset();  // this test runs its own simulators
    constexpr std::uint64_t seed = 20240611;
    const auto first = run_notification_plan(key_dir(), seed);
    const auto second = run_notification_plan(key_dir(), seed);
    const auto other = run_notification_plan(key_dir(), seed + 1);

    ASSERT_EQ(first.transaction_ids.size(), 200u);
    EXPECT_EQ(std::set<std::string>(first.transaction_ids.begin(), first.transaction_ids.end()).size(), 200u)
        << "transaction ids are unique";
    EXPECT_EQ(first.transaction_ids, second.transaction_ids);
    EXPECT_NE(first.transaction_ids, other.transaction_ids);

    ASSERT_GE(first.deliveries.size(), 200u);
    EXPECT_EQ(first.deliveries.size(), second.deliveries.size());
    EXPECT_EQ(first.deliveries, second.deliveries);
    EXPECT_NE(first.deliveries, other.deliveries);

    EXPECT_EQ(first.kinds.at("genuine"), 200) << "one genuine delivery per payment";
    for (const char* kind : {"duplicate", "concurrent", "forged", "probe"})
        EXPECT_GT(first.kinds.count(kind) ? first.kinds.at(kind) : 0, 0) << kind;
    EXPECT_EQ(first.kinds.size(), 5u);
    EXPECT_GT(first.dropped, 0);
    EXPECT_LT(first.dropped, 200);
}

// The drop fault (sim_faults.hpp: "a notification is never delivered, no attempt at all"): when a
// payment notification is dropped, none of its genuine copies (duplicate, concurrent) go out either —
// otherwise the merchant still receives it. Forged copies and probes do not verify, so they may remain.
TEST_F(SimApi, DroppedNotificationIsNotDeliveredByItsCopies) {
    const auto m = identity(public_key_merchant);
    sim_control(sim_port(), "/sim/faults",
                "{\"mchid\":" + json_string(m.mchid) + ",\"drop\":1,\"duplicate\":1,\"concurrent\":1}");
    for (int i = 0; i < 3; ++i) {
        const std::string out_trade_no = "DROPPED-0000" + std::to_string(i);
        create_order(sim_port(), m, out_trade_no, 100);
        pay_order(sim_port(), m, out_trade_no);
    }
    const auto r = http_request(sim_port(), "GET", "/sim/deliveries?limit=100000");
    ASSERT_EQ(r.status, 200);
    const json_doc log(r.body);
    int genuine_dropped = 0;
    for (const simdjson::dom::element d : log.array("/deliveries")) {
        const std::string kind = element_str(d, "/kind");
        bool dropped = false;
        ASSERT_EQ(d.at_pointer("/dropped").get(dropped), simdjson::SUCCESS);
        if (kind == "genuine") genuine_dropped += dropped;
        if (kind == "genuine" || kind == "duplicate" || kind == "concurrent") {
            EXPECT_TRUE(dropped) << "a " << kind << " copy of dropped notification "
                                 << element_str(d, "/notification_id") << " ("
                                 << element_str(d, "/out_trade_no") << ") is still sent";
        }
    }
    EXPECT_EQ(genuine_dropped, 3);
}

}  // namespace
}  // namespace wxrecon::testing
