#include "protocol/v3.hpp"

#include <simdjson.h>
#include <algorithm>
#include <charconv>
#include <optional>
#include <vector>

#include "base/encoding.hpp"
#include "base/json_writer.hpp"
#include "base/time.hpp"

namespace wxrecon::protocol::v3 {
namespace {

using simdjson::dom::element;

simdjson::dom::parser& thread_parser() {
    thread_local simdjson::dom::parser parser;
    return parser;
}

error parse_failure(std::string message) {
    return make_error(errc::parse_error, std::move(message));
}

// A key twice in one object, anywhere in the document. The readers here take its first value and
// PostgreSQL's jsonb keeps the last: what is stored must mean what was read, so such a document is refused.
std::optional<std::string> duplicate_key(element e) {
    simdjson::dom::object obj;
    simdjson::dom::array arr;
    if (e.get(obj) == simdjson::SUCCESS) {
        std::vector<std::string_view> keys;
        for (const auto field : obj) {
            keys.push_back(field.key);
            if (auto inner = duplicate_key(field.value)) return inner;
        }
        std::sort(keys.begin(), keys.end());
        if (const auto twice = std::adjacent_find(keys.begin(), keys.end()); twice != keys.end())
            return std::string(*twice);
    } else if (e.get(arr) == simdjson::SUCCESS) {
        for (const element item : arr)
            if (auto inner = duplicate_key(item)) return inner;
    }
    return std::nullopt;
}

result<element> parse_object(std::string_view text, std::string_view what) {
    element doc;
    if (auto e = thread_parser().parse(text.data(), text.size()).get(doc); e)
        return parse_failure(std::string(what) + " is not JSON: " + simdjson::error_message(e));
    if (!doc.is_object()) return parse_failure(std::string(what) + " is not a JSON object");
    if (auto twice = duplicate_key(doc))
        return parse_failure(std::string(what) + " has the field \"" + twice->substr(0, 64) +
                             "\" more than once");
    return doc;
}

// Field readers: a missing required field is an error naming it; optional ones may be absent.
result<std::string> required_string(element obj, std::string_view key) {
    std::string_view v;
    if (obj.at_key(key).get(v) != simdjson::SUCCESS)
        return parse_failure("field \"" + std::string(key) + "\" missing or not a string");
    return std::string(v);
}

std::string optional_string(element obj, std::string_view key) {
    std::string_view v;
    if (obj.at_key(key).get(v) != simdjson::SUCCESS) return {};
    return std::string(v);
}

result<std::optional<std::int64_t>> optional_int(element obj, std::string_view key) {
    element v;
    if (obj.at_key(key).get(v) != simdjson::SUCCESS || v.is_null()) return std::optional<std::int64_t>{};
    std::int64_t n = 0;
    if (v.get(n) != simdjson::SUCCESS)
        return parse_failure("field \"" + std::string(key) + "\" is not an integer");
    return std::optional<std::int64_t>{n};
}

result<std::optional<domain::micros>> optional_time(element obj, std::string_view key) {
    const std::string text = optional_string(obj, key);
    if (text.empty()) return std::optional<domain::micros>{};
    auto t = parse_rfc3339(text);
    if (!t) return parse_failure("field \"" + std::string(key) + "\": " + t.err().message);
    return std::optional<domain::micros>{*t * 1'000'000};
}

// A nested object, or nullopt when absent or not an object (a default element must never be touched).
std::optional<element> sub_object(element obj, std::string_view key) {
    element v;
    if (obj.at_key(key).get(v) != simdjson::SUCCESS || !v.is_object()) return std::nullopt;
    return v;
}

}  // namespace

bool is_probe(std::string_view signature) noexcept {
    return signature.starts_with(probe_prefix);
}

std::string message_to_verify(std::string_view timestamp, std::string_view nonce, std::string_view body) {
    std::string m;
    m.reserve(timestamp.size() + nonce.size() + body.size() + 3);
    m.append(timestamp).push_back('\n');
    m.append(nonce).push_back('\n');
    m.append(body).push_back('\n');
    return m;
}

namespace {

// How far a timestamp header is from now, in seconds; nullopt when it is not a Unix time (digits only, no
// sign). Unsigned, so no value a sender picks can overflow the subtraction.
std::optional<std::uint64_t> seconds_from_now(std::string_view timestamp, std::int64_t now_unix) {
    std::uint64_t ts = 0;
    const auto [end, ec] = std::from_chars(timestamp.data(), timestamp.data() + timestamp.size(), ts);
    if (ec != std::errc{} || end != timestamp.data() + timestamp.size()) return std::nullopt;
    const auto now = static_cast<std::uint64_t>(std::max<std::int64_t>(now_unix, 0));
    return ts > now ? ts - now : now - ts;
}

}  // namespace

status verify_signature(const signature_headers& h, std::string_view body, std::int64_t now_unix,
                        const key_lookup& find_key) {
    if (h.timestamp.empty() || h.nonce.empty() || h.signature.empty() || h.serial.empty())
        return make_error(errc::missing_signature,
                          "missing Wechatpay-Timestamp, -Nonce, -Signature or -Serial header");
    const auto skew = seconds_from_now(h.timestamp, now_unix);
    if (!skew) return make_error(errc::bad_signature, "Wechatpay-Timestamp is not a Unix time");
    if (*skew > static_cast<std::uint64_t>(timestamp_window_seconds))
        return make_error(errc::stale_timestamp, "Wechatpay-Timestamp is " + std::to_string(*skew) +
                                                     " s away from now (limit 300 s)");
    const crypto::public_key* key = find_key(h.serial, now_unix);
    if (key == nullptr)
        return make_error(errc::unknown_serial,
                          "no trusted WeChat Pay key has serial " + std::string(h.serial));
    const auto raw = base64_decode(h.signature);
    if (!raw) return make_error(errc::bad_signature, "Wechatpay-Signature is not Base64");
    if (!crypto::rsa_sha256_verify(*key, message_to_verify(h.timestamp, h.nonce, body), *raw))
        return make_error(errc::bad_signature, "Wechatpay-Signature does not verify");
    return ok;
}

result<envelope> parse_envelope(std::string_view body) {
    auto doc = parse_object(body, "notification body");
    if (!doc) return doc.err();
    envelope env;
    auto id = required_string(*doc, "id");
    auto event_type = required_string(*doc, "event_type");
    if (!id) return id.err();
    if (!event_type) return event_type.err();
    env.id = std::move(*id);
    env.event_type = std::move(*event_type);
    env.create_time = optional_string(*doc, "create_time");
    env.resource_type = optional_string(*doc, "resource_type");
    env.summary = optional_string(*doc, "summary");
    const auto resource_obj = sub_object(*doc, "resource");
    if (!resource_obj) return parse_failure("field \"resource\" missing or not an object");
    const element res = *resource_obj;
    auto algorithm = required_string(res, "algorithm");
    auto ciphertext = required_string(res, "ciphertext");
    auto nonce = required_string(res, "nonce");
    if (!algorithm) return algorithm.err();
    if (!ciphertext) return ciphertext.err();
    if (!nonce) return nonce.err();
    env.res.algorithm = std::move(*algorithm);
    env.res.ciphertext = std::move(*ciphertext);
    env.res.nonce = std::move(*nonce);
    env.res.associated_data = optional_string(res, "associated_data");
    env.res.original_type = optional_string(res, "original_type");
    return env;
}

result<std::string> decrypt_resource(const resource& r, std::string_view apiv3_key) {
    if (r.algorithm != "AEAD_AES_256_GCM")
        return make_error(errc::decrypt_failed,
                          "resource.algorithm \"" + r.algorithm + "\" is not AEAD_AES_256_GCM");
    const auto raw = base64_decode(r.ciphertext);
    if (!raw) return make_error(errc::decrypt_failed, "resource.ciphertext is not Base64");
    auto plain = crypto::aes256_gcm_decrypt(apiv3_key, r.nonce, r.associated_data, *raw);
    if (!plain) return make_error(errc::decrypt_failed, "resource does not decrypt: " + plain.err().message);
    return plain;
}

result<decrypted_payment> parse_transaction(std::string_view plaintext) {
    auto doc = parse_object(plaintext, "decrypted transaction");
    if (!doc) return doc.err();
    decrypted_payment out;
    auto mchid = required_string(*doc, "mchid");
    auto out_trade_no = required_string(*doc, "out_trade_no");
    auto state = required_string(*doc, "trade_state");
    if (!mchid) return mchid.err();
    if (!out_trade_no) return out_trade_no.err();
    if (!state) return state.err();
    const auto parsed_state = domain::parse_trade_state(*state);
    if (!parsed_state) return parse_failure("trade_state \"" + *state + "\" is not a known state");
    out.mchid = std::move(*mchid);
    auto& p = out.payment;
    p.out_trade_no = std::move(*out_trade_no);
    p.state = *parsed_state;
    p.state_desc = optional_string(*doc, "trade_state_desc");
    p.appid = optional_string(*doc, "appid");
    p.transaction_id = optional_string(*doc, "transaction_id");
    p.trade_type = optional_string(*doc, "trade_type");
    p.bank_type = optional_string(*doc, "bank_type");
    if (const auto payer = sub_object(*doc, "payer")) p.payer_openid = optional_string(*payer, "openid");
    auto success_time = optional_time(*doc, "success_time");
    if (!success_time) return success_time.err();
    p.success_time = *success_time;
    if (const auto amount_obj = sub_object(*doc, "amount")) {
        const element amount = *amount_obj;
        auto total = optional_int(amount, "total");
        auto payer_total = optional_int(amount, "payer_total");
        if (!total) return total.err();
        if (!payer_total) return payer_total.err();
        p.amount_total = *total;
        p.payer_total = *payer_total;
        p.currency = optional_string(amount, "currency");
    }
    if (p.amount_total && *p.amount_total < 0) return parse_failure("amount.total is negative");
    if (p.payer_total && *p.payer_total < 0) return parse_failure("amount.payer_total is negative");
    if (p.out_trade_no.empty()) return parse_failure("out_trade_no is empty");
    return out;
}

namespace {

// A refund object: a notification's decrypted resource (with mchid), or the refund API's answer (without).
result<decrypted_refund> read_refund(std::string_view text, bool with_mchid) {
    auto doc = parse_object(text, with_mchid ? "decrypted refund" : "refund answer");
    if (!doc) return doc.err();
    decrypted_refund out;
    auto mchid = with_mchid ? required_string(*doc, "mchid") : result<std::string>(std::string());
    auto out_trade_no = required_string(*doc, "out_trade_no");
    auto out_refund_no = required_string(*doc, "out_refund_no");
    if (!mchid) return mchid.err();
    if (!out_trade_no) return out_trade_no.err();
    if (!out_refund_no) return out_refund_no.err();
    // Notifications say refund_status, the refund API says status.
    std::string status_text = optional_string(*doc, "refund_status");
    if (status_text.empty()) status_text = optional_string(*doc, "status");
    const auto status = domain::parse_refund_status(status_text);
    if (!status) return parse_failure("refund_status \"" + status_text + "\" is not a known status");
    out.mchid = std::move(*mchid);
    auto& r = out.refund;
    r.out_trade_no = std::move(*out_trade_no);
    r.out_refund_no = std::move(*out_refund_no);
    r.status = *status;
    r.refund_id = optional_string(*doc, "refund_id");
    r.transaction_id = optional_string(*doc, "transaction_id");
    auto success_time = optional_time(*doc, "success_time");
    if (!success_time) return success_time.err();
    r.success_time = *success_time;
    const auto amount_obj = sub_object(*doc, "amount");
    if (!amount_obj) return parse_failure("field \"amount\" missing or not an object");
    const element amount = *amount_obj;
    auto refund = optional_int(amount, "refund");
    auto total = optional_int(amount, "total");
    if (!refund) return refund.err();
    if (!total) return total.err();
    if (!*refund || **refund < 0) return parse_failure("amount.refund missing or negative");
    if (*total && **total < 0) return parse_failure("amount.total is negative");
    r.amount_refund = **refund;
    r.amount_total = *total;
    if (r.out_trade_no.empty() || r.out_refund_no.empty())
        return parse_failure("out_trade_no or out_refund_no is empty");
    return out;
}

}  // namespace

result<decrypted_refund> parse_refund(std::string_view plaintext) {
    return read_refund(plaintext, true);
}

result<domain::refund_fact> parse_refund_answer(std::string_view body) {
    auto r = read_refund(body, false);
    if (!r) return r.err();
    return std::move(r->refund);
}

std::string transaction_json(std::string_view mchid, const domain::payment_fact& p) {
    json_object o;
    o.add("mchid", mchid).add("appid", p.appid).add("out_trade_no", p.out_trade_no);
    if (!p.transaction_id.empty()) o.add("transaction_id", p.transaction_id);
    o.add("trade_type", p.trade_type.empty() ? "JSAPI" : p.trade_type)
        .add("trade_state", domain::to_string(p.state))
        .add("trade_state_desc", p.state_desc);
    if (!p.bank_type.empty()) o.add("bank_type", p.bank_type);
    if (p.success_time) o.add("success_time", format_rfc3339(*p.success_time / 1'000'000));
    if (!p.payer_openid.empty()) o.add_raw("payer", json_object().add("openid", p.payer_openid).str());
    if (p.amount_total) {
        json_object amount;
        amount.add("total", *p.amount_total);
        if (p.payer_total) amount.add("payer_total", *p.payer_total);
        const std::string currency = p.currency.empty() ? "CNY" : p.currency;
        amount.add("currency", currency).add("payer_currency", currency);
        o.add_raw("amount", amount.str());
    }
    return o.str();
}

std::string refund_json(std::string_view mchid, const domain::refund_fact& r) {
    json_object amount;
    if (r.amount_total) amount.add("total", *r.amount_total);
    amount.add("refund", r.amount_refund);
    if (r.amount_total) amount.add("payer_total", *r.amount_total);
    amount.add("payer_refund", r.amount_refund);
    json_object o;
    o.add("mchid", mchid)
        .add("out_trade_no", r.out_trade_no)
        .add("transaction_id", r.transaction_id)
        .add("out_refund_no", r.out_refund_no)
        .add("refund_id", r.refund_id)
        .add("refund_status", domain::to_string(r.status));
    if (r.success_time) o.add("success_time", format_rfc3339(*r.success_time / 1'000'000));
    o.add("user_received_account", "支付用户零钱").add_raw("amount", amount.str());
    return o.str();
}

std::string message_to_sign(std::string_view method, std::string_view canonical_url,
                            std::string_view timestamp, std::string_view nonce, std::string_view body) {
    std::string m;
    m.reserve(method.size() + canonical_url.size() + timestamp.size() + nonce.size() + body.size() + 5);
    m.append(method).push_back('\n');
    m.append(canonical_url).push_back('\n');
    m.append(timestamp).push_back('\n');
    m.append(nonce).push_back('\n');
    m.append(body).push_back('\n');
    return m;
}

std::string format_authorization(const authorization& a) {
    std::string h(auth_scheme);
    h += " mchid=\"" + a.mchid + "\",nonce_str=\"" + a.nonce_str + "\",timestamp=\"" + a.timestamp +
         "\",serial_no=\"" + a.serial_no + "\",signature=\"" + a.signature + "\"";
    return h;
}

result<authorization> parse_authorization(std::string_view header) {
    if (!header.starts_with(auth_scheme) || header.size() <= auth_scheme.size() ||
        header[auth_scheme.size()] != ' ')
        return make_error(errc::invalid_argument,
                          "Authorization does not start with \"" + std::string(auth_scheme) + " \"");
    std::string_view rest = header.substr(auth_scheme.size() + 1);
    authorization a;
    while (!rest.empty()) {
        const auto eq = rest.find('=');
        if (eq == std::string_view::npos || eq + 1 >= rest.size() || rest[eq + 1] != '"')
            return make_error(errc::invalid_argument, "Authorization parameters must be key=\"value\" pairs");
        const std::string_view key = rest.substr(0, eq);
        const auto close = rest.find('"', eq + 2);
        if (close == std::string_view::npos)
            return make_error(errc::invalid_argument, "Authorization: unterminated value");
        const std::string value(rest.substr(eq + 2, close - eq - 2));
        std::string* slot = key == "mchid"       ? &a.mchid
                            : key == "nonce_str" ? &a.nonce_str
                            : key == "timestamp" ? &a.timestamp
                            : key == "serial_no" ? &a.serial_no
                            : key == "signature" ? &a.signature
                                                 : nullptr;
        if (slot == nullptr)
            return make_error(errc::invalid_argument, "Authorization: unknown parameter " + std::string(key));
        if (!slot->empty())
            return make_error(errc::invalid_argument,
                              "Authorization: repeated parameter " + std::string(key));
        *slot = value;
        rest.remove_prefix(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ',')
                return make_error(errc::invalid_argument, "Authorization: expected ',' between pairs");
            rest.remove_prefix(1);
        }
    }
    if (a.mchid.empty() || a.nonce_str.empty() || a.timestamp.empty() || a.serial_no.empty() ||
        a.signature.empty())
        return make_error(errc::invalid_argument,
                          "Authorization needs mchid, nonce_str, timestamp, serial_no and signature");
    return a;
}

