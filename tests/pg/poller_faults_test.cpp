// The poller when WeChat Pay misbehaves, against wxpay-sim and a real
// PostgreSQL: rate limits and server errors are backed off (and recorded on
// the row), the per-merchant rate and the concurrency limit hold, a restart
// keeps the schedule, money after a close is flagged, stale and regressing
// answers never move an order backwards, and both outcomes of a close land
// where docs/interfaces.md §9.4 puts them.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "base/time.hpp"
#include "domain/facts.hpp"
#include "sim_env.hpp"
#include "store/ledger.hpp"
#include "store/migrations.hpp"
#include "test_env.hpp"

namespace wxrecon::testing {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// A poller section: queries at the given delays after creation, then every interval; the close 200 ms after
// expiry. Everything else as the tests need it.
std::string poller_toml(const std::string& delays, const std::string& interval, int concurrency = 16,
                        int rate = 200) {
    return "[poller]\ndelays = [" + delays + "]\ninterval_after = \"" + interval +
           "\"\nclose_after_expire = \"200ms\"\nconcurrency = " + std::to_string(concurrency) +
           "\nrate_per_second = " + std::to_string(rate) + "\n";
}

// One merchant API call as the simulator logged it (times in ms since the simulator started).
struct sim_call {
    std::string mchid, api, order;
    bool close = false;
    std::int64_t start = 0, end = -1;  // end -1: still unanswered
    std::int64_t status = 0;
};

std::vector<sim_call> sim_calls(unsigned short sim_port) {
    const auto r = http_get(sim_port, "/sim/calls");
    simdjson::dom::parser parser;
    const simdjson::padded_string text(r.body);
    const auto doc = parser.parse(text);
    std::vector<sim_call> out;
    for (auto c : doc["calls"].get_array()) {
        // v3 "GET /v3/pay/transactions/out-trade-no/X" or "POST …/out-trade-no/X/close";
        // v2 "/pay/orderquery X" or "/pay/closeorder X".
        std::string what{std::string_view(c["call"])};
        if (what.find("/v3/certificates") != std::string::npos)
            continue;  // the certificate refresher, not the poller
        sim_call call;
        if (what.starts_with("/pay/")) {
            call.close = what.starts_with("/pay/closeorder");
            call.order = what.substr(what.find(' ') + 1);
        } else {
            if (what.ends_with("/close")) {
                call.close = true;
                what.resize(what.size() - 6);
            }
            call.order = what.substr(what.rfind('/') + 1);
        }
        call.mchid = std::string(std::string_view(c["mchid"]));
        call.api = std::string(std::string_view(c["api"]));
        call.start = int64_t(c["start_ms"]);
        call.end = int64_t(c["end_ms"]);
        call.status = int64_t(c["status"]);
        out.push_back(std::move(call));
    }
    return out;
}

// The calls by "mchid/out_trade_no", oldest first.
std::map<std::string, std::vector<sim_call>> by_order(const std::vector<sim_call>& calls) {
    std::map<std::string, std::vector<sim_call>> out;
    for (const auto& c : calls) out[c.mchid + "/" + c.order].push_back(c);
    for (auto& [order, list] : out)
        std::sort(list.begin(), list.end(),
                  [](const sim_call& a, const sim_call& b) { return a.start < b.start; });
    return out;
}

// The value of one series on the daemon's /metrics (0 when it was never counted).
long metric(unsigned short admin_port, const std::string& series) {
    const std::string body = http_get(admin_port, "/metrics").body;
    const std::string prefix = series + " ";
    for (std::size_t pos = 0; pos < body.size();) {
        const std::size_t eol = std::min(body.find('\n', pos), body.size());
        const std::string_view line(body.data() + pos, eol - pos);
        if (line.starts_with(prefix)) return std::stol(std::string(line.substr(prefix.size())));
        pos = eol + 1;
    }
    return 0;
}

std::string queries_total(const std::string& api, const std::string& result) {
    return "wxrecon_queries_total{api=\"" + api + "\",result=\"" + result + "\"}";
}

class PollerFaults : public ::testing::Test {
protected:
    void SetUp() override {
        pqxx::connection conn(db_.url());
        store::migrate(conn);  // orders are registered before the daemon starts
    }
    // Polls until done() holds or the limit passes; true when it held.
    static bool wait_for(const std::function<bool()>& done, steady::duration limit,
                         steady::duration every = 50ms) {
        const auto give_up = steady::now() + limit;
        while (!done()) {
            if (steady::now() >= give_up) return false;
            std::this_thread::sleep_for(every);
        }
        return true;
    }
    // Orders prefix1..prefixN for one merchant, in the ledger (expiring after expire_sql) and at WeChat Pay.
    void register_orders(unsigned short sim_port, const std::string& mchid, const std::string& prefix, int n,
                         const std::string& expire_sql = "1 hour") {
        db_.exec("INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, expire_at) SELECT '" +
                 mchid + "', '" + prefix + "' || g, 100, now() + interval '" + expire_sql +
                 "' FROM generate_series(1, " + std::to_string(n) + ") g");
        sim_control(sim_port, "/sim/orders",
                    R"({"mchid":")" + mchid + R"(","prefix":")" + prefix + R"(","count":)" +
                        std::to_string(n) + R"(,"amount":100,"notify_url":"http://127.0.0.1:9/lost"})");
    }
    scratch_database db_;
};

// ---------------------------------------------------------------- a. backoff

// Every query answered 429: each order is asked once and then left alone for 10-20 s (the rate-limit
// backoff), where the schedule would have asked it about every second; the error is on the row. Once the
// fault is gone the orders converge.
TEST_F(PollerFaults, RateLimitedQueriesAreBackedOff) {
    sim_key_dir keys(2);  // APIv3 and APIv2
    running_simulator sim(keys, {});
    for (const auto& m : keys.keys.merchants) {
        register_orders(sim.port(), m.mchid, "RATELIM-", 6);
        sim_control(sim.port(), "/sim/pay",
                    R"({"mchid":")" + m.mchid + R"(","prefix":"RATELIM-","count":3})");
    }
    sim_control(sim.port(), "/sim/faults", R"({"drop":1,"query_429":1})");
    running_daemon daemon(
        sim_daemon_config(keys, db_.url(), sim.port(), poller_toml("\"200ms\", \"500ms\"", "1s")));
    const auto started = steady::now();
    ASSERT_TRUE(wait_for(
        [&] { return db_.count("SELECT count(*) FROM wxrecon.orders WHERE last_poll_error IS NULL") == 0; },
        5s))
        << "every order was asked and refused";
    // The schedule would have asked each order 6 times in these 5 seconds.
    std::this_thread::sleep_until(started + 5s);
    const auto calls = by_order(sim_calls(sim.port()));
    ASSERT_EQ(calls.size(), 12u);
    for (const auto& [order, list] : calls) {
        EXPECT_EQ(list.size(), 1u) << order << ": asked again within the rate-limit backoff";
        EXPECT_EQ(list.front().status, 429) << order;
    }
    EXPECT_EQ(metric(daemon.admin_port(), queries_total("v3", "rate_limited")), 6);
    EXPECT_EQ(metric(daemon.admin_port(), queries_total("v2", "rate_limited")), 6);
    // The failed try is moved 10-20 s on (base plus jitter) and counts as no attempt.
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.orders WHERE next_poll_at - updated_at BETWEEN "
                        "interval '9.9 seconds'"
                        " AND interval '20.1 seconds' AND poll_attempts = 0 AND last_polled_at IS NULL"),
              12);

