// Each merchant's calls to WeChat Pay paced to [poller] rate_per_second, one
// token bucket per merchant shared by everything that queries or closes on
// the daemon's own initiative (the poller, the refund tracker).
#pragma once

#include <chrono>
#include <map>
#include <string>

#include <boost/asio/awaitable.hpp>

namespace wxrecon::workflow {

class merchant_rate_limiter {
public:
    explicit merchant_rate_limiter(double rate_per_second)
        : rate_(rate_per_second < 1 ? 1 : rate_per_second) {}
    // Waits until the merchant may make one more call. A full second's burst is allowed.
    boost::asio::awaitable<void> take(const std::string& mchid);

private:
    struct bucket {
        double tokens = 0;
        std::chrono::steady_clock::time_point last;
    };
    double rate_;
    std::map<std::string, bucket, std::less<>> buckets_;  // by mchid; one io thread, no lock
};

}  // namespace wxrecon::workflow
