#include "workflow/refund_tracker.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <limits>

#include "base/encoding.hpp"
#include "store/ledger.hpp"
#include "workflow/escapes.hpp"
#include "workflow/query_retry.hpp"
#include "workflow/refund_calls.hpp"

namespace wxrecon::workflow {

namespace asio = boost::asio;
using domain::micros;
using steady = std::chrono::steady_clock;

namespace {

constexpr micros second = 1'000'000;
constexpr auto apply_deadline = std::chrono::seconds(10);
constexpr micros never = std::numeric_limits<micros>::max();  // refunds do not expire

micros to_micros(config::duration d) {
    return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

std::string_view query_metric(const wechat::call_result& r) {
    return failed_query_label(r, is_refund_not_found(r));
}

std::string_view to_metric(store::refund_attempt_outcome o) {
    switch (o) {
        case store::refund_attempt_outcome::accepted:
            return "accepted";
        case store::refund_attempt_outcome::refused:
            return "refused";
        default:
            return "unknown";
    }
}

}  // namespace

refund_tracker::refund_tracker(asio::any_io_executor ex, const config::config& cfg, key_holder& keys,
                               wechat_clients& clients, store::db_pool& pool, store::ledger& ledger,
                               std::shared_ptr<metrics> m, refund_tracker_options options)
    : executor_(ex),
      cfg_(cfg),
      keys_(keys),
      clients_(clients),
      pool_(pool),
      ledger_(ledger),
      metrics_(std::move(m)),
      options_(std::move(options)),
      wake_(ex) {
    for (const auto d : cfg_.poller.refund_delays) schedule_.delays.push_back(to_micros(d));
    schedule_.interval_after = to_micros(cfg_.poller.refund_interval_after);
    if (options_.owner.empty()) options_.owner = "wxrecond-" + crypto::random_alnum(8);
    if (!options_.rate) options_.rate = std::make_shared<merchant_rate_limiter>(cfg_.poller.rate_per_second);
}

void refund_tracker::start() {
    running_ = true;
    asio::co_spawn(executor_, run(), report_escapes(metrics_, "refund_tracker"));
}

asio::awaitable<void> refund_tracker::stop(std::chrono::milliseconds grace) {
    stopping_ = true;
    wake_.cancel();
    const auto give_up = steady::now() + grace;
    asio::steady_timer timer(executor_);
    while ((in_flight_ > 0 || running_) && steady::now() < give_up) {
        timer.expires_after(std::chrono::milliseconds(10));
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

asio::awaitable<void> refund_tracker::run() {
    const int concurrency = static_cast<int>(std::max<std::uint32_t>(1, cfg_.poller.concurrency));
    while (!stopping_) {
        const int free = concurrency - in_flight_;
        if (free > 0) {
            std::vector<store::claimed_refund> claimed;
            try {
                claimed = co_await store::claim_due_refunds(pool_, options_.owner, options_.lease,
                                                            static_cast<std::size_t>(free));
            } catch (const std::exception& e) {
                spdlog::warn("refunds: cannot claim due refunds error={}", log_quote(e.what()));
            }
            for (auto& refund : claimed) {
                ++in_flight_;
                asio::co_spawn(executor_, track_checked(std::move(refund)),
                               report_escapes(metrics_, "refund_tracker"));
            }
            if (static_cast<int>(claimed.size()) == free) continue;  // more may be due
        }
        wake_.expires_after(options_.tick);
        co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    running_ = false;
}

asio::awaitable<void> refund_tracker::track_checked(store::claimed_refund refund) {
    const std::string mchid = refund.mchid, out_refund_no = refund.out_refund_no;
    try {
        co_await track(std::move(refund));
    } catch (const std::exception& e) {
        // The lease runs out and the refund is claimed again later; nothing was half-applied.
        spdlog::warn("refunds: tracking failed mchid={} out_refund_no={} error={}", mchid, out_refund_no,
                     log_quote(e.what()));
    }
    --in_flight_;
    if (!stopping_) wake_.cancel();
}

micros refund_tracker::next_due(const store::claimed_refund& refund) const {
    const auto next = domain::next_query_due(schedule_, refund.created_at, never, refund.poll_attempts + 1,
                                             options_.clock.micros());
    return next.value_or(options_.clock.micros() + std::max(schedule_.interval_after, 60 * second));
}

micros refund_tracker::backoff(const wechat::call_result& r) const {
    return retry_at(r, options_.clock.micros());
}

asio::awaitable<void> refund_tracker::track(store::claimed_refund refund) {
    store::refund_poll_update update;
    update.mchid = refund.mchid;
    update.out_refund_no = refund.out_refund_no;
    update.stuck_after = to_micros(cfg_.alerts.refund_stuck_after);
    const config::merchant_config* m = cfg_.find_merchant(refund.mchid);
    const auto keys = keys_.get();
    const config::merchant_keys* mk = keys->find(refund.mchid);
    if (refund.status == domain::refund_status::success || refund.status == domain::refund_status::closed) {
        co_await store::finish_refund_poll(pool_, options_.owner, std::move(update));  // final meanwhile
        co_return;
    }
    if (m == nullptr || mk == nullptr) {
        update.next_poll_at = options_.clock.micros() + 600 * second;
        update.error = "merchant " + refund.mchid + " is not configured";
        co_await store::finish_refund_poll(pool_, options_.owner, std::move(update));
        co_return;
    }
    const wechat::merchant_access access = merchant_access_for(*m, *mk);
    wechat::pay_client& client = clients_.pay(*m);
    const std::string api = m->version == config::api_version::v3 ? "v3" : "v2";

    co_await options_.rate->take(m->mchid);
    const micros sent_at = options_.clock.micros();
    const wechat::call_result answer = co_await query_refund(client, access, *m, refund.out_refund_no);
    if (answer.outcome == wechat::call_outcome::ok) {
        auto f = refund_fact_of(*m, answer, refund.out_refund_no, "QUERY", sent_at);
        if (!f) throw std::runtime_error("refund query answer does not parse: " + f.err().message);
        const auto r = co_await ledger_.apply(*f, steady::now() + apply_deadline);
        const auto status = std::get<domain::refund_fact>(f->body).status;
        const std::string result = r.duplicate                                ? "unchanged"
                                   : r.outcome == domain::outcome::applied    ? "applied"
                                   : r.outcome == domain::outcome::stale      ? "stale"
                                   : r.outcome == domain::outcome::regression ? "applied"
                                                                              : "unchanged";
        metrics_->add("wxrecon_refund_queries_total", {{"api", api}, {"result", result}});
        spdlog::info("refunds: query result={} mchid={} out_refund_no={} status={}", result, m->mchid,
                     refund.out_refund_no, domain::to_string(status));
        update.answered = true;
        update.next_poll_at = next_due(refund);
        co_await store::finish_refund_poll(pool_, options_.owner, std::move(update));
        co_return;
    }
    metrics_->add("wxrecon_refund_queries_total",
                  {{"api", api}, {"result", std::string(query_metric(answer))}});
    spdlog::info("refunds: query result={} mchid={} out_refund_no={} error={}", query_metric(answer),
                 m->mchid, refund.out_refund_no, log_quote(answer.error));
    if (!is_refund_not_found(answer) || !refund.request) {
        // A refund learned from WeChat Pay that it no longer finds is odd but not ours to make.
        update.next_poll_at = is_refund_not_found(answer) ? next_due(refund) : backoff(answer);
        update.error = answer.error;
        update.answered = is_refund_not_found(answer);
        co_await store::finish_refund_poll(pool_, options_.owner, std::move(update));
        co_return;
    }
    // WeChat Pay never got our request (or refused it unseen): send it again, identical, same number.
    co_await options_.rate->take(m->mchid);
    const wechat::call_result sent = co_await send_refund(client, access, *m, *refund.request);
    store::refund_attempt attempt;
    attempt.outcome = classify_refund_answer(sent);
    attempt.code = sent.code.empty() ? std::string(wechat::to_string(sent.outcome)) : sent.code;
    attempt.error =
        sent.outcome == wechat::call_outcome::ok ? "" : (sent.message.empty() ? sent.error : sent.message);
    if (attempt.outcome == store::refund_attempt_outcome::accepted) {
        attempt.code.clear();
        if (auto id = refund_id_of(*m, sent); !id.empty()) attempt.refund_id = std::move(id);
    }
    metrics_->add("wxrecon_refunds_total",
                  {{"api", api}, {"result", std::string(to_metric(attempt.outcome))}});
    spdlog::info("refunds: resent result={} mchid={} out_refund_no={}{}", to_metric(attempt.outcome),
                 m->mchid, refund.out_refund_no,
                 attempt.error.empty() ? "" : " error=" + log_quote(attempt.error));
    co_await store::record_refund_attempt(pool_, m->mchid, refund.out_refund_no, std::move(attempt),
                                          steady::now() + apply_deadline);
    update.answered = true;
    update.next_poll_at = next_due(refund);
    co_await store::finish_refund_poll(pool_, options_.owner, std::move(update));
}

}  // namespace wxrecon::workflow
