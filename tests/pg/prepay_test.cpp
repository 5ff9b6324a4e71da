// Placing orders at WeChat Pay through the internal API, against wxpay-sim and
// a real PostgreSQL: the wx.requestPayment parameters verify with the
// merchant's key (APIv3) or APIv2 key, a retry resends the stored request
// (the simulator refuses a re-entry with different parameters), WeChat-side
// failures are 502 with WeChat's code while the order stays registered, and a
// login code is traded for the openid server-side.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <chrono>
#include <pqxx/pqxx>
#include <thread>

#include "base/encoding.hpp"
#include "base/time.hpp"
#include "protocol/request_payment.hpp"
#include "sim_env.hpp"
#include "store/migrations.hpp"

namespace wxrecon::testing {
namespace {

using namespace std::chrono_literals;

std::string expire_in(std::chrono::seconds s) {
    return format_rfc3339(wall_clock{}.seconds() + s.count());
}

std::string order_body(const sim::sim_merchant& m, const std::string& no, std::int64_t amount,
                       const std::string& description = "测试商品", const std::string& extra = "") {
    return R"({"mchid":")" + m.mchid + R"(","out_trade_no":")" + no + R"(","amount_total":)" +
           std::to_string(amount) + R"(,"description":")" + description +
           R"(","payer_openid":"oTestPayer0123456789","expire_at":")" + expire_in(30min) +
           R"(","prepay":true)" + extra + "}";
}

struct request_payment_reply {
    std::string app_id, time_stamp, nonce_str, package, sign_type, pay_sign, state;
};

request_payment_reply read_reply(const std::string& body) {
    simdjson::dom::parser parser;
    const simdjson::padded_string text(body);
    const auto doc = parser.parse(text);
    request_payment_reply r;
    const auto p = doc["request_payment"];
    r.app_id = std::string(std::string_view(p["appId"]));
    r.time_stamp = std::string(std::string_view(p["timeStamp"]));
    r.nonce_str = std::string(std::string_view(p["nonceStr"]));
    r.package = std::string(std::string_view(p["package"]));
    r.sign_type = std::string(std::string_view(p["signType"]));
    r.pay_sign = std::string(std::string_view(p["paySign"]));
    r.state = std::string(std::string_view(doc["state"]));
    return r;
}

// The wx.requestPayment parameters as WeChat's client checks them.
bool pay_sign_verifies(const sim::sim_merchant& m, const request_payment_reply& r) {
    if (m.version == sim::api_version::v3) {
        const auto sig = base64_decode(r.pay_sign);
        return r.sign_type == "RSA" && sig &&
               crypto::rsa_sha256_verify(
                   m.merchant_key,
                   protocol::request_payment_message_v3(r.app_id, r.time_stamp, r.nonce_str, r.package),
                   *sig);
    }
    const protocol::v2::fields f{{"appId", r.app_id},       {"timeStamp", r.time_stamp},
                                 {"nonceStr", r.nonce_str}, {"package", r.package},
                                 {"signType", r.sign_type}, {"sign", r.pay_sign}};
    return protocol::v2::verify(f, m.apiv2_key);
}

class Prepay : public ::testing::Test {
protected:
    void SetUp() override {
        pqxx::connection conn(db_.url());
        store::migrate(conn);
        auto cfg = sim_daemon_config(keys_, db_.url(), sim_.port());
        serve_api_with_prepay(cfg, keys_);
        daemon_ = std::make_unique<running_daemon>(std::move(cfg));
    }
    // How many placing calls the simulator has seen for the merchant.
    int prepay_calls(const sim::sim_merchant& m) {
        const std::string log = http_get(sim_.port(), "/sim/calls").body;
        const std::string what =
            m.version == sim::api_version::v3 ? "POST /v3/pay/transactions/jsapi" : "/pay/unifiedorder";
        int n = 0;
        for (std::size_t pos = 0; (pos = log.find(what, pos)) != std::string::npos; pos += what.size()) ++n;
        return n;
    }
    http_response place(const std::string& body) { return api_post(daemon_->port(), "/api/v1/orders", body); }

    sim_key_dir keys_{2};  // APIv3 (public key) and APIv2
    running_simulator sim_{keys_, sim::sim_options{}};
    scratch_database db_;
    std::unique_ptr<running_daemon> daemon_;
};

