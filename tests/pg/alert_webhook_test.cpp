// alerts.webhook_url: discrepancies reach a receiver from the durable outbox,
// once each, across a restart, retried while the receiver fails, rate-limited,
// and an unknown_order resolved within its grace period is never pushed.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include <boost/asio/io_context.hpp>

#include "net/http_server.hpp"
#include "test_env.hpp"

namespace wxrecon::testing {
namespace {

using namespace std::chrono_literals;

// Takes pushes; answers `failures` of them with 500 (or the WeCom robot's rate-limit error) first.
class receiver {
public:
    explicit receiver(int failures, bool wecom = false) : failures_(failures), wecom_(wecom) {
        server_ = std::make_unique<net::http_server>(
            io_.get_executor(), boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0),
            net::http_limits{}, [this](inbound_request& r) { return answer(r); },
            [](std::string_view) {
                return reply{413, "", ""};
            },
            "receiver");
        server_->start();
        port_ = server_->local_endpoint().port();
        thread_ = std::thread([this] { io_.run(); });
    }
    ~receiver() {
        io_.stop();
        thread_.join();
    }
    std::string url() const {
        return "http://127.0.0.1:" + std::to_string(port_) +
               (wecom_ ? "/cgi-bin/webhook/send?key=test" : "/hook");
    }
    // Bodies taken (answered with success), by Idempotency-Key.
    std::map<std::string, std::vector<std::string>> taken() const {
        std::lock_guard lock(mutex_);
        return taken_;
    }
    int refused() const { return refused_.load(); }
    std::vector<std::chrono::steady_clock::time_point> taken_at() const {
        std::lock_guard lock(mutex_);
        return taken_at_;
    }

private:
    boost::asio::awaitable<reply> answer(inbound_request& r) {
        if (refused_.load() < failures_) {
            ++refused_;
            if (wecom_)
                co_return reply{200, "application/json",
                                R"({"errcode":45009,"errmsg":"api freq out of limit"})"};
            co_return reply{500, "text/plain", "down\n"};
        }
        {
            std::lock_guard lock(mutex_);
            taken_[std::string(r.header("Idempotency-Key"))].push_back(r.body);
            taken_at_.push_back(std::chrono::steady_clock::now());
        }
        if (wecom_) co_return reply{200, "application/json", R"({"errcode":0,"errmsg":"ok"})"};
        co_return reply{204, "", ""};
    }

    boost::asio::io_context io_;
    std::unique_ptr<net::http_server> server_;
    std::thread thread_;
    unsigned short port_ = 0;
    int failures_;
    bool wecom_;
    std::atomic<int> refused_{0};
    mutable std::mutex mutex_;
    std::map<std::string, std::vector<std::string>> taken_;
    std::vector<std::chrono::steady_clock::time_point> taken_at_;
};

template <class F>
bool eventually(F done, std::chrono::milliseconds limit = 20s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
        if (done()) return true;
        std::this_thread::sleep_for(50ms);
    }
    return done();
}

std::string key_of(long id) {
    return "wxrecon-discrepancy-" + std::to_string(id);
}

class AlertWebhook : public ::testing::Test {
protected:
    config::config config_for(const receiver& r, std::uint32_t per_minute = 600) {
        auto cfg = make_config(*merchant_, db_.url());
        cfg.alerts.webhook_url = r.url();
        cfg.alerts.webhook_per_minute = per_minute;
        cfg.alerts.unknown_order_grace = 1500ms;
        return cfg;
    }
    long open(const std::string& out_trade_no, const std::string& kind) {
        return std::stol(
            db_.scalar("INSERT INTO wxrecon.discrepancies (mchid, out_trade_no, kind, detail) VALUES ('" +
                       std::string(test_mchid) + "', '" + out_trade_no + "', '" + kind +
                       "', '{\"reported_total\": 90}') RETURNING id"));
    }
    void order(const std::string& out_trade_no, long amount, const std::string& state) {
        db_.exec(
            "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, state, payer_total) VALUES ('" +
            std::string(test_mchid) + "', '" + out_trade_no + "', " + std::to_string(amount) + ", '" + state +
            "', 90)");
    }

