// APIv3 notifications: the Wechatpay-* signature (checked before anything in
// the body is trusted), the envelope, AES-256-GCM resource decryption and the
// decrypted payment / refund objects. Also the inverse, for tools and tests.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "crypto/crypto.hpp"
#include "domain/facts.hpp"

namespace wxrecon::protocol::v3 {

inline constexpr std::string_view probe_prefix = "WECHATPAY/SIGNTEST/";
inline constexpr std::int64_t timestamp_window_seconds = 300;

struct signature_headers {
    std::string_view timestamp;  // Wechatpay-Timestamp
    std::string_view nonce;      // Wechatpay-Nonce
    std::string_view signature;  // Wechatpay-Signature (Base64)
    std::string_view serial;     // Wechatpay-Serial
};

bool is_probe(std::string_view signature) noexcept;

// "<timestamp>\n<nonce>\n<body>\n"
std::string message_to_verify(std::string_view timestamp, std::string_view nonce, std::string_view body);

// The key trusted for a serial at a moment (Unix seconds): nullptr when none is, a certificate's key
// only between its notBefore and notAfter.
using key_lookup = std::function<const crypto::public_key*(std::string_view serial, std::int64_t now_unix)>;

// docs/protocol-notes.md §2.3 in order: headers present, timestamp within 300 s of now, key chosen by serial,
// RSA-SHA256 over the raw body. Fails with invalid_argument (missing/garbled header), stale_timestamp,
// unknown_serial or bad_signature.
status verify_signature(const signature_headers& h, std::string_view body, std::int64_t now_unix,
                        const key_lookup& find_key);

struct resource {
    std::string algorithm;
    std::string ciphertext;  // Base64
    std::string nonce;
    std::string associated_data;
    std::string original_type;
};

struct envelope {
    std::string id;
    std::string create_time;
    std::string event_type;
    std::string resource_type;
    std::string summary;
    resource res;
};

// Parses the envelope of a verified body; missing or mistyped fields are errc::parse_error.
result<envelope> parse_envelope(std::string_view body);
result<std::string> decrypt_resource(const resource& r, std::string_view apiv3_key);

// Decrypted objects. mchid is returned separately: it is checked against the path, not stored in the fact.
struct decrypted_payment {
    std::string mchid;
    domain::payment_fact payment;
};
struct decrypted_refund {
    std::string mchid;
    domain::refund_fact refund;
};
result<decrypted_payment> parse_transaction(std::string_view plaintext);
result<decrypted_refund> parse_refund(std::string_view plaintext);
// A verified answer of the refund API (create or query, docs/protocol-notes.md §4.6): the refund object
// without mchid, its status as `status`.
result<domain::refund_fact> parse_refund_answer(std::string_view body);

// ---- APIv3 request signing (docs/protocol-notes.md §1): the merchant signs, WeChat Pay (and the simulator)
// verifies ----

inline constexpr std::string_view auth_scheme = "WECHATPAY2-SHA256-RSA2048";

// "<METHOD>\n<canonical URL>\n<timestamp>\n<nonce>\n<body>\n"
std::string message_to_sign(std::string_view method, std::string_view canonical_url,
                            std::string_view timestamp, std::string_view nonce, std::string_view body);

struct authorization {
    std::string mchid;
    std::string nonce_str;
    std::string timestamp;
    std::string serial_no;  // the merchant's API certificate serial
    std::string signature;  // Base64
};
// The Authorization header value (scheme, then the five key="value" pairs without spaces).
std::string format_authorization(const authorization& a);
// Parses a header value; the pairs may come in any order. invalid_argument names what is wrong.
result<authorization> parse_authorization(std::string_view header);
// Signs a request with the merchant key: fresh nonce, the given time, header value ready to send.
result<std::string> sign_request(std::string_view method, std::string_view canonical_url,
                                 std::string_view body, std::string_view mchid,
                                 std::string_view merchant_serial, const crypto::private_key& merchant_key,
                                 std::int64_t now_unix);
// Verifies a parsed Authorization against the request: timestamp within 300 s, RSA-SHA256 with the
// merchant's public key. Fails with stale_timestamp or bad_signature.
status verify_request(const authorization& a, std::string_view method, std::string_view canonical_url,
                      std::string_view body, const crypto::public_key& merchant_key, std::int64_t now_unix);

// ---- the WeChat Pay side, for the simulator, the load program and tests ----

struct response_signature {
    std::string timestamp;
    std::string nonce;
    std::string signature;
    std::string serial;
};
// Signs a response or notification body like WeChat Pay: Wechatpay-Timestamp/-Nonce/-Signature/-Serial.
result<response_signature> sign_message(std::string_view body, const crypto::private_key& wechatpay_key,
                                        std::string_view serial, std::int64_t now_unix);

std::string transaction_json(std::string_view mchid, const domain::payment_fact& p);
std::string refund_json(std::string_view mchid, const domain::refund_fact& r);

struct notification_spec {
    std::string id;
    std::string create_time;  // RFC 3339
    std::string event_type;   // TRANSACTION.SUCCESS, REFUND.SUCCESS ...
    std::string summary;
    std::string original_type;    // transaction / refund
    std::string associated_data;  // transaction / refund
    std::string plaintext;        // the business object JSON
};

struct signed_notification {
    std::string body;
    std::string timestamp;
    std::string nonce;
    std::string signature;
    std::string serial;
};

// Encrypts plaintext with a fresh nonce, builds the envelope and signs it like WeChat Pay does.
result<signed_notification> make_notification(const notification_spec& spec, std::string_view apiv3_key,
                                              const crypto::private_key& wechatpay_key,
                                              std::string_view serial, std::int64_t now_unix);

}  // namespace wxrecon::protocol::v3
