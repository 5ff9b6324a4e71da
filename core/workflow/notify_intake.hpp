// Notification intake: an HTTP request from WeChat Pay becomes a committed
// fact or a precise refusal. Verify first, then parse, then apply through the
// ledger, and only then reply success (docs/interfaces.md §3).
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

#include "base/http_message.hpp"
#include "base/keyed_rate_limit.hpp"
#include "base/metrics.hpp"
#include "base/time.hpp"
#include "config/key_material.hpp"
#include "protocol/v2.hpp"
#include "store/ledger.hpp"
#include "store/rejected_log.hpp"
#include "workflow/key_holder.hpp"
#include "workflow/notify_outcome.hpp"

namespace wxrecon::workflow {

using wxrecon::inbound_request;
using wxrecon::reply;

inline constexpr std::chrono::seconds notification_deadline{4};

class notification_intake {
public:
    notification_intake(key_holder& keys, store::ledger& ledger, store::rejected_log& rejected,
                        std::shared_ptr<metrics> m, wall_clock clock = {});

    // Called (on the event loop, never waited for) when a verified-looking APIv3 notification names a
    // platform certificate serial no trusted key has: the certificate list may need a refresh.
    std::function<void(const std::string& mchid)> on_unknown_serial;

    // Called with what became of each notification and the log line's detail (the reason of a refusal):
    // `wxrecond replay` reports it.
    std::function<void(notify_result result, std::string_view detail)> on_finished;

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
    // The notification being handled, as far as it is known so far.
    struct notice {
        notify_api api;
        notify_kind kind;
        std::string_view mchid;
    };

    // The reply for an applied (or failed) fact; nullopt when an unauthenticated refund matched nothing.
    boost::asio::awaitable<std::optional<reply>> apply(const inbound_request& req, const domain::fact& f,
                                                       const notice& n,
                                                       std::chrono::steady_clock::time_point started);
    // Counts, logs and records the refusal (a rejected row), and builds the reply for the notice's API.
    reply reject(const inbound_request& req, const notice& n, reject_reason reason, std::string message);
    void count(const notice& n, notify_result result);
    // The one log line (and count) every notification leaves, whatever became of it; refusals beyond
    // rejected_lines_ are counted but not logged one by one (the next logged one says how many).
    void finish(const inbound_request& req, const notice& n, notify_result result,
                std::string_view out_trade_no, std::string_view detail);
    // As finish(), with the detail made by detail() only when a line is written or on_finished is set.
    template <class Detail>
    void finish_with(const inbound_request& req, const notice& n, notify_result result,
                     std::string_view out_trade_no, Detail&& detail);

    // What both APIv2 endpoints check first: a merchant with an APIv2 key, UTF-8, a flat XML document.
    struct v2_document {
        const config::merchant_keys* merchant;
        protocol::v2::fields fields;
    };
    std::variant<reply, v2_document> open_v2(const inbound_request& req, const std::string& mchid,
                                             notify_kind kind, const config::key_store& keys);

    key_holder& keys_;
    store::ledger& ledger_;
    store::rejected_log& rejected_;
    std::shared_ptr<metrics> metrics_;
    wall_clock clock_;
    // A flood of forgeries must not become a flood of log lines (at 10,000 a second, the daemon's own
    // writes and the journal's work cost more than refusing them): 200 at once, then 20 a second. The
    // intake runs on one event loop, so the bucket needs no lock.
    token_bucket rejected_lines_{20, 200};
    std::uint64_t unlogged_rejections_ = 0;
};

}  // namespace wxrecon::workflow
