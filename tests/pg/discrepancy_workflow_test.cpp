// The discrepancy lifecycle (migration 0009, docs/interfaces.md §7.5, docs/finance.md "Working
// discrepancies"): open -> acknowledged -> resolved through the SQL functions as wxrecon_operator, what
// that role and wxrecon_finance may not do, the append-only history, the daemon's own resolutions
// recorded as 'wxrecond', the backfill of rows resolved before 0009, and store::discrepancy_store.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "store/discrepancy_store.hpp"
#include "store/ledger.hpp"
#include "store/migrations.hpp"
#include "test_env.hpp"

namespace wxrecon::testing {
namespace {

// Each row of a result as its fields joined by spaces, NULL as "-", rows joined by " | ".
std::string rows_of(pqxx::transaction_base& tx, const std::string& sql) {
    std::string out;
    for (const auto& r : tx.exec(sql)) {
        if (!out.empty()) out += " | ";
        std::string line;
        for (const auto& f : r) {
            if (!line.empty()) line += ' ';
            line += f.is_null() ? std::string("-") : f.as<std::string>();
        }
        out += line;
    }
    return out;
}

class DiscrepancyWorkflow : public ::testing::Test {
protected:
    void SetUp() override {
        conn_ = std::make_unique<pqxx::connection>(db_.url());
        store::migrate(*conn_);
    }

    long open(const std::string& out_trade_no, const std::string& kind = "amount_mismatch") {
        return std::stol(db_.scalar(
            "INSERT INTO wxrecon.discrepancies (mchid, out_trade_no, kind) VALUES ('1900000109', '" +
            out_trade_no + "', '" + kind + "') RETURNING id"));
    }

    // Runs sql as role in its own transaction (committed) and returns its rows as text.
    std::string as_role(const std::string& role, const std::string& sql) {
        pqxx::work tx(*conn_);
        tx.exec("SET LOCAL ROLE " + role);
        auto out = rows_of(tx, sql);
        tx.commit();
        return out;
    }

    // The SQLSTATE sql fails with as role, or as the test's own user when role is empty ("" when it
    // succeeds). libpqxx 6.4 leaves sqlstate() empty on some of its exception classes: those are named.
    std::string refusal_as(const std::string& role, const std::string& sql) {
        try {
            pqxx::work tx(*conn_);
            if (!role.empty()) tx.exec("SET LOCAL ROLE " + role);
            tx.exec(sql);
        } catch (const pqxx::insufficient_privilege&) {
            return "42501";
        } catch (const pqxx::check_violation&) {
            return "23514";
        } catch (const pqxx::sql_error& e) {
            return e.sqlstate().empty() ? std::string("error: ") + e.what() : e.sqlstate();
        }
        return "";
    }

    std::string history(long id) {
        pqxx::work tx(*conn_);
        return rows_of(tx,
                       "SELECT by, coalesce(from_status, '-'), to_status, coalesce(note, '-')"
                       " FROM wxrecon.discrepancy_history WHERE discrepancy_id = " +
                           std::to_string(id) + " ORDER BY id");
    }

