// Configuration parsing and validation (docs/interfaces.md §2): one test per rule, table-driven
// where the cases are many. Configs are built from a minimal valid document that each case edits.
#include "config/config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace wxrecon::config {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Absolute and nonexistent on purpose: parse_config must neither read it nor depend on the working directory.
const path test_file = "/etc/wxrecon/wxrecond.toml";

std::string merchant_body(std::string_view mchid) {
    return "mchid = \"" + std::string(mchid) + "\"\nappid = \"wxd678efh567hg6787\"\napi_version = \"v3\"\n";
}

// A minimal valid config, one body per section so a case can drop, replace or extend a section.
struct toml_doc {
    std::string root;  // top-level keys, written before any section
    std::optional<std::string> server = "listen = \"127.0.0.1:8080\"\n";
    std::optional<std::string> admin = "listen = \"127.0.0.1:9476\"\n";
    std::optional<std::string> api;
    std::optional<std::string> database = "url = \"postgresql:///wxrecon\"\n";
    std::optional<std::string> poller;
    std::optional<std::string> alerts;
    std::optional<std::string> notifications;
    std::optional<std::string> bills;
    std::vector<std::string> merchants = {merchant_body("1900000109")};

    std::string text() const {
        std::string out = root;
        auto add = [&out](const char* name, const std::optional<std::string>& body) {
            if (body) out += "[" + std::string(name) + "]\n" + *body;
        };
        add("server", server);
        add("admin", admin);
        add("api", api);
        add("database", database);
        add("poller", poller);
        add("alerts", alerts);
        add("notifications", notifications);
        add("bills", bills);
        for (const auto& m : merchants) out += "[[merchants]]\n" + m;
        return out;
    }
};

using edit_fn = std::function<void(toml_doc&)>;

result<config> parse(const toml_doc& doc) {
    return parse_config(doc.text(), test_file);
}

result<config> parse_with(const edit_fn& edit) {
    toml_doc doc;
    edit(doc);
    return parse(doc);
}

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

// The rule for every config error: errc::config_error, "<file>: <key path>: <what is wrong>".
::testing::AssertionResult fails_at(const result<config>& r, std::string_view key,
                                    std::string_view fragment = "") {
    if (r) return ::testing::AssertionFailure() << "parsed, expected an error at " << key;
    const auto& e = r.err();
    if (e.code != errc::config_error) {
        return ::testing::AssertionFailure() << "code " << to_string(e.code) << ": " << e.message;
    }
    const std::string prefix = test_file.string() + ": " + std::string(key) + ": ";
    if (!e.message.starts_with(prefix)) {
        return ::testing::AssertionFailure()
               << "message \"" << e.message << "\" does not start with \"" << prefix << "\"";
    }
    if (!contains(e.message.substr(prefix.size()), fragment)) {
        return ::testing::AssertionFailure()
               << "message \"" << e.message << "\" does not mention \"" << fragment << "\"";
    }
    return ::testing::AssertionSuccess();
}

::testing::AssertionResult parses(const result<config>& r) {
    if (r) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << r.err().message;
}

// A scratch folder removed at the end of the test.
class temp_dir {
public:
    temp_dir() {
        static int counter = 0;
        path_ = fs::temp_directory_path() /
                ("wxrecon-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        fs::remove_all(path_);
        fs::create_directories(path_);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    const path& get() const { return path_; }

    path write(const path& relative, std::string_view content) const {
        const path p = path_ / relative;
        fs::create_directories(p.parent_path());
        std::ofstream out(p, std::ios::binary);
        out.write(content.data(), static_cast<std::streamsize>(content.size()));
        return p;
    }

private:
    path path_;
};

// Changes the working directory for one test and restores it, so the rest of the suite is unaffected.
class scoped_cwd {
public:
    explicit scoped_cwd(const path& dir) : saved_(fs::current_path()) { fs::current_path(dir); }
    ~scoped_cwd() { fs::current_path(saved_); }
    scoped_cwd(const scoped_cwd&) = delete;
    scoped_cwd& operator=(const scoped_cwd&) = delete;

private:
    path saved_;
};

// --- durations
// ----------------------------------------------------------------------------------------------

TEST(DurationTest, AcceptsEveryUnitAndCombination) {
    const struct {
        const char* text;
        duration expected;
    } cases[] = {
        {"0s", 0ms},
        {"0ms", 0ms},
        {"500ms", 500ms},
        {"5s", 5s},
        {"1m", 1min},
        {"2h", 2h},
        {"1d", 24h},
        {"1h30m", 90min},
        {"1d2h3m4s5ms", 24h + 2h + 3min + 4s + 5ms},
        {"007s", 7s},
        {"90s", 90s},
        {"9223372036854775807ms", duration(std::numeric_limits<duration::rep>::max())},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.text);
        const auto d = parse_duration(c.text);
        ASSERT_TRUE(d) << d.err().message;
        EXPECT_EQ(*d, c.expected);
    }
}

TEST(DurationTest, RejectsMalformedTextQuotingIt) {
    const struct {
        const char* text;
        const char* why;
    } cases[] = {
        {"", "empty"},
        {"-5s", "negative"},
        {"1h-30m", "negative"},
        {"5", "missing unit"},
        {"1h30", "missing unit"},
        {"5x", "unknown unit \"x\""},
        {"5S", "unknown unit \"S\""},
        {"5sec", "unknown unit \"sec\""},
        {"s", "unit must follow a number"},
        {"ms", "unit must follow a number"},
        {"1hm", "unknown unit \"hm\""},
        {" 5s", "whitespace"},
        {"5s ", "whitespace"},
        {"5 s", "whitespace"},
        {"1h 30m", "whitespace"},
        {"1.5s", "unexpected character \".\""},
        {"+5s", "unexpected character \"+\""},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.text);
        const auto d = parse_duration(c.text);
        ASSERT_FALSE(d);
        EXPECT_EQ(d.err().code, errc::invalid_argument);
        const std::string quoted = "\"" + std::string(c.text) + "\"";
        EXPECT_TRUE(contains(d.err().message, quoted)) << d.err().message;
        EXPECT_TRUE(contains(d.err().message, c.why)) << d.err().message;
    }
}

TEST(DurationTest, RejectsOverflow) {
    for (const char* text : {"9223372036854775808ms", "99999999999999999999999s", "106751991167301d",
                             "9223372036854775807ms1ms", "9223372036854776s", "106751991167d1d"}) {
        SCOPED_TRACE(text);
        const auto d = parse_duration(text);
        ASSERT_FALSE(d);
        EXPECT_EQ(d.err().code, errc::invalid_argument);
        EXPECT_TRUE(contains(d.err().message, "too large")) << d.err().message;
    }
}

// --- defaults and required keys
// ------------------------------------------------------------------------------

