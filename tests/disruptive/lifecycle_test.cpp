// Tests that disturb the shared PostgreSQL server or run the real binary:
// PostgreSQL restarted under load (readiness follows it), and SIGTERM with
// requests in flight.
// They run serially (see tests/CMakeLists.txt).
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <pqxx/pqxx>
#include <set>
#include <thread>

#include "base/time.hpp"
#include "daemon_process.hpp"
#include "protocol/v3.hpp"
#include "test_env.hpp"

namespace wxrecon::testing {
namespace {

using namespace std::chrono_literals;

long events(const std::string& url, const std::string& where = "true") {
    pqxx::connection c(url);
    pqxx::nontransaction tx(c);
    return tx.exec1("SELECT count(*) FROM wxrecon.payment_events WHERE " + where)[0].as<long>();
}

void pg_ctl(const std::string& action) {
    const char* ctl = std::getenv("WXRECON_TEST_PG_CTL");
    ASSERT_NE(ctl, nullptr) << "WXRECON_TEST_PG_CTL is not set: run through scripts/test.sh";
    ASSERT_EQ(std::system((std::string(ctl) + " " + action + " >/dev/null 2>&1").c_str()), 0) << action;
}

TEST(Lifecycle, PostgresRestartMidRunGives503ThenSuccessAndLosesNothing) {
    scratch_database db;
    auto m = make_merchant_fixture();
    running_daemon d(make_config(*m, db.url()));

    EXPECT_EQ(send(d.port(), payment_notification(*m, "ORDER-R1", "4200000001")), 204);
    pg_ctl("stop");
    const auto during = payment_notification(*m, "ORDER-R2", "4200000002");
    const int status_during = send(d.port(), during);
    const auto metrics_during = http_get(d.admin_port(), "/metrics").body;
    const auto ready_during = http_get(d.admin_port(), "/readyz");
    const auto healthy_during = http_get(d.admin_port(), "/healthz");
    pg_ctl("start");
    EXPECT_EQ(status_during, 503);
    EXPECT_NE(metrics_during.find("wxrecon_db_up 0"), std::string::npos);
    EXPECT_EQ(ready_during.status, 503);
    EXPECT_NE(ready_during.body.find("database"), std::string::npos) << ready_during.body;
    EXPECT_EQ(healthy_during.status, 200) << "the process itself is fine";
    bool ready_again = false;
    for (int i = 0; i < 200 && !ready_again; ++i) {
        ready_again = http_get(d.admin_port(), "/readyz").status == 200;
        if (!ready_again) std::this_thread::sleep_for(100ms);
    }
    EXPECT_TRUE(ready_again) << "readiness did not come back with PostgreSQL";

    // WeChat Pay retries; once PostgreSQL is back the retry succeeds.
    int status_after = 0;
    for (int i = 0; i < 100 && status_after != 204; ++i) {
        status_after = send(d.port(), during);
        if (status_after != 204) std::this_thread::sleep_for(100ms);
    }
    EXPECT_EQ(status_after, 204);
    EXPECT_EQ(events(db.url()), 2);
    EXPECT_EQ(events(db.url(), "out_trade_no = 'ORDER-R2'"), 1);
}

// Eight senders push distinct notifications until `stop` is set or the listener goes away; returns
// the out_trade_no of every notification acknowledged with 204.
struct load {
    std::mutex mutex;
    std::set<std::string> acknowledged;
    std::vector<protocol::v3::signed_notification> sent_notes;
    std::atomic<int> sent{0};
    std::vector<std::thread> senders;

