// wxpay-sim's server: the APIv3 and APIv2 endpoints a merchant calls, the
// mini-program login exchange, the /sim control API, and the notifier that
// delivers payment and refund notifications on WeChat's retry schedule with
// the configured faults. One event-loop thread owns all state; RSA signing
// runs on a small thread pool. One source file per job: sim_merchant_api,
// sim_refunds, sim_login, sim_control, sim_notifier, sim_app_events (the
// application's side of wxrecond's app events); sim_server.cpp holds the rest.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/http_message.hpp"
#include "base/time.hpp"
#include "net/http_client.hpp"
#include "net/http_server.hpp"
#include "protocol/v2.hpp"
#include "sim_app_events.hpp"
#include "sim_bills.hpp"
#include "sim_faults.hpp"
#include "sim_keys.hpp"
#include "sim_model.hpp"

namespace wxrecon::sim {

struct sim_options {
    std::string listen = "127.0.0.1:8480";
    bool tls = false;  // serve HTTPS with the key set's server certificate (issued by its CA)
    std::uint64_t seed = 1;
    double time_scale = 1.0;  // multiplies the retry schedule and injected delays
    std::size_t max_orders = 2'000'000;
    std::size_t max_deliveries = 1'000'000;  // delivery log entries kept (oldest finished ones go first)
    int delivery_concurrency = 64;           // notification POSTs in flight at once
    int signing_threads = 2;
    std::chrono::milliseconds notify_timeout{5000};  // WeChat gives the merchant 5 s
    wall_clock clock;                                // WeChat Pay's time: timestamps, expiry, success_time
};

// docs/protocol-notes.md §3.7: after the first attempt, re-sent at these intervals (15 attempts over 24 h 4
// min).
inline constexpr std::int64_t retry_schedule_seconds[] = {15,   15,   30,    180,   600,   1200,  1800, 1800,
                                                          1800, 3600, 10800, 10800, 10800, 21600, 21600};

struct delivery_attempt {
    int number = 0;
    std::int64_t at_ms = 0;  // since the simulator started
    int status = 0;          // HTTP status, 0 when there was none
    std::string outcome;     // "acknowledged", "refused", or what went wrong
};

struct delivery {
    std::uint64_t id = 0;
    std::string mchid;
    std::string out_trade_no;
    std::string out_refund_no;
    std::string event_type;       // TRANSACTION.SUCCESS, REFUND.SUCCESS …
    std::string notification_id;  // the APIv3 envelope id (the same on every copy and retry)
    std::string kind;             // genuine, duplicate, concurrent, forged, probe
    std::string url;
    api_version version = api_version::v3;
    std::string serial;  // the key that signs it (APIv3)
    bool dropped = false;
    std::int64_t first_delay_ms = 0;
    std::vector<delivery_attempt> attempts;
    bool acknowledged = false;
    bool finished = false;
    // What is sent: the business object (APIv3 JSON or the APIv2 fields, signed afresh per attempt).
    std::string plaintext;
    protocol::v2::fields v2_fields;
    bool refund = false;
    std::string refund_status;  // refunds: SUCCESS / ABNORMAL / CLOSED
};

struct json_body;

// One merchant API call as the simulator saw it (the call log: who asked what, when, for how long).
struct api_call {
    std::uint64_t id = 0;
    std::string mchid;
    std::string api;   // v3 / v2
    std::string what;  // "GET /v3/pay/transactions/out-trade-no/X", "/pay/orderquery X"
    std::int64_t start_ms = 0;
    std::int64_t end_ms = -1;  // -1 while unanswered
    int status = 0;
};

class simulator {
public:
    simulator(boost::asio::io_context& io, sim_keys keys, sim_options options);
    ~simulator();

    void start();
    boost::asio::ip::tcp::endpoint endpoint() const;
    // Stops listening and sending; pending deliveries are abandoned.
    boost::asio::awaitable<void> shutdown();

    // The HTTP entry point (also used by tests without a socket).
    boost::asio::awaitable<reply> handle(inbound_request& request);

private:
    struct merchant_state {
        sim_merchant* keys = nullptr;
        fault_config faults;
        protocol_variants variants;
        std::uint64_t notifications = 0;  // sent, for certificate rotation
        std::uint64_t api_calls = 0;      // for per-call fault draws
        // During a gradual rotation, API answers stay on this certificate while callbacks use the newest.
        std::optional<std::size_t> answers_sign_with;
        // Bills (sim_bill_api.cpp, sim_bill_control.cpp): the fee rate of new payments, the file style, and
        // per "trade|fundflow/yyyy-MM-dd" the asks still answered "being made" and the damage to serve.
        std::int64_t fee_rate_bp = default_fee_rate_bp;
        bill_style style;
        std::map<std::string, int, std::less<>> bills_creating;
        std::map<std::string, std::pair<bill_corruption, bool>, std::less<>>
            bills_corrupt;                                                 // bool: hash served
        std::map<std::string, std::int64_t, std::less<>> fee_adjustments;  // by yyyy-MM-dd, fen
    };
    static std::int64_t fee_adjustment_of(const merchant_state& m, std::string_view bill_date);