TEST(ConfigDefaultsTest, AppliedWhenKeysAreOmitted) {
    const auto cfg = parse(toml_doc{});
    ASSERT_TRUE(parses(cfg));
    EXPECT_EQ(cfg->source_file, test_file);
    EXPECT_EQ(cfg->server.listen, "127.0.0.1:8080");
    EXPECT_EQ(cfg->server.public_base_url, "");
    EXPECT_EQ(cfg->server.max_body_bytes, 65536u);
    EXPECT_EQ(cfg->server.read_timeout, 10s);
    EXPECT_EQ(cfg->server.header_timeout, 5s);
    EXPECT_EQ(cfg->server.idle_timeout, 10s);
    EXPECT_EQ(cfg->server.shutdown_grace, 15s);
    EXPECT_EQ(cfg->server.max_connections, 1024u);
    EXPECT_EQ(cfg->server.max_connections_per_address, 256u);
    EXPECT_FALSE(cfg->server.tls_cert_file);
    EXPECT_FALSE(cfg->server.tls_key_file);
    EXPECT_EQ(cfg->admin.listen, "127.0.0.1:9476");
    EXPECT_FALSE(cfg->api);
    EXPECT_EQ(cfg->database.url, "postgresql:///wxrecon");
    EXPECT_EQ(cfg->database.pool_size, 8u);
    EXPECT_TRUE(cfg->database.auto_migrate);
    const std::vector<duration> delays = {5s, 30s, 1min, 3min, 5min, 10min, 30min};
    EXPECT_EQ(cfg->poller.delays, delays);
    EXPECT_EQ(cfg->poller.interval_after, 30min);
    EXPECT_EQ(cfg->poller.close_after_expire, 1min);
    EXPECT_EQ(cfg->poller.concurrency, 16u);
    EXPECT_EQ(cfg->poller.rate_per_second, 50u);
    EXPECT_EQ(cfg->poller.default_expiry, 2h);
    EXPECT_EQ(cfg->poller.request_timeout, 10s);
    EXPECT_EQ(cfg->alerts.stuck_after, 30min);
    EXPECT_EQ(cfg->alerts.notification_silence, 1h);
    EXPECT_EQ(cfg->alerts.webhook_per_minute, 20u);
    EXPECT_EQ(cfg->alerts.unknown_order_grace, 2min);
    EXPECT_FALSE(cfg->alerts.webhook_url);
    EXPECT_EQ(cfg->notifications.rejected_keep, 10000u);
    ASSERT_EQ(cfg->merchants.size(), 1u);
    const auto& m = cfg->merchants[0];
    EXPECT_EQ(m.mchid, "1900000109");
    EXPECT_EQ(m.appid, "wxd678efh567hg6787");
    EXPECT_EQ(m.version, api_version::v3);
    EXPECT_EQ(m.api_base, "https://api.mch.weixin.qq.com");
    EXPECT_FALSE(m.api_backup_base);
    EXPECT_FALSE(m.ca_file);
    EXPECT_FALSE(m.apiv3_key_file);
    EXPECT_FALSE(m.apiv2_key_file);
    EXPECT_FALSE(m.merchant_private_key_file);
    EXPECT_FALSE(m.merchant_cert_serial);
    EXPECT_FALSE(m.wechatpay_public_key_file);
    EXPECT_FALSE(m.wechatpay_public_key_id);
    EXPECT_TRUE(m.platform_cert_files.empty());
    EXPECT_FALSE(m.app_secret_file);
    EXPECT_EQ(m.mp_api_base, "https://api.weixin.qq.com");
}

TEST(ConfigValuesTest, EveryKeyIsRead) {
    toml_doc doc;
    doc.server = R"(listen = "0.0.0.0:443"
public_base_url = "https://pay.example.com"
max_body_bytes = 1024
read_timeout = "3s"
header_timeout = "2s"
idle_timeout = "30s"
shutdown_grace = "0s"
max_connections = 10
max_connections_per_address = 4
tls_cert_file = "/etc/tls/cert.pem"
tls_key_file = "/etc/tls/key.pem"
)";
    doc.admin = "listen = \"[::1]:9000\"\n";
    doc.api = "token_file = \"/etc/wxrecon/api.token\"\nlisten = \"127.0.0.1:8081\"\n";
    doc.database = "url = \"host=db dbname=wx\"\npool_size = 2\nauto_migrate = false\n";
    doc.poller = R"(delays = ["1s", "2s"]
interval_after = "5m"
close_after_expire = "0s"
concurrency = 4
rate_per_second = 7
default_expiry = "15m"
request_timeout = "3s"
)";
    doc.alerts =
        "stuck_after = \"1h\"\nwebhook_url = \"http://hooks.internal/wx\"\nnotification_silence = \"20m\"\n"
        "webhook_per_minute = 6\nunknown_order_grace = \"30s\"\n";
    doc.notifications = "rejected_keep = 5\n";
    doc.merchants = {R"(mchid = "1230000109"
appid = "wx1234"
api_version = "v2"
api_base = "http://127.0.0.1:9100"
api_backup_base = "https://api2.mch.weixin.qq.com"
ca_file = "/k/ca.pem"
apiv3_key_file = "/k/v3"
apiv2_key_file = "/k/v2"
merchant_private_key_file = "/k/key.pem"
merchant_cert_file = "/k/cert.pem"
merchant_cert_serial = "abc123"
wechatpay_public_key_file = "/k/pub.pem"
wechatpay_public_key_id = "PUB_KEY_ID_1"
platform_cert_files = ["/k/a.pem", "/k/b.pem"]
app_secret_file = "/k/secret"
mp_api_base = "http://localhost:9200"
)"};
    const auto cfg = parse(doc);
    ASSERT_TRUE(parses(cfg));
    EXPECT_EQ(cfg->server.listen, "0.0.0.0:443");
    EXPECT_EQ(cfg->server.public_base_url, "https://pay.example.com");
    EXPECT_EQ(cfg->server.max_body_bytes, 1024u);
    EXPECT_EQ(cfg->server.read_timeout, 3s);
    EXPECT_EQ(cfg->server.header_timeout, 2s);
    EXPECT_EQ(cfg->server.idle_timeout, 30s);
    EXPECT_EQ(cfg->server.shutdown_grace, 0s);
    EXPECT_EQ(cfg->server.max_connections, 10u);
    EXPECT_EQ(cfg->server.max_connections_per_address, 4u);
    EXPECT_EQ(cfg->server.tls_cert_file, path("/etc/tls/cert.pem"));
    EXPECT_EQ(cfg->server.tls_key_file, path("/etc/tls/key.pem"));
    EXPECT_EQ(cfg->admin.listen, "[::1]:9000");
    ASSERT_TRUE(cfg->api);
    EXPECT_EQ(cfg->api->token_file, path("/etc/wxrecon/api.token"));
    EXPECT_EQ(cfg->api->listen, "127.0.0.1:8081");
    EXPECT_EQ(cfg->database.url, "host=db dbname=wx");
    EXPECT_EQ(cfg->database.pool_size, 2u);
    EXPECT_FALSE(cfg->database.auto_migrate);
    EXPECT_EQ(cfg->poller.delays, (std::vector<duration>{1s, 2s}));
    EXPECT_EQ(cfg->poller.interval_after, 5min);
    EXPECT_EQ(cfg->poller.close_after_expire, 0s);
    EXPECT_EQ(cfg->poller.concurrency, 4u);
    EXPECT_EQ(cfg->poller.rate_per_second, 7u);
    EXPECT_EQ(cfg->poller.default_expiry, 15min);
    EXPECT_EQ(cfg->poller.request_timeout, 3s);
    EXPECT_EQ(cfg->alerts.stuck_after, 1h);
    EXPECT_EQ(cfg->alerts.webhook_url, "http://hooks.internal/wx");
    EXPECT_EQ(cfg->alerts.notification_silence, 20min);
    EXPECT_EQ(cfg->alerts.webhook_per_minute, 6u);
    EXPECT_EQ(cfg->alerts.unknown_order_grace, 30s);
    EXPECT_EQ(cfg->notifications.rejected_keep, 5u);
    const auto& m = cfg->merchants.at(0);
    EXPECT_EQ(m.mchid, "1230000109");
    EXPECT_EQ(m.appid, "wx1234");
    EXPECT_EQ(m.version, api_version::v2);
    EXPECT_EQ(m.api_base, "http://127.0.0.1:9100");
    EXPECT_EQ(m.api_backup_base, "https://api2.mch.weixin.qq.com");
    EXPECT_EQ(m.ca_file, path("/k/ca.pem"));
    EXPECT_EQ(m.apiv3_key_file, path("/k/v3"));
    EXPECT_EQ(m.apiv2_key_file, path("/k/v2"));
    EXPECT_EQ(m.merchant_private_key_file, path("/k/key.pem"));
    EXPECT_EQ(m.merchant_cert_file, path("/k/cert.pem"));
    EXPECT_EQ(m.merchant_cert_serial, "ABC123");
    EXPECT_EQ(m.wechatpay_public_key_file, path("/k/pub.pem"));
    EXPECT_EQ(m.wechatpay_public_key_id, "PUB_KEY_ID_1");
    EXPECT_EQ(m.platform_cert_files, (std::vector<path>{"/k/a.pem", "/k/b.pem"}));
    EXPECT_EQ(m.app_secret_file, path("/k/secret"));
    EXPECT_EQ(m.mp_api_base, "http://localhost:9200");
}