    sim_control(sim.port(), "/sim/faults", R"({"query_429":0})");
    // The backoff itself is checked above; pull the retry in rather than wait up to 20 s for it.
    db_.exec("UPDATE wxrecon.orders SET next_poll_at = now()");
    ASSERT_TRUE(wait_for(
        [&] {
            return db_.count(
                       "SELECT count(*) FROM wxrecon.orders WHERE state = 'SUCCESS' AND state_source = "
                       "'query'") == 6 &&
                   db_.count(
                       "SELECT count(*) FROM wxrecon.orders WHERE last_poll_error IS NOT NULL OR "
                       "poll_attempts = 0") == 0;
        },
        10s))
        << "orders did not converge after the rate limit was lifted";
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.orders WHERE state = 'NOTPAY'"), 6);
    EXPECT_EQ(
        db_.count("SELECT count(*) FROM wxrecon.payment_events WHERE source IN ('query_v3', 'query_v2')"), 6);
}

// Every query answered 500: the try is moved 3-6 s on, not to the schedule's next second; once the errors
// stop, the retries find the paid orders SUCCESS by query without further help.
TEST_F(PollerFaults, ServerErrorsAreBackedOffAndOrdersConverge) {
    sim_key_dir keys(2);
    running_simulator sim(keys, {});
    for (const auto& m : keys.keys.merchants) {
        register_orders(sim.port(), m.mchid, "SERVERR-", 6);
        sim_control(sim.port(), "/sim/pay",
                    R"({"mchid":")" + m.mchid + R"(","prefix":"SERVERR-","count":3})");
    }
    sim_control(sim.port(), "/sim/faults", R"({"drop":1,"query_500":1})");
    running_daemon daemon(
        sim_daemon_config(keys, db_.url(), sim.port(), poller_toml("\"200ms\", \"500ms\"", "1s")));
    const auto started = steady::now();
    ASSERT_TRUE(wait_for(
        [&] { return db_.count("SELECT count(*) FROM wxrecon.orders WHERE last_poll_error IS NULL") == 0; },
        2500ms))
        << "every order was asked and answered 500";
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.orders WHERE next_poll_at - updated_at BETWEEN "
                        "interval '2.9 seconds'"
                        " AND interval '6.1 seconds' AND poll_attempts = 0 AND last_polled_at IS NULL"),
              12);
    EXPECT_EQ(metric(daemon.admin_port(), queries_total("v3", "server_error")), 6);
    EXPECT_EQ(metric(daemon.admin_port(), queries_total("v2", "server_error")), 6);
    // Lifted before any retry is due (3 s after the first answers at the earliest), so that the retries are
    // what settles the orders. (Waiting much longer would also run into the simulator closing idle
    // keep-alive connections after 10 s; see the keep-alive test below.)
    std::this_thread::sleep_until(started + 2800ms);
    sim_control(sim.port(), "/sim/faults", R"({"query_500":0})");
    ASSERT_TRUE(wait_for(
        [&] {
            return db_.count(
                       "SELECT count(*) FROM wxrecon.orders WHERE state = 'SUCCESS' AND state_source = "
                       "'query'") == 6 &&
                   db_.count(
                       "SELECT count(*) FROM wxrecon.orders WHERE last_poll_error IS NOT NULL OR "
                       "poll_attempts = 0") == 0;
        },
        8s))
        << "orders did not converge after the server errors stopped";
    // Per order: the refused query, then nothing for 3 s (the schedule would have asked 3 more times), then
    // the retry that was answered.
    const auto calls = by_order(sim_calls(sim.port()));
    ASSERT_EQ(calls.size(), 12u);
    for (const auto& [order, list] : calls) {
        ASSERT_GE(list.size(), 2u) << order;
        if (list[0].api == "v3") {  // APIv2 says SYSTEMERROR inside an HTTP 200
            EXPECT_EQ(list[0].status, 500) << order;
            EXPECT_EQ(list[1].status, 200) << order;
        }
        ASSERT_GE(list[0].end, 0) << order;
        EXPECT_GE(list[1].start - list[0].end, 2900) << order << ": retried before the backoff ran out";
    }
    const auto t = sim_truth(sim.port());
    pqxx::connection conn(db_.url());
    pqxx::nontransaction tx(conn);
    for (const auto& row : tx.exec("SELECT mchid || '/' || out_trade_no, state, coalesce(transaction_id, '')"
                                   " FROM wxrecon.orders")) {
        const auto& w = t.at(row[0].as<std::string>());
        EXPECT_EQ(row[1].as<std::string>(), w.trade_state) << row[0].as<std::string>();
        EXPECT_EQ(row[2].as<std::string>(), w.transaction_id) << row[0].as<std::string>();
    }
}

