// wxrecond as systemd runs it: READY, WATCHDOG, RELOADING and STOPPING on
// NOTIFY_SOCKET; SIGHUP swapping key material (and keeping it when the new
// files are broken); JSON logs with one line per notification; and /metrics
// as a real exposition parser (promtool) reads it.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <sys/un.h>
#include <cstdio>
#include <filesystem>

#include "crypto/crypto.hpp"
#include "daemon_process.hpp"

namespace wxrecon::testing {
namespace {

// A datagram socket standing in for systemd's notification socket.
class notify_socket {
public:
    notify_socket() {
        path_ = (std::filesystem::temp_directory_path() /
                 ("wxrecon-notify-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++)))
                    .string();
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
            throw std::runtime_error("bind " + path_);
        timeval tv{0, 100'000};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~notify_socket() {
        ::close(fd_);
        std::filesystem::remove(path_);
    }
    const std::string& path() const { return path_; }

    // Every message received within `wait`, split into lines ("READY=1", "WATCHDOG=1", ...).
    std::vector<std::string> drain(std::chrono::milliseconds wait) {
        std::vector<std::string> out;
        const auto until = std::chrono::steady_clock::now() + wait;
        while (std::chrono::steady_clock::now() < until) {
            char buf[4096];
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) continue;
            std::string text(buf, static_cast<std::size_t>(n));
            for (std::size_t start = 0; start < text.size();) {
                const auto end = text.find('\n', start);
                out.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
                start = end == std::string::npos ? text.size() : end + 1;
            }
        }
        return out;
    }
    // Waits (up to `limit`) until `message` arrives; what came after it stays for the next call.
    bool wait_for(const std::string& message, std::chrono::milliseconds limit = 10s) {
        const auto until = std::chrono::steady_clock::now() + limit;
        for (;;) {
            while (!pending_.empty()) {
                const std::string m = pending_.front();
                pending_.erase(pending_.begin());
                if (m == message) return true;
            }
            if (std::chrono::steady_clock::now() >= until) return false;
            pending_ = drain(100ms);
        }
    }

private:
    static inline int counter_ = 0;
    std::string path_;
    int fd_ = -1;
    std::vector<std::string> pending_;  // received, not yet looked at by wait_for
};

long count_of(const std::vector<std::string>& messages, const std::string& m) {
    return std::count(messages.begin(), messages.end(), m);
}

TEST(Service, ReadyWatchdogReloadingAndStoppingArriveOnTheNotifySocket) {
    scratch_database db;
    auto m = make_merchant_fixture();
    notify_socket sock;
    daemon_process d(*m, db.url());
    ASSERT_TRUE(d.start({{"NOTIFY_SOCKET", sock.path()}, {"WATCHDOG_USEC", "300000"}}));
    ASSERT_TRUE(sock.wait_for("READY=1"));
    const auto pings = sock.drain(1500ms);
    EXPECT_GE(count_of(pings, "WATCHDOG=1"), 5) << "WATCHDOG=1 is due every 150 ms";
    d.signal(SIGHUP);
    const auto reload = sock.drain(1500ms);
    const auto reloading = std::find(reload.begin(), reload.end(), "RELOADING=1");
    ASSERT_NE(reloading, reload.end());
    EXPECT_NE(std::find(reloading, reload.end(), "READY=1"), reload.end());
    d.signal(SIGTERM);
    EXPECT_TRUE(sock.wait_for("STOPPING=1"));
    EXPECT_EQ(d.stop(0), 0);
}

TEST(Service, WithoutAWatchdogNoPingsAreSent) {
    scratch_database db;
    auto m = make_merchant_fixture();
    notify_socket sock;
    daemon_process d(*m, db.url());
    ASSERT_TRUE(d.start({{"NOTIFY_SOCKET", sock.path()}}));
    ASSERT_TRUE(sock.wait_for("READY=1"));
    EXPECT_EQ(count_of(sock.drain(700ms), "WATCHDOG=1"), 0);
    EXPECT_EQ(d.stop(SIGTERM), 0);
}

TEST(Service, SighupSwapsTheWeChatPayPublicKeyAndKeepsTheOldOnesWhenTheNewFilesAreBroken) {
    scratch_database db;
    auto m = make_merchant_fixture();
    notify_socket sock;
    daemon_process d(*m, db.url());
    ASSERT_TRUE(d.start({{"NOTIFY_SOCKET", sock.path()}}));
    ASSERT_TRUE(sock.wait_for("READY=1"));

    // WeChat Pay's newly issued public key (the certificate endpoint serves no such thing).
    const auto added = crypto::generate_rsa_key(2048);
    ASSERT_TRUE(added);
    const auto before = payment_notification(*m, "ORDER-H1", "4200000101", &*added);
    EXPECT_EQ(send(d.port(), before), 401) << "a key nobody configured must not verify";

    std::ofstream(m->dir / "pub_key.pem") << crypto::public_key_to_pem(added->public_part());
    d.signal(SIGHUP);
    ASSERT_TRUE(sock.wait_for("RELOADING=1"));
    ASSERT_TRUE(sock.wait_for("READY=1"));
    EXPECT_EQ(send(d.port(), before), 204) << "WeChat Pay's retry verifies after the reload";

    // A broken file: the reload is refused, the keys in use stay, and the log says why.
    std::ofstream(m->dir / "pub_key.pem")
        << "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n";
    d.signal(SIGHUP);
    ASSERT_TRUE(sock.wait_for("READY=1"));
    EXPECT_EQ(send(d.port(), payment_notification(*m, "ORDER-H2", "4200000102", &*added)), 204);
    EXPECT_EQ(d.stop(SIGTERM), 0);
    const std::string log = d.stderr_text();
    EXPECT_NE(log.find("reload failed, keeping the previous keys"), std::string::npos) << log;
    EXPECT_NE(log.find("pub_key.pem"), std::string::npos) << log;
    EXPECT_EQ(db.count("SELECT count(*) FROM wxrecon.payment_events"), 2);
}

TEST(Service, JsonLogsCarryOneLinePerNotificationWithRequestIdResultAndLatency) {
    scratch_database db;
    auto m = make_merchant_fixture();
    daemon_process d(*m, db.url());
    ASSERT_TRUE(d.start({}, {"--log-format", "json"}));
    const auto n = payment_notification(*m, "ORDER-J1", "4200000201");
    EXPECT_EQ(send(d.port(), n), 204);
    EXPECT_EQ(send(d.port(), n), 204);  // WeChat Pay's duplicate
    EXPECT_EQ(d.stop(SIGTERM), 0);

    simdjson::dom::parser parser;
    std::vector<std::string> results;
    std::set<std::string> request_ids;
    std::istringstream lines(d.stderr_text());
    for (std::string line; std::getline(lines, line);) {
        const simdjson::padded_string text(line);
        simdjson::dom::element doc;
        ASSERT_FALSE(parser.parse(text).get(doc)) << "not JSON: " << line;
        std::string_view component;
        if (doc["component"].get(component) || component != "notify") continue;
        results.emplace_back(std::string_view(doc["result"]));
        EXPECT_EQ(std::string_view(doc["mchid"]), test_mchid);
        EXPECT_EQ(std::string_view(doc["out_trade_no"]), "ORDER-J1");
        EXPECT_EQ(std::string_view(doc["level"]), "info");
        double ms = -1;
        EXPECT_FALSE(doc["ms"].get(ms)) << "ms is a number: " << line;
        EXPECT_GE(ms, 0);
        std::string_view id;
        EXPECT_FALSE(doc["request_id"].get(id));
        request_ids.emplace(id);
    }
    EXPECT_EQ(results, (std::vector<std::string>{"accepted", "duplicate"})) << d.stderr_text();
    EXPECT_EQ(request_ids.size(), 2u) << "each request has its own id";
    EXPECT_EQ(d.stderr_text().find("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"), std::string::npos)
        << "openids are never logged in full";
}

TEST(Service, MetricsPassPromtoolAndCoverTheContract) {
    scratch_database db;
    auto m = make_merchant_fixture();
    daemon_process d(*m, db.url());
    ASSERT_TRUE(d.start());
    EXPECT_EQ(send(d.port(), payment_notification(*m, "ORDER-M1", "4200000301")), 204);
    std::string text;
    for (int i = 0; i < 300; ++i) {  // the per-state gauge comes from the first background reading
        text = http_get(d.admin_port(), "/metrics").body;
        if (text.find("wxrecon_orders{state=\"SUCCESS\"} ") != std::string::npos) break;
        std::this_thread::sleep_for(100ms);
    }
    EXPECT_EQ(d.stop(SIGTERM), 0);

    const auto file = m->dir / "metrics.txt";
    std::ofstream(file) << text;
    const std::string command =
        "promtool check metrics < " + file.string() + " > " + (m->dir / "promtool.out").string() + " 2>&1";
    const int status = std::system(command.c_str());
    std::ifstream out(m->dir / "promtool.out");
    const std::string verdict((std::istreambuf_iterator<char>(out)), {});
    EXPECT_EQ(status, 0) << "promtool check metrics: " << verdict << "\n" << text;

    for (const char* line : {"# TYPE wxrecon_notifications_total counter",
                             "# TYPE wxrecon_signature_probes_total counter",
                             "# TYPE wxrecon_notification_seconds histogram",
                             "# TYPE wxrecon_queries_total counter",
                             "# TYPE wxrecon_orders gauge",
                             "# TYPE wxrecon_stuck_orders gauge",
                             "# TYPE wxrecon_poll_lag_seconds gauge",
                             "# TYPE wxrecon_db_up gauge",
                             "wxrecon_notifications_total{api=\"v3\",kind=\"payment\",result=\"accepted\"} 1",
                             "wxrecon_notification_seconds_count 1",
                             "wxrecon_notification_seconds_bucket{le=\"+Inf\"} 1",
                             "wxrecon_orders{state=\"SUCCESS\"} ",
                             "wxrecon_orders{state=\"NOTPAY\"} ",
                             "wxrecon_db_up 1",
                             "wxrecon_build_info{version=\"" WXRECON_VERSION "\"} 1",
                             "wxrecon_key_expiry_timestamp_seconds{mchid=\"1900000109\",serial=\"",
                             "process_resident_memory_bytes ",
                             "process_open_fds ",
                             "process_start_time_seconds ",
                             "wxrecon_notification_silence_threshold_seconds 3600"})
        EXPECT_NE(text.find(line), std::string::npos) << line;
}

}  // namespace
}  // namespace wxrecon::testing
