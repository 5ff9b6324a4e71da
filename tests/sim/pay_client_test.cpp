// The signed WeChat Pay client against wxpay-sim: answers verified before
// use, forged successes never ok, errors classified for the poller's backoff,
// failover only where a request cannot be applied twice, and the certificate
// download trusted only through a key trusted before it.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <fstream>
#include <map>
#include <sstream>

#include "sim_env.hpp"
#include "test_env.hpp"
#include "wechat/pay_client.hpp"

namespace wxrecon::testing {
namespace {

using wechat::call_outcome;
using wechat::retry_safety;

// Everything a merchant_access points at, kept alive for the test.
struct merchant_view {
    wechat::merchant_access access;
    std::map<std::string, crypto::public_key, std::less<>> trusted;
    std::string apiv3_key;
};

std::unique_ptr<merchant_view> view_of(const sim_key_dir& keys, std::size_t index, const std::string& base) {
    const auto& m = keys.keys.merchants.at(index);
    const auto dir = keys.dir / m.mchid;
    auto v = std::make_unique<merchant_view>();
    v->access.mchid = m.mchid;
    v->access.api_base = base;
    v->access.merchant_serial = m.merchant_serial;
    auto key = crypto::load_private_key_pem(read_text(dir / "apiclient_key.pem"));
    if (!key) throw std::runtime_error(key.err().message);
    v->access.merchant_key = *key;
    v->access.apiv2_key = read_text(dir / "apiv2.key");
    v->apiv3_key = read_text(dir / "apiv3.key");
    auto pub = crypto::load_public_key_pem(read_text(dir / "wechatpay_pub_key.pem"));
    auto cert = crypto::load_certificate_pem(read_text(dir / "wechatpay_platform_cert.pem"));
    if (!pub || !cert) throw std::runtime_error("cannot load the WeChat Pay keys of " + m.mchid);
    v->trusted[m.public_key_id] = *pub;
    v->trusted[cert->serial] = cert->key;
    auto* trusted = &v->trusted;
    v->access.find_key = [trusted](std::string_view serial, std::int64_t) -> const crypto::public_key* {
        const auto it = trusted->find(serial);
        return it == trusted->end() ? nullptr : &it->second;
    };
    return v;
}

class PayClient : public ::testing::Test {
protected:
    static void SetUpTestSuite() { keys_ = new sim_key_dir(2); }  // an APIv3 merchant and an APIv2 merchant
    static void TearDownTestSuite() {
        delete keys_;
        keys_ = nullptr;
    }

    wechat::call_result v3(const merchant_view& m, const std::string& method, const std::string& target,
                           const std::string& body = "", retry_safety safety = retry_safety::idempotent,
                           wall_clock clock = {}) {
        boost::asio::io_context io;
        wechat::pay_client client(io.get_executor(), {}, std::move(clock));
        auto done = boost::asio::co_spawn(io, client.v3(m.access, method, target, body, safety),
                                          boost::asio::use_future);
        io.run();
        return done.get();
    }
    wechat::call_result v2(const merchant_view& m, const std::string& path, protocol::v2::fields fields,
                           protocol::v2::sign_type type = protocol::v2::sign_type::md5) {
        boost::asio::io_context io;
        wechat::pay_client client(io.get_executor(), {});
        auto done = boost::asio::co_spawn(
            io, client.v2(m.access, path, std::move(fields), type, retry_safety::idempotent),
            boost::asio::use_future);
        io.run();
        return done.get();
    }
    static std::string base(const running_simulator& sim) {
        return "http://127.0.0.1:" + std::to_string(sim.port());
    }
    void create_order(const running_simulator& sim, std::size_t merchant, const std::string& out_trade_no) {
        sim_control(sim.port(), "/sim/orders",
                    R"({"mchid":")" + keys_->keys.merchants[merchant].mchid + R"(","out_trade_no":")" +
                        out_trade_no + R"(","amount":100,"notify_url":"http://127.0.0.1:9/n"})");
    }
    std::string query_target(std::size_t merchant, const std::string& out_trade_no) {
        return "/v3/pay/transactions/out-trade-no/" + out_trade_no +
               "?mchid=" + keys_->keys.merchants[merchant].mchid;
    }
    static sim_key_dir* keys_;
};
sim_key_dir* PayClient::keys_ = nullptr;

TEST_F(PayClient, QueryAnswerIsVerifiedBeforeItIsOk) {
    running_simulator sim(*keys_, {});
    const auto m = view_of(*keys_, 0, base(sim));
    create_order(sim, 0, "CLIENT-0001");
    const auto r = v3(*m, "GET", query_target(0, "CLIENT-0001"));
    ASSERT_EQ(r.outcome, call_outcome::ok) << r.error;
    EXPECT_EQ(r.status, 200);
    EXPECT_NE(r.body.find("\"trade_state\":\"NOTPAY\""), std::string::npos) << r.body;
    EXPECT_FALSE(r.request_id.empty());
}

