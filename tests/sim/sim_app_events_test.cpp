// The simulator's app-event receiver (docs/interfaces.md §7.3): it records what it is sent, answers the
// configured status, and says whether each X-Wxrecon-Signature verifies (HMAC-SHA256 over "<t>.<body>"
// with the configured secret, t within 300 s).
#include <gtest/gtest.h>
#include <simdjson.h>

#include "base/encoding.hpp"
#include "base/time.hpp"
#include "crypto/crypto.hpp"
#include "sim_app_events.hpp"
#include "sim_env.hpp"
#include "test_env.hpp"

namespace wxrecon::testing {
namespace {

const std::string secret = "whsec-test-0123456789";

std::string signature(const std::string& key, std::int64_t t, const std::string& body) {
    return "t=" + std::to_string(t) +
           ",v1=" + hex_lower(crypto::hmac_sha256(key, std::to_string(t) + "." + body));
}

std::string event_body(const std::string& id, const std::string& type) {
    return R"({"id":")" + id + R"(","type":")" + type +
           R"(","occurred_at":"2026-03-15T11:00:00+08:00","order":{"out_trade_no":"APP-1"}})";
}

class SimAppEvents : public ::testing::Test {
protected:
    static void SetUpTestSuite() { keys_ = new sim_key_dir(1); }
    static void TearDownTestSuite() {
        delete keys_;
        keys_ = nullptr;
    }
    void SetUp() override {
        sim::sim_options o;
        o.clock = clock_.clock();
        sim_ = std::make_unique<running_simulator>(*keys_, o);
    }
    int deliver(const std::string& id, const std::string& body, const std::string& sig) {
        return http_request(sim_->port(), "POST", "/sim/app-events",
                            {{"Content-Type", "application/json"},
                             {"X-Wxrecon-Event-Id", id},
                             {"X-Wxrecon-Signature", sig}},
                            body)
            .status;
    }
    std::int64_t now() const { return clock_.clock().seconds(); }

    inline static sim_key_dir* keys_ = nullptr;
    manual_clock clock_{std::int64_t{1'773'543'600} * 1'000'000};  // 2026-03-15 11:00 Beijing
    std::unique_ptr<running_simulator> sim_;
};

TEST_F(SimAppEvents, RecordsEventsAndChecksTheirSignatures) {
    sim_control(sim_->port(), "/sim/app-events-config", R"({"secret":")" + secret + R"("})");
    const std::string good = event_body("evt_1", "order.paid");
    EXPECT_EQ(deliver("evt_1", good, signature(secret, now(), good)), 204);
    const std::string forged = event_body("evt_2", "refund.succeeded");
    EXPECT_EQ(deliver("evt_2", forged, signature("another-secret", now(), forged)), 204);
    const std::string replayed = event_body("evt_3", "order.closed");
    EXPECT_EQ(deliver("evt_3", replayed, signature(secret, now() - 301, replayed)), 204);
    // The body changed after signing.
    EXPECT_EQ(deliver("evt_4", event_body("evt_4", "order.paid"), signature(secret, now(), good)), 204);

    // The receiver can refuse (wxrecond must retry), and says so in the log.
    const auto config = sim_control(sim_->port(), "/sim/app-events-config", R"({"status":503})");
    EXPECT_NE(config.find("\"status\":503"), std::string::npos) << config;
    const std::string later = event_body("evt_5", "order.refunded");
    EXPECT_EQ(deliver("evt_5", later, signature(secret, now() + 10, later)), 503);

    const auto list = http_request(sim_->port(), "GET", "/sim/app-events");
    ASSERT_EQ(list.status, 200);
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    ASSERT_EQ(parser.parse(simdjson::padded_string(list.body)).get(root), simdjson::SUCCESS);
    simdjson::dom::array events;
    ASSERT_EQ(root.at_pointer("/events").get(events), simdjson::SUCCESS);
    struct expected {
        const char* id;
        const char* type;
        bool ok;
        std::int64_t status;
    };
    const expected want[] = {{"evt_1", "order.paid", true, 204},
                             {"evt_2", "refund.succeeded", false, 204},
                             {"evt_3", "order.closed", false, 204},
                             {"evt_4", "order.paid", false, 204},
                             {"evt_5", "order.refunded", true, 503}};
    ASSERT_EQ(events.size(), std::size(want)) << list.body;
    std::size_t i = 0;
    for (const simdjson::dom::element e : events) {
        std::string_view event_id, id, type, body;
        bool ok = false;
        std::int64_t status = 0;
        EXPECT_EQ(e["event_id"].get(event_id), simdjson::SUCCESS);
        EXPECT_EQ(e["id"].get(id), simdjson::SUCCESS);
        EXPECT_EQ(e["type"].get(type), simdjson::SUCCESS);
        EXPECT_EQ(e["signature_ok"].get(ok), simdjson::SUCCESS);
        EXPECT_EQ(e["status"].get(status), simdjson::SUCCESS);
        EXPECT_EQ(e["body"].get(body), simdjson::SUCCESS);
        EXPECT_EQ(event_id, want[i].id);
        EXPECT_EQ(id, want[i].id);
        EXPECT_EQ(type, want[i].type);
        EXPECT_EQ(ok, want[i].ok) << list.body;
        EXPECT_EQ(status, want[i].status);
        EXPECT_NE(body.find(want[i].id), std::string_view::npos);
        ++i;
    }
    std::int64_t failures = 0;
    EXPECT_EQ(root["signature_failures"].get(failures), simdjson::SUCCESS);
    EXPECT_EQ(failures, 3);

    // since= reads on from an arrival number; clear empties the log.
    const auto tail = http_request(sim_->port(), "GET", "/sim/app-events?since=5");
    EXPECT_NE(tail.body.find("evt_5"), std::string::npos);
    EXPECT_EQ(tail.body.find("evt_4"), std::string::npos);
    sim_control(sim_->port(), "/sim/app-events-config", R"({"clear":true,"status":204})");
    EXPECT_NE(http_request(sim_->port(), "GET", "/sim/app-events").body.find("\"events\":[]"),
              std::string::npos);
    EXPECT_EQ(http_request(sim_->port(), "POST", "/sim/app-events-config", {}, R"({"secret":1})").status,
              400);
}

// The signature check on its own: several v1 values (one must match), malformed headers, no secret.
TEST(AppEventSignature, ChecksEveryRule) {
    const std::string body = R"({"id":"e"})";
    const std::int64_t t = 1'773'543'600;
    const std::string good = signature(secret, t, body);
    EXPECT_EQ(sim::check_app_event_signature(good, body, secret, t), "");
    EXPECT_EQ(sim::check_app_event_signature(
                  "t=" + std::to_string(t) + ",v1=00," + good.substr(good.find("v1=")), body, secret, t),
              "");
    EXPECT_EQ(sim::check_app_event_signature(good, body, secret, t + 300), "");
    EXPECT_NE(sim::check_app_event_signature(good, body, secret, t + 301), "");
    EXPECT_NE(sim::check_app_event_signature(good, body, secret, t - 301), "");
    EXPECT_NE(sim::check_app_event_signature(good, body, "", t), "");
    EXPECT_NE(sim::check_app_event_signature("", body, secret, t), "");
    EXPECT_NE(sim::check_app_event_signature("v1=abc", body, secret, t), "");
    EXPECT_NE(sim::check_app_event_signature("t=x," + good.substr(good.find("v1=")), body, secret, t), "");
    EXPECT_NE(sim::check_app_event_signature(good, body + " ", secret, t), "");
}

}  // namespace
}  // namespace wxrecon::testing
