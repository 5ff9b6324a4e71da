#include "workflow/order_api.hpp"

#include <simdjson.h>

#include <spdlog/spdlog.h>

#include <algorithm>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "base/encoding.hpp"
#include "base/json_writer.hpp"
#include "base/percent.hpp"
#include "base/time.hpp"
#include "protocol/request_payment.hpp"
#include "store/db_pool.hpp"
#include "store/prepay_store.hpp"
#include "workflow/api_reply.hpp"
#include "workflow/order_listing.hpp"

namespace wxrecon::workflow {

namespace {

constexpr double failures_per_second = 10;
constexpr double failure_burst = 20;
constexpr std::size_t failing_addresses = 4096;  // addresses remembered while they fail
constexpr auto database_deadline = std::chrono::seconds(5);
constexpr std::int64_t micros_per_second = 1'000'000;
// A prepay_id lives two hours (docs/protocol-notes.md §5.1); past this age a fresh one is asked for with the
// same request.
constexpr std::int64_t prepay_id_reuse_micros = 110LL * 60 * micros_per_second;
// WeChat Pay raises an earlier time_expire to now + 1 min; wxrecon would then disagree on the expiry.
constexpr std::int64_t min_time_to_expiry_micros = 60 * micros_per_second;

// The order JSON with one more member appended.
std::string with_member(std::string order_json, std::string_view key, std::string_view value_json) {
    order_json.pop_back();  // the closing brace
    order_json += ",\"";
    order_json += key;
    order_json += "\":";
    order_json += value_json;
    order_json += '}';
    return order_json;
}

// The request placing the order, built once from the stored order and kept for every retry.
store::stored_prepay build_prepay_request(const config::merchant_config& m,
                                          const std::string& public_base_url,
                                          const store::order_registration& r, const std::string& client_ip,
                                          const store::prepay_order& o) {
    store::stored_prepay p;
    p.appid = o.appid.empty() ? m.appid : o.appid;
    const std::string description = r.description.value_or(o.description.value_or(""));
    const std::string openid = r.payer_openid.value_or(o.payer_openid.value_or(""));
    const std::int64_t expire_unix = o.expire_at / micros_per_second;
    if (m.version == config::api_version::v3) {
        p.api_version = "v3";
        p.request = json_object()
                        .add("appid", p.appid)
                        .add("mchid", o.mchid)
                        .add("description", description)
                        .add("out_trade_no", o.out_trade_no)
                        .add("time_expire", format_rfc3339(expire_unix))
                        .add("notify_url", public_base_url + "/wxpay/v3/notify/" + o.mchid)
                        .add_raw("amount",
                                 json_object().add("total", o.amount_total).add("currency", o.currency).str())
                        .add_raw("payer", json_object().add("openid", openid).str())
                        .str();
    } else {
        p.api_version = "v2";
        const protocol::v2::fields f{{"appid", p.appid},
                                     {"body", description},
                                     {"out_trade_no", o.out_trade_no},
                                     {"total_fee", std::to_string(o.amount_total)},
                                     {"fee_type", o.currency},
                                     {"spbill_create_ip", client_ip},
                                     {"time_expire", protocol::v2::format_beijing_time(expire_unix)},
                                     {"notify_url", public_base_url + "/wxpay/v2/notify/" + o.mchid},
                                     {"trade_type", "JSAPI"},
                                     {"openid", openid},
                                     {"sign_type", m.apiv2_sign_md5 ? "MD5" : "HMAC-SHA256"}};
        p.request = protocol::v2::to_xml(f);
    }
    return p;
}

// Whether WeChat Pay may hold the order after a failed attempt. Only a request that provably never
// arrived, or one refused for its form, leaves the order unknown there; anything else keeps the
// poller from closing it locally as never placed.
bool may_be_placed(const wechat::call_result& r) {
    switch (r.outcome) {
        case wechat::call_outcome::unreachable:
            return r.sent;
        case wechat::call_outcome::rate_limited:
            return false;
        case wechat::call_outcome::rejected: {
            static constexpr std::string_view refused_for_form[] = {
                "PARAM_ERROR",     "SIGN_ERROR",      "SIGNERROR", "LACK_PARAMS", "APPID_MCHID_NOT_MATCH",
                "MCHID_NOT_EXIST", "APPID_NOT_EXIST", "NO_AUTH",   "NOAUTH",      "XML_FORMAT_ERROR",
                "INVALID_REQUEST"};
            return std::find(std::begin(refused_for_form), std::end(refused_for_form), r.code) ==
                   std::end(refused_for_form);
        }
        default:
            return true;
    }
}

std::optional<std::string> prepay_id_of(const wechat::call_result& r, bool v3) {
    if (!v3) {
        const std::string id = protocol::v2::field(r.fields, "prepay_id");
        return id.empty() ? std::nullopt : std::optional<std::string>(id);
    }
    simdjson::dom::parser parser;
    simdjson::padded_string padded(r.body);
    std::string_view id;
    if (parser.parse(padded)["prepay_id"].get(id) != simdjson::SUCCESS || id.empty()) return std::nullopt;
    return std::string(id);
}

// An openid in logs: enough to tell users apart, not enough to act as them.
std::string masked(std::string_view openid) {
    return openid.size() <= 8 ? std::string("***") : std::string(openid.substr(0, 6)) + "***";
}

}  // namespace

order_api::order_api(const config::config& cfg, std::string token, store::db_pool& pool, key_holder& keys,
                     wechat_clients& clients, poller& closer, refund_api& refunds, std::shared_ptr<metrics> m,
                     wall_clock clock)
    : cfg_(cfg),
      token_(std::move(token)),
      pool_(pool),
      keys_(keys),
      clients_(clients),
      closer_(closer),
      refunds_(refunds),
      metrics_(std::move(m)),
      clock_(std::move(clock)),
      auth_failures_(failures_per_second, failure_burst, failing_addresses) {}

bool order_api::authorized(const inbound_request& req) {
    const std::string_view header = req.header("Authorization");
    constexpr std::string_view scheme = "Bearer ";
    return header.starts_with(scheme) && constant_time_equal(header.substr(scheme.size()), token_);
}

boost::asio::awaitable<reply> order_api::handle(inbound_request& req) {
    if (!authorized(req)) {
        metrics_->add("wxrecon_api_auth_failures_total");
        if (!auth_failures_.take(req.remote_addr, std::chrono::steady_clock::now()))
            co_return json_error(429, "too many failed authentications from this address; retry later");
        co_return json_error(401, "missing or wrong bearer token");
    }
    const std::string_view path = req.path;
    std::string failure;
    bool database = false;
    try {
        if (path == "/api/v1/orders") {
            if (req.method == "GET") co_return co_await list_orders(pool_, req.query());
            if (req.method != "POST")
                co_return json_error(405, "POST /api/v1/orders registers an order, GET lists them");
            co_return co_await register_order(req);
        }
        if (path == "/api/v1/session") {
            if (req.method != "POST")
                co_return json_error(405, "POST /api/v1/session exchanges a login code");
            co_return co_await session(req);
        }
        constexpr std::string_view orders = "/api/v1/orders/";
        if (path.starts_with(orders)) {
            const std::string_view rest = path.substr(orders.size());
            const auto slash = rest.find('/');
            constexpr std::string_view close = "/close";
            const auto second = slash == std::string_view::npos ? slash : rest.find('/', slash + 1);
            if (second != std::string_view::npos && rest.substr(second) == close) {
                if (req.method != "POST") co_return json_error(405, "POST …/close closes an unpaid order");
                std::string mchid(rest.substr(0, slash)),
                    out_trade_no(rest.substr(slash + 1, second - slash - 1));
                co_return co_await close_order(std::move(mchid), std::move(out_trade_no));
            }
            if (slash != std::string_view::npos && req.method == "GET") {
                std::string mchid(rest.substr(0, slash)), out_trade_no(rest.substr(slash + 1));
                co_return co_await get_order(std::move(mchid), std::move(out_trade_no));
            }
        }
        if (path == "/api/v1/refunds") {
            if (req.method != "POST") co_return json_error(405, "POST /api/v1/refunds refunds a paid order");
            co_return co_await refunds_.create(req);
        }
        constexpr std::string_view refunds = "/api/v1/refunds/";
        if (path.starts_with(refunds) && req.method == "GET") {
            const std::string_view rest = path.substr(refunds.size());
            const auto slash = rest.find('/');
            if (slash != std::string_view::npos) {
                std::string mchid(rest.substr(0, slash)), out_refund_no(rest.substr(slash + 1));
                co_return co_await refunds_.get(std::move(mchid), std::move(out_refund_no));
            }
        }
        co_return json_error(404, "no such API endpoint");
    } catch (const std::exception& e) {
        failure = e.what();
        // The database is down, overloaded, too slow or refused the statement: retry later. Anything else
        // is a fault of ours, said as such and counted, not passed off as the database's.
        database = store::is_database_error(e);
    }
    if (database) co_return json_error(503, "database unavailable, retry: " + failure);
    spdlog::error("api: internal error path={} error={}", log_quote(req.path, 120), log_quote(failure));
    metrics_->add("wxrecon_internal_errors_total", {{"component", "api"}});
    co_return json_error(500, "internal error");
}

// The registration a request asks for, checked field by field; or the 400 (500) to answer with.
std::variant<reply, order_api::registration_request> order_api::read_registration(
    const inbound_request& req) const {
    simdjson::dom::parser parser;
    simdjson::padded_string padded(req.body);
    simdjson::dom::object body;
    if (parser.parse(padded).get(body) != simdjson::SUCCESS)
        return json_error(400, "body is not a JSON object");
    auto text = [&](std::string_view key) -> std::optional<std::string> {
        std::string_view v;
        if (body[key].get(v) != simdjson::SUCCESS) return std::nullopt;
        return std::string(v);
    };
    for (auto [key, value] : body) {
        static constexpr std::string_view known[] = {"mchid",        "out_trade_no", "amount_total",
                                                     "appid",        "description",  "currency",
                                                     "payer_openid", "expire_at",    "prepay"};
        if (std::find(std::begin(known), std::end(known), key) == std::end(known))
            return json_error(400, "unknown field " + std::string(key));
        (void)value;
    }
    store::order_registration r;
    r.mchid = text("mchid").value_or("");
    const config::merchant_config* merchant = cfg_.find_merchant(r.mchid);
    if (merchant == nullptr)
        return json_error(400, "mchid: no configured merchant has id \"" + r.mchid + "\"");
    r.out_trade_no = text("out_trade_no").value_or("");
    if (!domain::valid_out_trade_no(r.out_trade_no))
        return json_error(400, "out_trade_no: " + std::string(domain::out_trade_no_rule) + " required");
    std::int64_t amount = 0;
    if (body["amount_total"].get(amount) != simdjson::SUCCESS || amount <= 0)
        return json_error(400, "amount_total: a positive integer number of fen required");
    r.amount_total = amount;
    r.appid = text("appid").value_or(merchant->appid);
    r.currency = text("currency").value_or("CNY");
    if (r.currency.size() != 3 ||
        !std::all_of(r.currency.begin(), r.currency.end(), [](char c) { return c >= 'A' && c <= 'Z'; }))
        return json_error(400, "currency: three upper-case letters required, e.g. CNY");
    r.description = text("description");
    if (r.description && (r.description->size() > 384 || !is_valid_utf8(*r.description)))
        return json_error(400, "description: at most 127 characters of UTF-8");
    r.payer_openid = text("payer_openid");
    if (r.payer_openid && r.payer_openid->size() > 128)
        return json_error(400, "payer_openid: at most 128 characters");
    bool prepay = false;
    if (body["prepay"].error() != simdjson::NO_SUCH_FIELD && body["prepay"].get(prepay) != simdjson::SUCCESS)
        return json_error(400, "prepay: true or false required");
    if (prepay) {
        if (!r.payer_openid || r.payer_openid->empty())
            return json_error(400, "payer_openid: required with prepay (the payer's openid under the appid)");
        if (!r.description || r.description->empty())
            return json_error(400, "description: required with prepay (shown in the payer's bill)");
        if (cfg_.server.public_base_url.empty())
            return json_error(500,
                              "server.public_base_url is not configured; prepay needs it for notify_url");
    }
    if (const auto expire = text("expire_at")) {
        const auto t = parse_rfc3339(*expire);
        if (!t) return json_error(400, "expire_at: " + t.err().message);
        r.expire_at = *t * 1'000'000;
    } else {
        r.expire_at =
            clock_.micros() +
            std::chrono::duration_cast<std::chrono::microseconds>(cfg_.poller.default_expiry).count();
    }
    // An offset from the row's created_at (the database's clock), so the poller's own reckoning from
    // created_at finds the order due when it is first claimed.
    const domain::micros now = clock_.micros();
    r.first_poll_after = closer_.first_due(*merchant, now, r.expire_at) - now;
    return registration_request{std::move(r), merchant, prepay};
}

boost::asio::awaitable<reply> order_api::register_order(const inbound_request& req) {
    auto read = read_registration(req);
    if (auto* refused = std::get_if<reply>(&read)) co_return std::move(*refused);
    auto& [r, merchant, prepay] = std::get<registration_request>(read);
    const auto result =
        co_await store::register_order(pool_, r, std::chrono::steady_clock::now() + database_deadline);
    if (result.outcome == store::registration_outcome::created)
        metrics_->add("wxrecon_orders_registered_total");
    if (prepay && result.outcome != store::registration_outcome::conflict) {
        const int status = result.outcome == store::registration_outcome::created ? 201 : 200;
        co_return co_await this->prepay(*merchant, std::move(r), status, req.remote_addr);
    }
    switch (result.outcome) {
        case store::registration_outcome::created:
            co_return reply{201, "application/json", result.order_json};
        case store::registration_outcome::same:
        case store::registration_outcome::adopted:
            co_return reply{200, "application/json", result.order_json};
        case store::registration_outcome::conflict:
            co_return json_error(
                409,
                result.conflict + ": the order is already registered with a different " + result.conflict);
    }
    co_return json_error(500, "unexpected registration outcome");
}

boost::asio::awaitable<reply> order_api::get_order(std::string mchid, std::string out_trade_no) {
    const auto json = co_await store::order_json(pool_, mchid, out_trade_no,
                                                 std::chrono::steady_clock::now() + database_deadline);
    if (!json) co_return json_error(404, "no order " + out_trade_no + " for merchant " + mchid);
    co_return reply{200, "application/json", *json};
}

boost::asio::awaitable<reply> order_api::close_order(std::string mchid, std::string out_trade_no) {
    poller::out_of_turn_result closed;
    // The poller may be querying it this moment: wait a little for its lease rather than fail at once.
    for (int attempt = 0;; ++attempt) {
        closed = co_await closer_.close_now(mchid, out_trade_no);
        if (closed.outcome != poller::out_of_turn_outcome::busy || attempt == 20) break;
        const auto executor = co_await boost::asio::this_coro::executor;
        boost::asio::steady_timer pause(executor, std::chrono::milliseconds(100));
        co_await pause.async_wait(boost::asio::use_awaitable);
    }
    if (closed.outcome == poller::out_of_turn_outcome::unknown_order)
        co_return json_error(404, "no order " + out_trade_no + " for merchant " + mchid);
    if (closed.outcome == poller::out_of_turn_outcome::busy)
        co_return json_error(503, "the order is being queried at WeChat Pay; retry");
    const auto json = co_await store::order_json(pool_, mchid, out_trade_no,
                                                 std::chrono::steady_clock::now() + database_deadline);
    if (!json) co_return json_error(404, "no order " + out_trade_no + " for merchant " + mchid);
    simdjson::dom::parser parser;
    const simdjson::padded_string padded(*json);
    const std::string state(parser.parse(padded)["state"].get_string().value());
    spdlog::info("api: close mchid={} out_trade_no={} state={}{}", mchid, out_trade_no, state,
                 closed.error.empty() ? "" : " error=" + log_quote(closed.error));
    if (state == "CLOSED") co_return reply{200, "application/json", *json};
    if (state != "NOTPAY" && state != "USERPAYING")
        co_return json_error(409,
                             "order " + out_trade_no + " is " + state + ": only an unpaid order is closed");
    if (!closed.error.empty())
        co_return json_error(502, "closing at WeChat Pay failed (" + closed.error +
                                      "); the order expires now and wxrecond keeps trying");
    // Still open without an error: an APIv2 order in its first 5 minutes, closed once WeChat Pay allows.
    co_return reply{202, "application/json", *json};
}

boost::asio::awaitable<reply> order_api::prepay(const config::merchant_config& m, store::order_registration r,
                                                int status_when_placed, std::string client_ip) {
    const std::string mchid = r.mchid, out_trade_no = r.out_trade_no;
    auto build = [&m, r, ip = std::move(client_ip), base = cfg_.server.public_base_url](
                     const store::prepay_order& o) { return build_prepay_request(m, base, r, ip, o); };
    const auto start = co_await store::begin_prepay(pool_, mchid, out_trade_no, std::move(build),
                                                    std::chrono::steady_clock::now() + database_deadline);
    if (!start) co_return json_error(404, "no order " + out_trade_no + " for merchant " + mchid);
    const std::string state(domain::to_string(start->state));
    if (start->state == domain::trade_state::success || start->state == domain::trade_state::refund)
        co_return json_error(409, "the order is already paid (" + state + "); it cannot be paid again");
    if (start->state != domain::trade_state::notpay && start->state != domain::trade_state::userpaying)
        co_return json_error(409, "the order is " + state + "; register a new out_trade_no to take payment");
    const std::int64_t now = clock_.micros();
    if (start->expire_at - now < min_time_to_expiry_micros)
        co_return json_error(409, "the order expires at " +
                                      format_rfc3339(start->expire_at / micros_per_second) +
                                      ", too soon to take payment; register a new out_trade_no");

    const auto keys = keys_.get();  // held for the whole call: the access below points into it
    const config::merchant_keys* mk = keys->find(mchid);
    if (mk == nullptr) co_return json_error(500, "no key material is loaded for merchant " + mchid);
    const bool v3 = start->prepay.api_version == "v3";
    // APIv2: the stored fields, and the algorithm they were signed with, which the paySign must use too
    // (docs/protocol-notes.md §7.4).
    protocol::v2::fields v2_fields;
    auto v2_type = protocol::v2::sign_type::hmac_sha256;
    if (!v3) {
        auto parsed = protocol::v2::parse_xml(start->prepay.request);
        if (!parsed)
            co_return json_error(500, "the stored prepay request does not parse: " + parsed.err().message);
        v2_fields = std::move(*parsed);
        if (protocol::v2::field(v2_fields, "sign_type") == "MD5") v2_type = protocol::v2::sign_type::md5;
    }

    std::string order_json;
    std::optional<std::string> prepay_id;
    if (start->prepay.prepay_id && start->prepay.prepaid_at &&
        now - *start->prepay.prepaid_at < prepay_id_reuse_micros) {
        prepay_id = start->prepay.prepay_id;
        order_json = (co_await store::order_json(pool_, mchid, out_trade_no,
                                                 std::chrono::steady_clock::now() + database_deadline))
                         .value_or("{}");
    } else {
        placement placed = co_await place(m, *mk, mchid, out_trade_no, start->prepay.request,
                                          std::move(v2_fields), v2_type, v3);
        if (!placed.prepay_id) co_return std::move(placed.failure);
        prepay_id = std::move(placed.prepay_id);
        order_json = std::move(placed.order_json);
    }

    const std::int64_t now_unix = clock_.seconds();
    std::string payment_json;
    if (v3) {
        auto p = protocol::sign_request_payment_v3(mk->merchant_private_key, start->prepay.appid, *prepay_id,
                                                   now_unix, crypto::random_alnum(32));
        if (!p) co_return json_error(500, "cannot sign the payment parameters: " + p.err().message);
        payment_json = p->json();
    } else {
        payment_json =
            protocol::sign_request_payment_v2(mk->apiv2_key.value_or(""), v2_type, start->prepay.appid,
                                              *prepay_id, now_unix, crypto::random_alnum(32))
                .json();
    }
    co_return reply{status_when_placed, "application/json",
                    with_member(std::move(order_json), "request_payment", payment_json)};
}

boost::asio::awaitable<order_api::placement> order_api::place(const config::merchant_config& m,
                                                              const config::merchant_keys& mk,
                                                              std::string mchid, std::string out_trade_no,
                                                              std::string v3_request,
                                                              protocol::v2::fields v2_fields,
                                                              protocol::v2::sign_type v2_type, bool v3) {
    const wechat::merchant_access access = merchant_access_for(m, mk);
    wechat::pay_client& client = clients_.pay(m);
    const auto sent_at = std::chrono::steady_clock::now();
    wechat::call_result answer;
    if (v3) {
        std::string method = "POST", path = "/v3/pay/transactions/jsapi";
        answer = co_await client.v3(access, std::move(method), std::move(path), std::move(v3_request),
                                    wechat::retry_safety::once_only);
    } else {
        std::string path = "/pay/unifiedorder";
        answer = co_await client.v2(access, std::move(path), std::move(v2_fields), v2_type,
                                    wechat::retry_safety::once_only);
    }
    const auto latency =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sent_at);
    store::prepay_attempt attempt;
    if (answer.outcome == wechat::call_outcome::ok) attempt.prepay_id = prepay_id_of(answer, v3);
    attempt.placed = attempt.prepay_id.has_value() || may_be_placed(answer);
    const std::string code =
        answer.code.empty() ? std::string(wechat::to_string(answer.outcome)) : answer.code;
    const std::string message = answer.message.empty() ? answer.error : answer.message;
    if (!attempt.prepay_id) attempt.error = code + ": " + message;
    placement out;
    out.prepay_id = attempt.prepay_id;
    const std::optional<std::string> error = attempt.error;
    out.order_json = co_await store::record_prepay(pool_, mchid, out_trade_no, std::move(attempt),
                                                   std::chrono::steady_clock::now() + database_deadline);
    metrics_->add("wxrecon_prepay_total",
                  {{"api", v3 ? "v3" : "v2"}, {"result", out.prepay_id ? "ok" : "failed"}});
    spdlog::info("prepay: mchid={} out_trade_no={} api={} result={} latency_ms={:.1f}{}", mchid, out_trade_no,
                 v3 ? "v3" : "v2", out.prepay_id ? "ok" : "failed", latency.count(),
                 error ? " error=" + log_quote(*error) : std::string());
    if (!out.prepay_id) {
        out.failure = reply{502, "application/json",
                            json_object()
                                .add("error",
                                     "WeChat Pay did not place the order (the order stays registered; "
                                     "retrying with the same body is safe): " +
                                         *error)
                                .add("code", code)
                                .add("message", message)
                                .str()};
    }
    co_return out;
}

