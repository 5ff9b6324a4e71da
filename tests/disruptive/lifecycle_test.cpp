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

// The real binary on fixed ports, configured for the fixture's merchant.
class daemon_process {
public:
    daemon_process(const merchant_fixture& m, const std::string& database_url)
        : port_(free_port()), admin_(free_port()) {
        make_config(m, database_url);  // writes wxrecond.toml next to the keys; pin its listeners
        std::string toml;
        {
            std::ifstream in(m.dir / "wxrecond.toml");
            toml.assign(std::istreambuf_iterator<char>(in), {});
        }
        toml.replace(toml.find("127.0.0.1:0"), 11, "127.0.0.1:" + std::to_string(port_));
        toml.replace(toml.find("127.0.0.1:0"), 11, "127.0.0.1:" + std::to_string(admin_));
        config_ = (m.dir / "wxrecond.toml").string();
        std::ofstream(config_) << toml;
    }
    ~daemon_process() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }

    bool start() {
        pid_ = ::fork();
        if (pid_ == 0) {
            ::execl(WXRECOND_PATH, WXRECOND_PATH, "--config", config_.c_str(), "serve", static_cast<char*>(nullptr));
            ::_exit(127);
        }
        for (int i = 0; i < 200; ++i) {
            try {
                if (http_get(admin_, "/readyz").status == 200) return true;
            } catch (const std::exception&) {
            }
            std::this_thread::sleep_for(50ms);
        }
        return false;
    }
    // Sends sig and returns the exit status (or 128 + signal).
    int stop(int sig) {
        ::kill(pid_, sig);
        int wstatus = 0;
        ::waitpid(pid_, &wstatus, 0);
        pid_ = -1;
        return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    }
    unsigned short port() const { return port_; }

private:
    unsigned short port_, admin_;
    std::string config_;
    pid_t pid_ = -1;
};

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
    for (const auto& row : tx.exec("SELECT out_trade_no FROM wxrecon.payment_events")) stored.insert(row[0].c_str());
    return stored;
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
    for (const auto& o : l.acknowledged) EXPECT_TRUE(stored.count(o)) << o << " was acknowledged but is not stored";
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
        EXPECT_EQ(tx.exec1("SELECT count(*) - count(DISTINCT out_trade_no) FROM wxrecon.payment_events")[0].as<long>(), 0);
        EXPECT_EQ(tx.exec1("SELECT count(*) FROM wxrecon.payment_events e JOIN wxrecon.orders o USING (mchid, out_trade_no)"
                           " WHERE o.state <> 'SUCCESS' OR o.transaction_id IS DISTINCT FROM e.transaction_id")[0]
                      .as<long>(),
                  0);
        EXPECT_EQ(tx.exec1("SELECT count(*) FROM wxrecon.orders o WHERE NOT EXISTS (SELECT 1 FROM wxrecon.payment_events e"
                           " WHERE e.mchid = o.mchid AND e.out_trade_no = o.out_trade_no)")[0]
                      .as<long>(),
                  0);
    }
    const auto stored = stored_orders(db.url());
    EXPECT_GE(l.acknowledged.size(), 100u);
    for (const auto& o : l.acknowledged) EXPECT_TRUE(stored.count(o)) << o << " was acknowledged but is not stored";

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
