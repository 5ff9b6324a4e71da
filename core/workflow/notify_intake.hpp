// Notification intake: an HTTP request from WeChat Pay becomes a committed
// fact or a precise refusal. Verify first, then parse, then apply through the
// ledger, and only then reply success (interfaces.md section 3).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "base/metrics.hpp"
#include "base/http_message.hpp"
#include "config/key_material.hpp"
#include "protocol/v2.hpp"
#include "store/ledger.hpp"
#include "store/rejected_log.hpp"
#include "workflow/key_holder.hpp"

namespace wxrecon::workflow {

using wxrecon::inbound_request;
using wxrecon::reply;

inline constexpr std::chrono::seconds notification_deadline{4};

class notification_intake {
public:
    using clock_fn = std::function<std::int64_t()>;  // Unix microseconds; injected for tests

    notification_intake(key_holder& keys, store::ledger& ledger, store::rejected_log& rejected,
                        std::shared_ptr<metrics> m, clock_fn now = {});

    // Called (on the event loop, never waited for) when a verified-looking APIv3 notification names a
    // platform certificate serial no trusted key has: the certificate list may need a refresh.
    std::function<void(const std::string& mchid)> on_unknown_serial;

    boost::asio::awaitable<reply> handle_v3(const inbound_request& req, std::string mchid);
    boost::asio::awaitable<reply> handle_v2_payment(const inbound_request& req, std::string mchid);
    boost::asio::awaitable<reply> handle_v2_refund(const inbound_request& req, std::string mchid);

    // A body over max_body_bytes, refused by the listener before it was read: counted and logged like
    // every other notification.
    reply too_large(std::string_view target);

    // Replies for failures detected before the intake sees the request (body too large, ...).
    static reply v3_failure(int status, std::string_view message);
    static reply v2_failure(std::string_view message);
    static reply v2_success();

private:
    // The reply for an applied (or failed) fact; nullopt when an unauthenticated refund matched nothing.
    boost::asio::awaitable<std::optional<reply>> apply(const inbound_request& req, const domain::fact& f,
                                                       std::string_view api,
                                                       std::string_view kind, bool v2,
                                                       std::chrono::steady_clock::time_point started);
    reply reject(const inbound_request& req, std::string_view mchid, std::string_view api, std::string_view kind,
                 std::string_view reason, int v3_status, std::string message, bool v2);
    void count(std::string_view api, std::string_view kind, std::string_view result);
    void finish(const inbound_request& req, std::string_view api, std::string_view kind, std::string_view result,
                std::string_view mchid, std::string_view out_trade_no, std::string_view detail);

    // What both APIv2 endpoints check first: a merchant with an APIv2 key, UTF-8, a flat XML document.
    struct v2_document {
        const config::merchant_keys* merchant;
        protocol::v2::fields fields;
    };
    std::variant<reply, v2_document> open_v2(const inbound_request& req, const std::string& mchid,
                                             std::string_view kind, const config::key_store& keys);

    key_holder& keys_;
    store::ledger& ledger_;
    store::rejected_log& rejected_;
    std::shared_ptr<metrics> metrics_;
    clock_fn now_;
};

}  // namespace wxrecon::workflow
