#include "base/keyed_rate_limit.hpp"

#include <algorithm>
#include <iterator>

namespace wxrecon {

bool token_bucket::take(clock::time_point now) {
    tokens_ = std::min(burst_, tokens_ + std::chrono::duration<double>(now - refilled_).count() * rate_);
    refilled_ = now;
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
}

double keyed_rate_limit::refill(bucket& b, clock::time_point now) const {
    b.tokens = std::min(burst_, b.tokens + std::chrono::duration<double>(now - b.refilled).count() * rate_);
    b.refilled = now;
    return b.tokens;
}

void keyed_rate_limit::forget_full(clock::time_point now) {
    for (auto it = buckets_.begin(); it != buckets_.end();)
        it = refill(it->second, now) >= burst_ ? buckets_.erase(it) : std::next(it);
}

bool keyed_rate_limit::take(std::string_view key, clock::time_point now) {
    auto found = buckets_.find(std::string(key));
    if (found == buckets_.end()) {
        if (buckets_.size() >= max_keys_) forget_full(now);
        if (buckets_.size() >= max_keys_) return false;
        found = buckets_.emplace(std::string(key), bucket{burst_, now}).first;
    }
    if (refill(found->second, now) < 1) return false;
    found->second.tokens -= 1;
    return true;
}

}  // namespace wxrecon
