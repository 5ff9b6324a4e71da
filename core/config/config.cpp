#include "config/config.hpp"

#include "config/value_checks.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <memory>
#include <system_error>
#include <utility>

namespace wxrecon::config {

namespace {

using namespace text;

// Every parser a limit: a config or secret file larger than this is a mistake, not data.
constexpr std::size_t max_config_bytes = 4u * 1024u * 1024u;
constexpr std::size_t max_secret_bytes = 64u * 1024u;
constexpr std::int64_t max_body_limit = 16 * 1024 * 1024;
constexpr std::int64_t uint32_max = std::numeric_limits<std::uint32_t>::max();
constexpr std::int64_t int64_max = std::numeric_limits<std::int64_t>::max();

// --- files ---------------------------------------------------------------------------------------------

struct file_closer {
    void operator()(std::FILE* f) const noexcept { std::fclose(f); }
};

// Reads a whole file in binary mode; the error text is the reason only, callers add who wanted it.
result<std::string> read_whole_file(const path& file, std::size_t max_bytes) {
    errno = 0;
    std::unique_ptr<std::FILE, file_closer> f(std::fopen(file.c_str(), "rb"));
    if (!f) return make_error(errc::io_error, std::strerror(errno));
    std::string data;
    char buffer[8192];
    while (true) {
        const std::size_t n = std::fread(buffer, 1, sizeof buffer, f.get());
        data.append(buffer, n);
        if (data.size() > max_bytes) {
            return make_error(errc::io_error, "larger than " + std::to_string(max_bytes) + " bytes");
        }
        if (n < sizeof buffer) break;
    }
    if (std::ferror(f.get())) return make_error(errc::io_error, std::strerror(errno));
    return data;
}

// --- TOML access -----------------------------------------------------------------------------------------

const char* describe(toml::node_type type) {
    switch (type) {
        case toml::node_type::none:
            return "nothing";
        case toml::node_type::table:
            return "a table";
        case toml::node_type::array:
            return "an array";
        case toml::node_type::string:
            return "a string";
        case toml::node_type::integer:
            return "an integer";
        case toml::node_type::floating_point:
            return "a floating-point number";
        case toml::node_type::boolean:
            return "a boolean";
        case toml::node_type::date:
            return "a date";
        case toml::node_type::time:
            return "a time";
        case toml::node_type::date_time:
            return "a date-time";
    }
    return "an unknown value";
}

// Keys are printed the way TOML would accept them back, so `a."b c"` stays unambiguous.
std::string key_segment(std::string_view key) {
    const bool bare = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
        return is_alpha(c) || is_digit(c) || c == '_' || c == '-';
    });
    return bare ? std::string(key) : quote(key);
}

std::string indexed(std::string_view key_path, std::size_t index) {
    return std::string(key_path) + "[" + std::to_string(index) + "]";
}

// One TOML table and the key path that leads to it ("" for the document root).
struct scope {
    const toml::table* table;
    std::string prefix;

    std::string path_of(std::string_view key) const {
        return prefix.empty() ? key_segment(key) : prefix + "." + key_segment(key);
    }
};

enum class need { optional, required };
enum class sign { non_negative, positive };

// Reads typed values out of TOML tables. The first problem found is kept and later reads become
// no-ops, so parse code can read straight through without checking after every key.
class reader {
public:
    reader(std::string file_label, path base_dir)
        : file_label_(std::move(file_label)), base_dir_(std::move(base_dir)) {}

    bool failed() const noexcept { return error_.has_value(); }
    error take_error() { return std::move(*error_); }

    void fail(std::string_view key_path, std::string_view what) {
        if (error_) return;
        error_ = make_error(errc::config_error,
                            file_label_ + ": " + std::string(key_path) + ": " + std::string(what));
    }

