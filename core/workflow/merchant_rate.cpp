#include "workflow/merchant_rate.hpp"

#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace wxrecon::workflow {

boost::asio::awaitable<void> merchant_rate_limiter::take(const std::string& mchid) {
    using steady = std::chrono::steady_clock;
    auto [slot, added] = buckets_.try_emplace(mchid);
    if (added) slot->second = bucket{rate_, steady::now()};
    const auto executor = co_await boost::asio::this_coro::executor;
    boost::asio::steady_timer timer(executor);
    for (;;) {
        bucket& b = buckets_.find(mchid)->second;  // looked up again: the map may have grown meanwhile
        const auto now = steady::now();
        b.tokens = std::min(rate_, b.tokens + std::chrono::duration<double>(now - b.last).count() * rate_);
        b.last = now;
        if (b.tokens >= 1) {
            b.tokens -= 1;
            co_return;
        }
        timer.expires_after(std::chrono::duration_cast<std::chrono::microseconds>(
            std::chrono::duration<double>((1 - b.tokens) / rate_)));
        co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    }
}

}  // namespace wxrecon::workflow