// An order wxrecon registered but never placed is closed locally when WeChat Pay says it does not exist,
// and only then: a 404 page from a proxy in front, or an ORDER_NOT_EXIST without WeChat Pay's signature,
// is a failed query (retried), never a reason to close.
TEST_F(PollerFaults, OnlyASignedOrderNotExistClosesAnOrderLocally) {
    sim_key_dir keys(1);
    running_simulator sim(keys, {});
    const std::string mchid = keys.keys.merchants[0].mchid;
    db_.exec("INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, expire_at) VALUES ('" + mchid +
             "', 'NEVER-PLACED', 100, now() + interval '300 milliseconds')");
    sim_control(sim.port(), "/sim/faults", R"({"query_404_proxy":1})");
    running_daemon daemon(sim_daemon_config(keys, db_.url(), sim.port(), poller_toml("\"200ms\"", "1s")));
    const auto state = [&] { return db_.scalar("SELECT state FROM wxrecon.orders"); };
    ASSERT_TRUE(
        wait_for([&] { return metric(daemon.admin_port(), queries_total("v3", "server_error")) >= 1; }, 3s));
    EXPECT_EQ(state(), "NOTPAY") << "a proxy's 404 closed the order";
    EXPECT_EQ(db_.scalar("SELECT last_poll_error FROM wxrecon.orders"), "HTTP 404");

    sim_control(sim.port(), "/sim/faults", R"({"query_404_proxy":0,"unsigned_errors":1})");
    ASSERT_TRUE(wait_for(
        [&] {
            const auto error = db_.scalar("SELECT last_poll_error FROM wxrecon.orders");
            return error.find("ORDER_NOT_EXIST") != std::string::npos ||
                   error.find("ORDERNOTEXIST") != std::string::npos;  // the simulator's older spelling
        },
        8s));
    EXPECT_EQ(state(), "NOTPAY") << "an unsigned ORDER_NOT_EXIST closed the order";

    sim_control(sim.port(), "/sim/faults", R"({"unsigned_errors":0})");
    ASSERT_TRUE(wait_for([&] { return state() == "CLOSED"; }, 10s)) << "the signed answer did not close it";
    EXPECT_EQ(metric(daemon.admin_port(), queries_total("v3", "not_found")), 1);
}

// A number stored by hand, not through the API, cannot steer a query: the schema refuses what WeChat
// Pay would (6 to 32 of [0-9A-Za-z_-|*]), and should that constraint be dropped, the number still goes out
// as one percent-encoded path segment, whatever it holds.
TEST_F(PollerFaults, AnOrderNumberStoredByHandStaysOneEncodedPathSegment) {
    sim_key_dir keys(1);
    running_simulator sim(keys, {});
    const std::string mchid = keys.keys.merchants[0].mchid;
    const auto insert = [&](const std::string& out_trade_no) {
        db_.exec("INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total) VALUES ('" + mchid + "', '" +
                 out_trade_no + "', 100)");
    };
    for (const std::string& bad : std::vector<std::string>{"EVIL/../../v3/x?y#z", "SHORT", "WITH SPACE1",
                                                           "LINE\nBREAK1", std::string(33, 'A')})
        EXPECT_THROW(insert(bad), std::exception) << "the schema took " << bad;
    EXPECT_NO_THROW(insert("Ok_-|*12"));
    db_.exec("ALTER TABLE wxrecon.orders DROP CONSTRAINT orders_out_trade_no_wechat");
    insert("EVIL/../../v3/x?y#z");
    running_daemon daemon(sim_daemon_config(keys, db_.url(), sim.port(), poller_toml("\"200ms\"", "1h")));
    const std::string sent = "/v3/pay/transactions/out-trade-no/EVIL%2F..%2F..%2Fv3%2Fx%3Fy%23z";
    std::string log;
    ASSERT_TRUE(wait_for(
        [&] {
            log = http_get(sim.port(), "/sim/calls").body;
            return log.find(sent) != std::string::npos;
        },
        5s))
        << log;
    EXPECT_EQ(log.find("/v3/x"), std::string::npos) << "the number left its segment: " << log;
}

// An answer that cannot be applied (here the database refuses every payment event): the poll finishes its
// lease with the error instead of leaving it to run out, waits a minute before the next try, and the order,
// failing since it was created an hour ago, is `stuck` at once.
TEST_F(PollerFaults, APollWhoseApplyFailsFinishesItsLeaseAndCountsTowardStuck) {
    sim_key_dir keys(1);
    running_simulator sim(keys, {});
    const std::string mchid = keys.keys.merchants[0].mchid;
    register_orders(sim.port(), mchid, "APPLYFAILS", 1);
    db_.exec("UPDATE wxrecon.orders SET created_at = now() - interval '1 hour'");
    sim_control(sim.port(), "/sim/pay", R"({"mchid":")" + mchid + R"(","out_trade_no":"APPLYFAILS1"})");
    db_.exec(
        "CREATE FUNCTION public.refuse_events() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;"
        "CREATE TRIGGER refuse_events BEFORE INSERT ON wxrecon.payment_events "
        "FOR EACH ROW EXECUTE FUNCTION public.refuse_events()");
    running_daemon daemon(sim_daemon_config(
        keys, db_.url(), sim.port(), poller_toml("\"200ms\"", "1s") + "[alerts]\nstuck_after = \"1s\"\n"));
    ASSERT_TRUE(wait_for(
        [&] { return db_.scalar("SELECT last_poll_error FROM wxrecon.orders").starts_with("poll failed: "); },
        10s))
        << db_.scalar("SELECT last_poll_error FROM wxrecon.orders");
    EXPECT_EQ(db_.scalar("SELECT poll_lease_owner IS NULL FROM wxrecon.orders"), "t")
        << "the lease was left to run out";
    EXPECT_EQ(db_.scalar("SELECT next_poll_at > now() + interval '50 seconds' FROM wxrecon.orders"), "t");
    EXPECT_EQ(db_.scalar("SELECT state FROM wxrecon.orders"), "NOTPAY");
    EXPECT_EQ(
        db_.scalar("SELECT count(*) FROM wxrecon.discrepancies WHERE kind = 'stuck' AND resolved_at IS NULL"),
        "1");
}

