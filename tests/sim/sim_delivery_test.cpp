// wxpay-sim's notifier and its APIv2 order and refund endpoints: the retry
// schedule (compressed by the time scale) stops at the merchant's first
// success, certificate rotation after N notifications, and unifiedorder /
// refund / refundquery with verified signs.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>

#include <boost/asio/io_context.hpp>

#include "net/http_server.hpp"
#include "sim_env.hpp"
#include "test_env.hpp"

namespace wxrecon::testing {
namespace {

using namespace std::chrono_literals;
namespace v2 = protocol::v2;

// A merchant endpoint that fails the first `failures` notifications with 500, then answers 204.
class flaky_merchant {
public:
    explicit flaky_merchant(int failures) : failures_(failures) {
        server_ = std::make_unique<net::http_server>(
            io_.get_executor(), boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0),
            net::http_limits{}, [this](inbound_request& r) { return answer(r); },
            [](std::string_view) {
                return reply{413, "", ""};
            },
            "flaky");
        server_->start();
        port_ = server_->local_endpoint().port();
        thread_ = std::thread([this] { io_.run(); });
    }
    ~flaky_merchant() {
        io_.stop();
        thread_.join();
    }
    unsigned short port() const { return port_; }
    int received() const { return received_.load(); }

private:
    boost::asio::awaitable<reply> answer(inbound_request&) {
        const int n = ++received_;
        co_return n <= failures_ ? reply{500, "application/json", R"({"code":"FAIL","message":"try later"})"}
                                 : reply{204, "", ""};
    }
    boost::asio::io_context io_;
    std::unique_ptr<net::http_server> server_;
    std::thread thread_;
    unsigned short port_ = 0;
    int failures_;
    std::atomic<int> received_{0};
};

struct attempt {
    std::int64_t at_ms = 0;
    int status = 0;
};

std::vector<attempt> attempts_of_first_delivery(unsigned short sim_port, bool& acknowledged) {
    const auto r = http_get(sim_port, "/sim/deliveries");
    simdjson::dom::parser parser;
    const simdjson::padded_string text(r.body);
    const auto d = parser.parse(text)["deliveries"].at(0);
    acknowledged = bool(d["acknowledged"]);
    std::vector<attempt> out;
    for (auto a : d["attempts"].get_array()) out.push_back({int64_t(a["at_ms"]), int(int64_t(a["status"]))});
    return out;
}

void wait_until_finished(unsigned short sim_port, std::chrono::seconds limit) {
    const auto give_up = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < give_up) {
        if (http_get(sim_port, "/sim/stats").body.find("\"pending\":0,") != std::string::npos) return;
        std::this_thread::sleep_for(20ms);
    }
    FAIL() << "deliveries still pending";
}

class SimDelivery : public ::testing::Test {
protected:
    static void SetUpTestSuite() { keys_ = new sim_key_dir(2); }
    static void TearDownTestSuite() {
        delete keys_;
        keys_ = nullptr;
    }
    const sim::sim_merchant& v3() const { return keys_->keys.merchants[0]; }
    const sim::sim_merchant& v2m() const { return keys_->keys.merchants[1]; }
    void create_and_pay(unsigned short sim_port, const std::string& no, unsigned short merchant_port) {
        sim_control(sim_port, "/sim/orders",
                    R"({"mchid":")" + v3().mchid + R"(","out_trade_no":")" + no +
                        R"(","amount":100,"notify_url":"http://127.0.0.1:)" + std::to_string(merchant_port) +
                        "/n\"}");
        sim_control(sim_port, "/sim/pay",
                    R"({"mchid":")" + v3().mchid + R"(","out_trade_no":")" + no + "\"}");
    }
    static sim_key_dir* keys_;
};
sim_key_dir* SimDelivery::keys_ = nullptr;

// docs/protocol-notes.md §3.7: re-sent at 15s/15s/30s/3m/… until the merchant answers success; here
// compressed 10,000x.
TEST_F(SimDelivery, RetriesFollowTheScheduleAndStopAtTheFirstSuccess) {
    flaky_merchant merchant(4);
    sim::sim_options options;
    options.time_scale = 0.0001;
    running_simulator sim(*keys_, options);
    create_and_pay(sim.port(), "RETRY-0001", merchant.port());
    wait_until_finished(sim.port(), 20s);
    bool acknowledged = false;
    const auto attempts = attempts_of_first_delivery(sim.port(), acknowledged);
    EXPECT_TRUE(acknowledged);
    ASSERT_EQ(attempts.size(), 5u) << "four failures, then the success; nothing after it";
    EXPECT_EQ(merchant.received(), 5);
    for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(attempts[i].status, 500);
    EXPECT_EQ(attempts[4].status, 204);
    // Gaps follow 15 s, 15 s, 30 s, 3 min scaled to 1.5, 1.5, 3 and 18 ms (timers only ever run late).
    const std::int64_t expected[] = {1, 1, 3, 18};
    for (std::size_t i = 0; i < 4; ++i)
        EXPECT_GE(attempts[i + 1].at_ms - attempts[i].at_ms, expected[i]) << i;
    EXPECT_GE(attempts[4].at_ms - attempts[3].at_ms, attempts[2].at_ms - attempts[1].at_ms);
}

TEST_F(SimDelivery, GivesUpAfterFifteenRetries) {
    flaky_merchant merchant(1000);
    sim::sim_options options;
    options.time_scale = 0.00002;  // 24 h 4 min of schedule in about 1.7 s
    running_simulator sim(*keys_, options);
    create_and_pay(sim.port(), "RETRY-0002", merchant.port());
    wait_until_finished(sim.port(), 30s);
    bool acknowledged = true;
    const auto attempts = attempts_of_first_delivery(sim.port(), acknowledged);
    EXPECT_FALSE(acknowledged);
    EXPECT_EQ(attempts.size(), 16u) << "the first attempt and 15 retries";
    EXPECT_EQ(merchant.received(), 16);
}

