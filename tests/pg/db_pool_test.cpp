// The database pool from many threads at once: callers on two event loops, workers on their own
// threads, deadlines racing answers, a full queue and a stop with work still queued. Run under
// ThreadSanitizer too (the tsan label), where a data race in the hand-over fails the test.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <stdexcept>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <pqxx/pqxx>

#include "store/db_pool.hpp"
#include "test_env.hpp"

namespace wxrecon::testing {
namespace {

namespace asio = boost::asio;
using std::chrono::steady_clock;

// What the callers saw, shared by both event loops.
struct tally {
    std::atomic<int> answered{0};       // resumed with its own number
    std::atomic<int> answered_slow{0};  // of which slow callers that made their deadline after all
    std::atomic<int> timed_out{0};      // resumed with deadline_exceeded
    std::atomic<int> overloaded{0};     // resumed with database_overloaded
    std::atomic<int> wrong{0};          // resumed with another caller's number or another error
    std::atomic<int> resumed_twice{0};  // resumed more than once
};

long select_number(pqxx::connection_base& conn, long n, bool slow) {
    pqxx::nontransaction tx(conn);
    const std::string sql =
        slow ? "SELECT " + std::to_string(n) + " FROM pg_sleep(0.05)" : "SELECT " + std::to_string(n);
    return tx.exec1(sql)[0].as<long>();
}

// One caller: asks for its own number back; every tenth asks slowly with a deadline it cannot meet.
asio::awaitable<void> ask(store::db_pool& pool, long n, tally& t, std::shared_ptr<std::atomic<int>> resumes) {
    const bool slow = n % 10 == 0;
    std::optional<steady_clock::time_point> until;
    if (slow) until = steady_clock::now() + std::chrono::milliseconds(1);
    try {
        const long got = co_await pool.run<long>(
            [n, slow](pqxx::connection_base& conn) { return select_number(conn, n, slow); }, until);
        if (resumes->fetch_add(1) > 0) t.resumed_twice.fetch_add(1);
        (got == n ? t.answered : t.wrong).fetch_add(1);
        if (slow) t.answered_slow.fetch_add(1);
    } catch (const store::deadline_exceeded&) {
        if (resumes->fetch_add(1) > 0) t.resumed_twice.fetch_add(1);
        (slow ? t.timed_out : t.wrong).fetch_add(1);
    } catch (const store::database_overloaded&) {
        if (resumes->fetch_add(1) > 0) t.resumed_twice.fetch_add(1);
        t.overloaded.fetch_add(1);
    } catch (...) {
        t.wrong.fetch_add(1);
    }
}

// Runs `per_loop` callers, counted in t, on each of two event loops, each loop on its own thread, against one
// pool.
void ask_from_two_loops(store::db_pool& pool, int per_loop, tally& t) {
    std::vector<std::thread> threads;
    for (int loop = 0; loop < 2; ++loop) {
        threads.emplace_back([&pool, &t, loop, per_loop] {
            asio::io_context io;
            for (int i = 0; i < per_loop; ++i)
                asio::co_spawn(io,
                               ask(pool, loop * per_loop + i + 1, t, std::make_shared<std::atomic<int>>(0)),
                               asio::detached);
            io.run();
        });
    }
    for (auto& th : threads) th.join();
}

TEST(DbPool, CallersOnTwoLoopsEachGetTheirOwnAnswerExactlyOnce) {
    scratch_database db;
    store::db_pool pool(db.url(), 3, 1000);
    tally t;
    ask_from_two_loops(pool, 300, t);
    EXPECT_EQ(t.wrong.load(), 0);
    EXPECT_EQ(t.resumed_twice.load(), 0);
    EXPECT_EQ(t.overloaded.load(), 0);
    EXPECT_EQ(t.answered.load() + t.timed_out.load(), 600);
    EXPECT_EQ(t.answered.load() - t.answered_slow.load(), 540) << "every quick caller is answered";
    EXPECT_GT(t.timed_out.load(), 0) << "slow callers give up at their 1 ms deadline";
    EXPECT_TRUE(pool.up());
    pool.stop();
}

// A caller that gives up at once on a job that then runs for a while.
asio::awaitable<void> give_up_on_slow_job(store::db_pool& pool, std::atomic<int>& started,
                                          std::atomic<int>& finished, bool& timed_out) {
    try {
        co_await pool.run<int>(
            [&started, &finished](pqxx::connection_base&) {
                started.fetch_add(1);
                std::this_thread::sleep_for(std::chrono::milliseconds(200));
                finished.fetch_add(1);
                return 1;
            },
            steady_clock::now() + std::chrono::milliseconds(20));
    } catch (const store::deadline_exceeded&) {
        timed_out = true;
    }
}

TEST(DbPool, ACallersLoopRunsUntilWorkItGaveUpOnHasFinished) {
    scratch_database db;
    store::db_pool pool(db.url(), 1, 8);
    std::atomic<int> started{0};
    std::atomic<int> finished{0};
    bool timed_out = false;
    {
        asio::io_context io;
        asio::co_spawn(io, give_up_on_slow_job(pool, started, finished, timed_out), asio::detached);
        io.run();
        EXPECT_TRUE(timed_out);
        // Had run() returned here with the job still running, its answer would be posted to a destroyed loop.
        EXPECT_EQ(started.load(), finished.load()) << "the loop's run() returned while its job still ran";
    }
    pool.stop();
}

TEST(DbPool, AFullQueueRefusesAtOnceAndEveryCallerIsResumedOnce) {
    scratch_database db;
    store::db_pool pool(db.url(), 1, 8);  // one worker, eight queued: most of the 400 are refused
    tally t;
    ask_from_two_loops(pool, 200, t);
    EXPECT_EQ(t.wrong.load(), 0);
    EXPECT_EQ(t.resumed_twice.load(), 0);
    EXPECT_EQ(t.answered.load() + t.timed_out.load() + t.overloaded.load(), 400);
    EXPECT_GT(t.overloaded.load(), 0);
    EXPECT_GT(t.answered.load(), 0);
}

TEST(DbPool, StopFinishesQueuedJobsAndRefusesLaterOnes) {
    scratch_database db;
    store::db_pool pool(db.url(), 2, 1000);
    std::atomic<int> ran{0};
    std::atomic<int> refused{0};
    std::vector<std::thread> posters;
    for (int p = 0; p < 2; ++p) {
        posters.emplace_back([&] {
            for (int i = 0; i < 100; ++i)
                pool.post([&ran](pqxx::connection_base& conn) {
                    select_number(conn, 1, false);
                    ran.fetch_add(1);
                });
        });
    }
    for (auto& th : posters) th.join();
    pool.stop();
    EXPECT_EQ(ran.load(), 200) << "every job queued before stop runs";
    pool.post([&ran](pqxx::connection_base&) { ran.fetch_add(1); },
              [&refused](std::exception_ptr) { refused.fetch_add(1); });
    EXPECT_EQ(refused.load(), 1);
    EXPECT_EQ(ran.load(), 200);
    pool.stop();  // idempotent
}

// What the API answers "retry later" (503) for: the database's own errors, and only those; anything else
// a job throws is a fault of ours (500, counted).
TEST(DbPool, OnlyTheDatabasesOwnErrorsAreDatabaseErrors) {
    scratch_database db;
    store::db_pool pool(db.url(), 1, 10);
    const auto thrown_by = [&pool](std::function<void(pqxx::connection_base&)> job) -> std::exception_ptr {
        asio::io_context io;
        auto done = asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                co_await pool.run<bool>([&job](pqxx::connection_base& c) {
                    job(c);
                    return true;
                });
            },
            asio::use_future);
        io.run();
        try {
            done.get();
        } catch (...) {
            return std::current_exception();
        }
        return nullptr;
    };
    const auto is_database_error = [](std::exception_ptr e) {
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            return store::is_database_error(x);
        }
    };
    const auto refused =
        thrown_by([](pqxx::connection_base& c) { pqxx::nontransaction(c).exec("SELECT 1 / 0"); });
    ASSERT_TRUE(refused);
    EXPECT_TRUE(is_database_error(refused));
    const auto ours = thrown_by([](pqxx::connection_base&) { throw std::logic_error("a fault of ours"); });
    ASSERT_TRUE(ours);
    EXPECT_FALSE(is_database_error(ours));
    EXPECT_TRUE(store::is_database_error(store::database_unavailable("down")));
    EXPECT_TRUE(store::is_database_error(store::database_overloaded("full")));
    EXPECT_TRUE(store::is_database_error(store::deadline_exceeded("slow")));
    EXPECT_FALSE(store::is_database_error(std::runtime_error("elsewhere")));
}

}  // namespace
}  // namespace wxrecon::testing
