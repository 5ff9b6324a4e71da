#include "wechat/pay_client.hpp"

#include <cstdio>

#include <simdjson.h>

#include "base/encoding.hpp"

namespace wxrecon::wechat {

namespace asio = boost::asio;
namespace v2 = protocol::v2;

std::string_view to_string(call_outcome o) noexcept {
    switch (o) {
        case call_outcome::ok:
            return "ok";
        case call_outcome::rejected:
            return "rejected";
        case call_outcome::rate_limited:
            return "rate_limited";
        case call_outcome::server_error:
            return "server_error";
        case call_outcome::forged:
            return "forged";
        case call_outcome::unreachable:
            return "unreachable";
    }
    return "?";
}

namespace {

// {"code":…,"message":…} of an APIv3 error body; empty when the body is something else.
std::pair<std::string, std::string> v3_error(std::string_view body) {
    simdjson::dom::parser parser;
    simdjson::padded_string padded(body);
    simdjson::dom::object obj;
    if (parser.parse(padded).get(obj) != simdjson::SUCCESS) return {};
    std::string_view code, message;
    if (obj["code"].get(code) != simdjson::SUCCESS) code = {};
    if (obj["message"].get(message) != simdjson::SUCCESS) message = {};
    return {std::string(code), std::string(message)};
}

bool is_rate_limit_code(std::string_view code) {
    return code == "FREQUENCY_LIMITED" || code == "RATELIMIT_EXCEEDED" || code == "RATE_LIMITED";
}

// An APIv3 error answer, read without verification as the official SDKs do: it is never applied as a fact.
// One without WeChat's code (a proxy's or load balancer's page, a bare 404) is not WeChat refusing the
// request: it is retried like a 5xx.
void read_v3_error(call_result& r) {
    auto [code, message] = v3_error(r.body);
    r.code = std::move(code);
    r.message = std::move(message);
    r.outcome = r.status == 429 || is_rate_limit_code(r.code) ? call_outcome::rate_limited
                : r.status >= 500 || r.code.empty()           ? call_outcome::server_error
                                                              : call_outcome::rejected;
    r.error = "HTTP " + std::to_string(r.status) + (r.code.empty() ? "" : " " + r.code) +
              (r.message.empty() ? "" : ": " + r.message);
}

}  // namespace

pay_client::pay_client(asio::any_io_executor ex, net::client_options options, wall_clock clock)
    : client_(std::move(ex), std::move(options)), clock_(std::move(clock)) {}

bool pay_client::try_backup(const merchant_access& m, const call_result& r, retry_safety safety) {
    if (m.api_backup_base.empty()) return false;
    if (r.outcome == call_outcome::unreachable) return safety == retry_safety::idempotent || !r.sent;
    return r.outcome == call_outcome::server_error && safety == retry_safety::idempotent;
}

asio::awaitable<call_result> pay_client::v3(const merchant_access& m, std::string method,
                                            std::string path_and_query, std::string body,
                                            retry_safety safety) {
    call_result r = co_await v3_once(m, m.api_base, method, path_and_query, body);
    if (try_backup(m, r, safety)) r = co_await v3_once(m, m.api_backup_base, method, path_and_query, body);
    co_return r;
}

asio::awaitable<call_result> pay_client::v3_once(const merchant_access& m, const std::string& base,
                                                 const std::string& method, const std::string& path_and_query,
                                                 const std::string& body) {
    call_result r;
    r.host = base;
    auto authorization = protocol::v3::sign_request(method, path_and_query, body, m.mchid, m.merchant_serial,
                                                    m.merchant_key, clock_.seconds());
    if (!authorization) {
        r.error = "cannot sign the request: " + authorization.err().message;
        co_return r;
    }
    net::outbound_request request;
    request.method = method;
    request.url = base + path_and_query;
    request.headers = {{"Authorization", *authorization}, {"Accept", "application/json"}};
    if (!body.empty()) request.headers.emplace_back("Content-Type", "application/json");
    if (!m.wechatpay_serial_to_send.empty())
        request.headers.emplace_back("Wechatpay-Serial", m.wechatpay_serial_to_send);
    request.body = body;
    const net::exchange ex = co_await client_.send(std::move(request));
    r.sent = ex.sent;
    if (!ex.response) {
        r.error = ex.error;
        co_return r;
    }
    const net::http_response& res = *ex.response;
    r.status = res.status;
    r.request_id = std::string(res.header("Request-ID"));
    r.body = res.body;
    const auto verdict =
        protocol::v3::verify_signature({res.header("Wechatpay-Timestamp"), res.header("Wechatpay-Nonce"),
                                        res.header("Wechatpay-Signature"), res.header("Wechatpay-Serial")},
                                       res.body, clock_.seconds(), m.find_key);
    r.verified = verdict.has_value();
    if (r.status >= 200 && r.status < 300) {
        // docs/protocol-notes.md §2.3: an unsigned or badly signed success is treated as forged, whatever it
        // says.
        if (!verdict) {
            r.outcome = call_outcome::forged;
            r.error = "answer signature: " + verdict.err().message;
            co_return r;
        }
        r.outcome = call_outcome::ok;
        co_return r;
    }
    read_v3_error(r);
    co_return r;
}

asio::awaitable<call_result> pay_client::v3_download(const merchant_access& m, std::string download_url,
                                                     std::string save_to) {
    call_result r;
    const auto url = net::parse_url(download_url);
    // The Authorization goes only where the merchant's API is: a download URL elsewhere is refused.
    const auto same_origin = [&](const std::string& base) {
        const auto b = net::parse_url(base);
        return url && b && b->scheme == url->scheme && b->host == url->host && b->port == url->port;
    };
    if (!url ||
        !(same_origin(m.api_base) || (!m.api_backup_base.empty() && same_origin(m.api_backup_base)))) {
        r.outcome = call_outcome::rejected;
        r.error = "download_url is not on the merchant's API host: " + log_quote(download_url);
        co_return r;
    }
    r.host = download_url.substr(0, download_url.size() - url->target.size());
    auto authorization = protocol::v3::sign_request("GET", url->target, "", m.mchid, m.merchant_serial,
                                                    m.merchant_key, clock_.seconds());
    if (!authorization) {
        r.error = "cannot sign the request: " + authorization.err().message;
        co_return r;
    }
    net::outbound_request request;
    request.url = std::move(download_url);
    request.headers = {{"Authorization", *authorization}};
    request.save_to = std::move(save_to);
    const net::exchange ex = co_await client_.send(std::move(request));
    r.sent = ex.sent;
    if (!ex.response) {
        r.error = ex.error;
        co_return r;
    }
    r.status = ex.response->status;
    r.request_id = std::string(ex.response->header("Request-ID"));
    // docs/protocol-notes.md §6.3: the file is not signed; the caller checks it against hash_value.
    if (r.status >= 200 && r.status < 300) {
        r.outcome = call_outcome::ok;
        co_return r;
    }
    r.body = ex.response->body;
    read_v3_error(r);
    co_return r;
}

asio::awaitable<call_result> pay_client::v2_download(const merchant_access& m, std::string path,
                                                     v2::fields fields, std::string save_to) {
    call_result r;
    r.host = m.api_base;
    fields["mch_id"] = m.mchid;
    fields["nonce_str"] = crypto::random_alnum(32);
    fields["sign_type"] = "HMAC-SHA256";
    fields.erase("sign");
    fields["sign"] = v2::sign(fields, m.apiv2_key, v2::sign_type::hmac_sha256);
    net::outbound_request request;
    request.method = "POST";
    request.url = m.api_base + path;
    request.headers = {{"Content-Type", "text/xml"}};
    request.body = v2::to_xml(fields);
    request.save_to = save_to;
    const net::exchange ex = co_await client_.send(std::move(request));
    r.sent = ex.sent;
    if (!ex.response) {
        r.error = ex.error;
        co_return r;
    }
    r.status = ex.response->status;
    if (r.status >= 500) {
        r.outcome = call_outcome::server_error;
        r.error = "HTTP " + std::to_string(r.status);
        co_return r;
    }
    // docs/protocol-notes.md §7.9: the file itself on success, an XML with return_code FAIL otherwise.
    std::string head = ex.response->body;
    if (head.empty()) {
        std::FILE* f = std::fopen(save_to.c_str(), "rb");
        if (f != nullptr) {
            head.resize(4096);
            head.resize(std::fread(head.data(), 1, head.size(), f));
            std::fclose(f);
        }
    }
    if (!head.starts_with("<xml>")) {
        r.outcome = call_outcome::ok;
        co_return r;
    }
    auto parsed = v2::parse_xml(head);
    r.body = head;
    if (!parsed) {
        r.outcome = call_outcome::server_error;
        r.error = "answer is neither a bill nor APIv2 XML: " + parsed.err().message;
        co_return r;
    }
    r.fields = std::move(*parsed);
    const auto field = [&](std::string_view k) {
        const auto it = r.fields.find(k);
        return it == r.fields.end() ? std::string() : it->second;
    };
    r.code = field("error_code").empty() ? field("err_code") : field("error_code");
    r.message = field("return_msg");
    r.outcome = r.code == "SYSTEMERROR" ? call_outcome::server_error
                : is_rate_limit_code(r.code) || r.message.find("频率") != std::string::npos
                    ? call_outcome::rate_limited
                    : call_outcome::rejected;
    r.error = "return_code " + field("return_code") + (r.code.empty() ? "" : " " + r.code) +
              (r.message.empty() ? "" : ": " + r.message);
    co_return r;
}

asio::awaitable<call_result> pay_client::v2(const merchant_access& m, std::string path, v2::fields fields,
                                            v2::sign_type type, retry_safety safety) {
    fields["mch_id"] = m.mchid;
    fields["nonce_str"] = crypto::random_alnum(32);
    fields["sign_type"] = type == v2::sign_type::md5 ? "MD5" : "HMAC-SHA256";
    fields.erase("sign");
    fields["sign"] = v2::sign(fields, m.apiv2_key, type);
    const std::string xml = v2::to_xml(fields);
    call_result r = co_await v2_once(m, m.api_base, path, xml);
    if (try_backup(m, r, safety)) r = co_await v2_once(m, m.api_backup_base, path, xml);
    co_return r;
}

asio::awaitable<call_result> pay_client::v2_once(const merchant_access& m, const std::string& base,
                                                 const std::string& path, const std::string& xml) {
    call_result r;
    r.host = base;
    net::outbound_request request;
    request.method = "POST";
    request.url = base + path;
    request.headers = {{"Content-Type", "text/xml"}};
    request.body = xml;
    const net::exchange ex = co_await client_.send(std::move(request));
    r.sent = ex.sent;
    if (!ex.response) {
        r.error = ex.error;
        co_return r;
    }
    r.status = ex.response->status;
    r.body = ex.response->body;
    if (r.status >= 500) {
        r.outcome = call_outcome::server_error;
        r.error = "HTTP " + std::to_string(r.status);
        co_return r;
    }
    auto parsed = v2::parse_xml(r.body);
    if (!parsed) {
        r.outcome = call_outcome::server_error;
        r.error = "answer is not APIv2 XML: " + parsed.err().message;
        co_return r;
    }
    r.fields = std::move(*parsed);
    auto field = [&](std::string_view k) {
        const auto it = r.fields.find(k);
        return it == r.fields.end() ? std::string() : it->second;
    };
    if (field("return_code") != "SUCCESS") {
        // Communication-level failure: no sign to check, nothing to apply.
        r.message = field("return_msg");
        r.code = r.message.find("频率") != std::string::npos ? "FREQUENCY_LIMITED" : "FAIL";
        r.outcome = r.code == "FREQUENCY_LIMITED" ? call_outcome::rate_limited : call_outcome::rejected;
        r.error = "return_code FAIL: " + r.message;
        co_return r;
    }
    if (!v2::verify(r.fields, m.apiv2_key)) {
        r.outcome = call_outcome::forged;
        r.error = "answer sign does not verify";
        co_return r;
    }
    r.verified = true;
    if (field("result_code") != "SUCCESS") {
        r.code = field("err_code");
        r.message = field("err_code_des");
        r.outcome = r.code == "SYSTEMERROR" || r.code == "BANKERROR" ? call_outcome::server_error
                    : is_rate_limit_code(r.code)                     ? call_outcome::rate_limited
                                                                     : call_outcome::rejected;
        r.error = "result_code FAIL " + r.code + (r.message.empty() ? "" : ": " + r.message);
        co_return r;
    }
    r.outcome = call_outcome::ok;
    co_return r;
}

result<std::vector<crypto::certificate>> read_certificates(const call_result& answer,
                                                           std::string_view apiv3_key) {
    if (answer.outcome != call_outcome::ok)
        return make_error(errc::bad_signature, "certificate list not verified: " + answer.error);
    simdjson::dom::parser parser;
    simdjson::padded_string padded(answer.body);
    simdjson::dom::array data;
    if (parser.parse(padded)["data"].get(data) != simdjson::SUCCESS)
        return make_error(errc::parse_error, "certificate list has no data array");
    std::vector<crypto::certificate> out;
    for (auto item : data) {
        std::string_view serial, nonce, aad, ciphertext;
        if (item["serial_no"].get(serial) != simdjson::SUCCESS ||
            item["encrypt_certificate"]["nonce"].get(nonce) != simdjson::SUCCESS ||
            item["encrypt_certificate"]["associated_data"].get(aad) != simdjson::SUCCESS ||
            item["encrypt_certificate"]["ciphertext"].get(ciphertext) != simdjson::SUCCESS)
            return make_error(errc::parse_error,
                              "certificate entry lacks serial_no or encrypt_certificate fields");
        const auto raw = base64_decode(ciphertext);
        if (!raw)
            return make_error(errc::parse_error,
                              "certificate " + std::string(serial) + ": ciphertext is not Base64");
        auto pem = crypto::aes256_gcm_decrypt(apiv3_key, nonce, aad, *raw);
        if (!pem)
            return make_error(errc::decrypt_failed,
                              "certificate " + std::string(serial) + ": " + pem.err().message);
        auto cert = crypto::load_certificate_pem(*pem);
        if (!cert)
            return make_error(errc::parse_error,
                              "certificate " + std::string(serial) + ": " + cert.err().message);
        if (!iequals(cert->serial, serial))
            return make_error(errc::bad_signature, "certificate serial " + cert->serial +
                                                       " is not the listed " + std::string(serial));
        out.push_back(std::move(*cert));
    }
    return out;
}

}  // namespace wxrecon::wechat
