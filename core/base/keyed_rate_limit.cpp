#include "base/keyed_rate_limit.hpp"

#include <algorithm>
#include <iterator>

namespace wxrecon {

void token_bucket::refill(clock::time_point now) {
    tokens_ = std::min(burst_, tokens_ + std::chrono::duration<double>(now - refilled_).count() * rate_);
    refilled_ = now;
}

bool token_bucket::take(clock::time_point now) {
    refill(now);
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
}

bool token_bucket::full(clock::time_point now) {
    refill(now);
    return tokens_ >= burst_;
}

void keyed_rate_limit::forget_full(clock::time_point now) {
    for (auto it = buckets_.begin(); it != buckets_.end();)
        it = it->second.full(now) ? buckets_.erase(it) : std::next(it);
}

bool keyed_rate_limit::take(std::string_view key, clock::time_point now) {
    auto found = buckets_.find(std::string(key));
    if (found == buckets_.end()) {
        if (buckets_.size() >= max_keys_) forget_full(now);
        if (buckets_.size() >= max_keys_) return false;
        found = buckets_.emplace(std::string(key), token_bucket(rate_, burst_, now)).first;
    }
    return found->second.take(now);
}

}  // namespace wxrecon
