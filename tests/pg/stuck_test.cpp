// Stuck orders (docs/interfaces.md §9.5, alerts.stuck_after): an order the
// poller has been failing to query for that long, or still open that long past
// its expiry, gets one open `stuck` discrepancy and counts in the
// wxrecon_stuck_orders gauge; the discrepancy is resolved once polling works
// again. The poll-lag and orders-by-state gauges come from the same background
// reading.
#include <gtest/gtest.h>

#include <chrono>
#include <pqxx/pqxx>
#include <thread>

#include "sim_env.hpp"
#include "store/migrations.hpp"

namespace wxrecon::testing {
namespace {

using namespace std::chrono_literals;

class StuckOrders : public ::testing::Test {
protected:
    void SetUp() override {
        pqxx::connection conn(db_.url());
        store::migrate(conn);
    }
    // Waits until sql returns expected; returns what it returned last.
    std::string wait_for(const std::string& sql, const std::string& expected, std::chrono::seconds limit) {
        const auto give_up = std::chrono::steady_clock::now() + limit;
        std::string got;
        while (std::chrono::steady_clock::now() < give_up) {
            got = db_.scalar(sql);
            if (got == expected) break;
            std::this_thread::sleep_for(100ms);
        }
        return got;
    }
    scratch_database db_;
};

std::string metric_line(const std::string& metrics, const std::string& name) {
    const auto pos = metrics.find("\n" + name + " ");
    if (pos == std::string::npos) return "";
    return metrics.substr(pos + 1, metrics.find('\n', pos + 1) - pos - 1);
}

TEST_F(StuckOrders, FailingAndOverdueOrdersAreFlaggedAndResolvedWhenPollingRecovers) {
    sim_key_dir keys(1);
    running_simulator sim(keys, sim::sim_options{});
    const auto& m = keys.keys.merchants[0];
    // Failing: WeChat Pay knows the order but answers every query with 500.
    db_.exec(
        "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, expire_at, placed_at) VALUES ('" +
        m.mchid + "', 'STUCK-FAILING', 100, now() + interval '1 hour', now())");
    sim_control(sim.port(), "/sim/orders",
                R"({"mchid":")" + m.mchid +
                    R"(","out_trade_no":"STUCK-FAILING","amount":100,"notify_url":"http://127.0.0.1:9/x"})");
    // Overdue: placed by wxrecon, expired an hour ago, and WeChat Pay does not know it, so it cannot be
    // closed.
    db_.exec(
        "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, created_at, expire_at, placed_at) "
        "VALUES ('" +
        m.mchid + "', 'STUCK-OVERDUE', 100, now() - interval '2 hours', now() - interval '1 hour', now())");
    // A settled order, for the per-state gauge.
    db_.exec("INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, state) VALUES ('" + m.mchid +
             "', 'SETTLED-1', 100, 'CLOSED')");
    sim_control(sim.port(), "/sim/faults", R"({"query_500":1})");

    running_daemon daemon(sim_daemon_config(
        keys, db_.url(), sim.port(),
        "[poller]\ndelays = [\"200ms\"]\ninterval_after = \"1s\"\nclose_after_expire = \"200ms\"\n"
        "[alerts]\nstuck_after = \"2s\"\n"));

    const std::string open_stuck =
        "SELECT string_agg(out_trade_no, ',' ORDER BY out_trade_no) FROM wxrecon.discrepancies"
        " WHERE kind = 'stuck' AND resolved_at IS NULL";
    EXPECT_EQ(wait_for(open_stuck, "STUCK-FAILING,STUCK-OVERDUE", 20s), "STUCK-FAILING,STUCK-OVERDUE");
    EXPECT_NE(db_.scalar("SELECT detail->>'last_poll_error' FROM wxrecon.discrepancies WHERE out_trade_no = "
                         "'STUCK-FAILING'"),
              "");

    // The gauges, read in the background.
    std::string metrics;
    for (int i = 0; i < 100 && metric_line(metrics, "wxrecon_stuck_orders") != "wxrecon_stuck_orders 2";
         ++i) {
        std::this_thread::sleep_for(100ms);
        metrics = http_get(daemon.admin_port(), "/metrics").body;
    }
    EXPECT_EQ(metric_line(metrics, "wxrecon_stuck_orders"), "wxrecon_stuck_orders 2");
    EXPECT_NE(metrics.find("wxrecon_orders{state=\"CLOSED\"} 1"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("wxrecon_orders{state=\"NOTPAY\"} 2"), std::string::npos) << metrics;
    EXPECT_NE(metric_line(metrics, "wxrecon_poll_lag_seconds"), "");

    // Queries work again: the failing order is answered and no longer stuck; the overdue one still is,
    // and it is flagged once however often the poller comes back to it.
    sim_control(sim.port(), "/sim/faults", R"({"query_500":0})");
    EXPECT_EQ(wait_for(open_stuck, "STUCK-OVERDUE", 20s), "STUCK-OVERDUE");
    EXPECT_EQ(db_.scalar("SELECT count(*) FROM wxrecon.discrepancies WHERE kind = 'stuck'"), "2");
    EXPECT_EQ(db_.scalar("SELECT status || ' ' || resolved_by || ' ' || resolution FROM wxrecon.discrepancies"
                         " WHERE out_trade_no = 'STUCK-FAILING'"),
              "resolved wxrecond no longer stuck: the order left its unpaid state or its queries succeed");
    EXPECT_EQ(db_.scalar("SELECT state FROM wxrecon.orders WHERE out_trade_no = 'STUCK-FAILING'"), "NOTPAY");
}

}  // namespace
}  // namespace wxrecon::testing
