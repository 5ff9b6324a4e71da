// POST /api/v1/refunds and the refund tracker against wxpay-sim and a real PostgreSQL
// (docs/interfaces.md §4.4d, §9.7): a refund is checked against what was paid, stored, sent once per
// out_refund_no whatever the retries, and followed to its end by notification or, when that is lost,
// by the tracker's queries; WeChat's refusal removes it; one left PROCESSING too long opens refund_stuck.
#include <gtest/gtest.h>

#include <simdjson.h>

#include <chrono>
#include <pqxx/pqxx>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>

#include "net/http_client.hpp"
#include "sim_env.hpp"
#include "store/migrations.hpp"

namespace wxrecon::testing {
namespace {

using namespace std::chrono_literals;

class RefundApi : public ::testing::Test {
protected:
    void SetUp() override {
        {
            pqxx::connection conn(db_.url());
            store::migrate(conn);
        }
        sim::sim_options options;
        options.seed = 11;
        sim_ = std::make_unique<running_simulator>(keys_, options);
        start_daemon();
    }

    void start_daemon(const std::string& extra = "") {
        daemon_.reset();
        auto cfg = sim_daemon_config(keys_, db_.url(), sim_->port(),
                                     "[poller]\ndelays = [\"1h\"]\nrequest_timeout = \"1s\"\n"
                                     "refund_delays = [\"300ms\"]\nrefund_interval_after = \"500ms\"\n" +
                                         extra);
        serve_api_with_prepay(cfg, keys_);
        daemon_ = std::make_unique<running_daemon>(std::move(cfg));
    }

    const sim::sim_merchant& v3() const { return keys_.keys.merchants[0]; }
    const sim::sim_merchant& v2() const { return keys_.keys.merchants[1]; }

    // An order of 500 fen placed through the API and paid at the simulator, SUCCESS in the ledger.
    void paid_order(const sim::sim_merchant& m, const std::string& no) {
        const auto placed = api_post(
            daemon_->port(), "/api/v1/orders",
            R"({"mchid":")" + m.mchid + R"(","out_trade_no":")" + no +
                R"(","amount_total":500,"description":"refund test","payer_openid":"oRefundPayer","prepay":true})");
        ASSERT_EQ(placed.status, 201) << placed.body;
        sim_control(sim_->port(), "/sim/pay",
                    R"({"mchid":")" + m.mchid + R"(","out_trade_no":")" + no + "\"}");
        ASSERT_TRUE(
            wait_for("SELECT state FROM wxrecon.orders WHERE out_trade_no = '" + no + "'", "SUCCESS"));
    }

    http_response refund(const sim::sim_merchant& m, const std::string& order, const std::string& no,
                         std::int64_t amount) {
        return api_post(daemon_->port(), "/api/v1/refunds",
                        R"({"mchid":")" + m.mchid + R"(","out_trade_no":")" + order +
                            R"(","out_refund_no":")" + no + R"(","amount":)" + std::to_string(amount) +
                            R"(,"reason":"顾客退货"})");
    }

    std::string refund_status(const std::string& no) {
        return db_.scalar("SELECT coalesce((SELECT status FROM wxrecon.refunds WHERE out_refund_no = '" + no +
                          "'), '<none>')");
    }

    bool wait_for(const std::string& sql, const std::string& expected,
                  std::chrono::milliseconds limit = 15s) {
        const auto until = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < until) {
            if (db_.scalar(sql) == expected) return true;
            std::this_thread::sleep_for(50ms);
        }
        return db_.scalar(sql) == expected;
    }

    // How many refunds the simulator (WeChat Pay's truth) holds with that number.
    int refunds_at_wechat(const std::string& out_refund_no) {
        const auto r = http_get(sim_->port(), "/sim/ledger");
        simdjson::dom::parser parser;
        simdjson::dom::array orders;
        if (parser.parse(simdjson::padded_string(r.body)).at_pointer("/orders").get(orders) !=
            simdjson::SUCCESS)
            return -1;
        int n = 0;
        for (const simdjson::dom::element o : orders) {
            simdjson::dom::array list;
            if (o.at_pointer("/refunds").get(list) != simdjson::SUCCESS) continue;
            for (const simdjson::dom::element x : list) {
                std::string_view no;
                if (x.at_pointer("/out_refund_no").get(no) == simdjson::SUCCESS && no == out_refund_no) ++n;
            }
        }
        return n;
    }

    scratch_database db_;
    sim_key_dir keys_{2};  // a v3 and a v2 merchant
    std::unique_ptr<running_simulator> sim_;
    std::unique_ptr<running_daemon> daemon_;
};

