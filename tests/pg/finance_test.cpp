// The finance views and the read-only role (docs/interfaces.md §7.7, §7.8, docs/finance.md): every
// column of daily_summary for each day and merchant of a fixture ledger (tests/data/finance_ledger.sql),
// the rows of open_discrepancies, and wxrecon_finance as a superuser and as an owner who may not
// create roles migrate the schema.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <future>
#include <pqxx/pqxx>
#include <random>
#include <thread>

#include "store/migrations.hpp"
#include "test_env.hpp"

namespace wxrecon::testing {
namespace {

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// Each row of a result as its fields joined by spaces, NULL as "-".
std::vector<std::string> rows_of(const std::string& url, const std::string& sql) {
    pqxx::connection conn(url);
    pqxx::work tx(conn);
    // The views must not depend on the session's time zone.
    tx.exec("SET LOCAL TimeZone = 'America/Los_Angeles'");
    std::vector<std::string> rows;
    for (const auto& r : tx.exec(sql)) {
        std::string line;
        for (const auto& f : r) {
            if (!line.empty()) line += ' ';
            line += f.is_null() ? std::string("-") : f.as<std::string>();
        }
        rows.push_back(std::move(line));
    }
    return rows;
}

std::vector<std::string> columns_of(const std::string& url, const std::string& view) {
    return rows_of(url,
                   "SELECT column_name, data_type FROM information_schema.columns"
                   " WHERE table_schema = 'wxrecon' AND table_name = '" +
                       view + "' ORDER BY ordinal_position");
}

std::string unique_name(const std::string& prefix) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    return prefix + std::to_string(rng() % 1000000000000ULL);
}

std::string database_name(const scratch_database& db) {
    return db.url().substr(db.url().rfind('/') + 1);
}

// The same server and database, another user (the test cluster trusts local connections).
std::string as_user(const std::string& url, const std::string& user) {
    return url + (url.find('?') == std::string::npos ? "?" : "&") + "user=" + user;
}

void as_superuser(const std::string& sql) {
    pqxx::connection conn(base_database_url());
    pqxx::nontransaction tx(conn);
    tx.exec(sql);
}

// A role of the test's own, dropped at the end. Roles belong to the whole server, so it must be
// declared before the databases that grant it anything: those are dropped first.
struct test_role {
    std::string name;
    explicit test_role(std::string n, const std::string& attributes = "") : name(std::move(n)) {
        if (!attributes.empty()) as_superuser("CREATE ROLE " + name + " " + attributes);
    }
    ~test_role() {
        try {
            as_superuser("DROP ROLE IF EXISTS " + name);
        } catch (...) {
        }
    }
};

// Replaces every `from` in sql by `to`; returns how many.
std::size_t rename_in(std::string& sql, const std::string& from, const std::string& to) {
    std::size_t replaced = 0;
    for (auto pos = sql.find(from); pos != std::string::npos; pos = sql.find(from, pos + to.size())) {
        sql.replace(pos, from.size(), to);
        ++replaced;
    }
    return replaced;
}

// The embedded files with wxrecon_finance renamed in 0006 and 0009, and wxrecon_operator (0009) renamed
// to the same name with "_op": roles no other test uses, so that this one can see them missing.
// wxrecon_finance itself exists as soon as any test has migrated as a superuser, and cannot be dropped
// while other databases on the server grant it privileges.
struct renamed_role_migrations {
    std::vector<std::string> texts;
    std::vector<store::migration> files;
    explicit renamed_role_migrations(const std::string& role) {
        const auto& all = store::embedded_migrations();
        texts.reserve(all.size());
        for (const auto& m : all) {
            std::string sql = m.sql;
            if (m.version == 6 && rename_in(sql, "wxrecon_finance", role) == 0)
                throw std::runtime_error("0006 does not name wxrecon_finance");
            if (m.version == 9) {
                rename_in(sql, "wxrecon_finance", role);
                if (rename_in(sql, "wxrecon_operator", role + "_op") == 0)
                    throw std::runtime_error("0009 does not name wxrecon_operator");
            }
            texts.push_back(std::move(sql));
        }
        for (std::size_t i = 0; i < all.size(); ++i)
            files.push_back({all[i].version, all[i].name, texts[i].c_str()});
    }
};

class FinanceViews : public ::testing::Test {
protected:
    void SetUp() override {
        pqxx::connection conn(db_.url());
        store::migrate(conn);
        db_.exec(read_text(std::string(WXRECON_TEST_DATA_DIR) + "/finance_ledger.sql"));
    }