TEST_F(Prepay, PlacesOrdersAndSignsRequestPaymentInBothApiVersions) {
    for (const auto& m : keys_.keys.merchants) {
        SCOPED_TRACE(m.mchid);
        const std::string no = "PREPAY-" + m.mchid;
        const auto placed = place(order_body(m, no, 888));
        ASSERT_EQ(placed.status, 201) << placed.body;
        const auto first = read_reply(placed.body);
        EXPECT_EQ(first.app_id, m.appid);
        EXPECT_EQ(first.sign_type, m.version == sim::api_version::v3 ? "RSA" : "HMAC-SHA256");
        ASSERT_TRUE(first.package.starts_with("prepay_id=wx")) << first.package;
        EXPECT_TRUE(pay_sign_verifies(m, first)) << placed.body;
        auto tampered = first;
        tampered.package += "0";
        EXPECT_FALSE(pay_sign_verifies(m, tampered));
        EXPECT_EQ(first.state, "NOTPAY");
        EXPECT_EQ(
            db_.scalar("SELECT placed_at IS NOT NULL FROM wxrecon.orders WHERE out_trade_no = '" + no + "'"),
            "t");
        EXPECT_EQ(
            "prepay_id=" +
                db_.scalar("SELECT prepay_id FROM wxrecon.prepay_requests WHERE out_trade_no = '" + no + "'"),
            first.package);
        EXPECT_EQ(prepay_calls(m), 1);

        // A retry within the prepay_id's life reuses it: no second call, freshly signed parameters.
        const auto again = place(order_body(m, no, 888));
        ASSERT_EQ(again.status, 200) << again.body;
        const auto second = read_reply(again.body);
        EXPECT_EQ(second.package, first.package);
        EXPECT_NE(second.nonce_str, first.nonce_str);
        EXPECT_TRUE(pay_sign_verifies(m, second));
        EXPECT_EQ(prepay_calls(m), 1);

        // Once the prepay_id is old, the stored request goes out again unchanged, whatever the new body says
        // about fields that do not count: the simulator accepts only an identical re-entry.
        pqxx::connection conn(db_.url());
        pqxx::work tx(conn);
        tx.exec(
            "UPDATE wxrecon.prepay_requests SET prepaid_at = now() - interval '3 hours' WHERE out_trade_no = "
            "'" +
            no + "'");
        tx.commit();
        const auto renewed = place(order_body(m, no, 888, "another description"));
        ASSERT_EQ(renewed.status, 200) << renewed.body;
        EXPECT_EQ(read_reply(renewed.body).package, first.package);
        EXPECT_EQ(prepay_calls(m), 2);
        EXPECT_EQ(
            db_.scalar("SELECT attempts FROM wxrecon.prepay_requests WHERE out_trade_no = '" + no + "'"),
            "2");

        // The simulator holds the order with the amount wxrecon registered.
        const auto truth = sim_truth(sim_.port());
        ASSERT_TRUE(truth.contains(m.mchid + "/" + no));
        EXPECT_EQ(truth.at(m.mchid + "/" + no).trade_state, "NOTPAY");
    }
}

TEST_F(Prepay, PaidOrderIsSettledByItsNotificationAndCannotBePaidAgain) {
    for (const auto& m : keys_.keys.merchants) {
        SCOPED_TRACE(m.mchid);
        const std::string no = "PAIDONCE-" + m.mchid;
        ASSERT_EQ(place(order_body(m, no, 500)).status, 201);
        sim_control(sim_.port(), "/sim/pay",
                    R"({"mchid":")" + m.mchid + R"(","out_trade_no":")" + no + "\"}");
        std::string state;
        for (int i = 0; i < 100 && state != "SUCCESS"; ++i) {
            std::this_thread::sleep_for(50ms);
            state = db_.scalar("SELECT state FROM wxrecon.orders WHERE out_trade_no = '" + no + "'");
        }
        ASSERT_EQ(state, "SUCCESS");
        EXPECT_EQ(db_.scalar("SELECT state_source FROM wxrecon.orders WHERE out_trade_no = '" + no + "'"),
                  "notify");
        const auto again = place(order_body(m, no, 500));
        EXPECT_EQ(again.status, 409) << again.body;
        EXPECT_NE(again.body.find("already paid"), std::string::npos) << again.body;
    }
}