TEST_F(RefundApi, RefundIsMadeOnceAndRecordedWhateverTheRetries) {
    paid_order(v3(), "REFUND-1");
    const auto made = refund(v3(), "REFUND-1", "REFUND-1-R1", 200);
    ASSERT_EQ(made.status, 201) << made.body;
    EXPECT_NE(made.body.find(R"("origin": "api")"), std::string::npos) << made.body;
    EXPECT_NE(made.body.find(R"("reason": "顾客退货")"), std::string::npos) << made.body;
    ASSERT_TRUE(
        wait_for("SELECT status FROM wxrecon.refunds WHERE out_refund_no = 'REFUND-1-R1'", "SUCCESS"));

    const auto again = refund(v3(), "REFUND-1", "REFUND-1-R1", 200);
    EXPECT_EQ(again.status, 200) << again.body;
    EXPECT_NE(again.body.find(R"("status": "SUCCESS")"), std::string::npos) << again.body;
    EXPECT_EQ(refunds_at_wechat("REFUND-1-R1"), 1) << "the same request again is never a second refund";
    EXPECT_EQ(db_.scalar("SELECT count(*) FROM wxrecon.payment_events WHERE out_refund_no = 'REFUND-1-R1'"
                         " AND refund_status = 'SUCCESS'"),
              "1");
    EXPECT_EQ(db_.scalar("SELECT attempts FROM wxrecon.refund_requests WHERE out_refund_no = 'REFUND-1-R1'"),
              "2");
    EXPECT_TRUE(
        wait_for("SELECT next_poll_at IS NULL FROM wxrecon.refunds WHERE out_refund_no = 'REFUND-1-R1'", "t"))
        << "a final refund is not queried again";

    const auto order = http_request(daemon_->port(), "GET", "/api/v1/orders/" + v3().mchid + "/REFUND-1",
                                    {{"Authorization", "Bearer " + api_token}});
    EXPECT_NE(order.body.find(R"("refunded_total": 200)"), std::string::npos) << order.body;
    // 200 of 500 back: the order stays paid, and finance's day counts both.
    EXPECT_NE(order.body.find(R"("state": "SUCCESS")"), std::string::npos) << order.body;
    EXPECT_EQ(db_.scalar("SELECT sum(paid_amount) || ' ' || sum(refunded_amount) FROM wxrecon.daily_summary"),
              "500 200");
    // The rest refunded: now the order is REFUND.
    ASSERT_EQ(refund(v3(), "REFUND-1", "REFUND-1-R2", 300).status, 201);
    EXPECT_TRUE(wait_for("SELECT state FROM wxrecon.orders WHERE out_trade_no = 'REFUND-1'", "REFUND"));
    EXPECT_EQ(db_.scalar("SELECT sum(paid_amount) || ' ' || sum(refunded_amount) FROM wxrecon.daily_summary"),
              "500 500");
    const auto got = http_request(daemon_->port(), "GET", "/api/v1/refunds/" + v3().mchid + "/REFUND-1-R1",
                                  {{"Authorization", "Bearer " + api_token}});
    EXPECT_EQ(got.status, 200);
    EXPECT_NE(got.body.find(R"("refund_status": "SUCCESS")"), std::string::npos) << got.body;
}

TEST_F(RefundApi, RefusesWhatCannotBeRefunded) {
    paid_order(v3(), "REFUND-2");
    ASSERT_EQ(refund(v3(), "REFUND-2", "REFUND-2-R1", 300).status, 201);
    // Another amount, or another order, under a number already used.
    EXPECT_EQ(refund(v3(), "REFUND-2", "REFUND-2-R1", 301).status, 409);
    const auto other =
        api_post(daemon_->port(), "/api/v1/orders",
                 R"({"mchid":")" + v3().mchid + R"(","out_trade_no":"REFUND-2B","amount_total":500})");
    ASSERT_EQ(other.status, 201);
    EXPECT_EQ(refund(v3(), "REFUND-2B", "REFUND-2-R1", 300).status, 409);
    // 300 of 500 are refunded or refunding: 201 more would exceed what was paid.
    const auto over = refund(v3(), "REFUND-2", "REFUND-2-R2", 201);
    EXPECT_EQ(over.status, 422) << over.body;
    EXPECT_NE(over.body.find("paid 500 fen"), std::string::npos) << over.body;
    EXPECT_EQ(refund(v3(), "REFUND-2", "REFUND-2-R2", 200).status, 201) << "exactly what is left";
    EXPECT_EQ(refund(v3(), "REFUND-2B", "REFUND-2B-R1", 1).status, 422) << "an unpaid order";
    EXPECT_EQ(refund(v3(), "NO-SUCH", "NS-R1", 1).status, 404);
    EXPECT_EQ(refund(v3(), "REFUND-2", "bad number!", 1).status, 400);
    EXPECT_EQ(refund(v3(), "REFUND-2", "REFUND-2-R3", 0).status, 400);
    EXPECT_EQ(
        api_post(daemon_->port(), "/api/v1/refunds",
                 R"({"mchid":")" + v3().mchid +
                     R"(","out_trade_no":"REFUND-2","out_refund_no":"REFUND-2-R4","amount":1,"extra":1})")
            .status,
        400);
    EXPECT_EQ(
        http_request(daemon_->port(), "GET", "/api/v1/refunds", {{"Authorization", "Bearer " + api_token}})
            .status,
        405);
    EXPECT_EQ(http_request(daemon_->port(), "POST", "/api/v1/refunds", {}, "{}").status, 401);
    EXPECT_EQ(refunds_at_wechat("REFUND-2-R2"), 1);
}

