// The poller against wxpay-sim and a real PostgreSQL: every notification is
// lost, yet paid orders end SUCCESS by query with WeChat's ids and amounts,
// unpaid ones are closed at WeChat after expiry, and an order WeChat never
// heard of is closed locally without a close call.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <pqxx/pqxx>
#include <thread>

#include "sim_env.hpp"
#include "store/migrations.hpp"
#include "test_env.hpp"

namespace wxrecon::testing {
namespace {

using namespace std::chrono_literals;

// Short schedule: queries 200 ms and 500 ms after creation, then every second; close 200 ms after expiry.
const std::string fast_poller =
    "[poller]\ndelays = [\"200ms\", \"500ms\"]\ninterval_after = \"1s\"\nclose_after_expire = \"200ms\"\n"
    "concurrency = 16\nrate_per_second = 200\n";

class PollerTest : public ::testing::Test {
protected:
    void SetUp() override {
        pqxx::connection conn(db_.url());
        store::migrate(conn);  // orders are registered before the daemon starts
    }
    // Waits until no order is open any more.
    void wait_until_settled(std::chrono::seconds limit) {
        const auto give_up = std::chrono::steady_clock::now() + limit;
        long open = 0;
        while (std::chrono::steady_clock::now() < give_up) {
            open = db_.count("SELECT count(*) FROM wxrecon.orders WHERE state IN ('NOTPAY', 'USERPAYING')");
            if (open == 0) return;
            std::this_thread::sleep_for(200ms);
        }
        FAIL() << open << " orders still open after " << limit.count() << " s";
    }
    scratch_database db_;
};

TEST_F(PollerTest, LostNotificationsAreRecoveredByQueryAndExpiredOrdersClosed) {
    sim_key_dir keys(2);  // APIv3 and APIv2
    sim::sim_options options;
    options.time_scale = 0.001;  // also shortens the simulator's 5-minute rule for APIv2 closes
    running_simulator sim(keys, options);
    // Registered before the daemon starts, so its first claims see every order; the APIv2 orders are
    // backdated past the 5-minute minimum before an APIv2 close.
    const int per_merchant = 100;
    for (const auto& m : keys.keys.merchants) {
        const bool v2 = m.version == sim::api_version::v2;
        db_.exec(
            "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, created_at, expire_at) "
            "SELECT '" +
            m.mchid + "', 'POLL-' || g, 700, now() - interval '" + (v2 ? "10 minutes" : "0 seconds") +
            "', now() + interval '3 seconds' FROM generate_series(1, " + std::to_string(per_merchant) +
            ") g");
        sim_control(sim.port(), "/sim/orders",
                    R"({"mchid":")" + m.mchid + R"(","prefix":"POLL-","count":)" +
                        std::to_string(per_merchant) +
                        R"(,"amount":700,"notify_url":"http://127.0.0.1:9/lost"})");
    }
    sim_control(sim.port(), "/sim/faults", R"({"drop":1})");  // not one notification arrives
    running_daemon daemon(sim_daemon_config(keys, db_.url(), sim.port(), fast_poller));
    // 70 of each merchant's orders are paid, one of them with a different amount; the rest expire.
    for (const auto& m : keys.keys.merchants) {
        sim_control(sim.port(), "/sim/pay", R"({"mchid":")" + m.mchid + R"(","prefix":"POLL-","count":69})");
        sim_control(sim.port(), "/sim/pay",
                    R"({"mchid":")" + m.mchid + R"(","out_trade_no":"POLL-70","amount":650})");
    }
    wait_until_settled(60s);

    const auto t = sim_truth(sim.port());
    pqxx::connection conn(db_.url());
    pqxx::nontransaction tx(conn);
    int paid = 0, closed = 0;
    for (const auto& row :
         tx.exec("SELECT mchid, out_trade_no, state, state_source, coalesce(transaction_id, ''),"
                 " coalesce(payer_total, 0) FROM wxrecon.orders")) {
        const std::string key = row[0].as<std::string>() + "/" + row[1].as<std::string>();
        const sim_order_truth& w = t.at(key);
        const std::string state = row[2].as<std::string>();
        if (w.trade_state == "SUCCESS") {
            ++paid;
            EXPECT_EQ(state, "SUCCESS") << key;
            EXPECT_EQ(row[3].as<std::string>(), "query") << key;
            EXPECT_EQ(row[4].as<std::string>(), w.transaction_id) << key;
            EXPECT_EQ(row[5].as<std::int64_t>(), w.payer_total) << key;
        } else {
            ++closed;
            EXPECT_EQ(w.trade_state, "CLOSED") << key << ": the simulator must have been asked to close it";
            EXPECT_EQ(state, "CLOSED") << key;
            EXPECT_EQ(row[3].as<std::string>(), "close") << key;
        }
    }
    EXPECT_EQ(paid, 2 * 70);
    EXPECT_EQ(closed, 2 * 30);
    // The only discrepancies are the two orders paid with another amount.
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.discrepancies"), 2);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.discrepancies WHERE kind = 'amount_mismatch' AND "
                        "out_trade_no = 'POLL-70'"),
              2);
    EXPECT_EQ(
        db_.count("SELECT count(*) FROM wxrecon.payment_events WHERE source IN ('query_v3', 'query_v2')"),
        140);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events WHERE source = 'close'"), 60);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.orders WHERE next_poll_at IS NOT NULL OR "
                        "poll_lease_owner IS NOT NULL"),
              0);
}