    // A typo must not silently fall back to a default, so any key not listed is an error.
    void reject_unknown(const scope& s, std::initializer_list<std::string_view> known) {
        if (failed()) return;
        const toml::key* first = nullptr;
        for (const auto& [key, node] : *s.table) {
            if (std::find(known.begin(), known.end(), key.str()) != known.end()) continue;
            if (first == nullptr || earlier(key, *first)) first = &key;
        }
        if (first == nullptr) return;
        std::string what = "unknown key";
        for (const auto candidate : known) {
            if (edit_distance(first->str(), candidate) <= 2) {
                what += " (did you mean " + std::string(candidate) + "?)";
                break;
            }
        }
        fail(s.path_of(first->str()), what);
    }

    // A section that is absent reads as empty, so its required keys are reported by their full path.
    scope section(const toml::table& root, std::string_view name) {
        static const toml::table empty;
        const toml::node* node = failed() ? nullptr : root.get(name);
        if (node == nullptr) return scope{&empty, std::string(name)};
        if (const toml::table* t = node->as_table()) return scope{t, std::string(name)};
        wrong_type(key_segment(name), *node, "a table ([" + std::string(name) + "])");
        return scope{&empty, std::string(name)};
    }

    const toml::node* lookup(const scope& s, std::string_view key, need n) {
        if (failed()) return nullptr;
        const toml::node* node = s.table->get(key);
        if (node == nullptr && n == need::required) fail(s.path_of(key), "required key is missing");
        return node;
    }

    bool present(const scope& s, std::string_view key) const { return s.table->get(key) != nullptr; }

    void wrong_type(std::string_view key_path, const toml::node& node, std::string_view expected) {
        fail(key_path, "expected " + std::string(expected) + ", found " + describe(node.type()));
    }

    std::optional<std::string> string_from(const toml::node& node, std::string_view key_path) {
        const auto* v = node.as_string();
        if (v == nullptr) {
            wrong_type(key_path, node, "a string");
            return std::nullopt;
        }
        if (v->get().empty()) {
            fail(key_path, "must not be empty");
            return std::nullopt;
        }
        return v->get();
    }

    std::optional<std::string> get_string(const scope& s, std::string_view key, need n) {
        const toml::node* node = lookup(s, key, n);
        return node ? string_from(*node, s.path_of(key)) : std::nullopt;
    }

    template <class T>
    void get_integer(const scope& s, std::string_view key, T& out, std::int64_t min, std::int64_t max) {
        const toml::node* node = lookup(s, key, need::optional);
        if (node == nullptr) return;
        const auto* v = node->as_integer();
        if (v == nullptr) return wrong_type(s.path_of(key), *node, "an integer");
        const std::int64_t value = v->get();
        if (value < min || value > max) {
            const std::string got = ", got " + std::to_string(value);
            if (value < min && (max == int64_max || max == uint32_max)) {
                return fail(s.path_of(key), "must be at least " + std::to_string(min) + got);
            }
            return fail(s.path_of(key),
                        "must be between " + std::to_string(min) + " and " + std::to_string(max) + got);
        }
        out = static_cast<T>(value);
    }

    void get_bool(const scope& s, std::string_view key, bool& out) {
        const toml::node* node = lookup(s, key, need::optional);
        if (node == nullptr) return;
        const auto* v = node->as_boolean();
        if (v == nullptr) return wrong_type(s.path_of(key), *node, "a boolean");
        out = v->get();
    }

    std::optional<duration> duration_from(const toml::node& node, std::string_view key_path, sign sg) {
        const auto* v = node.as_string();
        if (v == nullptr) {
            wrong_type(key_path, node, "a duration string such as \"30s\"");
            return std::nullopt;
        }
        auto parsed = parse_duration(v->get());
        if (!parsed) {
            fail(key_path, parsed.err().message);
            return std::nullopt;
        }
        if (sg == sign::positive && parsed->count() == 0) {
            fail(key_path, "must be greater than zero, got " + quote(v->get()));
            return std::nullopt;
        }
        return *parsed;
    }

