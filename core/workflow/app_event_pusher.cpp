#include "workflow/app_event_pusher.hpp"

#include <algorithm>
#include <random>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "base/encoding.hpp"
#include "crypto/crypto.hpp"
#include "workflow/escapes.hpp"

namespace wxrecon::workflow {

namespace asio = boost::asio;
using namespace std::chrono;

namespace {

constexpr auto database_deadline = seconds(10);

net::client_options delivery_options(const config::app_events_config& cfg) {
    net::client_options o;
    o.exchange_timeout = duration_cast<milliseconds>(cfg.timeout);
    o.max_body_bytes = 64 * 1024;  // the receiver's answer is not read; a large one is not kept either
    // A connection per delivery slot stays open: fewer would close and reopen connections at full load.
    o.max_idle_per_host = std::max<std::size_t>(1, cfg.concurrency);
    return o;
}

// The longest one delivery can take: the client tries a reused connection that turns out closed once more
// on a new one, and each try may spend connect_timeout connecting, again on the TLS handshake, then the
// exchange (a name lookup is not bounded: the receiver's address is best configured as an IP or in hosts).
milliseconds longest_send(const net::client_options& o) {
    return 2 * (2 * o.connect_timeout + o.exchange_timeout) + seconds(1);
}

}  // namespace

std::string app_event_signature(std::string_view secret, std::int64_t t, std::string_view body) {
    const std::string stamp = std::to_string(t);
    std::string signed_text;
    signed_text.reserve(stamp.size() + 1 + body.size());
    signed_text.append(stamp).append(".").append(body);
    return "t=" + stamp + ",v1=" + hex_lower(crypto::hmac_sha256(secret, signed_text));
}

app_event_pusher::app_event_pusher(asio::any_io_executor ex, const config::app_events_config& cfg,
                                   std::string secret, store::db_pool& pool, std::shared_ptr<metrics> m,
                                   app_event_pusher_options options)
    : executor_(ex),
      cfg_(cfg),
      secret_(std::move(secret)),
      pool_(pool),
      metrics_(std::move(m)),
      options_(std::move(options)),
      client_(ex, delivery_options(cfg)),
      timer_(ex),
      send_margin_(longest_send(delivery_options(cfg))) {
    if (options_.owner.empty()) options_.owner = "wxrecond-" + crypto::random_alnum(8);
    // A delivery started with send_margin_ of its lease left ends within it, however long [app_events]
    // timeout is: past the lease another instance may claim the event and send the order's next one first.
    options_.lease = std::max(options_.lease, 2 * send_margin_);
}

void app_event_pusher::start() {
    running_ = true;
    asio::co_spawn(executor_, run(), report_escapes(metrics_, "app_event_pusher"));
}

asio::awaitable<void> app_event_pusher::stop(milliseconds grace) {
    stopping_ = true;
    timer_.cancel();
    const auto give_up = steady_clock::now() + grace;
    asio::steady_timer wait(executor_);
    while ((running_ || in_flight_ > 0) && steady_clock::now() < give_up) {
        wait.expires_after(milliseconds(10));
        co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    if (!delivered_.empty()) {  // else they are sent again after the restart: at least once either way
        std::vector<std::int64_t> ids;
        ids.swap(delivered_);
        try {
            co_await store::finish_app_events(pool_, std::move(ids), options_.owner,
                                              steady_clock::now() + seconds(2));
        } catch (const std::exception& e) {
            spdlog::warn("app-events: deliveries not recorded at stop error={}", log_quote(e.what()));
        }
    }
    drop_queue();
    co_await release_unsent(steady_clock::now() + seconds(2));
}

void app_event_pusher::drop_queue() {
    for (const auto& q : queued_) unsent_.push_back(q.event.id);
    queued_.clear();
}

asio::awaitable<void> app_event_pusher::release_unsent(store::deadline until) {
    // Claimed and never sent: free for any instance now, not when the lease ends.
    if (unsent_.empty()) co_return;
    std::vector<std::int64_t> ids;
    ids.swap(unsent_);
    try {
        co_await store::release_app_events(pool_, std::move(ids), options_.owner, until);
    } catch (const std::exception& e) {
        spdlog::warn("app-events: claims not released error={}", log_quote(e.what()));  // the lease ends them
    }
}

void app_event_pusher::wake() {
    asio::dispatch(executor_, [this] { wake_here(); });
}

void app_event_pusher::wake_here() {
    woken_ = true;
    if (!gathering_ && !stopping_) timer_.cancel();
}

asio::awaitable<void> app_event_pusher::run() {
    const int concurrency = static_cast<int>(std::max<std::uint32_t>(1, cfg_.concurrency));
    while (!stopping_) {
        if (woken_ && !backlog_) {
            // Let the events of the next few batches and the deliveries about to end come in first: then
            // a round claims and records them together. Claimed and recorded per event (about four per
            // claim at 2,000 events/s), the outbox cost the database more than the events themselves.
            gathering_ = true;
            timer_.expires_after(options_.gather);
            co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
            gathering_ = false;
            if (stopping_) break;
        }
        woken_ = false;  // the claim below sees everything committed before it
        try {
            if (steady_clock::now() >= next_tidy_) {
                next_tidy_ = steady_clock::now() + options_.tidy_every;
                const auto g =
                    co_await store::tidy_app_events(pool_, steady_clock::now() + database_deadline);
                metrics_->set("wxrecon_app_events_outbox", static_cast<double>(g.pending));
                metrics_->set("wxrecon_app_events_oldest_seconds", g.oldest_seconds);
            }
            // A claim is due when the queue can no longer keep every slot busy: with a backlog at once, else
            // after the gather moment.
            const bool claim = queued_.size() < static_cast<std::size_t>(concurrency);
            if (!delivered_.empty() &&
                (claim || in_flight_ == 0 || steady_clock::now() - first_delivered_ >= options_.gather)) {
                // The 2xx received since the last record, recorded together: one statement, whatever their
                // number, at least every gather moment. Until then the next event of those orders waits, so
                // the order per order holds; lost (the statement failed), they are sent again after the
                // lease.
                std::vector<std::int64_t> ids;
                ids.swap(delivered_);
                co_await store::finish_app_events(pool_, std::move(ids), options_.owner,
                                                  steady_clock::now() + database_deadline);
            }
            if (!unsent_.empty()) co_await release_unsent(steady_clock::now() + database_deadline);
            if (claim) {
                const std::size_t limit =
                    std::max(options_.claim_limit, static_cast<std::size_t>(concurrency)) - queued_.size();
                const auto lease_ends = steady_clock::now() + options_.lease;
                auto due = co_await store::claim_app_events(pool_, options_.owner, options_.lease, limit,
                                                            steady_clock::now() + database_deadline);
                backlog_ = due.size() == limit;
                for (auto& e : due) queued_.push_back(claimed_event{std::move(e), lease_ends});
                if (stopping_) {  // stopped while the claim ran: stop() may have released the queue already
                    drop_queue();
                    co_await release_unsent(steady_clock::now() + seconds(2));
                }
                send_queued();
            }
        } catch (const std::exception& e) {
            backlog_ = false;  // the next round gathers first rather than calling a failing database at once
            spdlog::warn("app-events: outbox not read error={}", log_quote(e.what()));
        }
        if (stopping_) break;
        // Woken while the database had the round (a cancel then finds no wait to cut short): go round
        // again rather than sleep through it. Without a database call since the top, woken_ is false here.
        if (woken_) continue;
        // Cut short by a wake-up or a finished delivery (which then gather, unless there is a backlog: then
        // the queue is refilled as soon as it runs low).
        timer_.expires_after(options_.tick);
        co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    running_ = false;
}

void app_event_pusher::send_queued() {
    if (stopping_) return;  // what is left is released by stop()
    const int concurrency = static_cast<int>(std::max<std::uint32_t>(1, cfg_.concurrency));
    // An event whose lease could end before its answer came back is not sent: another instance may claim
    // it then, and two senders of one order could put its events out of order. Its claim is released.
    while (in_flight_ < concurrency && !queued_.empty()) {
        claimed_event next = std::move(queued_.front());
        queued_.pop_front();
        if (steady_clock::now() + send_margin_ >= next.lease_ends) {
            unsent_.push_back(next.event.id);
            continue;
        }
        ++in_flight_;
        asio::co_spawn(executor_, deliver(std::move(next.event)),
                       report_escapes(metrics_, "app_event_pusher"));
    }
}

asio::awaitable<void> app_event_pusher::deliver(store::app_event e) {
    net::outbound_request req;
    req.method = "POST";
    req.url = cfg_.url;
    req.headers = {{"Content-Type", "application/json"},
                   {"X-Wxrecon-Event-Id", std::to_string(e.id)},
                   {"X-Wxrecon-Signature", app_event_signature(secret_, options_.clock.seconds(), e.body)}};
    req.body = e.body;
    const auto sent = steady_clock::now();
    const net::exchange ex = co_await client_.send(std::move(req));
    const int status = ex.response ? ex.response->status : 0;
    try {
        if (status >= 200 && status < 300) {
            if (delivered_.empty()) first_delivered_ = steady_clock::now();
            delivered_.push_back(e.id);
            metrics_->add("wxrecon_app_events_total", {{"result", "delivered"}});
            metrics_->observe("wxrecon_app_event_delivery_seconds",
                              duration<double>(steady_clock::now() - sent).count());
        } else {
            const std::string error =
                ex.response ? "HTTP " + std::to_string(status) : "no answer: " + ex.error;
            const auto after = backoff(e.attempts);
            metrics_->add("wxrecon_app_events_total", {{"result", "failed"}});
            // Every failure counts in the metric; the log says the first and every tenth of an event.
            if (e.attempts == 1 || e.attempts % 10 == 0)
                spdlog::info("app-events: delivery failed id={} attempts={} retry_ms={} error={}", e.id,
                             e.attempts, after.count(), log_quote(error));
            co_await store::retry_app_event(pool_, e.id, options_.owner, status, error, after,
                                            steady_clock::now() + database_deadline);
        }
    } catch (const std::exception& x) {
        // Not recorded: the lease runs out and the event is sent again (at least once).
        spdlog::warn("app-events: outcome not recorded id={} error={}", e.id, log_quote(x.what()));
    }
    --in_flight_;
    send_queued();
    wake_here();  // a 2xx waits to be recorded, and the queue may need more
}

milliseconds app_event_pusher::backoff(int attempts) const {
    static thread_local std::mt19937 rng{std::random_device{}()};
    const int doublings = std::clamp(attempts - 1, 0, 20);
    const milliseconds base =
        std::min<milliseconds>(options_.first_retry * (1L << std::min(doublings, 16)), options_.last_retry);
    std::uniform_real_distribution<double> jitter(0.5, 1.5);  // instances and events spread out
    return milliseconds(static_cast<std::int64_t>(static_cast<double>(base.count()) * jitter(rng)));
}

}  // namespace wxrecon::workflow
