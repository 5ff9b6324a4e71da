// What the poller and the order API share to talk to WeChat Pay: one client
// per CA bundle (keep-alive connections reused across both), and a merchant's
// configuration and keys turned into what the signed client needs.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>

#include "base/time.hpp"
#include "config/config.hpp"
#include "config/key_material.hpp"
#include "net/http_client.hpp"
#include "protocol/v2.hpp"
#include "wechat/pay_client.hpp"

namespace wxrecon::workflow {

class wechat_clients {
public:
    wechat_clients(boost::asio::any_io_executor ex, std::chrono::milliseconds request_timeout,
                   wall_clock clock = {})
        : executor_(std::move(ex)), request_timeout_(request_timeout), clock_(std::move(clock)) {}
    // Signed WeChat Pay calls for the merchant's api_base (its ca_file added to the trusted CAs).
    wechat::pay_client& pay(const config::merchant_config& m);
    // Plain HTTPS for the mini-program API (jscode2session), with the same CA rule.
    net::http_client& plain(const config::merchant_config& m);

private:
    boost::asio::any_io_executor executor_;
    std::chrono::milliseconds request_timeout_;
    wall_clock clock_;  // signs requests and judges answers' timestamps
    std::map<std::string, std::unique_ptr<wechat::pay_client>> pay_;  // by client_key_of
    std::map<std::string, std::unique_ptr<net::http_client>> plain_;  // by client_key_of
};

// How the merchant's HTTPS connections are made: its ca_file, its client certificate (mutual TLS) when
// merchant_cert_file is set. Merchants that agree on both share a client and its connections.
net::client_options merchant_client_options(const config::merchant_config& m,
                                            std::chrono::milliseconds timeout);
std::string client_key_of(const net::client_options& options);

wechat::merchant_access merchant_access_for(const config::merchant_config& m,
                                            const config::merchant_keys& keys);

inline protocol::v2::sign_type v2_sign_type(const config::merchant_config& m) {
    return m.apiv2_sign_md5 ? protocol::v2::sign_type::md5 : protocol::v2::sign_type::hmac_sha256;
}

}  // namespace wxrecon::workflow