TEST_F(RefundApi, LostNotificationIsFoundByTheTrackersQuery) {
    paid_order(v3(), "REFUND-3");
    sim_control(sim_->port(), "/sim/faults", R"({"drop":1})");  // every notification from now is lost
    ASSERT_EQ(refund(v3(), "REFUND-3", "REFUND-3-R1", 500).status, 201);
    ASSERT_TRUE(
        wait_for("SELECT status FROM wxrecon.refunds WHERE out_refund_no = 'REFUND-3-R1'", "SUCCESS"));
    EXPECT_EQ(db_.scalar("SELECT string_agg(source, ',') FROM wxrecon.payment_events WHERE out_refund_no = "
                         "'REFUND-3-R1'"),
              "refund_query_v3");
}

TEST_F(RefundApi, ApiV2RefundIsSignedSentAndNotified) {
    paid_order(v2(), "REFUND-4");
    const auto made = refund(v2(), "REFUND-4", "REFUND-4-R1", 100);
    ASSERT_EQ(made.status, 201) << made.body;
    ASSERT_TRUE(
        wait_for("SELECT status FROM wxrecon.refunds WHERE out_refund_no = 'REFUND-4-R1'", "SUCCESS"));
    EXPECT_EQ(refunds_at_wechat("REFUND-4-R1"), 1);
    EXPECT_EQ(
        db_.scalar("SELECT refund_id IS NOT NULL FROM wxrecon.refunds WHERE out_refund_no = 'REFUND-4-R1'"),
        "t");
}

TEST_F(RefundApi, ApiV2RefundWithItsNotificationLostIsFoundAndAClosedOneFreesTheMoney) {
    paid_order(v2(), "REFUND-8");
    sim_control(sim_->port(), "/sim/refund-plan",
                R"({"mchid":")" + v2().mchid +
                    R"(","out_refund_no":"REFUND-8-R1","status":"CLOSED","after_ms":200,"notify":false})");
    ASSERT_EQ(refund(v2(), "REFUND-8", "REFUND-8-R1", 500).status, 201);
    ASSERT_TRUE(wait_for("SELECT status FROM wxrecon.refunds WHERE out_refund_no = 'REFUND-8-R1'", "CLOSED"));
    EXPECT_EQ(db_.scalar("SELECT string_agg(source || ' ' || refund_status, ',') FROM wxrecon.payment_events"
                         " WHERE out_refund_no = 'REFUND-8-R1'"),
              "refund_query_v2 CLOSED");
    EXPECT_EQ(db_.scalar("SELECT state FROM wxrecon.orders WHERE out_trade_no = 'REFUND-8'"), "SUCCESS");
    // A CLOSED refund paid nothing back: the whole amount can be refunded again, under a new number.
    sim_control(sim_->port(), "/sim/faults", R"({"drop":1})");
    ASSERT_EQ(refund(v2(), "REFUND-8", "REFUND-8-R2", 500).status, 201);
    ASSERT_TRUE(wait_for("SELECT state FROM wxrecon.orders WHERE out_trade_no = 'REFUND-8'", "REFUND"));
    EXPECT_EQ(db_.scalar("SELECT string_agg(source, ',') FROM wxrecon.payment_events WHERE out_refund_no = "
                         "'REFUND-8-R2'"),
              "refund_query_v2");
}

