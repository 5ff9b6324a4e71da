// Platform certificates (docs/protocol-notes.md §2.4, §2.6): the list from
// /v3/certificates is downloaded at start and every 12 hours for merchants
// that verify with platform certificates, and on demand, throttled per
// merchant, when a notification names a serial no trusted key has. A list is
// trusted only when its answer verifies with a key trusted before the
// download; each certificate is decrypted with the APIv3 key and its serial
// checked (wechat::read_certificates).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "base/metrics.hpp"
#include "base/time.hpp"
#include "config/config.hpp"
#include "workflow/key_holder.hpp"
#include "workflow/wechat_access.hpp"

namespace wxrecon::workflow {

struct certificate_refresh_options {
    std::chrono::milliseconds interval{
        std::chrono::hours(12)};  // docs/protocol-notes.md §2.4: at least every 12 h
    std::chrono::milliseconds on_demand_gap{
        std::chrono::minutes(1)};  // docs/protocol-notes.md §2.6: ≥ 1 min between forced refreshes
    wall_clock clock;              // decides which listed certificates have expired
};

class certificate_refresher {
public:
    certificate_refresher(boost::asio::any_io_executor ex, const config::config& cfg, key_holder& keys,
                          wechat_clients& clients, std::shared_ptr<metrics> m,
                          certificate_refresh_options options = {});
    void start();
    // Stops scheduling and waits (bounded) for downloads in flight.
    boost::asio::awaitable<void> stop(std::chrono::milliseconds grace);
    // A notification named an unknown platform serial: refresh now unless this merchant was refreshed on
    // demand within on_demand_gap. Never blocks the caller.
    void unknown_serial(const std::string& mchid);
    // The key files were reloaded (SIGHUP): download every list again now, so that what is trusted is the
    // files plus what WeChat Pay serves today. Never blocks the caller.
    void reloaded();
    // Downloads the merchant's list now, when it verifies with platform certificates, and waits for the
    // download: a one-shot command (replay, repoll) trusts what WeChat Pay serves today, as the daemon does.
    boost::asio::awaitable<void> download_now(std::string mchid);

private:
    boost::asio::awaitable<void> run();
    boost::asio::awaitable<void> refresh(std::string mchid, std::string why);

    boost::asio::any_io_executor executor_;
    const config::config& cfg_;
    key_holder& keys_;
    wechat_clients& clients_;
    std::shared_ptr<metrics> metrics_;
    certificate_refresh_options options_;
    boost::asio::steady_timer timer_;
    std::map<std::string, std::chrono::steady_clock::time_point> last_on_demand_;
    bool stopping_ = false;
    int in_flight_ = 0;
};

}  // namespace wxrecon::workflow
