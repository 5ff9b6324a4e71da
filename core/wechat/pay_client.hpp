// The outbound half of the protocol: signed calls to WeChat Pay (APIv3 with
// the merchant's Authorization, APIv2 with the XML sign), every answer's
// signature verified before anything in it is used, and failover to the backup
// host only where it cannot apply a request twice.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "base/time.hpp"
#include "crypto/crypto.hpp"
#include "net/http_client.hpp"
#include "protocol/v2.hpp"
#include "protocol/v3.hpp"

namespace wxrecon::wechat {

enum class call_outcome {
    ok,            // 2xx with a verified signature (APIv3); verified sign and return_code SUCCESS (APIv2)
    rejected,      // WeChat answered with a business error: 4xx with a code (APIv3), result_code FAIL (APIv2)
    rate_limited,  // 429 / FREQUENCY_LIMITED: back off
    server_error,  // 5xx / SYSTEMERROR: retry later with the same parameters
    forged,        // a success whose signature is missing or does not verify: never applied
    unreachable,   // no answer; `sent` says whether the request may have reached WeChat
};
std::string_view to_string(call_outcome o) noexcept;

struct call_result {
    call_outcome outcome = call_outcome::unreachable;
    int status = 0;    // HTTP status, 0 without an answer
    std::string code;  // WeChat's error code (APIv3 "code", APIv2 err_code / return_msg)
    std::string message;
    std::string body;             // APIv3: the answer's body (verified when outcome is ok)
    protocol::v2::fields fields;  // APIv2: the answer's fields (verified when outcome is ok)
    std::string request_id;
    std::string host;   // the base URL that answered (or was tried last)
    bool sent = false;  // false: provably never left (connect or TLS handshake failed)
    // The answer's signature (APIv3, errors included) or sign (APIv2) was checked and holds: only a
    // verified answer may say an order does not exist.
    bool verified = false;
    std::string error;  // what went wrong, for logs and last_poll_error
};

// One merchant as the client sees it.
struct merchant_access {
    std::string mchid;
    std::string api_base;                  // "https://api.mch.weixin.qq.com"
    std::string api_backup_base;           // optional
    std::string merchant_serial;           // APIv3 Authorization serial_no
    crypto::private_key merchant_key;      // signs APIv3 requests
    std::string apiv2_key;                 // signs APIv2 requests
    std::string wechatpay_serial_to_send;  // Wechatpay-Serial on requests (the PUB_KEY_ID_… when configured)
    protocol::v3::key_lookup find_key;     // trusted WeChat Pay keys by serial
};

// Whether a request may be re-sent to the backup host.
enum class retry_safety {
    idempotent,  // a query: any failure may go to the backup host
    once_only,   // close, prepay, refund: only when it provably never left
};

class pay_client {
public:
    pay_client(boost::asio::any_io_executor ex, net::client_options options, wall_clock clock = {});

    // APIv3: signs method, path (with query) and body; verifies the answer's Wechatpay-* signature.
    boost::asio::awaitable<call_result> v3(const merchant_access& m, std::string method,
                                           std::string path_and_query, std::string body, retry_safety safety);
    // APIv2: adds mch_id, nonce_str, sign_type and sign; verifies the answer's sign.
    boost::asio::awaitable<call_result> v2(const merchant_access& m, std::string path,
                                           protocol::v2::fields fields, protocol::v2::sign_type type,
                                           retry_safety safety);

    // APIv3 bill download (docs/protocol-notes.md §6.3): a signed GET of the download_url an apply answer
    // gave (refused unless it is on the merchant's API host); the answer is not signed, its body goes to
    // save_to. The caller checks the file against hash_value.
    boost::asio::awaitable<call_result> v3_download(const merchant_access& m, std::string download_url,
                                                    std::string save_to);
    // APIv2 downloadbill / downloadfundflow (§7.9, §6.5): HMAC-SHA256-signed; the file itself (to save_to)
    // on success, an XML with return_code FAIL otherwise (e.g. "No Bill Exist").
    boost::asio::awaitable<call_result> v2_download(const merchant_access& m, std::string path,
                                                    protocol::v2::fields fields, std::string save_to);

private:
    boost::asio::awaitable<call_result> v3_once(const merchant_access& m, const std::string& base,
                                                const std::string& method, const std::string& path_and_query,
                                                const std::string& body);
    boost::asio::awaitable<call_result> v2_once(const merchant_access& m, const std::string& base,
                                                const std::string& path, const std::string& xml);
    static bool try_backup(const merchant_access& m, const call_result& r, retry_safety safety);

    net::http_client client_;
    wall_clock clock_;
};

// Verifies a /v3/certificates answer and returns the certificates it lists (decrypted with the APIv3 key,
// each serial checked against serial_no). The answer must already be ok, i.e. signed by a key trusted
// before this download — never by a certificate it brings itself.
result<std::vector<crypto::certificate>> read_certificates(const call_result& answer,
                                                           std::string_view apiv3_key);

}  // namespace wxrecon::wechat