// Answers slower than poller.request_timeout: the try counts as a timeout, the order's error records it and
// the next try waits out the backoff (3-6 s), where the schedule would ask every second; once WeChat Pay
// answers in time again, the paid orders are SUCCESS by query.
TEST_F(PollerFaults, TimedOutQueriesAreBackedOff) {
    sim_key_dir keys(1);
    running_simulator sim(keys, {});
    const std::string mchid = keys.keys.merchants[0].mchid;
    register_orders(sim.port(), mchid, "TIMEOUT-", 4);
    sim_control(sim.port(), "/sim/pay", R"({"mchid":")" + mchid + R"(","prefix":"TIMEOUT-","count":2})");
    sim_control(sim.port(), "/sim/faults", R"({"drop":1,"query_slow":1,"slow_ms":1500})");
    running_daemon daemon(
        sim_daemon_config(keys, db_.url(), sim.port(),
                          poller_toml("\"200ms\", \"500ms\"", "1s") + "request_timeout = \"300ms\"\n"));
    const auto started = steady::now();
    ASSERT_TRUE(wait_for(
        [&] { return db_.count("SELECT count(*) FROM wxrecon.orders WHERE last_poll_error IS NULL") == 0; },
        3s))
        << "every order was asked and timed out";
    EXPECT_EQ(
        db_.count("SELECT count(*) FROM wxrecon.orders WHERE next_poll_at - updated_at BETWEEN interval '2.9 "
                  "seconds'"
                  " AND interval '6.1 seconds' AND poll_attempts = 0 AND last_poll_error LIKE '%in time%'"),
        4);
    EXPECT_EQ(metric(daemon.admin_port(), queries_total("v3", "timeout")), 4);
    std::this_thread::sleep_until(started + 2500ms);
    sim_control(sim.port(), "/sim/faults", R"({"query_slow":0})");
    ASSERT_TRUE(wait_for(
        [&] {
            return db_.count(
                       "SELECT count(*) FROM wxrecon.orders WHERE state = 'SUCCESS' AND state_source = "
                       "'query'") == 2 &&
                   db_.count(
                       "SELECT count(*) FROM wxrecon.orders WHERE last_poll_error IS NOT NULL OR "
                       "poll_attempts = 0") == 0;
        },
        10s))
        << "orders did not converge once the answers came in time";
    EXPECT_EQ(metric(daemon.admin_port(), queries_total("v3", "timeout")), 4)
        << "no try in between: backed off";
}

// Four slow queries at once leave four keep-alive connections in the client's pool; the simulator closes
// them after 10 s idle (its read timeout), as any server does. The next query must still be answered.
// (The client used to retry on the next idle connection, closed as well, and fail the query.)
TEST_F(PollerFaults, QueryAfterIdleKeepAliveConnectionsWereClosedIsAnswered) {
    sim_key_dir keys(1);
    running_simulator sim(keys, {});
    const std::string mchid = keys.keys.merchants[0].mchid;
    register_orders(sim.port(), mchid, "WARMUP-", 4);
    // Created 11 s from now, so its first query comes after the pooled connections were closed.
    db_.exec(
        "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, created_at, expire_at) VALUES ('" +
        mchid + "', 'LATECOMER-1', 100, now() + interval '11 seconds', now() + interval '1 hour')");
    sim_control(sim.port(), "/sim/orders",
                R"({"mchid":")" + mchid +
                    R"(","out_trade_no":"LATECOMER-1","amount":100,"notify_url":"http://127.0.0.1:9/x"})");
    sim_control(sim.port(), "/sim/faults", R"({"drop":1,"query_slow":1,"slow_ms":300})");
    running_daemon daemon(sim_daemon_config(keys, db_.url(), sim.port(), poller_toml("\"200ms\"", "1h")));
    ASSERT_TRUE(wait_for(
        [&] {
            return db_.count(
                       "SELECT count(*) FROM wxrecon.orders WHERE out_trade_no = 'LATECOMER-1' AND"
                       " (poll_attempts > 0 OR last_poll_error IS NOT NULL) AND poll_lease_owner IS NULL") ==
                   1;
        },
        16s));
    EXPECT_EQ(db_.scalar("SELECT coalesce(last_poll_error, 'none') FROM wxrecon.orders WHERE out_trade_no = "
                         "'LATECOMER-1'"),
              "none");
    EXPECT_EQ(metric(daemon.admin_port(), queries_total("v3", "error")), 0);
}

// ---------------------------------------------------------------- b. rate and concurrency

// 40 orders due at once for one merchant at rate_per_second = 5: a second's burst of 5, then never more than
// 5 calls a second.
TEST_F(PollerFaults, CallsStayWithinTheMerchantRate) {
    sim_key_dir keys(1);
    running_simulator sim(keys, {});
    const std::string mchid = keys.keys.merchants[0].mchid;
    register_orders(sim.port(), mchid, "RATE-", 40);
    sim_control(sim.port(), "/sim/faults", R"({"drop":1})");
    running_daemon daemon(
        sim_daemon_config(keys, db_.url(), sim.port(), poller_toml("\"200ms\", \"500ms\"", "1s", 16, 5)));
    const auto started = steady::now();
    std::this_thread::sleep_until(started + 5s);
    auto calls = sim_calls(sim.port());
    std::sort(calls.begin(), calls.end(),
              [](const sim_call& a, const sim_call& b) { return a.start < b.start; });
    // 40 orders with queries due every second want far more than 5 a second: the limiter is what holds them.
    ASSERT_GE(calls.size(), 15u);
    EXPECT_LE(calls.size(), 5u + 5u * 5u + 1u);
    const std::int64_t first = calls.front().start;
    // Up to any call: at most the burst plus what the rate refilled since the first (+1 for the jitter
    // between the daemon taking a token and the simulator seeing the request).
    for (std::size_t k = 0; k < calls.size(); ++k) {
        const double allowed = 5 + 5 * double(calls[k].start - first) / 1000 + 1;
        EXPECT_LE(double(k + 1), allowed) << "call " << k << " at +" << calls[k].start - first << " ms";
    }
    // After the first second: at most 5 (+1 jitter) in any one-second window.
    for (std::size_t i = 0; i < calls.size(); ++i) {
        if (calls[i].start < first + 1000) continue;
        std::size_t n = 0;
        for (std::size_t j = i; j < calls.size() && calls[j].start < calls[i].start + 1000; ++j) ++n;
        EXPECT_LE(n, 6u) << "window from +" << calls[i].start - first << " ms";
    }
}