    void get_duration(const scope& s, std::string_view key, duration& out, sign sg) {
        const toml::node* node = lookup(s, key, need::optional);
        if (node == nullptr) return;
        if (auto d = duration_from(*node, s.path_of(key), sg)) out = *d;
    }

    std::optional<std::string> get_listen(const scope& s, std::string_view key, need n) {
        auto text = get_string(s, key, n);
        if (!text) return std::nullopt;
        if (auto problem = listen_problem(*text)) {
            fail(s.path_of(key), *problem);
            return std::nullopt;
        }
        return text;
    }

    std::optional<std::string> get_url(const scope& s, std::string_view key, url_rule rule) {
        auto text = get_string(s, key, need::optional);
        if (!text) return std::nullopt;
        auto url = check_url(*text, rule);
        if (!url) {
            fail(s.path_of(key), url.err().message);
            return std::nullopt;
        }
        return std::move(*url);
    }

    // Relative paths hang off the config file's folder so the daemon behaves the same whatever
    // directory systemd or an operator starts it from.
    std::optional<path> path_from(const toml::node& node, std::string_view key_path) {
        auto text = string_from(node, key_path);
        if (!text) return std::nullopt;
        const path p(*text);
        return (p.is_absolute() ? p : base_dir_ / p).lexically_normal();
    }

    std::optional<path> get_path(const scope& s, std::string_view key, need n) {
        const toml::node* node = lookup(s, key, n);
        return node ? path_from(*node, s.path_of(key)) : std::nullopt;
    }

    const toml::array* get_array(const scope& s, std::string_view key, std::string_view element) {
        const toml::node* node = lookup(s, key, need::optional);
        if (node == nullptr) return nullptr;
        const toml::array* arr = node->as_array();
        if (arr == nullptr) wrong_type(s.path_of(key), *node, "an array of " + std::string(element));
        return arr;
    }

    // For settings that are useless alone, e.g. a TLS certificate without its key.
    void require_together(const scope& s, std::string_view a, std::string_view b) {
        if (failed()) return;
        if (present(s, a) && !present(s, b)) fail(s.path_of(b), "required when " + s.path_of(a) + " is set");
        if (present(s, b) && !present(s, a)) fail(s.path_of(a), "required when " + s.path_of(b) + " is set");
    }

private:
    static bool earlier(const toml::key& a, const toml::key& b) {
        const auto& pa = a.source().begin;
        const auto& pb = b.source().begin;
        if (pa.line != pb.line) return pa.line < pb.line;
        if (pa.column != pb.column) return pa.column < pb.column;
        return a.str() < b.str();
    }

    std::string file_label_;
    path base_dir_;
    std::optional<error> error_;
};

// --- sections, in the order of docs/interfaces.md §2.1 -------------------------------------------------

void read_server(reader& r, const scope& s, server_config& out) {
    r.reject_unknown(s, {"listen", "public_base_url", "max_body_bytes", "read_timeout", "header_timeout",
                         "idle_timeout", "shutdown_grace", "max_connections", "max_connections_per_address",
                         "tls_cert_file", "tls_key_file"});
    if (auto v = r.get_listen(s, "listen", need::required)) out.listen = std::move(*v);
    if (auto v = r.get_url(s, "public_base_url", url_rule::http_or_https))
        out.public_base_url = std::move(*v);
    r.get_integer(s, "max_body_bytes", out.max_body_bytes, 1, max_body_limit);
    r.get_duration(s, "read_timeout", out.read_timeout, sign::positive);
    r.get_duration(s, "header_timeout", out.header_timeout, sign::positive);
    r.get_duration(s, "idle_timeout", out.idle_timeout, sign::positive);
    r.get_duration(s, "shutdown_grace", out.shutdown_grace, sign::non_negative);
    r.get_integer(s, "max_connections", out.max_connections, 1, 1'000'000);
    r.get_integer(s, "max_connections_per_address", out.max_connections_per_address, 1, 1'000'000);
    out.tls_cert_file = r.get_path(s, "tls_cert_file", need::optional);
    out.tls_key_file = r.get_path(s, "tls_key_file", need::optional);
    r.require_together(s, "tls_cert_file", "tls_key_file");
}

