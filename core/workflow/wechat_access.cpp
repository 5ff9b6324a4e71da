#include "workflow/wechat_access.hpp"

namespace wxrecon::workflow {

net::client_options wechat_clients::options_for(const config::merchant_config& m) const {
    net::client_options options;
    options.ca_file = m.ca_file ? m.ca_file->string() : std::string();
    options.exchange_timeout = request_timeout_;
    return options;
}

wechat::pay_client& wechat_clients::pay(const config::merchant_config& m) {
    auto options = options_for(m);
    auto& slot = pay_[options.ca_file];
    if (!slot) slot = std::make_unique<wechat::pay_client>(executor_, options, clock_);
    return *slot;
}

net::http_client& wechat_clients::plain(const config::merchant_config& m) {
    auto options = options_for(m);
    auto& slot = plain_[options.ca_file];
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
    access.find_key = [k = &keys](std::string_view serial) { return k->find_wechatpay_key(serial); };
    return access;
}

}  // namespace wxrecon::workflow