// concurrency = 2 with every call slowed to 300 ms: never more than two calls in flight at once.
TEST_F(PollerFaults, InFlightCallsStayWithinConcurrency) {
    sim_key_dir keys(1);
    running_simulator sim(keys, {});
    const std::string mchid = keys.keys.merchants[0].mchid;
    register_orders(sim.port(), mchid, "CONCUR-", 20);
    sim_control(sim.port(), "/sim/faults", R"({"drop":1,"query_slow":1,"slow_ms":300})");
    running_daemon daemon(
        sim_daemon_config(keys, db_.url(), sim.port(), poller_toml("\"200ms\", \"500ms\"", "1s", 2, 200)));
    std::this_thread::sleep_for(4s);
    const auto calls = sim_calls(sim.port());
    ASSERT_GE(calls.size(), 8u);
    // Sweep over starts and ends; an end and a start in the same millisecond are not an overlap (the daemon
    // frees the slot only after the answer).
    std::vector<std::pair<std::int64_t, int>> edges;
    for (const auto& c : calls) {
        edges.push_back({c.start, +1});
        edges.push_back({c.end < 0 ? std::numeric_limits<std::int64_t>::max() : c.end, -1});
    }
    std::sort(edges.begin(), edges.end());  // -1 before +1 at the same time
    int in_flight = 0, most = 0;
    for (const auto& [at, delta] : edges) {
        in_flight += delta;
        most = std::max(most, in_flight);
    }
    EXPECT_LE(most, 2) << "more calls in flight than poller.concurrency";
    EXPECT_EQ(most, 2) << "the two slots were never used together";
}

// ---------------------------------------------------------------- c. restart

// The first daemon does each order's first query and stops; the orders are paid meanwhile with every
// notification lost. A new daemon on the same database picks up the schedule where it was: the second
// query comes when it is due (not at start), paid orders end SUCCESS by query, and nothing is asked twice.
TEST_F(PollerFaults, RestartMidScheduleKeepsTheSchedule) {
    sim_key_dir keys(1);
    running_simulator sim(keys, {});
    const std::string mchid = keys.keys.merchants[0].mchid;
    sim_control(sim.port(), "/sim/faults", R"({"drop":1})");
    register_orders(sim.port(), mchid, "RESTART-", 10);
    const std::string toml = poller_toml("\"300ms\", \"4s\"", "1h");
    {
        running_daemon first(sim_daemon_config(keys, db_.url(), sim.port(), toml));
        ASSERT_TRUE(wait_for(
            [&] {
                return db_.count(
                           "SELECT count(*) FROM wxrecon.orders WHERE poll_attempts = 1 AND poll_lease_owner "
                           "IS NULL") == 10;
            },
            5s));
    }
    EXPECT_EQ(sim_calls(sim.port()).size(), 10u);
    // How long after its creation each order's first query was answered: the first daemon may start late
    // (under a sanitizer, by half a second), and the second query is due 4 s after creation, not after the
    // first query.
    std::map<std::string, long> first_answer_ms;  // by "mchid/out_trade_no", as by_order names them
    for (int i = 1; i <= 10; ++i) {
        const std::string order = "RESTART-" + std::to_string(i);
        first_answer_ms[mchid + "/" + order] = db_.count(
            "SELECT (extract(epoch FROM last_polled_at - created_at) * 1000)::bigint FROM wxrecon.orders "
            "WHERE out_trade_no = '" +
            order + "'");
    }
    sim_control(sim.port(), "/sim/pay", R"({"mchid":")" + mchid + R"(","prefix":"RESTART-","count":6})");
    running_daemon second(sim_daemon_config(keys, db_.url(), sim.port(), toml));
    ASSERT_TRUE(wait_for(
        [&] {
            return db_.count(
                       "SELECT count(*) FROM wxrecon.orders WHERE poll_attempts = 2 AND poll_lease_owner IS "
                       "NULL") == 10;
        },
        10s));
    std::this_thread::sleep_for(500ms);  // room for a query the schedule does not allow
    EXPECT_EQ(
        db_.count("SELECT count(*) FROM wxrecon.orders WHERE state = 'SUCCESS' AND state_source = 'query'"),
        6);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.orders WHERE state = 'NOTPAY' AND next_poll_at > now() "
                        "+ interval '30 minutes'"),
              4);
    for (const auto& [order, list] : by_order(sim_calls(sim.port()))) {
        ASSERT_EQ(list.size(), 2u) << order << ": the schedule allows two queries in this time";
        // The second query is due 4 s after creation; the first was sent before its answer was recorded.
        // 100 ms of slack for the two clocks (the simulator's, PostgreSQL's).
        ASSERT_TRUE(first_answer_ms.contains(order)) << order;
        EXPECT_GE(list[1].start - list[0].start, 4000 - first_answer_ms[order] - 100)
            << order << ": the second query came early";
    }
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events WHERE source = 'query_v3'"), 6);
}

// A restart after a downtime that spans several scheduled queries: the order is asked once when the new
// daemon finds it overdue, and then on the schedule again (every interval_after), not once per missed slot
// in a burst.
// (The poller used to set next_poll_at to the next numbered slot, in the past for every missed one, and
// made them up back to back: 4 queries within ~100 ms here.)
TEST_F(PollerFaults, MissedQueriesAreNotMadeUpInABurstAfterADowntime) {
    sim_key_dir keys(1);
    running_simulator sim(keys, {});
    const std::string mchid = keys.keys.merchants[0].mchid;
    sim_control(sim.port(), "/sim/faults", R"({"drop":1})");
    register_orders(sim.port(), mchid, "DOWNTIME-", 5);
    const std::string toml = poller_toml("\"300ms\"", "1s");
    {
        running_daemon first(sim_daemon_config(keys, db_.url(), sim.port(), toml));
        ASSERT_TRUE(wait_for(
            [&] {
                return db_.count(
                           "SELECT count(*) FROM wxrecon.orders WHERE poll_attempts = 1 AND poll_lease_owner "
                           "IS NULL") == 5;
            },
            5s));
    }
    const std::size_t before = sim_calls(sim.port()).size();
    std::this_thread::sleep_for(4s);  // the queries due 1.3, 2.3, 3.3 and 4.3 s after creation are missed
    running_daemon second(sim_daemon_config(keys, db_.url(), sim.port(), toml));
    std::this_thread::sleep_for(2500ms);
    auto calls = sim_calls(sim.port());
    calls.erase(calls.begin(), calls.begin() + static_cast<std::ptrdiff_t>(before));
    const auto after = by_order(calls);
    ASSERT_EQ(after.size(), 5u) << "every overdue order was asked";
    for (const auto& [order, list] : after) {
        EXPECT_LE(list.size(), 3u) << order << ": now, then at most twice more, at least half a second apart";
        for (std::size_t i = 1; i < list.size(); ++i)
            EXPECT_GE(list[i].start - list[i - 1].start, 450)
                << order << ": query " << i << " right after the one before";
    }
}

