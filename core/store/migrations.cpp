#include "store/migrations.hpp"

#include <optional>
#include <pqxx/pqxx>
#include <stdexcept>

namespace wxrecon::store {
namespace {

// Arbitrary but fixed: identifies wxrecon's migration lock among other advisory locks.
constexpr long long migration_lock_key = 0x7778726563306e31LL;

// Keeps what the server reports while it is registered on the connection. A migration that cannot
// do all it would (e.g. create a role) says so with RAISE WARNING and still succeeds; the daemon logs
// the warning instead of it going nowhere.
class warning_collector final : public pqxx::errorhandler {
public:
    warning_collector(pqxx::connection_base& conn, std::vector<std::string>& into)
        : pqxx::errorhandler(conn), into_(into) {}

    bool operator()(const char msg[]) noexcept override {
        try {
            // "WARNING:  text\nHINT:  text\n" becomes one log line.
            std::string line(msg);
            while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
            for (auto& c : line)
                if (c == '\n') c = ' ';
            if (line.starts_with("WARNING:")) line.erase(0, line.find_first_not_of(' ', 8));
            into_.push_back(std::move(line));
        } catch (...) {
            // Out of memory: the warning is lost, the migration is not.
        }
        return true;
    }

private:
    std::vector<std::string>& into_;
};

}  // namespace

int latest_migration_version() {
    const auto& all = embedded_migrations();
    return all.empty() ? 0 : all.back().version;
}

int current_schema_version(pqxx::connection_base& conn) {
    pqxx::nontransaction tx(conn);
    const auto exists = tx.exec1("SELECT to_regclass('wxrecon.schema_migrations') IS NOT NULL");
    if (!exists[0].as<bool>()) return 0;
    return tx.exec1("SELECT coalesce(max(version), 0) FROM wxrecon.schema_migrations")[0].as<int>();
}

namespace {

// Versions are compared by number alone, so a database migrated by a build whose migration N was another
// file would silently skip this build's N. Refused instead, naming both files.
void check_recorded_names(pqxx::connection_base& conn, const std::vector<migration>& migrations) {
    pqxx::nontransaction tx(conn);
    for (const auto& row : tx.exec("SELECT version, name FROM wxrecon.schema_migrations ORDER BY version")) {
        const int version = row[0].as<int>();
        const std::string recorded = row[1].as<std::string>();
        for (const auto& m : migrations)
            if (m.version == version && m.name != recorded)
                throw std::runtime_error("migration " + std::to_string(version) + " is recorded as " +
                                         recorded + ", but this build's migration " +
                                         std::to_string(version) + " is " + m.name +
                                         ": the database was migrated by a different build");
    }
}

}  // namespace

migrate_report migrate(pqxx::connection_base& conn) {
    return migrate(conn, embedded_migrations());
}

migrate_report migrate(pqxx::connection_base& conn, const std::vector<migration>& migrations) {
    {
        pqxx::nontransaction tx(conn);
        tx.exec("SELECT pg_advisory_lock(" + std::to_string(migration_lock_key) + ")");
    }
    migrate_report report;
    try {
        {
            pqxx::work tx(conn);
            tx.exec("CREATE SCHEMA IF NOT EXISTS wxrecon");
            tx.exec(
                "CREATE TABLE IF NOT EXISTS wxrecon.schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())");
            tx.commit();
        }
        int version = current_schema_version(conn);
        check_recorded_names(conn, migrations);
        warning_collector warnings(conn, report.warnings);
        for (const auto& m : migrations) {
            if (m.version <= version) continue;
            pqxx::work tx(conn);
            // Warnings and errors only: not the notices of IF NOT EXISTS and the like.
            tx.exec("SET LOCAL client_min_messages = warning");
            tx.exec(m.sql);
            tx.exec("INSERT INTO wxrecon.schema_migrations (version, name) VALUES (" +
                    std::to_string(m.version) + ", " + tx.quote(m.name) + ")");
            tx.commit();
            report.applied.emplace_back(m.name);
            version = m.version;
        }
        report.version = version;
    } catch (...) {
        try {
            pqxx::nontransaction tx(conn);
            tx.exec("SELECT pg_advisory_unlock(" + std::to_string(migration_lock_key) + ")");
        } catch (...) {
            // The session ends with the connection, and the lock with it.
        }
        throw;
    }
    pqxx::nontransaction tx(conn);
    tx.exec("SELECT pg_advisory_unlock(" + std::to_string(migration_lock_key) + ")");
    return report;
}

migrate_report migrate(const std::string& url) {
    std::optional<pqxx::connection> conn;
    try {
        conn.emplace(url);
    } catch (const pqxx::broken_connection& e) {
        throw database_unavailable(e.what());
    }
    return migrate(*conn);
}

boost::asio::awaitable<int> current_schema_version(db_pool& pool, deadline until) {
    auto job = [](pqxx::connection_base& c) { return current_schema_version(c); };
    co_return co_await pool.run<int>(std::move(job), until);
}

}  // namespace wxrecon::store
