#include "store/event_partitions.hpp"

#include <pqxx/pqxx>

namespace wxrecon::store {

boost::asio::awaitable<partition_changes> maintain_event_partitions(db_pool& pool, int months_ahead,
                                                                    std::optional<int> keep_months,
                                                                    std::optional<std::int64_t> now_unix) {
    auto job = [months_ahead, keep_months, now_unix](pqxx::connection_base& c) {
        const auto now = now_unix ? "to_timestamp(" + std::to_string(*now_unix) + ")" : std::string("now()");
        partition_changes out;
        const auto names = [](const pqxx::result& r) {
            std::vector<std::string> v;
            for (const auto& row : r) v.push_back(row[0].as<std::string>());
            return v;
        };
        {
            pqxx::work tx(c);
            tx.exec("SET LOCAL lock_timeout = '2s'");
            out.created = names(
                tx.exec_params("SELECT wxrecon.create_event_partitions($1, " + now + ")", months_ahead));
            tx.commit();
        }
        if (keep_months) {
            pqxx::work tx(c);
            tx.exec("SET LOCAL lock_timeout = '2s'");
            out.detached = names(
                tx.exec_params("SELECT wxrecon.detach_event_partitions($1, " + now + ")", *keep_months));
            tx.commit();
        }
        out.months_ahead =
            pqxx::nontransaction(c)
                .exec(
                    "SELECT count(*) FROM wxrecon.event_partitions"
                    " WHERE detached_at IS NULL AND starts_at >= wxrecon.beijing_month_start(" +
                    now + ", 1)")[0][0]
                .as<int>();
        return out;
    };
    co_return co_await pool.run<partition_changes>(std::move(job));
}

}  // namespace wxrecon::store
