// payment_events by month (migration 0025) against a real PostgreSQL: an upgrade keeps every event and
// its identity, partitions are made ahead and detached (never dropped) past keep_months, and a fact of a
// detached month is still recognised when it comes again.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <pqxx/pqxx>

#include "base/metrics.hpp"
#include "store/db_pool.hpp"
#include "store/event_partitions.hpp"
#include "store/ledger.hpp"
#include "store/migrations.hpp"
#include "test_env.hpp"
#include "workflow/event_partition_keeper.hpp"

namespace wxrecon::testing {
namespace {

using namespace domain;

constexpr std::int64_t two_years = 2 * 366 * 86400;

fact paid(const std::string& out_trade_no, const std::string& notify_id) {
    payment_fact p;
    p.out_trade_no = out_trade_no;
    p.state = trade_state::success;
    p.transaction_id = "TX-" + out_trade_no;
    p.appid = test_appid;
    p.amount_total = 100;
    p.payer_total = 100;
    p.success_time = 1'764'000'000'000'000;
    fact f;
    f.mchid = test_mchid;
    f.source = fact_source::notify_v3;
    f.event_type = "TRANSACTION.SUCCESS";
    f.notify_id = notify_id;
    f.observed_at = 1'764'000'001'000'000;
    f.payload_json = "{}";
    f.raw_body = "{}";
    f.raw_headers_json = "{}";
    f.body = p;
    return f;
}

class EventPartitions : public ::testing::Test {
protected:
    template <class T>
    T run(boost::asio::awaitable<T> op) {
        boost::asio::io_context io;
        auto result = boost::asio::co_spawn(io, std::move(op), boost::asio::use_future);
        io.run();
        return result.get();
    }
    store::apply_result apply(pqxx::connection& conn, const fact& f) {
        return store::apply_batch(conn, {&f}).at(0);
    }

