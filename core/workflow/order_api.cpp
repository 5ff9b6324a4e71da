#include "workflow/order_api.hpp"

#include <simdjson.h>

#include <algorithm>

#include "base/encoding.hpp"
#include "base/json_writer.hpp"
#include "base/time.hpp"
#include "store/db_pool.hpp"
#include "store/order_store.hpp"

namespace wxrecon::workflow {

namespace {

constexpr double failures_per_second = 10;
constexpr double failure_burst = 20;
constexpr auto database_deadline = std::chrono::seconds(5);

reply json_error(int status, std::string_view message) {
    return reply{status, "application/json", json_object().add("error", message).str()};
}

bool valid_out_trade_no(std::string_view s) {
    return !s.empty() && s.size() <= 32 && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '|' || c == '*';
    });
}

std::int64_t now_micros() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

order_api::order_api(const config::config& cfg, std::string token, store::db_pool& pool, std::shared_ptr<metrics> m)
    : cfg_(cfg), token_(std::move(token)), pool_(pool), metrics_(std::move(m)) {}

bool order_api::authorized(const inbound_request& req) {
    const std::string_view header = req.header("Authorization");
    constexpr std::string_view scheme = "Bearer ";
    return header.starts_with(scheme) && constant_time_equal(header.substr(scheme.size()), token_);
}

boost::asio::awaitable<reply> order_api::handle(inbound_request& req) {
    const auto now = std::chrono::steady_clock::now();
    failure_tokens_ = std::min(failure_burst, failure_tokens_ + std::chrono::duration<double>(now - failure_refill_).count() *
                                                                    failures_per_second);
    failure_refill_ = now;
    if (failure_tokens_ < 1) co_return json_error(429, "too many failed authentications; retry later");
    if (!authorized(req)) {
        failure_tokens_ -= 1;
        metrics_->add("wxrecon_api_auth_failures_total");
        co_return json_error(401, "missing or wrong bearer token");
    }
    const std::string_view path = req.path;
    std::string failure;
    try {
        if (path == "/api/v1/orders") {
            if (req.method != "POST") co_return json_error(405, "POST /api/v1/orders registers an order");
            co_return co_await register_order(req);
        }
        constexpr std::string_view orders = "/api/v1/orders/";
        if (path.starts_with(orders)) {
            const std::string_view rest = path.substr(orders.size());
            const auto slash = rest.find('/');
            if (slash != std::string_view::npos && req.method == "GET") {
                std::string mchid(rest.substr(0, slash)), out_trade_no(rest.substr(slash + 1));
                co_return co_await get_order(std::move(mchid), std::move(out_trade_no));
            }
        }
        co_return json_error(404, "no such API endpoint");
    } catch (const std::exception& e) {
        failure = e.what();  // the database is down, overloaded or too slow: nothing was registered for sure
    }
    co_return json_error(503, "database unavailable, retry: " + failure);
}

boost::asio::awaitable<reply> order_api::register_order(const inbound_request& req) {
    simdjson::dom::parser parser;
    simdjson::padded_string padded(req.body);
    simdjson::dom::object body;
    if (parser.parse(padded).get(body) != simdjson::SUCCESS) co_return json_error(400, "body is not a JSON object");
    auto text = [&](std::string_view key) -> std::optional<std::string> {
        std::string_view v;
        if (body[key].get(v) != simdjson::SUCCESS) return std::nullopt;
        return std::string(v);
    };
    for (auto [key, value] : body) {
        static constexpr std::string_view known[] = {"mchid", "out_trade_no", "amount_total", "appid", "description",
                                                     "currency", "payer_openid", "expire_at", "prepay"};
        if (std::find(std::begin(known), std::end(known), key) == std::end(known))
            co_return json_error(400, "unknown field " + std::string(key));
        (void)value;
    }
    store::order_registration r;
    r.mchid = text("mchid").value_or("");
    const config::merchant_config* merchant = cfg_.find_merchant(r.mchid);
    if (merchant == nullptr) co_return json_error(400, "mchid: no configured merchant has id \"" + r.mchid + "\"");
    r.out_trade_no = text("out_trade_no").value_or("");
    if (!valid_out_trade_no(r.out_trade_no))
        co_return json_error(400, "out_trade_no: 1 to 32 characters of [0-9A-Za-z_-|*] required");
    std::int64_t amount = 0;
    if (body["amount_total"].get(amount) != simdjson::SUCCESS || amount <= 0)
        co_return json_error(400, "amount_total: a positive integer number of fen required");
    r.amount_total = amount;
    r.appid = text("appid").value_or(merchant->appid);
    r.currency = text("currency").value_or("CNY");
    if (r.currency.size() != 3 || !std::all_of(r.currency.begin(), r.currency.end(), [](char c) { return c >= 'A' && c <= 'Z'; }))
        co_return json_error(400, "currency: three upper-case letters required, e.g. CNY");
    r.description = text("description");
    if (r.description && (r.description->size() > 384 || !is_valid_utf8(*r.description)))
        co_return json_error(400, "description: at most 127 characters of UTF-8");
    r.payer_openid = text("payer_openid");
    if (r.payer_openid && r.payer_openid->size() > 128) co_return json_error(400, "payer_openid: at most 128 characters");
    bool prepay = false;
    if (body["prepay"].get(prepay) == simdjson::SUCCESS && prepay)
        co_return json_error(501, "prepay: placing orders at WeChat Pay is not available yet; register without it");
    if (const auto expire = text("expire_at")) {
        const auto t = parse_rfc3339(*expire);
        if (!t) co_return json_error(400, "expire_at: " + t.err().message);
        r.expire_at = *t * 1'000'000;
    } else {
        r.expire_at = now_micros() + std::chrono::duration_cast<std::chrono::microseconds>(cfg_.poller.default_expiry).count();
    }
    auto job = [r](pqxx::connection_base& c) { return store::register_order(c, r); };
    const auto result = co_await pool_.run<store::registration_result>(std::move(job),
                                                                        std::chrono::steady_clock::now() + database_deadline);
    switch (result.outcome) {
        case store::registration_outcome::created: co_return reply{201, "application/json", result.order_json};
        case store::registration_outcome::same:
        case store::registration_outcome::adopted: co_return reply{200, "application/json", result.order_json};
        case store::registration_outcome::conflict:
            co_return json_error(409, result.conflict + ": the order is already registered with a different " +
                                          result.conflict);
    }
    co_return json_error(500, "unexpected registration outcome");
}

boost::asio::awaitable<reply> order_api::get_order(std::string mchid, std::string out_trade_no) {
    auto job = [mchid, out_trade_no](pqxx::connection_base& c) { return store::order_json(c, mchid, out_trade_no); };
    const auto json = co_await pool_.run<std::optional<std::string>>(std::move(job),
                                                                      std::chrono::steady_clock::now() + database_deadline);
    if (!json) co_return json_error(404, "no order " + out_trade_no + " for merchant " + mchid);
    co_return reply{200, "application/json", *json};
}

}  // namespace wxrecon::workflow
