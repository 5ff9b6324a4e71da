// The internal API against a real PostgreSQL (docs/interfaces.md §4):
// bearer-token authentication with throttled failures, registration with the
// status codes and idempotency rules given there, adoption of an order first
// created by a notification, and the order read back with events and refunds.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <chrono>
#include <fstream>
#include <thread>
#include "test_env.hpp"

namespace wxrecon::testing {
namespace {

const std::string token = "test-token-0123456789abcdef";

void write_token(const std::filesystem::path& file, const std::string& text) {
    std::ofstream(file, std::ios::binary | std::ios::trunc) << text;
}

class OrderApi : public ::testing::Test {
protected:
    void SetUp() override {
        merchant_ = make_merchant_fixture();
        write_token(merchant_->dir / "api.token", token + "\n");
        auto cfg = make_config(*merchant_, db_.url());
        cfg.api = config::api_config{merchant_->dir / "api.token", std::nullopt};
        daemon_ = std::make_unique<running_daemon>(std::move(cfg));
    }
    http_response post(const std::string& body, const std::string& bearer = token) {
        return http_request(daemon_->app().api_port(), "POST", "/api/v1/orders",
                            {{"Authorization", "Bearer " + bearer}, {"Content-Type", "application/json"}},
                            body);
    }
    http_response get(const std::string& target, const std::string& bearer = token) {
        return http_request(daemon_->app().api_port(), "GET", target,
                            {{"Authorization", "Bearer " + bearer}});
    }
    scratch_database db_;
    std::unique_ptr<merchant_fixture> merchant_;
    std::unique_ptr<running_daemon> daemon_;
};

std::string order(const std::string& no, std::int64_t amount, const std::string& extra = "") {
    return R"({"mchid":")" + std::string(test_mchid) + R"(","out_trade_no":")" + no + R"(","amount_total":)" +
           std::to_string(amount) + extra + "}";
}

TEST_F(OrderApi, RegistersOnceAndComparesRepeats) {
    const auto created =
        post(order("API-0001", 1500, R"(,"description":"一杯咖啡","expire_at":"2026-12-01T12:00:00+08:00")"));
    ASSERT_EQ(created.status, 201) << created.body;
    EXPECT_NE(created.body.find(R"("origin": "api")"), std::string::npos) << created.body;
    EXPECT_NE(created.body.find(R"("expire_at": "2026-12-01T12:00:00+08:00")"), std::string::npos)
        << created.body;
    EXPECT_NE(created.body.find(R"("appid": ")" + std::string(test_appid) + "\""), std::string::npos)
        << "appid defaults to the merchant's";
    EXPECT_EQ(
        post(order("API-0001", 1500, R"(,"description":"一杯咖啡","expire_at":"2026-12-01T12:00:00+08:00")"))
            .status,
        200);
    // Other differing fields are ignored: 200, the stored order unchanged.
    const auto ignored = post(order("API-0001", 1500, R"(,"description":"two coffees")"));
    EXPECT_EQ(ignored.status, 200);
    EXPECT_EQ(db_.scalar("SELECT description FROM wxrecon.orders WHERE out_trade_no = 'API-0001'"),
              "一杯咖啡");
    const auto amount = post(order("API-0001", 1600));
    EXPECT_EQ(amount.status, 409);
    EXPECT_NE(amount.body.find("amount_total"), std::string::npos) << amount.body;
    EXPECT_EQ(post(order("API-0001", 1500, R"(,"appid":"wx0000000000000000")")).status, 409);
    EXPECT_EQ(post(order("API-0001", 1500, R"(,"currency":"USD")")).status, 409);
    EXPECT_EQ(db_.scalar("SELECT count(*) FROM wxrecon.orders"), "1");
    // Registered orders are scheduled for polling.
    EXPECT_EQ(db_.scalar("SELECT next_poll_at IS NOT NULL FROM wxrecon.orders"), "t");
}

// The schedule is computed at registration: the order is first due at its first query (5 s after creation
// by default), so the poller neither claims it at once nor writes anything for it before then.
TEST_F(OrderApi, ARegisteredOrderIsFirstDueAtItsFirstQuery) {
    ASSERT_EQ(post(order("API-DUE", 100)).status, 201);
    EXPECT_EQ(db_.scalar("SELECT extract(epoch FROM next_poll_at - created_at) BETWEEN 4 AND 6"
                         " FROM wxrecon.orders WHERE out_trade_no = 'API-DUE'"),
              "t");
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // several poller ticks
    EXPECT_EQ(db_.scalar("SELECT poll_lease_owner IS NULL AND poll_attempts = 0 AND last_poll_error IS NULL"
                         " AND updated_at = created_at FROM wxrecon.orders WHERE out_trade_no = 'API-DUE'"),
              "t");
}

TEST_F(OrderApi, RefusesBadFieldsWithTheirNames) {
    const struct {
        std::string body;
        std::string names;
    } cases[] = {
        {"not json", "JSON object"},
        {R"({"mchid":"1900000109","out_trade_no":"ORDER-A1","amount_total":100,"colour":"red"})",
         "unknown field colour"},
        {R"({"mchid":"1","out_trade_no":"ORDER-A1","amount_total":100})", "mchid"},
        {R"({"mchid":"1900000109","out_trade_no":"ORDER A1","amount_total":100})", "out_trade_no"},
        // WeChat Pay's rule, which the schema enforces too: 6 to 32 of [0-9A-Za-z_-|*].
        {R"({"mchid":"1900000109","out_trade_no":"A1234","amount_total":100})", "out_trade_no: 6 to 32"},
        {R"({"mchid":"1900000109","out_trade_no":"A123456789012345678901234567890123","amount_total":100})",
         "out_trade_no: 6 to 32"},
        {R"({"mchid":"1900000109","out_trade_no":"ORDER/A1","amount_total":100})", "out_trade_no"},
        {R"({"mchid":"1900000109","out_trade_no":"ORDER-A1","amount_total":0})", "amount_total"},
        {R"({"mchid":"1900000109","out_trade_no":"ORDER-A1","amount_total":"100"})", "amount_total"},
        {R"({"mchid":"1900000109","out_trade_no":"ORDER-A1","amount_total":100,"currency":"cny"})",
         "currency"},
        {R"({"mchid":"1900000109","out_trade_no":"ORDER-A1","amount_total":100,"expire_at":"2026-12-01T12:00:00"})",
         "expire_at"},
    };
    for (const auto& c : cases) {
        const auto r = post(c.body);
        EXPECT_EQ(r.status, 400) << c.body;
        EXPECT_NE(r.body.find(c.names), std::string::npos) << c.body << " -> " << r.body;
    }
    EXPECT_EQ(db_.scalar("SELECT count(*) FROM wxrecon.orders"), "0");
    // The rule's edges are accepted: six characters, every allowed punctuation mark, and thirty-two.
    EXPECT_EQ(post(order("a_-|*9", 100)).status, 201);
    EXPECT_EQ(post(order(std::string(32, 'Z'), 100)).status, 201);
}

TEST_F(OrderApi, TokenIsRequiredAndFailuresAreThrottled) {
    EXPECT_EQ(post(order("API-0002", 100), "wrong-token-0123456789").status, 401);
    EXPECT_EQ(http_request(daemon_->app().api_port(), "GET", "/api/v1/orders/1900000109/API-0002").status,
              401);
    int throttled = 0;
    for (int i = 0; i < 40; ++i)
        throttled += post(order("API-0002", 100), "guess-" + std::to_string(i)).status == 429;
    EXPECT_GT(throttled, 0) << "a burst of wrong tokens is throttled";
    EXPECT_EQ(db_.scalar("SELECT count(*) FROM wxrecon.orders"), "0");
}

// Failed authentications are throttled per client address, after the token is checked: one address's
// guesses neither lock out a valid caller (even at that address) nor other addresses.
TEST_F(OrderApi, FailuresAreThrottledPerAddressAndAValidTokenNever) {
    const auto port = daemon_->app().api_port();
    const auto from = [&](const std::string& address, const std::string& bearer, const std::string& no) {
        return http_request_from(
            address, port, "POST", "/api/v1/orders",
            {{"Authorization", "Bearer " + bearer}, {"Content-Type", "application/json"}}, order(no, 100));
    };
    int throttled = 0;
    for (int i = 0; i < 200; ++i)
        throttled += from("127.0.0.2", "guess-" + std::to_string(i), "API-0009").status == 429;
    EXPECT_GE(throttled, 150) << "the guessing address is throttled";
    EXPECT_EQ(from("127.0.0.2", token, "API-0010").status, 201) << "a valid token at that address, at once";
    EXPECT_EQ(post(order("API-0011", 100)).status, 201) << "a valid token elsewhere";
    EXPECT_EQ(from("127.0.0.3", "wrong-token", "API-0012").status, 401) << "another address is not throttled";
    EXPECT_EQ(db_.scalar("SELECT string_agg(out_trade_no, ',' ORDER BY out_trade_no) FROM wxrecon.orders"),
              "API-0010,API-0011");
}

TEST_F(OrderApi, ReadsTheOrderWithItsEventsAndRefunds) {
    ASSERT_EQ(post(order("API-0003", 700)).status, 201);
    db_.exec(
        "INSERT INTO wxrecon.payment_events (mchid, out_trade_no, source, event_type, trade_state, "
        "transaction_id,"
        " amount_total, payer_total, occurred_at, payload) VALUES ('1900000109', 'API-0003', 'query_v3', "
        "'QUERY',"
        " 'SUCCESS', '4200000000000000000000000003', 700, 700, '2026-11-26T10:00:00+08:00', '{}')");
    db_.exec(
        "INSERT INTO wxrecon.refunds (mchid, out_refund_no, out_trade_no, amount_refund, status)"
        " VALUES ('1900000109', 'R-0003', 'API-0003', 200, 'PROCESSING')");
    const auto r = get("/api/v1/orders/1900000109/API-0003");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_NE(r.body.find(R"("occurred_at": "2026-11-26T10:00:00+08:00")"), std::string::npos) << r.body;
    EXPECT_NE(r.body.find(R"("transaction_id": "4200000000000000000000000003")"), std::string::npos);
    EXPECT_NE(r.body.find(R"("out_refund_no": "R-0003")"), std::string::npos);
    EXPECT_EQ(get("/api/v1/orders/1900000109/API-NOPE").status, 404);
}

TEST_F(OrderApi, ReadsARefundWithItsEvents) {
    ASSERT_EQ(post(order("API-0005", 700)).status, 201);
    db_.exec(
        "INSERT INTO wxrecon.refunds (mchid, out_refund_no, out_trade_no, refund_id, amount_refund, status)"
        " VALUES ('1900000109', 'R-0005', 'API-0005', '50000000000000000005', 300, 'PROCESSING')");
    db_.exec(
        "INSERT INTO wxrecon.payment_events (mchid, out_trade_no, source, event_type, refund_status, "
        "out_refund_no, amount_refund, occurred_at, payload) VALUES ('1900000109', 'API-0005', "
        "'refund_query_v3', "
        "'QUERY', 'ABNORMAL', 'R-0005', 300, '2026-11-26T11:00:00+08:00', '{}')");
    const auto r = get("/api/v1/refunds/1900000109/R-0005");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_NE(r.body.find(R"("out_trade_no": "API-0005")"), std::string::npos) << r.body;
    EXPECT_NE(r.body.find(R"("amount_refund": 300)"), std::string::npos) << r.body;
    EXPECT_NE(r.body.find(R"("refund_status": "ABNORMAL")"), std::string::npos) << "its events" << r.body;
    EXPECT_NE(r.body.find(R"("source": "refund_query_v3")"), std::string::npos) << r.body;
    EXPECT_NE(r.body.find(R"("occurred_at": "2026-11-26T11:00:00+08:00")"), std::string::npos) << r.body;
    const auto unknown = get("/api/v1/refunds/1900000109/R-NOPE");
    EXPECT_EQ(unknown.status, 404);
    EXPECT_NE(unknown.body.find("R-NOPE"), std::string::npos) << unknown.body;
    EXPECT_EQ(http_request(daemon_->app().api_port(), "GET", "/api/v1/refunds/1900000109/R-0005").status,
              401);
}

TEST_F(OrderApi, AdoptsAnOrderFirstCreatedByANotification) {
    db_.exec(
        "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, state, origin, state_source)"
        " VALUES ('1900000109', 'API-0004', 900, 'SUCCESS', 'notify', 'notify')");
    db_.exec(
        "INSERT INTO wxrecon.discrepancies (mchid, out_trade_no, kind) VALUES ('1900000109', 'API-0004', "
        "'unknown_order')");
    EXPECT_EQ(post(order("API-0004", 800)).status, 409) << "a different amount is not adopted";
    const auto adopted = post(order("API-0004", 900));
    EXPECT_EQ(adopted.status, 200) << adopted.body;
    EXPECT_EQ(db_.scalar("SELECT origin FROM wxrecon.orders WHERE out_trade_no = 'API-0004'"), "notify");
    EXPECT_EQ(db_.scalar("SELECT count(*) FROM wxrecon.discrepancies WHERE resolved_at IS NULL"), "0");
    EXPECT_EQ(
        db_.scalar("SELECT status || ' ' || resolved_by || ' ' || resolution FROM wxrecon.discrepancies"),
        "resolved wxrecond a registration with the same amount took the order over");
}

TEST(OrderApiListener, OwnListenerKeepsTheApiOffThePublicOne) {
    scratch_database db;
    auto merchant = make_merchant_fixture();
    write_token(merchant->dir / "api.token", token);
    auto cfg = make_config(*merchant, db.url());
    cfg.api = config::api_config{merchant->dir / "api.token", std::string("127.0.0.1:0")};
    running_daemon daemon(std::move(cfg));
    ASSERT_NE(daemon.app().api_port(), daemon.port());
    const auto on_api = http_request(daemon.app().api_port(), "POST", "/api/v1/orders",
                                     {{"Authorization", "Bearer " + token}}, order("API-0005", 100));
    EXPECT_EQ(on_api.status, 201) << on_api.body;
    const auto on_public = http_request(daemon.port(), "POST", "/api/v1/orders",
                                        {{"Authorization", "Bearer " + token}}, order("API-0006", 100));
    EXPECT_EQ(on_public.status, 404);
}

}  // namespace
}  // namespace wxrecon::testing
