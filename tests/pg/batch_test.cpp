// Group commit semantics against a real PostgreSQL: facts applied together in
// one transaction give the same rows as one at a time; duplicates inside a
// batch are recognised; a poisoned fact fails alone.
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <pqxx/pqxx>

#include "store/db_pool.hpp"
#include "store/fact_batch.hpp"
#include "store/ledger.hpp"
#include "store/migrations.hpp"
#include "test_env.hpp"

namespace wxrecon::testing {
namespace {

using namespace domain;

fact payment(const std::string& out_trade_no, const std::string& txid, std::int64_t total,
             const std::string& id) {
    payment_fact p;
    p.out_trade_no = out_trade_no;
    p.state = trade_state::success;
    p.transaction_id = txid;
    p.appid = test_appid;
    p.amount_total = total;
    p.payer_total = total;
    p.success_time = 1'764'000'000'000'000;
    fact f;
    f.mchid = test_mchid;
    f.source = fact_source::notify_v3;
    f.event_type = "TRANSACTION.SUCCESS";
    f.notify_id = id;
    f.observed_at = 1'764'000'001'000'000;
    f.payload_json = "{\"out_trade_no\":\"" + out_trade_no + "\"}";
    f.raw_body = "{}";
    f.raw_headers_json = "{}";
    f.body = p;
    return f;
}

fact refund(const std::string& out_trade_no, const std::string& txid, const std::string& out_refund_no,
            refund_status status, const std::string& id, std::int64_t amount = 40) {
    refund_fact r;
    r.out_trade_no = out_trade_no;
    r.out_refund_no = out_refund_no;
    r.transaction_id = txid;
    r.status = status;
    r.amount_refund = amount;
    r.amount_total = 100;
    fact f = payment(out_trade_no, txid, 100, id);
    f.event_type = std::string("REFUND.") + std::string(to_string(status));
    f.body = r;
    return f;
}

class BatchTest : public ::testing::Test {
protected:
    void SetUp() override {
        conn_ = std::make_unique<pqxx::connection>(db_.url());
        store::migrate(*conn_);
        store::prepare_ledger_connection(*conn_);
        pqxx::work tx(*conn_);
        for (const char* o : {"ORDER-B1", "ORDER-B2", "ORDER-B2F", "ORDER-B3", "ORDER-B4"})
            tx.exec_params(
                "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, appid) VALUES ($1,$2,100,$3)",
                test_mchid, o, test_appid);
        tx.commit();
    }

    std::vector<store::apply_result> apply(const std::vector<fact>& facts) {
        std::vector<const fact*> ptrs;
        for (const auto& f : facts) ptrs.push_back(&f);
        return store::apply_batch(*conn_, ptrs);
    }

    std::string rows(const std::string& sql) {
        pqxx::nontransaction tx(*conn_);
        std::string out;
        for (const auto& row : tx.exec(sql)) {
            for (const auto& field : row)
                out += (field.is_null() ? "NULL" : field.c_str()) + std::string(" ");
            out += "| ";
        }
        return out;
    }