    scratch_database db_;
    std::unique_ptr<pqxx::connection> conn_;
};

TEST_F(DiscrepancyWorkflow, OperatorAcknowledgesThenResolvesThroughTheFunctions) {
    const long id = open("A1");
    const std::string sid = std::to_string(id);
    EXPECT_EQ(db_.scalar("SELECT status FROM wxrecon.discrepancies WHERE id = " + sid), "open");

    EXPECT_EQ(
        as_role("wxrecon_operator", "SELECT wxrecon.acknowledge_discrepancy(" + sid + ", 'alice', 'on it')"),
        "t");
    EXPECT_EQ(db_.scalar("SELECT status || ' ' || acknowledged_by || ' ' || (acknowledged_at IS NOT NULL)"
                         " || ' ' || (resolved_at IS NULL) FROM wxrecon.discrepancies WHERE id = " +
                         sid),
              "acknowledged alice true true");
    // Acknowledged is still open for finance: in the view, with who is on it.
    EXPECT_EQ(as_role("wxrecon_operator",
                      "SELECT status, acknowledged_by FROM wxrecon.open_discrepancies WHERE id = " + sid),
              "acknowledged alice");
    // Not open any more: a second acknowledgement changes nothing.
    EXPECT_EQ(as_role("wxrecon_operator", "SELECT wxrecon.acknowledge_discrepancy(" + sid + ", 'bob', NULL)"),
              "f");

    EXPECT_EQ(as_role("wxrecon_operator", "SELECT wxrecon.resolve_discrepancy(id => " + sid +
                                              ", who => 'bob', note => 'refunded')"),
              "t");
    EXPECT_EQ(db_.scalar("SELECT status || ' ' || resolved_by || ' ' || resolution || ' ' ||"
                         " (resolved_at IS NOT NULL) || ' ' || acknowledged_by"
                         " FROM wxrecon.discrepancies WHERE id = " +
                         sid),
              "resolved bob refunded true alice");
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.open_discrepancies"), 0);
    EXPECT_EQ(as_role("wxrecon_operator", "SELECT wxrecon.resolve_discrepancy(" + sid + ", 'bob', 'again')"),
              "f");
    EXPECT_EQ(as_role("wxrecon_operator", "SELECT wxrecon.acknowledge_discrepancy(999999, 'bob', NULL)"),
              "f");
    EXPECT_EQ(as_role("wxrecon_operator", "SELECT wxrecon.resolve_discrepancy(999999, 'bob', 'x')"), "f");

    EXPECT_EQ(history(id),
              "wxrecond - open - | alice open acknowledged on it | bob acknowledged resolved refunded");
}

TEST_F(DiscrepancyWorkflow, OpenIsResolvedDirectlyAndTheSlotReopens) {
    const long id = open("A2", "stuck");
    EXPECT_EQ(as_role("wxrecon_operator", "SELECT wxrecon.resolve_discrepancy(" + std::to_string(id) +
                                              ", ' carol ', ' paid by hand ')"),
              "t");
    EXPECT_EQ(history(id), "wxrecond - open - | carol open resolved paid by hand");
    // The difference comes back: the daemon opens a new row beside the resolved one.
    EXPECT_NE(open("A2", "stuck"), id);
}

TEST_F(DiscrepancyWorkflow, InputIsChecked) {
    const std::string sid = std::to_string(open("A3"));
    const auto invalid = "22023";  // invalid_parameter_value
    EXPECT_EQ(refusal_as("wxrecon_operator", "SELECT wxrecon.resolve_discrepancy(" + sid + ", 'bob', NULL)"),
              invalid);
    EXPECT_EQ(refusal_as("wxrecon_operator", "SELECT wxrecon.resolve_discrepancy(" + sid + ", 'bob', '  ')"),
              invalid);
    EXPECT_EQ(refusal_as("wxrecon_operator", "SELECT wxrecon.acknowledge_discrepancy(" + sid + ", '', NULL)"),
              invalid);
    EXPECT_EQ(
        refusal_as("wxrecon_operator", "SELECT wxrecon.acknowledge_discrepancy(" + sid + ", NULL, NULL)"),
        invalid);
    EXPECT_EQ(refusal_as("wxrecon_operator",
                         "SELECT wxrecon.acknowledge_discrepancy(" + sid + ", repeat('x', 101), NULL)"),
              invalid);
    EXPECT_EQ(
        refusal_as("wxrecon_operator", "SELECT wxrecon.acknowledge_discrepancy(" + sid + ", E'a\\nb', NULL)"),
        invalid);
    EXPECT_EQ(refusal_as("wxrecon_operator",
                         "SELECT wxrecon.resolve_discrepancy(" + sid + ", 'bob', repeat('x', 4001))"),
              invalid);
    // The daemon's own name is not a person's: a resolution signed 'wxrecond' would hide among its own.
    EXPECT_EQ(
        refusal_as("wxrecon_operator", "SELECT wxrecon.resolve_discrepancy(" + sid + ", ' WxReconD ', 'x')"),
        invalid);
    EXPECT_EQ(db_.scalar("SELECT status FROM wxrecon.discrepancies WHERE id = " + sid), "open");
}

TEST_F(DiscrepancyWorkflow, FinanceMayOnlyReadAndOperatorWritesNothingElse) {
    const std::string sid = std::to_string(open("A4"));
    const auto denied = "42501";  // insufficient_privilege
    EXPECT_EQ(
        refusal_as("wxrecon_finance", "SELECT wxrecon.acknowledge_discrepancy(" + sid + ", 'eve', NULL)"),
        denied);
    EXPECT_EQ(refusal_as("wxrecon_finance", "SELECT wxrecon.resolve_discrepancy(" + sid + ", 'eve', 'x')"),
              denied);
    EXPECT_EQ(as_role("wxrecon_finance", "SELECT count(*) FROM wxrecon.discrepancy_history"), "1");
    EXPECT_EQ(as_role("wxrecon_operator", "SELECT count(*) FROM wxrecon.daily_summary"), "1");

    for (const std::string& sql : std::vector<std::string>{
             "UPDATE wxrecon.discrepancies SET status = 'resolved', resolved_at = now()",
             "UPDATE wxrecon.discrepancies SET resolved_at = now()",
             "DELETE FROM wxrecon.discrepancies",
             "INSERT INTO wxrecon.discrepancies (mchid, out_trade_no, kind) VALUES ('1', 'X', 'stuck')",
             "INSERT INTO wxrecon.discrepancy_history (discrepancy_id, by, to_status) VALUES (" + sid +
                 ", 'eve', 'resolved')",
             "UPDATE wxrecon.discrepancy_history SET note = 'x'",
             "DELETE FROM wxrecon.discrepancy_history",
             "TRUNCATE wxrecon.discrepancy_history",
             "UPDATE wxrecon.orders SET state = 'SUCCESS'",
             "SELECT wxrecon.check_discrepancy_actor('eve')",
         })
        EXPECT_EQ(refusal_as("wxrecon_operator", sql), denied) << sql;
    // Everything the role may write: the two functions, nothing else.
    EXPECT_EQ(db_.scalar("SELECT string_agg(p.proname, ',' ORDER BY p.proname) FROM pg_proc p"
                         " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'wxrecon'"
                         " AND has_function_privilege('wxrecon_operator', p.oid, 'EXECUTE')"
                         " AND NOT has_function_privilege('public', p.oid, 'EXECUTE')"),
              "acknowledge_discrepancy,resolve_discrepancy");
    EXPECT_EQ(db_.count("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " WHERE n.nspname = 'wxrecon' AND c.relkind IN ('r', 'v', 'p')"
                        " AND (has_table_privilege('wxrecon_operator', c.oid, 'INSERT')"
                        "   OR has_table_privilege('wxrecon_operator', c.oid, 'UPDATE')"
                        "   OR has_table_privilege('wxrecon_operator', c.oid, 'DELETE')"
                        "   OR has_table_privilege('wxrecon_operator', c.oid, 'TRUNCATE'))"),
              0);
    EXPECT_EQ(db_.scalar("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'wxrecon_operator'"), "f");
    EXPECT_EQ(db_.scalar("SELECT pg_has_role('wxrecon_operator', 'wxrecon_finance', 'MEMBER')"), "t");
}

TEST_F(DiscrepancyWorkflow, HistoryIsAppendOnlyForTheOwnerAndSuperuserToo) {
    open("A5");
    // The test connects as a superuser, who holds every privilege: the trigger refuses all the same.
    for (const std::string sql :
         {"UPDATE wxrecon.discrepancy_history SET note = 'x'", "DELETE FROM wxrecon.discrepancy_history",
          "TRUNCATE wxrecon.discrepancy_history"}) {
        pqxx::work tx(*conn_);
        EXPECT_THROW(tx.exec(sql), pqxx::insufficient_privilege) << sql;
    }
    // Not granted to the owner (or anyone): the owner keeps INSERT and SELECT.
    EXPECT_EQ(db_.count("SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a"
                        " WHERE c.oid = 'wxrecon.discrepancy_history'::regclass"
                        " AND a.privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE')"),
              0);
    EXPECT_EQ(db_.count("SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a"
                        " WHERE c.oid = 'wxrecon.discrepancy_history'::regclass AND a.grantee = c.relowner"
                        " AND a.privilege_type IN ('INSERT', 'SELECT')"),
              2);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.discrepancy_history"), 1);
}

TEST_F(DiscrepancyWorkflow, StatusAgreesWithTheTimestampsAndNeverGoesBack) {
    const std::string sid = std::to_string(open("A6"));
    const auto check = "23514";  // check_violation: the CHECK, or the trigger refusing to go back
    const std::string where = " WHERE id = " + sid;
    EXPECT_EQ(refusal_as("", "UPDATE wxrecon.discrepancies SET status = 'nonsense'" + where), check);
    EXPECT_EQ(refusal_as("", "UPDATE wxrecon.discrepancies SET acknowledged_by = 'x'" + where), check);
    EXPECT_EQ(
        refusal_as("", "UPDATE wxrecon.discrepancies SET status = 'resolved', resolved_by = 'x'" + where),
        check)
        << "a resolution says why";
    // Resolved with who and why: resolved_at follows.
    db_.exec("UPDATE wxrecon.discrepancies SET status = 'resolved', resolved_by = 'x', resolution = 'y'" +
             where);
    EXPECT_EQ(db_.scalar("SELECT resolved_at IS NOT NULL FROM wxrecon.discrepancies" + where), "t");
    EXPECT_EQ(refusal_as("",
                         "UPDATE wxrecon.discrepancies SET status = 'open', resolved_at = NULL,"
                         " resolved_by = NULL, resolution = NULL" +
                             where),
              check);
    EXPECT_EQ(refusal_as("", "UPDATE wxrecon.discrepancies SET resolved_at = NULL" + where), check);
    // Acknowledged does not go back to open either.
    const std::string acked = std::to_string(open("A6b"));
    as_role("wxrecon_operator", "SELECT wxrecon.acknowledge_discrepancy(" + acked + ", 'dan', NULL)");
    EXPECT_EQ(refusal_as("",
                         "UPDATE wxrecon.discrepancies SET status = 'open', acknowledged_at = NULL,"
                         " acknowledged_by = NULL WHERE id = " +
                             acked),
              check);
}

// Statements that know only resolved_at (0008's reconcile_bill_day, SQL by hand as the owner) resolve as
// the daemon, with a reason by kind.
TEST_F(DiscrepancyWorkflow, ResolvedAtAloneIsADaemonResolution) {
    const long bill = open("2026-11-30", "fee_mismatch");
    const long acked = open("A7", "stuck");
    as_role("wxrecon_operator",
            "SELECT wxrecon.acknowledge_discrepancy(" + std::to_string(acked) + ", 'dan', NULL)");
    db_.exec("UPDATE wxrecon.discrepancies SET resolved_at = now()");
    EXPECT_EQ(
        db_.scalar("SELECT string_agg(status || ' ' || resolved_by || ' ' || resolution, ' | ' ORDER BY id)"
                   " FROM wxrecon.discrepancies"),
        "resolved wxrecond no longer found when the day was reconciled against its bills | "
        "resolved wxrecond the order is no longer stuck");
    EXPECT_EQ(history(bill),
              "wxrecond - open - | wxrecond open resolved no longer found when the day was "
              "reconciled against its bills");
    EXPECT_EQ(history(acked),
              "wxrecond - open - | dan open acknowledged - | wxrecond acknowledged resolved "
              "the order is no longer stuck");
}

// The fact path (store::apply_batch) resolves refund_abnormal when the refund succeeds: by 'wxrecond',
// saying why, in the history.
TEST_F(DiscrepancyWorkflow, FactPathResolutionsAreByTheDaemon) {
    store::prepare_ledger_connection(*conn_);
    const long id = open("F1", "refund_abnormal");
    pqxx::work tx(*conn_);
    tx.exec_prepared("batch_resolve_discrepancies", "{1900000109}", "{F1}", "{refund_abnormal}");
    tx.commit();
    EXPECT_EQ(db_.scalar("SELECT status || ' ' || resolved_by || ' ' || resolution FROM wxrecon.discrepancies"
                         " WHERE id = " +
                         std::to_string(id)),
              "resolved wxrecond the refund was reported SUCCESS");
    EXPECT_EQ(history(id), "wxrecond - open - | wxrecond open resolved the refund was reported SUCCESS");
}

// A database migrated to 0008 with discrepancies, some resolved: 0009 marks those resolved by the daemon
// and writes the history they would have had.
TEST(DiscrepancyMigration, RowsResolvedBeforeTheWorkflowAreBackfilled) {
    scratch_database db;
    pqxx::connection conn(db.url());
    std::vector<store::migration> up_to_8;
    for (const auto& m : store::embedded_migrations())
        if (m.version <= 8) up_to_8.push_back(m);
    store::migrate(conn, up_to_8);
    db.exec(
        "INSERT INTO wxrecon.discrepancies (mchid, out_trade_no, kind, detected_at, resolved_at) VALUES"
        " ('1900000109', 'O1', 'stuck', '2026-11-01T00:00:00Z', NULL),"
        " ('1900000109', 'O2', 'stuck', '2026-11-01T00:00:00Z', '2026-11-02T00:00:00Z')");
    const auto report = store::migrate(conn);
    EXPECT_EQ(report.version, store::latest_migration_version());
    pqxx::work tx(conn);
    EXPECT_EQ(rows_of(tx,
                      "SELECT out_trade_no, status, coalesce(resolved_by, '-') FROM wxrecon.discrepancies"
                      " ORDER BY id"),
              "O1 open - | O2 resolved wxrecond");
    EXPECT_EQ(
        rows_of(tx,
                "SELECT d.out_trade_no, h.by, coalesce(h.from_status, '-'), h.to_status,"
                " to_char(h.at AT TIME ZONE 'UTC', 'MM-DD')"
                " FROM wxrecon.discrepancy_history h JOIN wxrecon.discrepancies d ON d.id = h.discrepancy_id"
                " ORDER BY h.id"),
        "O1 wxrecond - open 11-01 | O2 wxrecond - open 11-01 | O2 wxrecond open resolved 11-02");
}

// ---- store::discrepancy_store, as the command line uses it ----

TEST_F(DiscrepancyWorkflow, StoreListsByStatusKindAndMerchantWithALimit) {
    const long a = open("S1", "stuck");
    const long b = open("S2", "amount_mismatch");
    const long c = open("S3", "stuck");
    db_.exec(
        "INSERT INTO wxrecon.discrepancies (mchid, out_trade_no, kind, bill_date) VALUES"
        " ('1900000209', '2026-11-30', 'fee_mismatch', '2026-11-30')");
    store::discrepancy_store store(db_.url());
    ASSERT_EQ(store.acknowledge(b, "alice", "").value().outcome, store::transition_outcome::done);
    ASSERT_EQ(store.resolve(c, "bob", "fixed").value().outcome, store::transition_outcome::done);

    auto ids = [&](const store::discrepancy_filter& f) {
        std::string out;
        for (const auto& d : store.list(f).rows) out += (out.empty() ? "" : ",") + d.out_trade_no;
        return out;
    };
    store::discrepancy_filter f;
    EXPECT_EQ(ids(f), "S1,S2,2026-11-30");
    f.status = store::status_filter::open;
    EXPECT_EQ(ids(f), "S1,2026-11-30");
    f.status = store::status_filter::acknowledged;
    EXPECT_EQ(ids(f), "S2");
    f.status = store::status_filter::resolved;
    EXPECT_EQ(ids(f), "S3");
    f.status = store::status_filter::all;
    EXPECT_EQ(ids(f), "S1,S2,S3,2026-11-30");
    f.kind = "stuck";
    EXPECT_EQ(ids(f), "S1,S3");
    f.kind.clear();
    f.mchid = "1900000209";
    EXPECT_EQ(ids(f), "2026-11-30");
    f.mchid.clear();
    f.limit = 2;
    const auto limited = store.list(f);
    EXPECT_EQ(limited.rows.size(), 2u);
    EXPECT_TRUE(limited.truncated);
    f.limit = 4;
    EXPECT_FALSE(store.list(f).truncated);

    f = {};
    f.status = store::status_filter::all;
    const auto all = store.list(f).rows;
    ASSERT_EQ(all.size(), 4u);
    EXPECT_EQ(all[0].id, a);
    EXPECT_EQ(all[1].acknowledged_by, "alice");
    EXPECT_FALSE(all[1].acknowledged_at.empty());
    EXPECT_EQ(all[2].resolved_by, "bob");
    EXPECT_EQ(all[2].resolution, "fixed");
    EXPECT_EQ(all[3].bill_date, "2026-11-30");
    EXPECT_EQ(all[3].detail_json, "{}");
    EXPECT_EQ(all[0].resolved_at, "");
}

TEST_F(DiscrepancyWorkflow, StoreSaysWhyNothingChanged) {
    const long id = open("S4");
    store::discrepancy_store store(db_.url());
    EXPECT_EQ(store.resolve(id + 1000, "bob", "x").value().outcome, store::transition_outcome::not_found);
    ASSERT_EQ(store.acknowledge(id, "alice", "looking").value().outcome, store::transition_outcome::done);
    const auto again = store.acknowledge(id, "alice", "");
    EXPECT_EQ(again.value().outcome, store::transition_outcome::wrong_status);
    EXPECT_EQ(again.value().current_status, "acknowledged");
    const auto blank = store.resolve(id, "bob", " ");
    ASSERT_FALSE(blank);
    EXPECT_EQ(blank.err().code, errc::invalid_argument);
    EXPECT_EQ(blank.err().message, "a resolution needs a note saying why");
    EXPECT_EQ(store.resolve(id, "bob", "done").value().outcome, store::transition_outcome::done);
    EXPECT_EQ(store.resolve(id, "bob", "done").value().current_status, "resolved");
}

TEST(DiscrepancyStore, UnreachableDatabaseIsUnavailable) {
    EXPECT_THROW(store::discrepancy_store("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"),
                 store::database_unavailable);
}

}  // namespace
}  // namespace wxrecon::testing
