// Token buckets kept per key (a client address): each key may spend `burst` at once and regains `rate`
// per second. The table is bounded: a key whose bucket has filled up again is forgotten (it is the same
// as a new one), and when the table is full of keys still spending, a new key is refused rather than
// let in, so many addresses cannot grow memory or push out the keys being throttled.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>

namespace wxrecon {

// One bucket: `burst` tokens at once, `rate` regained per second. Not thread-safe: its owner serialises.
class token_bucket {
public:
    using clock = std::chrono::steady_clock;

    token_bucket(double rate_per_second, double burst, clock::time_point now = clock::now())
        : rate_(rate_per_second), burst_(burst), tokens_(burst), refilled_(now) {}

    // Takes one token: false when none is left.
    bool take(clock::time_point now);
    // True when the bucket has refilled to its burst: it is then no different from a new one.
    bool full(clock::time_point now);

private:
    void refill(clock::time_point now);

    double rate_, burst_, tokens_;
    clock::time_point refilled_;
};

class keyed_rate_limit {
public:
    using clock = std::chrono::steady_clock;

    keyed_rate_limit(double rate_per_second, double burst, std::size_t max_keys)
        : rate_(rate_per_second), burst_(burst), max_keys_(max_keys) {}

    // Takes one token from the key's bucket: false when it has none left (or the table is full).
    bool take(std::string_view key, clock::time_point now);

    std::size_t keys() const noexcept { return buckets_.size(); }

private:
    void forget_full(clock::time_point now);

    double rate_, burst_;
    std::size_t max_keys_;
    std::unordered_map<std::string, token_bucket> buckets_;
};

}  // namespace wxrecon