TEST(ConfigRequiredTest, MissingKeysAreNamed) {
    const struct {
        const char* name;
        edit_fn edit;
        const char* key;
        const char* fragment;
    } cases[] = {
        {"server.listen", [](toml_doc& d) { d.server = ""; }, "server.listen", "required key is missing"},
        {"no [server]", [](toml_doc& d) { d.server.reset(); }, "server.listen", "required key is missing"},
        {"admin.listen", [](toml_doc& d) { d.admin = ""; }, "admin.listen", "required key is missing"},
        {"database.url", [](toml_doc& d) { d.database.reset(); }, "database.url", "required key is missing"},
        {"api.token_file", [](toml_doc& d) { d.api = "listen = \"127.0.0.1:8081\"\n"; }, "api.token_file",
         "required key is missing"},
        {"no merchants", [](toml_doc& d) { d.merchants.clear(); }, "merchants", "at least one [[merchants]]"},
        {"empty merchants array",
         [](toml_doc& d) {
             d.merchants.clear();
             d.root = "merchants = []\n";
         },
         "merchants", "at least one [[merchants]]"},
        {"mchid", [](toml_doc& d) { d.merchants[0] = "appid = \"wx1\"\napi_version = \"v3\"\n"; },
         "merchants[0].mchid", "required key is missing"},
        {"appid", [](toml_doc& d) { d.merchants[0] = "mchid = \"1\"\napi_version = \"v3\"\n"; },
         "merchants[0].appid", "required key is missing"},
        {"api_version", [](toml_doc& d) { d.merchants[0] = "mchid = \"1\"\nappid = \"wx1\"\n"; },
         "merchants[0].api_version", "required key is missing"},
        {"merchant_cert_file without its key",
         [](toml_doc& d) {
             d.merchants[0] =
                 "mchid = \"1\"\nappid = \"wx1\"\napi_version = \"v2\"\nmerchant_cert_file = \"c.pem\"\n";
         },
         "merchants[0].merchant_private_key_file", "required when merchants[0].merchant_cert_file is set"},
        {"second merchant's mchid",
         [](toml_doc& d) { d.merchants.push_back("appid = \"wx1\"\napi_version = \"v2\"\n"); },
         "merchants[1].mchid", "required key is missing"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_TRUE(fails_at(parse_with(c.edit), c.key, c.fragment));
    }
}

TEST(ConfigApiTest, SectionIsOptionalButComplete) {
    const auto absent = parse(toml_doc{});
    ASSERT_TRUE(parses(absent));
    EXPECT_FALSE(absent->api);

    const auto token_only = parse_with([](toml_doc& d) { d.api = "token_file = \"api.token\"\n"; });
    ASSERT_TRUE(parses(token_only));
    ASSERT_TRUE(token_only->api);
    EXPECT_EQ(token_only->api->token_file, path("/etc/wxrecon/api.token"));
    EXPECT_FALSE(token_only->api->listen);

    EXPECT_TRUE(fails_at(parse_with([](toml_doc& d) { d.api = ""; }), "api.token_file", "required"));
}

TEST(ConfigBillsTest, SectionIsOptionalAndEveryKeyIsChecked) {
    const auto absent = parse(toml_doc{});
    ASSERT_TRUE(parses(absent));
    EXPECT_FALSE(absent->bills);

    const auto defaults = parse_with([](toml_doc& d) { d.bills = ""; });
    ASSERT_TRUE(parses(defaults));
    ASSERT_TRUE(defaults->bills);
    EXPECT_EQ(defaults->bills->fetch_at, std::chrono::minutes(10 * 60 + 30));
    EXPECT_TRUE(defaults->bills->trade && defaults->bills->fundflow);
    EXPECT_EQ(defaults->bills->cross_day_tolerance, std::chrono::minutes(10));
    EXPECT_EQ(defaults->bills->keep_days, 400u);

    const auto set = parse_with([](toml_doc& d) {
        d.bills = "fetch_at = \"09:05\"\nkinds = [\"trade\"]\ncross_day_tolerance = \"2m\"\nkeep_days = 30\n";
    });
    ASSERT_TRUE(parses(set));
    EXPECT_EQ(set->bills->fetch_at, std::chrono::minutes(9 * 60 + 5));
    EXPECT_TRUE(set->bills->trade);
    EXPECT_FALSE(set->bills->fundflow);
    EXPECT_EQ(set->bills->cross_day_tolerance, std::chrono::minutes(2));
    EXPECT_EQ(set->bills->keep_days, 30u);

    for (const char* bad : {"\"24:00\"", "\"9:30\"", "\"10:60\"", "\"ten\""})
        EXPECT_TRUE(
            fails_at(parse_with([&](toml_doc& d) { d.bills = std::string("fetch_at = ") + bad + "\n"; }),
                     "bills.fetch_at", "HH:MM"))
            << bad;
    EXPECT_TRUE(fails_at(parse_with([](toml_doc& d) { d.bills = "kinds = []\n"; }), "bills.kinds"));
    EXPECT_TRUE(fails_at(parse_with([](toml_doc& d) { d.bills = "kinds = [\"trade\", \"trade\"]\n"; }),
                         "bills.kinds[1]"));
    EXPECT_TRUE(
        fails_at(parse_with([](toml_doc& d) { d.bills = "kinds = [\"refund\"]\n"; }), "bills.kinds[0]"));
    EXPECT_TRUE(fails_at(parse_with([](toml_doc& d) { d.bills = "keep_days = 0\n"; }), "bills.keep_days"));
    EXPECT_TRUE(fails_at(parse_with([](toml_doc& d) { d.bills = "keep_days = 7\n"; }), "bills.keep_days"));
    EXPECT_TRUE(fails_at(parse_with([](toml_doc& d) { d.bills = "fetch = 1\n"; }), "bills.fetch", "unknown"));
}

// --- unknown keys and types
// --------------------------------------------------------------------------------------

TEST(ConfigUnknownKeyTest, EveryLocationIsRejectedWithItsFullPath) {
    const struct {
        const char* name;
        edit_fn edit;
        const char* key;
    } cases[] = {
        {"top level", [](toml_doc& d) { d.root = "serevr_name = \"x\"\n"; }, "serevr_name"},
        {"unknown section", [](toml_doc& d) { d.root = "[metrics]\nport = 1\n"; }, "metrics"},
        {"server", [](toml_doc& d) { *d.server += "max_body_byte = 10\n"; }, "server.max_body_byte"},
        {"server subtable", [](toml_doc& d) { *d.server += "[server.tls]\ncert = \"x\"\n"; }, "server.tls"},
        {"admin", [](toml_doc& d) { *d.admin += "port = 1\n"; }, "admin.port"},
        {"api", [](toml_doc& d) { d.api = "token_file = \"t\"\ntoken = \"inline\"\n"; }, "api.token"},
        {"database", [](toml_doc& d) { *d.database += "password = \"x\"\n"; }, "database.password"},
        {"poller", [](toml_doc& d) { d.poller = "delay = [\"5s\"]\n"; }, "poller.delay"},
        {"alerts", [](toml_doc& d) { d.alerts = "webhook = \"https://x\"\n"; }, "alerts.webhook"},
        {"notifications", [](toml_doc& d) { d.notifications = "keep = 1\n"; }, "notifications.keep"},
        {"merchants[0]", [](toml_doc& d) { d.merchants[0] += "apiv3key = \"x\"\n"; },
         "merchants[0].apiv3key"},
        {"merchants[1]",
         [](toml_doc& d) { d.merchants.push_back(merchant_body("1900000110") + "apiv3key = \"x\"\n"); },
         "merchants[1].apiv3key"},
        {"quoted key", [](toml_doc& d) { *d.server += "\"max body\" = 1\n"; }, "server.\"max body\""},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_TRUE(fails_at(parse_with(c.edit), c.key, "unknown key"));
    }
}

TEST(ConfigUnknownKeyTest, FirstInFileOrderIsReportedWithASuggestion) {
    const auto cfg = parse_with([](toml_doc& d) { *d.server += "zzz = 1\nmax_body_byte = 10\n"; });
    EXPECT_TRUE(fails_at(cfg, "server.zzz", "unknown key"));

    const auto typo = parse_with([](toml_doc& d) { *d.server += "max_body_byte = 10\n"; });
    EXPECT_TRUE(fails_at(typo, "server.max_body_byte", "did you mean max_body_bytes?"));
}

TEST(ConfigTypeTest, WrongTypesAreRejected) {
    const struct {
        const char* name;
        edit_fn edit;
        const char* key;
        const char* fragment;
    } cases[] = {
        {"section not a table",
         [](toml_doc& d) {
             d.server.reset();
             d.root = "server = \"127.0.0.1:8080\"\n";
         },
         "server", "expected a table ([server]), found a string"},
        {"listen integer", [](toml_doc& d) { d.server = "listen = 8080\n"; }, "server.listen",
         "expected a string, found an integer"},
        {"integer as string", [](toml_doc& d) { *d.server += "max_body_bytes = \"65536\"\n"; },
         "server.max_body_bytes", "expected an integer, found a string"},
        {"integer as float", [](toml_doc& d) { *d.server += "max_connections = 10.5\n"; },
         "server.max_connections", "expected an integer, found a floating-point number"},
        {"bool as string", [](toml_doc& d) { *d.database += "auto_migrate = \"yes\"\n"; },
         "database.auto_migrate", "expected a boolean, found a string"},
        {"duration as integer", [](toml_doc& d) { *d.server += "read_timeout = 10\n"; },
         "server.read_timeout", "expected a duration string"},
        {"array as string", [](toml_doc& d) { d.poller = "delays = \"5s\"\n"; }, "poller.delays",
         "expected an array of duration strings, found a string"},
        {"array element", [](toml_doc& d) { d.poller = "delays = [\"5s\", 30]\n"; }, "poller.delays[1]",
         "expected a duration string"},
        {"path as bool", [](toml_doc& d) { d.api = "token_file = true\n"; }, "api.token_file",
         "expected a string, found a boolean"},
        {"path list as string", [](toml_doc& d) { d.merchants[0] += "platform_cert_files = \"a.pem\"\n"; },
         "merchants[0].platform_cert_files", "expected an array of file names"},
        {"path list element", [](toml_doc& d) { d.merchants[0] += "platform_cert_files = [\"a.pem\", 1]\n"; },
         "merchants[0].platform_cert_files[1]", "expected a string, found an integer"},
        {"mchid integer",
         [](toml_doc& d) { d.merchants[0] = "mchid = 1900000109\nappid = \"wx1\"\napi_version = \"v3\"\n"; },
         "merchants[0].mchid", "expected a string, found an integer"},
        {"merchants as table",
         [](toml_doc& d) {
             d.merchants.clear();
             d.root = "[merchants]\nmchid = \"1\"\n";
         },
         "merchants", "expected an array of tables ([[merchants]]), found a table"},
        {"merchant not a table",
         [](toml_doc& d) {
             d.merchants.clear();
             d.root = "merchants = [\"1900000109\"]\n";
         },
         "merchants[0]", "expected a table, found a string"},
        {"date", [](toml_doc& d) { d.alerts = "stuck_after = 1979-05-27\n"; }, "alerts.stuck_after",
         "found a date"},
        {"empty string", [](toml_doc& d) { d.database = "url = \"\"\n"; }, "database.url",
         "must not be empty"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_TRUE(fails_at(parse_with(c.edit), c.key, c.fragment));
    }
}

// --- ranges
// -----------------------------------------------------------------------------------------------------

TEST(ConfigRangeTest, BoundsAreEnforced) {
    const struct {
        const char* section;
        const char* line;
        bool ok;
    } cases[] = {
        {"server", "max_body_bytes = 1", true},
        {"server", "max_body_bytes = 16777216", true},
        {"server", "max_body_bytes = 0", false},
        {"server", "max_body_bytes = 16777217", false},
        {"server", "max_body_bytes = -1", false},
        {"server", "max_connections = 1", true},
        {"server", "max_connections = 1000000", true},
        {"server", "max_connections = 0", false},
        {"server", "max_connections = 1000001", false},
        {"database", "pool_size = 1", true},
        {"database", "pool_size = 256", true},
        {"database", "pool_size = 0", false},
        {"database", "pool_size = 257", false},
        {"database", "keep_months = 13", true},
        {"database", "keep_months = 1200", true},
        {"database", "keep_months = 12", false},
        {"database", "keep_months = 0", false},
        {"poller", "concurrency = 1", true},
        {"poller", "concurrency = 0", false},
        {"poller", "concurrency = 4294967296", false},
        {"poller", "rate_per_second = 1", true},
        {"poller", "rate_per_second = 0", false},
        {"notifications", "rejected_keep = 1", true},
        {"notifications", "rejected_keep = 0", false},
        {"notifications", "rejected_keep = -5", false},
        {"server", "read_timeout = \"1ms\"", true},
        {"server", "read_timeout = \"0s\"", false},
        {"server", "header_timeout = \"0s\"", false},
        {"server", "idle_timeout = \"0s\"", false},
        {"server", "idle_timeout = \"250ms\"", true},
        {"server", "max_connections_per_address = 0", false},
        {"server", "max_connections_per_address = 1", true},
        {"server", "shutdown_grace = \"0s\"", true},
        {"server", "shutdown_grace = \"-1s\"", false},
        {"poller", "interval_after = \"0s\"", false},
        {"poller", "default_expiry = \"0s\"", false},
        {"poller", "close_after_expire = \"0s\"", true},
        {"poller", "close_after_expire = \"-1m\"", false},
        {"alerts", "stuck_after = \"0s\"", true},
        {"alerts", "stuck_after = \"-30m\"", false},
    };
    for (const auto& c : cases) {
        const std::string line = c.line;
        SCOPED_TRACE(std::string(c.section) + ": " + line);
        toml_doc doc;
        std::optional<std::string>* body = nullptr;
        const std::string section = c.section;
        if (section == "server") body = &doc.server;
        if (section == "database") body = &doc.database;
        if (section == "poller") body = &doc.poller;
        if (section == "alerts") body = &doc.alerts;
        if (section == "notifications") body = &doc.notifications;
        ASSERT_NE(body, nullptr);
        *body = body->value_or("") + line + "\n";
        const auto cfg = parse(doc);
        if (c.ok) {
            EXPECT_TRUE(parses(cfg));
        } else {
            const std::string key = section + "." + line.substr(0, line.find(' '));
            EXPECT_TRUE(fails_at(cfg, key));
        }
    }
}

TEST(ConfigDatabaseTest, KeepMonthsIsUnsetUnlessGiven) {
    EXPECT_FALSE(parse_with([](toml_doc&) {})->database.keep_months.has_value());
    const auto cfg = parse_with([](toml_doc& d) { *d.database += "keep_months = 25\n"; });
    ASSERT_TRUE(parses(cfg));
    EXPECT_EQ(cfg->database.keep_months, 25);
}

TEST(ConfigRangeTest, IntegerRangeMessageGivesBoundsAndValue) {
    const auto cfg = parse_with([](toml_doc& d) { *d.server += "max_body_bytes = 16777217\n"; });
    EXPECT_TRUE(fails_at(cfg, "server.max_body_bytes", "must be between 1 and 16777216, got 16777217"));
}

TEST(ConfigPollerTest, DelaysMustBeStrictlyIncreasing) {
    const struct {
        const char* delays;
        const char* bad_key;  // nullptr: accepted
    } cases[] = {
        {R"(["0s"])", nullptr},
        {R"(["500ms", "1s", "1h"])", nullptr},
        {R"(["1m", "1m"])", "poller.delays[1]"},
        {R"(["5s", "60s", "1m"])", "poller.delays[2]"},
        {R"(["30s", "5s"])", "poller.delays[1]"},
        {R"([])", "poller.delays"},
        {R"(["5s", "-1s"])", "poller.delays[1]"},
        {R"(["5s", "10"])", "poller.delays[1]"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.delays);
        const auto cfg =
            parse_with([&](toml_doc& d) { d.poller = "delays = " + std::string(c.delays) + "\n"; });
        if (c.bad_key == nullptr) {
            EXPECT_TRUE(parses(cfg));
        } else {
            EXPECT_TRUE(fails_at(cfg, c.bad_key));
        }
    }
    const auto equal = parse_with([](toml_doc& d) { d.poller = "delays = [\"1m\", \"60s\"]\n"; });
    EXPECT_TRUE(fails_at(equal, "poller.delays[1]", "\"60s\" is not greater than the previous delay \"1m\""));
}

// --- listen addresses and URLs
// ----------------------------------------------------------------------------------

TEST(ConfigListenTest, HostPortForms) {
    const struct {
        const char* listen;
        bool ok;
    } cases[] = {
        {"127.0.0.1:8080", true},   {"0.0.0.0:0", true},
        {"localhost:65535", true},  {"wxrecon-db.internal:80", true},
        {"[::1]:8080", true},       {"[::]:443", true},
        {"[fe80::1]:1", true},      {"127.0.0.1", false},
        {"127.0.0.1:", false},      {":8080", false},
        {"127.0.0.1:65536", false}, {"127.0.0.1:99999999", false},
        {"127.0.0.1:-1", false},    {"127.0.0.1:80a", false},
        {"127.0.0.1: 80", false},   {"::1:8080", false},
        {"[::1]8080", false},       {"[::1]", false},
        {"[::1:8080", false},       {"[not-v6]:8080", false},
        {"my host:80", false},      {"http://127.0.0.1:80", false},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.listen);
        const std::string listen = c.listen;
        for (const char* section : {"server", "admin", "api"}) {
            SCOPED_TRACE(section);
            const auto cfg = parse_with([&](toml_doc& d) {
                const std::string line = "listen = \"" + listen + "\"\n";
                if (std::string_view(section) == "server") d.server = line;
                if (std::string_view(section) == "admin") d.admin = line;
                if (std::string_view(section) == "api") d.api = "token_file = \"t\"\n" + line;
            });
            if (c.ok) {
                ASSERT_TRUE(parses(cfg));
                EXPECT_EQ(std::string_view(section) == "server"  ? cfg->server.listen
                          : std::string_view(section) == "admin" ? cfg->admin.listen
                                                                 : cfg->api->listen.value(),
                          listen);
            } else {
                EXPECT_TRUE(fails_at(cfg, std::string(section) + ".listen"));
            }
        }
    }
}

TEST(ConfigUrlTest, WeChatEndpointsNeedHttpsUnlessLoopback) {
    const struct {
        const char* url;
        bool ok;
    } cases[] = {
        {"https://api.mch.weixin.qq.com", true},
        {"https://10.0.0.1:8443", true},
        {"http://127.0.0.1:9000", true},
        {"http://127.1.2.3", true},
        {"http://127.255.255.255:1/prefix", true},
        {"http://[::1]:9000", true},
        {"http://[::ffff:127.0.0.1]:9000", true},
        {"http://localhost:9000", true},
        {"http://LocalHost", true},
        {"http://api.mch.weixin.qq.com", false},
        {"http://10.0.0.1:9000", false},
        {"http://128.0.0.1", false},
        {"http://[::2]:9000", false},
        {"http://localhost.example.com", false},
        {"http://127.0.0.1.nip.io", false},
        {"http://0.0.0.0", false},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.url);
        for (const char* key : {"api_base", "api_backup_base", "mp_api_base"}) {
            SCOPED_TRACE(key);
            const auto cfg = parse_with(
                [&](toml_doc& d) { d.merchants[0] += std::string(key) + " = \"" + c.url + "\"\n"; });
            if (c.ok) {
                EXPECT_TRUE(parses(cfg));
            } else {
                EXPECT_TRUE(fails_at(cfg, "merchants[0]." + std::string(key), "loopback"));
            }
        }
    }
}