    load(const merchant_fixture& m, unsigned short port, const std::string& prefix) {
        for (int t = 0; t < 8; ++t)
            senders.emplace_back([&, t, port, prefix] {
                for (int i = 0; i < 400; ++i) {
                    const std::string txid = "42" + std::to_string(t) + "000" + std::to_string(i);
                    const auto n = payment_notification(m, prefix + txid, txid);
                    {
                        std::lock_guard lock(mutex);
                        sent_notes.push_back(n);
                    }
                    const int status = send(port, n);
                    ++sent;
                    if (status == 204) {
                        std::lock_guard lock(mutex);
                        acknowledged.insert(prefix + txid);
                    } else if (status == 0) {
                        return;  // the listener is gone
                    }
                }
            });
    }
    void join() {
        for (auto& t : senders) t.join();
    }
};

std::set<std::string> stored_orders(const std::string& url) {
    pqxx::connection c(url);
    pqxx::nontransaction tx(c);
    std::set<std::string> stored;
    for (const auto& row : tx.exec("SELECT out_trade_no FROM wxrecon.payment_events"))
        stored.insert(row[0].c_str());
    return stored;
}

// The harness picks free ports before wxrecond binds them; another test's connection may take one in
// between (a crash-campaign cycle once failed so). The daemon is then started on other ports.
TEST(Lifecycle, APortTakenBeforeTheDaemonBindsItIsReplaced) {
    scratch_database db;
    auto m = make_merchant_fixture();
    daemon_process d(*m, db.url());
    const unsigned short taken = d.port();
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(taken);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(fd, 1), 0);
    ASSERT_TRUE(d.start()) << d.stderr_text();
    EXPECT_NE(d.port(), taken);
    EXPECT_EQ(send(d.port(), payment_notification(*m, "ORDER-PORT", "4200000009")), 204);
    ::close(fd);
    EXPECT_EQ(d.stop(SIGTERM), 0);
}

TEST(Lifecycle, SigtermWithRequestsInFlightKeepsEveryAcknowledgedNotification) {
    scratch_database db;
    auto m = make_merchant_fixture();
    daemon_process d(*m, db.url());
    ASSERT_TRUE(d.start());
    load l(*m, d.port(), "S");
    while (l.sent.load() < 100) std::this_thread::sleep_for(1ms);
    EXPECT_EQ(d.stop(SIGTERM), 0);
    l.join();
    EXPECT_GE(l.acknowledged.size(), 100u);
    const auto stored = stored_orders(db.url());
    for (const auto& o : l.acknowledged)
        EXPECT_TRUE(stored.count(o)) << o << " was acknowledged but is not stored";
}

TEST(Lifecycle, SigkillWithBatchesInFlightLosesNothingAcknowledgedAndHalfAppliesNothing) {
    scratch_database db;
    auto m = make_merchant_fixture();
    daemon_process d(*m, db.url());
    ASSERT_TRUE(d.start());
    load l(*m, d.port(), "K");
    while (l.sent.load() < 300) std::this_thread::sleep_for(1ms);
    EXPECT_EQ(d.stop(SIGKILL), 128 + SIGKILL);
    l.join();

    // Everything acknowledged is there exactly once; every event's order moved with it, and no order
    // moved without its event.
    pqxx::connection c(db.url());
    {
        pqxx::nontransaction tx(c);
        EXPECT_EQ(tx.exec1("SELECT count(*) - count(DISTINCT out_trade_no) FROM wxrecon.payment_events")[0]
                      .as<long>(),
                  0);
        EXPECT_EQ(
            tx.exec1("SELECT count(*) FROM wxrecon.payment_events e JOIN wxrecon.orders o USING (mchid, "
                     "out_trade_no)"
                     " WHERE o.state <> 'SUCCESS' OR o.transaction_id IS DISTINCT FROM e.transaction_id")[0]
                .as<long>(),
            0);
        EXPECT_EQ(tx.exec1("SELECT count(*) FROM wxrecon.orders o WHERE NOT EXISTS (SELECT 1 FROM "
                           "wxrecon.payment_events e"
                           " WHERE e.mchid = o.mchid AND e.out_trade_no = o.out_trade_no)")[0]
                      .as<long>(),
                  0);
    }
    const auto stored = stored_orders(db.url());
    EXPECT_GE(l.acknowledged.size(), 100u);
    for (const auto& o : l.acknowledged)
        EXPECT_TRUE(stored.count(o)) << o << " was acknowledged but is not stored";

    // After a restart WeChat Pay's retries complete the rest, each fact once.
    daemon_process again(*m, db.url());
    ASSERT_TRUE(again.start());
    for (const auto& n : l.sent_notes) EXPECT_EQ(send(again.port(), n), 204);
    pqxx::nontransaction tx(c);
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM wxrecon.payment_events")[0].as<long>(),
              static_cast<long>(l.sent_notes.size()));
    EXPECT_EQ(again.stop(SIGTERM), 0);
}

}  // namespace
}  // namespace wxrecon::testing
