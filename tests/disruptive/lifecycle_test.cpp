// Tests that disturb the shared PostgreSQL server or run the real binary:
// PostgreSQL restarted under load, and SIGTERM with requests in flight.
// They run serially (see tests/CMakeLists.txt).
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <pqxx/pqxx>
#include <set>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <thread>
#include <unistd.h>

#include "base/time.hpp"
#include "protocol/v3.hpp"
#include "test_env.hpp"

namespace wxrecon::testing {
namespace {

using namespace std::chrono_literals;

protocol::v3::signed_notification payment_notification(const merchant_fixture& m, const std::string& out_trade_no,
                                                       const std::string& txid) {
    domain::payment_fact p;
    p.out_trade_no = out_trade_no;
    p.state = domain::trade_state::success;
    p.appid = test_appid;
    p.transaction_id = txid;
    p.amount_total = 100;
    p.payer_total = 100;
    p.success_time = std::time(nullptr) * 1'000'000LL;
    protocol::v3::notification_spec spec{"EV-" + txid, format_rfc3339(std::time(nullptr)), "TRANSACTION.SUCCESS",
                                         "支付成功", "transaction", "transaction",
                                         protocol::v3::transaction_json(test_mchid, p)};
    return *protocol::v3::make_notification(spec, m.apiv3_key, m.wechatpay_key, test_pub_key_id, std::time(nullptr));
}

int send(unsigned short port, const protocol::v3::signed_notification& n) {
    try {
        return http_post(port, std::string("/wxpay/v3/notify/") + test_mchid,
                         {{"Wechatpay-Timestamp", n.timestamp},
                          {"Wechatpay-Nonce", n.nonce},
                          {"Wechatpay-Signature", n.signature},
                          {"Wechatpay-Serial", n.serial}},
                         n.body)
            .status;
    } catch (const std::exception&) {
        return 0;  // connection refused or reset
    }
}

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

    EXPECT_EQ(send(d.port(), payment_notification(*m, "R1", "4200000001")), 204);
    pg_ctl("stop");
    const auto during = payment_notification(*m, "R2", "4200000002");
    const int status_during = send(d.port(), during);
    const auto metrics_during = http_get(d.admin_port(), "/metrics").body;
    pg_ctl("start");
    EXPECT_EQ(status_during, 503);
    EXPECT_NE(metrics_during.find("wxrecon_db_up 0"), std::string::npos);

    // WeChat Pay retries; once PostgreSQL is back the retry succeeds.
    int status_after = 0;
    for (int i = 0; i < 100 && status_after != 204; ++i) {
        status_after = send(d.port(), during);
        if (status_after != 204) std::this_thread::sleep_for(100ms);
    }
    EXPECT_EQ(status_after, 204);
    EXPECT_EQ(events(db.url()), 2);
    EXPECT_EQ(events(db.url(), "out_trade_no = 'R2'"), 1);
}

unsigned short free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
}

TEST(Lifecycle, SigtermWithRequestsInFlightKeepsEveryAcknowledgedNotification) {
    scratch_database db;
    auto m = make_merchant_fixture();
    make_config(*m, db.url());  // writes the key-relative config; rewrite the listeners with fixed ports
    const unsigned short port = free_port(), admin = free_port();
    {
        std::string toml;
        {
            std::ifstream in(m->dir / "wxrecond.toml");
            toml.assign(std::istreambuf_iterator<char>(in), {});
        }
        toml.replace(toml.find("127.0.0.1:0"), 11, "127.0.0.1:" + std::to_string(port));
        toml.replace(toml.find("127.0.0.1:0"), 11, "127.0.0.1:" + std::to_string(admin));
        std::ofstream(m->dir / "wxrecond.toml") << toml;
    }
    const std::string config_path = (m->dir / "wxrecond.toml").string();
    const pid_t child = ::fork();
    if (child == 0) {
        ::execl(WXRECOND_PATH, WXRECOND_PATH, "--config", config_path.c_str(), "serve", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    bool ready = false;
    for (int i = 0; i < 200 && !ready; ++i) {
        try {
            ready = http_get(admin, "/readyz").status == 200;
        } catch (const std::exception&) {
        }
        if (!ready) std::this_thread::sleep_for(50ms);
    }
    ASSERT_TRUE(ready);

    std::mutex mutex;
    std::set<std::string> acknowledged;
    std::atomic<int> sent{0};
    std::vector<std::thread> senders;
    for (int t = 0; t < 8; ++t)
        senders.emplace_back([&, t] {
            for (int i = 0; i < 400; ++i) {
                const std::string txid = "42" + std::to_string(t) + "000" + std::to_string(i);
                const int status = send(port, payment_notification(*m, "S" + txid, txid));
                ++sent;
                if (status == 204) {
                    std::lock_guard lock(mutex);
                    acknowledged.insert("S" + txid);
                } else if (status == 0) {
                    return;  // the listener is gone
                }
            }
        });
    while (sent.load() < 100) std::this_thread::sleep_for(1ms);
    ::kill(child, SIGTERM);
    for (auto& t : senders) t.join();
    int wstatus = 0;
    ::waitpid(child, &wstatus, 0);
    ASSERT_TRUE(WIFEXITED(wstatus));
    EXPECT_EQ(WEXITSTATUS(wstatus), 0);
    EXPECT_GE(acknowledged.size(), 100u);
    pqxx::connection c(db.url());
    pqxx::nontransaction tx(c);
    std::set<std::string> stored;
    for (const auto& row : tx.exec("SELECT out_trade_no FROM wxrecon.payment_events")) stored.insert(row[0].c_str());
    for (const auto& o : acknowledged) EXPECT_TRUE(stored.count(o)) << o << " was acknowledged but is not stored";
}

}  // namespace
}  // namespace wxrecon::testing