    scratch_database db_;
};

TEST_F(EventPartitions, AnUpgradeKeepsEveryEventAndItsIdentity) {
    pqxx::connection conn(db_.url());
    std::vector<store::migration> before;
    for (const auto& m : store::embedded_migrations())
        if (m.version < 25) before.push_back(m);
    store::migrate(conn, before);
    db_.exec(
        "INSERT INTO wxrecon.payment_events (mchid, out_trade_no, source, event_type, notify_id, "
        "transaction_id,"
        " trade_state, out_refund_no, refund_status, payload, received_at) VALUES"
        " ('M', 'O1', 'notify_v3', 'TRANSACTION.SUCCESS', 'N1', 'T1', 'SUCCESS', NULL, NULL, '{}', now() - "
        "interval '400 days'),"
        " ('M', 'O1', 'notify_v3', 'REFUND.SUCCESS', 'N2', 'T1', NULL, 'R1', 'SUCCESS', '{}', now() - "
        "interval '3 days'),"
        " ('M', 'O2', 'query_v3', 'QUERY', NULL, NULL, 'NOTPAY', NULL, NULL, '{}', now()),"
        " ('M', 'O3', 'close', 'CLOSE', NULL, NULL, NULL, NULL, NULL, '{}', now())");
    store::migrate(conn);

    EXPECT_EQ(db_.scalar("SELECT relkind FROM pg_class WHERE oid = 'wxrecon.payment_events'::regclass"), "p");
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events"), 4);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events_before_partitioning"), 4);
    // Notification ids, the paid and the unpaid fact, the refund; the close without a state identifies
    // nothing.
    EXPECT_EQ(
        db_.scalar(
            "SELECT string_agg(kind::text || ':' || subject || ':' || state, ' ' ORDER BY event_id, kind)"
            " FROM wxrecon.fact_identities"),
        "n:N1: p:T1:SUCCESS n:N2: r:R1:SUCCESS u:O2:NOTPAY");
    // The same facts again are refused whichever partition the new row would go to.
    for (const char* again :
         {"('M', 'O1', 'notify_v3', 'TRANSACTION.SUCCESS', 'N1', 'T9', 'SUCCESS', NULL, NULL, '{}', now())",
          "('M', 'O1', 'query_v3', 'QUERY', NULL, 'T1', 'SUCCESS', NULL, NULL, '{}', now() + interval '40 "
          "days')",
          "('M', 'O2', 'query_v3', 'QUERY', NULL, NULL, 'NOTPAY', NULL, NULL, '{}', now() + interval '1 "
          "year')"})
        EXPECT_THROW(
            db_.exec("INSERT INTO wxrecon.payment_events (mchid, out_trade_no, source, event_type,"
                     " notify_id, transaction_id, trade_state, out_refund_no, refund_status, payload,"
                     " received_at) VALUES " +
                     std::string(again)),
            pqxx::unique_violation)
            << again;
    // New events get new ids from the same sequence, and the finance view reads the partitioned table.
    db_.exec(
        "INSERT INTO wxrecon.payment_events (mchid, out_trade_no, source, event_type, notify_id, payload)"
        " VALUES ('M', 'O4', 'notify_v3', 'X', 'N4', '{}')");
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events e JOIN wxrecon.fact_identities i"
                        " ON i.event_id = e.id AND i.subject = 'N4' WHERE e.id > 4"),
              1);
    EXPECT_NO_THROW(db_.scalar("SELECT count(*) FROM wxrecon.daily_summary"));
    // Finance reads the events and their identities as it read the table before.
    EXPECT_EQ(db_.scalar("SELECT has_table_privilege('wxrecon_finance', 'wxrecon.payment_events', 'SELECT')"
                         " AND has_table_privilege('wxrecon_finance', 'wxrecon.fact_identities', 'SELECT')"
                         " FROM pg_roles WHERE rolname = 'wxrecon_finance'"
                         " AND has_table_privilege('wxrecon_finance',"
                         " 'wxrecon.payment_events_before_partitioning', 'SELECT')"),
              db_.scalar("SELECT 't' FROM pg_roles WHERE rolname = 'wxrecon_finance'"
                         " AND has_table_privilege('wxrecon_finance',"
                         " 'wxrecon.payment_events_before_partitioning', 'SELECT')"));
    // Nothing is left bound to the table as it was (a view or a SQL-standard function body would read
    // only the months before): order_json shows an event of a later month.
    EXPECT_EQ(db_.count("SELECT count(*) FROM pg_depend WHERE refobjid ="
                        " 'wxrecon.payment_events_before_partitioning'::regclass"
                        " AND classid IN ('pg_proc'::regclass, 'pg_rewrite'::regclass)"),
              0);
    db_.exec("INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total) VALUES ('M', 'ORDER-O5', 100)");
    db_.exec(
        "INSERT INTO wxrecon.payment_events (mchid, out_trade_no, source, event_type, notify_id, payload,"
        " received_at) VALUES ('M', 'ORDER-O5', 'notify_v3', 'X', 'N5', '{}', now() + interval '40 days')");
    EXPECT_EQ(db_.scalar("SELECT jsonb_array_length(wxrecon.order_json('M', 'ORDER-O5')->'events')"), "1");
    EXPECT_THROW(db_.exec("DELETE FROM wxrecon.payment_events_before_partitioning"), pqxx::sql_error);
    EXPECT_THROW(db_.exec("TRUNCATE wxrecon.payment_events_before_partitioning"), pqxx::sql_error);
}

