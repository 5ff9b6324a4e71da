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

std::optional<micros> next_query_due(const poll_schedule& s, micros created_at, micros expire_at, int attempt,
                                     micros now) {
    // A slot closer to now than half its spacing from the slot before is skipped too: a late query (the
    // one just made) stands in for it, so queries never come back to back.
    const auto n = static_cast<int>(s.delays.size());
    for (; attempt < n; ++attempt) {
        const auto due = query_due(s, created_at, expire_at, attempt);
        if (!due) return due;
        const micros before =
            attempt == 0 ? created_at : created_at + s.delays[static_cast<std::size_t>(attempt - 1)];
        if (*due - now > (*due - before) / 2) return due;
    }
    if (s.interval_after <= 0) return std::nullopt;
    // Interval slots are evenly spaced: jump straight to the first one far enough after now.
    const micros not_before = now + s.interval_after / 2;
    const micros first_interval = created_at + (n > 0 ? s.delays.back() : 0) + s.interval_after;
    int slot = std::max(attempt, n);
    if (not_before >= first_interval)
        slot = std::max(slot, n + static_cast<int>((not_before - first_interval) / s.interval_after) + 1);
    return query_due(s, created_at, expire_at, slot);
}

micros earliest_close(micros created_at, micros at, bool apiv2) {
    constexpr micros five_minutes = 5LL * 60 * 1'000'000;
    return apiv2 ? std::max(at, created_at + five_minutes) : at;
}

micros close_due(const poll_schedule& s, micros created_at, micros expire_at, bool apiv2) {
    return earliest_close(created_at, expire_at + s.close_after_expire, apiv2);
}

}  // namespace wxrecon::domain
