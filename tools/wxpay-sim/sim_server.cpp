#include "sim_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <optional>

#include "base/encoding.hpp"
#include "base/json_writer.hpp"
#include "base/time.hpp"
#include "protocol/v3.hpp"
#include "sim_wire.hpp"

namespace wxrecon::sim {

namespace asio = boost::asio;
using domain::refund_status;
using domain::trade_state;
namespace v2 = protocol::v2;

// A JSON object from a request body (control and APIv3 bodies), or the reason it is not one.
struct json_body {
    simdjson::dom::parser parser;
    simdjson::dom::object object;
    std::string error;

    explicit json_body(std::string_view text) {
        simdjson::padded_string padded(text);
        if (parser.parse(padded).get(object) != simdjson::SUCCESS) error = "body is not a JSON object";
    }
    std::optional<std::string> str(std::string_view key) const {
        std::string_view v;
        if (object.at_key(key).get(v) != simdjson::SUCCESS) return std::nullopt;
        return std::string(v);
    }
    std::optional<std::int64_t> integer(std::string_view key) const {
        std::int64_t v = 0;
        if (object.at_key(key).get(v) != simdjson::SUCCESS) return std::nullopt;
        return v;
    }
    std::optional<bool> boolean(std::string_view key) const {
        bool v = false;
        if (object.at_key(key).get(v) != simdjson::SUCCESS) return std::nullopt;
        return v;
    }
    std::optional<std::int64_t> nested_integer(std::string_view outer, std::string_view key) const {
        simdjson::dom::object o;
        if (object.at_key(outer).get(o) != simdjson::SUCCESS) return std::nullopt;
        std::int64_t v = 0;
        if (o.at_key(key).get(v) != simdjson::SUCCESS) return std::nullopt;
        return v;
    }
    std::optional<std::string> nested_str(std::string_view outer, std::string_view key) const {
        simdjson::dom::object o;
        if (object.at_key(outer).get(o) != simdjson::SUCCESS) return std::nullopt;
        std::string_view v;
        if (o.at_key(key).get(v) != simdjson::SUCCESS) return std::nullopt;
        return std::string(v);
    }
};

namespace {

// Runs f on the signing pool and resumes the caller on its own executor.
template <class F>
asio::awaitable<std::optional<std::invoke_result_t<F>>> on_pool(asio::thread_pool& pool, F f) {
    using value = std::optional<std::invoke_result_t<F>>;
    auto task = [f = std::move(f)]() -> asio::awaitable<value> { co_return value(f()); };
    co_return co_await asio::co_spawn(pool, std::move(task), asio::use_awaitable);
}

reply json_reply(int status, std::string body) { return reply{status, "application/json", std::move(body)}; }

reply control_error(int status, std::string_view message) {
    return json_reply(status, json_object().add("error", message).str());
}

reply v2_reply(const v2::fields& f) { return reply{200, "application/xml", v2::to_xml(f)}; }

std::string query_param(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        const auto eq = pair.find('=');
        if (pair.substr(0, eq) == name) return eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1));
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    return {};
}

std::string uuid_from(std::uint64_t a, std::uint64_t b) {
    const std::string hex = hex_lower(std::string(reinterpret_cast<const char*>(&a), 8) +
                                      std::string(reinterpret_cast<const char*>(&b), 8));
    return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" + hex.substr(16, 4) + "-" +
           hex.substr(20, 12);
}

bool is_success_refund(std::string_view s) { return s == "SUCCESS" || s == "ABNORMAL" || s == "CLOSED"; }

}  // namespace

simulator::simulator(asio::io_context& io, sim_keys keys, sim_options options)
    : io_(io),
      keys_(std::move(keys)),
      options_(std::move(options)),
      model_(options_.seed, options_.max_orders),
      signers_(static_cast<std::size_t>(std::max(1, options_.signing_threads))),
      started_(std::chrono::steady_clock::now()) {
    for (auto& m : keys_.merchants) {
        merchant_state s;
        s.keys = &m;
        s.variants = pick_variants(options_.seed, m.mchid);
        merchants_.emplace(m.mchid, s);
    }
    auto forger = crypto::generate_rsa_key();
    if (!forger) throw std::runtime_error("cannot make the forger's key: " + forger.err().message);
    forger_key_ = *forger;
    net::client_options copts;
    copts.exchange_timeout = options_.notify_timeout;
    // Every delivery slot may keep its connection: fewer would reconnect for most notifications.
    copts.max_idle_per_host = static_cast<std::size_t>(std::max(1, options_.delivery_concurrency));
    copts.user_agent = "wxpay-sim/" WXRECON_VERSION;
    client_ = std::make_unique<net::http_client>(io_.get_executor(), copts);
}

simulator::~simulator() { signers_.join(); }

void simulator::start() {
    net::http_limits limits;
    limits.max_body_bytes = 256 * 1024;
    limits.max_connections = 4096;
    std::shared_ptr<asio::ssl::context> tls;
    if (options_.tls) {
        tls = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
        tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                         asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
        const std::string chain = keys_.server_cert_pem + keys_.ca_cert_pem;
        tls->use_certificate_chain(asio::buffer(chain));
        tls->use_private_key(asio::buffer(keys_.server_key_pem), asio::ssl::context::pem);
    }
    server_ = std::make_unique<net::http_server>(
        io_.get_executor(), net::parse_endpoint(options_.listen), limits,
        [this](inbound_request& r) { return handle(r); },
        [](std::string_view) { return json_reply(413, v3_error_body("PARAM_ERROR", "request body too large")); },
        "sim", net::http_observer{}, tls);
    server_->start();
}

asio::ip::tcp::endpoint simulator::endpoint() const { return server_->local_endpoint(); }

asio::awaitable<void> simulator::shutdown() {
    stopping_ = true;
    for (auto* waiter : slot_waiters_) waiter->cancel();
    slot_waiters_.clear();
    if (server_) co_await server_->shutdown(std::chrono::milliseconds(500));
    client_->close_idle();
}

simulator::merchant_state* simulator::merchant(std::string_view mchid) {
    const auto it = merchants_.find(mchid);
    return it == merchants_.end() ? nullptr : &it->second;
}

std::int64_t simulator::now() const {
    return options_.clock.seconds();
}

std::int64_t simulator::elapsed_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_).count();
}

std::chrono::milliseconds simulator::scaled(std::int64_t ms) const {
    return std::chrono::milliseconds(static_cast<std::int64_t>(static_cast<double>(ms) * options_.time_scale));
}

bool simulator::draw(std::string_view what, std::string_view subject, std::uint64_t n, double rate) const {
    return rate > 0 && seeded_draw(options_.seed, what, subject, n) < rate;
}

asio::awaitable<reply> simulator::handle(inbound_request& req) {
    if (req.path.starts_with("/v3/")) co_return co_await handle_v3(req);
    if (req.path.starts_with("/pay/") || req.path.starts_with("/secapi/pay/")) co_return co_await handle_v2(req);
    if (req.path == "/sns/jscode2session") co_return handle_login(req);
    if (req.path.starts_with("/sim/")) co_return co_await handle_control(req);
    co_return json_reply(404, v3_error_body("NOT_FOUND", "no such endpoint"));
}

// ---------------------------------------------------------------- APIv3