// ---------------------------------------------------------------- d. paid_after_close

// An order WeChat had never heard of is closed locally after expiry; then it is placed and paid after all
// and the notification arrives: the money is recorded on the closed order and paid_after_close is opened.
TEST_F(PollerFaults, PaymentAfterTheCloseOpensPaidAfterClose) {
    sim_key_dir keys(1);
    running_simulator sim(keys, {});
    const std::string mchid = keys.keys.merchants[0].mchid;
    db_.exec("INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, expire_at) VALUES ('" + mchid +
             "', 'PAIDCLOSED-1', 100, now() + interval '1 second')");
    running_daemon daemon(
        sim_daemon_config(keys, db_.url(), sim.port(), poller_toml("\"200ms\", \"500ms\"", "1s")));
    ASSERT_TRUE(wait_for(
        [&] { return db_.count("SELECT count(*) FROM wxrecon.orders WHERE state = 'CLOSED'") == 1; }, 10s));
    EXPECT_EQ(db_.scalar("SELECT state_source || ' / ' || state_desc FROM wxrecon.orders"),
              "close / never placed at WeChat Pay");

    sim_control(sim.port(), "/sim/orders",
                R"({"mchid":")" + mchid +
                    R"(","out_trade_no":"PAIDCLOSED-1","amount":100,"notify_url":"http://127.0.0.1:)" +
                    std::to_string(daemon.port()) + "/wxpay/v3/notify/" + mchid + "\"}");
    sim_control(sim.port(), "/sim/pay", R"({"mchid":")" + mchid + R"(","out_trade_no":"PAIDCLOSED-1"})");
    ASSERT_TRUE(wait_for([&] { return db_.count("SELECT count(*) FROM wxrecon.discrepancies") > 0; }, 10s));
    const auto t = sim_truth(sim.port()).at(mchid + "/PAIDCLOSED-1");
    EXPECT_EQ(
        db_.count("SELECT count(*) FROM wxrecon.discrepancies WHERE kind = 'paid_after_close' AND "
                  "resolved_at IS NULL"
                  " AND detail->>'reported_state' = 'SUCCESS' AND detail->>'recorded_state' = 'CLOSED'"),
        1);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.discrepancies"), 1);
    // The state stays what was recorded; the payment is on the row and in the log.
    EXPECT_EQ(db_.scalar("SELECT state FROM wxrecon.orders"), "CLOSED");
    EXPECT_EQ(db_.scalar("SELECT transaction_id FROM wxrecon.orders"), t.transaction_id);
    EXPECT_EQ(db_.scalar("SELECT payer_total FROM wxrecon.orders"), "100");
    EXPECT_EQ(
        db_.count(
            "SELECT count(*) FROM wxrecon.orders WHERE notified_at IS NOT NULL AND next_poll_at IS NULL"),
        1);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events WHERE source = 'notify_v3' AND "
                        "trade_state = 'SUCCESS'"
                        " AND transaction_id = '" +
                        t.transaction_id + "'"),
              1);
    for (const auto& c : sim_calls(sim.port()))
        EXPECT_FALSE(c.close) << "closed locally, never at WeChat Pay";
}

// ---------------------------------------------------------------- e. stale and newer answers

// A notification-like fact, as notify_intake builds it.
domain::fact notified_payment(const std::string& mchid, const std::string& out_trade_no,
                              const std::string& txid) {
    domain::payment_fact p;
    p.out_trade_no = out_trade_no;
    p.state = domain::trade_state::success;
    p.transaction_id = txid;
    p.amount_total = 100;
    p.payer_total = 100;
    p.success_time = system_micros();
    domain::fact f;
    f.mchid = mchid;
    f.source = domain::fact_source::notify_v3;
    f.event_type = "TRANSACTION.SUCCESS";
    f.notify_id = "EV-" + txid;
    f.observed_at = system_micros();
    f.occurred_at = p.success_time;
    f.payload_json = "{\"out_trade_no\":\"" + out_trade_no + "\"}";
    f.raw_body = "{}";
    f.raw_headers_json = "{}";
    f.body = p;
    return f;
}

domain::fact queried_notpay(const std::string& mchid, const std::string& out_trade_no,
                            domain::micros sent_at) {
    domain::payment_fact p;
    p.out_trade_no = out_trade_no;
    p.state = domain::trade_state::notpay;
    domain::fact f;
    f.mchid = mchid;
    f.source = domain::fact_source::query_v3;
    f.event_type = "QUERY";
    f.observed_at = sent_at;
    f.occurred_at = sent_at;
    f.payload_json = "{\"out_trade_no\":\"" + out_trade_no + "\",\"trade_state\":\"NOTPAY\"}";
    f.body = p;
    return f;
}

store::apply_result apply_one(const std::string& url, const domain::fact& f) {
    pqxx::connection conn(url);
    store::prepare_ledger_connection(conn);
    return store::apply_batch(conn, {&f}).at(0);
}

