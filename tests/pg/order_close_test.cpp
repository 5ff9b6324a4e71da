// POST /api/v1/orders/{mchid}/{out_trade_no}/close against wxpay-sim and a real PostgreSQL
// (docs/interfaces.md §4.4b): a final query, then the close at WeChat Pay; a payment found by the final
// query wins; an order never placed is closed locally; an APIv2 order in its first 5 minutes waits.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "sim_env.hpp"
#include "store/migrations.hpp"

namespace wxrecon::testing {
namespace {

class OrderClose : public ::testing::Test {
protected:
    void SetUp() override {
        {
            pqxx::connection conn(db_.url());
            store::migrate(conn);
        }
        sim::sim_options options;
        options.seed = 7;
        sim_ = std::make_unique<running_simulator>(keys_, options);
        auto cfg = sim_daemon_config(keys_, db_.url(), sim_->port());
        serve_api_with_prepay(cfg, keys_);
        daemon_ = std::make_unique<running_daemon>(std::move(cfg));
    }

    const sim::sim_merchant& v3() const { return keys_.keys.merchants[0]; }
    const sim::sim_merchant& v2() const { return keys_.keys.merchants[1]; }

    http_response place(const sim::sim_merchant& m, const std::string& no, bool prepay = true) {
        return api_post(
            daemon_->port(), "/api/v1/orders",
            R"({"mchid":")" + m.mchid + R"(","out_trade_no":")" + no +
                R"(","amount_total":500,"description":"close test","payer_openid":"oClosePayer","prepay":)" +
                (prepay ? "true" : "false") + "}");
    }
    http_response close(const sim::sim_merchant& m, const std::string& no) {
        return api_post(daemon_->port(), "/api/v1/orders/" + m.mchid + "/" + no + "/close", "");
    }
    std::string ledger_state(const sim::sim_merchant& m, const std::string& no) {
        return db_.scalar("SELECT state FROM wxrecon.orders WHERE mchid = '" + m.mchid +
                          "' AND out_trade_no = '" + no + "'");
    }

    scratch_database db_;
    sim_key_dir keys_{2};  // a v3 and a v2 merchant
    std::unique_ptr<running_simulator> sim_;
    std::unique_ptr<running_daemon> daemon_;
};

TEST_F(OrderClose, UnpaidOrderIsClosedAtWeChatPayAndInTheLedger) {
    ASSERT_EQ(v3().version, sim::api_version::v3);
    ASSERT_EQ(place(v3(), "CLOSE-1").status, 201);
    const auto closed = close(v3(), "CLOSE-1");
    EXPECT_EQ(closed.status, 200) << closed.body;
    EXPECT_NE(closed.body.find(R"("state": "CLOSED")"), std::string::npos) << closed.body;
    EXPECT_EQ(ledger_state(v3(), "CLOSE-1"), "CLOSED");
    EXPECT_EQ(sim_truth(sim_->port()).at(v3().mchid + "/CLOSE-1").trade_state, "CLOSED");
    EXPECT_EQ(db_.scalar(
                  "SELECT source FROM wxrecon.payment_events WHERE out_trade_no = 'CLOSE-1' ORDER BY id DESC "
                  "LIMIT 1"),
              "close");
    EXPECT_EQ(close(v3(), "CLOSE-1").status, 200) << "closing a closed order again changes nothing";
}

TEST_F(OrderClose, PaymentFoundByTheFinalQueryWins) {
    ASSERT_EQ(place(v3(), "CLOSE-2").status, 201);
    sim_control(sim_->port(), "/sim/faults", R"({"drop":1})");  // the payment's notification is lost
    sim_control(sim_->port(), "/sim/pay", R"({"mchid":")" + v3().mchid + R"(","out_trade_no":"CLOSE-2"})");
    const auto refused = close(v3(), "CLOSE-2");
    EXPECT_EQ(refused.status, 409) << refused.body;
    EXPECT_NE(refused.body.find("SUCCESS"), std::string::npos) << refused.body;
    EXPECT_EQ(ledger_state(v3(), "CLOSE-2"), "SUCCESS") << "the final query recorded the payment";
    EXPECT_EQ(sim_truth(sim_->port()).at(v3().mchid + "/CLOSE-2").trade_state, "SUCCESS");
    EXPECT_EQ(close(v3(), "CLOSE-2").status, 409);
}

TEST_F(OrderClose, OrderNeverPlacedIsClosedLocallyAndUnknownIs404) {
    ASSERT_EQ(place(v3(), "CLOSE-3", false).status, 201);
    const auto closed = close(v3(), "CLOSE-3");
    EXPECT_EQ(closed.status, 200) << closed.body;
    EXPECT_EQ(ledger_state(v3(), "CLOSE-3"), "CLOSED");
    EXPECT_EQ(close(v3(), "NO-SUCH-ORDER").status, 404);
    EXPECT_EQ(http_request(daemon_->port(), "GET", "/api/v1/orders/" + v3().mchid + "/CLOSE-3/close",
                           {{"Authorization", "Bearer " + api_token}})
                  .status,
              405);
}

// WeChat Pay refuses to close an APIv2 order in its first 5 minutes: 202, still open, and it now expires
// at once, so the poller closes it as soon as it may.
TEST_F(OrderClose, YoungApiV2OrderIsClosedOnceWeChatPayAllows) {
    ASSERT_EQ(v2().version, sim::api_version::v2);
    ASSERT_EQ(place(v2(), "CLOSE-4").status, 201);
    const auto accepted = close(v2(), "CLOSE-4");
    EXPECT_EQ(accepted.status, 202) << accepted.body;
    EXPECT_EQ(ledger_state(v2(), "CLOSE-4"), "NOTPAY");
    EXPECT_EQ(sim_truth(sim_->port()).at(v2().mchid + "/CLOSE-4").trade_state, "NOTPAY");
    EXPECT_EQ(
        db_.scalar("SELECT expire_at <= now() AND next_poll_at <= created_at + interval '5 minutes 1 second'"
                   " FROM wxrecon.orders WHERE out_trade_no = 'CLOSE-4'"),
        "t");
}

}  // namespace
}  // namespace wxrecon::testing
