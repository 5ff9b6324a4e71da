// The APIs a merchant calls: APIv3 (signed JSON: prepay, query, close,
// certificates) and APIv2 (signed XML: unifiedorder, orderquery, closeorder),
// each after the caller's signature check and the configured faults, with
// every call kept in the call log. Refunds and refund queries of both versions
// are in sim_refunds.cpp.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <optional>

#include "base/encoding.hpp"
#include "base/json_writer.hpp"
#include "base/time.hpp"
#include "protocol/v3.hpp"
#include "sim_server.hpp"
#include "sim_server_helpers.hpp"
#include "sim_wire.hpp"

namespace wxrecon::sim {

namespace asio = boost::asio;
using domain::trade_state;
namespace v2 = protocol::v2;

namespace {

constexpr std::string_view by_out_trade_no = "/v3/pay/transactions/out-trade-no/";
constexpr std::string_view by_transaction_id = "/v3/pay/transactions/id/";

// How an APIv3 route's path is compared with the request's.
enum class path_match {
    whole,          // the whole path
    one_segment,    // prefix + a last segment without '/' (possibly empty)
    nonempty_rest,  // prefix + anything but nothing
    close_suffix,   // prefix + … + "/close"
};

bool matches(path_match how, std::string_view route, std::string_view path) {
    switch (how) {
        case path_match::whole:
            return path == route;
        case path_match::one_segment:
            return path.starts_with(route) && path.find('/', route.size()) == std::string_view::npos;
        case path_match::nonempty_rest:
            return path.starts_with(route) && path.size() > route.size();
        case path_match::close_suffix:
            return path.starts_with(route) && path.ends_with("/close");
    }
    return false;
}

reply v2_reply(const v2::fields& f) {
    return reply{200, "application/xml", v2::to_xml(f)};
}

}  // namespace

// ---------------------------------------------------------------- call log

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
    if (draw("fault.query_404_proxy", subject, call, m->faults.query_404_proxy)) {
        end_call(log_id, 404);
        co_return reply{404, "text/html", "<html><body><h1>404 Not Found</h1></body></html>"};
    }
    if (draw("fault.query_500", subject, call, m->faults.query_500)) {
        end_call(log_id, 500);
        const char* code = m->variants.old_system_error_spelling ? "SYSTEMERROR" : "SYSTEM_ERROR";
        co_return co_await v3_signed(*m, req, 500, v3_error_body(code, "系统错误"));
    }
    if (req.method == "GET" && req.path == "/v3/billdownload/file") {
        std::pair<int, std::string> refused;
        if (auto file = v3_bill_download(*m, req, refused)) {
            end_call(log_id, file->status);
            co_return std::move(*file);
        }
        end_call(log_id, refused.first);
        co_return co_await v3_signed(*m, req, refused.first, std::move(refused.second));
    }
    std::pair<int, std::string> out = v3_dispatch(*m, req);
    co_await answer_late(*m, call);
    end_call(log_id, out.first);
    co_return co_await v3_signed(*m, req, out.first, std::move(out.second));
}

asio::awaitable<void> simulator::answer_late(merchant_state& m, std::uint64_t call) {
    if (!draw("fault.reply_slow", m.keys->mchid, call, m.faults.reply_slow)) co_return;
    // Real milliseconds, like query_slow: the point is to outlast the client's timeout.
    asio::steady_timer slow(io_, std::chrono::milliseconds(m.faults.slow_ms));
    co_await slow.async_wait(asio::as_tuple(asio::use_awaitable));
}

