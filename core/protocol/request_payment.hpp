// The parameters a mini program passes to wx.requestPayment (再次签名): APIv3
// signs four lines with the merchant's RSA key (docs/protocol-notes.md §5.2), APIv2 signs the five
// fields with the APIv2 key by the algorithm used for unifiedorder (docs/protocol-notes.md §7.4).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "crypto/crypto.hpp"
#include "protocol/v2.hpp"

namespace wxrecon::protocol {

struct request_payment {
    std::string app_id;
    std::string time_stamp;  // Unix seconds as a string
    std::string nonce_str;
    std::string package;    // "prepay_id=<id>"
    std::string sign_type;  // "RSA" (APIv3), "MD5" or "HMAC-SHA256" (APIv2)
    std::string pay_sign;

    // {"appId","timeStamp","nonceStr","package","signType","paySign"}
    std::string json() const;
};

// "<appid>\n<timeStamp>\n<nonceStr>\nprepay_id=<id>\n"
std::string request_payment_message_v3(std::string_view appid, std::string_view time_stamp,
                                       std::string_view nonce_str, std::string_view package);

// docs/protocol-notes.md §5.2: signType RSA, paySign = Base64(SHA256withRSA(merchant key, the four lines)).
result<request_payment> sign_request_payment_v3(const crypto::private_key& merchant_key,
                                                std::string_view appid, std::string_view prepay_id,
                                                std::int64_t now_unix, std::string nonce_str);

// docs/protocol-notes.md §7.4: appId, nonceStr, package, signType, timeStamp signed like any APIv2 request.
request_payment sign_request_payment_v2(std::string_view apiv2_key, v2::sign_type type,
                                        std::string_view appid, std::string_view prepay_id,
                                        std::int64_t now_unix, std::string nonce_str);

}  // namespace wxrecon::protocol