TEST(ConfigUrlTest, OwnUrlsAcceptHttpAndHttpsToAnyHost) {
    for (const char* url : {"https://pay.example.com", "http://pay.example.com", "http://10.1.2.3:8080/wx",
                            "https://[2001:db8::1]"}) {
        SCOPED_TRACE(url);
        const auto cfg = parse_with([&](toml_doc& d) {
            *d.server += "public_base_url = \"" + std::string(url) + "\"\n";
            d.alerts = "webhook_url = \"" + std::string(url) + "\"\n";
        });
        ASSERT_TRUE(parses(cfg));
        EXPECT_EQ(cfg->server.public_base_url, url);
        EXPECT_EQ(cfg->alerts.webhook_url, url);
    }
}

TEST(ConfigUrlTest, MalformedUrlsAreRejected) {
    const struct {
        const char* url;
        const char* fragment;
    } cases[] = {
        {"pay.example.com", "http:// or https://"},
        {"ftp://pay.example.com", "http:// or https://"},
        {"HTTPS://pay.example.com", "http:// or https://"},
        {"https://", "host is missing"},
        {"https:///path", "host is missing"},
        {"https://pay.example.com:", "port is missing"},
        {"https://pay.example.com:0", "port"},
        {"https://pay.example.com:70000", "port"},
        {"https://user:pw@pay.example.com", "credentials"},
        {"https://pay.example.com/?a=1", "query or fragment"},
        {"https://pay.example.com#top", "fragment"},
        {"https://pay example.com", "whitespace"},
        {"https://[::1", "unterminated"},
        {"https://pay_exa$mple.com", "invalid host"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.url);
        EXPECT_TRUE(fails_at(parse_with([&](toml_doc& d) {
                                 *d.server += "public_base_url = \"" + std::string(c.url) + "\"\n";
                             }),
                             "server.public_base_url", c.fragment));
        if (!std::string_view(c.url).ends_with("?a=1")) {  // a webhook may have a query: see below
            EXPECT_TRUE(fails_at(
                parse_with([&](toml_doc& d) { d.alerts = "webhook_url = \"" + std::string(c.url) + "\"\n"; }),
                "alerts.webhook_url", c.fragment));
        }
        EXPECT_TRUE(fails_at(
            parse_with([&](toml_doc& d) { d.merchants[0] += "api_base = \"" + std::string(c.url) + "\"\n"; }),
            "merchants[0].api_base", c.fragment));
    }
}

