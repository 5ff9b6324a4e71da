#include "workflow/poller.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <exception>
#include <memory>
#include <stdexcept>
#include <vector>

#include "base/encoding.hpp"
#include "base/json_writer.hpp"
#include "base/percent.hpp"
#include "store/db_pool.hpp"
#include "store/ledger.hpp"
#include "workflow/escapes.hpp"
#include "workflow/query_retry.hpp"

namespace wxrecon::workflow {

namespace asio = boost::asio;
using domain::micros;
using domain::trade_state;
using steady = std::chrono::steady_clock;

namespace {

constexpr micros second = 1'000'000;
// A ledger write gets this long; the poll is retried later when it does not commit in time.
constexpr auto apply_deadline = std::chrono::seconds(10);

micros to_micros(config::duration d) {
    return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

// Closes the order locally, so only WeChat's documented code in an answer whose signature holds will do:
// an unsigned one (a proxy, an attacker on the path) is a failed query, tried again later.
bool is_not_found(const wechat::call_result& r) {
    return r.outcome == wechat::call_outcome::rejected && r.verified &&
           (r.code == "ORDER_NOT_EXIST" || r.code == "ORDERNOTEXIST");
}

// Close answers that mean "it is paid" (v2 ORDERPAID; v3 spelling unconfirmed: ORDERPAID or TRADE_ERROR).
bool is_already_paid(const wechat::call_result& r) {
    return r.outcome == wechat::call_outcome::rejected &&
           (r.code == "ORDERPAID" || r.code == "ORDER_PAID" || r.code == "TRADE_ERROR");
}

bool is_already_closed(const wechat::call_result& r) {
    return r.outcome == wechat::call_outcome::rejected &&
           (r.code == "ORDER_CLOSED" || r.code == "ORDERCLOSED");
}

std::string_view query_metric(const wechat::call_result& r) {
    return failed_query_label(r, is_not_found(r));
}

}  // namespace

poller::poller(asio::any_io_executor ex, const config::config& cfg, key_holder& keys, wechat_clients& clients,
               store::db_pool& pool, store::ledger& ledger, std::shared_ptr<metrics> m,
               poller_options options)
    : executor_(ex),
      cfg_(cfg),
      keys_(keys),
      clients_(clients),
      pool_(pool),
      ledger_(ledger),
      metrics_(std::move(m)),
      options_(std::move(options)),
      wake_(ex),
      gauge_timer_(ex) {
    for (const auto d : cfg_.poller.delays) schedule_.delays.push_back(to_micros(d));
    schedule_.interval_after = to_micros(cfg_.poller.interval_after);
    schedule_.close_after_expire = to_micros(cfg_.poller.close_after_expire);
    if (options_.owner.empty()) options_.owner = "wxrecond-" + crypto::random_alnum(8);
    rate_ =
        options_.rate ? options_.rate : std::make_shared<merchant_rate_limiter>(cfg_.poller.rate_per_second);
}

poller::~poller() = default;

void poller::start() {
    running_ = true;
    refreshing_ = true;
    asio::co_spawn(executor_, run(), report_escapes(metrics_, "poller"));
    asio::co_spawn(executor_, refresh_gauges(), report_escapes(metrics_, "poller"));
}

asio::awaitable<void> poller::refresh_gauges() {
    for (int reading = 0; !stopping_; ++reading) {
        const bool by_state = reading % std::max(1, options_.orders_by_state_every) == 0;
        try {
            const auto g = co_await store::read_poll_gauges(pool_, by_state, steady::now() + options_.gauges);
            metrics_->set("wxrecon_stuck_orders", {}, static_cast<double>(g.stuck));
            metrics_->set("wxrecon_poll_lag_seconds", {}, g.lag_seconds);
            if (by_state) {
                // A state no order is in any more reads 0, not its last count.
                for (const char* state :
                     {"NOTPAY", "USERPAYING", "SUCCESS", "REFUND", "CLOSED", "REVOKED", "PAYERROR"}) {
                    double count = 0;
                    for (const auto& [s, n] : g.orders_by_state)
                        if (s == state) count = static_cast<double>(n);
                    metrics_->set("wxrecon_orders", {{"state", state}}, count);
                }
            }
        } catch (const std::exception& e) {
            // The database is down: db_up says so.
            spdlog::debug("poll: gauges not refreshed error={}", log_quote(e.what()));
        }
        gauge_timer_.expires_after(options_.gauges);
        co_await gauge_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    refreshing_ = false;
}

asio::awaitable<void> poller::stop(std::chrono::milliseconds grace) {
    stopping_ = true;
    wake_.cancel();
    gauge_timer_.cancel();
    const auto give_up = steady::now() + grace;
    asio::steady_timer timer(executor_);
    while ((in_flight_ > 0 || running_ || refreshing_) && steady::now() < give_up) {
        timer.expires_after(std::chrono::milliseconds(10));
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

asio::awaitable<void> poller::run() {
    const int concurrency = static_cast<int>(std::max<std::uint32_t>(1, cfg_.poller.concurrency));
    // Claims are taken in batches: one claim per finished poll would make the claim round trip the limit.
    const int claim_batch = std::max(1, concurrency / 4);
    while (!stopping_) {
        const int free = concurrency - in_flight_;
        if (free >= claim_batch || (free > 0 && in_flight_ == 0)) {
            std::vector<store::claimed_order> claimed;
            try {
                claimed = co_await store::claim_due_orders(pool_, options_.owner, options_.lease,
                                                           static_cast<std::size_t>(free));
            } catch (const std::exception& e) {
                spdlog::warn("poll: cannot claim due orders error={}", log_quote(e.what()));
            }
            for (auto& order : claimed) {
                ++in_flight_;
                asio::co_spawn(executor_, poll_checked(std::move(order)), report_escapes(metrics_, "poller"));
            }
            if (static_cast<int>(claimed.size()) == free) continue;  // more may be due: look again at once
        }
        wake_.expires_after(options_.tick);
        co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    running_ = false;
}

asio::awaitable<void> poller::poll_checked(store::claimed_order order) {
    const std::string mchid = order.mchid, out_trade_no = order.out_trade_no;
    std::optional<std::string> failure;
    try {
        co_await poll(std::move(order));
    } catch (const std::exception& e) {
        failure = e.what();  // nothing was half-applied: a fact commits whole or not at all
    }
    if (failure) {
        spdlog::warn("poll: failed mchid={} out_trade_no={} error={}", mchid, log_id(out_trade_no),
                     log_quote(*failure));
        // The lease is finished with the error, not left to run out: the order is tried again after a pause,
        // and one that keeps failing this way becomes `stuck` like one whose queries keep failing.
        store::poll_update update;
        update.mchid = mchid;
        update.out_trade_no = out_trade_no;
        update.next_poll_at = options_.clock.micros() + 60 * second;
        update.error = "poll failed: " + *failure;
        update.stuck_after = to_micros(cfg_.alerts.stuck_after);
        try {
            co_await finish(std::move(update));
        } catch (const std::exception& e) {  // the database is gone too: the lease runs out instead
            spdlog::warn("poll: lease not released mchid={} out_trade_no={} error={}", mchid,
                         log_id(out_trade_no), log_quote(e.what()));
        }
    }
    --in_flight_;
    if (!stopping_) wake_.cancel();  // a slot is free: look for due orders now
}

asio::awaitable<void> poller::take_token(const std::string& mchid) {
    co_await rate_->take(mchid);
}

domain::micros poller::backoff(const wechat::call_result& r) const {
    return retry_at(r, options_.clock.micros());
}

asio::awaitable<wechat::call_result> poller::query(const config::merchant_config& m,
                                                   const wechat::merchant_access& access,
                                                   const std::string& out_trade_no, micros& sent_at) {
    co_await take_token(m.mchid);
    sent_at = options_.clock.micros();  // after the wait for the rate: what the answer describes starts here
    wechat::pay_client& client = clients_.pay(m);
    if (m.version == config::api_version::v3) {
        std::string method = "GET", path = "/v3/pay/transactions/out-trade-no/" +
                                           percent_encode(out_trade_no) + "?mchid=" + percent_encode(m.mchid);
        std::string no_body;  // named: GCC 12 mishandles temporaries inside co_await
        co_return co_await client.v3(access, std::move(method), std::move(path), std::move(no_body),
                                     wechat::retry_safety::idempotent);
    }
    protocol::v2::fields fields{{"appid", m.appid}, {"out_trade_no", out_trade_no}};
    std::string path = "/pay/orderquery";
    co_return co_await client.v2(access, std::move(path), std::move(fields), v2_sign_type(m),
                                 wechat::retry_safety::idempotent);
}

asio::awaitable<wechat::call_result> poller::close_at_wechat(const config::merchant_config& m,
                                                             const wechat::merchant_access& access,
                                                             const std::string& out_trade_no,
                                                             micros& sent_at) {
    co_await take_token(m.mchid);
    sent_at = options_.clock.micros();
    wechat::pay_client& client = clients_.pay(m);
    if (m.version == config::api_version::v3) {
        std::string method = "POST",
                    path = "/v3/pay/transactions/out-trade-no/" + percent_encode(out_trade_no) + "/close";
        std::string body = json_object().add("mchid", m.mchid).str();
        co_return co_await client.v3(access, std::move(method), std::move(path), std::move(body),
                                     wechat::retry_safety::once_only);
    }
    protocol::v2::fields fields{{"appid", m.appid}, {"out_trade_no", out_trade_no}};
    std::string path = "/pay/closeorder";
    co_return co_await client.v2(access, std::move(path), std::move(fields), v2_sign_type(m),
                                 wechat::retry_safety::once_only);
}

asio::awaitable<std::pair<std::string, bool>> poller::apply_answer(const config::merchant_config& m,
                                                                   const store::claimed_order& order,
                                                                   const wechat::call_result& answer,
                                                                   micros sent_at) {
    domain::fact f;
    f.mchid = m.mchid;
    f.event_type = "QUERY";
    f.observed_at =
        sent_at;  // what the answer says held when the query was sent (stale if older than the row)
    if (m.version == config::api_version::v3) {
        f.source = domain::fact_source::query_v3;
        auto parsed = protocol::v3::parse_transaction(answer.body);
        if (!parsed) throw std::runtime_error("query answer does not parse: " + parsed.err().message);
        if (parsed->mchid != m.mchid || parsed->payment.out_trade_no != order.out_trade_no)
            throw std::runtime_error("query answer is about another order");
        f.payload_json = answer.body;
        f.body = std::move(parsed->payment);
    } else {
        f.source = domain::fact_source::query_v2;
        auto parsed = protocol::v2::read_payment(answer.fields);
        if (!parsed) throw std::runtime_error("query answer does not parse: " + parsed.err().message);
        if (parsed->out_trade_no != order.out_trade_no)
            throw std::runtime_error("query answer is about another order");
        f.payload_json = protocol::v2::to_json(answer.fields);
        f.body = std::move(*parsed);
    }
    const auto& p = std::get<domain::payment_fact>(f.body);
    f.occurred_at = p.success_time.value_or(sent_at);
    const bool settled = domain::is_terminal(p.state);
    const auto r = co_await ledger_.apply(f, steady::now() + apply_deadline);
    std::string result = r.outcome == domain::outcome::applied      ? "applied"
                         : r.outcome == domain::outcome::stale      ? "stale"
                         : r.outcome == domain::outcome::regression ? "applied"
                                                                    : "unchanged";
    co_return std::pair{std::move(result), settled && r.outcome != domain::outcome::stale};
}

asio::awaitable<bool> poller::apply_close(const store::claimed_order& order, std::string state_desc,
                                          micros sent_at) {
    domain::payment_fact p;
    p.out_trade_no = order.out_trade_no;
    p.state = trade_state::closed;
    p.state_desc = std::move(state_desc);
    domain::fact f;
    f.mchid = order.mchid;
    f.source = domain::fact_source::close;
    f.event_type = "CLOSE";
    f.observed_at = sent_at;
    f.occurred_at = sent_at;
    f.payload_json = json_object().add("out_trade_no", order.out_trade_no).add("trade_state", "CLOSED").str();
    f.body = std::move(p);
    const auto r = co_await ledger_.apply(f, steady::now() + apply_deadline);
    co_return r.outcome != domain::outcome::stale;
}

struct poller::finish_round {
    explicit finish_round(const asio::any_io_executor& ex)
        : done(ex, asio::steady_timer::time_point::max()) {}
    std::vector<store::poll_update> updates;
    std::vector<std::exception_ptr> failures;  // one per update
    asio::steady_timer done;                   // cancelled once written
    bool written = false;
};

asio::awaitable<std::string> poller::finish(store::poll_update update) {
    std::string error = update.error.value_or("");
    if (!next_round_) next_round_ = std::make_shared<finish_round>(executor_);
    const auto round = next_round_;
    const std::size_t mine = round->updates.size();
    round->updates.push_back(std::move(update));
    round->failures.emplace_back();
    if (!writing_finishes_) {
        writing_finishes_ = true;
        asio::co_spawn(executor_, write_finishes(), report_escapes(metrics_, "poller"));
    }
    while (!round->written) co_await round->done.async_wait(asio::as_tuple(asio::use_awaitable));
    if (round->failures[mine]) std::rethrow_exception(round->failures[mine]);
    co_return error;
}

asio::awaitable<void> poller::write_finishes() {
    // Bounded by the polls in flight: each waits for its round before it frees its slot.
    while (next_round_) {
        const auto round = std::move(next_round_);  // outcomes from now on go to the next round
        try {
            const auto refused = co_await store::finish_polls(pool_, options_.owner, round->updates);
            for (std::size_t i = 0; i < refused.size(); ++i)
                if (refused[i])
                    round->failures[i] = std::make_exception_ptr(
                        std::runtime_error("poll outcome not recorded: " + *refused[i]));
        } catch (const std::exception&) {
            std::fill(round->failures.begin(), round->failures.end(), std::current_exception());
        }
        round->written = true;
        round->done.cancel();
    }
    writing_finishes_ = false;
}

micros poller::first_due(const config::merchant_config& m, micros created_at, micros expire_at) const {
    const micros close_at =
        domain::close_due(schedule_, created_at, expire_at, m.version == config::api_version::v2);
    const auto due = domain::query_due(schedule_, created_at, expire_at, 0);
    return due ? std::min(*due, close_at) : close_at;
}

asio::awaitable<poller::out_of_turn_result> poller::close_now(std::string mchid, std::string out_trade_no) {
    co_return co_await out_of_turn(std::move(mchid), std::move(out_trade_no), store::out_of_turn::close_now);
}

asio::awaitable<poller::out_of_turn_result> poller::repoll(std::string mchid, std::string out_trade_no) {
    co_return co_await out_of_turn(std::move(mchid), std::move(out_trade_no), store::out_of_turn::repoll);
}

asio::awaitable<poller::out_of_turn_result> poller::out_of_turn(std::string mchid, std::string out_trade_no,
                                                                store::out_of_turn purpose) {
    out_of_turn_result out;
    const auto lease = co_await store::lease_order(pool_, std::move(mchid), std::move(out_trade_no),
                                                   options_.owner, options_.lease, purpose);
    switch (lease.outcome) {
        case store::order_lease_outcome::unknown:
            out.outcome = out_of_turn_outcome::unknown_order;
            co_return out;
        case store::order_lease_outcome::busy:
            out.outcome = out_of_turn_outcome::busy;
            co_return out;
        case store::order_lease_outcome::settled:
            out.outcome = out_of_turn_outcome::settled;
            co_return out;
        case store::order_lease_outcome::leased:
            break;
    }
    out.error =
        co_await poll(lease.order, purpose == store::out_of_turn::close_now ? poll_reason::close_requested
                                                                            : poll_reason::repoll);
    co_return out;
}

asio::awaitable<std::string> poller::poll(store::claimed_order order, poll_reason reason) {
    const bool close_requested = reason == poll_reason::close_requested;
    const bool repoll = reason == poll_reason::repoll;
    store::poll_update update;
    update.mchid = order.mchid;
    update.out_trade_no = order.out_trade_no;
    update.stuck_after = to_micros(cfg_.alerts.stuck_after);
    const config::merchant_config* m = cfg_.find_merchant(order.mchid);
    const auto keys = keys_.get();  // this poll's key material; a reload meanwhile does not pull it away
    const config::merchant_keys* mk = keys->find(order.mchid);
    const micros now = options_.clock.micros();
    if (domain::is_terminal(order.state) && !repoll) {
        // Settled meanwhile (a notification): the rest of the schedule is cancelled here rather than on the
        // fact path, so applying a fact never touches the next_poll_at index and stays a HOT update.
        co_return co_await finish(std::move(update));
    }
    if (m == nullptr || mk == nullptr) {
        update.next_poll_at = now + 600 * second;
        update.error = "merchant " + order.mchid + " is not configured";
        co_return co_await finish(std::move(update));
    }
    const micros expire = order.expire_at.value_or(order.created_at + to_micros(cfg_.poller.default_expiry));
    if (!order.expire_at) update.fill_expire_at = expire;
    const bool apiv2 = m->version == config::api_version::v2;
    const micros close_at = close_requested ? domain::earliest_close(order.created_at, now, apiv2)
                                            : domain::close_due(schedule_, order.created_at, expire, apiv2);
    const bool closing = now >= close_at && !repoll;  // a repoll asks; it never closes
    if (!closing && reason == poll_reason::scheduled) {
        const auto due = domain::query_due(schedule_, order.created_at, expire, order.poll_attempts);
        if (!due || *due > now) {  // not due yet: a row registered by SQL, or only the close is left
            update.next_poll_at = due ? std::min(*due, close_at) : close_at;
            co_return co_await finish(std::move(update));
        }
    }

    const wechat::merchant_access access = merchant_access_for(*m, *mk);

    const std::string api = m->version == config::api_version::v3 ? "v3" : "v2";
    micros sent_at = 0;
    const wechat::call_result answer = co_await query(*m, access, order.out_trade_no, sent_at);
    const double query_ms = static_cast<double>(options_.clock.micros() - sent_at) / 1000;
    bool settled = false;
    if (answer.outcome == wechat::call_outcome::ok) {
        const micros applying = options_.clock.micros();
        auto [result, done] = co_await apply_answer(*m, order, answer, sent_at);
        metrics_->add("wxrecon_queries_total", {{"api", api}, {"result", result}});
        settled = done;
        update.answered = true;
        spdlog::info(
            "poll: query result={} mchid={} out_trade_no={} request_id={} query_ms={:.1f} apply_ms={:.1f}",
            result, m->mchid, log_id(order.out_trade_no), log_token(answer.request_id), query_ms,
            static_cast<double>(options_.clock.micros() - applying) / 1000);
    } else {
        metrics_->add("wxrecon_queries_total", {{"api", api}, {"result", std::string(query_metric(answer))}});
        spdlog::info("poll: query result={} mchid={} out_trade_no={} request_id={} query_ms={:.1f} error={}",
                     query_metric(answer), m->mchid, log_id(order.out_trade_no), log_token(answer.request_id),
                     query_ms, log_quote(answer.error));
        if (!is_not_found(answer)) {  // a failed query moves only this try
            update.next_poll_at = backoff(answer);
            update.error = answer.error;
            co_return co_await finish(std::move(update));
        }
        update.answered = true;
        update.error = answer.error;
    }

    if (!closing || settled) {
        if (!settled) {
            const auto next = domain::next_query_due(schedule_, order.created_at, expire,
                                                     order.poll_attempts + 1, options_.clock.micros());
            update.next_poll_at = next ? std::min(*next, close_at) : close_at;
        }
        co_return co_await finish(std::move(update));
    }

    co_await close_expired(*m, access, order, answer, update);
    co_return co_await finish(std::move(update));
}

// The final query found the order still open (or unknown at WeChat Pay) at its close time: close it,
// unless it was paid meanwhile. What is left to do goes into update.
asio::awaitable<void> poller::close_expired(const config::merchant_config& m,
                                            const wechat::merchant_access& access,
                                            const store::claimed_order& order,
                                            const wechat::call_result& answer, store::poll_update& update) {
    const std::string api = m.version == config::api_version::v3 ? "v3" : "v2";
    if (is_not_found(answer)) {
        if (!order.placed_at) {
            std::string why = "never placed at WeChat Pay";
            co_await apply_close(order, std::move(why), options_.clock.micros());
            spdlog::info("poll: closed locally mchid={} out_trade_no={} (never placed at WeChat Pay)",
                         m.mchid, log_id(order.out_trade_no));
        } else {
            update.next_poll_at = backoff(answer);
        }
        co_return;
    }
    micros close_sent_at = 0;
    const wechat::call_result closed = co_await close_at_wechat(m, access, order.out_trade_no, close_sent_at);
    if (closed.outcome == wechat::call_outcome::ok || is_already_closed(closed)) {
        std::string why = "closed by wxrecon after expiry";
        co_await apply_close(order, std::move(why), close_sent_at);
        spdlog::info("poll: closed mchid={} out_trade_no={}", m.mchid, log_id(order.out_trade_no));
        update.error.reset();
    } else if (is_already_paid(closed)) {
        // Paid between the final query and the close: the payment is what counts.
        micros again_at = 0;
        const wechat::call_result again = co_await query(m, access, order.out_trade_no, again_at);
        if (again.outcome == wechat::call_outcome::ok) {
            auto [result, done] = co_await apply_answer(m, order, again, again_at);
            (void)done;
            metrics_->add("wxrecon_queries_total", {{"api", api}, {"result", result}});
        } else {
            update.next_poll_at = backoff(again);
            update.error = again.error;
        }
    } else {
        update.next_poll_at = backoff(closed);
        update.error = "close: " + closed.error;
    }
}

}  // namespace wxrecon::workflow