void read_admin(reader& r, const scope& s, admin_config& out) {
    r.reject_unknown(s, {"listen"});
    if (auto v = r.get_listen(s, "listen", need::required)) out.listen = std::move(*v);
}

void read_api(reader& r, const scope& s, api_config& out) {
    r.reject_unknown(s, {"token_file", "listen"});
    if (auto v = r.get_path(s, "token_file", need::required)) out.token_file = std::move(*v);
    out.listen = r.get_listen(s, "listen", need::optional);
}

void read_database(reader& r, const scope& s, database_config& out) {
    r.reject_unknown(s, {"url", "pool_size", "auto_migrate", "keep_months"});
    if (auto v = r.get_string(s, "url", need::required)) out.url = std::move(*v);
    r.get_integer(s, "pool_size", out.pool_size, 1, 256);
    r.get_bool(s, "auto_migrate", out.auto_migrate);
    // At least 13: a refund may come up to a year after its payment, and it reads the payment's events.
    int keep_months = 0;
    r.get_integer(s, "keep_months", keep_months, 13, 1200);
    if (keep_months > 0) out.keep_months = keep_months;
}

void read_delays(reader& r, const scope& s, const char* key, std::vector<duration>& out) {
    const toml::array* arr = r.get_array(s, key, "duration strings");
    if (arr == nullptr) return;
    const std::string key_path = s.path_of(key);
    if (arr->empty()) return r.fail(key_path, "must list at least one delay");
    std::vector<duration> delays;
    for (std::size_t i = 0; i < arr->size(); ++i) {
        const auto d = r.duration_from(*arr->get(i), indexed(key_path, i), sign::non_negative);
        if (!d) return;
        // The schedule is "query i at created_at + delays[i]"; a non-increasing list would fire queries
        // back to back, which is almost certainly a typo.
        if (!delays.empty() && *d <= delays.back()) {
            return r.fail(indexed(key_path, i), quote(arr->get(i)->as_string()->get()) +
                                                    " is not greater than the previous delay " +
                                                    quote(arr->get(i - 1)->as_string()->get()) +
                                                    " (delays must be strictly increasing)");
        }
        delays.push_back(*d);
    }
    out = std::move(delays);
}

void read_poller(reader& r, const scope& s, poller_config& out) {
    r.reject_unknown(s, {"delays", "interval_after", "close_after_expire", "concurrency", "rate_per_second",
                         "default_expiry", "request_timeout", "refund_delays", "refund_interval_after"});
    read_delays(r, s, "delays", out.delays);
    read_delays(r, s, "refund_delays", out.refund_delays);
    r.get_duration(s, "refund_interval_after", out.refund_interval_after, sign::positive);
    // Zero here would mean polling in a tight loop, or orders that expire on arrival.
    r.get_duration(s, "interval_after", out.interval_after, sign::positive);
    r.get_duration(s, "close_after_expire", out.close_after_expire, sign::non_negative);
    r.get_integer(s, "concurrency", out.concurrency, 1, uint32_max);
    r.get_integer(s, "rate_per_second", out.rate_per_second, 1, uint32_max);
    r.get_duration(s, "default_expiry", out.default_expiry, sign::positive);
    r.get_duration(s, "request_timeout", out.request_timeout, sign::positive);
}