TEST_F(PollerTest, OrderWeChatNeverHeardOfIsClosedLocally) {
    sim_key_dir keys(1);
    running_simulator sim(keys, {});
    db_.exec("INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, expire_at) VALUES ('" +
             keys.keys.merchants[0].mchid + "', 'NEVER-PLACED-1', 100, now() + interval '1 second')");
    running_daemon daemon(sim_daemon_config(keys, db_.url(), sim.port(), fast_poller));
    wait_until_settled(30s);
    pqxx::connection conn(db_.url());
    pqxx::nontransaction tx(conn);
    const auto row = tx.exec1(
        "SELECT state, state_source, coalesce(state_desc, '(null)'), poll_attempts FROM wxrecon.orders");
    EXPECT_EQ(row[0].as<std::string>(), "CLOSED");
    EXPECT_EQ(row[1].as<std::string>(), "close");
    EXPECT_EQ(row[2].as<std::string>(), "never placed at WeChat Pay");
    EXPECT_GE(row[3].as<int>(), 1) << "it was queried before";
    EXPECT_NE(http_get(sim.port(), "/sim/ledger").body.find("\"orders\":[]"), std::string::npos)
        << "no order may appear at WeChat's side";
}

}  // namespace
}  // namespace wxrecon::testing

namespace wxrecon::testing {
namespace {

struct call_window {
    std::int64_t start = 0, end = 0;
};

// Two daemons on one database, every query slowed down: the leases keep them from ever querying the
// same order at the same time, and between them every order is settled.
TEST_F(PollerTest, TwoInstancesNeverQueryTheSameOrderAtOnce) {
    sim_key_dir keys(1);
    running_simulator sim(keys, {});
    const std::string mchid = keys.keys.merchants[0].mchid;
    db_.exec(
        "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, expire_at) "
        "SELECT '" +
        mchid + "', 'TWO-ORDER-' || g, 100, now() + interval '4 seconds' FROM generate_series(1, 60) g");
    sim_control(
        sim.port(), "/sim/orders",
        R"({"mchid":")" + mchid +
            R"(","prefix":"TWO-ORDER-","count":60,"amount":100,"notify_url":"http://127.0.0.1:9/x"})");
    sim_control(sim.port(), "/sim/pay", R"({"mchid":")" + mchid + R"(","prefix":"TWO-ORDER-","count":30})");
    sim_control(sim.port(), "/sim/faults", R"({"drop":1,"query_slow":0.5,"slow_ms":150})");
    {
        running_daemon first(sim_daemon_config(keys, db_.url(), sim.port(), fast_poller));
        running_daemon second(sim_daemon_config(keys, db_.url(), sim.port(), fast_poller));
        wait_until_settled(60s);
    }
    const auto r = http_get(sim.port(), "/sim/calls");
    simdjson::dom::parser parser;
    const simdjson::padded_string text(r.body);
    const auto doc = parser.parse(text);
    std::map<std::string, std::vector<call_window>> by_order;
    std::size_t calls = 0;
    for (auto c : doc["calls"].get_array()) {
        // "GET /v3/pay/transactions/out-trade-no/TWO-7" or "POST …/out-trade-no/TWO-7/close"
        std::string what{std::string_view(c["call"])};
        if (what.find("/out-trade-no/") == std::string::npos) continue;  // certificate downloads
        if (what.ends_with("/close")) what.resize(what.size() - 6);
        const std::string order = what.substr(what.rfind('/') + 1);
        by_order[order].push_back({int64_t(c["start_ms"]), int64_t(c["end_ms"])});
        ++calls;
    }
    EXPECT_GE(calls, 60u) << "every order was asked about at least once";
    for (auto& [order, windows] : by_order) {
        std::sort(windows.begin(), windows.end(),
                  [](const call_window& a, const call_window& b) { return a.start < b.start; });
        for (std::size_t i = 1; i < windows.size(); ++i)
            EXPECT_GE(windows[i].start, windows[i - 1].end) << order << ": two calls at once";
    }
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.orders WHERE state = 'SUCCESS'"), 30);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.orders WHERE state = 'CLOSED'"), 30);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events WHERE source = 'query_v3'"), 30);
}

}  // namespace
}  // namespace wxrecon::testing

