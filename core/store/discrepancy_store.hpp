// Finance's work on discrepancies (docs/interfaces.md §7.1, §7.5, docs/finance.md "Working
// discrepancies"): list them with filters, acknowledge and resolve them through the SQL functions
// wxrecon.acknowledge_discrepancy and wxrecon.resolve_discrepancy, so that the command line records
// exactly what an operator running the SQL would. Synchronous: a command opens one connection.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace wxrecon::store {

// Which rows a list shows. unresolved (open and acknowledged) is what still needs someone.
enum class status_filter { unresolved, open, acknowledged, resolved, all };
std::optional<status_filter> parse_status_filter(std::string_view text);

inline constexpr std::size_t default_list_limit = 1000;
inline constexpr std::size_t max_list_limit = 100000;

struct discrepancy_filter {
    status_filter status = status_filter::unresolved;
    std::string kind;   // empty: any
    std::string mchid;  // empty: any
    std::size_t limit = default_list_limit;
};

// One row as finance reads it; times as wxrecon.rfc3339 writes them (Beijing, +08:00), absent ones empty.
struct discrepancy_row {
    std::int64_t id = 0;
    std::string mchid, out_trade_no, kind, status;
    std::string detail_json;  // the jsonb detail as text
    std::string detected_at;
    std::string bill_date;  // the bill kinds' Beijing day, YYYY-MM-DD
    std::string acknowledged_at, acknowledged_by;
    std::string resolved_at, resolved_by, resolution;
};

struct discrepancy_list {
    std::vector<discrepancy_row> rows;  // oldest first (by id)
    bool truncated = false;             // more rows matched than the limit
};

enum class transition_outcome {
    done,          // the status moved on
    not_found,     // no discrepancy with this id
    wrong_status,  // it is not in a status this step applies to: current_status says which
};

struct transition_result {
    transition_outcome outcome = transition_outcome::done;
    std::string current_status;  // after the call
};

class discrepancy_store {
public:
    // Connects; throws database_unavailable when PostgreSQL cannot be reached.
    explicit discrepancy_store(const std::string& database_url);
    ~discrepancy_store();
    discrepancy_store(const discrepancy_store&) = delete;
    discrepancy_store& operator=(const discrepancy_store&) = delete;

    discrepancy_list list(const discrepancy_filter& filter);

    // open -> acknowledged. An empty note is no note. Input the database refuses (who blank or too long,
    // note too long) is an invalid_argument error with the database's words.
    result<transition_result> acknowledge(std::int64_t id, const std::string& who, const std::string& note);
    // open or acknowledged -> resolved; the note (why) is required.
    result<transition_result> resolve(std::int64_t id, const std::string& who, const std::string& note);

private:
    result<transition_result> transition(const char* sql, std::int64_t id, const std::string& who,
                                         const std::string& note);
    struct impl;  // the connection: libpqxx stays out of this header
    std::unique_ptr<impl> impl_;
};

}  // namespace wxrecon::store