void read_alerts(reader& r, const scope& s, alerts_config& out) {
    r.reject_unknown(s, {"stuck_after", "notification_silence", "webhook_url", "webhook_per_minute",
                         "unknown_order_grace", "refund_stuck_after"});
    r.get_duration(s, "stuck_after", out.stuck_after, sign::non_negative);
    r.get_duration(s, "refund_stuck_after", out.refund_stuck_after, sign::non_negative);
    r.get_duration(s, "notification_silence", out.notification_silence, sign::positive);
    out.webhook_url = r.get_url(s, "webhook_url", url_rule::webhook);
    r.get_integer(s, "webhook_per_minute", out.webhook_per_minute, 1, 6000);
    r.get_duration(s, "unknown_order_grace", out.unknown_order_grace, sign::non_negative);
}

void read_bills(reader& r, const scope& s, bills_config& out) {
    r.reject_unknown(s, {"fetch_at", "kinds", "cross_day_tolerance", "keep_days"});
    if (auto v = r.get_string(s, "fetch_at", need::optional)) {
        const bool shaped =
            v->size() == 5 && (*v)[2] == ':' && all_digits(v->substr(0, 2)) && all_digits(v->substr(3, 2));
        const int hours = shaped ? std::stoi(v->substr(0, 2)) : 99,
                  minutes = shaped ? std::stoi(v->substr(3)) : 99;
        if (hours > 23 || minutes > 59)
            return r.fail(s.path_of("fetch_at"), "must be a Beijing time of day \"HH:MM\", got " + quote(*v));
        out.fetch_at = std::chrono::minutes(hours * 60 + minutes);
    }
    if (const toml::array* arr = r.get_array(s, "kinds", "bill kinds")) {
        const std::string key_path = s.path_of("kinds");
        if (arr->empty()) return r.fail(key_path, "must list \"trade\", \"fundflow\" or both");
        out.trade = out.fundflow = false;
        for (std::size_t i = 0; i < arr->size(); ++i) {
            const auto kind = r.string_from(*arr->get(i), indexed(key_path, i));
            if (!kind) return;
            bool& slot = *kind == "trade" ? out.trade : out.fundflow;
            if ((*kind != "trade" && *kind != "fundflow") || slot)
                return r.fail(indexed(key_path, i),
                              "must be \"trade\" or \"fundflow\", each once, got " + quote(*kind));
            slot = true;
        }
    }
    r.get_duration(s, "cross_day_tolerance", out.cross_day_tolerance, sign::non_negative);
    // The matching reads bills up to 7 days back (refunds of earlier payments).
    r.get_integer(s, "keep_days", out.keep_days, 8, 100000);
}

void read_app_events(reader& r, const scope& s, app_events_config& out) {
    r.reject_unknown(s, {"url", "secret_file", "concurrency", "timeout"});
    out.url = r.get_url(s, "url", url_rule::webhook).value_or("");
    if (out.url.empty() && !r.failed()) r.fail(s.path_of("url"), "required");
    if (auto v = r.get_path(s, "secret_file", need::required)) out.secret_file = std::move(*v);
    r.get_integer(s, "concurrency", out.concurrency, 1, 256);
    r.get_duration(s, "timeout", out.timeout, sign::positive);
}

void read_notifications(reader& r, const scope& s, notifications_config& out) {
    r.reject_unknown(s, {"rejected_keep"});
    r.get_integer(s, "rejected_keep", out.rejected_keep, 1, int64_max);
}