    scratch_database db_;
    std::unique_ptr<pqxx::connection> conn_;
};

TEST_F(BatchTest, SameOrderFactsInOneBatchApplyInArrivalOrder) {
    // Payment, abnormal refund, successful refund of the same order, all in one transaction.
    const auto results = apply({payment("ORDER-B1", "T1", 100, "E1"),
                                refund("ORDER-B1", "T1", "R1", refund_status::abnormal, "E2"),
                                refund("ORDER-B1", "T1", "R1", refund_status::success, "E3")});
    ASSERT_EQ(results.size(), 3u);
    for (const auto& r : results) EXPECT_EQ(r.outcome, outcome::applied);
    // 40 of 100 refunded: a partial refund leaves the order paid.
    EXPECT_EQ(rows("SELECT state, transaction_id FROM wxrecon.orders WHERE out_trade_no = 'ORDER-B1'"),
              "SUCCESS T1 | ");
    EXPECT_EQ(rows("SELECT status FROM wxrecon.refunds"), "SUCCESS | ");
    EXPECT_EQ(rows("SELECT notify_id FROM wxrecon.payment_events ORDER BY id"), "E1 | E2 | E3 | ");
    // refund_abnormal was opened by the second fact and resolved by the third, exactly as one at a time.
    EXPECT_EQ(rows("SELECT kind, resolved_at IS NOT NULL FROM wxrecon.discrepancies"),
              "refund_abnormal t | ");
    // Resolved by the daemon, saying why, and the history has both steps (migration 0009).
    EXPECT_EQ(rows("SELECT status, resolved_by, resolution FROM wxrecon.discrepancies"),
              "resolved wxrecond the refund was reported SUCCESS | ");
    EXPECT_EQ(rows("SELECT by, to_status FROM wxrecon.discrepancy_history ORDER BY id"),
              "wxrecond open | wxrecond resolved | ");
}

// Stale or regression is decided on one clock: a contradicting answer is compared with when the recorded
// state was observed (the facts' clock), not with when the database wrote it. Here the daemon's clock runs
// an hour ahead of the database's: an answer to a query sent before the payment was seen is stale, one sent
// after it is a regression. (Compared with the database's time both were "newer", so both regressions.)
TEST_F(BatchTest, StaleOrRegressionIsDecidedOnTheFactsClockNotTheDatabases) {
    const micros db_now = std::stoll(rows("SELECT wxrecon.to_micros(now())"));
    const micros daemon_now = db_now + 3'600'000'000LL;
    fact paid = payment("ORDER-B2", "T2", 100, "E-SKEW-1");
    paid.observed_at = daemon_now;
    ASSERT_EQ(apply({paid})[0].outcome, outcome::applied);
    const auto answer = [&](micros sent_at, const char* request) {
        fact f = payment("ORDER-B2", "", 100, "");
        f.notify_id.reset();
        f.source = fact_source::query_v3;
        f.event_type = "QUERY";
        f.observed_at = sent_at;
        auto& p = std::get<payment_fact>(f.body);
        p.state = trade_state::notpay;
        p.transaction_id.clear();
        p.success_time.reset();
        f.payload_json = std::string("{\"request\":\"") + request + "\"}";
        return apply({f})[0].outcome;
    };
    EXPECT_EQ(answer(daemon_now - 10'000'000, "before"), outcome::stale);
    EXPECT_EQ(answer(daemon_now + 10'000'000, "after"), outcome::regression);
    EXPECT_EQ(rows("SELECT state FROM wxrecon.orders WHERE out_trade_no = 'ORDER-B2'"), "SUCCESS | ");
    EXPECT_EQ(rows("SELECT wxrecon.to_micros(state_observed_at) = " + std::to_string(daemon_now) +
                   " FROM wxrecon.orders WHERE out_trade_no = 'ORDER-B2'"),
              "t | ");
    // Changed by hand, the state keeps no observation time of the state before it: its change time stands in.
    {
        pqxx::work tx(*conn_);
        tx.exec("UPDATE wxrecon.orders SET state = 'CLOSED' WHERE out_trade_no = 'ORDER-B2'");
        tx.commit();
    }
    EXPECT_EQ(rows("SELECT state_observed_at IS NULL FROM wxrecon.orders WHERE out_trade_no = 'ORDER-B2'"),
              "t | ");
}

TEST_F(BatchTest, RefundBeforeItsPaymentInOneBatchConverges) {
    const auto results = apply(
        {refund("ORDER-B2", "T2", "R2", refund_status::success, "E1"), payment("ORDER-B2", "T2", 100, "E2")});
    EXPECT_EQ(results[0].outcome, outcome::applied);
    EXPECT_EQ(results[1].outcome, outcome::applied);
    EXPECT_EQ(rows("SELECT state FROM wxrecon.orders WHERE out_trade_no = 'ORDER-B2'"), "SUCCESS | ")
        << "40 of 100 refunded";
    EXPECT_EQ(rows("SELECT kind, resolved_at IS NOT NULL FROM wxrecon.discrepancies"),
              "refund_without_payment t | ");
    EXPECT_EQ(rows("SELECT status, resolved_by, resolution FROM wxrecon.discrepancies"),
              "resolved wxrecond the payment behind the refund was reported | ");

    // The whole payment refunded before the payment is seen: the payment completes it to REFUND.
    apply({refund("ORDER-B2F", "T2F", "R2F", refund_status::success, "E3", 100),
           payment("ORDER-B2F", "T2F", 100, "E4")});
    EXPECT_EQ(rows("SELECT state FROM wxrecon.orders WHERE out_trade_no = 'ORDER-B2F'"), "REFUND | ");
}

// Partial refunds add up within a batch: the order becomes REFUND with the refund that reaches what was
// paid, and not before.
TEST_F(BatchTest, PartialRefundsInOneBatchAddUpToRefund) {
    apply({payment("ORDER-B4", "T4", 100, "E1")});
    apply({refund("ORDER-B4", "T4", "R4a", refund_status::success, "E2", 30),
           refund("ORDER-B4", "T4", "R4b", refund_status::success, "E3", 30)});
    EXPECT_EQ(rows("SELECT state FROM wxrecon.orders WHERE out_trade_no = 'ORDER-B4'"), "SUCCESS | ");
    apply({refund("ORDER-B4", "T4", "R4c", refund_status::processing, "E4", 40),
           refund("ORDER-B4", "T4", "R4c", refund_status::success, "E5", 40)});
    EXPECT_EQ(rows("SELECT state FROM wxrecon.orders WHERE out_trade_no = 'ORDER-B4'"), "REFUND | ");
    EXPECT_EQ(rows("SELECT sum(amount_refund) FROM wxrecon.refunds WHERE status = 'SUCCESS'"), "100 | ");
}

// Found by the crash campaign: a batch that waited for an order's lock while another batch committed a
// refund of it must count that refund. Here the other batch is a transaction holding the lock that commits
// 40 fen refunded while this batch, with the other 60, waits: together they are the whole, so REFUND.
TEST_F(BatchTest, ARefundCommittedWhileTheBatchWaitedForTheOrderCounts) {
    apply({payment("ORDER-B4", "T4", 100, "E1")});
    pqxx::connection other(db_.url());
    pqxx::work holding(other);
    holding.exec("SELECT 1 FROM wxrecon.orders WHERE out_trade_no = 'ORDER-B4' FOR UPDATE");
    holding.exec_params(
        "INSERT INTO wxrecon.refunds (mchid, out_refund_no, out_trade_no, amount_refund, status)"
        " VALUES ($1, 'R4a', 'ORDER-B4', 40, 'SUCCESS')",
        test_mchid);
    std::vector<store::apply_result> results;
    std::thread waiting(
        [&] { results = apply({refund("ORDER-B4", "T4", "R4b", refund_status::success, "E3", 60)}); });
    pqxx::connection watcher(db_.url());
    for (int i = 0; i < 200; ++i) {  // until the batch waits for the lock
        pqxx::nontransaction tx(watcher);
        if (tx.exec1("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                     " AND datname = current_database()")[0]
                .as<int>() > 0)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    holding.commit();
    waiting.join();
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].outcome, outcome::applied);
    EXPECT_EQ(rows("SELECT state FROM wxrecon.orders WHERE out_trade_no = 'ORDER-B4'"), "REFUND | ");
}

TEST_F(BatchTest, DuplicatesInsideABatchAreRecognisedLikeAcrossBatches) {
    const auto results = apply({payment("ORDER-B3", "T3", 100, "E1"), payment("ORDER-B3", "T3", 100, "E1"),
                                payment("ORDER-B3", "T3", 100, "E1-resent"),
                                payment("ORDER-NEW", "T9", 70, "E9"), payment("ORDER-NEW", "T9", 70, "E9")});
    EXPECT_EQ(results[0].outcome, outcome::applied);
    EXPECT_TRUE(results[1].duplicate);
    EXPECT_TRUE(results[2].duplicate);
    EXPECT_EQ(results[3].outcome, outcome::applied);
    EXPECT_TRUE(results[4].duplicate);
    EXPECT_EQ(rows("SELECT count(*) FROM wxrecon.payment_events"), "2 | ");
    EXPECT_EQ(rows("SELECT origin, state, amount_total FROM wxrecon.orders WHERE out_trade_no = 'ORDER-NEW'"),
              "notify SUCCESS 70 | ");
    EXPECT_EQ(rows("SELECT kind FROM wxrecon.discrepancies"), "unknown_order | ");
    // And across batches.
    const auto again = apply({payment("ORDER-B3", "T3", 100, "E1")});
    EXPECT_TRUE(again[0].duplicate);
    EXPECT_EQ(rows("SELECT count(*) FROM wxrecon.payment_events"), "2 | ");
}

TEST_F(BatchTest, APoisonedFactFailsTheTransactionAndNothingOfItIsApplied) {
    fact poisoned = payment("ORDER-B4", "T4", 100, "E4");
    poisoned.payload_json = "{not json";  // the database refuses it as jsonb
    EXPECT_THROW(apply({payment("ORDER-B1", "T1", 100, "E1"), poisoned}), pqxx::sql_error);
    EXPECT_EQ(rows("SELECT count(*) FROM wxrecon.payment_events"), "0 | ");
    EXPECT_EQ(rows("SELECT count(*) FROM wxrecon.orders WHERE state = 'SUCCESS'"), "0 | ");
    // The failed transaction was rolled back on the batch's own connection: the next batch there applies.
    EXPECT_EQ(apply({payment("ORDER-B1", "T1", 100, "E1")})[0].outcome, outcome::applied);
    EXPECT_EQ(rows("SELECT count(*) FROM wxrecon.payment_events"), "1 | ");
}

TEST_F(BatchTest, ValuesSurviveTheArrayLiteralsExactly) {
    // Quotes, backslashes, braces, commas, the word NULL, non-ASCII text: all stored byte for byte.
    fact tricky = payment("ORDER-B1", "T1", 100, "E\"1,{x}");
    tricky.payload_json = R"({"desc":"支付\"成功\\","list":[1,2],"empty":""})";
    tricky.raw_body = "NULL";
    tricky.raw_headers_json = R"({"Wechatpay-Nonce":"a,b{c}\\d\"e"})";
    fact empty_body = payment("ORDER-B2", "T2", 100, "E2");
    empty_body.raw_body = "";
    const auto results = apply({tricky, empty_body});
    EXPECT_EQ(results[0].outcome, outcome::applied);
    EXPECT_EQ(rows("SELECT notify_id FROM wxrecon.payment_events WHERE out_trade_no = 'ORDER-B1'"),
              "E\"1,{x} | ");
    EXPECT_EQ(rows("SELECT payload->>'desc' FROM wxrecon.payment_events WHERE out_trade_no = 'ORDER-B1'"),
              "支付\"成功\\ | ");
    EXPECT_EQ(rows("SELECT raw_body FROM wxrecon.payment_events WHERE out_trade_no = 'ORDER-B1'"), "NULL | ");
    EXPECT_EQ(rows("SELECT raw_headers->>'Wechatpay-Nonce' FROM wxrecon.payment_events WHERE out_trade_no = "
                   "'ORDER-B1'"),
              "a,b{c}\\d\"e | ");
    EXPECT_EQ(rows("SELECT raw_body = '' FROM wxrecon.payment_events WHERE out_trade_no = 'ORDER-B2'"),
              "t | ");
}