namespace wxrecon::testing {
namespace {

// A notification cancels what is left of the schedule: no query is sent for a paid order, and its
// next_poll_at is cleared once it falls due (off the fact path, which never touches it).
TEST_F(PollerTest, NotificationCancelsTheSchedule) {
    sim_key_dir keys(1);
    running_simulator sim(keys, {});
    const std::string mchid = keys.keys.merchants[0].mchid;
    running_daemon daemon(sim_daemon_config(keys, db_.url(), sim.port(),
                                            "[poller]\ndelays = [\"1500ms\"]\ninterval_after = \"1s\"\n"));
    db_.exec("INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, expire_at) VALUES ('" + mchid +
             "', 'CANCEL-0001', 100, now() + interval '1 hour')");
    sim_control(sim.port(), "/sim/orders",
                R"({"mchid":")" + mchid +
                    R"(","out_trade_no":"CANCEL-0001","amount":100,"notify_url":"http://127.0.0.1:)" +
                    std::to_string(daemon.port()) + "/wxpay/v3/notify/" + mchid + "\"}");
    sim_control(sim.port(), "/sim/pay", R"({"mchid":")" + mchid + R"(","out_trade_no":"CANCEL-0001"})");
    const auto give_up = std::chrono::steady_clock::now() + 10s;
    while (db_.count(
               "SELECT count(*) FROM wxrecon.orders WHERE state = 'SUCCESS' AND next_poll_at IS NULL") == 0 &&
           std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(100ms);
    EXPECT_EQ(
        db_.count("SELECT count(*) FROM wxrecon.orders WHERE state = 'SUCCESS' AND state_source = 'notify'"),
        1);
    EXPECT_EQ(
        db_.count(
            "SELECT count(*) FROM wxrecon.orders WHERE next_poll_at IS NULL AND poll_lease_owner IS NULL"),
        1);
    EXPECT_EQ(http_get(sim.port(), "/sim/calls").body.find("/out-trade-no/"), std::string::npos)
        << "no query for a notified order";
}

}  // namespace
}  // namespace wxrecon::testing
