// HTTPS: wxpay-sim serving TLS with its own CA, and the HTTP client that
// trusts only what it is told to (system CAs plus ca_file), checks the host
// name, and reports a failed handshake as "never sent".
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <boost/asio/ssl/context.hpp>

#include <atomic>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "crypto/crypto.hpp"
#include "net/http_client.hpp"
#include "net/http_server.hpp"
#include "sim_env.hpp"
#include "test_env.hpp"

namespace wxrecon::testing {
namespace {

net::exchange fetch(const std::string& url, const std::string& ca_file, const std::string& client_cert = {},
                    const std::string& client_key = {}) {
    boost::asio::io_context io;
    net::client_options options;
    options.ca_file = ca_file;
    options.client_cert_file = client_cert;
    options.client_key_file = client_key;
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

boost::asio::awaitable<wxrecon::reply> answer_request_id(wxrecon::inbound_request& r) {
    co_return wxrecon::reply{200, "text/plain", r.request_id};
}

// The id a request goes by in the logs: the caller's Request-ID only when it has WeChat Pay's shape,
// else one the server makes up, so a caller cannot pose as another request or forge log fields.
TEST(HttpServerRequestId, KeepsOnlyAnIdShapedLikeWeChatPays) {
    boost::asio::io_context io;
    net::http_server server(
        io.get_executor(), boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0),
        net::http_limits{}, answer_request_id,
        [](std::string_view) {
            return wxrecon::reply{413, "text/plain", ""};
        },
        "public");
    server.start();
    std::thread thread([&io] { io.run(); });
    const unsigned short port = server.local_endpoint().port();
    const auto id_for = [port](const std::string& request_id) {
        return http_request(port, "GET", "/", {{"Request-ID", request_id}}).body;
    };
    const std::string wechat = "08F78BB5AA0610A7C2D5FC0318D7C3D9F702-268512771";
    EXPECT_EQ(id_for(wechat), wechat);
    const std::string made_up = http_request(port, "GET", "/").body;
    ASSERT_NE(made_up.find("-public-"), std::string::npos) << made_up;
    for (const std::string& forged :
         std::vector<std::string>{made_up, "short-1", "0123456789abcdef x=1", std::string(80, 'a')}) {
        const std::string id = id_for(forged);
        EXPECT_NE(id, forged);
        EXPECT_NE(id.find("-public-"), std::string::npos) << id;
    }
    boost::asio::co_spawn(io, server.shutdown(std::chrono::milliseconds(100)), boost::asio::detached);
    thread.join();
}

// A handler that throws is a fault of ours: that connection is dropped, the escape reaches the observer
// (wxrecond counts it in wxrecon_internal_errors_total{component="http_<listener>"}) and the listener serves
// on.
TEST(HttpServerEscapes, AHandlerThatThrowsIsReportedAndTheListenerServesOn) {
    boost::asio::io_context io;
    std::atomic<int> escaped{0};
    net::http_observer observer;
    observer.escaped = [&escaped](std::exception_ptr e) {
        if (e) ++escaped;
    };
    net::http_server server(
        io.get_executor(), boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0),
        net::http_limits{},
        [](wxrecon::inbound_request& r) -> boost::asio::awaitable<wxrecon::reply> {
            if (r.path == "/throw") throw std::logic_error("a fault in a handler");
            co_return wxrecon::reply{200, "text/plain", "ok"};
        },
        [](std::string_view) {
            return wxrecon::reply{413, "text/plain", ""};
        },
        "public", observer);
    server.start();
    std::thread thread([&io] { io.run(); });
    const unsigned short port = server.local_endpoint().port();
    EXPECT_ANY_THROW(http_request(port, "GET", "/throw"));
    EXPECT_EQ(http_request(port, "GET", "/").status, 200);
    EXPECT_EQ(escaped.load(), 1);
    boost::asio::co_spawn(io, server.shutdown(std::chrono::milliseconds(100)), boost::asio::detached);
    thread.join();
}

// A TLS listener that asks for client certificates issued by the key set's CA (as WeChat Pay does for
// APIv2 refunds and downloadfundflow) and answers with the subject it verified.
class MutualTls : public SimHttps {
protected:
    void SetUp() override {
        const auto ca = keys_->dir / "ca";
        tls_ = std::make_shared<boost::asio::ssl::context>(boost::asio::ssl::context::tls_server);
        const std::string chain = read_text(ca / "server_cert.pem") + read_text(ca / "ca_cert.pem");
        tls_->use_certificate_chain(boost::asio::buffer(chain));
        const std::string key = read_text(ca / "server_key.pem");
        tls_->use_private_key(boost::asio::buffer(key), boost::asio::ssl::context::pem);
        const std::string ca_pem = read_text(ca / "ca_cert.pem");
        tls_->add_certificate_authority(boost::asio::buffer(ca_pem));
        tls_->set_verify_mode(boost::asio::ssl::verify_peer);
        server_ = std::make_unique<net::http_server>(
            io_.get_executor(), boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0),
            net::http_limits{}, [](wxrecon::inbound_request& r) { return answer_subject(r); },
            [](std::string_view) {
                return wxrecon::reply{413, "text/plain", ""};
            },
            "mtls", net::http_observer{}, tls_);
        server_->start();
        thread_ = std::thread([this] { io_.run(); });
    }
    void TearDown() override {
        boost::asio::co_spawn(io_, server_->shutdown(std::chrono::milliseconds(100)), boost::asio::detached);
        thread_.join();
    }
    static boost::asio::awaitable<wxrecon::reply> answer_subject(wxrecon::inbound_request& r) {
        co_return wxrecon::reply{200, "text/plain", "subject=" + r.client_certificate_subject};
    }
    std::string url() const {
        return "https://127.0.0.1:" + std::to_string(server_->local_endpoint().port()) + "/";
    }
    std::string ca_file() const { return (keys_->dir / "ca" / "ca_cert.pem").string(); }
    std::string merchant_file(const char* name) const {
        return (keys_->dir / keys_->keys.merchants.at(0).mchid / name).string();
    }

