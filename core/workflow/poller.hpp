// Orders that never got a notification: the poller claims due orders (a short
// lease, no transaction open while WeChat Pay is called), queries them on the
// schedule of docs/interfaces.md §9.3, and closes them after expiry. Every
// answer becomes a fact applied through the same ledger as a notification.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "base/metrics.hpp"
#include "base/time.hpp"
#include "config/config.hpp"
#include "domain/schedule.hpp"
#include "store/poll_store.hpp"
#include "wechat/pay_client.hpp"
#include "workflow/merchant_rate.hpp"
#include "workflow/notify_intake.hpp"
#include "workflow/wechat_access.hpp"

namespace wxrecon::store {
class db_pool;
class ledger;
}  // namespace wxrecon::store

namespace wxrecon::workflow {

struct poller_options {
    std::chrono::milliseconds tick{200};     // how often due orders are looked for
    std::chrono::milliseconds lease{60000};  // how long a claim keeps other instances away
    std::string owner;                       // this instance's name in poll_lease_owner
    std::chrono::milliseconds gauges{5000};  // how often the stuck-order and poll-lag gauges are read
    int orders_by_state_every = 12;          // wxrecon_orders{state} (a GROUP BY) on every n-th reading
    wall_clock clock;                        // when queries are sent and due
    // Paces each merchant's calls; shared with the refund tracker (a limiter of its own when null).
    std::shared_ptr<merchant_rate_limiter> rate;
};

class poller {
public:
    poller(boost::asio::any_io_executor ex, const config::config& cfg, key_holder& keys,
           wechat_clients& clients, store::db_pool& pool, store::ledger& ledger, std::shared_ptr<metrics> m,
           poller_options options);
    ~poller();

    void start();

    // Out of turn: the order is leased (busy while the poller holds it), polled at once, the lease given
    // back. done carries what failed at WeChat Pay, if anything (the poller retries on its schedule).
    enum class out_of_turn_outcome { done, unknown_order, busy, settled };
    struct out_of_turn_result {
        out_of_turn_outcome outcome = out_of_turn_outcome::done;
        std::string error;
    };
    // When a new order is first due (its first query, or its close when no query fits before it): an order
    // registered with this schedule is not claimed before, so registration costs the poller nothing.
    domain::micros first_due(const config::merchant_config& m, domain::micros created_at,
                             domain::micros expire_at) const;
    // The application asks to close an open order now (POST …/close): it is made to expire now, queried a
    // final time and closed at WeChat Pay unless it was paid (the poller's own close, so one code path). An
    // APIv2 order in its first 5 minutes cannot be closed yet: it is queried and closed by the poller once
    // it may be.
    boost::asio::awaitable<out_of_turn_result> close_now(std::string mchid, std::string out_trade_no);
    // An operator asks for a query now (`wxrecond repoll`): an order in any state is queried and the answer
    // applied through the fact path. Its schedule goes on as before; it is never closed by this.
    boost::asio::awaitable<out_of_turn_result> repoll(std::string mchid, std::string out_trade_no);
    // Stops claiming and waits (bounded) for the polls in flight; their leases make them safe to abandon.
    boost::asio::awaitable<void> stop(std::chrono::milliseconds grace);

private:
    boost::asio::awaitable<void> run();
    boost::asio::awaitable<void> refresh_gauges();
    // Returns the error the poll ended with ("" when none).
    enum class poll_reason { scheduled, close_requested, repoll };
    boost::asio::awaitable<std::string> poll(store::claimed_order order,
                                             poll_reason reason = poll_reason::scheduled);
    boost::asio::awaitable<out_of_turn_result> out_of_turn(std::string mchid, std::string out_trade_no,
                                                           store::out_of_turn purpose);
    boost::asio::awaitable<void> poll_checked(store::claimed_order order);
    boost::asio::awaitable<void> close_expired(const config::merchant_config& m,
                                               const wechat::merchant_access& access,
                                               const store::claimed_order& order,
                                               const wechat::call_result& answer, store::poll_update& update);
    boost::asio::awaitable<wechat::call_result> query(const config::merchant_config& m,
                                                      const wechat::merchant_access& access,
                                                      const std::string& out_trade_no,
                                                      domain::micros& sent_at);
    boost::asio::awaitable<wechat::call_result> close_at_wechat(const config::merchant_config& m,
                                                                const wechat::merchant_access& access,
                                                                const std::string& out_trade_no,
                                                                domain::micros& sent_at);
    // Turns a query answer into a fact and applies it; returns the metric result and whether the order
    // is settled (terminal) afterwards.
    boost::asio::awaitable<std::pair<std::string, bool>> apply_answer(const config::merchant_config& m,
                                                                      const store::claimed_order& order,
                                                                      const wechat::call_result& answer,
                                                                      domain::micros sent_at);
    boost::asio::awaitable<bool> apply_close(const store::claimed_order& order, std::string state_desc,
                                             domain::micros sent_at);
    // Records a poll's outcome; returns its error ("" when none). The outcomes of polls that end while one
    // round is being written go together in the next (store::finish_polls).
    boost::asio::awaitable<std::string> finish(store::poll_update update);
    boost::asio::awaitable<void> write_finishes();
    boost::asio::awaitable<void> take_token(const std::string& mchid);
    domain::micros backoff(const wechat::call_result& r) const;

    boost::asio::any_io_executor executor_;
    const config::config& cfg_;
    key_holder& keys_;
    wechat_clients& clients_;
    store::db_pool& pool_;
    store::ledger& ledger_;
    std::shared_ptr<metrics> metrics_;
    poller_options options_;
    domain::poll_schedule schedule_;
    std::shared_ptr<merchant_rate_limiter> rate_;
    boost::asio::steady_timer wake_;
    int in_flight_ = 0;
    bool stopping_ = false;
    bool running_ = false;
    bool refreshing_ = false;
    boost::asio::steady_timer gauge_timer_;
    struct finish_round;  // outcomes written together, and their writer's answer
    std::shared_ptr<finish_round> next_round_;
    bool writing_finishes_ = false;
};

}  // namespace wxrecon::workflow
