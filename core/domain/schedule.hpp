// When an order is queried and when it is closed (docs/interfaces.md §9.3–§9.4,
// polling and closing rules), as pure functions of its times and the config.
#pragma once

#include <chrono>
#include <optional>
#include <vector>

#include "domain/facts.hpp"

namespace wxrecon::domain {

struct poll_schedule {
    std::vector<micros> delays;     // query i is due at created_at + delays[i]
    micros interval_after = 0;      // then every interval_after (0: no more queries)
    micros close_after_expire = 0;  // the close comes this long after expire_at
};

// When query number `attempt` (0-based) is due, or nullopt when no query remains before expire_at
// (entries at or after expire_at are skipped).
std::optional<micros> query_due(const poll_schedule& s, micros created_at, micros expire_at, int attempt);

// The next query among those numbered `attempt` and later that is due after `now` by at least half its
// spacing from the slot before, or nullopt when none is left before expire_at. Slots missed while nothing
// ran (downtime, an outage, a backlog) are skipped, not made up in a burst.
std::optional<micros> next_query_due(const poll_schedule& s, micros created_at, micros expire_at, int attempt,
                                     micros now);

// When the final query and the close are due. APIv2 orders are never closed within 5 minutes of creation.
micros close_due(const poll_schedule& s, micros created_at, micros expire_at, bool apiv2);
// The earliest an order may be closed at WeChat Pay when asked to at `at`: APIv2 refuses a close in an
// order's first 5 minutes.
micros earliest_close(micros created_at, micros at, bool apiv2);

}  // namespace wxrecon::domain
