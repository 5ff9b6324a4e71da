#include "domain/schedule.hpp"

#include <algorithm>

namespace wxrecon::domain {

std::optional<micros> query_due(const poll_schedule& s, micros created_at, micros expire_at, int attempt) {
    if (attempt < 0) attempt = 0;
    micros due = 0;
    const auto n = static_cast<int>(s.delays.size());
    if (attempt < n) {
        due = created_at + s.delays[static_cast<std::size_t>(attempt)];
    } else {
        if (s.interval_after <= 0) return std::nullopt;
        const micros last = n > 0 ? s.delays.back() : 0;
        due = created_at + last + static_cast<micros>(attempt - n + 1) * s.interval_after;
    }
    if (due >= expire_at) return std::nullopt;
    return due;
}

micros close_due(const poll_schedule& s, micros created_at, micros expire_at, bool apiv2) {
    const micros close = expire_at + s.close_after_expire;
    constexpr micros five_minutes = 5LL * 60 * 1'000'000;
    return apiv2 ? std::max(close, created_at + five_minutes) : close;
}

}  // namespace wxrecon::domain