std::pair<int, std::string> simulator::v3_dispatch(merchant_state& m, const inbound_request& req) {
    struct route {
        std::string_view method;
        std::string_view path;
        path_match match;
        std::pair<int, std::string> (simulator::*handler)(merchant_state&, const inbound_request&);
    };
    static constexpr route routes[] = {
        {"POST", "/v3/pay/transactions/jsapi", path_match::whole, &simulator::v3_prepay},
        {"GET", by_out_trade_no, path_match::one_segment, &simulator::v3_query},
        {"GET", by_transaction_id, path_match::one_segment, &simulator::v3_query},
        {"POST", by_out_trade_no, path_match::close_suffix, &simulator::v3_close},
        {"POST", v3_refunds_path, path_match::whole, &simulator::v3_refund},
        {"GET", v3_refund_query_path, path_match::nonempty_rest, &simulator::v3_refund_query},
        {"GET", "/v3/certificates", path_match::whole, &simulator::v3_certificates},
        {"GET", "/v3/bill/tradebill", path_match::whole, &simulator::v3_trade_bill},
        {"GET", "/v3/bill/fundflowbill", path_match::whole, &simulator::v3_fundflow_bill},
    };
    for (const auto& r : routes) {
        if (req.method == r.method && matches(r.match, r.path, req.path)) return (this->*r.handler)(m, req);
    }
    return {404, v3_error_body("NOT_FOUND", "no such endpoint")};
}

asio::awaitable<reply> simulator::v3_signed(merchant_state& m, const inbound_request& req, int status,
                                            std::string body) {
    const sim_merchant& k = *m.keys;
    const bool use_public_key =
        k.mode == key_mode::public_key ||
        (k.mode == key_mode::mixed && req.header("Wechatpay-Serial").starts_with("PUB_KEY_ID_"));
    const platform_certificate& cert =
        k.certificates.at(m.answers_sign_with.value_or(k.certificates.size() - 1));
    const crypto::private_key key = use_public_key ? k.public_key_signer : cert.key;
    const std::string serial = use_public_key ? k.public_key_id : cert.serial;
    const std::int64_t at = now();
    const std::string signed_body = body;
    // Named, not a temporary inside co_await: GCC 12 mishandles those in coroutines.
    auto job = [signed_body, key, serial, at] {
        return protocol::v3::sign_message(signed_body, key, serial, at);
    };
    auto sig = co_await on_pool(signers_, std::move(job));
    reply r{status, body.empty() ? "" : "application/json", std::move(body)};
    r.headers.emplace_back("Request-ID",
                           uuid_from(seeded_hash(options_.seed, "request", k.mchid, m.api_calls),
                                     static_cast<std::uint64_t>(elapsed_ms())));
    if (!sig || !*sig) co_return r;  // cannot happen with a loaded key; answer unsigned rather than crash
    if (status >= 400 && draw("fault.unsigned_errors", k.mchid, m.api_calls, m.faults.unsigned_errors))
        co_return r;
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
    return {404, v3_error_body(m.variants.old_not_found_spelling ? "ORDERNOTEXIST" : "ORDER_NOT_EXIST",
                               "订单不存在")};
}

std::pair<int, std::string> simulator::v3_prepay(merchant_state& m, const inbound_request& req) {
    const json_body j(req.body);
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
    for (const auto& [name, value] :
         {std::pair{"mchid", &r.mchid}, std::pair{"appid", &r.appid},
          std::pair{"description", &r.description}, std::pair{"out_trade_no", &r.out_trade_no},
          std::pair{"notify_url", &r.notify_url}, std::pair{"payer.openid", &r.openid}}) {
        if (value->empty()) return {400, v3_error_body("PARAM_ERROR", std::string("缺少参数 ") + name)};
    }
    if (r.mchid != m.keys->mchid)
        return {400, v3_error_body("PARAM_ERROR", "mchid does not match the Authorization header")};
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
    // Re-entry compares parameters, not bytes: the same fields in another order or spacing are the same
    // request.
    std::string fingerprint;
    for (const auto* field :
         {&r.appid, &r.mchid, &r.description, &r.out_trade_no, &r.notify_url, &r.attach, &r.openid})
        fingerprint += *field + '\x1f';
    fingerprint += std::to_string(r.amount_total) + '\x1f' +
                   j.nested_str("amount", "currency").value_or("CNY") + '\x1f' +
                   j.str("time_expire").value_or("");
    r.fingerprint = hex_lower(crypto::sha256(fingerprint));
    const auto result = model_.prepay(r, now());
    switch (result.code) {
        case outcome::ok:
            return {200, json_object().add("prepay_id", result.record->prepay_id).str()};
        case outcome::already_paid:
            return {403, v3_error_body("TRADE_ERROR", result.message)};
        case outcome::closed:
            return {400, v3_error_body("ORDER_CLOSED", result.message)};
        case outcome::params_differ:
            return {400, v3_error_body("INVALID_REQUEST", result.message)};
        case outcome::limit_reached:
            return {503, v3_error_body("SERVICE_UNAVAILABLE", result.message)};
        default:
            return {400, v3_error_body("PARAM_ERROR", result.message)};
    }
}

