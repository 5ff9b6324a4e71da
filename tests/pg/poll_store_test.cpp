// The poller's store operations against a real PostgreSQL: the outcomes of many polls are written in one
// statement with the semantics of writing them one after another (only leases still ours, the last update
// of an order counting, terminal orders unscheduled, `stuck` opened and resolved).
#include <gtest/gtest.h>

#include <optional>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <pqxx/pqxx>

#include "store/db_pool.hpp"
#include "store/migrations.hpp"
#include "store/poll_store.hpp"
#include "test_env.hpp"

namespace wxrecon::testing {
namespace {

using namespace std::chrono_literals;

constexpr domain::micros minute = 60'000'000;

class PollStore : public ::testing::Test {
protected:
    void SetUp() override {
        pqxx::connection conn(db_.url());
        store::migrate(conn);
        // Due orders: four to be claimed by "A"; FOREIGN is leased by another owner.
        for (const char* o : {"POLL-1", "POLL-2", "POLL-PAID", "POLL-LATE"})
            db_.exec(
                "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, created_at, next_poll_at)"
                " VALUES ('" +
                std::string(test_mchid) + "', '" + o +
                "', 100, now() - interval '2 hours', now() - interval '1 second')");
        db_.exec(
            "UPDATE wxrecon.orders SET expire_at = now() - interval '1 hour' WHERE out_trade_no = "
            "'POLL-LATE'");
        db_.exec(
            "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, poll_lease_owner, "
            "poll_lease_until)"
            " VALUES ('" +
            std::string(test_mchid) + "', 'POLL-FOREIGN', 100, 'B', now() + interval '1 hour')");
        db_.exec("UPDATE wxrecon.orders SET next_poll_at = NULL WHERE out_trade_no = 'POLL-FOREIGN'");
    }

    template <class T>
    T run(boost::asio::awaitable<T> op) {
        boost::asio::io_context io;
        auto result = boost::asio::co_spawn(io, std::move(op), boost::asio::use_future);
        io.run();
        return result.get();
    }
    std::vector<std::optional<std::string>> finish(std::vector<store::poll_update> updates) {
        return run(store::finish_polls(pool_, "A", std::move(updates)));
    }
    store::poll_update update(const std::string& out_trade_no) {
        store::poll_update u;
        u.mchid = test_mchid;
        u.out_trade_no = out_trade_no;
        return u;
    }

