// Per-key token buckets (the API's failed-authentication throttle): keys are independent, refill with
// time, and the table stays bounded.
#include <gtest/gtest.h>

#include "base/keyed_rate_limit.hpp"

namespace wxrecon {
namespace {

using namespace std::chrono_literals;

TEST(KeyedRateLimit, EachKeySpendsItsOwnBurstAndRefills) {
    keyed_rate_limit limit(10, 3, 16);
    const auto t0 = keyed_rate_limit::clock::time_point{} + 1h;
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(limit.take("10.0.0.1", t0));
    EXPECT_FALSE(limit.take("10.0.0.1", t0)) << "burst spent";
    EXPECT_TRUE(limit.take("10.0.0.2", t0)) << "another key has its own bucket";
    EXPECT_FALSE(limit.take("10.0.0.1", t0 + 50ms)) << "half a token regained";
    EXPECT_TRUE(limit.take("10.0.0.1", t0 + 100ms)) << "one token regained at 10 per second";
    EXPECT_FALSE(limit.take("10.0.0.1", t0 + 100ms));
}

TEST(KeyedRateLimit, TableIsBoundedAndForgetsKeysThatRecovered) {
    keyed_rate_limit limit(1, 2, 4);
    const auto t0 = keyed_rate_limit::clock::time_point{} + 1h;
    for (int k = 0; k < 4; ++k) EXPECT_TRUE(limit.take("k" + std::to_string(k), t0));
    EXPECT_EQ(limit.keys(), 4u);
    EXPECT_FALSE(limit.take("k4", t0))
        << "full of keys still spending: a new key is refused, none pushed out";
    EXPECT_EQ(limit.keys(), 4u);
    EXPECT_TRUE(limit.take("k0", t0)) << "known keys keep their buckets";
    // Two seconds later every bucket is full again: those keys are forgotten and the new one fits.
    EXPECT_TRUE(limit.take("k4", t0 + 2s));
    EXPECT_LE(limit.keys(), 4u);
}

TEST(TokenBucket, SpendsItsBurstRefillsAndKnowsWhenItIsFull) {
    const auto t0 = token_bucket::clock::time_point{} + 1h;
    token_bucket bucket(20, 2, t0);
    EXPECT_TRUE(bucket.full(t0));
    EXPECT_TRUE(bucket.take(t0));
    EXPECT_FALSE(bucket.full(t0));
    EXPECT_TRUE(bucket.take(t0));
    EXPECT_FALSE(bucket.take(t0)) << "burst spent";
    EXPECT_TRUE(bucket.take(t0 + 50ms)) << "one token regained at 20 per second";
    EXPECT_FALSE(bucket.full(t0 + 99ms));
    EXPECT_TRUE(bucket.full(t0 + 1s)) << "never more than the burst";
    EXPECT_TRUE(bucket.take(t0 + 1s));
    EXPECT_TRUE(bucket.take(t0 + 1s));
    EXPECT_FALSE(bucket.take(t0 + 1s));
}

}  // namespace
}  // namespace wxrecon