result<std::string> sign_request(std::string_view method, std::string_view canonical_url,
                                 std::string_view body, std::string_view mchid,
                                 std::string_view merchant_serial, const crypto::private_key& merchant_key,
                                 std::int64_t now_unix) {
    authorization a;
    a.mchid = std::string(mchid);
    a.nonce_str = crypto::random_alnum(32);
    a.timestamp = std::to_string(now_unix);
    a.serial_no = std::string(merchant_serial);
    auto sig = crypto::rsa_sha256_sign(
        merchant_key, message_to_sign(method, canonical_url, a.timestamp, a.nonce_str, body));
    if (!sig) return sig.err();
    a.signature = base64_encode(*sig);
    return format_authorization(a);
}

status verify_request(const authorization& a, std::string_view method, std::string_view canonical_url,
                      std::string_view body, const crypto::public_key& merchant_key, std::int64_t now_unix) {
    const auto skew = seconds_from_now(a.timestamp, now_unix);
    if (!skew) return make_error(errc::invalid_argument, "Authorization timestamp is not a Unix time");
    if (*skew > static_cast<std::uint64_t>(timestamp_window_seconds))
        return make_error(errc::stale_timestamp, "Authorization timestamp is " + std::to_string(*skew) +
                                                     " s away from now (limit 300 s)");
    const auto raw = base64_decode(a.signature);
    if (!raw) return make_error(errc::bad_signature, "Authorization signature is not Base64");
    if (!crypto::rsa_sha256_verify(
            merchant_key, message_to_sign(method, canonical_url, a.timestamp, a.nonce_str, body), *raw))
        return make_error(errc::bad_signature, "Authorization signature does not verify");
    return ok;
}