TEST_F(PayClient, SignsAndJudgesAnswersByTheInjectedClock) {
    running_simulator sim(*keys_, {});
    const auto m = view_of(*keys_, 0, base(sim));
    create_order(sim, 0, "CLIENT-0007");
    manual_clock clock(system_micros() +
                       600'000'000);  // ten minutes ahead of WeChat Pay: outside both windows
    const auto ahead =
        v3(*m, "GET", query_target(0, "CLIENT-0007"), "", retry_safety::idempotent, clock.clock());
    EXPECT_NE(ahead.outcome, call_outcome::ok) << ahead.body;
    clock.set(system_micros());
    const auto in_step =
        v3(*m, "GET", query_target(0, "CLIENT-0007"), "", retry_safety::idempotent, clock.clock());
    EXPECT_EQ(in_step.outcome, call_outcome::ok) << in_step.error;
}

TEST_F(PayClient, ForgedOrUntrustedSuccessIsNeverOk) {
    running_simulator sim(*keys_, {});
    auto m = view_of(*keys_, 0, base(sim));
    create_order(sim, 0, "CLIENT-0002");
    sim_control(sim.port(), "/sim/faults", R"({"bad_response_signature":1})");
    const auto bad = v3(*m, "GET", query_target(0, "CLIENT-0002"));
    EXPECT_EQ(bad.outcome, call_outcome::forged);
    EXPECT_NE(bad.error.find("does not verify"), std::string::npos) << bad.error;
    sim_control(sim.port(), "/sim/faults", R"({"bad_response_signature":0})");
    m->trusted.clear();  // a correctly signed answer from a key we do not trust is just as unusable
    const auto untrusted = v3(*m, "GET", query_target(0, "CLIENT-0002"));
    EXPECT_EQ(untrusted.outcome, call_outcome::forged);
    EXPECT_NE(untrusted.error.find("no trusted WeChat Pay key"), std::string::npos) << untrusted.error;
}

TEST_F(PayClient, ErrorsAreClassifiedForBackoff) {
    running_simulator sim(*keys_, {});
    const auto m = view_of(*keys_, 0, base(sim));
    const auto missing = v3(*m, "GET", query_target(0, "CLIENT-NOPE"));
    EXPECT_EQ(missing.outcome, call_outcome::rejected);
    EXPECT_EQ(missing.status, 404);
    EXPECT_TRUE(missing.code == "ORDER_NOT_EXIST" || missing.code == "ORDERNOTEXIST") << missing.code;
    sim_control(sim.port(), "/sim/faults", R"({"query_429":1})");
    EXPECT_EQ(v3(*m, "GET", query_target(0, "CLIENT-NOPE")).outcome, call_outcome::rate_limited);
    sim_control(sim.port(), "/sim/faults", R"({"query_429":0,"query_500":1})");
    const auto down = v3(*m, "GET", query_target(0, "CLIENT-NOPE"));
    EXPECT_EQ(down.outcome, call_outcome::server_error);
    EXPECT_EQ(down.status, 500);
    auto wrong_key = view_of(*keys_, 0, base(sim));
    wrong_key->access.merchant_key = *crypto::generate_rsa_key();
    sim_control(sim.port(), "/sim/faults", R"({"query_500":0})");
    const auto unsigned_right = v3(*wrong_key, "GET", query_target(0, "CLIENT-NOPE"));
    EXPECT_EQ(unsigned_right.outcome, call_outcome::rejected);
    EXPECT_EQ(unsigned_right.code, "SIGN_ERROR");
}

TEST_F(PayClient, FailsOverOnlyWhereNothingCanHappenTwice) {
    running_simulator primary(*keys_, {});
    running_simulator backup(*keys_, {});
    for (const auto* sim : {&primary, &backup}) create_order(*sim, 0, "CLIENT-0003");

    // Primary refuses connections: queries and closes both go to the backup (nothing was sent).
    auto refused = view_of(*keys_, 0, "http://127.0.0.1:9");
    refused->access.api_backup_base = base(backup);
    const auto q = v3(*refused, "GET", query_target(0, "CLIENT-0003"));
    EXPECT_EQ(q.outcome, call_outcome::ok) << q.error;
    EXPECT_EQ(q.host, base(backup));

    // Primary answers 500: a query may be asked again elsewhere, a close may not (it may have closed).
    sim_control(primary.port(), "/sim/faults", R"({"query_500":1})");
    auto failing = view_of(*keys_, 0, base(primary));
    failing->access.api_backup_base = base(backup);
    const auto q2 = v3(*failing, "GET", query_target(0, "CLIENT-0003"));
    EXPECT_EQ(q2.outcome, call_outcome::ok);
    EXPECT_EQ(q2.host, base(backup));
    const std::string close_body = R"({"mchid":")" + keys_->keys.merchants[0].mchid + "\"}";
    const auto c = v3(*failing, "POST", "/v3/pay/transactions/out-trade-no/CLIENT-0003/close", close_body,
                      retry_safety::once_only);
    EXPECT_EQ(c.outcome, call_outcome::server_error);
    EXPECT_EQ(c.host, base(primary));
    EXPECT_NE(http_get(backup.port(), "/sim/ledger").body.find("\"trade_state\":\"NOTPAY\""),
              std::string::npos)
        << "the backup must not have been asked to close";

    // Refused on the primary: the close provably never left, so the backup may do it.
    const auto c2 = v3(*refused, "POST", "/v3/pay/transactions/out-trade-no/CLIENT-0003/close", close_body,
                       retry_safety::once_only);
    EXPECT_EQ(c2.outcome, call_outcome::ok) << c2.error;
    EXPECT_EQ(c2.status, 204);
    EXPECT_EQ(c2.host, base(backup));
}

