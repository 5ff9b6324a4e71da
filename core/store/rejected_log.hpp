// The bounded record of rejected notifications. Writes go through their own
// single connection and a token bucket, so a flood of forgeries is sampled
// and counted instead of competing with genuine facts for the database.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "base/keyed_rate_limit.hpp"
#include "base/metrics.hpp"

namespace wxrecon::store {

class db_pool;

struct rejected_entry {
    std::string path;
    std::string mchid;
    std::string reason;
    std::string remote_addr;
    std::string headers_json;
    std::string body;  // cut to 16 KiB of valid UTF-8 before writing
};

class rejected_log {
public:
    // pool should be dedicated to this log (one connection is plenty).
    rejected_log(db_pool& pool, std::uint64_t keep, double rows_per_second, double burst,
                 std::shared_ptr<metrics> m);

    // Never blocks and never fails the caller: queued for writing, or counted as sampled. The entry is
    // made by entry() only once the row budget has a token for it (a flood copies nothing).
    void record(std::string_view reason, const std::function<rejected_entry()>& entry);

private:
    bool take_token();
    void write(rejected_entry e);

    db_pool& pool_;
    std::uint64_t keep_;
    std::shared_ptr<metrics> metrics_;
    std::mutex mutex_;
    token_bucket rows_;
};

}  // namespace wxrecon::store
