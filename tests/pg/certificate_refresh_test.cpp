// Platform certificate rotation against wxpay-sim (docs/protocol-notes.md §2.4, §2.6):
// during a gradual rotation a notification signed with a certificate wxrecon
// has not seen is refused, the certificate list is downloaded (verified with
// the certificate trusted before) and WeChat Pay's retry is accepted. A list
// signed only by the new certificate is never trusted, and the downloads it
// provokes are throttled per merchant.
#include <gtest/gtest.h>

#include <chrono>
#include <pqxx/pqxx>
#include <thread>

#include "sim_env.hpp"
#include "store/migrations.hpp"

namespace wxrecon::testing {
namespace {

using namespace std::chrono_literals;

long metric_value(unsigned short admin_port, const std::string& series) {
    const std::string text = http_get(admin_port, "/metrics").body;
    const auto pos = text.find("\n" + series + " ");
    if (pos == std::string::npos) return 0;
    return std::stol(text.substr(pos + series.size() + 2));
}

class CertificateRefresh : public ::testing::Test {
protected:
    void SetUp() override {
        pqxx::connection conn(db_.url());
        store::migrate(conn);
        ASSERT_EQ(keys_.keys.merchants[2].mode, sim::key_mode::platform_cert);
        options_.time_scale = 0.001;  // WeChat Pay's retries come within milliseconds
        sim_ = std::make_unique<running_simulator>(keys_, options_);
        daemon_ = std::make_unique<running_daemon>(sim_daemon_config(keys_, db_.url(), sim_->port()));
        // The download at start, one per APIv3 merchant with platform certificates configured (not the APIv2
        // one).
        for (int i = 0; i < 100 && refreshes("ok") < 2; ++i) std::this_thread::sleep_for(50ms);
        ASSERT_EQ(refreshes("ok"), 2);
        const auto& m = merchant();
        db_.exec("INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total) VALUES ('" + m.mchid +
                 "', 'ROTATE-1', 100)");
        sim_control(sim_->port(), "/sim/orders",
                    R"({"mchid":")" + m.mchid +
                        R"(","out_trade_no":"ROTATE-1","amount":100,"notify_url":"http://127.0.0.1:)" +
                        std::to_string(daemon_->port()) + "/wxpay/v3/notify/" + m.mchid + "\"}");
    }
    const sim::sim_merchant& merchant() const { return keys_.keys.merchants[2]; }
    // The payer pays ROTATE-1; the order's state once it is SUCCESS, or after 10 s.
    std::string pay_and_wait() {
        sim_control(sim_->port(), "/sim/pay",
                    R"({"mchid":")" + merchant().mchid + R"(","out_trade_no":"ROTATE-1"})");
        std::string state;
        for (int i = 0; i < 200 && state != "SUCCESS"; ++i) {
            std::this_thread::sleep_for(50ms);
            state = db_.scalar("SELECT state FROM wxrecon.orders WHERE out_trade_no = 'ROTATE-1'");
        }
        return state;
    }
    long refreshes(const std::string& result) {
        return metric_value(daemon_->admin_port(),
                            "wxrecon_certificate_refreshes_total{result=\"" + result + "\"}");
    }

    sim_key_dir keys_{3};  // index 2: APIv3 verified with platform certificates
    sim::sim_options options_;
    scratch_database db_;
    std::unique_ptr<running_simulator> sim_;
    std::unique_ptr<running_daemon> daemon_;
};

TEST_F(CertificateRefresh, UnknownSerialDuringARotationIsDownloadedAndTheRetryAccepted) {
    const std::string rotated = sim_control(sim_->port(), "/sim/rotate-certificate",
                                            R"({"mchid":")" + merchant().mchid + R"(","gradual":true})");
    const std::string serial =
        rotated.substr(rotated.find(":\"") + 2, rotated.rfind('"') - rotated.find(":\"") - 2);
    EXPECT_EQ(pay_and_wait(), "SUCCESS");
    EXPECT_EQ(db_.scalar("SELECT state_source FROM wxrecon.orders WHERE out_trade_no = 'ROTATE-1'"),
              "notify");
    EXPECT_GE(std::stol(db_.scalar(
                  "SELECT count(*) FROM wxrecon.rejected_notifications WHERE reason = 'unknown_serial'")),
              1);
    EXPECT_EQ(refreshes("ok"), 3);
    EXPECT_GT(metric_value(daemon_->admin_port(), "wxrecon_key_expiry_timestamp_seconds{mchid=\"" +
                                                      merchant().mchid + "\",serial=\"" + serial + "\"}"),
              0);
}

TEST_F(CertificateRefresh, ListSignedOnlyByTheNewCertificateIsNeverTrusted) {
    // A switch with no overlap: the list itself is signed by the certificate it brings.
    sim_control(sim_->port(), "/sim/rotate-certificate", R"({"mchid":")" + merchant().mchid + "\"}");
    sim_control(sim_->port(), "/sim/pay",
                R"({"mchid":")" + merchant().mchid + R"(","out_trade_no":"ROTATE-1"})");
    long rejected = 0;
    for (int i = 0; i < 100 && rejected < 5; ++i) {
        std::this_thread::sleep_for(50ms);
        rejected = std::stol(db_.scalar(
            "SELECT count(*) FROM wxrecon.rejected_notifications WHERE reason = 'unknown_serial'"));
    }
    EXPECT_GE(rejected, 5) << "WeChat Pay keeps retrying";
    for (int i = 0; i < 100 && refreshes("untrusted") < 1; ++i) std::this_thread::sleep_for(50ms);
    EXPECT_EQ(refreshes("untrusted"), 1) << "one download per minute per merchant, however many retries";
    EXPECT_EQ(refreshes("ok"), 2);
    EXPECT_EQ(db_.scalar("SELECT state FROM wxrecon.orders WHERE out_trade_no = 'ROTATE-1'"), "NOTPAY");
}

// SIGHUP rebuilds the trusted set from the files and a fresh download: the lists are asked for again at
// once, and a certificate WeChat Pay still serves stays trusted.
TEST_F(CertificateRefresh, ReloadDownloadsEveryListAgain) {
    sim_control(sim_->port(), "/sim/rotate-certificate",
                R"({"mchid":")" + merchant().mchid + R"(","gradual":true})");
    EXPECT_TRUE(daemon_->app().reload_keys());
    for (int i = 0; i < 100 && refreshes("ok") < 4; ++i) std::this_thread::sleep_for(50ms);
    EXPECT_EQ(refreshes("ok"), 4) << "one download per merchant with platform certificates, at once";
    // The rotated certificate came with the reload's download: the notification it signs is accepted at
    // the first attempt, with no unknown-serial refusal.
    EXPECT_EQ(pay_and_wait(), "SUCCESS");
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.rejected_notifications"), 0);
}

}  // namespace
}  // namespace wxrecon::testing