TEST(ConfigAlertsTest, WebhookUrlKeepsItsQueryAndNeverEchoesIt) {
    // A WeCom group robot's address carries its key in the query.
    const std::string robot =
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa";
    auto cfg = parse_with([&](toml_doc& d) { d.alerts = "webhook_url = \"" + robot + "\"\n"; });
    ASSERT_TRUE(cfg) << cfg.err().message;
    EXPECT_EQ(cfg->alerts.webhook_url, robot);
    auto slash = parse_with([](toml_doc& d) { d.alerts = "webhook_url = \"https://hooks.internal/wx/\"\n"; });
    ASSERT_TRUE(slash);
    EXPECT_EQ(slash->alerts.webhook_url, "https://hooks.internal/wx/") << "used exactly as given";

    for (const char* bad :
         {"ftp://hooks.internal/send?key=SECRET-KEY", "https://hooks.internal/send?key=SECRET-KEY#x",
          "https://u:p@hooks.internal/send?key=SECRET-KEY"}) {
        auto refused =
            parse_with([&](toml_doc& d) { d.alerts = "webhook_url = \"" + std::string(bad) + "\"\n"; });
        ASSERT_FALSE(refused) << bad;
        EXPECT_NE(refused.err().message.find("alerts.webhook_url"), std::string::npos)
            << refused.err().message;
        EXPECT_EQ(refused.err().message.find("SECRET-KEY"), std::string::npos) << refused.err().message;
    }
}

