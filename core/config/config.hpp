// Typed configuration (docs/interfaces.md §2): parsed from TOML, defaults
// applied, every value validated, unknown keys rejected, relative paths
// resolved against the folder of the config file.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace wxrecon::config {

using duration = std::chrono::milliseconds;
using path = std::filesystem::path;

struct server_config {
    std::string listen;           // "host:port"
    std::string public_base_url;  // required when any merchant places orders; validated as http(s) URL
    std::uint64_t max_body_bytes = 65536;
    duration read_timeout = std::chrono::seconds(10);   // a whole request, from its first byte
    duration header_timeout = std::chrono::seconds(5);  // its header, from its first byte
    duration idle_timeout = std::chrono::seconds(10);   // waiting for the next request
    duration shutdown_grace = std::chrono::seconds(15);
    std::uint32_t max_connections = 1024;
    std::uint32_t max_connections_per_address = 256;
    std::optional<path> tls_cert_file;
    std::optional<path> tls_key_file;
};

struct admin_config {
    std::string listen;
};

struct api_config {
    path token_file;
    std::optional<std::string> listen;  // unset: served on server.listen
};

struct database_config {
    std::string url;
    std::uint32_t pool_size = 8;
    bool auto_migrate = true;
    // Months of payment_events partitions kept attached; older ones are detached (kept as tables of
    // their own). Unset: none is ever detached.
    std::optional<int> keep_months;
};

struct poller_config {
    std::vector<duration> delays = {
        std::chrono::seconds(5), std::chrono::seconds(30), std::chrono::minutes(1), std::chrono::minutes(3),
        std::chrono::minutes(5), std::chrono::minutes(10), std::chrono::minutes(30)};
    duration interval_after = std::chrono::minutes(30);
    duration close_after_expire = std::chrono::minutes(1);
    std::uint32_t concurrency = 16;
    std::uint32_t rate_per_second = 50;
    duration default_expiry = std::chrono::hours(2);
    duration request_timeout =
        std::chrono::seconds(10);  // a WeChat Pay call's write + answer; then "timeout"
    // Refunds not yet final: queried at created_at + each delay, then every refund_interval_after
    // (docs/protocol-notes.md §4.6: every minute, backing off after five).
    std::vector<duration> refund_delays = {std::chrono::minutes(1),  std::chrono::minutes(2),
                                           std::chrono::minutes(3),  std::chrono::minutes(4),
                                           std::chrono::minutes(5),  std::chrono::minutes(10),
                                           std::chrono::minutes(20), std::chrono::minutes(30)};
    duration refund_interval_after = std::chrono::minutes(30);
};

struct alerts_config {
    duration stuck_after = std::chrono::minutes(30);
    // A refund PROCESSING this long opens refund_stuck (refunds to a bank card take 1–3 working days).
    duration refund_stuck_after = std::chrono::hours(72);
    // No accepted notification for this long while orders are being placed: the callback path is broken.
    // Exported as a gauge for the alert rule to compare against.
    duration notification_silence = std::chrono::hours(1);
    std::optional<std::string> webhook_url;
    std::uint32_t webhook_per_minute = 20;  // pushes at most this often; the rest wait in the outbox
    duration unknown_order_grace =
        std::chrono::minutes(2);  // a racing registration usually resolves it by then
};

// [bills] (docs/interfaces.md §7.2): present means bills are fetched daily on schedule.
struct bills_config {
    std::chrono::minutes fetch_at{10 * 60 + 30};  // Beijing time of day: the day before's bills
    bool trade = true;                            // kinds = ["trade", "fundflow"]
    bool fundflow = true;
    duration cross_day_tolerance = std::chrono::minutes(10);
    std::uint32_t keep_days = 400;
};

struct notifications_config {
    std::uint64_t rejected_keep = 10000;
};

enum class api_version { v3, v2 };

struct merchant_config {
    std::string mchid;
    std::string appid;
    api_version version = api_version::v3;
    std::string api_base = "https://api.mch.weixin.qq.com";
    std::optional<std::string> api_backup_base;
    std::optional<path> ca_file;
    std::optional<path> apiv3_key_file;
    std::optional<path> apiv2_key_file;
    bool apiv2_sign_md5 = false;  // apiv2_sign_type: "HMAC-SHA256" (default) or "MD5"
    std::optional<path> merchant_private_key_file;
    // apiclient_cert.pem: mutual TLS for APIv2 downloadfundflow and refunds (with merchant_private_key_file).
    std::optional<path> merchant_cert_file;
    std::optional<std::string> merchant_cert_serial;  // upper-case hex after parsing
    std::optional<path> wechatpay_public_key_file;
    std::optional<std::string> wechatpay_public_key_id;
    std::vector<path> platform_cert_files;
    std::optional<path> app_secret_file;
    std::string mp_api_base = "https://api.weixin.qq.com";
};

// [app_events] (docs/interfaces.md §2.9): present means the application is told of its orders' changes.
struct app_events_config {
    std::string url;
    path secret_file;               // HMAC-SHA256 key of X-Wxrecon-Signature
    std::uint32_t concurrency = 8;  // deliveries in flight at once
    duration timeout = std::chrono::seconds(5);
};

struct config {
    path source_file;  // absolute path of the file this came from
    server_config server;
    admin_config admin;
    std::optional<api_config> api;  // absent: the internal API is disabled
    database_config database;
    poller_config poller;
    alerts_config alerts;
    notifications_config notifications;
    std::optional<bills_config> bills;            // absent: no bill is fetched on schedule
    std::optional<app_events_config> app_events;  // absent: no app events are written or sent
    std::vector<merchant_config> merchants;

    const merchant_config* find_merchant(std::string_view mchid) const noexcept;
};

// "500ms", "5s", "1h30m", "0s": one or more <integer><unit> parts, units ms s m h d.
result<duration> parse_duration(std::string_view text);

// Parses TOML text; source_file names the file in messages and anchors relative paths.
// Errors (errc::config_error) read "<file>: <key>: <what is wrong>".
result<config> parse_config(std::string_view toml_text, const path& source_file);
result<config> load_config(const path& file);

// Reads a secret file; exactly one trailing "\n" or "\r\n" is dropped. Errors name the key and file.
result<std::string> read_secret_file(const path& file, std::string_view key_name);

// The internal API's bearer token (api.token_file): at least 16 characters. Errors name the key and file.
result<std::string> load_api_token(const api_config& api);
// app_events.secret_file, at least 16 bytes.
result<std::string> load_app_events_secret(const app_events_config& events);

}  // namespace wxrecon::config
