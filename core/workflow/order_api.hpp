// The internal API (docs/interfaces.md §4): a merchant's backend registers
// the orders wxrecon watches and reads them back, places them at WeChat Pay
// (prepay, with the wx.requestPayment parameters signed) and trades a mini
// program's login code for the user's openid. Bearer-token authentication
// compared in constant time, failures throttled.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include <boost/asio/awaitable.hpp>

#include "base/http_message.hpp"
#include "base/keyed_rate_limit.hpp"
#include "base/metrics.hpp"
#include "base/time.hpp"
#include "config/config.hpp"
#include "protocol/v2.hpp"
#include "store/order_store.hpp"
#include "workflow/notify_intake.hpp"
#include "workflow/poller.hpp"
#include "workflow/refund_api.hpp"
#include "workflow/wechat_access.hpp"

namespace wxrecon::workflow {

class order_api {
public:
    order_api(const config::config& cfg, std::string token, store::db_pool& pool, key_holder& keys,
              wechat_clients& clients, poller& closer, refund_api& refunds, std::shared_ptr<metrics> m,
              wall_clock clock = {});

    static bool handles(std::string_view path) { return path.starts_with("/api/v1/"); }
    boost::asio::awaitable<reply> handle(inbound_request& req);

private:
    bool authorized(const inbound_request& req);
    struct registration_request {
        store::order_registration registration;
        const config::merchant_config* merchant = nullptr;
        bool prepay = false;
    };
    std::variant<reply, registration_request> read_registration(const inbound_request& req) const;
    boost::asio::awaitable<reply> register_order(const inbound_request& req);
    boost::asio::awaitable<reply> get_order(std::string mchid, std::string out_trade_no);
    // Places the registered order at WeChat Pay (or reuses its live prepay_id) and answers with the order
    // and its wx.requestPayment parameters.
    boost::asio::awaitable<reply> prepay(const config::merchant_config& m, store::order_registration r,
                                         int status_when_placed, std::string client_ip);
    // One attempt at placing the order at WeChat Pay, recorded: the prepay_id and the order JSON after
    // the record, or the 502 to answer with.
    struct placement {
        std::optional<std::string> prepay_id;
        std::string order_json;
        reply failure;
    };
    boost::asio::awaitable<placement> place(const config::merchant_config& m, const config::merchant_keys& mk,
                                            std::string mchid, std::string out_trade_no,
                                            std::string v3_request, protocol::v2::fields v2_fields,
                                            protocol::v2::sign_type v2_type, bool v3);
    boost::asio::awaitable<reply> session(const inbound_request& req);
    boost::asio::awaitable<reply> close_order(std::string mchid, std::string out_trade_no);

    const config::config& cfg_;
    std::string token_;
    store::db_pool& pool_;
    key_holder& keys_;
    wechat_clients& clients_;
    poller& closer_;
    refund_api& refunds_;
    std::shared_ptr<metrics> metrics_;
    wall_clock clock_;
    // Failed authentications allowed per client address; beyond that, 429. A valid token is never
    // throttled: the token is checked first, so others' failures cannot lock a caller out.
    keyed_rate_limit auth_failures_;
};

}  // namespace wxrecon::workflow