boost::asio::awaitable<reply> order_api::session(const inbound_request& req) {
    simdjson::dom::parser parser;
    simdjson::padded_string padded(req.body);
    simdjson::dom::object body;
    if (parser.parse(padded).get(body) != simdjson::SUCCESS)
        co_return json_error(400, "body is not a JSON object");
    std::string_view appid_view, code_view;
    if (body["appid"].get(appid_view) != simdjson::SUCCESS || appid_view.empty())
        co_return json_error(400, "appid: the mini program's appid required");
    if (body["code"].get(code_view) != simdjson::SUCCESS || code_view.empty() || code_view.size() > 128)
        co_return json_error(400, "code: the login code from wx.login required (at most 128 characters)");
    const std::string appid(appid_view), code(code_view);
    const auto keys = keys_.get();
    const config::merchant_config* merchant = nullptr;
    const config::merchant_keys* mk = nullptr;
    for (const auto& m : cfg_.merchants) {
        if (m.appid != appid) continue;
        merchant = &m;
        mk = keys->find(m.mchid);
        if (mk != nullptr && mk->app_secret) break;
    }
    if (merchant == nullptr)
        co_return json_error(400, "appid: no configured merchant has appid \"" + appid + "\"");
    if (mk == nullptr || !mk->app_secret)
        co_return json_error(500,
                             "app_secret_file is not configured for appid " + appid + "; sessions need it");

    net::outbound_request out;
    out.method = "GET";
    out.url = merchant->mp_api_base + "/sns/jscode2session?appid=" + percent_encode(appid) +
              "&secret=" + percent_encode(*mk->app_secret) + "&js_code=" + percent_encode(code) +
              "&grant_type=authorization_code";
    const net::exchange ex = co_await clients_.plain(*merchant).send(std::move(out));
    if (!ex.response || ex.response->status != 200) {
        const std::string why = ex.response ? "HTTP " + std::to_string(ex.response->status) : ex.error;
        spdlog::warn("session: jscode2session failed appid={} error={}", appid, log_quote(why));
        co_return json_error(502, "jscode2session did not answer: " + why);
    }
    simdjson::dom::parser answer_parser;
    simdjson::padded_string answer_text(ex.response->body);
    simdjson::dom::object answer;
    if (answer_parser.parse(answer_text).get(answer) != simdjson::SUCCESS)
        co_return json_error(502, "jscode2session answered with something that is not JSON");
    std::int64_t errcode = 0;
    if (answer["errcode"].get(errcode) == simdjson::SUCCESS && errcode != 0) {
        std::string_view errmsg;
        if (answer["errmsg"].get(errmsg) != simdjson::SUCCESS) errmsg = "no errmsg";
        spdlog::info("session: refused appid={} errcode={}", appid, errcode);
        co_return reply{400, "application/json",
                        json_object()
                            .add("error", "jscode2session refused the code: " + std::string(errmsg))
                            .add("errcode", errcode)
                            .add("errmsg", errmsg)
                            .str()};
    }
    std::string_view openid, unionid;
    if (answer["openid"].get(openid) != simdjson::SUCCESS || openid.empty())
        co_return json_error(502, "jscode2session answered without an openid");
    json_object result;
    result.add("openid", openid);
    if (answer["unionid"].get(unionid) == simdjson::SUCCESS && !unionid.empty())
        result.add("unionid", unionid);
    spdlog::info("session: appid={} openid={}", appid,
                 masked(openid));  // session_key is dropped here, never kept
    co_return reply{200, "application/json", result.str()};
}

}  // namespace wxrecon::workflow