std::pair<int, std::string> simulator::v3_query(merchant_state& m, const inbound_request& req) {
    const std::string mchid = query_param(req.query(), "mchid");
    if (mchid.empty()) return {400, v3_error_body("PARAM_ERROR", "缺少参数 mchid")};
    if (mchid != m.keys->mchid)
        return {400, v3_error_body("PARAM_ERROR", "mchid does not match the Authorization header")};
    const std::string_view path = req.path;
    const order_record* o =
        path.starts_with(by_out_trade_no)
            ? model_.find(mchid, path.substr(by_out_trade_no.size()), now())
            : model_.find_by_transaction(mchid, path.substr(by_transaction_id.size()), now());
    if (o == nullptr) return v3_not_found(m);
    return {200, transaction_object(*o, m.variants)};
}

std::pair<int, std::string> simulator::v3_close(merchant_state& m, const inbound_request& req) {
    const std::string_view path = req.path;
    const std::string_view out_trade_no = path.substr(
        by_out_trade_no.size(), path.size() - by_out_trade_no.size() - std::string_view("/close").size());
    const json_body j(req.body);
    if (!j.error.empty()) return {400, v3_error_body("PARAM_ERROR", j.error)};
    if (j.str("mchid").value_or("") != m.keys->mchid)
        return {400, v3_error_body("PARAM_ERROR", "mchid missing or not the Authorization header's")};
    const auto result = model_.close(m.keys->mchid, out_trade_no, now());
    switch (result.code) {
        case outcome::ok:
            return {204, ""};
        case outcome::not_found:
            return v3_not_found(m);
        case outcome::already_paid:
            return m.variants.close_paid_is_trade_error
                       ? std::pair{403, v3_error_body("TRADE_ERROR", "订单已支付")}
                       : std::pair{400, v3_error_body("ORDERPAID", "订单已支付")};
        case outcome::closed:
            if (m.variants.close_closed_is_error) return {400, v3_error_body("ORDER_CLOSED", "订单已关闭")};
            return {204, ""};
        default:
            return {400, v3_error_body("PARAM_ERROR", result.message)};
    }
}

