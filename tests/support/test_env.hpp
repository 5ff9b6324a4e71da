// Test support for the PostgreSQL and HTTP tiers: a fresh database per test,
// throw-away key material made with the openssl CLI, an in-process daemon on
// port 0, and a small HTTP client.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "app.hpp"
#include "config/config.hpp"
#include "crypto/crypto.hpp"

namespace wxrecon::testing {

// The whole file; throws naming it when it cannot be read (a missing fixture must not read as "").
std::string read_text(const std::filesystem::path& file);

// Every occurrence of from in text replaced by to.
void replace_all(std::string& text, const std::string& from, const std::string& to);

// A folder of key material the tests of this build share, made once by make(folder) and made again when
// hours old. Generating RSA keys was most of a test's setup, and ctest runs tests side by side, so the
// folder is made under a lock. Copy it before changing anything in it.
std::filesystem::path shared_key_folder(const std::string& name,
                                        const std::function<void(const std::filesystem::path&)>& make);

// The server from WXRECON_TEST_PG_URL; tests skip nothing: without it they fail loudly.
std::string base_database_url();

// CREATE DATABASE on construction, DROP on destruction.
class scratch_database {
public:
    scratch_database();
    ~scratch_database();
    const std::string& url() const { return url_; }
    // The first column of the first row, "" when there is none or it is NULL (a connection per call).
    std::string scalar(const std::string& sql) const;
    long count(const std::string& sql) const { return std::stol(scalar(sql)); }
    // Runs sql in its own committed transaction.
    void exec(const std::string& sql) const;

private:
    std::string name_;
    std::string url_;
};

inline constexpr const char* test_mchid = "1900000109";
inline constexpr const char* test_appid = "wxd678efh567hg6787";
inline constexpr const char* test_pub_key_id = "PUB_KEY_ID_0119000001092026112600000001";
// Serial of the platform certificate the fixture issues for the same WeChat Pay key: both key modes
// are configured at once, as during a migration or rotation.
inline constexpr const char* test_platform_serial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";

// Key files for one merchant in a temp folder, plus the WeChat Pay private key that signs notifications.
struct merchant_fixture {
    std::filesystem::path dir;
    std::string apiv3_key;
    std::string apiv2_key;
    crypto::private_key wechatpay_key;
    ~merchant_fixture();
};
std::unique_ptr<merchant_fixture> make_merchant_fixture();

// A config with both listeners on port 0 and the fixture's merchant.
config::config make_config(const merchant_fixture& m, const std::string& database_url);

// Runs the application on its own thread.
class running_daemon {
public:
    running_daemon(config::config cfg);
    ~running_daemon();
    unsigned short port() const { return public_port_; }
    unsigned short admin_port() const { return admin_port_; }
    daemon::application& app() { return *app_; }
    void stop();

private:
    std::unique_ptr<daemon::application> app_;
    std::thread thread_;
    unsigned short public_port_ = 0;
    unsigned short admin_port_ = 0;
};

struct http_response {
    int status = 0;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string header(const std::string& name) const;  // case-insensitive; "" when absent
};
http_response http_request(unsigned short port, const std::string& method, const std::string& target,
                           const std::vector<std::pair<std::string, std::string>>& headers = {},
                           const std::string& body = {});
http_response http_post(unsigned short port, const std::string& target,
                        const std::vector<std::pair<std::string, std::string>>& headers,
                        const std::string& body);
http_response http_get(unsigned short port, const std::string& target);
// The same, from another loopback address (127.0.0.2 …) to the server on 127.0.0.1.
http_response http_request_from(const std::string& source_address, unsigned short port,
                                const std::string& method, const std::string& target,
                                const std::vector<std::pair<std::string, std::string>>& headers = {},
                                const std::string& body = {});

}  // namespace wxrecon::testing
