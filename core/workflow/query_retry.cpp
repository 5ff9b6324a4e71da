#include "workflow/query_retry.hpp"

#include <random>

namespace wxrecon::workflow {

std::string_view failed_query_label(const wechat::call_result& r, bool not_found) {
    switch (r.outcome) {
        case wechat::call_outcome::rate_limited:
            return "rate_limited";
        case wechat::call_outcome::server_error:
            return "server_error";
        case wechat::call_outcome::forged:
            return "bad_signature";
        case wechat::call_outcome::unreachable:
            return r.sent ? "timeout" : "error";
        default:
            return not_found ? "not_found" : "error";
    }
}

domain::micros retry_at(const wechat::call_result& r, domain::micros now) {
    constexpr domain::micros second = 1'000'000;
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    const domain::micros base = r.outcome == wechat::call_outcome::rate_limited ? 10 * second : 3 * second;
    std::uniform_int_distribution<domain::micros> jitter(0, base);
    return now + base + jitter(rng);
}

}  // namespace wxrecon::workflow
