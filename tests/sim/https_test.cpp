// HTTPS: wxpay-sim serving TLS with its own CA, and the HTTP client that
// trusts only what it is told to (system CAs plus ca_file), checks the host
// name, and reports a failed handshake as "never sent".
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "net/http_client.hpp"
#include "sim_env.hpp"

namespace wxrecon::testing {
namespace {

net::exchange fetch(const std::string& url, const std::string& ca_file) {
    boost::asio::io_context io;
    net::client_options options;
    options.ca_file = ca_file;
    net::http_client client(io.get_executor(), options);
    net::outbound_request request;
    request.url = url;
    auto done = boost::asio::co_spawn(io, client.send(std::move(request)), boost::asio::use_future);
    io.run();
    return done.get();
}

TEST(HttpUrl, SplitsSchemesHostsAndPorts) {
    const auto a = net::parse_url("https://api.mch.weixin.qq.com/v3/certificates?algorithm_type=RSA");
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(a->scheme, "https");
    EXPECT_EQ(a->host, "api.mch.weixin.qq.com");
    EXPECT_EQ(a->port, "443");
    EXPECT_EQ(a->target, "/v3/certificates?algorithm_type=RSA");
    const auto b = net::parse_url("http://[::1]:8480");
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(b->host, "::1");
    EXPECT_EQ(b->port, "8480");
    EXPECT_EQ(b->target, "/");
    for (const char* bad : {"ftp://x/", "http://", "http://user@host/", "http://host:99999/",
                            "http://host:8x/", "https://[::1/"})
        EXPECT_FALSE(net::parse_url(bad).has_value()) << bad;
    EXPECT_TRUE(net::is_loopback_host("localhost"));
    EXPECT_TRUE(net::is_loopback_host("127.0.0.9"));
    EXPECT_TRUE(net::is_loopback_host("::1"));
    EXPECT_FALSE(net::is_loopback_host("10.0.0.1"));
    EXPECT_FALSE(net::is_loopback_host("api.mch.weixin.qq.com"));
}

class SimHttps : public ::testing::Test {
protected:
    static void SetUpTestSuite() { keys_ = new sim_key_dir(1); }
    static void TearDownTestSuite() {
        delete keys_;
        keys_ = nullptr;
    }
    static sim_key_dir* keys_;
};
sim_key_dir* SimHttps::keys_ = nullptr;

TEST_F(SimHttps, ServesTlsWithItsOwnCa) {
    sim::sim_options options;
    options.tls = true;
    running_simulator sim(*keys_, options);
    const std::string ca = (keys_->dir / "ca" / "ca_cert.pem").string();
    for (const char* host : {"127.0.0.1", "localhost"}) {
        const auto ex =
            fetch("https://" + std::string(host) + ":" + std::to_string(sim.port()) + "/sim/stats", ca);
        ASSERT_TRUE(ex.response.has_value()) << host << ": " << ex.error;
        EXPECT_EQ(ex.response->status, 200);
        EXPECT_NE(ex.response->body.find("\"orders\":0"), std::string::npos) << ex.response->body;
    }
}

TEST_F(SimHttps, ClientRefusesACertificateItDoesNotTrust) {
    sim::sim_options options;
    options.tls = true;
    running_simulator sim(*keys_, options);
    const auto ex = fetch("https://127.0.0.1:" + std::to_string(sim.port()) + "/sim/stats", "");
    EXPECT_FALSE(ex.response.has_value());
    EXPECT_FALSE(ex.sent) << "a failed handshake sends nothing, so a POST may be retried elsewhere";
    EXPECT_NE(ex.error.find("TLS handshake"), std::string::npos) << ex.error;
    EXPECT_NE(ex.error.find("certificate verify failed"), std::string::npos) << ex.error;
}

TEST_F(SimHttps, PlainHttpToATlsListenerGetsNoAnswer) {
    sim::sim_options options;
    options.tls = true;
    running_simulator sim(*keys_, options);
    const auto ex = fetch("http://127.0.0.1:" + std::to_string(sim.port()) + "/sim/stats", "");
    EXPECT_FALSE(ex.response.has_value());
    EXPECT_TRUE(ex.sent);
}

TEST_F(SimHttps, ClientReportsARefusedConnectionAsNeverSent) {
    const auto ex = fetch("https://127.0.0.1:9/", "");
    EXPECT_FALSE(ex.response.has_value());
    EXPECT_FALSE(ex.sent);
    EXPECT_NE(ex.error.find("cannot connect"), std::string::npos) << ex.error;
}

}  // namespace
}  // namespace wxrecon::testing
