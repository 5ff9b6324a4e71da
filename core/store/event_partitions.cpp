#include "store/event_partitions.hpp"

#include <pqxx/pqxx>

namespace wxrecon::store {
namespace {

std::string clock_of(std::optional<std::int64_t> now_unix) {
    return now_unix ? "to_timestamp(" + std::to_string(*now_unix) + ")" : std::string("now()");
}

int months_ahead_of(pqxx::connection_base& c, const std::string& now) {
    return pqxx::nontransaction(c)
        .exec(
            "SELECT count(*) FROM wxrecon.event_partitions"
            " WHERE detached_at IS NULL AND starts_at >= wxrecon.beijing_month_start(" +
            now + ", 1)")[0][0]
        .as<int>();
}

std::vector<std::string> names_of(const pqxx::result& r) {
    std::vector<std::string> v;
    for (const auto& row : r) v.push_back(row[0].as<std::string>());
    return v;
}

}  // namespace

boost::asio::awaitable<partition_changes> maintain_event_partitions(db_pool& pool, int months_ahead,
                                                                    std::optional<int> keep_months,
                                                                    std::optional<std::int64_t> now_unix) {
    auto job = [months_ahead, keep_months, now_unix](pqxx::connection_base& c) {
        const auto now = clock_of(now_unix);
        partition_changes out;
        {
            // ATTACH waits for a lock inserts do not conflict with: it may wait a while.
            pqxx::work tx(c);
            tx.exec("SET LOCAL lock_timeout = '2s'");
            out.created = names_of(
                tx.exec_params("SELECT wxrecon.create_event_partitions($1, " + now + ")", months_ahead));
            tx.commit();
        }
        // A partitioned table is never analysed by autovacuum; the views' plans read its statistics.
        if (!out.created.empty()) pqxx::nontransaction(c).exec("ANALYZE wxrecon.payment_events");
        if (keep_months) {
            // DETACH takes the lock every insert conflicts with, and inserts queue behind it while it
            // waits: it gives up at once rather than stall them (the next round tries again).
            pqxx::work tx(c);
            tx.exec("SET LOCAL lock_timeout = '100ms'");
            out.detached = names_of(
                tx.exec_params("SELECT wxrecon.detach_event_partitions($1, " + now + ")", *keep_months));
            tx.commit();
        }
        out.months_ahead = months_ahead_of(c, now);
        return out;
    };
    co_return co_await pool.run<partition_changes>(std::move(job));
}

boost::asio::awaitable<int> event_partition_months_ahead(db_pool& pool,
                                                         std::optional<std::int64_t> now_unix) {
    auto job = [now_unix](pqxx::connection_base& c) { return months_ahead_of(c, clock_of(now_unix)); };
    co_return co_await pool.run<int>(std::move(job));
}

}  // namespace wxrecon::store