    boost::asio::io_context io_;
    std::shared_ptr<boost::asio::ssl::context> tls_;
    std::unique_ptr<net::http_server> server_;
    std::thread thread_;
};

TEST_F(MutualTls, ServerSeesTheMerchantOfTheClientCertificate) {
    const auto ex =
        fetch(url(), ca_file(), merchant_file("apiclient_cert.pem"), merchant_file("apiclient_key.pem"));
    ASSERT_TRUE(ex.response.has_value()) << ex.error;
    EXPECT_EQ(ex.response->body, "subject=" + keys_->keys.merchants.at(0).mchid);
}

TEST_F(MutualTls, ClientWithoutACertificateIsServedAnonymously) {
    const auto ex = fetch(url(), ca_file());
    ASSERT_TRUE(ex.response.has_value()) << ex.error;
    EXPECT_EQ(ex.response->body, "subject=");
}

TEST_F(MutualTls, CertificateOfAnotherIssuerFailsTheHandshake) {
    // Self-signed for the merchant's own key: right key, wrong issuer.
    auto key = crypto::load_private_key_pem(read_text(merchant_file("apiclient_key.pem")));
    ASSERT_TRUE(key.has_value());
    crypto::certificate_request req;
    req.common_name = keys_->keys.merchants.at(0).mchid;
    req.organization = "not WeChat Pay";
    req.serial_hex = "01";
    req.not_before = 0;
    req.not_after = 4102444800;
    auto pem = crypto::issue_certificate(req, key->public_part(), *key);
    ASSERT_TRUE(pem.has_value());
    const auto self_signed = std::filesystem::path(merchant_file("self_signed.pem"));
    std::ofstream(self_signed) << *pem;
    const auto ex = fetch(url(), ca_file(), self_signed.string(), merchant_file("apiclient_key.pem"));
    EXPECT_FALSE(ex.response.has_value());
    // TLS 1.3: the server's refusal reaches the client after its side of the handshake, on the first read.
    EXPECT_NE(ex.error.find("unknown ca"), std::string::npos) << ex.error;
    std::filesystem::remove(self_signed);
}

TEST_F(MutualTls, ClientWithAnUnreadableCertificateRefusesToStart) {
    boost::asio::io_context io;
    net::client_options options;
    options.client_cert_file = merchant_file("missing_cert.pem");
    options.client_key_file = merchant_file("apiclient_key.pem");
    EXPECT_THROW(net::http_client(io.get_executor(), options), std::runtime_error);
}

}  // namespace
}  // namespace wxrecon::testing
