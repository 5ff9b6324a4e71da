// The monthly partitions of payment_events (migration 0025): made ahead of time, and detached (never
// dropped) once older than [database] keep_months. Awaited; the SQL runs on a db_pool worker.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "store/db_pool.hpp"

namespace wxrecon::store {

struct partition_changes {
    std::vector<std::string> created;
    std::vector<std::string> detached;
    int months_ahead = 0;  // whole Beijing months after the current one that have a partition
};

// Makes the partitions through the month `months_ahead` after the current one and, with keep_months,
// detaches those whose whole range ended before the month keep_months before the current one. `now_unix`
// stands for the database's clock (tests). Instances take turns (an advisory lock). A detach waits at
// most 100 ms for its table lock (inserts would queue behind it), an attach at most 2 s; the caller
// retries later.
boost::asio::awaitable<partition_changes> maintain_event_partitions(
    db_pool& pool, int months_ahead, std::optional<int> keep_months,
    std::optional<std::int64_t> now_unix = {});

// Whole Beijing months after the current one that have a partition, as maintain reports it: read on its
// own after a failed round, so that the gauge shows partitions running out while maintenance fails.
boost::asio::awaitable<int> event_partition_months_ahead(db_pool& pool,
                                                         std::optional<std::int64_t> now_unix = {});

}  // namespace wxrecon::store