    scratch_database db_;
    std::unique_ptr<merchant_fixture> merchant_ = make_merchant_fixture();
};

TEST_F(AlertWebhook, EachDiscrepancyIsPushedOnceAcrossARestartAndRetriedWhileTheReceiverFails) {
    receiver hook(3);
    std::map<long, std::string> expected;  // discrepancy id -> kind
    long regression = 0;
    {
        running_daemon d(config_for(hook));
        order("ORDER-A1", 100, "SUCCESS");
        expected[open("ORDER-A1", "amount_mismatch")] = "amount_mismatch";
        expected[open("A2", "paid_after_close")] = "paid_after_close";
        expected[open("A3", "refund_abnormal")] = "refund_abnormal";
        expected[open("A4", "stuck")] = "stuck";
        regression = open("A5", "state_regression");  // not a kind that is pushed
        ASSERT_TRUE(eventually([&] { return hook.taken().size() == 4; })) << hook.taken().size();
        EXPECT_EQ(hook.refused(), 3);
    }
    // Opened while no wxrecond runs: the outbox holds them until one starts again.
    expected[open("B1", "amount_mismatch")] = "amount_mismatch";
    expected[open("B2", "refund_without_payment")] = "refund_without_payment";
    {
        running_daemon d(config_for(hook));
        ASSERT_TRUE(eventually([&] { return hook.taken().size() == 6; })) << hook.taken().size();
        std::this_thread::sleep_for(1500ms);  // nothing more arrives
    }
    const auto taken = hook.taken();
    ASSERT_EQ(taken.size(), expected.size());
    simdjson::dom::parser parser;
    for (const auto& [id, kind] : expected) {
        const auto it = taken.find(key_of(id));
        ASSERT_NE(it, taken.end()) << kind;
        EXPECT_EQ(it->second.size(), 1u) << kind << " pushed more than once";
        const simdjson::padded_string body(it->second.front());
        const auto doc = parser.parse(body);
        ASSERT_FALSE(doc.error()) << it->second.front();
        EXPECT_EQ(std::string_view(doc["kind"]), kind);
        EXPECT_EQ(int64_t(doc["discrepancy_id"]), id);
        EXPECT_EQ(std::string_view(doc["mchid"]), test_mchid);
        EXPECT_EQ(int64_t(doc["detail"]["reported_total"]), 90);
    }
    // The order as it stands rides along when there is one.
    const simdjson::padded_string first(taken.at(key_of(expected.begin()->first)).front());
    const auto a1 = parser.parse(first);
    EXPECT_EQ(std::string_view(a1["order"]["state"]), "SUCCESS");
    EXPECT_EQ(int64_t(a1["order"]["amount_total"]), 100);
    EXPECT_EQ(int64_t(a1["order"]["payer_total"]), 90);
    EXPECT_FALSE(taken.contains(key_of(regression)));
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.alert_outbox WHERE outcome = 'pushed'"), 6);
    EXPECT_GT(db_.count("SELECT max(attempts) FROM wxrecon.alert_outbox"), 1);
}

