#include "workflow/wechat_access.hpp"

namespace wxrecon::workflow {

net::client_options merchant_client_options(const config::merchant_config& m,
                                            std::chrono::milliseconds timeout) {
    net::client_options options;
    options.ca_file = m.ca_file ? m.ca_file->string() : std::string();
    if (m.merchant_cert_file && m.merchant_private_key_file) {
        options.client_cert_file = m.merchant_cert_file->string();
        options.client_key_file = m.merchant_private_key_file->string();
    }
    options.exchange_timeout = timeout;
    return options;
}

std::string client_key_of(const net::client_options& options) {
    return options.ca_file + '\n' + options.client_cert_file;
}

wechat::pay_client& wechat_clients::pay(const config::merchant_config& m) {
    auto options = merchant_client_options(m, request_timeout_);
    auto& slot = pay_[client_key_of(options)];
    if (!slot) slot = std::make_unique<wechat::pay_client>(executor_, options, clock_);
    return *slot;
}

net::http_client& wechat_clients::plain(const config::merchant_config& m) {
    auto options = merchant_client_options(m, request_timeout_);
    auto& slot = plain_[client_key_of(options)];
    if (!slot) slot = std::make_unique<net::http_client>(executor_, options);
    return *slot;
}

wechat::merchant_access merchant_access_for(const config::merchant_config& m,
                                            const config::merchant_keys& keys) {
    wechat::merchant_access access;
    access.mchid = m.mchid;
    access.api_base = m.api_base;
    access.api_backup_base = m.api_backup_base.value_or("");
    access.merchant_serial = m.merchant_cert_serial.value_or("");
    access.merchant_key = keys.merchant_private_key;
    access.apiv2_key = keys.apiv2_key.value_or("");
    access.wechatpay_serial_to_send = m.wechatpay_public_key_id.value_or("");
    // The lookup keeps the key store alive through the caller's shared_ptr, not through this copy.
    access.find_key = [k = &keys](std::string_view serial, std::int64_t now_unix) {
        return k->find_wechatpay_key(serial, now_unix);
    };
    return access;
}

}  // namespace wxrecon::workflow
