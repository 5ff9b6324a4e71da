#include "workflow/certificate_refresher.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "base/encoding.hpp"
#include "workflow/escapes.hpp"

namespace wxrecon::workflow {

namespace asio = boost::asio;

namespace {

// The merchants a download can work for: APIv3 request signing and the APIv3 key to decrypt the list.
bool can_download(const config::merchant_config& m, const config::merchant_keys& k) {
    return m.merchant_cert_serial && k.merchant_private_key && k.apiv3_key;
}

// Only merchants that verify with platform certificates need the list.
bool uses_platform_certificates(const config::merchant_config& m) {
    return m.version == config::api_version::v3 && !m.platform_cert_files.empty();
}

}  // namespace

certificate_refresher::certificate_refresher(asio::any_io_executor ex, const config::config& cfg,
                                             key_holder& keys, wechat_clients& clients,
                                             std::shared_ptr<metrics> m, certificate_refresh_options options)
    : executor_(ex),
      cfg_(cfg),
      keys_(keys),
      clients_(clients),
      metrics_(std::move(m)),
      options_(options),
      timer_(ex) {}

void certificate_refresher::start() {
    asio::co_spawn(executor_, run(), report_escapes(metrics_, "certificate_refresher"));
}

asio::awaitable<void> certificate_refresher::stop(std::chrono::milliseconds grace) {
    stopping_ = true;
    timer_.cancel();
    const auto give_up = std::chrono::steady_clock::now() + grace;
    asio::steady_timer wait(executor_);
    while (in_flight_ > 0 && std::chrono::steady_clock::now() < give_up) {
        wait.expires_after(std::chrono::milliseconds(10));
        co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

void certificate_refresher::unknown_serial(const std::string& mchid) {
    if (stopping_) return;
    const auto now = std::chrono::steady_clock::now();
    const auto it = last_on_demand_.find(mchid);
    if (it != last_on_demand_.end() && now - it->second < options_.on_demand_gap) return;
    last_on_demand_[mchid] = now;
    asio::co_spawn(executor_, refresh(mchid, "unknown serial"),
                   report_escapes(metrics_, "certificate_refresher"));
}

void certificate_refresher::reloaded() {
    if (stopping_) return;
    for (const auto& m : cfg_.merchants)
        if (uses_platform_certificates(m))
            asio::co_spawn(executor_, refresh(m.mchid, "reload"),
                           report_escapes(metrics_, "certificate_refresher"));
}

asio::awaitable<void> certificate_refresher::download_now(std::string mchid) {
    const config::merchant_config* m = cfg_.find_merchant(mchid);
    if (m != nullptr && uses_platform_certificates(*m)) co_await refresh(std::move(mchid), "command");
}

asio::awaitable<void> certificate_refresher::run() {
    while (!stopping_) {
        for (const auto& m : cfg_.merchants) {
            if (stopping_) break;
            if (uses_platform_certificates(m)) co_await refresh(m.mchid, "scheduled");
        }
        timer_.expires_after(options_.interval);
        co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

asio::awaitable<void> certificate_refresher::refresh(std::string mchid, std::string why) {
    const config::merchant_config* m = cfg_.find_merchant(mchid);
    const auto keys = keys_.get();  // the keys trusted before this download
    const config::merchant_keys* mk = keys->find(mchid);
    if (stopping_ || m == nullptr || mk == nullptr || !can_download(*m, *mk)) co_return;
    ++in_flight_;
    // Counted down however the download ends, an exception included: stop() waits for in_flight_. (Not by a
    // guard object: a frame destroyed unfinished at exit must not touch this object, gone by then.)
    try {
        const wechat::merchant_access access = merchant_access_for(*m, *mk);
        std::string method = "GET", path = "/v3/certificates?algorithm_type=RSA", no_body;
        const wechat::call_result answer = co_await clients_.pay(*m).v3(
            access, std::move(method), std::move(path), std::move(no_body), wechat::retry_safety::idempotent);
        std::string result = "ok";
        if (answer.outcome != wechat::call_outcome::ok) {
            result = answer.outcome == wechat::call_outcome::forged ? "untrusted" : "failed";
            spdlog::warn("certificates: download failed mchid={} why=\"{}\" result={} error={}", mchid, why,
                         result, log_quote(answer.error));
        } else if (auto certs = wechat::read_certificates(answer, *mk->apiv3_key); !certs) {
            result = "untrusted";
            spdlog::warn("certificates: list refused mchid={} why=\"{}\" error={}", mchid, why,
                         log_quote(certs.err().message));
        } else {
            const int added = keys_.replace_downloaded(mchid, *certs, options_.clock.seconds());
            spdlog::info("certificates: refreshed mchid={} why=\"{}\" listed={} new={}", mchid, why,
                         certs->size(), added);
        }
        metrics_->add("wxrecon_certificate_refreshes_total", {{"result", result}});
    } catch (...) {
        --in_flight_;
        throw;
    }
    --in_flight_;
}

}  // namespace wxrecon::workflow