TEST(ConfigUrlTest, TrailingSlashesAreDroppedSoPathsCanBeAppended) {
    const auto cfg = parse_with([](toml_doc& d) {
        *d.server += "public_base_url = \"https://pay.example.com/wx/\"\n";
        d.merchants[0] +=
            "api_base = \"https://api.mch.weixin.qq.com//\"\nmp_api_base = \"http://[::1]:9/\"\n";
    });
    ASSERT_TRUE(parses(cfg));
    EXPECT_EQ(cfg->server.public_base_url, "https://pay.example.com/wx");
    EXPECT_EQ(cfg->merchants[0].api_base, "https://api.mch.weixin.qq.com");
    EXPECT_EQ(cfg->merchants[0].mp_api_base, "http://[::1]:9");
}

// --- paths
// ------------------------------------------------------------------------------------------------------

TEST(ConfigPathTest, RelativePathsResolveAgainstTheConfigFolderNotTheWorkingDirectory) {
    temp_dir tmp;
    const path config_dir = tmp.get() / "etc";
    const path config_file = tmp.write("etc/wxrecond.toml", R"([server]
listen = "127.0.0.1:8080"
tls_cert_file = "tls/cert.pem"
tls_key_file = "./tls/key.pem"
[admin]
listen = "127.0.0.1:9476"
[api]
token_file = "keys/api.token"
[database]
url = "postgresql:///wxrecon"
[[merchants]]
mchid = "1900000109"
appid = "wx1"
api_version = "v3"
ca_file = "ca.pem"
apiv3_key_file = "keys/apiv3.key"
apiv2_key_file = "keys/apiv2.key"
merchant_private_key_file = "keys/apiclient_key.pem"
wechatpay_public_key_file = "keys/pub_key.pem"
wechatpay_public_key_id = "PUB_KEY_ID_1"
platform_cert_files = ["keys/a.pem", "../shared/b.pem", "/abs/c.pem"]
app_secret_file = "keys/appsecret"
)");
    fs::create_directories(tmp.get() / "elsewhere");
    const scoped_cwd cwd(tmp.get() / "elsewhere");

    // The config file itself is named relative to the working directory; everything in it is not.
    const auto cfg = load_config("../etc/wxrecond.toml");
    ASSERT_TRUE(parses(cfg));
    EXPECT_EQ(cfg->source_file, config_file.lexically_normal());
    EXPECT_TRUE(cfg->source_file.is_absolute());
    EXPECT_EQ(cfg->server.tls_cert_file, config_dir / "tls/cert.pem");
    EXPECT_EQ(cfg->server.tls_key_file, config_dir / "tls/key.pem");
    EXPECT_EQ(cfg->api->token_file, config_dir / "keys/api.token");
    const auto& m = cfg->merchants.at(0);
    EXPECT_EQ(m.ca_file, config_dir / "ca.pem");
    EXPECT_EQ(m.apiv3_key_file, config_dir / "keys/apiv3.key");
    EXPECT_EQ(m.apiv2_key_file, config_dir / "keys/apiv2.key");
    EXPECT_EQ(m.merchant_private_key_file, config_dir / "keys/apiclient_key.pem");
    EXPECT_EQ(m.wechatpay_public_key_file, config_dir / "keys/pub_key.pem");
    EXPECT_EQ(m.app_secret_file, config_dir / "keys/appsecret");
    EXPECT_EQ(m.platform_cert_files,
              (std::vector<path>{config_dir / "keys/a.pem", tmp.get() / "shared/b.pem", "/abs/c.pem"}));

    // A config file named relative to the working directory is made absolute first; its folder anchors paths.
    toml_doc doc;
    doc.api = "token_file = \"t\"\n";
    const auto bare = parse_config(doc.text(), "w.toml");
    ASSERT_TRUE(parses(bare));
    EXPECT_EQ(bare->source_file, tmp.get() / "elsewhere/w.toml");
    EXPECT_EQ(bare->api->token_file, tmp.get() / "elsewhere/t");
}

TEST(ConfigPathTest, EmptyPathIsRejected) {
    EXPECT_TRUE(fails_at(parse_with([](toml_doc& d) { d.merchants[0] += "apiv3_key_file = \"\"\n"; }),
                         "merchants[0].apiv3_key_file", "must not be empty"));
}

// --- merchants
// ----------------------------------------------------------------------------------------------------