TEST_F(EventPartitions, MonthsAreMadeAheadAndDetachedNotDroppedPastKeepMonths) {
    pqxx::connection conn(db_.url());
    store::migrate(conn);
    store::prepare_ledger_connection(conn);
    store::db_pool pool(db_.url(), 1, 16);
    config::database_config cfg;
    auto stats = metrics::make_standard();
    {
        boost::asio::io_context io;
        workflow::event_partition_keeper keeper(io.get_executor(), cfg, pool, stats);
        auto done = boost::asio::co_spawn(io, keeper.maintain(), boost::asio::use_future);
        io.run();
        EXPECT_TRUE(done.get());
    }
    EXPECT_NE(stats->render().find("wxrecon_event_partition_months_ahead 3"), std::string::npos);
    // Every partition refuses changes and TRUNCATE on its own, not only through the parent.
    const std::string month = db_.scalar("SELECT max(name) FROM wxrecon.event_partitions");
    EXPECT_THROW(db_.exec("TRUNCATE wxrecon." + month), pqxx::sql_error);

    // A new installation writes this month's events to this month's partition.
    db_.exec(
        "INSERT INTO wxrecon.payment_events (mchid, out_trade_no, source, event_type, notify_id, payload)"
        " VALUES ('M', 'O-NOW', 'notify_v3', 'X', 'N-NOW', '{}')");
    EXPECT_EQ(db_.scalar("SELECT tableoid = ('wxrecon.payment_events_' || to_char(now() AT TIME ZONE"
                         " 'Asia/Shanghai', '\"y\"YYYY\"m\"MM'))::regclass FROM wxrecon.payment_events"
                         " WHERE notify_id = 'N-NOW'"),
              "t");
    // Rows go in through the table, which records their identities; a partition named directly refuses
    // them, the default one included, and refuses DELETE and TRUNCATE like the others.
    const struct {
        std::string partition;
        std::string received_at;  // a row of it, inserted through the table
    } partitions[] = {
        {month, "(SELECT starts_at FROM wxrecon.event_partitions WHERE name = '" + month + "')"},
        {"payment_events_later", "now() + interval '50 years'"}};
    for (const auto& p : partitions) {
        db_.exec(
            "INSERT INTO wxrecon.payment_events (mchid, out_trade_no, source, event_type, payload, "
            "received_at)"
            " VALUES ('M', 'O-THROUGH', 'close', 'CLOSE', '{}', " +
            p.received_at + ")");
        EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon." + p.partition), 1) << p.partition;
        EXPECT_THROW(db_.exec("INSERT INTO wxrecon." + p.partition +
                              " (mchid, out_trade_no, source, event_type, payload, received_at)"
                              " VALUES ('M', 'O-BYPASS', 'close', 'CLOSE', '{}', " +
                              p.received_at + ")"),
                     pqxx::sql_error)
            << p.partition;
        EXPECT_THROW(db_.exec("DELETE FROM wxrecon." + p.partition), pqxx::sql_error) << p.partition;
        EXPECT_THROW(db_.exec("TRUNCATE wxrecon." + p.partition), pqxx::sql_error) << p.partition;
        EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon." + p.partition), 1) << p.partition;
    }
    ASSERT_EQ(apply(conn, paid("PART-1", "N-PART-1")).outcome, outcome::applied);
    ASSERT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events WHERE out_trade_no = 'PART-1'"), 1);

    // Two years on, keeping 13 months: the months before are detached, oldest first, and kept as tables.
    const std::int64_t later = std::stoll(db_.scalar("SELECT extract(epoch FROM now())::bigint")) + two_years;
    const auto changes = run(store::maintain_event_partitions(pool, 3, 13, later));
    EXPECT_GE(changes.created.size(), 24u);
    ASSERT_FALSE(changes.detached.empty());
    EXPECT_EQ(changes.detached.front(), "payment_events_before_partitioning");
    EXPECT_EQ(changes.months_ahead, 3);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events WHERE out_trade_no = 'PART-1'"), 0);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events_before_partitioning"), 1);
    EXPECT_THROW(db_.exec("DELETE FROM wxrecon.payment_events_before_partitioning"), pqxx::sql_error);
    // A detached month refuses changes and new rows alike (they would have no identity).
    const std::string detached_month = changes.detached.at(1);
    EXPECT_THROW(db_.exec("DELETE FROM wxrecon." + detached_month), pqxx::sql_error);
    EXPECT_THROW(db_.exec("TRUNCATE wxrecon." + detached_month), pqxx::sql_error);
    EXPECT_THROW(db_.exec("INSERT INTO wxrecon." + detached_month +
                          " (mchid, out_trade_no, source, event_type, notify_id, payload, received_at)"
                          " SELECT 'M', 'PART-1', 'notify_v3', 'X', 'N-PART-1', '{}', starts_at"
                          " FROM wxrecon.event_partitions WHERE name = '" +
                          detached_month + "'"),
                 pqxx::sql_error);
    for (const auto& name : changes.detached)
        EXPECT_EQ(
            db_.scalar("SELECT relispartition FROM pg_class WHERE oid = 'wxrecon." + name + "'::regclass"),
            "f")
            << name;
    // 13 whole months before the current one stay attached.
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.event_partitions WHERE detached_at IS NULL"
                        " AND ends_at <= wxrecon.beijing_month_start(to_timestamp(" +
                        std::to_string(later) + "))"),
              13);

    // The notification sent again, and its payment reported by a query: both are still duplicates.
    const auto again = apply(conn, paid("PART-1", "N-PART-1"));
    EXPECT_TRUE(again.duplicate);
    fact queried = paid("PART-1", "");
    queried.notify_id.reset();
    queried.source = fact_source::query_v3;
    EXPECT_TRUE(apply(conn, queried).duplicate);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events WHERE out_trade_no = 'PART-1'"), 0);

    // Running again changes nothing.
    const auto second = run(store::maintain_event_partitions(pool, 3, 13, later));
    EXPECT_TRUE(second.created.empty());
    EXPECT_TRUE(second.detached.empty());
    pool.stop();
}

