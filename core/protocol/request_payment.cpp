#include "protocol/request_payment.hpp"

#include "base/encoding.hpp"
#include "base/json_writer.hpp"

namespace wxrecon::protocol {

std::string request_payment::json() const {
    return json_object()
        .add("appId", app_id)
        .add("timeStamp", time_stamp)
        .add("nonceStr", nonce_str)
        .add("package", package)
        .add("signType", sign_type)
        .add("paySign", pay_sign)
        .str();
}

std::string request_payment_message_v3(std::string_view appid, std::string_view time_stamp,
                                       std::string_view nonce_str, std::string_view package) {
    std::string m;
    for (const std::string_view line : {appid, time_stamp, nonce_str, package}) {
        m += line;
        m += '\n';
    }
    return m;
}

result<request_payment> sign_request_payment_v3(const crypto::private_key& merchant_key,
                                                std::string_view appid, std::string_view prepay_id,
                                                std::int64_t now_unix, std::string nonce_str) {
    request_payment p;
    p.app_id = std::string(appid);
    p.time_stamp = std::to_string(now_unix);
    p.nonce_str = std::move(nonce_str);
    p.package = "prepay_id=" + std::string(prepay_id);
    p.sign_type = "RSA";
    auto sig = crypto::rsa_sha256_sign(
        merchant_key, request_payment_message_v3(p.app_id, p.time_stamp, p.nonce_str, p.package));
    if (!sig) return sig.err();
    p.pay_sign = base64_encode(*sig);
    return p;
}

request_payment sign_request_payment_v2(std::string_view apiv2_key, v2::sign_type type,
                                        std::string_view appid, std::string_view prepay_id,
                                        std::int64_t now_unix, std::string nonce_str) {
    request_payment p;
    p.app_id = std::string(appid);
    p.time_stamp = std::to_string(now_unix);
    p.nonce_str = std::move(nonce_str);
    p.package = "prepay_id=" + std::string(prepay_id);
    p.sign_type = type == v2::sign_type::md5 ? "MD5" : "HMAC-SHA256";
    const v2::fields signed_fields{{"appId", p.app_id},
                                   {"nonceStr", p.nonce_str},
                                   {"package", p.package},
                                   {"signType", p.sign_type},
                                   {"timeStamp", p.time_stamp}};
    p.pay_sign = v2::sign(signed_fields, apiv2_key, type);
    return p;
}

}  // namespace wxrecon::protocol