merchant_config read_merchant(reader& r, const scope& s) {
    merchant_config m;
    r.reject_unknown(s, {"mchid", "appid", "api_version", "api_base", "api_backup_base", "ca_file",
                         "apiv3_key_file", "apiv2_key_file", "apiv2_sign_type", "merchant_private_key_file",
                         "merchant_cert_file", "merchant_cert_serial", "wechatpay_public_key_file",
                         "wechatpay_public_key_id", "platform_cert_files", "app_secret_file", "mp_api_base"});
    if (auto v = r.get_string(s, "mchid", need::required)) {
        if (!all_digits(*v)) r.fail(s.path_of("mchid"), "must contain only digits, got " + quote(*v));
        m.mchid = std::move(*v);
    }
    if (auto v = r.get_string(s, "appid", need::required)) {
        if (std::any_of(v->begin(), v->end(), is_space_or_control)) {
            r.fail(s.path_of("appid"), "must not contain whitespace or control characters, got " + quote(*v));
        }
        m.appid = std::move(*v);
    }
    if (auto v = r.get_string(s, "api_version", need::required)) {
        if (*v == "v3") {
            m.version = api_version::v3;
        } else if (*v == "v2") {
            m.version = api_version::v2;
        } else {
            r.fail(s.path_of("api_version"), "must be \"v3\" or \"v2\", got " + quote(*v));
        }
    }
    if (auto v = r.get_url(s, "api_base", url_rule::https_unless_loopback)) m.api_base = std::move(*v);
    m.api_backup_base = r.get_url(s, "api_backup_base", url_rule::https_unless_loopback);
    m.ca_file = r.get_path(s, "ca_file", need::optional);
    m.apiv3_key_file = r.get_path(s, "apiv3_key_file", need::optional);
    m.apiv2_key_file = r.get_path(s, "apiv2_key_file", need::optional);
    if (auto v = r.get_string(s, "apiv2_sign_type", need::optional)) {
        // Signs APIv2 requests and the wx.requestPayment paySign, which must use the same algorithm
        // (docs/protocol-notes.md §7.4).
        if (*v == "MD5") {
            m.apiv2_sign_md5 = true;
        } else if (*v != "HMAC-SHA256") {
            r.fail(s.path_of("apiv2_sign_type"), "must be \"HMAC-SHA256\" or \"MD5\", got " + quote(*v));
        }
    }
    m.merchant_private_key_file = r.get_path(s, "merchant_private_key_file", need::optional);
    m.merchant_cert_file = r.get_path(s, "merchant_cert_file", need::optional);
    if (m.merchant_cert_file && !m.merchant_private_key_file)
        r.fail(s.path_of("merchant_private_key_file"), "required when " + s.path_of("merchant_cert_file") +
                                                           " is set (the certificate's private key)");
    if (auto v = r.get_string(s, "merchant_cert_serial", need::optional)) {
        if (!std::all_of(v->begin(), v->end(), is_hex)) {
            r.fail(s.path_of("merchant_cert_serial"), "must be hexadecimal, got " + quote(*v));
        }
        // WeChat Pay prints serials in upper case; normalising lets them be compared as strings.
        std::transform(v->begin(), v->end(), v->begin(), to_upper_ascii);
        m.merchant_cert_serial = std::move(*v);
    }
    m.wechatpay_public_key_file = r.get_path(s, "wechatpay_public_key_file", need::optional);
    m.wechatpay_public_key_id = r.get_string(s, "wechatpay_public_key_id", need::optional);
    // The key id is what Wechatpay-Serial names; a key without its id (or the reverse) can never match.
    r.require_together(s, "wechatpay_public_key_file", "wechatpay_public_key_id");
    if (const toml::array* arr = r.get_array(s, "platform_cert_files", "file names")) {
        for (std::size_t i = 0; i < arr->size(); ++i) {
            if (auto p = r.path_from(*arr->get(i), indexed(s.path_of("platform_cert_files"), i))) {
                m.platform_cert_files.push_back(std::move(*p));
            }
        }
    }
    m.app_secret_file = r.get_path(s, "app_secret_file", need::optional);
    if (auto v = r.get_url(s, "mp_api_base", url_rule::https_unless_loopback)) m.mp_api_base = std::move(*v);
    return m;
}