TEST_F(PayClient, ApiV2AnswersAreVerifiedByTheirSign) {
    running_simulator sim(*keys_, {});
    const auto m = view_of(*keys_, 1, base(sim));
    const std::string appid = keys_->keys.merchants[1].appid;
    create_order(sim, 1, "CLIENT-V2-01");
    sim_control(sim.port(), "/sim/pay",
                R"({"mchid":")" + m->access.mchid + R"(","out_trade_no":"CLIENT-V2-01"})");
    for (const auto type : {protocol::v2::sign_type::md5, protocol::v2::sign_type::hmac_sha256}) {
        const auto r = v2(*m, "/pay/orderquery", {{"appid", appid}, {"out_trade_no", "CLIENT-V2-01"}}, type);
        ASSERT_EQ(r.outcome, call_outcome::ok) << r.error;
        EXPECT_EQ(r.fields.at("trade_state"), "SUCCESS");
        EXPECT_EQ(r.fields.at("total_fee"), "100");
    }
    const auto missing = v2(*m, "/pay/orderquery", {{"appid", appid}, {"out_trade_no", "CLIENT-V2-NOPE"}});
    EXPECT_EQ(missing.outcome, call_outcome::rejected);
    EXPECT_EQ(missing.code, "ORDERNOTEXIST");
    sim_control(sim.port(), "/sim/faults", R"({"bad_response_signature":1})");
    EXPECT_EQ(v2(*m, "/pay/orderquery", {{"appid", appid}, {"out_trade_no", "CLIENT-V2-01"}}).outcome,
              call_outcome::forged);
    sim_control(sim.port(), "/sim/faults", R"({"bad_response_signature":0,"query_500":1})");
    EXPECT_EQ(v2(*m, "/pay/orderquery", {{"appid", appid}, {"out_trade_no", "CLIENT-V2-01"}}).outcome,
              call_outcome::server_error);
    auto wrong = view_of(*keys_, 1, base(sim));
    wrong->access.apiv2_key = std::string(32, 'x');
    sim_control(sim.port(), "/sim/faults", R"({"query_500":0})");
    const auto refused = v2(*wrong, "/pay/orderquery", {{"appid", appid}, {"out_trade_no", "CLIENT-V2-01"}});
    EXPECT_EQ(refused.outcome, call_outcome::rejected);
}

TEST_F(PayClient, CertificatesAreTrustedOnlyThroughAKeyTrustedBefore) {
    running_simulator sim(*keys_, {});
    auto m = view_of(*keys_, 0, base(sim));
    const auto first = v3(*m, "GET", "/v3/certificates");
    const auto certs = wechat::read_certificates(first, m->apiv3_key);
    ASSERT_TRUE(certs.has_value()) << certs.err().message;
    ASSERT_EQ(certs->size(), 1u);
    EXPECT_EQ(certs->front().serial, keys_->keys.merchants[0].certificates.back().serial);

    const std::string rotated =
        sim_control(sim.port(), "/sim/rotate-certificate", R"({"mchid":")" + m->access.mchid + "\"}");
    const auto second = wechat::read_certificates(v3(*m, "GET", "/v3/certificates"), m->apiv3_key);
    ASSERT_TRUE(second.has_value());
    ASSERT_EQ(second->size(), 2u);
    EXPECT_NE(rotated.find(second->back().serial), std::string::npos);

    // Nothing trusted yet: the list is refused even though it is signed by a certificate it contains.
    m->trusted.clear();
    const auto untrusted = wechat::read_certificates(v3(*m, "GET", "/v3/certificates"), m->apiv3_key);
    ASSERT_FALSE(untrusted.has_value());
    EXPECT_EQ(untrusted.err().code, errc::bad_signature);
    // A wrong APIv3 key cannot decrypt the list.
    auto fresh = view_of(*keys_, 0, base(sim));
    const auto wrong_key =
        wechat::read_certificates(v3(*fresh, "GET", "/v3/certificates"), std::string(32, 'k'));
    ASSERT_FALSE(wrong_key.has_value());
    EXPECT_EQ(wrong_key.err().code, errc::decrypt_failed);
}

}  // namespace
}  // namespace wxrecon::testing