result<response_signature> sign_message(std::string_view body, const crypto::private_key& wechatpay_key,
                                        std::string_view serial, std::int64_t now_unix) {
    response_signature out;
    out.timestamp = std::to_string(now_unix);
    out.nonce = crypto::random_alnum(32);
    out.serial = std::string(serial);
    auto sig = crypto::rsa_sha256_sign(wechatpay_key, message_to_verify(out.timestamp, out.nonce, body));
    if (!sig) return sig.err();
    out.signature = base64_encode(*sig);
    return out;
}

result<signed_notification> make_notification(const notification_spec& spec, std::string_view apiv3_key,
                                              const crypto::private_key& wechatpay_key,
                                              std::string_view serial, std::int64_t now_unix) {
    const std::string nonce = crypto::random_alnum(12);
    auto sealed = crypto::aes256_gcm_encrypt(apiv3_key, nonce, spec.associated_data, spec.plaintext);
    if (!sealed) return sealed.err();
    json_object res;
    res.add("original_type", spec.original_type)
        .add("algorithm", "AEAD_AES_256_GCM")
        .add("ciphertext", base64_encode(*sealed))
        .add("associated_data", spec.associated_data)
        .add("nonce", nonce);
    json_object env;
    env.add("id", spec.id)
        .add("create_time", spec.create_time)
        .add("resource_type", "encrypt-resource")
        .add("event_type", spec.event_type)
        .add("summary", spec.summary)
        .add_raw("resource", res.str());
    signed_notification n;
    n.body = env.str();
    auto sig = sign_message(n.body, wechatpay_key, serial, now_unix);
    if (!sig) return sig.err();
    n.timestamp = std::move(sig->timestamp);
    n.nonce = std::move(sig->nonce);
    n.signature = std::move(sig->signature);
    n.serial = std::move(sig->serial);
    return n;
}

}  // namespace wxrecon::protocol::v3