    // How a refund made through a merchant API ends (sim_refunds.cpp): drawn from the merchant's faults, or
    // set beforehand by /sim/refund-plan.
    struct refund_plan {
        domain::refund_status status = domain::refund_status::success;
        std::int64_t after_ms = 0;  // PROCESSING this long (scaled by the time scale)
        bool notify = true;         // false: it ends without any notification
    };
    static constexpr std::size_t max_refund_plans = 100'000;

    // A bill as asked for: the bytes to serve and the SHA-1 the apply answer names, or why there is none.
    enum class bill_refusal { none, param_error, creating, no_statement };
    struct bill_file {
        bill_refusal refusal = bill_refusal::none;
        std::string message;
        std::string served;      // the file as served (gzip when asked)
        std::string hash_value;  // SHA-1 hex of the uncompressed content the apply answer names
    };
    // An APIv3 download link: who may use it, what it serves, until when (sim seconds).
    struct bill_download {
        std::string mchid;
        std::string body;
        std::int64_t expires_at = 0;
    };

    // The four jobs' entry points, picked by handle's route table.
    boost::asio::awaitable<reply> handle_v3(inbound_request& request);
    boost::asio::awaitable<reply> handle_v2(inbound_request& request);
    boost::asio::awaitable<reply> handle_login(inbound_request& request);
    boost::asio::awaitable<reply> handle_control(inbound_request& request);

    // Merchant APIs (sim_merchant_api.cpp). APIv3 operations run after the Authorization check and
    // return status and JSON body.
    std::pair<int, std::string> v3_dispatch(merchant_state& m, const inbound_request& request);
    std::pair<int, std::string> v3_prepay(merchant_state& m, const inbound_request& request);
    std::pair<int, std::string> v3_query(merchant_state& m, const inbound_request& request);
    std::pair<int, std::string> v3_close(merchant_state& m, const inbound_request& request);
    std::pair<int, std::string> v3_refund(merchant_state& m, const inbound_request& request);
    std::pair<int, std::string> v3_refund_query(merchant_state& m, const inbound_request& request);
    std::pair<int, std::string> v3_certificates(merchant_state& m, const inbound_request& request);
    std::pair<int, std::string> v3_not_found(merchant_state& m);
    boost::asio::awaitable<reply> v3_signed(merchant_state& m, const inbound_request& request, int status,
                                            std::string body);
    // The reply_slow fault: the call has been applied; its answer waits slow_ms.
    boost::asio::awaitable<void> answer_late(merchant_state& m, std::uint64_t call);
    // Refunds (sim_refunds.cpp): a refund just created by an API call goes its planned way; finish_later
    // ends it after a delay.
    void start_refund(merchant_state& m, const std::string& out_refund_no);
    refund_plan plan_for(const merchant_state& m, const std::string& out_refund_no);
    void finish(const std::string& mchid, const std::string& out_refund_no, const refund_plan& p);
    boost::asio::awaitable<void> finish_later(std::string mchid, std::string out_refund_no, refund_plan p);
    // APIv2 operations run after the signature check; the answer is signed afterwards.
    protocol::v2::fields v2_dispatch(merchant_state& m, std::string_view path, const protocol::v2::fields& in,
                                     protocol::v2::sign_type type);
    protocol::v2::fields v2_unifiedorder(merchant_state& m, const protocol::v2::fields& in,
                                         protocol::v2::sign_type type);
    protocol::v2::fields v2_orderquery(merchant_state& m, const protocol::v2::fields& in,
                                       protocol::v2::sign_type type);
    protocol::v2::fields v2_closeorder(merchant_state& m, const protocol::v2::fields& in,
                                       protocol::v2::sign_type type);
    protocol::v2::fields v2_refund(merchant_state& m, const protocol::v2::fields& in,
                                   protocol::v2::sign_type type);
    protocol::v2::fields v2_refundquery(merchant_state& m, const protocol::v2::fields& in,
                                        protocol::v2::sign_type type);
    // Bills (sim_bill_api.cpp)
    bill_file make_bill(merchant_state& m, protocol::bill::bill_kind kind, std::string_view bill_date,
                        std::string_view type_or_account, bool gzip);
    std::pair<int, std::string> v3_trade_bill(merchant_state& m, const inbound_request& request);
    std::pair<int, std::string> v3_fundflow_bill(merchant_state& m, const inbound_request& request);
    std::pair<int, std::string> v3_bill_apply(merchant_state& m, const inbound_request& request,
                                              protocol::bill::bill_kind kind);
    // The unsigned download of an apply answer's download_url; nullopt: an error to answer signed (status,
    // body in error).
    std::optional<reply> v3_bill_download(merchant_state& m, const inbound_request& request,
                                          std::pair<int, std::string>& error);
    reply v2_bill(merchant_state& m, const inbound_request& req, const protocol::v2::fields& in);
    api_call& log_call(const std::string& mchid, std::string_view api, std::string what);
    void end_call(std::uint64_t id, int status);