// Maintenance that keeps failing must show: the months-ahead figure is read on its own, so it falls as
// the months pass (here: eight months on) while no partition can be made.
TEST_F(EventPartitions, WhileMaintenanceFailsTheMonthsAheadStillTellTheTruth) {
    pqxx::connection conn(db_.url());
    store::migrate(conn);
    store::db_pool pool(db_.url(), 1, 16);
    const std::int64_t later =
        std::stoll(db_.scalar("SELECT extract(epoch FROM now())::bigint")) + 240 * 86400;
    pqxx::connection other(db_.url());
    pqxx::nontransaction(other).exec("SELECT pg_advisory_lock(hashtext('wxrecon.event_partitions'))");
    EXPECT_THROW(run(store::maintain_event_partitions(pool, 3, std::nullopt, later)), pqxx::sql_error);
    EXPECT_EQ(run(store::event_partition_months_ahead(pool, later)), 0);
    pqxx::nontransaction(other).exec("SELECT pg_advisory_unlock(hashtext('wxrecon.event_partitions'))");
    EXPECT_EQ(run(store::maintain_event_partitions(pool, 3, std::nullopt, later)).months_ahead, 3);
    pool.stop();
}

TEST_F(EventPartitions, AMonthAlreadyInTheDefaultPartitionStaysThereAndLaterMonthsAreMade) {
    pqxx::connection conn(db_.url());
    store::migrate(conn);
    store::db_pool pool(db_.url(), 1, 16);
    // A row from a clock eight months ahead, past every partition: kept in the default one.
    db_.exec(
        "INSERT INTO wxrecon.payment_events (mchid, out_trade_no, source, event_type, notify_id, payload,"
        " received_at) VALUES ('M', 'O-AHEAD', 'notify_v3', 'X', 'N-AHEAD', '{}',"
        " wxrecon.beijing_month_start(now(), 8) + interval '1 day')");
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events_later"), 1);
    const std::int64_t later =
        std::stoll(db_.scalar("SELECT extract(epoch FROM wxrecon.beijing_month_start(now(), 8))::bigint"));
    const auto changes = run(store::maintain_event_partitions(pool, 3, std::nullopt, later));
    EXPECT_EQ(changes.created.size(), 7u);  // months 4..11 but the eighth
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events_later"), 1);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events WHERE out_trade_no = 'O-AHEAD'"), 1);
    pool.stop();
}

}  // namespace
}  // namespace wxrecon::testing
