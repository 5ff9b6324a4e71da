// Schema migrations: numbered SQL files from migrations/, embedded at build
// time, applied in order under an advisory lock, each in its own transaction.
#pragma once

#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "store/db_pool.hpp"

namespace wxrecon::store {

struct migration {
    int version;
    const char* name;
    const char* sql;
};

const std::vector<migration>& embedded_migrations();
int latest_migration_version();

struct migrate_report {
    std::vector<std::string> applied;   // names of the files applied by this call
    int version = 0;                    // schema version afterwards
    std::vector<std::string> warnings;  // what the files raised as WARNING, one line each, for the log
};

// Safe when several instances start at once: a session advisory lock serialises them, and the
// ones that wait find the work done. Throws on failure (the caller exits with status 3).
migrate_report migrate(pqxx::connection_base& conn);
// The same with the files given: tests apply variants of a file (e.g. a role name made unique).
migrate_report migrate(pqxx::connection_base& conn, const std::vector<migration>& migrations);

// Connects to url and migrates. Throws database_unavailable when PostgreSQL cannot be reached, any other
// exception when a migration fails.
migrate_report migrate(const std::string& url);

// The highest applied version, or 0 when the schema does not exist yet.
int current_schema_version(pqxx::connection_base& conn);
boost::asio::awaitable<int> current_schema_version(db_pool& pool, deadline until);

}  // namespace wxrecon::store