TEST_F(RefundApi, TwoRequestsForTheLastFenExactlyOneIsMade) {
    paid_order(v3(), "REFUND-9");
    ASSERT_EQ(refund(v3(), "REFUND-9", "REFUND-9-R0", 499).status, 201);
    for (int round = 0; round < 5; ++round) {
        const std::string a = "REFUND-9-A" + std::to_string(round), b = "REFUND-9-B" + std::to_string(round);
        int status_a = 0, status_b = 0;
        std::thread first([&] { status_a = refund(v3(), "REFUND-9", a, 1).status; });
        std::thread second([&] { status_b = refund(v3(), "REFUND-9", b, 1).status; });
        first.join();
        second.join();
        if (round == 0) {
            EXPECT_EQ(std::min(status_a, status_b), 201);
            EXPECT_EQ(std::max(status_a, status_b), 422);
        } else {
            EXPECT_EQ(status_a, 422);
            EXPECT_EQ(status_b, 422);
        }
    }
    EXPECT_EQ(db_.scalar("SELECT sum(amount_refund) FROM wxrecon.refunds WHERE out_trade_no = 'REFUND-9'"),
              "500");
}

TEST_F(RefundApi, AnswerLostAfterTheRefundWasMadeIsNotASecondRefund) {
    paid_order(v3(), "REFUND-5");
    // The simulator makes the refund, then its answer is slower than the daemon's 1 s timeout.
    sim_control(sim_->port(), "/sim/faults", R"({"reply_slow":1,"slow_ms":1500,"drop":1})");
    const auto first = refund(v3(), "REFUND-5", "REFUND-5-R1", 250);
    EXPECT_EQ(first.status, 201) << first.body;
    EXPECT_NE(first.body.find(R"("status": "PROCESSING")"), std::string::npos) << first.body;
    EXPECT_EQ(
        db_.scalar("SELECT state || ' ' || last_code FROM wxrecon.refund_requests WHERE out_refund_no = "
                   "'REFUND-5-R1'"),
        "pending unreachable");
    sim_control(sim_->port(), "/sim/faults", R"({"reply_slow":0,"drop":1})");
    EXPECT_EQ(refund(v3(), "REFUND-5", "REFUND-5-R1", 250).status, 200);
    ASSERT_TRUE(
        wait_for("SELECT status FROM wxrecon.refunds WHERE out_refund_no = 'REFUND-5-R1'", "SUCCESS"));
    EXPECT_EQ(refunds_at_wechat("REFUND-5-R1"), 1);
}

TEST_F(RefundApi, RefusalByWeChatPayLeavesNothingBehind) {
    paid_order(v3(), "REFUND-6");
    // Refunded in full at WeChat Pay by hand, unannounced: the ledger still believes 500 fen refundable.
    sim_control(sim_->port(), "/sim/refund",
                R"({"mchid":")" + v3().mchid +
                    R"(","out_trade_no":"REFUND-6","out_refund_no":"BY-HAND","notify":false})");
    const auto refused = refund(v3(), "REFUND-6", "REFUND-6-R1", 100);
    EXPECT_EQ(refused.status, 502) << refused.body;
    EXPECT_NE(refused.body.find(R"("code":"NOT_ENOUGH")"), std::string::npos) << refused.body;
    EXPECT_EQ(refund_status("REFUND-6-R1"), "<none>") << "nothing was refunded, nothing is held back";
    EXPECT_EQ(http_request(daemon_->port(), "GET", "/api/v1/refunds/" + v3().mchid + "/REFUND-6-R1",
                           {{"Authorization", "Bearer " + api_token}})
                  .status,
              404);
    EXPECT_EQ(db_.scalar("SELECT state FROM wxrecon.refund_requests WHERE out_refund_no = 'REFUND-6-R1'"),
              "refused");
}

TEST_F(RefundApi, AbnormalAndStuckRefundsAreFlaggedForFinance) {
    start_daemon("[alerts]\nrefund_stuck_after = \"1s\"\n");
    paid_order(v3(), "REFUND-7");
    sim_control(sim_->port(), "/sim/refund-plan",
                R"({"mchid":")" + v3().mchid +
                    R"(","out_refund_no":"REFUND-7-R1","status":"ABNORMAL","notify":false})");
    sim_control(sim_->port(), "/sim/refund-plan",
                R"({"mchid":")" + v3().mchid +
                    R"(","out_refund_no":"REFUND-7-R2","status":"SUCCESS","after_ms":600000})");
    ASSERT_EQ(refund(v3(), "REFUND-7", "REFUND-7-R1", 100).status, 201);
    ASSERT_EQ(refund(v3(), "REFUND-7", "REFUND-7-R2", 100).status, 201);
    ASSERT_TRUE(
        wait_for("SELECT status FROM wxrecon.refunds WHERE out_refund_no = 'REFUND-7-R1'", "ABNORMAL"));
    EXPECT_TRUE(
        wait_for("SELECT count(*) FROM wxrecon.discrepancies WHERE out_trade_no = 'REFUND-7'"
                 " AND kind = 'refund_abnormal' AND resolved_at IS NULL",
                 "1"));
    EXPECT_TRUE(
        wait_for("SELECT detail->'refunds'->0->>'out_refund_no' FROM wxrecon.discrepancies"
                 " WHERE out_trade_no = 'REFUND-7' AND kind = 'refund_stuck' AND resolved_at IS NULL",
                 "REFUND-7-R2"));
    EXPECT_EQ(refund_status("REFUND-7-R2"), "PROCESSING");
}