TEST_F(Prepay, WeChatRefusalIs502WithItsCodeAndTheOrderStays) {
    const auto& m = keys_.keys.merchants[0];
    // An appid WeChat Pay does not bind to this merchant.
    const auto refused =
        place(order_body(m, "PREPAY-BADAPPID", 300, "测试商品", R"(,"appid":"wx0000000000000000")"));
    ASSERT_EQ(refused.status, 502) << refused.body;
    EXPECT_NE(refused.body.find("\"code\":\"APPID_MCHID_NOT_MATCH\""), std::string::npos) << refused.body;
    EXPECT_EQ(http_request(daemon_->port(), "GET", "/api/v1/orders/" + m.mchid + "/PREPAY-BADAPPID",
                           {{"Authorization", "Bearer " + api_token}})
                  .status,
              200);
    // Refused for its form: WeChat Pay does not know the order, so the poller may close it locally.
    EXPECT_EQ(
        db_.scalar("SELECT placed_at IS NULL FROM wxrecon.orders WHERE out_trade_no = 'PREPAY-BADAPPID'"),
        "t");
    EXPECT_NE(
        db_.scalar("SELECT last_error FROM wxrecon.prepay_requests WHERE out_trade_no = 'PREPAY-BADAPPID'")
            .find("APPID_MCHID_NOT_MATCH"),
        std::string::npos);

    // Nothing answers: 502, and the order stays for a retry with the same body.
    sim_.stop();
    const auto unreachable = place(order_body(m, "PREPAY-NOSIM", 300));
    EXPECT_EQ(unreachable.status, 502) << unreachable.body;
    EXPECT_EQ(db_.scalar("SELECT count(*) FROM wxrecon.orders WHERE out_trade_no = 'PREPAY-NOSIM'"), "1");
}

TEST_F(Prepay, RefusesWhatCannotBePlaced) {
    const auto& m = keys_.keys.merchants[0];
    const std::string no_openid =
        R"({"mchid":")" + m.mchid +
        R"(","out_trade_no":"PREPAY-NOOPENID","amount_total":1,"description":"x","prepay":true})";
    const auto r1 = place(no_openid);
    EXPECT_EQ(r1.status, 400);
    EXPECT_NE(r1.body.find("payer_openid"), std::string::npos) << r1.body;
    const auto r2 = place(R"({"mchid":")" + m.mchid +
                          R"(","out_trade_no":"PREPAY-BADFLAG","amount_total":1,"prepay":"yes"})");
    EXPECT_EQ(r2.status, 400);
    EXPECT_NE(r2.body.find("prepay"), std::string::npos) << r2.body;
    // An order about to expire is not placed (WeChat Pay would move its expiry).
    const std::string soon =
        R"({"mchid":")" + m.mchid +
        R"(","out_trade_no":"PREPAY-SOON","amount_total":1,"description":"x","payer_openid":"o123",)"
        R"("prepay":true,"expire_at":")" +
        expire_in(20s) + "\"}";
    const auto r3 = place(soon);
    EXPECT_EQ(r3.status, 409) << r3.body;
    EXPECT_EQ(prepay_calls(m), 0);
}

TEST_F(Prepay, SessionTradesALoginCodeForTheOpenid) {
    const auto& m = keys_.keys.merchants[0];
    simdjson::dom::parser parser;
    const std::string issued =
        sim_control(sim_.port(), "/sim/login-code", R"({"appid":")" + m.appid + R"(","user":"alice"})");
    const simdjson::padded_string issued_text(issued);
    const auto login = parser.parse(issued_text);
    const std::string code{std::string_view(login["code"])}, openid{std::string_view(login["openid"])};

    const auto r = api_post(daemon_->port(), "/api/v1/session",
                            R"({"appid":")" + m.appid + R"(","code":")" + code + "\"}");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, R"({"openid":")" + openid + "\"}");  // no session_key, no secret

    const auto reused = api_post(daemon_->port(), "/api/v1/session",
                                 R"({"appid":")" + m.appid + R"(","code":")" + code + "\"}");
    EXPECT_EQ(reused.status, 400);
    EXPECT_NE(reused.body.find("\"errcode\":40163"), std::string::npos) << reused.body;

    const auto unknown =
        api_post(daemon_->port(), "/api/v1/session", R"({"appid":"wxnotours","code":"abc"})");
    EXPECT_EQ(unknown.status, 400);
    EXPECT_NE(unknown.body.find("appid"), std::string::npos) << unknown.body;
    const auto no_code = api_post(daemon_->port(), "/api/v1/session", R"({"appid":")" + m.appid + "\"}");
    EXPECT_EQ(no_code.status, 400);
}

}  // namespace
}  // namespace wxrecon::testing
