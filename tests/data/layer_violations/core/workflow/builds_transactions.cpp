// Planted for tests/cli/layers_test.sh: a workflow that speaks SQL itself.
#include <pqxx/pqxx>

#include "store/db_pool.hpp"

auto job = [](pqxx::connection_base& c) { return c.dbname(); };