std::pair<int, std::string> simulator::v3_certificates(merchant_state& m, const inbound_request&) {
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
    const v2::sign_type type =
        st != in->end() && st->second == "HMAC-SHA256" ? v2::sign_type::hmac_sha256 : v2::sign_type::md5;
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
    if (req.path == "/secapi/pay/refund" && options_.tls &&
        req.client_certificate_subject != m->keys->mchid) {
        // docs/protocol-notes.md §7.10: refunds need the merchant's own client certificate (issued by the
        // simulator's CA, common name = mchid); refused before anything is applied. Plain HTTP cannot carry
        // one and is not checked.
        out = v2_failure("CERT_ERROR", "the merchant's client certificate (apiclient_cert.pem) is required");
    } else if (draw("fault.query_500", subject, call, m->faults.query_500)) {
        out = v2_failure("SYSTEMERROR", "系统错误");
    } else if (req.path == "/pay/downloadbill" || req.path == "/pay/downloadfundflow") {
        reply file = v2_bill(*m, req, *in);  // the file itself, or an unsigned FAIL
        end_call(log_id, file.status);
        co_return file;
    } else {
        out = v2_dispatch(*m, req.path, *in, type);
        co_await answer_late(*m, call);
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

v2::fields simulator::v2_dispatch(merchant_state& m, std::string_view path, const v2::fields& in,
                                  v2::sign_type type) {
    struct route {
        std::string_view path;
        v2::fields (simulator::*handler)(merchant_state&, const v2::fields&, v2::sign_type);
    };
    static constexpr route routes[] = {
        {"/pay/unifiedorder", &simulator::v2_unifiedorder},
        {"/pay/orderquery", &simulator::v2_orderquery},
        {"/pay/closeorder", &simulator::v2_closeorder},
        {"/secapi/pay/refund", &simulator::v2_refund},  // WeChat asks for the API certificate here
        {"/pay/refundquery", &simulator::v2_refundquery},
    };
    for (const auto& r : routes) {
        if (path == r.path) return (this->*r.handler)(m, in, type);
    }
    return v2_failure("", "no such APIv2 endpoint");
}

v2::fields simulator::v2_unifiedorder(merchant_state& m, const v2::fields& in, v2::sign_type type) {
    for (const char* k : {"appid", "body", "out_trade_no", "total_fee", "spbill_create_ip", "notify_url",
                          "trade_type", "openid"})
        if (v2_param(in, k).empty()) return v2_failure("LACK_PARAMS", std::string("缺少参数 ") + k);
    if (v2_param(in, "appid") != m.keys->appid)
        return v2_failure("APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配");
    if (v2_param(in, "trade_type") != "JSAPI")
        return v2_failure("INVALID_REQUEST", "only trade_type JSAPI is simulated");
    order_request r;
    r.mchid = m.keys->mchid;
    r.appid = v2_param(in, "appid");
    r.description = v2_param(in, "body");
    r.out_trade_no = v2_param(in, "out_trade_no");
    r.notify_url = v2_param(in, "notify_url");
    r.openid = v2_param(in, "openid");
    r.attach = v2_param(in, "attach");
    const std::string fee = v2_param(in, "total_fee");
    if (!is_fen(fee)) return v2_failure("INVALID_REQUEST", "total_fee must be an integer number of fen");
    r.amount_total = std::stoll(fee);
    if (const std::string expire = v2_param(in, "time_expire"); !expire.empty()) {
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
            v2::fields f = v2_success();
            f["trade_type"] = "JSAPI";
            f["prepay_id"] = result.record->prepay_id;
            return f;
        }
        case outcome::already_paid:
            return v2_failure("ORDERPAID", result.message);
        case outcome::closed:
            return v2_failure("ORDERCLOSED", result.message);
        case outcome::params_differ:
            return v2_failure("INVALID_REQUEST", result.message);
        default:
            return v2_failure("INVALID_REQUEST", result.message);
    }
}

v2::fields simulator::v2_orderquery(merchant_state& m, const v2::fields& in, v2::sign_type) {
    const std::string& mchid = m.keys->mchid;
    const std::string tid = v2_param(in, "transaction_id");
    const order_record* o = !tid.empty() ? model_.find_by_transaction(mchid, tid, now())
                                         : model_.find(mchid, v2_param(in, "out_trade_no"), now());
    if (o == nullptr) return v2_failure("ORDERNOTEXIST", "订单不存在");
    return v2_order_fields(*o, "");
}

v2::fields simulator::v2_closeorder(merchant_state& m, const v2::fields& in, v2::sign_type) {
    const std::string& mchid = m.keys->mchid;
    const order_record* o = model_.find(mchid, v2_param(in, "out_trade_no"), now());
    if (o == nullptr) return v2_failure("ORDERNOTEXIST", "订单不存在");
    if (o->state == trade_state::notpay && now() - o->created_at < scaled(300'000).count() / 1000)
        return v2_failure("INVALID_REQUEST", "订单生成后需要5分钟后才能关单");
    const auto result = model_.close(mchid, v2_param(in, "out_trade_no"), now());
    if (result.code == outcome::already_paid) return v2_failure("ORDERPAID", "订单已支付");
    if (result.code == outcome::closed) return v2_failure("ORDERCLOSED", "订单已关闭");
    return v2_success();
}

}  // namespace wxrecon::sim