    scratch_database db_;
    store::db_pool pool_{db_.url(), 1, 16, store::prepare_poll_connection};
};

TEST_F(PollStore, OutcomesOfManyPollsAreWrittenTogetherAsIfOneAfterAnother) {
    const auto claimed = run(store::claim_due_orders(pool_, "A", 60s, 10));
    ASSERT_EQ(claimed.size(), 4U);
    db_.exec("UPDATE wxrecon.orders SET state = 'SUCCESS' WHERE out_trade_no = 'POLL-PAID'");
    const domain::micros next = 1'900'000'000'000'000;

    auto failed = update("POLL-1");  // superseded by the answered update after it
    failed.error = "first";
    failed.next_poll_at = next - minute;
    auto answered = update("POLL-1");
    answered.answered = true;
    answered.next_poll_at = next;
    auto erring = update("POLL-2");
    erring.error = "query failed: 500";
    erring.next_poll_at = next;
    erring.fill_expire_at = next + minute;
    auto paid = update("POLL-PAID");
    paid.answered = true;
    paid.next_poll_at = next;  // cancelled: the order is terminal
    auto late = update("POLL-LATE");
    late.answered = true;
    late.next_poll_at = next;
    late.stuck_after = 1'000'000;  // open an hour past its expiry: stuck
    auto foreign = update("POLL-FOREIGN");
    foreign.error = "not ours";
    finish({failed, erring, answered, paid, late, foreign});

    EXPECT_EQ(
        db_.scalar("SELECT string_agg(out_trade_no || ':' || coalesce(wxrecon.to_micros(next_poll_at)::text, "
                   "'-') || ':' || poll_attempts || ':' || coalesce(last_poll_error, '-') || ':' ||"
                   " coalesce(poll_lease_owner, '-'), ' ' ORDER BY out_trade_no) FROM wxrecon.orders"),
        "POLL-1:1900000000000000:1:-:- POLL-2:1900000000000000:0:query failed: 500:- "
        "POLL-FOREIGN:-:0:-:B POLL-LATE:1900000000000000:1:-:- POLL-PAID:-:1:-:-");
    EXPECT_EQ(
        db_.scalar("SELECT wxrecon.to_micros(expire_at) FROM wxrecon.orders WHERE out_trade_no = 'POLL-2'"),
        std::to_string(next + minute));
    EXPECT_EQ(db_.scalar("SELECT string_agg(out_trade_no || ':' || (detail->>'poll_attempts'), ',')"
                         " FROM wxrecon.discrepancies WHERE kind = 'stuck' AND resolved_at IS NULL"),
              "POLL-LATE:1");

    // Claimed again and settled: the stuck discrepancy is resolved by the next round.
    db_.exec(
        "UPDATE wxrecon.orders SET next_poll_at = now() - interval '1 second' WHERE out_trade_no = "
        "'POLL-LATE'");
    ASSERT_EQ(run(store::claim_due_orders(pool_, "A", 60s, 10)).size(), 1U);
    db_.exec("UPDATE wxrecon.orders SET state = 'CLOSED' WHERE out_trade_no = 'POLL-LATE'");
    late.next_poll_at.reset();
    finish({late});
    EXPECT_EQ(
        db_.scalar("SELECT status || ':' || resolved_by FROM wxrecon.discrepancies WHERE kind = 'stuck'"),
        "resolved:wxrecond");
    EXPECT_EQ(db_.scalar("SELECT poll_lease_owner IS NULL AND next_poll_at IS NULL FROM wxrecon.orders"
                         " WHERE out_trade_no = 'POLL-LATE'"),
              "t");
}

// The batch's rows are locked in key order, as the ledger's batches lock theirs: a transaction holding one
// of them delays the round, never deadlocks it, and the round's write lands once it commits.
TEST_F(PollStore, ARoundWaitsForARowAnotherTransactionHolds) {
    ASSERT_EQ(run(store::claim_due_orders(pool_, "A", 60s, 10)).size(), 4U);
    pqxx::connection other(db_.url());
    pqxx::work holding(other);
    holding.exec("SELECT 1 FROM wxrecon.orders WHERE out_trade_no = 'POLL-2' FOR UPDATE");
    boost::asio::io_context io;
    auto one = update("POLL-1"), two = update("POLL-2");
    one.error = two.error = "x";
    auto done =
        boost::asio::co_spawn(io, store::finish_polls(pool_, "A", {two, one}), boost::asio::use_future);
    std::thread runner([&] { io.run(); });
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(db_.scalar("SELECT count(*) FROM wxrecon.orders WHERE last_poll_error = 'x'"), "0");
    holding.commit();
    runner.join();
    done.get();
    EXPECT_EQ(db_.scalar("SELECT count(*) FROM wxrecon.orders WHERE last_poll_error = 'x'"), "2");
    // A lock held for longer does not hold the round (and every poll waiting on it) for longer than this.
    auto lock_timeout = [](pqxx::connection_base& c) {
        return pqxx::nontransaction(c).exec1("SHOW lock_timeout")[0].as<std::string>();
    };
    EXPECT_EQ(run(pool_.run<std::string>(lock_timeout)), "5s");
}

// What the database refuses (here an error text that is not UTF-8) fails the whole statement: the round's
// outcomes are then written one by one, so only the refused one is lost (its lease runs out).
TEST_F(PollStore, AnOutcomeTheDatabaseRefusesCostsOnlyItsOwnOrder) {
    ASSERT_EQ(run(store::claim_due_orders(pool_, "A", 60s, 10)).size(), 4U);
    auto superseded = update("POLL-1"), good = update("POLL-1"), bad = update("POLL-2"),
         also_good = update("POLL-LATE");
    superseded.error = "superseded";
    good.error = "fine";  // the last of POLL-1's updates: it counts, written alone as in a round
    bad.error = std::string("broken \xff\xfe");
    also_good.answered = true;
    const auto refused = finish({superseded, good, bad, also_good});
    ASSERT_EQ(refused.size(), 4U);
    EXPECT_FALSE(refused[0]);
    EXPECT_FALSE(refused[1]);
    ASSERT_TRUE(refused[2]);
    EXPECT_NE(refused[2]->find("UTF8"), std::string::npos) << *refused[2];
    EXPECT_FALSE(refused[3]);
    EXPECT_EQ(db_.scalar("SELECT string_agg(out_trade_no || ':' || coalesce(last_poll_error, '-') || ':' ||"
                         " coalesce(poll_lease_owner, '-'), ' ' ORDER BY out_trade_no) FROM wxrecon.orders"
                         " WHERE out_trade_no IN ('POLL-1', 'POLL-2', 'POLL-LATE')"),
              "POLL-1:fine:- POLL-2:-:A POLL-LATE:-:-");
}

}  // namespace
}  // namespace wxrecon::testing
