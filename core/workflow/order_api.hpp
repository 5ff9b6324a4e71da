// The internal API (interfaces.md section 3): a merchant's backend registers
// the orders wxrecon watches and reads them back, places them at WeChat Pay
// (prepay, with the wx.requestPayment parameters signed) and trades a mini
// program's login code for the user's openid. Bearer-token authentication
// compared in constant time, failures throttled.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "base/http_message.hpp"
#include "base/metrics.hpp"
#include "config/config.hpp"
#include "store/order_store.hpp"
#include "workflow/notify_intake.hpp"
#include "workflow/wechat_access.hpp"

namespace wxrecon::store {
class db_pool;
}

namespace wxrecon::workflow {

class order_api {
public:
    order_api(const config::config& cfg, std::string token, store::db_pool& pool, key_holder& keys,
              wechat_clients& clients, std::shared_ptr<metrics> m);

    static bool handles(std::string_view path) { return path.starts_with("/api/v1/"); }
    boost::asio::awaitable<reply> handle(inbound_request& req);

private:
    bool authorized(const inbound_request& req);
    boost::asio::awaitable<reply> register_order(const inbound_request& req);
    boost::asio::awaitable<reply> get_order(std::string mchid, std::string out_trade_no);
    // Places the registered order at WeChat Pay (or reuses its live prepay_id) and answers with the order
    // and its wx.requestPayment parameters.
    boost::asio::awaitable<reply> prepay(const config::merchant_config& m, store::order_registration r,
                                         int status_when_placed, std::string client_ip);
    boost::asio::awaitable<reply> session(const inbound_request& req);

    const config::config& cfg_;
    std::string token_;
    store::db_pool& pool_;
    key_holder& keys_;
    wechat_clients& clients_;
    std::shared_ptr<metrics> metrics_;
    // Failed authentications allowed per second (and as a burst); beyond that, 429 without checking.
    double failure_tokens_ = 20;
    std::chrono::steady_clock::time_point failure_refill_ = std::chrono::steady_clock::now();
};

}  // namespace wxrecon::workflow