// APIv2 refunds need the merchant's client certificate (docs/protocol-notes.md §7.10): over HTTPS the
// simulator refuses one without it (CERT_ERROR, SimRefundsMutualTls); through wxrecond it is made,
// because wxrecond presents merchant_cert_file.
TEST(RefundApiMutualTls, ApiV2RefundPresentsTheMerchantsCertificate) {
    scratch_database db;
    {
        pqxx::connection conn(db.url());
        store::migrate(conn);
    }
    sim_key_dir keys{2};
    sim::sim_options options;
    options.tls = true;
    options.seed = 3;
    running_simulator sim(keys, options);
    const std::string ca = (keys.dir / "ca" / "ca_cert.pem").string();
    const std::string base = "https://127.0.0.1:" + std::to_string(sim.port());
    auto control = [&](const std::string& target, const std::string& json) {
        boost::asio::io_context io;
        net::client_options o;
        o.ca_file = ca;
        net::http_client client(io.get_executor(), o);
        net::outbound_request r;
        r.method = json.empty() ? "GET" : "POST";
        r.url = base + target;
        if (!json.empty()) r.headers = {{"Content-Type", "application/json"}};
        r.body = json;
        auto done = boost::asio::co_spawn(io, client.send(std::move(r)), boost::asio::use_future);
        io.run();
        const auto ex = done.get();
        if (!ex.response || ex.response->status >= 300) throw std::runtime_error(target + ": " + ex.error);
        return ex.response->body;
    };
    auto cfg = sim_daemon_config(keys, db.url(), sim.port(),
                                 "[poller]\ndelays = [\"1h\"]\nrefund_delays = [\"1h\"]\n");
    serve_api_with_prepay(cfg, keys);
    for (auto& m : cfg.merchants) {
        m.api_base = base;
        m.ca_file = ca;
    }
    running_daemon daemon(std::move(cfg));
    const auto& v2 = keys.keys.merchants[1];
    ASSERT_EQ(v2.version, sim::api_version::v2);
    const auto placed =
        api_post(daemon.port(), "/api/v1/orders",
                 R"({"mchid":")" + v2.mchid +
                     R"(","out_trade_no":"MTLS-REFUND-1","amount_total":500,"description":"mtls",)"
                     R"("payer_openid":"oMtls","prepay":true})");
    ASSERT_EQ(placed.status, 201) << placed.body;
    control("/sim/pay", R"({"mchid":")" + v2.mchid + R"(","out_trade_no":"MTLS-REFUND-1"})");
    const auto wait_for = [&](const std::string& sql, const std::string& expected) {
        for (int i = 0; i < 300 && db.scalar(sql) != expected; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        return db.scalar(sql) == expected;
    };
    ASSERT_TRUE(wait_for("SELECT state FROM wxrecon.orders WHERE out_trade_no = 'MTLS-REFUND-1'", "SUCCESS"));
    const auto made =
        api_post(daemon.port(), "/api/v1/refunds",
                 R"({"mchid":")" + v2.mchid +
                     R"(","out_trade_no":"MTLS-REFUND-1","out_refund_no":"MTLS-REFUND-1-R","amount":500})");
    ASSERT_EQ(made.status, 201) << made.body;
    EXPECT_EQ(db.scalar("SELECT next_poll_at > now() + interval '50 minutes' FROM wxrecon.refunds"), "t")
        << "the tracker's first query follows refund_delays (1h here), not at once";
    EXPECT_TRUE(wait_for("SELECT state FROM wxrecon.orders WHERE out_trade_no = 'MTLS-REFUND-1'", "REFUND"));
    EXPECT_NE(control("/sim/ledger", "").find("MTLS-REFUND-1-R"), std::string::npos)
        << "the refund was made at the simulator, which demands the client certificate over HTTPS";
}

}  // namespace
}  // namespace wxrecon::testing