// Numbers travel as 8-byte big-endian array elements: values past 32 bits, and a missing one as NULL.
TEST_F(BatchTest, WideNumbersAndNullsSurviveTheBinaryArrays) {
    fact wide = payment("ORDER-WIDE", "TW", 987'654'321'012, "EW");  // an order first seen here
    std::get<payment_fact>(wide.body).payer_total = 4'294'967'297;   // 2^32 + 1
    std::get<payment_fact>(wide.body).success_time = 1'764'123'456'789'012;
    fact no_payer_total = payment("ORDER-B2", "T2", 100, "E2");
    std::get<payment_fact>(no_payer_total.body).payer_total.reset();
    const auto results = apply({wide, no_payer_total});
    ASSERT_EQ(results[0].outcome, outcome::applied);
    EXPECT_EQ(rows("SELECT amount_total, payer_total, wxrecon.to_micros(success_time) FROM wxrecon.orders"
                   " WHERE out_trade_no = 'ORDER-WIDE'"),
              "987654321012 4294967297 1764123456789012 | ");
    EXPECT_EQ(
        rows(
            "SELECT amount_total, payer_total FROM wxrecon.payment_events WHERE out_trade_no = 'ORDER-WIDE'"),
        "987654321012 4294967297 | ");
    EXPECT_EQ(rows("SELECT payer_total IS NULL, amount_total FROM wxrecon.payment_events"
                   " WHERE out_trade_no = 'ORDER-B2'"),
              "t 100 | ");
}

// Through the ledger: concurrent facts are coalesced, and the poisoned one gets its error alone.
TEST_F(BatchTest, LedgerIsolatesAPoisonedFactFromItsBatchMates) {
    store::db_pool pool(db_.url(), 1, 64, store::prepare_ledger_connection);
    store::ledger ledger(pool);
    std::atomic<std::size_t> committed_facts{0};  // as the batch-size metric counts them
    std::atomic<int> committed_batches{0};
    std::atomic<int> wake_ups{0};  // the app-event pusher's: once per batch that changed something
    ledger.on_batch([&](std::size_t n) {
        committed_facts += n;
        ++committed_batches;
    });
    ledger.on_applied([&] { ++wake_ups; });
    boost::asio::io_context io;
    std::vector<fact> facts;
    for (int i = 0; i < 40; ++i) {
        pqxx::work tx(*conn_);
        tx.exec_params("INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total) VALUES ($1,$2,100)",
                       test_mchid, "PBATCH" + std::to_string(i));
        tx.commit();
        facts.push_back(
            payment("PBATCH" + std::to_string(i), "TP" + std::to_string(i), 100, "EP" + std::to_string(i)));
    }
    facts[17].payload_json = "{poison";
    // A number WeChat Pay never issues is refused before the batch, whichever workflow let it through.
    facts.push_back(payment("PBATCH/../1", "TPX", 100, "EPX"));
    std::vector<std::future<store::apply_result>> results;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (const auto& f : facts)
        results.push_back(boost::asio::co_spawn(io, ledger.apply(f, until), boost::asio::use_future));
    io.run();
    for (std::size_t i = 0; i < results.size(); ++i) {
        if (i == 17) {
            EXPECT_THROW(results[i].get(), pqxx::sql_error);
        } else if (i == 40) {
            EXPECT_THROW(results[i].get(), std::invalid_argument);
        } else {
            EXPECT_EQ(results[i].get().outcome, outcome::applied) << i;
        }
    }
    EXPECT_EQ(rows("SELECT count(*) FROM wxrecon.payment_events"), "39 | ");
    EXPECT_EQ(committed_facts.load(), 39U);
    EXPECT_EQ(wake_ups.load(), committed_batches.load());
    EXPECT_LT(wake_ups.load(), 39);
    EXPECT_EQ(
        rows("SELECT count(*) FROM wxrecon.orders WHERE out_trade_no = 'PBATCH17' AND state = 'NOTPAY'"),
        "1 | ");
    // A batch of duplicates commits and changes nothing: no wake-up.
    const int before = wake_ups.load();
    boost::asio::io_context again;
    auto dup = boost::asio::co_spawn(again, ledger.apply(facts[0], until), boost::asio::use_future);
    again.run();
    EXPECT_TRUE(dup.get().duplicate);
    EXPECT_EQ(wake_ups.load(), before);
    pool.stop();
}

// The identities are looked up before the events are written: a transaction that records the same fact in
// between (here one still open when the batch looks) makes the batch's INSERT fail on the unique index. The
// ledger retries the batch, which then finds the fact recorded: a duplicate, never an error or a second row.
TEST_F(BatchTest, AFactRecordedConcurrentlyAfterTheLookupIsADuplicateOnRetry) {
    pqxx::connection other(db_.url());
    pqxx::work racing(other);
    racing.exec_params(
        "INSERT INTO wxrecon.payment_events (mchid, out_trade_no, source, notify_id, event_type, trade_state,"
        " transaction_id, payload) VALUES ($1, 'ORDER-B3', 'notify_v3', 'EP-RACE', 'TRANSACTION.SUCCESS',"
        " 'SUCCESS', 'TP-RACE-OTHER', '{}')",
        test_mchid);
    store::db_pool pool(db_.url(), 1, 8, store::prepare_ledger_connection);
    store::ledger ledger(pool);
    boost::asio::io_context io;
    const fact f = payment("ORDER-B1", "TP-RACE", 100, "EP-RACE");
    auto result = boost::asio::co_spawn(
        io, ledger.apply(f, std::chrono::steady_clock::now() + std::chrono::seconds(10)),
        boost::asio::use_future);
    std::thread runner([&] { io.run(); });
    // The batch is blocked on the open transaction's index entry once it holds its order's lock.
    for (int i = 0;
         i < 200 &&
         rows("SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted") == "0 | ";
         ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(rows("SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted"), "1 | ");
    racing.commit();
    runner.join();
    const auto r = result.get();
    EXPECT_TRUE(r.duplicate);
    EXPECT_EQ(rows("SELECT count(*) FROM wxrecon.payment_events WHERE notify_id = 'EP-RACE'"), "1 | ");
    EXPECT_EQ(rows("SELECT state FROM wxrecon.orders WHERE out_trade_no = 'ORDER-B1'"), "NOTPAY | ");
    pool.stop();
}

// A batch's plans are cached for the life of its connection: the identity check's, made while
// fact_identities was empty, must still look rows up by index once the table is large and not yet analysed.
// Every lookup of a batch is driven by the batch's keys, a probe of the table's key each, whatever the
// table's size and statistics: on tables just created and never analysed (where a join read the table
// whole through an index for every batch, "Join Filter") and after 30,000 unanalysed events.
TEST_F(BatchTest, EveryLookupIsAKeyProbeWhateverTheTableSize) {
    {
        pqxx::work tx(*conn_);  // as a new installation has them: empty and never analysed
        tx.exec("TRUNCATE wxrecon.fact_identities, wxrecon.refunds CASCADE");
        tx.commit();
    }
    // Every statement is prepared and used.
    apply({payment("ORDER-B1", "TX-PLAN", 100, "N-PLAN"),
           refund("ORDER-B1", "TX-PLAN", "R-PLAN", refund_status::success, "N-PLAN-R")});
    const auto generic_plan = [this](const std::string& execute) {
        pqxx::work tx(*conn_);
        tx.exec(store::batch_settings(5000));
        std::string plan;
        for (const auto& row : tx.exec("EXPLAIN EXECUTE " + execute)) plan += row[0].as<std::string>() + "\n";
        return plan;
    };
    const auto count = [](const std::string& text, const std::string& what) {
        int n = 0;
        for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
        return n;
    };
    const auto check = [&](const char* when) {
        SCOPED_TRACE(when);
        const std::string state = generic_plan(
            "batch_read_state('{m}', '{o}', '{m}', '{n}', '{m}', '{t}', '{SUCCESS}', '{m}', '{o}', "
            "'{NOTPAY}', "
            "'{m}', '{r}', '{SUCCESS}')");
        EXPECT_EQ(count(state, "Index Cond: ((mchid = k"), 4) << state;  // k, k_1, k_2, k_3: one per kind
        EXPECT_EQ(count(state, "Index Cond: ((mchid = unnest.unnest) AND (out_trade_no = unnest.unnest_1))"),
                  1)
            << state;  // the refunded totals
        const std::string orders = generic_plan("batch_lock_orders('{m}', '{o}')");
        EXPECT_EQ(count(orders, "Index Cond: ((mchid = u.mchid) AND (out_trade_no = u.out_trade_no))"), 1)
            << orders;
        const std::string refunds = generic_plan("batch_lock_refunds('{m}', '{r}')");
        EXPECT_EQ(count(refunds, "(mchid = u.mchid)"), 1) << refunds;
        for (const auto& plan : {state, orders, refunds}) {
            EXPECT_EQ(plan.find("Join Filter"), std::string::npos) << plan;
            EXPECT_EQ(plan.find("Seq Scan"), std::string::npos) << plan;
            EXPECT_EQ(plan.find("Hash Join"), std::string::npos) << plan;
        }
    };
    check("new tables");
    {
        pqxx::work tx(*conn_);
        tx.exec(
            "INSERT INTO wxrecon.payment_events (mchid, out_trade_no, source, event_type, notify_id, "
            "transaction_id,"
            " trade_state, payload)"
            " SELECT 'M' || g % 50, 'O' || g, 'notify_v3', 'TRANSACTION.SUCCESS', 'N' || g, 'T' || g, "
            "'SUCCESS', '{}'"
            " FROM generate_series(1, 30000) AS g");
        tx.commit();
    }
    check("30,000 events");
}

// A batch's statements are planned once per connection, not at every batch: with the default plan cache mode
// a statement over arrays kept choosing a custom plan (its estimate knows the arrays' length), 78-166 us of
// planning each, about 500 us a batch. Duplicates, unknown orders and refunds included, so every statement
// runs.
TEST_F(BatchTest, TheStatementsAreNotPlannedAgainForEveryBatch) {
    for (int i = 0; i < 8; ++i) {
        const std::string n = std::to_string(i);
        apply({payment("ORDER-B3", "TX-REUSE", 100, "N-REUSE-" + n),
               payment("ORDER-UNKNOWN-" + n, "TX-U" + n, 100, ""),
               refund("ORDER-B3", "TX-REUSE", "R-REUSE", refund_status::success, "N-REUSE-R" + n, 10)});
    }
    EXPECT_EQ(
        rows("SELECT 'batch statements planned per use: ' || coalesce(string_agg(name || ' ' || custom_plans,"
             " ', ' ORDER BY name), 'none') FROM pg_prepared_statements"
             " WHERE name LIKE 'batch\\_%' AND custom_plans > 1"),
        "batch statements planned per use: none | ");
    EXPECT_EQ(rows("SELECT generic_plans >= 7 FROM pg_prepared_statements WHERE name = "
                   "'batch_write_events_and_orders'"),
              "t | ");
}

// A second transaction starts only once enough facts wait (ledger_limits::facts_for_another_batch, 16
// here): a trickle is taken by one batch after another, and each batch costs the server its fixed part
// only once. Here the first batch waits for a row lock held elsewhere; fifteen facts queued behind it wait
// too, the sixteenth starts a second transaction, which commits all sixteen while the first still waits.
TEST_F(BatchTest, ASecondTransactionStartsOnlyOnceEnoughFactsWait) {
    store::db_pool pool(db_.url(), 2, 256, store::prepare_ledger_connection);
    store::ledger_limits limits;
    limits.facts_for_another_batch = 16;
    store::ledger ledger(pool, limits);
    std::mutex sizes_mutex;
    std::vector<std::size_t> batch_sizes;  // committed batches, in commit order
    ledger.on_batch([&](std::size_t n) {
        std::lock_guard lock(sizes_mutex);
        batch_sizes.push_back(n);
    });
    std::vector<fact> facts;
    for (int i = 0; i <= 16; ++i) {
        const std::string n = std::to_string(i);
        pqxx::work tx(*conn_);
        tx.exec_params("INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total) VALUES ($1,$2,100)",
                       test_mchid, "DRAIN" + n);
        tx.commit();
        facts.push_back(payment("DRAIN" + n, "TD" + n, 100, "ED" + n));
    }
    pqxx::connection holder(db_.url());
    auto hold = std::make_unique<pqxx::work>(holder);
    hold->exec("SELECT 1 FROM wxrecon.orders WHERE out_trade_no = 'DRAIN0' FOR UPDATE");

    boost::asio::io_context io;
    auto guard = boost::asio::make_work_guard(io);
    std::thread runner([&] { io.run(); });
    // Whatever the outcome, the lock is let go and the runner ends before anything it uses is destroyed.
    struct finish {
        std::function<void()> run;
        ~finish() { run(); }
    } const cleanup{[&] {
        hold.reset();
        guard.reset();
        runner.join();
        pool.stop();
    }};
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    const auto submit = [&](const fact& f) {
        return boost::asio::co_spawn(io, ledger.apply(f, until), boost::asio::use_future);
    };
    const auto waiting_for_lock = [&] {
        return rows(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database()");
    };
    std::vector<std::future<store::apply_result>> results;
    results.push_back(submit(facts[0]));
    for (int i = 0; i < 100 && waiting_for_lock() != "1 | "; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_EQ(waiting_for_lock(), "1 | ") << "the first batch waits for the order's lock";

    for (int i = 1; i <= 15; ++i) results.push_back(submit(facts[i]));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(rows("SELECT count(*) FROM wxrecon.payment_events"), "0 | ")
        << "fifteen waiting facts did not start a second transaction";

    results.push_back(submit(facts[16]));
    for (int i = 1; i <= 16; ++i) {
        ASSERT_EQ(results[i].wait_for(std::chrono::seconds(10)), std::future_status::ready) << i;
        EXPECT_EQ(results[i].get().outcome, outcome::applied) << i;
    }
    {
        std::lock_guard lock(sizes_mutex);
        EXPECT_EQ(batch_sizes, std::vector<std::size_t>{16}) << "the sixteen in one batch";
    }
    EXPECT_EQ(results[0].wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
    hold->commit();
    ASSERT_EQ(results[0].wait_for(std::chrono::seconds(10)), std::future_status::ready);
    EXPECT_EQ(results[0].get().outcome, outcome::applied);
    EXPECT_EQ(rows("SELECT count(*) FROM wxrecon.payment_events"), "17 | ");
}

}  // namespace
}  // namespace wxrecon::testing