TEST(ConfigMerchantTest, MchidMustBeDigits) {
    for (const char* mchid : {"19000x0109", "-1", " 1900000109", "1900000109 ", "１２３"}) {
        SCOPED_TRACE(mchid);
        EXPECT_TRUE(fails_at(parse_with([&](toml_doc& d) { d.merchants[0] = merchant_body(mchid); }),
                             "merchants[0].mchid", "only digits"));
    }
}

TEST(ConfigMerchantTest, DuplicateMchidIsRejected) {
    const auto cfg = parse_with([](toml_doc& d) {
        d.merchants.push_back(merchant_body("1900000110"));
        d.merchants.push_back(merchant_body("1900000109"));
    });
    EXPECT_TRUE(fails_at(cfg, "merchants[2].mchid", "duplicate mchid \"1900000109\" (also in merchants[0])"));
}

TEST(ConfigMerchantTest, ApiV2SignTypeIsHmacUnlessMd5IsChosen) {
    const auto by_default = parse_with([](toml_doc&) {});
    ASSERT_TRUE(by_default.has_value()) << by_default.err().message;
    EXPECT_FALSE(by_default->merchants[0].apiv2_sign_md5);
    const auto md5 = parse_with([](toml_doc& d) { d.merchants[0] += "apiv2_sign_type = \"MD5\"\n"; });
    ASSERT_TRUE(md5.has_value()) << md5.err().message;
    EXPECT_TRUE(md5->merchants[0].apiv2_sign_md5);
    for (const char* type : {"md5", "SHA256", "HMAC_SHA256"}) {
        SCOPED_TRACE(type);
        const auto cfg = parse_with(
            [&](toml_doc& d) { d.merchants[0] += "apiv2_sign_type = \"" + std::string(type) + "\"\n"; });
        EXPECT_TRUE(fails_at(cfg, "merchants[0].apiv2_sign_type", "must be \"HMAC-SHA256\" or \"MD5\""));
    }
}

TEST(ConfigMerchantTest, ApiVersionMustBeV3OrV2) {
    for (const char* version : {"v1", "V3", "3", "v3 "}) {
        SCOPED_TRACE(version);
        const auto cfg = parse_with([&](toml_doc& d) {
            d.merchants[0] =
                "mchid = \"1\"\nappid = \"wx1\"\napi_version = \"" + std::string(version) + "\"\n";
        });
        EXPECT_TRUE(fails_at(cfg, "merchants[0].api_version", "must be \"v3\" or \"v2\""));
    }
}

TEST(ConfigMerchantTest, CertSerialIsHexAndNormalisedToUpperCase) {
    const auto cfg =
        parse_with([](toml_doc& d) { d.merchants[0] += "merchant_cert_serial = \"3775b6a45acd5888\"\n"; });
    ASSERT_TRUE(parses(cfg));
    EXPECT_EQ(cfg->merchants[0].merchant_cert_serial, "3775B6A45ACD5888");

    for (const char* serial : {"3775G6", "0x3775", "37 75", "37:75"}) {
        SCOPED_TRACE(serial);
        EXPECT_TRUE(fails_at(parse_with([&](toml_doc& d) {
                                 d.merchants[0] += "merchant_cert_serial = \"" + std::string(serial) + "\"\n";
                             }),
                             "merchants[0].merchant_cert_serial", "hexadecimal"));
    }
}

TEST(ConfigMerchantTest, AppidMustNotContainWhitespace) {
    EXPECT_TRUE(fails_at(parse_with([](toml_doc& d) {
                             d.merchants[0] = "mchid = \"1\"\nappid = \"wx 1\"\napi_version = \"v3\"\n";
                         }),
                         "merchants[0].appid", "whitespace"));
}

TEST(ConfigMerchantTest, PublicKeyFileAndIdGoTogether) {
    EXPECT_TRUE(
        fails_at(parse_with([](toml_doc& d) { d.merchants[0] += "wechatpay_public_key_file = \"p.pem\"\n"; }),
                 "merchants[0].wechatpay_public_key_id",
                 "required when merchants[0].wechatpay_public_key_file is set"));
    EXPECT_TRUE(
        fails_at(parse_with([](toml_doc& d) { d.merchants[0] += "wechatpay_public_key_id = \"PUB_1\"\n"; }),
                 "merchants[0].wechatpay_public_key_file",
                 "required when merchants[0].wechatpay_public_key_id is set"));
}

TEST(ConfigServerTest, TlsCertAndKeyGoTogether) {
    EXPECT_TRUE(fails_at(parse_with([](toml_doc& d) { *d.server += "tls_cert_file = \"c.pem\"\n"; }),
                         "server.tls_key_file", "required when server.tls_cert_file is set"));
    EXPECT_TRUE(fails_at(parse_with([](toml_doc& d) { *d.server += "tls_key_file = \"k.pem\"\n"; }),
                         "server.tls_cert_file", "required when server.tls_key_file is set"));
}

TEST(ConfigFindMerchantTest, FindsByMchid) {
    const auto cfg = parse_with([](toml_doc& d) { d.merchants.push_back(merchant_body("1900000110")); });
    ASSERT_TRUE(parses(cfg));
    ASSERT_NE(cfg->find_merchant("1900000110"), nullptr);
    EXPECT_EQ(cfg->find_merchant("1900000110"), &cfg->merchants[1]);
    EXPECT_EQ(cfg->find_merchant("1900000109"), &cfg->merchants[0]);
    EXPECT_EQ(cfg->find_merchant("190000010"), nullptr);
    EXPECT_EQ(cfg->find_merchant(""), nullptr);
}

// --- error reporting
// ---------------------------------------------------------------------------------------------

TEST(ConfigErrorTest, MessageIsFileThenKeyThenProblem) {
    const auto cfg = parse_with([](toml_doc& d) { *d.database += "pool_size = 0\n"; });
    ASSERT_FALSE(cfg);
    EXPECT_EQ(cfg.err().code, errc::config_error);
    EXPECT_EQ(cfg.err().message,
              "/etc/wxrecon/wxrecond.toml: database.pool_size: must be between 1 and 256, got 0");
}

TEST(ConfigErrorTest, FirstErrorInDocumentOrderIsReported) {
    const auto cfg = parse_with([](toml_doc& d) {
        *d.server += "max_connections = 0\n";
        *d.database += "pool_size = 0\n";
        d.merchants[0] += "api_base = \"http://example.com\"\n";
    });
    EXPECT_TRUE(fails_at(cfg, "server.max_connections"));
}

TEST(ConfigErrorTest, TomlSyntaxErrorGivesFileLineAndColumn) {
    const auto cfg = parse_config("[server]\nlisten = \"127.0.0.1:8080\"\nmax_body_bytes = = 3\n", test_file);
    ASSERT_FALSE(cfg);
    EXPECT_EQ(cfg.err().code, errc::config_error);
    EXPECT_TRUE(cfg.err().message.starts_with("/etc/wxrecon/wxrecond.toml:3:")) << cfg.err().message;

    const auto duplicate = parse_config("[server]\nlisten = \"a:1\"\n  listen = \"b:2\"\n", test_file);
    ASSERT_FALSE(duplicate);
    EXPECT_TRUE(duplicate.err().message.starts_with("/etc/wxrecon/wxrecond.toml:3:"))
        << duplicate.err().message;
}