TEST_F(SimDelivery, PlatformCertificateRotatesAfterNNotifications) {
    flaky_merchant merchant(0);
    running_simulator sim(*keys_, {});
    // Merchant 0 signs with its public key; this checks the platform list, which every mode keeps.
    sim_control(sim.port(), "/sim/faults", R"({"rotate_certificate_after":3})");
    const std::string before = http_get(sim.port(), "/sim/merchants").body;
    for (int i = 1; i <= 3; ++i)
        create_and_pay(sim.port(), "ROTATE-000" + std::to_string(i), merchant.port());
    wait_until_finished(sim.port(), 20s);
    const std::string after = http_get(sim.port(), "/sim/merchants").body;
    const auto serial_of = [&](const std::string& json) {
        const auto at = json.find("\"platform_serial\":\"") + 19;
        return json.substr(at, json.find('"', at) - at);
    };
    EXPECT_NE(serial_of(before), serial_of(after)) << "the third notification rotates the certificate";
}

// APIv2 order and refund endpoints: unifiedorder (idempotent re-entry), refund, refundquery, each answer
// signed with the merchant's APIv2 key in the algorithm of the request.
TEST_F(SimDelivery, ApiV2PrepayRefundAndRefundQuery) {
    running_simulator sim(*keys_, {});
    const auto& m = v2m();
    const std::string key = read_text(keys_->dir / m.mchid / "apiv2.key");
    auto call = [&](const std::string& path, v2::fields f, v2::sign_type type) {
        f["mch_id"] = m.mchid;
        f["nonce_str"] = crypto::random_alnum(16);
        f["sign_type"] = type == v2::sign_type::md5 ? "MD5" : "HMAC-SHA256";
        f["sign"] = v2::sign(f, key, type);
        const auto r = http_request(sim.port(), "POST", path, {{"Content-Type", "text/xml"}}, v2::to_xml(f));
        auto parsed = v2::parse_xml(r.body);
        if (!parsed) throw std::runtime_error(parsed.err().message);
        return *parsed;
    };
    const v2::fields order{{"appid", m.appid},
                           {"body", "demo"},
                           {"out_trade_no", "V2-PREPAY-1"},
                           {"total_fee", "300"},
                           {"spbill_create_ip", "127.0.0.1"},
                           {"notify_url", "http://127.0.0.1:9/n"},
                           {"trade_type", "JSAPI"},
                           {"openid", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}};
    const auto first = call("/pay/unifiedorder", order, v2::sign_type::hmac_sha256);
    ASSERT_EQ(v2::field(first, "result_code"), "SUCCESS") << v2::field(first, "err_code_des");
    EXPECT_TRUE(v2::verify(first, key));
    EXPECT_EQ(v2::field(first, "sign").size(), 64u) << "answered in the request's algorithm";
    EXPECT_TRUE(v2::field(first, "prepay_id").starts_with("wx"));
    const auto again = call("/pay/unifiedorder", order, v2::sign_type::hmac_sha256);
    EXPECT_EQ(v2::field(again, "prepay_id"), v2::field(first, "prepay_id"));
    v2::fields changed = order;
    changed["total_fee"] = "301";
    EXPECT_EQ(v2::field(call("/pay/unifiedorder", changed, v2::sign_type::md5), "err_code"),
              "INVALID_REQUEST");
    v2::fields missing = order;
    missing.erase("openid");
    EXPECT_EQ(v2::field(call("/pay/unifiedorder", missing, v2::sign_type::md5), "err_code"), "LACK_PARAMS");

    const v2::fields refund{{"appid", m.appid},
                            {"out_trade_no", "V2-PREPAY-1"},
                            {"out_refund_no", "V2-REFUND-1"},
                            {"total_fee", "300"},
                            {"refund_fee", "100"}};
    EXPECT_EQ(v2::field(call("/secapi/pay/refund", refund, v2::sign_type::md5), "err_code"),
              "TRADE_STATE_ERROR")
        << "an unpaid order cannot be refunded";
    sim_control(sim.port(), "/sim/pay", R"({"mchid":")" + m.mchid + R"(","out_trade_no":"V2-PREPAY-1"})");
    const auto refunded = call("/secapi/pay/refund", refund, v2::sign_type::md5);
    ASSERT_EQ(v2::field(refunded, "result_code"), "SUCCESS") << v2::field(refunded, "err_code_des");
    EXPECT_TRUE(v2::verify(refunded, key));
    EXPECT_EQ(v2::field(refunded, "refund_fee"), "100");
    v2::fields too_much = refund;
    too_much["out_refund_no"] = "V2-REFUND-2";
    too_much["refund_fee"] = "201";
    EXPECT_EQ(v2::field(call("/secapi/pay/refund", too_much, v2::sign_type::md5), "err_code"), "NOTENOUGH");
    const auto query =
        call("/pay/refundquery", {{"appid", m.appid}, {"out_refund_no", "V2-REFUND-1"}}, v2::sign_type::md5);
    ASSERT_EQ(v2::field(query, "result_code"), "SUCCESS");
    EXPECT_TRUE(v2::verify(query, key));
    EXPECT_EQ(v2::field(query, "refund_status_0"), "SUCCESS");
    EXPECT_EQ(v2::field(query, "refund_fee_0"), "100");
    EXPECT_EQ(v2::field(call("/pay/refundquery", {{"appid", m.appid}, {"out_refund_no", "V2-NOPE"}},
                             v2::sign_type::md5),
                        "err_code"),
              "REFUNDNOTEXIST");
}

}  // namespace
}  // namespace wxrecon::testing