    std::vector<std::string> summary() const {
        return rows_of(db_.url(),
                       "SELECT day, mchid, orders, paid_count, paid_amount, paid_by_notify, paid_by_query,"
                       " refunded_amount, closed_count, open_discrepancies"
                       " FROM wxrecon.daily_summary ORDER BY mchid, day");
    }

    scratch_database db_;
};

TEST_F(FinanceViews, ColumnsAreTheContract) {
    EXPECT_EQ(columns_of(db_.url(), "daily_summary"),
              (std::vector<std::string>{"day date", "mchid text", "orders bigint", "paid_count bigint",
                                        "paid_amount bigint", "paid_by_notify bigint", "paid_by_query bigint",
                                        "refunded_amount bigint", "closed_count bigint",
                                        "open_discrepancies bigint"}));
    EXPECT_EQ(columns_of(db_.url(), "open_discrepancies"),
              (std::vector<std::string>{"id bigint", "mchid text", "out_trade_no text", "kind text",
                                        "detail jsonb", "detected_at timestamp with time zone",
                                        "resolved_at timestamp with time zone", "amount_total bigint",
                                        "payer_total bigint", "state text", "status text",
                                        "acknowledged_at timestamp with time zone", "acknowledged_by text"}));
}

// The expected figures, worked out by hand from the fixture (its comments give each order's day):
//   1900000109 11-26  A-NOTIFY 100 (notify, paid 23:59:59), A-MISMATCH 250 (notify_v2; registered 300,
//                     its amount_mismatch open), A-REFUND 600 (notify), A-CLOSED (closed unpaid)
//              11-27  A-QUERY 200 (query; created 11-26, paid at 00:00:00), A-PAID-AFTER-CLOSE 500
//                     (query after the close event; paid, not closed; paid_after_close open),
//                     A-UNKNOWN 800 (notify; unknown_order open), A-OPEN (unpaid; its stuck resolved)
//              11-28  refund R-A6-1 150 at 00:30 (R-A6-2 CLOSED moved no money)
//              12-01  refund_without_payment for an order not on record, detected 12-01 04:00
//   1900000209 11-26  B-NOTIFY 1000 (notify_v2; appid_mismatch open), B-CLOSED (created 23:59:59)
//              11-27  B-QUERY 2000 (query_v2), B-SQL-PAID 50 (no payer_total, no event: neither
//                     column), B-PAYERROR (unpaid), B-REFUND-FIRST 900 (first payment event a query
//                     reporting REFUND; the refund event before it does not count),
//                     B-NOTIFY-THEN-QUERY 300 (notify, though its state_source is now query),
//                     B-QUERY-THEN-NOTIFY 400 (query); refunds R-B6 900 and R-B7 100 (R-B7 without a
//                     success_time: the day it was recorded)
TEST_F(FinanceViews, DailySummaryOfTheFixtureLedger) {
    EXPECT_EQ(summary(), (std::vector<std::string>{
                             // day      mchid      orders paid amount notify query refunded closed open
                             "2026-11-26 1900000109 4 3 950 3 0 0 1 1",
                             "2026-11-27 1900000109 4 3 1500 1 2 0 0 2",
                             "2026-11-28 1900000109 0 0 0 0 0 150 0 0",
                             "2026-12-01 1900000109 0 0 0 0 0 0 0 1",
                             "2026-11-26 1900000209 2 1 1000 1 0 0 1 1",
                             "2026-11-27 1900000209 6 5 3650 1 3 1000 0 0",
                         }));
}

TEST_F(FinanceViews, OpenDiscrepanciesWithTheirOrders) {
    EXPECT_EQ(rows_of(db_.url(),
                      "SELECT id, mchid, out_trade_no, kind, detail->>'reported_total',"
                      " to_char(detected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS'), resolved_at,"
                      " amount_total, payer_total, state FROM wxrecon.open_discrepancies ORDER BY id"),
              (std::vector<std::string>{
                  "1 1900000109 A-MISMATCH amount_mismatch 250 2026-11-26T02:00:01 - 300 250 SUCCESS",
                  "2 1900000109 A-PAID-AFTER-CLOSE paid_after_close - 2026-11-27T03:00:01 - 500 500 CLOSED",
                  "3 1900000109 A-UNKNOWN unknown_order 800 2026-11-27T01:00:05 - 800 800 SUCCESS",
                  "5 1900000109 X-NOT-ON-RECORD refund_without_payment - 2026-11-30T20:00:00 - - - -",
                  "6 1900000209 B-NOTIFY appid_mismatch - 2026-11-26T10:00:01 - 1000 1000 SUCCESS",
              }));
}

TEST_F(FinanceViews, ResolvingADiscrepancySettlesItsDay) {
    db_.exec("UPDATE wxrecon.discrepancies SET resolved_at = now() WHERE out_trade_no = 'A-MISMATCH'");
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.open_discrepancies"), 4);
    EXPECT_EQ(db_.scalar("SELECT open_discrepancies FROM wxrecon.daily_summary"
                         " WHERE mchid = '1900000109' AND day = '2026-11-26'"),
              "0");
    // The last open discrepancy of a day without orders or refunds: the day has no row any more.
    db_.exec("UPDATE wxrecon.discrepancies SET resolved_at = now() WHERE out_trade_no = 'X-NOT-ON-RECORD'");
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.daily_summary WHERE day = '2026-12-01'"), 0);
}

// Acknowledged is still unresolved: in open_discrepancies with who is on it, and counted on its day. The
// fixture's row written with resolved_at alone (as before migration 0009) is resolved by the daemon.
TEST_F(FinanceViews, AcknowledgedStaysOpenAndResolvedAtAloneIsTheDaemons) {
    {
        pqxx::connection conn(db_.url());
        pqxx::work tx(conn);
        tx.exec("SET LOCAL ROLE wxrecon_operator");
        EXPECT_TRUE(tx.exec1("SELECT wxrecon.acknowledge_discrepancy(id, 'alice', 'asking the shop')"
                             " FROM wxrecon.discrepancies WHERE out_trade_no = 'A-MISMATCH'")[0]
                        .as<bool>());
        tx.commit();
    }
    EXPECT_EQ(rows_of(db_.url(),
                      "SELECT out_trade_no, status, acknowledged_by, acknowledged_at IS NOT NULL"
                      " FROM wxrecon.open_discrepancies WHERE status <> 'open' ORDER BY id"),
              (std::vector<std::string>{"A-MISMATCH acknowledged alice t"}));
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.open_discrepancies"), 5);
    EXPECT_EQ(db_.scalar("SELECT open_discrepancies FROM wxrecon.daily_summary"
                         " WHERE mchid = '1900000109' AND day = '2026-11-26'"),
              "1");
    EXPECT_EQ(rows_of(db_.url(),
                      "SELECT status, resolved_by FROM wxrecon.discrepancies WHERE out_trade_no = 'A-OPEN'"),
              (std::vector<std::string>{"resolved wxrecond"}));
}

// Whether the test cluster already has wxrecon_finance depends on which tests ran before: make sure.
void ensure_finance_role() {
    as_superuser(
        "DO $$ BEGIN CREATE ROLE wxrecon_finance NOLOGIN;"
        " EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$");
    as_superuser(
        "DO $$ BEGIN CREATE ROLE wxrecon_operator NOLOGIN;"
        " EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$");
}

TEST(FinanceRole, SuperuserMigrationGrantsReadingOnly) {
    scratch_database db;
    pqxx::connection conn(db.url());
    const auto report = store::migrate(conn);
    EXPECT_TRUE(report.warnings.empty()) << report.warnings.front();
    EXPECT_EQ(db.scalar("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'wxrecon_finance'"), "f");
    {
        pqxx::work tx(conn);
        tx.exec("SET LOCAL ROLE wxrecon_finance");
        EXPECT_EQ(tx.exec1("SELECT count(*) FROM wxrecon.daily_summary")[0].as<int>(), 0);
        EXPECT_EQ(tx.exec1("SELECT count(*) FROM wxrecon.open_discrepancies")[0].as<int>(), 0);
        EXPECT_EQ(tx.exec1("SELECT count(*) FROM wxrecon.payment_events")[0].as<int>(), 0);
    }
    {
        pqxx::work tx(conn);
        tx.exec("SET LOCAL ROLE wxrecon_finance");
        EXPECT_THROW(
            tx.exec("INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total) VALUES ('1', 'X', 1)"),
            pqxx::insufficient_privilege);
    }
    {
        pqxx::work tx(conn);
        tx.exec("SET LOCAL ROLE wxrecon_finance");
        EXPECT_THROW(tx.exec("UPDATE wxrecon.discrepancies SET resolved_at = now()"),
                     pqxx::insufficient_privilege);
    }
}

// A DBA made the role; the owner of the database, who may not create roles, migrates: it grants.
TEST(FinanceRole, OwnerWithoutCreateroleGrantsToAnExistingRole) {
    ensure_finance_role();
    test_role owner(unique_name("wxrecon_owner_"), "LOGIN NOCREATEROLE");
    scratch_database db;
    as_superuser("ALTER DATABASE " + database_name(db) + " OWNER TO " + owner.name);

    pqxx::connection conn(as_user(db.url(), owner.name));
    const auto report = store::migrate(conn);
    EXPECT_EQ(report.version, store::latest_migration_version());
    EXPECT_TRUE(report.warnings.empty()) << report.warnings.front();
    // Tables the same user creates later are readable too (default privileges).
    {
        pqxx::work tx(conn);
        tx.exec("CREATE TABLE wxrecon.created_later (x integer)");
        tx.commit();
    }
    EXPECT_EQ(db.scalar("SELECT has_table_privilege('wxrecon_finance', 'wxrecon.daily_summary', 'SELECT')"
                        " AND has_table_privilege('wxrecon_finance', 'wxrecon.created_later', 'SELECT')"
                        " AND NOT has_table_privilege('wxrecon_finance', 'wxrecon.orders', 'INSERT')"),
              "t");
    // The owner may not make wxrecon_operator a member of wxrecon_finance, so it grants the reading
    // directly: the operator reads what finance reads, and calls the two functions.
    EXPECT_EQ(
        db.scalar("SELECT has_table_privilege('wxrecon_operator', 'wxrecon.daily_summary', 'SELECT')"
                  " AND has_table_privilege('wxrecon_operator', 'wxrecon.created_later', 'SELECT')"
                  " AND has_table_privilege('wxrecon_operator', 'wxrecon.discrepancy_history', 'SELECT')"
                  " AND NOT has_table_privilege('wxrecon_operator', 'wxrecon.discrepancies', 'UPDATE')"
                  " AND has_function_privilege('wxrecon_operator',"
                  "     'wxrecon.resolve_discrepancy(bigint, text, text)', 'EXECUTE')"
                  " AND NOT has_function_privilege('wxrecon_finance',"
                  "     'wxrecon.resolve_discrepancy(bigint, text, text)', 'EXECUTE')"),
        "t");
}

// No role, and an owner who may not create it: the schema is migrated all the same, and the report
// carries the warning (the daemon logs it) with the statements that fix it by hand.
TEST(FinanceRole, OwnerWithoutCreateroleAndNoRoleWarnsAndMigrates) {
    const test_role missing(unique_name("wxrecon_finance_t"));
    const test_role missing_operator(missing.name + "_op");
    const renamed_role_migrations files(missing.name);
    test_role owner(unique_name("wxrecon_owner_"), "LOGIN NOCREATEROLE");
    scratch_database db;
    as_superuser("ALTER DATABASE " + database_name(db) + " OWNER TO " + owner.name);

    pqxx::connection conn(as_user(db.url(), owner.name));
    const auto report = store::migrate(conn, files.files);
    EXPECT_EQ(report.version, store::latest_migration_version());
    EXPECT_EQ(store::current_schema_version(conn), store::latest_migration_version());
    // One warning per missing role: wxrecon_finance (0006) and wxrecon_operator (0009).
    ASSERT_EQ(report.warnings.size(), 2u);
    const std::string& op = report.warnings.back();
    EXPECT_EQ(op.rfind("role " + missing_operator.name + " does not exist and " + owner.name +
                           " may not create it: no one can acknowledge or resolve discrepancies",
                       0),
              0u)
        << op;
    EXPECT_NE(op.find("HINT:  As a superuser: CREATE ROLE " + missing_operator.name + " NOLOGIN;"),
              std::string::npos)
        << op;
    const std::string& w = report.warnings.front();
    EXPECT_EQ(w.rfind("role " + missing.name + " does not exist and " + owner.name + " may not create it", 0),
              0u)
        << w;
    EXPECT_NE(w.find("HINT:  As a superuser: CREATE ROLE " + missing.name + " NOLOGIN;"), std::string::npos)
        << w;
    EXPECT_EQ(w.find('\n'), std::string::npos) << w;
    EXPECT_EQ(db.count("SELECT count(*) FROM pg_roles WHERE rolname = '" + missing.name + "'"), 0);
    EXPECT_EQ(db.scalar("SELECT to_regclass('wxrecon.daily_summary') IS NOT NULL"
                        " AND to_regclass('wxrecon.open_discrepancies') IS NOT NULL"),
              "t");

    // The statements of the hint, as it says, make the views readable.
    as_superuser("CREATE ROLE " + missing.name + " NOLOGIN");
    {
        pqxx::work tx(conn);
        tx.exec("GRANT USAGE ON SCHEMA wxrecon TO " + missing.name);
        tx.exec("GRANT SELECT ON ALL TABLES IN SCHEMA wxrecon TO " + missing.name);
        tx.exec("ALTER DEFAULT PRIVILEGES IN SCHEMA wxrecon GRANT SELECT ON TABLES TO " + missing.name);
        tx.commit();
    }
    EXPECT_EQ(
        db.scalar("SELECT has_table_privilege('" + missing.name + "', 'wxrecon.daily_summary', 'SELECT')"),
        "t");
}

// The role is created by the migration of another database on the same server while this one is
// about to create it: the second CREATE ROLE waits for the first and fails; the migration grants.
TEST(FinanceRole, RoleCreatedMeanwhileByAnotherDatabaseIsNotAnError) {
    const test_role racing(unique_name("wxrecon_finance_t"));
    const test_role racing_operator(racing.name + "_op");
    const renamed_role_migrations files(racing.name);
    scratch_database db;

    pqxx::connection other(base_database_url());
    pqxx::work creating(other);
    // Not committed yet: the migration does not see it, and its own CREATE ROLE waits for this one.
    creating.exec("CREATE ROLE " + racing.name + " NOLOGIN");

    auto migrated = std::async(std::launch::async, [&] {
        pqxx::connection conn(db.url());
        return store::migrate(conn, files.files);
    });
    // Wait until the migration is blocked behind the uncommitted role (at most 20 s), then commit.
    bool blocked = false;
    for (int i = 0; i < 400 && !blocked; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        blocked = db.count(
                      "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                      " AND wait_event_type = 'Lock'") > 0;
    }
    EXPECT_TRUE(blocked);
    creating.commit();
    const auto report = migrated.get();
    EXPECT_EQ(report.version, store::latest_migration_version());
    EXPECT_TRUE(report.warnings.empty());
    EXPECT_EQ(
        db.scalar("SELECT has_table_privilege('" + racing.name + "', 'wxrecon.daily_summary', 'SELECT')"),
        "t");
}

}  // namespace
}  // namespace wxrecon::testing