TEST(ConfigErrorTest, DurationErrorsNameKeyAndQuoteText) {
    EXPECT_TRUE(fails_at(parse_with([](toml_doc& d) { d.poller = "interval_after = \"30 m\"\n"; }),
                         "poller.interval_after", "invalid duration \"30 m\""));
}

TEST(ConfigLoadTest, MissingFileIsNamed) {
    temp_dir tmp;
    const path missing = tmp.get() / "nope.toml";
    const auto cfg = load_config(missing);
    ASSERT_FALSE(cfg);
    EXPECT_EQ(cfg.err().code, errc::config_error);
    EXPECT_TRUE(cfg.err().message.starts_with(missing.string() + ": ")) << cfg.err().message;
    EXPECT_TRUE(contains(cfg.err().message, "No such file")) << cfg.err().message;
}

TEST(ConfigLoadTest, ErrorsInALoadedFileNameThatFile) {
    temp_dir tmp;
    const path file = tmp.write("bad.toml", "[server]\nlisten = 1\n");
    const auto cfg = load_config(file);
    ASSERT_FALSE(cfg);
    EXPECT_EQ(cfg.err().message, file.string() + ": server.listen: expected a string, found an integer");
}

// --- the shipped example
// -----------------------------------------------------------------------------------------

TEST(ConfigExampleTest, ShippedExampleParsesAndShowsEveryKey) {
    const path example = path(WXRECON_SOURCE_DIR) / "conf/wxrecond.toml";
    const auto cfg = load_config(example);
    ASSERT_TRUE(parses(cfg));
    const path conf_dir = example.parent_path().lexically_normal();
    ASSERT_EQ(cfg->merchants.size(), 1u);
    const auto& m = cfg->merchants[0];
    EXPECT_EQ(m.mchid, "1900000109");
    EXPECT_EQ(m.version, api_version::v3);
    EXPECT_EQ(m.apiv3_key_file, conf_dir / "keys/apiv3.key");
    EXPECT_EQ(m.merchant_private_key_file, conf_dir / "keys/apiclient_key.pem");
    EXPECT_TRUE(m.merchant_cert_serial);
    EXPECT_EQ(m.wechatpay_public_key_file, conf_dir / "keys/pub_key.pem");
    EXPECT_TRUE(m.wechatpay_public_key_id);
    ASSERT_EQ(m.platform_cert_files.size(), 1u);
    EXPECT_EQ(m.platform_cert_files[0].parent_path(), conf_dir / "keys");
    ASSERT_TRUE(cfg->api);
    EXPECT_EQ(cfg->api->token_file, conf_dir / "keys/api.token");

    // Every key of docs/interfaces.md §2 appears, set or commented out, so the example documents them all.
    std::ifstream in(example);
    std::stringstream text;
    text << in.rdbuf();
    for (const char* key : {"[server]",
                            "listen =",
                            "public_base_url =",
                            "max_body_bytes =",
                            "read_timeout =",
                            "header_timeout =",
                            "idle_timeout =",
                            "shutdown_grace =",
                            "max_connections =",
                            "max_connections_per_address =",
                            "tls_cert_file =",
                            "tls_key_file =",
                            "[admin]",
                            "[api]",
                            "token_file =",
                            "[database]",
                            "url =",
                            "pool_size =",
                            "auto_migrate =",
                            "[poller]",
                            "delays =",
                            "interval_after =",
                            "close_after_expire =",
                            "concurrency =",
                            "rate_per_second =",
                            "default_expiry =",
                            "[alerts]",
                            "stuck_after =",
                            "webhook_url =",
                            "[notifications]",
                            "rejected_keep =",
                            "[[merchants]]",
                            "mchid =",
                            "appid =",
                            "api_version =",
                            "api_base =",
                            "api_backup_base =",
                            "ca_file =",
                            "apiv3_key_file =",
                            "apiv2_key_file =",
                            "merchant_private_key_file =",
                            "merchant_cert_serial =",
                            "wechatpay_public_key_file =",
                            "wechatpay_public_key_id =",
                            "platform_cert_files =",
                            "app_secret_file =",
                            "mp_api_base ="}) {
        EXPECT_TRUE(contains(text.str(), key)) << key;
    }
}

// --- secret files
// -------------------------------------------------------------------------------------------------

result<std::string> read_secret(const temp_dir& tmp, std::string_view content) {
    return read_secret_file(tmp.write("secret", content), "merchants[0].apiv3_key_file");
}

TEST(SecretFileTest, OneTrailingLfIsDropped) {
    temp_dir tmp;
    const auto s = read_secret(tmp, "0123456789abcdef0123456789abcdef\n");
    ASSERT_TRUE(s) << s.err().message;
    EXPECT_EQ(*s, "0123456789abcdef0123456789abcdef");
}

TEST(SecretFileTest, OneTrailingCrlfIsDropped) {
    temp_dir tmp;
    const auto s = read_secret(tmp, "token\r\n");
    ASSERT_TRUE(s) << s.err().message;
    EXPECT_EQ(*s, "token");
}

TEST(SecretFileTest, OnlyOneNewlineIsDropped) {
    const struct {
        std::string content;
        std::string expected;
    } cases[] = {
        {"token\n\n", "token\n"},
        {"token\r\n\r\n", "token\r\n"},
        {"token\n\r\n", "token\n"},
        {"token\r", "token\r"},
        {"token \n", "token "},
        {"token", "token"},
        {std::string("\0\x01\xff\n", 4), std::string("\0\x01\xff", 3)},
    };
    temp_dir tmp;
    for (const auto& c : cases) {
        SCOPED_TRACE(::testing::PrintToString(c.content));
        const auto s = read_secret(tmp, c.content);
        ASSERT_TRUE(s) << s.err().message;
        EXPECT_EQ(*s, c.expected);
    }
}

TEST(SecretFileTest, MissingFileMessageNamesKeyAndFile) {
    temp_dir tmp;
    const path missing = tmp.get() / "keys/apiv3.key";
    const auto s = read_secret_file(missing, "merchants[0].apiv3_key_file");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.err().code, errc::config_error);
    EXPECT_TRUE(contains(s.err().message, "merchants[0].apiv3_key_file")) << s.err().message;
    EXPECT_TRUE(contains(s.err().message, missing.string())) << s.err().message;
    EXPECT_TRUE(contains(s.err().message, "No such file")) << s.err().message;
}

TEST(SecretFileTest, EmptyFileIsRejected) {
    temp_dir tmp;
    for (const char* content : {"", "\n", "\r\n"}) {
        SCOPED_TRACE(::testing::PrintToString(std::string(content)));
        const auto s = read_secret(tmp, content);
        ASSERT_FALSE(s);
        EXPECT_EQ(s.err().code, errc::config_error);
        EXPECT_TRUE(contains(s.err().message, "merchants[0].apiv3_key_file")) << s.err().message;
        EXPECT_TRUE(contains(s.err().message, (tmp.get() / "secret").string())) << s.err().message;
        EXPECT_TRUE(contains(s.err().message, "empty")) << s.err().message;
    }
}

TEST(SecretFileTest, UnreadableFileIsRejected) {
    temp_dir tmp;
    fs::create_directories(tmp.get() / "a_directory");
    const auto s = read_secret_file(tmp.get() / "a_directory", "api.token_file");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.err().code, errc::config_error);
    EXPECT_TRUE(contains(s.err().message, "api.token_file")) << s.err().message;
    EXPECT_TRUE(contains(s.err().message, "a_directory")) << s.err().message;
}

}  // namespace
}  // namespace wxrecon::config