void read_merchants(reader& r, const toml::table& root, std::vector<merchant_config>& out) {
    if (r.failed()) return;
    const toml::node* node = root.get("merchants");
    const toml::array* arr = node ? node->as_array() : nullptr;
    if (node != nullptr && arr == nullptr)
        return r.wrong_type("merchants", *node, "an array of tables ([[merchants]])");
    if (arr == nullptr || arr->empty())
        return r.fail("merchants", "at least one [[merchants]] entry is required");
    for (std::size_t i = 0; i < arr->size(); ++i) {
        const std::string prefix = indexed("merchants", i);
        const toml::table* t = arr->get(i)->as_table();
        if (t == nullptr) return r.wrong_type(prefix, *arr->get(i), "a table");
        merchant_config m = read_merchant(r, scope{t, prefix});
        if (r.failed()) return;
        // Notifications and queries are routed by mchid; two entries would make the route ambiguous.
        for (std::size_t j = 0; j < out.size(); ++j) {
            if (out[j].mchid == m.mchid) {
                return r.fail(prefix + ".mchid", "duplicate mchid " + quote(m.mchid) + " (also in " +
                                                     indexed("merchants", j) + ")");
            }
        }
        out.push_back(std::move(m));
    }
}

}  // namespace

const merchant_config* config::find_merchant(std::string_view mchid) const noexcept {
    for (const auto& m : merchants) {
        if (m.mchid == mchid) return &m;
    }
    return nullptr;
}

result<config> parse_config(std::string_view toml_text, const path& source_file) {
    const std::string label = source_file.string();
    if (source_file.empty()) return make_error(errc::config_error, "config file path is empty");
    std::error_code ec;
    const path absolute_file = std::filesystem::absolute(source_file, ec).lexically_normal();
    if (ec) return make_error(errc::config_error, label + ": cannot make the path absolute: " + ec.message());

    toml::table root;
    try {
        root = toml::parse(toml_text, label);
    } catch (const toml::parse_error& e) {
        const auto& at = e.source().begin;
        return make_error(errc::config_error, label + ":" + std::to_string(at.line) + ":" +
                                                  std::to_string(at.column) + ": " +
                                                  std::string(e.description()));
    }

    config cfg;
    cfg.source_file = absolute_file;
    reader r(label, absolute_file.parent_path());
    r.reject_unknown(scope{&root, ""}, {"server", "admin", "api", "database", "poller", "alerts",
                                        "notifications", "bills", "app_events", "merchants"});
    read_server(r, r.section(root, "server"), cfg.server);
    read_admin(r, r.section(root, "admin"), cfg.admin);
    if (!r.failed() && root.contains("api")) {
        // [api] is optional as a whole, but once present its token is what protects it.
        cfg.api.emplace();
        read_api(r, r.section(root, "api"), *cfg.api);
    }
    read_database(r, r.section(root, "database"), cfg.database);
    read_poller(r, r.section(root, "poller"), cfg.poller);
    read_alerts(r, r.section(root, "alerts"), cfg.alerts);
    read_notifications(r, r.section(root, "notifications"), cfg.notifications);
    if (!r.failed() && root.contains("bills")) {
        cfg.bills.emplace();
        read_bills(r, r.section(root, "bills"), *cfg.bills);
    }
    if (!r.failed() && root.contains("app_events")) {
        cfg.app_events.emplace();
        read_app_events(r, r.section(root, "app_events"), *cfg.app_events);
    }
    read_merchants(r, root, cfg.merchants);
    if (r.failed()) return r.take_error();
    return cfg;
}

result<config> load_config(const path& file) {
    auto text = read_whole_file(file, max_config_bytes);
    if (!text)
        return make_error(errc::config_error,
                          file.string() + ": cannot read the config file: " + text.err().message);
    return parse_config(*text, file);
}

result<std::string> read_secret_file(const path& file, std::string_view key_name) {
    const std::string who = std::string(key_name) + ": " + quote(file.string());
    auto data = read_whole_file(file, max_secret_bytes);
    if (!data) return make_error(errc::config_error, who + ": cannot read: " + data.err().message);
    std::string secret = std::move(*data);
    text::strip_final_newline(secret);
    if (secret.empty()) return make_error(errc::config_error, who + ": the file is empty");
    return secret;
}

}  // namespace wxrecon::config
