#include "workflow/alert_pusher.hpp"

#include <algorithm>
#include <random>

#include <simdjson.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "base/encoding.hpp"
#include "base/json_writer.hpp"
#include "workflow/escapes.hpp"

namespace wxrecon::workflow {

namespace asio = boost::asio;
using namespace std::chrono;

namespace {

constexpr std::size_t wecom_detail_bytes = 1500;  // the robot refuses markdown over 4096 bytes

std::string fen(std::int64_t v) {
    return std::to_string(v) + " fen";
}

}  // namespace

bool is_wecom_robot(const std::string& url) {
    const auto parts = net::parse_url(url);
    return parts && parts->target.starts_with("/cgi-bin/webhook/send");
}

std::string alert_message(const store::pending_alert& a, bool wecom) {
    if (!wecom) {
        json_object order;
        if (a.order_state) {
            order.add("state", *a.order_state);
            if (a.amount_total) order.add("amount_total", *a.amount_total);
            if (a.payer_total) order.add("payer_total", *a.payer_total);
        }
        json_object o;
        o.add("source", "wxrecon")
            .add("discrepancy_id", a.discrepancy_id)
            .add("kind", a.kind)
            .add("mchid", a.mchid)
            .add("out_trade_no", a.out_trade_no)
            .add("detected_at", a.detected_at)
            .add("resolved", a.resolved)
            .add_raw("detail", a.detail_json);
        if (a.order_state)
            o.add_raw("order", order.str());
        else
            o.add_null("order");
        return o.str();
    }
    std::string md = "**wxrecon: " + a.kind + "**\n";
    md += "> merchant: " + a.mchid + "\n";
    md += "> order: " + a.out_trade_no + "\n";
    if (a.order_state) {
        md += "> state: " + *a.order_state;
        if (a.amount_total) md += ", amount " + fen(*a.amount_total);
        if (a.payer_total) md += ", paid " + fen(*a.payer_total);
        md += "\n";
    } else {
        md += "> state: no order on record\n";
    }
    md += "> detected: " + a.detected_at + (a.resolved ? " (resolved since)" : "") + "\n";
    md += "> detail: `" + sanitize_utf8(a.detail_json, wecom_detail_bytes) + "`\n";
    md += "<font color=\"comment\">SELECT * FROM wxrecon.discrepancies WHERE id = " +
          std::to_string(a.discrepancy_id) + "</font>";
    json_object markdown;
    markdown.add("content", md);
    json_object o;
    o.add("msgtype", "markdown").add_raw("markdown", markdown.str());
    return o.str();
}

alert_pusher::alert_pusher(asio::any_io_executor ex, const config::config& cfg, store::db_pool& pool,
                           std::shared_ptr<metrics> m, alert_pusher_options options)
    : executor_(ex),
      cfg_(cfg),
      pool_(pool),
      metrics_(std::move(m)),
      options_(options),
      client_(ex, net::client_options{}),
      timer_(ex) {}

void alert_pusher::start() {
    running_ = true;
    asio::co_spawn(executor_, run(), report_escapes(metrics_, "alert_pusher"));
}

asio::awaitable<void> alert_pusher::stop(milliseconds grace) {
    stopping_ = true;
    timer_.cancel();
    const auto give_up = steady_clock::now() + grace;
    asio::steady_timer wait(executor_);
    while (running_ && steady_clock::now() < give_up) {
        wait.expires_after(milliseconds(10));
        co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

asio::awaitable<void> alert_pusher::run() {
    while (!stopping_) {
        try {
            if (steady_clock::now() >= next_tidy_) {
                next_tidy_ = steady_clock::now() + options_.tidy_every;
                co_await tidy();
            }
            if (cfg_.alerts.webhook_url) co_await push_due();
        } catch (const std::exception& e) {
            // The outbox keeps everything for the next round. Said once a minute: a database that is down
            // shows in db_up, but a lasting error of the outbox alone (privileges, say) must not go unseen.
            if (steady_clock::now() >= next_error_log_) {
                next_error_log_ = steady_clock::now() + minutes(1);
                spdlog::warn("alerts: outbox not read error={}", log_quote(e.what()));
            }
        }
        if (stopping_) break;
        timer_.expires_after(options_.tick);
        co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    running_ = false;
}

asio::awaitable<void> alert_pusher::tidy() {
    const auto t = co_await store::tidy_alert_outbox(pool_, steady_clock::now() + seconds(10));
    metrics_->set("wxrecon_webhook_outbox", static_cast<double>(t.pending));
    // Without a webhook the queue only ages out; with one, an expiry means a receiver down for a day.
    if (t.expired > 0 && cfg_.alerts.webhook_url) {
        metrics_->add("wxrecon_webhook_pushes_total", {{"result", "expired"}},
                      static_cast<std::uint64_t>(t.expired));
        spdlog::warn("alerts: gave up on {} push(es) unsent for a day; see wxrecon.alert_outbox", t.expired);
    }
}

asio::awaitable<void> alert_pusher::push_due() {
    const auto grace = duration_cast<milliseconds>(cfg_.alerts.unknown_order_grace);
    while (!stopping_) {
        // At most webhook_per_minute in any minute: the send times of the last minute are kept.
        const auto now = steady_clock::now();
        while (!sent_.empty() && now - sent_.front() >= minutes(1)) sent_.pop_front();
        if (sent_.size() >= cfg_.alerts.webhook_per_minute) co_return;
        // One at a time: the lease covers a single push, and a stop is noticed between pushes.
        const auto due =
            co_await store::claim_alerts(pool_, 1, grace, options_.lease, steady_clock::now() + seconds(10));
        if (due.empty()) co_return;
        const store::pending_alert& a = due.front();
        std::string outcome = "pushed";
        if (a.kind == "unknown_order" && a.resolved) {
            outcome = "resolved_before_push";  // the registration caught up within the grace period
        } else {
            sent_.push_back(steady_clock::now());
            const auto [error, retry_after] = co_await push(a);
            if (!error.empty()) {
                metrics_->add("wxrecon_webhook_pushes_total", {{"result", "failed"}});
                spdlog::warn("alerts: push failed discrepancy_id={} kind={} attempts={} retry_s={} error={}",
                             a.discrepancy_id, a.kind, a.attempts,
                             duration_cast<seconds>(retry_after).count(), log_quote(error));
                co_await store::retry_alert(pool_, a.discrepancy_id, error, retry_after,
                                            steady_clock::now() + seconds(10));
                continue;
            }
        }
        metrics_->add("wxrecon_webhook_pushes_total", {{"result", outcome}});
        spdlog::info("alerts: {} discrepancy_id={} kind={} mchid={} out_trade_no={}", outcome,
                     a.discrepancy_id, a.kind, a.mchid, a.out_trade_no);
        co_await store::finish_alert(pool_, a.discrepancy_id, outcome, steady_clock::now() + seconds(10));
    }
}

asio::awaitable<std::pair<std::string, milliseconds>> alert_pusher::push(const store::pending_alert& a) {
    const std::string& url = *cfg_.alerts.webhook_url;
    const bool wecom = is_wecom_robot(url);
    net::outbound_request req;
    req.method = "POST";
    req.url = url;
    req.headers = {{"Content-Type", "application/json"},
                   {"Idempotency-Key", "wxrecon-discrepancy-" + std::to_string(a.discrepancy_id)}};
    req.body = alert_message(a, wecom);
    const net::exchange ex = co_await client_.send(std::move(req));
    if (!ex.response) co_return std::pair{"no answer: " + ex.error, backoff(a.attempts)};
    const auto& res = *ex.response;
    if (res.status < 200 || res.status >= 300)
        co_return std::pair{"HTTP " + std::to_string(res.status), backoff(a.attempts)};
    if (wecom) {
        // The robot answers 200 with {"errcode": N, "errmsg": "..."}; only errcode 0 is delivered.
        simdjson::dom::parser parser;
        simdjson::dom::element doc;
        std::int64_t errcode = -1;
        if (parser.parse(res.body).get(doc) || doc["errcode"].get(errcode))
            co_return std::pair{std::string("WeCom answer is not {\"errcode\":...}"), backoff(a.attempts)};
        // 45009 is the robot's rate limit (20 a minute): backing off like any failure is enough.
        if (errcode != 0)
            co_return std::pair{"WeCom errcode " + std::to_string(errcode), backoff(a.attempts)};
    }
    co_return std::pair{std::string(), milliseconds(0)};
}

milliseconds alert_pusher::backoff(int attempts) const {
    static thread_local std::mt19937 rng{std::random_device{}()};
    const int doublings = std::clamp(attempts - 1, 0, 20);
    const milliseconds base =
        std::min<milliseconds>(options_.first_retry * (1L << std::min(doublings, 16)), options_.last_retry);
    std::uniform_real_distribution<double> jitter(0.8, 1.2);
    return milliseconds(static_cast<std::int64_t>(static_cast<double>(base.count()) * jitter(rng)));
}

}  // namespace wxrecon::workflow