asio::awaitable<reply> simulator::handle_v3(inbound_request& req) {
    const auto auth = protocol::v3::parse_authorization(req.header("Authorization"));
    if (!auth) co_return json_reply(401, v3_error_body("SIGN_ERROR", auth.err().message));
    merchant_state* m = merchant(auth->mchid);
    if (m == nullptr) co_return json_reply(401, v3_error_body("SIGN_ERROR", "商户号不存在: " + auth->mchid));
    if (auth->serial_no != m->keys->merchant_serial) {
        co_return co_await v3_signed(*m, req, 401,
                                     v3_error_body("SIGN_ERROR", "证书序列号错误: " + auth->serial_no));
    }
    const auto verdict =
        protocol::v3::verify_request(*auth, req.method, req.target, req.body, m->keys->merchant_key, now());
    if (!verdict) {
        const std::string message = verdict.err().code == errc::stale_timestamp
                                        ? "Http头Authorization中的timestamp与发起请求的时间不得超过5分钟"
                                        : "签名错误: " + verdict.err().message;
        co_return co_await v3_signed(*m, req, 401, v3_error_body("SIGN_ERROR", message));
    }
    const std::uint64_t call = ++m->api_calls;
    const std::string& subject = m->keys->mchid;
    const std::uint64_t log_id = log_call(m->keys->mchid, "v3", req.method + " " + req.path).id;
    if (draw("fault.query_slow", subject, call, m->faults.query_slow)) {
        asio::steady_timer slow(io_, std::chrono::milliseconds(m->faults.slow_ms));
        co_await slow.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    if (draw("fault.query_429", subject, call, m->faults.query_429)) {
        end_call(log_id, 429);
        const char* code = m->variants.alt_rate_limit_spelling ? "RATELIMIT_EXCEEDED" : "FREQUENCY_LIMITED";
        co_return co_await v3_signed(*m, req, 429, v3_error_body(code, "请求频率超过限制"));
    }
    if (draw("fault.query_500", subject, call, m->faults.query_500)) {
        end_call(log_id, 500);
        const char* code = m->variants.old_system_error_spelling ? "SYSTEMERROR" : "SYSTEM_ERROR";
        co_return co_await v3_signed(*m, req, 500, v3_error_body(code, "系统错误"));
    }

    constexpr std::string_view by_out_trade_no = "/v3/pay/transactions/out-trade-no/";
    constexpr std::string_view refunds = "/v3/refund/domestic/refunds";
    std::pair<int, std::string> out{404, v3_error_body("NOT_FOUND", "no such endpoint")};
    const std::string_view path = req.path;
    if (req.method == "POST" && path == "/v3/pay/transactions/jsapi") {
        out = v3_prepay(*m, req.body);
    } else if (req.method == "GET" &&
               (path.starts_with(by_out_trade_no) || path.starts_with("/v3/pay/transactions/id/")) &&
               path.find('/', path.starts_with(by_out_trade_no) ? by_out_trade_no.size() : 24) == std::string_view::npos) {
        out = v3_query(*m, req);
    } else if (req.method == "POST" && path.starts_with(by_out_trade_no) && path.ends_with("/close")) {
        const std::string_view no = path.substr(by_out_trade_no.size(), path.size() - by_out_trade_no.size() - 6);
        out = v3_close(*m, no, req.body);
    } else if (req.method == "POST" && path == refunds) {
        out = v3_refund(*m, req.body);
    } else if (req.method == "GET" && path.starts_with(refunds) && path.size() > refunds.size() + 1 &&
               path[refunds.size()] == '/') {
        out = v3_refund_query(*m, path.substr(refunds.size() + 1));
    } else if (req.method == "GET" && path == "/v3/certificates") {
        out = v3_certificates(*m);
    }
    end_call(log_id, out.first);
    co_return co_await v3_signed(*m, req, out.first, std::move(out.second));
}

asio::awaitable<reply> simulator::v3_signed(merchant_state& m, const inbound_request& req, int status,
                                            std::string body) {
    const sim_merchant& k = *m.keys;
    const bool use_public_key = k.mode == key_mode::public_key ||
                                (k.mode == key_mode::mixed && req.header("Wechatpay-Serial").starts_with("PUB_KEY_ID_"));
    const platform_certificate& cert = k.certificates.at(m.answers_sign_with.value_or(k.certificates.size() - 1));
    const crypto::private_key key = use_public_key ? k.public_key_signer : cert.key;
    const std::string serial = use_public_key ? k.public_key_id : cert.serial;
    const std::int64_t at = now();
    const std::string signed_body = body;
    // Named, not a temporary inside co_await: GCC 12 mishandles those in coroutines.
    auto job = [signed_body, key, serial, at] { return protocol::v3::sign_message(signed_body, key, serial, at); };
    auto sig = co_await on_pool(signers_, std::move(job));
    reply r{status, body.empty() ? "" : "application/json", std::move(body)};
    r.headers.emplace_back("Request-ID", uuid_from(seeded_hash(options_.seed, "request", k.mchid, m.api_calls),
                                                   static_cast<std::uint64_t>(elapsed_ms())));
    if (!sig || !*sig) co_return r;  // cannot happen with a loaded key; answer unsigned rather than crash
    std::string signature = (*sig)->signature;
    if (status >= 200 && status < 300 &&
        draw("fault.bad_response_signature", k.mchid, m.api_calls, m.faults.bad_response_signature)) {
        signature = base64_encode(crypto::random_bytes(256));
    }
    r.headers.emplace_back("Wechatpay-Timestamp", (*sig)->timestamp);
    r.headers.emplace_back("Wechatpay-Nonce", (*sig)->nonce);
    r.headers.emplace_back("Wechatpay-Signature", signature);
    r.headers.emplace_back("Wechatpay-Serial", serial);
    r.headers.emplace_back("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048");
    co_return r;
}

std::pair<int, std::string> simulator::v3_not_found(merchant_state& m) {
    return {404, v3_error_body(m.variants.old_not_found_spelling ? "ORDERNOTEXIST" : "ORDER_NOT_EXIST", "订单不存在")};
}

std::pair<int, std::string> simulator::v3_prepay(merchant_state& m, std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return {400, v3_error_body("PARAM_ERROR", j.error)};
    order_request r;
    r.mchid = j.str("mchid").value_or("");
    r.appid = j.str("appid").value_or("");
    r.description = j.str("description").value_or("");
    r.out_trade_no = j.str("out_trade_no").value_or("");
    r.notify_url = j.str("notify_url").value_or("");
    r.attach = j.str("attach").value_or("");
    r.openid = j.nested_str("payer", "openid").value_or("");
    r.amount_total = j.nested_integer("amount", "total").value_or(0);
    for (const auto& [name, value] : {std::pair{"mchid", &r.mchid}, std::pair{"appid", &r.appid},
                                      std::pair{"description", &r.description}, std::pair{"out_trade_no", &r.out_trade_no},
                                      std::pair{"notify_url", &r.notify_url}, std::pair{"payer.openid", &r.openid}}) {
        if (value->empty()) return {400, v3_error_body("PARAM_ERROR", std::string("缺少参数 ") + name)};
    }
    if (r.mchid != m.keys->mchid) return {400, v3_error_body("PARAM_ERROR", "mchid does not match the Authorization header")};
    if (r.appid != m.keys->appid) return {400, v3_error_body("APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")};
    if (r.description.size() > 127 * 3) return {400, v3_error_body("PARAM_ERROR", "description too long")};
    if (!r.notify_url.starts_with("http://") && !r.notify_url.starts_with("https://"))
        return {400, v3_error_body("PARAM_ERROR", "notify_url must be an http(s) URL")};
    if (r.notify_url.find('?') != std::string::npos)
        return {400, v3_error_body("PARAM_ERROR", "notify_url must not carry a query string")};
    if (const auto expire = j.str("time_expire")) {
        const auto t = parse_rfc3339(*expire);
        if (!t) return {400, v3_error_body("PARAM_ERROR", "time_expire is not RFC 3339: " + *expire)};
        r.expire_at = *t;
    }
    r.version = api_version::v3;
    // Re-entry compares parameters, not bytes: the same fields in another order or spacing are the same request.
    std::string fingerprint;
    for (const auto* field : {&r.appid, &r.mchid, &r.description, &r.out_trade_no, &r.notify_url, &r.attach, &r.openid})
        fingerprint += *field + '\x1f';
    fingerprint += std::to_string(r.amount_total) + '\x1f' + j.nested_str("amount", "currency").value_or("CNY") + '\x1f' +
                   j.str("time_expire").value_or("");
    r.fingerprint = hex_lower(crypto::sha256(fingerprint));
    const auto result = model_.prepay(r, now());
    switch (result.code) {
        case outcome::ok: return {200, json_object().add("prepay_id", result.record->prepay_id).str()};
        case outcome::already_paid: return {403, v3_error_body("TRADE_ERROR", result.message)};
        case outcome::closed: return {400, v3_error_body("ORDER_CLOSED", result.message)};
        case outcome::params_differ: return {400, v3_error_body("INVALID_REQUEST", result.message)};
        case outcome::limit_reached: return {503, v3_error_body("SERVICE_UNAVAILABLE", result.message)};
        default: return {400, v3_error_body("PARAM_ERROR", result.message)};
    }
}

std::pair<int, std::string> simulator::v3_query(merchant_state& m, const inbound_request& req) {
    const std::string mchid = query_param(req.query(), "mchid");
    if (mchid.empty()) return {400, v3_error_body("PARAM_ERROR", "缺少参数 mchid")};
    if (mchid != m.keys->mchid) return {400, v3_error_body("PARAM_ERROR", "mchid does not match the Authorization header")};
    constexpr std::string_view by_out_trade_no = "/v3/pay/transactions/out-trade-no/";
    const std::string_view path = req.path;
    const order_record* o =
        path.starts_with(by_out_trade_no)
            ? model_.find(mchid, path.substr(by_out_trade_no.size()), now())
            : model_.find_by_transaction(mchid, path.substr(std::string_view("/v3/pay/transactions/id/").size()), now());
    if (o == nullptr) return v3_not_found(m);
    return {200, transaction_object(*o, m.variants)};
}

std::pair<int, std::string> simulator::v3_close(merchant_state& m, std::string_view out_trade_no, std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return {400, v3_error_body("PARAM_ERROR", j.error)};
    if (j.str("mchid").value_or("") != m.keys->mchid)
        return {400, v3_error_body("PARAM_ERROR", "mchid missing or not the Authorization header's")};
    const auto result = model_.close(m.keys->mchid, out_trade_no, now());
    switch (result.code) {
        case outcome::ok: return {204, ""};
        case outcome::not_found: return v3_not_found(m);
        case outcome::already_paid:
            return m.variants.close_paid_is_trade_error ? std::pair{403, v3_error_body("TRADE_ERROR", "订单已支付")}
                                                        : std::pair{400, v3_error_body("ORDERPAID", "订单已支付")};
        case outcome::closed:
            if (m.variants.close_closed_is_error) return {400, v3_error_body("ORDER_CLOSED", "订单已关闭")};
            return {204, ""};
        default: return {400, v3_error_body("PARAM_ERROR", result.message)};
    }
}

std::pair<int, std::string> simulator::v3_refund(merchant_state& m, std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return {400, v3_error_body("PARAM_ERROR", j.error)};
    std::string out_trade_no = j.str("out_trade_no").value_or("");
    if (out_trade_no.empty()) {
        const std::string tid = j.str("transaction_id").value_or("");
        const order_record* o = tid.empty() ? nullptr : model_.find_by_transaction(m.keys->mchid, tid, now());
        if (o == nullptr) return tid.empty() ? std::pair{400, v3_error_body("PARAM_ERROR", "缺少参数 out_trade_no 或 transaction_id")}
                                             : v3_not_found(m);
        out_trade_no = o->out_trade_no;
    }
    const auto refund = j.nested_integer("amount", "refund");
    const auto total = j.nested_integer("amount", "total");
    const std::string out_refund_no = j.str("out_refund_no").value_or("");
    if (!refund || !total || out_refund_no.empty())
        return {400, v3_error_body("PARAM_ERROR", "缺少参数 out_refund_no, amount.refund 或 amount.total")};
    const order_record* order = model_.find(m.keys->mchid, out_trade_no, now());
    if (order != nullptr && order->payer_total != 0 && *total != order->payer_total)
        return {400, v3_error_body("PARAM_ERROR", "amount.total 与原订单金额不一致")};
    const auto result = model_.refund(m.keys->mchid, out_trade_no, out_refund_no, *refund,
                                      j.str("reason").value_or(""), j.str("notify_url").value_or(""), now());
    switch (result.code) {
        case outcome::ok: {
            order_record* o = model_.find(m.keys->mchid, out_trade_no, now());
            const std::string answer = refund_api_object(*o, *result.record);
            if (result.created) {
                // The refund completes at once; its notification follows like WeChat's.
                const auto done = model_.finish_refund(m.keys->mchid, out_refund_no, refund_status::success, now());
                notify_refund(m, *o, *done.record);
            }
            return {200, answer};
        }
        case outcome::not_found: return v3_not_found(m);
        case outcome::not_paid: return {403, v3_error_body("TRADE_ERROR", result.message)};
        case outcome::not_enough: return {403, v3_error_body("NOT_ENOUGH", result.message)};
        case outcome::params_differ: return {400, v3_error_body("INVALID_REQUEST", result.message)};
        default: return {400, v3_error_body("PARAM_ERROR", result.message)};
    }
}

std::pair<int, std::string> simulator::v3_refund_query(merchant_state& m, std::string_view out_refund_no) {
    order_record* o = nullptr;
    const refund_record* r = model_.find_refund(m.keys->mchid, out_refund_no, &o);
    if (r == nullptr) return {404, v3_error_body("RESOURCE_NOT_EXISTS", "退款单不存在")};
    return {200, refund_api_object(*o, *r)};
}

std::pair<int, std::string> simulator::v3_certificates(merchant_state& m) {
    std::string data = "[";
    for (std::size_t i = 0; i < m.keys->certificates.size(); ++i) {
        const auto& c = m.keys->certificates[i];
        const std::string nonce = crypto::random_alnum(12);
        auto sealed = crypto::aes256_gcm_encrypt(m.keys->apiv3_key, nonce, "certificate", c.pem);
        if (!sealed) return {500, v3_error_body("SYSTEM_ERROR", sealed.err().message)};
        json_object enc;
        enc.add("algorithm", "AEAD_AES_256_GCM")
            .add("nonce", nonce)
            .add("associated_data", "certificate")
            .add("ciphertext", base64_encode(*sealed));
        json_object item;
        item.add("serial_no", c.serial)
            .add("effective_time", format_rfc3339(c.not_before))
            .add("expire_time", format_rfc3339(c.not_after))
            .add_raw("encrypt_certificate", enc.str());
        data += (i ? "," : "") + item.str();
    }
    return {200, "{\"data\":" + data + "]}"};
}

// ---------------------------------------------------------------- APIv2

asio::awaitable<reply> simulator::handle_v2(inbound_request& req) {
    if (req.method != "POST") co_return v2_reply(v2_failure("", "REQUIRE_POST_METHOD"));
    if (req.body.empty()) co_return v2_reply(v2_failure("", "POST_DATA_EMPTY"));
    const auto in = v2::parse_xml(req.body);
    if (!in) co_return v2_reply(v2_failure("", "XML_FORMAT_ERROR: " + in.err().message));
    const auto mch = in->find("mch_id");
    merchant_state* m = mch == in->end() ? nullptr : merchant(mch->second);
    if (m == nullptr) co_return v2_reply(v2_failure("", "mch_id 参数错误"));
    if (!v2::verify(*in, m->keys->apiv2_key)) co_return v2_reply(v2_failure("", "签名错误"));
    const auto st = in->find("sign_type");
    const v2::sign_type type = st != in->end() && st->second == "HMAC-SHA256" ? v2::sign_type::hmac_sha256
                                                                              : v2::sign_type::md5;
    const std::uint64_t call = ++m->api_calls;
    const std::string& subject = m->keys->mchid;
    const auto no = in->find("out_trade_no");
    const std::uint64_t log_id =
        log_call(m->keys->mchid, "v2", req.path + (no == in->end() ? std::string() : " " + no->second)).id;
    if (draw("fault.query_slow", subject, call, m->faults.query_slow)) {
        asio::steady_timer slow(io_, std::chrono::milliseconds(m->faults.slow_ms));
        co_await slow.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    if (draw("fault.query_429", subject, call, m->faults.query_429)) {
        end_call(log_id, 429);
        co_return v2_reply(v2_failure("", "频率限制"));
    }
    v2::fields out;
    if (draw("fault.query_500", subject, call, m->faults.query_500)) {
        out = v2_failure("SYSTEMERROR", "系统错误");
    } else {
        out = v2_dispatch(*m, req.path, *in, type);
    }
    if (out.at("return_code") == "SUCCESS") {
        out["appid"] = m->keys->appid;
        out["mch_id"] = m->keys->mchid;
        out["nonce_str"] = crypto::random_alnum(32);
        v2_sign(out, m->keys->apiv2_key, type, false);
        if (out.count("result_code") && out.at("result_code") == "SUCCESS" &&
            draw("fault.bad_response_signature", subject, call, m->faults.bad_response_signature)) {
            out["sign"] = std::string(out["sign"].size(), 'F');
        }
    }
    end_call(log_id, 200);
    co_return v2_reply(out);
}

v2::fields simulator::v2_dispatch(merchant_state& m, std::string_view path, const v2::fields& in, v2::sign_type type) {
    auto get = [&](std::string_view k) -> std::string {
        const auto it = in.find(k);
        return it == in.end() ? std::string() : it->second;
    };
    const v2::fields ok_fields{{"return_code", "SUCCESS"}, {"return_msg", "OK"}, {"result_code", "SUCCESS"}};
    const std::string mchid = m.keys->mchid;
    if (path == "/pay/unifiedorder") {
        for (const char* k : {"appid", "body", "out_trade_no", "total_fee", "spbill_create_ip", "notify_url", "trade_type", "openid"})
            if (get(k).empty()) return v2_failure("LACK_PARAMS", std::string("缺少参数 ") + k);
        if (get("appid") != m.keys->appid) return v2_failure("APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配");
        if (get("trade_type") != "JSAPI") return v2_failure("INVALID_REQUEST", "only trade_type JSAPI is simulated");
        order_request r;
        r.mchid = mchid;
        r.appid = get("appid");
        r.description = get("body");
        r.out_trade_no = get("out_trade_no");
        r.notify_url = get("notify_url");
        r.openid = get("openid");
        r.attach = get("attach");
        const std::string fee = get("total_fee");
        if (fee.find_first_not_of("0123456789") != std::string::npos || fee.size() > 12)
            return v2_failure("INVALID_REQUEST", "total_fee must be an integer number of fen");
        r.amount_total = std::stoll(fee);
        if (const std::string expire = get("time_expire"); !expire.empty()) {
            const auto t = v2::parse_beijing_time(expire);
            if (!t) return v2_failure("INVALID_REQUEST", "time_expire 格式错误");
            r.expire_at = *t;
        }
        r.version = api_version::v2;
        r.v2_sign = type;
        std::string fingerprint;
        for (const auto& [k, v] : in)
            if (k != "sign" && k != "nonce_str") fingerprint += k + "=" + v + "&";
        r.fingerprint = hex_lower(crypto::sha256(fingerprint));
        const auto result = model_.prepay(r, now());
        switch (result.code) {
            case outcome::ok: {
                v2::fields f = ok_fields;
                f["trade_type"] = "JSAPI";
                f["prepay_id"] = result.record->prepay_id;
                return f;
            }
            case outcome::already_paid: return v2_failure("ORDERPAID", result.message);
            case outcome::closed: return v2_failure("ORDERCLOSED", result.message);
            case outcome::params_differ: return v2_failure("INVALID_REQUEST", result.message);
            default: return v2_failure("INVALID_REQUEST", result.message);
        }
    }
    if (path == "/pay/orderquery") {
        const std::string tid = get("transaction_id");
        const order_record* o = !tid.empty() ? model_.find_by_transaction(mchid, tid, now())
                                             : model_.find(mchid, get("out_trade_no"), now());
        if (o == nullptr) return v2_failure("ORDERNOTEXIST", "订单不存在");
        return v2_order_fields(*o, "");
    }
    if (path == "/pay/closeorder") {
        const order_record* o = model_.find(mchid, get("out_trade_no"), now());
        if (o == nullptr) return v2_failure("ORDERNOTEXIST", "订单不存在");
        if (o->state == trade_state::notpay && now() - o->created_at < scaled(300'000).count() / 1000)
            return v2_failure("INVALID_REQUEST", "订单生成后需要5分钟后才能关单");
        const auto result = model_.close(mchid, get("out_trade_no"), now());
        if (result.code == outcome::already_paid) return v2_failure("ORDERPAID", "订单已支付");
        if (result.code == outcome::closed) return v2_failure("ORDERCLOSED", "订单已关闭");
        return ok_fields;
    }
    if (path == "/secapi/pay/refund") {
        std::string out_trade_no = get("out_trade_no");
        if (out_trade_no.empty()) {
            const order_record* o = model_.find_by_transaction(mchid, get("transaction_id"), now());
            if (o == nullptr) return v2_failure("ORDERNOTEXIST", "订单不存在");
            out_trade_no = o->out_trade_no;
        }
        for (const char* k : {"out_refund_no", "total_fee", "refund_fee"})
            if (get(k).empty()) return v2_failure("LACK_PARAMS", std::string("缺少参数 ") + k);
        const std::string fee = get("refund_fee");
        if (fee.find_first_not_of("0123456789") != std::string::npos || fee.size() > 12)
            return v2_failure("INVALID_REQUEST", "refund_fee must be an integer number of fen");
        const auto result = model_.refund(mchid, out_trade_no, get("out_refund_no"), std::stoll(fee), "",
                                          get("notify_url"), now());
        switch (result.code) {
            case outcome::ok: {
                order_record* o = model_.find(mchid, out_trade_no, now());
                v2::fields f = ok_fields;
                f["transaction_id"] = o->transaction_id;
                f["out_trade_no"] = o->out_trade_no;
                f["out_refund_no"] = result.record->out_refund_no;
                f["refund_id"] = result.record->refund_id;
                f["refund_fee"] = std::to_string(result.record->amount);
                f["total_fee"] = std::to_string(o->payer_total);
                f["cash_fee"] = std::to_string(o->payer_total);
                if (result.created) {
                    const auto done = model_.finish_refund(mchid, result.record->out_refund_no, refund_status::success, now());
                    notify_refund(m, *o, *done.record);
                }
                return f;
            }
            case outcome::not_found: return v2_failure("ORDERNOTEXIST", result.message);
            case outcome::not_enough: return v2_failure("NOTENOUGH", result.message);
            case outcome::not_paid: return v2_failure("TRADE_STATE_ERROR", result.message);
            default: return v2_failure("INVALID_REQUEST", result.message);
        }
    }
    if (path == "/pay/refundquery") {
        order_record* o = nullptr;
        const refund_record* r = model_.find_refund(mchid, get("out_refund_no"), &o);
        if (r == nullptr) return v2_failure("REFUNDNOTEXIST", "退款单不存在");
        v2::fields f = ok_fields;
        f["transaction_id"] = o->transaction_id;
        f["out_trade_no"] = o->out_trade_no;
        f["total_fee"] = std::to_string(o->payer_total);
        f["refund_count"] = "1";
        f["out_refund_no_0"] = r->out_refund_no;
        f["refund_id_0"] = r->refund_id;
        f["refund_fee_0"] = std::to_string(r->amount);
        const auto inner = v2_refund_inner_fields(*o, *r);
        f["refund_status_0"] = inner.at("refund_status");
        if (r->success_at) f["refund_success_time_0"] = beijing_spaced(r->success_at);
        return f;
    }
    return v2_failure("", "no such APIv2 endpoint");
}

// ---------------------------------------------------------------- mini-program login

reply simulator::handle_login(const inbound_request& req) {
    const std::string appid = query_param(req.query(), "appid");
    const std::string secret = query_param(req.query(), "secret");
    const std::string code = query_param(req.query(), "js_code");
    auto fail = [](int errcode, std::string_view msg) {
        return json_reply(200, json_object().add("errcode", errcode).add("errmsg", msg).str());
    };
    const sim_merchant* m = nullptr;
    for (const auto& k : keys_.merchants)
        if (k.appid == appid) m = &k;
    if (m == nullptr) return fail(40013, "invalid appid");
    if (!constant_time_equal(secret, m->app_secret)) return fail(40125, "invalid appsecret");
    if (query_param(req.query(), "grant_type") != "authorization_code") return fail(40002, "invalid grant_type");
    const auto it = login_codes_.find(appid + "\x1f" + code);
    if (it == login_codes_.end()) return fail(40029, "invalid code");
    if (it->second.second) return fail(40163, "code been used");
    it->second.second = true;
    return json_reply(200, json_object()
                               .add("openid", it->second.first)
                               .add("session_key", base64_encode(crypto::random_bytes(16)))
                               .str());
}

// ---------------------------------------------------------------- control API

asio::awaitable<reply> simulator::handle_control(inbound_request& req) {
    const std::string_view p = req.path;
    if (req.method == "GET") {
        if (p == "/sim/ledger") co_return json_reply(200, model_.ledger_json());
        if (p == "/sim/deliveries") co_return control_deliveries(req);
        if (p == "/sim/stats") co_return control_stats();
        if (p == "/sim/calls") co_return control_calls(req);
        if (p == "/sim/merchants") {
            std::string list = "[";
            bool first = true;
            for (const auto& [id, m] : merchants_) {
                json_object j;
                j.add("mchid", id)
                    .add("appid", m.keys->appid)
                    .add("api_version", m.keys->version == api_version::v3 ? "v3" : "v2")
                    .add("key_mode", to_string(m.keys->mode))
                    .add("public_key_id", m.keys->public_key_id)
                    .add("platform_serial", m.keys->certificates.back().serial)
                    .add_raw("faults", m.faults.to_json())
                    .add_raw("variants", m.variants.to_json());
                list += (first ? "" : ",") + j.str();
                first = false;
            }
            co_return json_reply(200, list + "]");
        }
        co_return control_error(404, "no such control endpoint");
    }
    if (req.method != "POST") co_return control_error(405, "control endpoints take GET or POST");
    if (p == "/sim/orders") co_return control_create_order(req.body);
    if (p == "/sim/pay") co_return control_pay(req.body);
    if (p == "/sim/expire") co_return control_expire(req.body);
    if (p == "/sim/refund") co_return control_refund(req.body);
    if (p == "/sim/faults") co_return control_faults(req.body);
    if (p == "/sim/rotate-certificate") co_return control_rotate(req.body);
    if (p == "/sim/login-code") co_return control_login_code(req.body);
    co_return control_error(404, "no such control endpoint");
}

reply simulator::control_create_order(std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return control_error(400, j.error);
    merchant_state* m = merchant(j.str("mchid").value_or(""));
    if (m == nullptr) return control_error(404, "unknown mchid");
    order_request r;
    r.mchid = m->keys->mchid;
    r.appid = m->keys->appid;
    r.amount_total = j.integer("amount").value_or(0);
    r.notify_url = j.str("notify_url").value_or("");
    r.description = j.str("description").value_or("wxpay-sim order");
    const std::string version = j.str("api_version").value_or(m->keys->version == api_version::v3 ? "v3" : "v2");
    if (version != "v3" && version != "v2") return control_error(400, "api_version must be v3 or v2");
    r.version = version == "v3" ? api_version::v3 : api_version::v2;
    const std::string sign = j.str("sign_type").value_or("MD5");
    if (sign != "MD5" && sign != "HMAC-SHA256") return control_error(400, "sign_type must be MD5 or HMAC-SHA256");
    r.v2_sign = sign == "MD5" ? v2::sign_type::md5 : v2::sign_type::hmac_sha256;
    if (const auto seconds = j.integer("expire_seconds")) r.expire_at = now() + *seconds;
    if (!r.notify_url.starts_with("http://")) return control_error(400, "notify_url must be an http:// URL");
    // One order, or a batch: prefix + first .. prefix + (first + count - 1).
    const auto batch = order_batch(j);
    if (!batch) return control_error(400, batch.err().message);
    std::string prepay_id;
    bool created = false;
    for (const std::string& out_trade_no : *batch) {
        r.out_trade_no = out_trade_no;
        r.openid = j.str("openid").value_or("o" + hex_lower(crypto::sha256(out_trade_no)).substr(0, 27));
        r.fingerprint = "control:" + out_trade_no;
        const auto result = model_.prepay(r, now());
        if (result.code != outcome::ok)
            return control_error(409, out_trade_no + ": " + std::string(to_string(result.code)) + ": " + result.message);
        prepay_id = result.record->prepay_id;
        created = created || result.created;
    }
    return json_reply(created ? 201 : 200, json_object()
                                               .add("orders", static_cast<std::int64_t>(batch->size()))
                                               .add("out_trade_no", batch->back())
                                               .add("prepay_id", prepay_id)
                                               .str());
}

reply simulator::control_pay(std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return control_error(400, j.error);
    merchant_state* m = merchant(j.str("mchid").value_or(""));
    if (m == nullptr) return control_error(404, "unknown mchid");
    const auto batch = order_batch(j);
    if (!batch) return control_error(400, batch.err().message);
    const std::uint64_t first = next_delivery_id_;
    std::string transaction_ids = "[";
    std::int64_t paid = 0;
    for (const std::string& out_trade_no : *batch) {
        const auto result = model_.pay(m->keys->mchid, out_trade_no, j.integer("amount"), now());
        if (result.code != outcome::ok)
            return control_error(409, out_trade_no + ": " + std::string(to_string(result.code)) + ": " + result.message);
        transaction_ids += (transaction_ids.size() > 1 ? ",\"" : "\"") + result.record->transaction_id + "\"";
        paid = result.record->payer_total;
        notify_payment(*m, *result.record);
    }
    json_object out;
    if (batch->size() == 1) out.add("transaction_id", transaction_ids.substr(2, transaction_ids.size() - 3)).add("paid", paid);
    return json_reply(200, out.add_raw("transaction_ids", transaction_ids + "]")
                               .add("first_delivery", static_cast<std::int64_t>(first))
                               .add("deliveries", static_cast<std::int64_t>(next_delivery_id_ - first))
                               .str());
}

result<std::vector<std::string>> simulator::order_batch(const json_body& j) const {
    if (const auto no = j.str("out_trade_no")) return std::vector<std::string>{*no};
    const auto count = j.integer("count");
    const std::string prefix = j.str("prefix").value_or("");
    const std::int64_t first = j.integer("first").value_or(1);
    if (!count || *count < 1 || *count > 100'000 || prefix.empty() || first < 0)
        return make_error(errc::invalid_argument, "give out_trade_no, or prefix with count (1..100000) and optional first");
    std::vector<std::string> out;
    out.reserve(static_cast<std::size_t>(*count));
    for (std::int64_t i = 0; i < *count; ++i) out.push_back(prefix + std::to_string(first + i));
    return out;
}

reply simulator::control_expire(std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return control_error(400, j.error);
    const auto result = model_.expire(j.str("mchid").value_or(""), j.str("out_trade_no").value_or(""), now());
    if (result.code != outcome::ok) return control_error(409, std::string(to_string(result.code)) + ": " + result.message);
    return json_reply(200, json_object().add("trade_state", "CLOSED").str());
}

reply simulator::control_refund(std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return control_error(400, j.error);
    merchant_state* m = merchant(j.str("mchid").value_or(""));
    if (m == nullptr) return control_error(404, "unknown mchid");
    const std::string out_trade_no = j.str("out_trade_no").value_or("");
    order_record* o = model_.find(m->keys->mchid, out_trade_no, now());
    if (o == nullptr) return control_error(404, "unknown order");
    const std::int64_t amount = j.integer("amount").value_or(o->payer_total - o->refunded());
    const std::string status = j.str("status").value_or("SUCCESS");
    if (!is_success_refund(status)) return control_error(400, "status must be SUCCESS, ABNORMAL or CLOSED");
    const std::string out_refund_no =
        j.str("out_refund_no").value_or("R" + out_trade_no + "-" + std::to_string(o->refunds.size() + 1));
    auto result = model_.refund(m->keys->mchid, out_trade_no, out_refund_no, amount, "", j.str("notify_url").value_or(""), now());
    if (result.code != outcome::ok) return control_error(409, std::string(to_string(result.code)) + ": " + result.message);
    const auto final_status = *domain::parse_refund_status(status);
    const auto done = model_.finish_refund(m->keys->mchid, out_refund_no, final_status, now());
    if (done.code == outcome::ok) notify_refund(*m, *o, *done.record);
    return json_reply(200, json_object()
                               .add("out_refund_no", out_refund_no)
                               .add("refund_id", result.record->refund_id)
                               .add("amount", amount)
                               .add("status", status)
                               .str());
}

reply simulator::control_faults(std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return control_error(400, j.error);
    const auto mchid = j.str("mchid");
    std::vector<merchant_state*> targets;
    if (mchid) {
        merchant_state* m = merchant(*mchid);
        if (m == nullptr) return control_error(404, "unknown mchid");
        targets.push_back(m);
    } else {
        for (auto& [id, m] : merchants_) targets.push_back(&m);
    }
    for (merchant_state* m : targets) {
        if (auto applied = apply_fault_json(body, m->faults); !applied)
            return control_error(400, applied.err().message);
    }
    return json_reply(200, targets.front()->faults.to_json());
}

reply simulator::control_rotate(std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return control_error(400, j.error);
    merchant_state* m = merchant(j.str("mchid").value_or(""));
    if (m == nullptr) return control_error(404, "unknown mchid");
    // "gradual": callbacks move to the new certificate, API answers stay on the current one (§2.4: during a
    // rotation either serial may appear); a plain rotation moves both at once.
    const bool gradual = j.boolean("gradual").value_or(false);
    const std::size_t current = m->keys->certificates.size() - 1;
    rotate_certificate(*m);
    m->answers_sign_with = gradual ? std::optional<std::size_t>(current) : std::nullopt;
    return json_reply(200, json_object().add("serial", m->keys->certificates.back().serial).str());
}

reply simulator::control_login_code(std::string_view body) {
    const json_body j(body);
    if (!j.error.empty()) return control_error(400, j.error);
    const std::string appid = j.str("appid").value_or("");
    bool known = false;
    for (const auto& k : keys_.merchants) known = known || k.appid == appid;
    if (!known) return control_error(404, "unknown appid");
    if (login_codes_.size() >= 100'000) login_codes_.clear();  // codes live five minutes at WeChat; keep it bounded
    const std::string code = crypto::random_alnum(32);
    const std::string user = j.str("user").value_or(code);
    const std::string openid = "o" + base64_encode(crypto::sha256(appid + "\x1f" + user)).substr(0, 27);
    std::string safe_openid = openid;
    for (auto& c : safe_openid)
        if (c == '+' || c == '/') c = '_';
    login_codes_[appid + "\x1f" + code] = {safe_openid, false};
    return json_reply(200, json_object().add("code", code).add("openid", safe_openid).str());
}

reply simulator::control_deliveries(const inbound_request& req) const {
    const std::string since_text = query_param(req.query(), "since");
    const std::string limit_text = query_param(req.query(), "limit");
    std::uint64_t since = first_delivery_id_;
    std::size_t limit = 10'000;
    try {
        if (!since_text.empty()) since = std::max<std::uint64_t>(since, std::stoull(since_text));
        if (!limit_text.empty()) limit = std::min<std::size_t>(100'000, std::stoull(limit_text));
    } catch (const std::exception&) {
        return control_error(400, "since and limit must be integers");
    }
    std::string out = "{\"first\":" + std::to_string(first_delivery_id_) + ",\"next\":" +
                      std::to_string(next_delivery_id_) + ",\"deliveries\":[";
    std::size_t n = 0;
    for (std::uint64_t id = since; id < next_delivery_id_ && n < limit; ++id, ++n) {
        const delivery& d = deliveries_[id - first_delivery_id_];
        std::string attempts = "[";
        for (std::size_t i = 0; i < d.attempts.size(); ++i) {
            const auto& a = d.attempts[i];
            attempts += (i ? "," : "") + json_object()
                                             .add("n", a.number)
                                             .add("at_ms", a.at_ms)
                                             .add("status", a.status)
                                             .add("outcome", a.outcome)
                                             .str();
        }
        json_object j;
        j.add("id", static_cast<std::int64_t>(d.id))
            .add("mchid", d.mchid)
            .add("out_trade_no", d.out_trade_no)
            .add("out_refund_no", d.out_refund_no)
            .add("event_type", d.event_type)
            .add("notification_id", d.notification_id)
            .add("kind", d.kind)
            .add("api_version", d.version == api_version::v3 ? "v3" : "v2")
            .add("serial", d.serial)
            .add("dropped", d.dropped)
            .add("first_delay_ms", d.first_delay_ms)
            .add("acknowledged", d.acknowledged)
            .add("finished", d.finished)
            .add_raw("attempts", attempts + "]");
        out += (n ? "," : "") + j.str();
    }
    return json_reply(200, out + "]}");
}

api_call& simulator::log_call(const std::string& mchid, std::string_view api, std::string what) {
    while (!calls_.empty() && calls_.size() >= options_.max_deliveries) {
        calls_.pop_front();
        ++first_call_id_;
    }
    api_call c;
    c.id = next_call_id_++;
    c.mchid = mchid;
    c.api = std::string(api);
    c.what = std::move(what);
    c.start_ms = elapsed_ms();
    calls_.push_back(std::move(c));
    return calls_.back();
}

void simulator::end_call(std::uint64_t id, int status) {
    if (id < first_call_id_ || id >= next_call_id_) return;
    api_call& c = calls_[id - first_call_id_];
    c.end_ms = elapsed_ms();
    c.status = status;
}

reply simulator::control_calls(const inbound_request& req) const {
    std::uint64_t since = first_call_id_;
    try {
        const std::string text = query_param(req.query(), "since");
        if (!text.empty()) since = std::max<std::uint64_t>(since, std::stoull(text));
    } catch (const std::exception&) {
        return control_error(400, "since must be an integer");
    }
    std::string out = "{\"calls\":[";
    for (std::uint64_t id = since; id < next_call_id_; ++id) {
        const api_call& c = calls_[id - first_call_id_];
        out += (id == since ? "" : ",") + json_object()
                                             .add("id", static_cast<std::int64_t>(c.id))
                                             .add("mchid", c.mchid)
                                             .add("api", c.api)
                                             .add("call", c.what)
                                             .add("start_ms", c.start_ms)
                                             .add("end_ms", c.end_ms)
                                             .add("status", c.status)
                                             .str();
    }
    return json_reply(200, out + "]}");
}

reply simulator::control_stats() const {
    std::int64_t planned = 0, dropped = 0, acknowledged = 0, pending = 0, attempts = 0;
    std::map<std::string, std::int64_t> kinds;
    for (const auto& d : deliveries_) {
        ++planned;
        ++kinds[d.kind];
        dropped += d.dropped;
        acknowledged += d.acknowledged;
        pending += !d.finished;
        attempts += static_cast<std::int64_t>(d.attempts.size());
    }
    json_object k;
    for (const auto& [name, n] : kinds) k.add(name, n);
    return json_reply(200, json_object()
                               .add("orders", static_cast<std::int64_t>(model_.size()))
                               .add("deliveries", planned)
                               .add("dropped", dropped)
                               .add("acknowledged", acknowledged)
                               .add("pending", pending)
                               .add("attempts", attempts)
                               .add("in_flight", in_flight_)
                               .add_raw("kinds", k.str())
                               .str());
}

// ---------------------------------------------------------------- notifications

std::string simulator::pick_serial(merchant_state& m, std::string_view decision_key) {
    const sim_merchant& k = *m.keys;
    const bool public_key = k.mode == key_mode::public_key ||
                            (k.mode == key_mode::mixed && seeded_draw(options_.seed, "key_mode", decision_key) < 0.5);
    return public_key ? k.public_key_id : k.certificates.back().serial;
}

void simulator::rotate_certificate(merchant_state& m) {
    auto fresh = make_platform_certificate(keys_, now());
    if (!fresh) {
        spdlog::error("sim: certificate rotation failed mchid={} error=\"{}\"", m.keys->mchid, fresh.err().message);
        return;
    }
    spdlog::info("sim: platform certificate rotated mchid={} old={} new={}", m.keys->mchid,
                 m.keys->certificates.back().serial, fresh->serial);
    m.keys->certificates.push_back(std::move(*fresh));
}

void simulator::notify_payment(merchant_state& m, const order_record& o) {
    delivery d;
    d.mchid = o.mchid;
    d.out_trade_no = o.out_trade_no;
    d.event_type = "TRANSACTION.SUCCESS";
    d.url = o.notify_url;
    d.version = o.version;
    if (o.version == api_version::v3) {
        d.plaintext = transaction_object(o, m.variants);
    } else {
        d.v2_fields = v2_order_fields(o, "");
        d.v2_fields.erase("trade_state");
        d.v2_fields.erase("trade_state_desc");
        d.v2_fields.erase("return_msg");
        d.v2_fields["sign_type"] = o.v2_sign == v2::sign_type::md5 ? "MD5" : "HMAC-SHA256";
    }
    plan(m, std::move(d));
}

void simulator::notify_refund(merchant_state& m, const order_record& o, const refund_record& r) {
    delivery d;
    d.mchid = o.mchid;
    d.out_trade_no = o.out_trade_no;
    d.out_refund_no = r.out_refund_no;
    d.refund = true;
    d.refund_status = std::string(domain::to_string(r.status));
    d.event_type = "REFUND." + d.refund_status;
    d.url = r.notify_url.empty() ? o.notify_url : r.notify_url;
    d.version = o.version;
    if (o.version == api_version::v3)
        d.plaintext = refund_notification_object(o, r);
    else
        d.v2_fields = v2_refund_inner_fields(o, r);
    plan(m, std::move(d));
}

void simulator::plan(merchant_state& m, delivery base) {
    const std::string subject = base.mchid + "/" + base.out_trade_no + "/" + base.out_refund_no + "/" + base.event_type;
    base.notification_id = uuid_from(seeded_hash(options_.seed, "notification", subject),
                                     seeded_hash(options_.seed, "notification2", subject));
    base.serial = base.version == api_version::v3 ? pick_serial(m, base.notification_id) : "";
    const fault_config& f = m.faults;
    if (f.rotate_certificate_after > 0 && ++m.notifications % static_cast<std::uint64_t>(f.rotate_certificate_after) == 0)
        rotate_certificate(m);

    auto add = [&](std::string kind, std::int64_t delay_ms) -> delivery* {
        delivery d = base;
        d.kind = std::move(kind);
        d.first_delay_ms = delay_ms;
        return &add_delivery(std::move(d));
    };
    std::int64_t delay = 0;
    if (draw("fault.delay", subject, 0, f.delay))
        delay += static_cast<std::int64_t>(seeded_draw(options_.seed, "fault.delay_ms", subject) * static_cast<double>(f.delay_ms));
    if (f.reorder)
        delay += static_cast<std::int64_t>(seeded_draw(options_.seed, "fault.reorder_ms", subject) *
                                           static_cast<double>(f.reorder_window_ms));
    if (base.version == api_version::v3 && draw("fault.probe", subject, 0, f.probe)) {
        const delivery* p = add("probe", 0);
        schedule(p->id, std::chrono::milliseconds(0));
    }
    const bool lost = draw("fault.drop", subject, 0, f.drop);
    if (lost) {
        // Lost entirely: no copy of it goes out either (a forger, below, does not depend on WeChat).
        delivery* d = add("genuine", delay);
        d->dropped = true;
        d->finished = true;
    } else {
        const delivery* d = add("genuine", delay);
        schedule(d->id, scaled(delay));
    }
    if (!lost && draw("fault.duplicate", subject, 0, f.duplicate)) {
        const std::int64_t extra = 50 + static_cast<std::int64_t>(seeded_draw(options_.seed, "fault.duplicate_ms", subject) * 950);
        const delivery* d = add("duplicate", delay + extra);
        schedule(d->id, scaled(delay + extra));
    }
    if (!lost && draw("fault.concurrent", subject, 0, f.concurrent)) {
        const delivery* d = add("concurrent", delay);
        schedule(d->id, scaled(delay));
    }
    if (draw("fault.forged", subject, 0, f.forged)) {
        const delivery* d = add("forged", delay);
        schedule(d->id, scaled(delay));
    }
}

delivery& simulator::add_delivery(delivery d) {
    while (!deliveries_.empty() && deliveries_.size() >= options_.max_deliveries && deliveries_.front().finished) {
        deliveries_.pop_front();
        ++first_delivery_id_;
    }
    d.id = next_delivery_id_++;
    deliveries_.push_back(std::move(d));
    return deliveries_.back();
}

delivery* simulator::find_delivery(std::uint64_t id) {
    if (id < first_delivery_id_ || id >= next_delivery_id_) return nullptr;
    return &deliveries_[id - first_delivery_id_];
}

void simulator::schedule(std::uint64_t id, std::chrono::milliseconds after) {
    asio::co_spawn(io_, run_attempt(id, after), asio::detached);
}

void simulator::release_slot() {
    if (slot_waiters_.empty() || stopping_) {
        --in_flight_;
        return;
    }
    asio::steady_timer* next = slot_waiters_.front();
    slot_waiters_.pop_front();
    next->cancel();  // the slot passes to the oldest waiter; in_flight_ stays
}

asio::awaitable<void> simulator::run_attempt(std::uint64_t id, std::chrono::milliseconds after) {
    if (after.count() > 0) {
        asio::steady_timer wait(io_, after);
        co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    // A slot among delivery_concurrency: taken at once, or handed over by a finishing attempt (FIFO).
    if (in_flight_ < options_.delivery_concurrency) {
        ++in_flight_;
    } else {
        asio::steady_timer turn(io_, asio::steady_timer::time_point::max());
        slot_waiters_.push_back(&turn);
        co_await turn.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    delivery* d = find_delivery(id);
    merchant_state* m = d == nullptr ? nullptr : merchant(d->mchid);
    if (stopping_ || m == nullptr || d->finished) {
        release_slot();
        co_return;
    }

    net::outbound_request request;
    request.method = "POST";
    request.url = d->url;
    const sim_merchant& k = *m->keys;
    const std::string kind = d->kind;
    if (d->version == api_version::v3) {
        protocol::v3::notification_spec spec;
        spec.id = d->notification_id;
        spec.create_time = format_rfc3339(now());
        spec.event_type = d->event_type;
        spec.summary = d->refund ? "退款状态变更" : "支付成功";
        spec.original_type = d->refund ? "refund" : "transaction";
        spec.associated_data = d->refund ? "refund" : "transaction";
        spec.plaintext = d->plaintext;
        const std::string serial = d->serial;
        crypto::private_key key = kind == "forged"                      ? forger_key_
                                  : serial.starts_with("PUB_KEY_ID_")   ? k.public_key_signer
                                                                        : k.certificates.back().key;
        for (const auto& c : k.certificates)
            if (c.serial == serial && kind != "forged") key = c.key;
        const std::string apiv3_key = k.apiv3_key;
        const std::int64_t at = now();
        auto job = [spec, apiv3_key, key, serial, at] {
            return protocol::v3::make_notification(spec, apiv3_key, key, serial, at);
        };
        auto made = co_await on_pool(signers_, std::move(job));
        if (!made || !*made) {
            release_slot();
            co_return;
        }
        protocol::v3::signed_notification n = std::move(**made);
        if (kind == "probe") n.signature = std::string(protocol::v3::probe_prefix) + base64_encode(crypto::random_bytes(240));
        request.body = std::move(n.body);
        request.headers = {{"Content-Type", "application/json"},
                           {"Wechatpay-Timestamp", n.timestamp},
                           {"Wechatpay-Nonce", n.nonce},
                           {"Wechatpay-Signature", n.signature},
                           {"Wechatpay-Serial", n.serial},
                           {"Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048"},
                           {"Request-ID", uuid_from(seeded_hash(options_.seed, "notify-request", d->notification_id, d->attempts.size()), id)}};
    } else {
        const std::string api_key = kind == "forged" ? crypto::random_alnum(32) : k.apiv2_key;
        if (d->refund) {
            v2::fields outer{{"return_code", "SUCCESS"}, {"appid", k.appid}, {"mch_id", k.mchid},
                             {"nonce_str", crypto::random_alnum(32)},
                             {"req_info", v2::encrypt_req_info(v2_inner_xml(d->v2_fields), api_key)}};
            request.body = v2::to_xml(outer);
        } else {
            v2::fields f = d->v2_fields;
            f["nonce_str"] = crypto::random_alnum(32);
            const v2::sign_type type = f["sign_type"] == "HMAC-SHA256" ? v2::sign_type::hmac_sha256 : v2::sign_type::md5;
            v2_sign(f, api_key, type, !m->variants.v2_notify_without_sign_type);
            request.body = v2::to_xml(f);
        }
        request.headers = {{"Content-Type", "text/xml"}};
    }

    const std::int64_t sent_at = elapsed_ms();
    const net::exchange ex = co_await client_->send(std::move(request));
    release_slot();
    d = find_delivery(id);
    if (d == nullptr) co_return;
    delivery_attempt a;
    a.number = static_cast<int>(d->attempts.size()) + 1;
    a.at_ms = sent_at;
    bool acked = false;
    if (ex.response) {
        a.status = ex.response->status;
        if (d->version == api_version::v3) {
            acked = a.status == 200 || a.status == 204;
        } else if (a.status == 200) {
            const auto answer = v2::parse_xml(ex.response->body);
            acked = answer && answer->count("return_code") && answer->at("return_code") == "SUCCESS";
        }
        a.outcome = acked ? "acknowledged" : "refused";
    } else {
        a.outcome = ex.error;
    }
    d->attempts.push_back(a);
    const bool retried = d->kind == "genuine" || d->kind == "duplicate" || d->kind == "concurrent";
    if (acked) {
        d->acknowledged = true;
    } else if (retried && d->attempts.size() <= std::size(retry_schedule_seconds) && !stopping_) {
        schedule(id, scaled(retry_schedule_seconds[d->attempts.size() - 1] * 1000));
        co_return;
    }
    // Done: the log keeps what happened, not the payload.
    d->finished = true;
    std::string().swap(d->plaintext);
    d->v2_fields.clear();
}

}  // namespace wxrecon::sim