// The payment is recorded while a query (sent before it) is in flight; the query's NOTPAY arrives after:
// it is stale — counted, dropped, no discrepancy, the order stays paid.
TEST_F(PollerFaults, QueryAnswerOlderThanTheRowIsStale) {
    sim_key_dir keys(1);
    running_simulator sim(keys, {});
    const std::string mchid = keys.keys.merchants[0].mchid;
    register_orders(sim.port(), mchid, "STALEANS-", 1);
    sim_control(sim.port(), "/sim/faults", R"({"drop":1,"query_slow":1,"slow_ms":1500})");
    running_daemon daemon(sim_daemon_config(keys, db_.url(), sim.port(), poller_toml("\"200ms\"", "1h")));
    ASSERT_TRUE(wait_for(
        [&] {
            const auto calls = sim_calls(sim.port());
            return !calls.empty() && calls.front().end < 0;
        },
        5s, 10ms))
        << "the query never went out";
    // WeChat Pay has already answered NOTPAY for this query (the simulator holds the answer back); the
    // payment arrives by another way meanwhile.
    EXPECT_EQ(apply_one(db_.url(), notified_payment(mchid, "STALEANS-1", "T-STALEANS-1")).outcome,
              domain::outcome::applied);
    ASSERT_TRUE(wait_for(
        [&] {
            return db_.count(
                       "SELECT count(*) FROM wxrecon.orders WHERE poll_attempts = 1 AND poll_lease_owner IS "
                       "NULL") == 1;
        },
        5s));
    EXPECT_EQ(metric(daemon.admin_port(), queries_total("v3", "stale")), 1);
    EXPECT_EQ(db_.scalar("SELECT state || ' ' || state_source || ' ' || transaction_id FROM wxrecon.orders"),
              "SUCCESS notify T-STALEANS-1");
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.discrepancies"), 0);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events WHERE source = 'query_v3'"), 0);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.orders WHERE next_poll_at IS NULL"), 1)
        << "nothing left to ask";
}

// USERPAYING is on record (from some source) before the query is sent, and WeChat Pay then says NOTPAY: a
// newer observation of an older state. The order keeps USERPAYING and state_regression is opened.
TEST_F(PollerFaults, NewerNotpayForAUserpayingOrderOpensStateRegression) {
    sim_key_dir keys(1);
    running_simulator sim(keys, {});
    const std::string mchid = keys.keys.merchants[0].mchid;
    db_.exec("INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, state, expire_at) VALUES ('" +
             mchid + "', 'REGRESS-1', 100, 'USERPAYING', now() + interval '1 hour')");
    sim_control(sim.port(), "/sim/orders",
                R"({"mchid":")" + mchid +
                    R"(","out_trade_no":"REGRESS-1","amount":100,"notify_url":"http://127.0.0.1:9/x"})");
    running_daemon daemon(sim_daemon_config(keys, db_.url(), sim.port(), poller_toml("\"200ms\"", "1h")));
    ASSERT_TRUE(wait_for(
        [&] {
            return db_.count(
                       "SELECT count(*) FROM wxrecon.orders WHERE poll_attempts = 1 AND poll_lease_owner IS "
                       "NULL") == 1;
        },
        5s));
    EXPECT_EQ(
        db_.count("SELECT count(*) FROM wxrecon.discrepancies WHERE kind = 'state_regression' AND "
                  "resolved_at IS NULL"
                  " AND detail->>'reported_state' = 'NOTPAY' AND detail->>'recorded_state' = 'USERPAYING'"),
        1);
    EXPECT_EQ(db_.scalar("SELECT state || ' ' || state_source FROM wxrecon.orders"), "USERPAYING register");
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events"), 0) << "a regression is not applied";
    EXPECT_EQ(metric(daemon.admin_port(), queries_total("v3", "stale")), 0);
}

// A query that waited for the merchant's rate: its answer is what WeChat Pay said when it was really sent.
// Four orders due at once at rate_per_second = 1 go out a second apart; USERPAYING is recorded for the
// three still waiting. Their NOTPAY answers come from queries sent after that record: newer observations
// of an older state, so state_regression, not stale.
// (The poller used to take the send time before waiting for the rate, so these answers were counted stale.)
TEST_F(PollerFaults, AnswerOfAQueryThatWaitedForTheRateIsNotStale) {
    sim_key_dir keys(1);
    running_simulator sim(keys, {});
    const std::string mchid = keys.keys.merchants[0].mchid;
    register_orders(sim.port(), mchid, "TOKWAIT-", 4);
    sim_control(sim.port(), "/sim/faults", R"({"drop":1})");
    running_daemon daemon(
        sim_daemon_config(keys, db_.url(), sim.port(), poller_toml("\"200ms\"", "1h", 16, 1)));
    std::vector<sim_call> first;
    ASSERT_TRUE(wait_for([&] { return !(first = sim_calls(sim.port())).empty(); }, 5s, 5ms));
    std::vector<std::string> waiting;
    for (int i = 1; i <= 4; ++i) {
        const std::string no = "TOKWAIT-" + std::to_string(i);
        if (std::none_of(first.begin(), first.end(), [&](const sim_call& c) { return c.order == no; })) {
            domain::fact f = queried_notpay(mchid, no, system_micros());  // another instance saw USERPAYING
            std::get<domain::payment_fact>(f.body).state = domain::trade_state::userpaying;
            ASSERT_EQ(apply_one(db_.url(), f).outcome, domain::outcome::applied);
            waiting.push_back(no);
        }
    }
    const std::size_t recorded = sim_calls(sim.port()).size();  // every later call was sent after the records
    ASSERT_TRUE(wait_for(
        [&] {
            return db_.count(
                       "SELECT count(*) FROM wxrecon.orders WHERE poll_attempts = 1 AND poll_lease_owner IS "
                       "NULL") == 4;
        },
        8s));
    const auto calls = sim_calls(sim.port());
    long sent_after = 0;
    for (std::size_t i = recorded; i < calls.size(); ++i) {
        if (std::find(waiting.begin(), waiting.end(), calls[i].order) == waiting.end()) continue;
        ++sent_after;
        EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.discrepancies WHERE kind = 'state_regression' AND "
                            "out_trade_no = '" +
                            calls[i].order + "'"),
                  1)
            << calls[i].order << ": asked after USERPAYING was recorded, answered NOTPAY, dropped as stale";
    }
    ASSERT_GE(sent_after, 2) << "the rate did not hold the queries back";
    EXPECT_EQ(metric(daemon.admin_port(), queries_total("v3", "stale")), 0);
}