// The kinds the daily bills open (migration 0009 widened the trigger of 0007) are pushed like the others;
// a bill kind's out_trade_no may be a date (fee_mismatch) or a business order id (fund_flow_unmatched).
TEST_F(AlertWebhook, BillDiscrepanciesArePushedToo) {
    receiver hook(0);
    running_daemon d(config_for(hook));
    std::map<long, std::string> expected;
    for (const char* kind : {"missing_in_ledger", "missing_in_bill", "bill_amount_mismatch", "fee_mismatch",
                             "fund_flow_unmatched", "refund_missing_in_ledger", "refund_missing_in_bill"})
        expected[open(std::string("BILL-") + kind, kind)] = kind;
    const long not_pushed = open("BILL-X", "appid_mismatch");
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.alert_outbox"), 7);
    ASSERT_TRUE(eventually([&] { return hook.taken().size() == expected.size(); })) << hook.taken().size();
    const auto taken = hook.taken();
    simdjson::dom::parser parser;
    for (const auto& [id, kind] : expected) {
        const auto it = taken.find(key_of(id));
        ASSERT_NE(it, taken.end()) << kind;
        const simdjson::padded_string body(it->second.front());
        const auto doc = parser.parse(body);
        ASSERT_FALSE(doc.error()) << it->second.front();
        EXPECT_EQ(std::string_view(doc["kind"]), kind);
        EXPECT_EQ(std::string_view(doc["out_trade_no"]), "BILL-" + kind);
    }
    EXPECT_FALSE(taken.contains(key_of(not_pushed)));
}

TEST_F(AlertWebhook, UnknownOrderWaitsItsGraceAndIsNotPushedWhenResolvedMeanwhile) {
    receiver hook(0);
    running_daemon d(config_for(hook));
    const auto opened = std::chrono::steady_clock::now();
    const long resolved = open("U1", "unknown_order");
    const long stays = open("U2", "unknown_order");
    db_.exec("UPDATE wxrecon.discrepancies SET resolved_at = now() WHERE id = " + std::to_string(resolved));
    ASSERT_TRUE(eventually([&] { return hook.taken().size() == 1; }));
    EXPECT_GE(hook.taken_at().front() - opened, 1400ms) << "pushed before its grace period ended";
    std::this_thread::sleep_for(1500ms);
    const auto taken = hook.taken();
    EXPECT_EQ(taken.size(), 1u);
    EXPECT_TRUE(taken.contains(key_of(stays)));
    EXPECT_EQ(db_.scalar("SELECT outcome FROM wxrecon.alert_outbox WHERE discrepancy_id = " +
                         std::to_string(resolved)),
              "resolved_before_push");
}

TEST_F(AlertWebhook, WeComRobotGetsMarkdownAndItsRateLimitErrorIsRetried) {
    receiver hook(1, true);
    running_daemon d(config_for(hook));
    order("ORDER-W1", 100, "SUCCESS");
    const long id = open("ORDER-W1", "amount_mismatch");
    ASSERT_TRUE(eventually([&] { return hook.taken().size() == 1; }, 30s));
    EXPECT_EQ(hook.refused(), 1);
    const std::string body = hook.taken().at(key_of(id)).front();
    simdjson::dom::parser parser;
    const simdjson::padded_string text(body);
    const auto doc = parser.parse(text);
    ASSERT_FALSE(doc.error()) << body;
    EXPECT_EQ(std::string_view(doc["msgtype"]), "markdown");
    const std::string content{std::string_view(doc["markdown"]["content"])};
    EXPECT_NE(content.find("amount_mismatch"), std::string::npos) << content;
    EXPECT_NE(content.find("ORDER-W1"), std::string::npos) << content;
    EXPECT_NE(content.find("amount 100 fen, paid 90 fen"), std::string::npos) << content;
}

TEST_F(AlertWebhook, NoMoreThanTheConfiguredNumberGoOutInAMinute) {
    receiver hook(0);
    running_daemon d(config_for(hook, 6));
    for (int i = 0; i < 9; ++i) open("R" + std::to_string(i), "amount_mismatch");
    ASSERT_TRUE(eventually([&] { return hook.taken().size() == 6; }));
    // The next may go only a minute after the first: not a trickle on top of the six.
    std::this_thread::sleep_for(12s);
    EXPECT_EQ(hook.taken().size(), 6u);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.alert_outbox WHERE sent_at IS NULL"), 3);
}

}  // namespace
}  // namespace wxrecon::testing