    // Control API (sim_control.cpp; the login code issuer is in sim_login.cpp)
    reply control_ledger(const inbound_request& request) const;
    reply control_merchants(const inbound_request& request) const;
    reply control_deliveries(const inbound_request& request) const;
    reply control_stats(const inbound_request& request) const;
    reply control_calls(const inbound_request& request) const;
    result<std::vector<std::string>> order_batch(const json_body& j) const;
    reply control_create_order(std::string_view body);
    reply control_pay(std::string_view body);
    reply control_expire(std::string_view body);
    reply control_refund(std::string_view body);
    reply control_faults(std::string_view body);
    reply control_rotate(std::string_view body);
    reply control_login_code(std::string_view body);
    reply control_hand_payment(std::string_view body);
    reply control_fee_rate(std::string_view body);
    reply control_bill_style(std::string_view body);
    reply control_bill_creating(std::string_view body);
    reply control_bill_corrupt(std::string_view body);
    reply control_fee_adjustment(std::string_view body);
    reply control_refund_plan(std::string_view body);
    // The app-event receiver (sim_app_events.cpp)
    reply receive_app_event(const inbound_request& request);
    reply control_app_events(const inbound_request& request) const;
    reply control_app_events_config(std::string_view body);

    // Notifications (sim_notifier.cpp)
    void notify_payment(merchant_state& m, const order_record& o);
    void notify_refund(merchant_state& m, const order_record& o, const refund_record& r);
    void plan(merchant_state& m, delivery base);
    delivery& add_delivery(delivery d);
    delivery* find_delivery(std::uint64_t id);
    void schedule(std::uint64_t id, std::chrono::milliseconds after);
    void release_slot();
    boost::asio::awaitable<void> run_attempt(std::uint64_t id, std::chrono::milliseconds after);
    // What one attempt POSTs (without method and URL); nullopt when signing failed.
    boost::asio::awaitable<std::optional<net::outbound_request>> v3_notification_request(
        const merchant_state& m, const delivery& d);
    net::outbound_request v2_notification_request(const merchant_state& m, const delivery& d);
    void record_attempt(std::uint64_t id, std::int64_t sent_at, const net::exchange& ex);
    void rotate_certificate(merchant_state& m);
    std::string pick_serial(merchant_state& m, std::string_view decision_key);

    merchant_state* merchant(std::string_view mchid);
    std::int64_t now() const;
    std::int64_t elapsed_ms() const;
    std::chrono::milliseconds scaled(std::int64_t ms) const;
    bool draw(std::string_view what, std::string_view subject, std::uint64_t n, double rate) const;

    boost::asio::io_context& io_;
    sim_keys keys_;
    sim_options options_;
    ledger_model model_;
    std::map<std::string, merchant_state, std::less<>> merchants_;
    std::unique_ptr<net::http_server> server_;
    std::unique_ptr<net::http_client> client_;
    boost::asio::thread_pool signers_;
    crypto::private_key forger_key_;  // a key WeChat does not have, made at the first forgery
    std::deque<delivery> deliveries_;
    std::deque<api_call> calls_;
    std::uint64_t first_call_id_ = 1;
    std::uint64_t next_call_id_ = 1;
    std::uint64_t first_delivery_id_ = 1;
    std::uint64_t next_delivery_id_ = 1;
    int in_flight_ = 0;
    std::deque<boost::asio::steady_timer*> slot_waiters_;  // attempts waiting for a slot, oldest first
    std::map<std::string, bill_download, std::less<>> bill_downloads_;  // by token
    std::map<std::string, std::pair<std::string, bool>> login_codes_;   // js_code -> (openid, used)
    std::map<std::string, refund_plan, std::less<>> refund_plans_;      // by "mchid/out_refund_no"
    app_event_log app_events_;
    std::chrono::steady_clock::time_point started_;
    bool stopping_ = false;
};

}  // namespace wxrecon::sim