// The rule for a paid order, through the ledger (the poller never queries a paid order, so it cannot
// produce this itself): a NOTPAY query sent before the payment was observed (received, on the same clock
// as the query's send time) is stale; one sent at or after it is a regression that opens state_regression
// and leaves the payment alone.
TEST_F(PollerFaults, NotpayQueryForAPaidOrderIsStaleOrARegressionByItsSendTime) {
    db_.exec(std::string("INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total) VALUES ('") +
             test_mchid + "', 'PAID-1', 100)");
    ASSERT_EQ(apply_one(db_.url(), notified_payment(test_mchid, "PAID-1", "T-PAID-1")).outcome,
              domain::outcome::applied);
    const domain::micros paid_at =
        std::stoll(db_.scalar("SELECT wxrecon.to_micros(state_observed_at) FROM wxrecon.orders"));
    const std::string row =
        "SELECT state || ' ' || state_source || ' ' || transaction_id || ' ' || payer_total ||"
        " ' ' || wxrecon.to_micros(state_changed_at) FROM wxrecon.orders";
    const std::string before = db_.scalar(row);

    const auto stale = apply_one(db_.url(), queried_notpay(test_mchid, "PAID-1", paid_at - 1));
    EXPECT_EQ(stale.outcome, domain::outcome::stale);
    EXPECT_TRUE(stale.opened.empty());
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.discrepancies"), 0);
    EXPECT_EQ(db_.scalar(row), before);

    const auto same_time = apply_one(db_.url(), queried_notpay(test_mchid, "PAID-1", paid_at));
    EXPECT_EQ(same_time.outcome, domain::outcome::regression) << "not older than the record: not stale";
    const auto newer = apply_one(db_.url(), queried_notpay(test_mchid, "PAID-1", paid_at + 1'000'000));
    EXPECT_EQ(newer.outcome, domain::outcome::regression);
    ASSERT_EQ(same_time.opened.size(), 1u);
    EXPECT_EQ(same_time.opened[0], domain::discrepancy_kind::state_regression);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.discrepancies WHERE kind = 'state_regression' AND "
                        "resolved_at IS NULL"
                        " AND detail->>'source' = 'query_v3' AND detail->>'recorded_state' = 'SUCCESS'"),
              1)
        << "one open row per order and kind";
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.discrepancies"), 1);
    EXPECT_EQ(db_.scalar(row), before) << "the paid state is untouched";
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events"), 1)
        << "only the payment is in the log";
}

// ---------------------------------------------------------------- f. both close outcomes

// Two orders expire unpaid. One is closed at WeChat Pay: CLOSED, source close. The other is paid while its
// close call is in flight, so the close is answered "already paid": the poller asks again and records
// SUCCESS, never CLOSED.
TEST_F(PollerFaults, CloseSucceedsOrFindsTheOrderPaid) {
    sim_key_dir keys(1);
    running_simulator sim(keys, {});
    const std::string mchid = keys.keys.merchants[0].mchid;
    register_orders(sim.port(), mchid, "CLOSING-", 2, "1500 milliseconds");
    // Every call takes 700 ms: room to pay between the final query's answer and the close's decision.
    sim_control(sim.port(), "/sim/faults", R"({"drop":1,"query_slow":1,"slow_ms":700})");
    running_daemon daemon(sim_daemon_config(keys, db_.url(), sim.port(), poller_toml("\"200ms\"", "1h")));
    ASSERT_TRUE(wait_for(
        [&] {
            for (const auto& c : sim_calls(sim.port()))
                if (c.close && c.order == "CLOSING-2" && c.end < 0) return true;
            return false;
        },
        10s, 10ms))
        << "CLOSING-2 was never closed";
    sim_control(sim.port(), "/sim/pay", R"({"mchid":")" + mchid + R"(","out_trade_no":"CLOSING-2"})");
    ASSERT_TRUE(wait_for(
        [&] {
            return db_.count(
                       "SELECT count(*) FROM wxrecon.orders WHERE state IN ('NOTPAY', 'USERPAYING') OR "
                       "poll_lease_owner IS NOT NULL") == 0;
        },
        10s));

    const auto t = sim_truth(sim.port());
    EXPECT_EQ(t.at(mchid + "/CLOSING-1").trade_state, "CLOSED");
    EXPECT_EQ(t.at(mchid + "/CLOSING-2").trade_state, "SUCCESS");
    EXPECT_EQ(db_.scalar("SELECT state || ' / ' || state_source || ' / ' || state_desc FROM wxrecon.orders"
                         " WHERE out_trade_no = 'CLOSING-1'"),
              "CLOSED / close / closed by wxrecon after expiry");
    EXPECT_EQ(
        db_.scalar("SELECT state || ' / ' || state_source || ' / ' || transaction_id FROM wxrecon.orders"
                   " WHERE out_trade_no = 'CLOSING-2'"),
        "SUCCESS / query / " + t.at(mchid + "/CLOSING-2").transaction_id);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events WHERE source = 'close'"), 1);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events WHERE out_trade_no = 'CLOSING-2' AND "
                        "source = 'query_v3'"
                        " AND trade_state = 'SUCCESS'"),
              1);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.discrepancies"), 0);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.orders WHERE next_poll_at IS NOT NULL OR "
                        "last_poll_error IS NOT NULL"),
              0);
    // CLOSING-2 at WeChat Pay: queries, the refused close, then the query that found the payment.
    const auto calls = by_order(sim_calls(sim.port()));
    const auto& second = calls.at(mchid + "/CLOSING-2");
    ASSERT_GE(second.size(), 3u);
    const auto& close = second[second.size() - 2];
    EXPECT_TRUE(close.close);
    EXPECT_TRUE(close.status == 400 || close.status == 403)
        << close.status << ": not answered ORDERPAID/TRADE_ERROR";
    EXPECT_FALSE(second.back().close);
    EXPECT_GE(second.back().start, close.end) << "the payment was asked for after the close was refused";
    EXPECT_LT(second.back().start - close.end, 1000) << "asked at once, not after a backoff";
    EXPECT_EQ(second.back().status, 200);
    EXPECT_EQ(std::count_if(second.begin(), second.end(), [](const sim_call& c) { return c.close; }), 1);
}

}  // namespace
}  // namespace wxrecon::testing
