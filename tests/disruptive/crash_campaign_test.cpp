// The crash campaign (issue 16, "Prove 2"): cycle after cycle the real wxrecond takes signed payment and
// refund notifications (some delivered twice), queries the orders that never got one at wxpay-sim, announces
// every change as an app event, and is SIGKILLed at a random moment; in every fifth cycle PostgreSQL crashes
// as well (a backend SIGKILLed in the fifth of every ten, the server stopped in immediate mode in the tenth).
// After each kill, and at the end once WeChat Pay's retries have delivered the rest, the ledger is checked:
// every acknowledged notification recorded exactly once, every order's state backed by its events, no lease
// past its term, no outbox row missing. WXRECON_CRASH_CYCLES (default 10) and WXRECON_CRASH_SEED (printed, so
// a failure's random choices can be replayed) set the run; scripts/crash-campaign.sh runs 100 cycles.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/time.hpp"
#include "daemon_process.hpp"
#include "protocol/v3.hpp"
#include "sim_env.hpp"
#include "store/migrations.hpp"
#include "test_env.hpp"

namespace wxrecon::testing {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// Cycles whose number ends in these digits crash PostgreSQL too.
constexpr int backend_kill_digit = 5;
constexpr int server_restart_digit = 0;
// How long a claim keeps other instances away: poller_options::lease and app_event_pusher_options::lease.
constexpr int lease_term_seconds = 60;
constexpr std::int64_t order_amount = 100;  // fen, every order
constexpr int new_notified_orders_per_cycle = 200;
constexpr int polled_paid_per_cycle = 8;
constexpr int polled_unpaid_per_cycle = 4;
constexpr int sender_threads = 3;
constexpr double duplicate_rate = 0.2;
constexpr double unregistered_rate = 0.05;
constexpr std::size_t failures_shown_per_check = 10;  // the rest are counted, not printed
const std::string app_event_secret = "crash-campaign-app-event-secret-0123";

struct campaign_options {
    int cycles = 10;
    std::uint64_t seed = 0;
};

campaign_options options_from_environment() {
    campaign_options o;
    if (const char* cycles = std::getenv("WXRECON_CRASH_CYCLES"); cycles != nullptr && *cycles != '\0')
        o.cycles = std::stoi(cycles);
    if (const char* seed = std::getenv("WXRECON_CRASH_SEED"); seed != nullptr && *seed != '\0')
        o.seed = std::stoull(seed);
    else
        o.seed = static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch() /
                                            std::chrono::microseconds(1)) %
                 1'000'000'000ULL;
    return o;
}

enum class order_fate {
    notified,       // registered, paid by notification, perhaps refunded by more
    unregistered,   // paid by notification but never registered: unknown_order
    polled_paid,    // paid at wxpay-sim, its notification lost: found by query
    polled_unpaid,  // never paid: closed at wxpay-sim after expiry
};

struct planned_order {
    std::string mchid;
    std::string out_trade_no;
    order_fate fate = order_fate::notified;
    std::string transaction_id;         // the notified ones' (wxpay-sim picks the polled ones')
    std::vector<std::int64_t> refunds;  // amounts refunded once the payment is acknowledged
    std::size_t payment_notification = 0;
    bool refunds_owed = false;  // their notifications exist
};

// A notification WeChat Pay owes wxrecond until a delivery is answered 204. Every delivery is signed afresh
// (the timestamp must be within 300 s); the id and the business object stay the same, as in WeChat's retries.
struct owed_notification {
    protocol::v3::notification_spec spec;
    std::string out_trade_no;
    bool acknowledged = false;
    int acknowledged_in_cycle = 0;  // the final round is cycles + 1
    int first_sent_cycle = 0;       // 0: not sent yet
};

struct delivery_counts {
    long deliveries = 0, acknowledged = 0, unavailable = 0, other = 0;
};

double milliseconds_since(steady::time_point start) {
    return std::chrono::duration<double, std::milli>(steady::now() - start).count();
}

// Retries f while PostgreSQL recovers from a crash (connections refused or cut, "in recovery mode"); any
// other error is the test's own and goes up at once.
template <class F>
auto retrying(F f) {
    const auto give_up = steady::now() + 60s;
    for (;;) {
        try {
            return f();
        } catch (const pqxx::broken_connection&) {
            if (steady::now() > give_up) throw;
        } catch (const pqxx::sql_error& e) {
            const std::string state = e.sqlstate();  // 08: connection exception, 57: operator intervention
            if ((!state.starts_with("08") && !state.starts_with("57")) || steady::now() > give_up) throw;
        }
        std::this_thread::sleep_for(200ms);
    }
}

class crash_campaign {
public:
    explicit crash_campaign(campaign_options options)
        : options_(options),
          random_(options.seed),
          merchant_(make_merchant_fixture()),
          sim_keys_(1),
          sim_(sim_keys_, simulator_options(options.seed)) {
        {
            pqxx::connection conn(db_.url());
            store::migrate(conn);  // wxrecond migrates at start too; the first orders are registered before
        }
        std::ofstream(merchant_->dir / "app_events.key") << app_event_secret << "\n";
        sim_control(sim_.port(), "/sim/faults", R"({"drop":1})");  // polled orders hear nothing
        sim_control(sim_.port(), "/sim/app-events-config",
                    R"({"secret":")" + app_event_secret + R"(","status":204})");
        extra_toml_ = daemon_extra_toml();
    }

    void run();

private:
    static sim::sim_options simulator_options(std::uint64_t seed) {
        sim::sim_options o;
        o.seed = seed;
        return o;
    }
    std::string daemon_extra_toml() const;
    const std::string& sim_mchid() const { return sim_keys_.keys.merchants[0].mchid; }

    // ---- load
    void plan_cycle(int cycle);
    std::size_t owe(const std::string& id, const std::string& event_type, const std::string& plaintext,
                    const std::string& out_trade_no);
    std::vector<std::size_t> deliveries(double duplicates);
    delivery_counts deliver(unsigned short port, const std::vector<std::size_t>& queue, int cycle,
                            std::chrono::milliseconds spread_over, const std::function<void()>& meanwhile);
    std::string crash(int cycle, daemon_process& daemon);

    // ---- PostgreSQL disturbed
    void kill_postgres_backend();
    void restart_postgres_immediately();

    // ---- checks
    void violation(const std::string& what);
    std::vector<std::pair<std::string, std::string>> rows(const std::string& sql) const;
    std::string evidence(const std::string& order) const;
    void check_acknowledged(const std::string& when);
    void check_invariants(const std::string& when);
    void check_final_ledger();
    void check_app_events_received();
    bool wait_until_zero(const std::string& sql, std::chrono::seconds limit) const;

    campaign_options options_;
    std::mt19937_64 random_;
    scratch_database db_;
    std::unique_ptr<merchant_fixture> merchant_;
    sim_key_dir sim_keys_;
    running_simulator sim_;
    std::string extra_toml_;

    std::vector<planned_order> orders_;
    std::vector<owed_notification> notes_;  // grows only while no sender runs
    std::mutex mutex_;                      // notes_' acknowledgements and the figures while senders run
    long next_serial_ = 1;

    long deliveries_ = 0, duplicates_ = 0, retries_ = 0, unavailable_ = 0, other_statuses_ = 0;
    std::size_t acknowledged_in_cycles_ = 0;
    int wxrecond_kills_ = 0, backend_kills_ = 0, postgres_restarts_ = 0;
    // How long wxrecond took to answer 204 again once PostgreSQL took connections after a crash.
    std::optional<steady::time_point> postgres_back_;  // set while that is awaited
    std::optional<double> recovered_after_ms_;
    double slowest_recovery_ms_ = 0;
    int recoveries_missed_ = 0;  // wxrecond was killed before it answered 204 again
    long violations_ = 0;

    bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(random_) < p; }
    std::chrono::milliseconds between(int low_ms, int high_ms) {
        return std::chrono::milliseconds(std::uniform_int_distribution<int>(low_ms, high_ms)(random_));
    }
};

// A fast poller schedule (first query 2 s after creation, close 500 ms after expiry), app events to
// wxpay-sim's receiver, and wxpay-sim's merchant beside the fixture's: the fixture's merchant receives the
// notifications (its api_base is unreachable, so its queries fail and change nothing), the simulator's
// merchant has the orders only a query or a close settles.
std::string crash_campaign::daemon_extra_toml() const {
    std::ifstream in(sim_keys_.dir / "wxrecond-merchants.toml");
    std::stringstream fragment;
    fragment << in.rdbuf();
    std::string merchants = fragment.str();
    const std::string from = "http://127.0.0.1:8480";
    const std::string to = "http://127.0.0.1:" + std::to_string(sim_.port());
    for (std::size_t pos = 0; (pos = merchants.find(from, pos)) != std::string::npos; pos += to.size())
        merchants.replace(pos, from.size(), to);
    return "[poller]\ndelays = [\"2s\", \"4s\"]\ninterval_after = \"5s\"\nclose_after_expire = \"500ms\"\n"
           "rate_per_second = 100\n"
           "[app_events]\nurl = \"" +
           to + "/sim/app-events\"\nsecret_file = \"app_events.key\"\nconcurrency = 4\ntimeout = \"2s\"\n" +
           merchants;
}

std::size_t crash_campaign::owe(const std::string& id, const std::string& event_type,
                                const std::string& plaintext, const std::string& out_trade_no) {
    const bool refund = event_type.starts_with("REFUND.");
    owed_notification n;
    n.spec = protocol::v3::notification_spec{id,
                                             format_rfc3339(std::time(nullptr)),
                                             event_type,
                                             refund ? "退款成功" : "支付成功",
                                             refund ? "refund" : "transaction",
                                             refund ? "refund" : "transaction",
                                             plaintext};
    n.out_trade_no = out_trade_no;
    notes_.push_back(std::move(n));
    return notes_.size() - 1;
}

// New orders for this cycle: notified ones (a few never registered) with their payment notifications, and
// polled ones, placed and perhaps paid at wxpay-sim. Registered in the database the way an application does.
void crash_campaign::plan_cycle(int cycle) {
    const std::string tag = std::to_string(cycle);
    std::vector<std::string> registered;
    for (int i = 1; i <= new_notified_orders_per_cycle; ++i) {
        planned_order o;
        o.mchid = test_mchid;
        o.out_trade_no = "CN-" + tag + "-" + std::to_string(i);
        o.fate = chance(unregistered_rate) ? order_fate::unregistered : order_fate::notified;
        o.transaction_id = std::to_string(4200000000000LL + next_serial_++);
        const double refund_plan = std::uniform_real_distribution<double>(0, 1)(random_);
        if (refund_plan < 0.2)
            o.refunds = {order_amount};  // in full: REFUND
        else if (refund_plan < 0.3)
            o.refunds = {40};  // in part: stays SUCCESS
        else if (refund_plan < 0.45)
            o.refunds = {40, order_amount - 40};  // two parts, delivered together, add up to REFUND
        domain::payment_fact p;
        p.out_trade_no = o.out_trade_no;
        p.state = domain::trade_state::success;
        p.state_desc = "支付成功";
        p.appid = test_appid;
        p.transaction_id = o.transaction_id;
        p.trade_type = "JSAPI";
        p.bank_type = "OTHERS";
        p.payer_openid = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o";
        p.amount_total = order_amount;
        p.payer_total = order_amount;
        p.success_time = std::time(nullptr) * 1'000'000LL;
        o.payment_notification = owe("EV-P-" + o.out_trade_no, "TRANSACTION.SUCCESS",
                                     protocol::v3::transaction_json(test_mchid, p), o.out_trade_no);
        if (o.fate == order_fate::notified) registered.push_back(o.out_trade_no);
        orders_.push_back(std::move(o));
    }

    const std::string prefix = "CP-" + tag + "-";
    const int polled = polled_paid_per_cycle + polled_unpaid_per_cycle;
    sim_control(sim_.port(), "/sim/orders",
                R"({"mchid":")" + sim_mchid() + R"(","prefix":")" + prefix + R"(","count":)" +
                    std::to_string(polled) + R"(,"amount":)" + std::to_string(order_amount) +
                    R"(,"notify_url":"http://127.0.0.1:9/lost"})");
    sim_control(sim_.port(), "/sim/pay",
                R"({"mchid":")" + sim_mchid() + R"(","prefix":")" + prefix + R"(","count":)" +
                    std::to_string(polled_paid_per_cycle) + "}");
    for (int i = 1; i <= polled; ++i) {
        planned_order o;
        o.mchid = sim_mchid();
        o.out_trade_no = prefix + std::to_string(i);
        o.fate = i <= polled_paid_per_cycle ? order_fate::polled_paid : order_fate::polled_unpaid;
        orders_.push_back(std::move(o));
    }

    std::string values;
    for (const auto& no : registered)
        values += (values.empty() ? "" : ",") + std::string("('") + test_mchid + "','" + no + "'," +
                  std::to_string(order_amount) + ",'" + test_appid + "', now() + interval '2 hours')";
    for (int i = 1; i <= polled; ++i)
        values += ",('" + sim_mchid() + "','" + prefix + std::to_string(i) + "'," +
                  std::to_string(order_amount) + ",'" + sim_keys_.keys.merchants[0].appid + "', now() + " +
                  (i <= polled_paid_per_cycle ? "interval '1 hour'" : "interval '3 seconds'") + ")";
    retrying([&] {
        db_.exec("INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, appid, expire_at) VALUES " +
                 values);
        return 0;
    });
}

// What WeChat Pay delivers now: every notification not yet acknowledged (the new ones and the retries), the
// refunds of payments acknowledged meanwhile, and copies of some (duplicates), in random order.
std::vector<std::size_t> crash_campaign::deliveries(double duplicates) {
    for (auto& o : orders_) {
        if (o.refunds.empty() || o.refunds_owed || !notes_[o.payment_notification].acknowledged) continue;
        o.refunds_owed = true;
        for (std::size_t i = 0; i < o.refunds.size(); ++i) {
            domain::refund_fact r;
            r.out_trade_no = o.out_trade_no;
            r.out_refund_no = "RF-" + o.out_trade_no + "-" + std::to_string(i + 1);
            r.refund_id = std::to_string(5000000000000LL + next_serial_++);
            r.transaction_id = o.transaction_id;
            r.status = domain::refund_status::success;
            r.amount_refund = o.refunds[i];
            r.amount_total = order_amount;
            r.success_time = std::time(nullptr) * 1'000'000LL;
            owe("EV-R-" + r.out_refund_no, "REFUND.SUCCESS", protocol::v3::refund_json(test_mchid, r),
                o.out_trade_no);
        }
    }
    std::vector<std::size_t> queue;
    for (std::size_t i = 0; i < notes_.size(); ++i) {
        if (notes_[i].acknowledged) continue;
        queue.push_back(i);
        if (chance(duplicates)) {
            queue.push_back(i);
            ++duplicates_;
        }
    }
    std::shuffle(queue.begin(), queue.end(), random_);
    return queue;
}

// Senders work through the queue, spread evenly over `spread_over` (so the kill falls into the load, not
// after it), until it is empty or wxrecond stops answering, while `meanwhile` runs on this thread.
delivery_counts crash_campaign::deliver(unsigned short port, const std::vector<std::size_t>& queue, int cycle,
                                        std::chrono::milliseconds spread_over,
                                        const std::function<void()>& meanwhile) {
    delivery_counts counts;
    std::atomic<std::size_t> next{0};
    std::vector<std::thread> senders;
    const auto started = steady::now();
    for (int t = 0; t < sender_threads; ++t)
        senders.emplace_back([&] {
            for (std::size_t i; (i = next++) < queue.size();) {
                std::this_thread::sleep_until(started + spread_over * static_cast<long>(i) /
                                                            static_cast<long>(queue.size()));
                owed_notification& n = notes_[queue[i]];
                const auto signed_now =
                    protocol::v3::make_notification(n.spec, merchant_->apiv3_key, merchant_->wechatpay_key,
                                                    test_pub_key_id, std::time(nullptr));
                const int status = signed_now.has_value() ? send(port, *signed_now) : -1;
                std::lock_guard lock(mutex_);
                ++counts.deliveries;
                if (n.first_sent_cycle == 0)
                    n.first_sent_cycle = cycle;
                else if (n.first_sent_cycle < cycle)
                    ++retries_;
                if (status == 204) {
                    if (postgres_back_) {
                        recovered_after_ms_ = milliseconds_since(*postgres_back_);
                        postgres_back_.reset();
                    }
                    ++counts.acknowledged;
                    if (!n.acknowledged) n.acknowledged_in_cycle = cycle;
                    n.acknowledged = true;
                } else if (status == 0) {
                    return;  // wxrecond is gone
                } else if (status == 503) {
                    ++counts.unavailable;
                } else {
                    ++counts.other;
                }
            }
        });
    meanwhile();
    for (auto& s : senders) s.join();
    deliveries_ += counts.deliveries;
    unavailable_ += counts.unavailable;
    other_statuses_ += counts.other;
    return counts;
}

// The cycle's random moment: wxrecond SIGKILLed, and in every fifth cycle PostgreSQL crashed a while
// before it (wxrecond lives on through that and must find its way back). Returns what happened when.
std::string crash_campaign::crash(int cycle, daemon_process& daemon) {
    const auto started = steady::now();
    std::string what;
    const int digit = cycle % 10;
    if (digit == backend_kill_digit || digit == server_restart_digit) {
        std::this_thread::sleep_for(between(100, 1500));
        char at[32];
        std::snprintf(at, sizeof at, "%.0f ms", milliseconds_since(started));
        if (digit == backend_kill_digit) {
            kill_postgres_backend();
            what = std::string("a PostgreSQL backend SIGKILLed at ") + at + ", ";
        } else {
            restart_postgres_immediately();
            what = std::string("PostgreSQL stopped (immediate) at ") + at + " and started again, ";
        }
        retrying([&] {  // taking connections again (after crash recovery)
            pqxx::connection conn(db_.url());
            return pqxx::nontransaction(conn).exec1("SELECT 1")[0].as<int>();
        });
        {
            std::lock_guard lock(mutex_);
            postgres_back_ = steady::now();
            recovered_after_ms_.reset();
        }
        std::this_thread::sleep_for(between(800, 2000));
        std::lock_guard lock(mutex_);
        char recovery[96];
        if (recovered_after_ms_) {
            std::snprintf(recovery, sizeof recovery, "wxrecond answered 204 again %.0f ms after, ",
                          *recovered_after_ms_);
            slowest_recovery_ms_ = std::max(slowest_recovery_ms_, *recovered_after_ms_);
        } else {
            std::snprintf(recovery, sizeof recovery, "no 204 from wxrecond since, ");
            ++recoveries_missed_;
        }
        postgres_back_.reset();
        what += recovery;
    } else {
        std::this_thread::sleep_for(between(100, 2000));
    }
    const double kill_at = milliseconds_since(started);
    EXPECT_EQ(daemon.stop(SIGKILL), 128 + SIGKILL) << "cycle " << cycle << ": wxrecond had died already";
    ++wxrecond_kills_;
    char text[64];
    std::snprintf(text, sizeof text, "wxrecond SIGKILLed at %.0f ms", kill_at);
    return what + text;
}

// A backend of wxrecond's database killed like an OOM kill: the postmaster ends every other backend and
// recovers from the WAL before it takes connections again.
void crash_campaign::kill_postgres_backend() {
    std::vector<std::pair<pid_t, bool>> backends;  // pid, busy
    {
        pqxx::connection conn(db_.url());
        pqxx::nontransaction tx(conn);
        for (const auto& row :
             tx.exec("SELECT pid, state <> 'idle' FROM pg_stat_activity WHERE datname = current_database()"
                     " AND backend_type = 'client backend' AND pid <> pg_backend_pid() ORDER BY pid"))
            backends.emplace_back(row[0].as<int>(), !row[1].is_null() && row[1].as<bool>());
    }
    // One in the middle of a statement or transaction if there is one: that is where a crash hurts.
    std::vector<pid_t> busy, idle;
    for (const auto& [pid, active] : backends) (active ? busy : idle).push_back(pid);
    const auto& candidates = busy.empty() ? idle : busy;
    const pid_t victim = candidates.empty() ? 0 : candidates[random_() % candidates.size()];
    ASSERT_NE(victim, 0) << "wxrecond has no connection to kill";
    ASSERT_EQ(::kill(victim, SIGKILL), 0) << "kill -9 " << victim;
    ++backend_kills_;
    // Until the postmaster notices, new connections still succeed: wait for the reset to begin.
    const auto give_up = steady::now() + 10s;
    while (::kill(victim, 0) == 0 && steady::now() < give_up) std::this_thread::sleep_for(10ms);
    std::this_thread::sleep_for(100ms);
}

// pg_ctl stop -m immediate (SIGQUIT to the postmaster: no checkpoint, recovery at the next start), then
// started again through WXRECON_TEST_PG_CTL.
void crash_campaign::restart_postgres_immediately() {
    const char* ctl = std::getenv("WXRECON_TEST_PG_CTL");
    ASSERT_NE(ctl, nullptr) << "WXRECON_TEST_PG_CTL is not set: run through scripts/test.sh";
    std::string data_directory;
    {
        pqxx::connection conn(base_database_url());
        pqxx::nontransaction tx(conn);
        data_directory = tx.exec1("SHOW data_directory")[0].as<std::string>();
    }
    pid_t postmaster = 0;
    std::ifstream(data_directory + "/postmaster.pid") >> postmaster;
    ASSERT_GT(postmaster, 0) << data_directory << "/postmaster.pid";
    ASSERT_EQ(::kill(postmaster, SIGQUIT), 0);
    const auto give_up = steady::now() + 30s;
    while (::kill(postmaster, 0) == 0 && steady::now() < give_up) std::this_thread::sleep_for(20ms);
    ASSERT_EQ(std::system((std::string(ctl) + " start >/dev/null 2>&1").c_str()), 0) << ctl << " start";
    ++postgres_restarts_;
}

void crash_campaign::violation(const std::string& what) {
    ++violations_;
    ADD_FAILURE() << what;
}

std::vector<std::pair<std::string, std::string>> crash_campaign::rows(const std::string& sql) const {
    return retrying([&] {
        pqxx::connection conn(db_.url());
        pqxx::nontransaction tx(conn);
        std::vector<std::pair<std::string, std::string>> out;
        for (const auto& row : tx.exec(sql))
            out.emplace_back(row[0].is_null() ? "" : row[0].as<std::string>(),
                             row.size() > 1 && !row[1].is_null() ? row[1].as<std::string>() : "");
        return out;
    });
}

// The order's rows, one a line, with the transaction that wrote each (xmin): what a failure report needs.
std::string crash_campaign::evidence(const std::string& order) const {
    const std::string of_order = " WHERE mchid || '/' || out_trade_no = '" + order + "'";
    std::string out;
    for (const auto& [line, unused] :
         rows("SELECT 'order ' || state || ' transaction_id=' || coalesce(transaction_id, '(none)') || ' "
              "xact ' ||"
              " xmin || ' state_changed_at ' || state_changed_at || ' updated_at ' || updated_at, 0"
              " FROM wxrecon.orders" +
              of_order +
              " UNION ALL SELECT 'event ' || id || ' ' || source || ' ' || event_type || coalesce(' ' || "
              "out_refund_no || ' ' || amount_refund, '') || ' xact ' || xmin || ' received_at ' || "
              "received_at, "
              "id FROM wxrecon.payment_events" +
              of_order +
              " UNION ALL SELECT 'refund ' || out_refund_no || ' ' || status || ' ' || amount_refund || ' "
              "xact ' ||"
              " xmin || ' updated_at ' || updated_at, 0 FROM wxrecon.refunds" +
              of_order + " ORDER BY 2, 1"))
        out += "\n    " + line;
    return out;
}

bool crash_campaign::wait_until_zero(const std::string& sql, std::chrono::seconds limit) const {
    const auto give_up = steady::now() + limit;
    while (steady::now() < give_up) {
        if (rows(sql).at(0).first == "0") return true;
        std::this_thread::sleep_for(250ms);
    }
    return rows(sql).at(0).first == "0";
}

// Every notification answered 204 so far is recorded, once.
void crash_campaign::check_acknowledged(const std::string& when) {
    std::map<std::string, long> recorded;
    for (const auto& [id, count] :
         rows(std::string("SELECT notify_id, count(*) FROM wxrecon.payment_events WHERE mchid = '") +
              test_mchid + "' AND notify_id IS NOT NULL GROUP BY notify_id"))
        recorded[id] = std::stol(count);
    std::size_t shown = 0;
    for (const auto& n : notes_) {
        if (!n.acknowledged) continue;
        const auto it = recorded.find(n.spec.id);
        const long times = it == recorded.end() ? 0 : it->second;
        if (times == 1) continue;
        ++violations_;
        if (++shown <= failures_shown_per_check)
            ADD_FAILURE() << when << ": order " << n.out_trade_no << ": notification " << n.spec.id
                          << " (acknowledged in cycle " << n.acknowledged_in_cycle << ") is recorded "
                          << times << " times";
    }
}

// What must hold at every moment, whenever wxrecond died: the rows of each query name the order and what
// is wrong with it.
void crash_campaign::check_invariants(const std::string& when) {
    const std::string lease_term = "make_interval(secs => " + std::to_string(lease_term_seconds) + ")";
    const std::vector<std::pair<std::string, std::string>> invariants = {
        {"a paid order without the payment event behind it",
         "SELECT o.mchid || '/' || o.out_trade_no, o.state || ' transaction_id=' || "
         "coalesce(o.transaction_id, "
         "'(none)') FROM wxrecon.orders o WHERE o.state IN ('SUCCESS', 'REFUND') AND NOT EXISTS ("
         " SELECT 1 FROM wxrecon.payment_events e WHERE e.mchid = o.mchid AND e.out_trade_no = o.out_trade_no"
         " AND e.out_refund_no IS NULL AND e.trade_state = 'SUCCESS' AND e.transaction_id = "
         "o.transaction_id)"},
        {"a payment event its order does not show",
         "SELECT e.mchid || '/' || e.out_trade_no, 'event ' || e.id || ' transaction_id=' || "
         "e.transaction_id ||"
         " ', order ' || coalesce(o.state, '(missing)') || ' transaction_id=' || coalesce(o.transaction_id, "
         "'(none)') FROM wxrecon.payment_events e LEFT JOIN wxrecon.orders o"
         " ON o.mchid = e.mchid AND o.out_trade_no = e.out_trade_no"
         " WHERE e.out_refund_no IS NULL AND e.trade_state = 'SUCCESS' AND (o.mchid IS NULL"
         " OR o.state NOT IN ('SUCCESS', 'REFUND') OR o.transaction_id IS DISTINCT FROM e.transaction_id)"},
        {"CLOSED without a CLOSED event, or a CLOSED event the order does not show",
         "SELECT o.mchid || '/' || o.out_trade_no, o.state || CASE WHEN c.n IS NULL THEN ' without' ELSE "
         "' with' END || ' a CLOSED event' FROM wxrecon.orders o LEFT JOIN (SELECT mchid, out_trade_no, "
         "count(*) n FROM wxrecon.payment_events WHERE out_refund_no IS NULL AND trade_state = 'CLOSED'"
         " GROUP BY 1, 2) c ON c.mchid = o.mchid AND c.out_trade_no = o.out_trade_no"
         " WHERE (o.state = 'CLOSED') <> (c.n IS NOT NULL)"},
        {"a successful refund without its event, or an event without its refund",
         "SELECT coalesce(r.mchid, e.mchid) || '/' || coalesce(r.out_trade_no, e.out_trade_no),"
         " 'refund ' || coalesce(r.out_refund_no, e.out_refund_no) || ': recorded ' ||"
         " coalesce(r.amount_refund::text, 'nothing') || ', event ' || coalesce(e.amount_refund::text, "
         "'none')"
         " FROM (SELECT * FROM wxrecon.refunds WHERE status = 'SUCCESS') r FULL JOIN"
         " (SELECT * FROM wxrecon.payment_events WHERE refund_status = 'SUCCESS') e"
         " ON e.mchid = r.mchid AND e.out_refund_no = r.out_refund_no"
         " WHERE r.mchid IS NULL OR e.mchid IS NULL OR r.amount_refund <> e.amount_refund"
         " OR r.out_trade_no <> e.out_trade_no"},
        {"REFUND and the refunded amount disagree",
         "SELECT o.mchid || '/' || o.out_trade_no, o.state || ' with ' || coalesce(r.refunded, 0) || ' of ' "
         "||"
         " coalesce(o.payer_total, o.amount_total) || ' refunded by the events'"
         " FROM wxrecon.orders o LEFT JOIN (SELECT mchid, out_trade_no, sum(amount_refund) refunded"
         " FROM wxrecon.payment_events WHERE refund_status = 'SUCCESS' GROUP BY 1, 2) r"
         " ON r.mchid = o.mchid AND r.out_trade_no = o.out_trade_no"
         " WHERE (o.state IN ('SUCCESS', 'REFUND') AND (o.state = 'REFUND') <>"
         " (coalesce(r.refunded, 0) >= coalesce(o.payer_total, o.amount_total)))"
         " OR (o.state NOT IN ('SUCCESS', 'REFUND') AND r.refunded IS NOT NULL)"},
        {"a fact recorded twice",
         "SELECT mchid || '/' || min(out_trade_no), 'notification ' || notify_id || ' x' || count(*)"
         " FROM wxrecon.payment_events WHERE notify_id IS NOT NULL GROUP BY mchid, notify_id HAVING count(*) "
         "> 1"
         " UNION ALL SELECT mchid || '/' || min(out_trade_no), 'payment ' || transaction_id || ' ' || "
         "trade_state || ' x' || count(*) FROM wxrecon.payment_events WHERE out_refund_no IS NULL"
         " AND transaction_id IS NOT NULL GROUP BY mchid, transaction_id, trade_state HAVING count(*) > 1"
         " UNION ALL SELECT mchid || '/' || min(out_trade_no), 'refund ' || out_refund_no || ' ' || "
         "refund_status || ' x' || count(*) FROM wxrecon.payment_events WHERE out_refund_no IS NOT NULL"
         " GROUP BY mchid, out_refund_no, refund_status HAVING count(*) > 1"},
        {"a lease past its term",
         "SELECT mchid || '/' || out_trade_no, 'order lease until now() + ' || (poll_lease_until - now()) ||"
         " ' owner ' || coalesce(poll_lease_owner, '(none)') FROM wxrecon.orders"
         " WHERE poll_lease_until > now() + " +
             lease_term +
             " OR (poll_lease_until IS NULL) <> (poll_lease_owner IS NULL)"
             " UNION ALL SELECT mchid || '/' || out_trade_no, 'refund ' || out_refund_no || ' lease until "
             "now() "
             "+ ' || (poll_lease_until - now()) FROM wxrecon.refunds WHERE poll_lease_until > now() + " +
             lease_term +
             " OR (poll_lease_until IS NULL) <> (poll_lease_owner IS NULL)"
             " UNION ALL SELECT mchid || '/' || out_trade_no, 'app event ' || id || ' lease until now() + ' "
             "||"
             " (lease_until - now()) FROM wxrecon.app_events WHERE lease_until > now() + " +
             lease_term},
        {"an order change without its app event (or announced more than once, or never made)",
         "SELECT o.mchid || '/' || o.out_trade_no, o.state || ' transaction_id=' || "
         "coalesce(o.transaction_id, "
         "'(none)') || ': order.paid x' || coalesce(a.paid, 0) || ', order.closed x' || coalesce(a.closed, "
         "0) ||"
         " ', order.refunded x' || coalesce(a.refunded, 0) FROM wxrecon.orders o LEFT JOIN ("
         " SELECT mchid, out_trade_no, count(*) FILTER (WHERE type = 'order.paid') paid,"
         " count(*) FILTER (WHERE type = 'order.closed') closed,"
         " count(*) FILTER (WHERE type = 'order.refunded') refunded FROM wxrecon.app_events GROUP BY 1, 2) a"
         " ON a.mchid = o.mchid AND a.out_trade_no = o.out_trade_no"
         " WHERE coalesce(a.paid, 0) <> (o.transaction_id IS NOT NULL)::int"
         " OR coalesce(a.closed, 0) <> (o.state = 'CLOSED')::int"
         " OR coalesce(a.refunded, 0) <> (o.state = 'REFUND')::int"},
        {"a successful refund without its refund.succeeded (or announced more than once, or never made)",
         "SELECT coalesce(r.mchid, a.mchid) || '/' || coalesce(r.out_trade_no, a.out_trade_no),"
         " 'refund ' || coalesce(r.out_refund_no, a.out_refund_no) || ': refund.succeeded x' || "
         "coalesce(a.n, 0)"
         " FROM (SELECT * FROM wxrecon.refunds WHERE status = 'SUCCESS') r FULL JOIN"
         " (SELECT mchid, out_trade_no, object->>'out_refund_no' out_refund_no, count(*) n FROM "
         "wxrecon.app_events"
         " WHERE type = 'refund.succeeded' GROUP BY 1, 2, 3) a"
         " ON a.mchid = r.mchid AND a.out_refund_no = r.out_refund_no"
         " WHERE r.mchid IS NULL OR coalesce(a.n, 0) <> 1"},
        {"a discrepancy without its discrepancy.opened or its alert_outbox row",
         "SELECT d.mchid || '/' || d.out_trade_no, 'discrepancy ' || d.id || ' ' || d.kind || "
         "': discrepancy.opened x' || coalesce(a.n, 0) || CASE WHEN q.discrepancy_id IS NULL THEN "
         "', no alert_outbox row' ELSE '' END FROM wxrecon.discrepancies d LEFT JOIN ("
         " SELECT (extra->'discrepancy'->>'id')::bigint id, count(*) n FROM wxrecon.app_events"
         " WHERE type = 'discrepancy.opened' GROUP BY 1) a ON a.id = d.id"
         " LEFT JOIN wxrecon.alert_outbox q ON q.discrepancy_id = d.id"
         " WHERE coalesce(a.n, 0) <> 1 OR (q.discrepancy_id IS NULL AND (d.kind IN ('stuck', "
         "'amount_mismatch', 'unknown_order', 'paid_after_close') OR d.kind LIKE 'refund\\_%'))"},
    };
    for (const auto& [what, sql] : invariants) {
        const auto found = rows(sql);
        violations_ += static_cast<long>(found.size());
        for (std::size_t i = 0; i < found.size() && i < failures_shown_per_check; ++i)
            ADD_FAILURE() << when << ": " << what << ": order " << found[i].first << ": " << found[i].second
                          << evidence(found[i].first);
        if (found.size() > failures_shown_per_check)
            ADD_FAILURE() << when << ": " << what << ": " << found.size() - failures_shown_per_check
                          << " more";
    }
}

// At the end every order is where its plan took it, as wxpay-sim also says, with nothing else flagged.
void crash_campaign::check_final_ledger() {
    struct recorded_order {
        std::string state, transaction_id, origin;
        std::int64_t refunded = 0;
    };
    std::map<std::string, recorded_order> recorded;
    retrying([&] {
        pqxx::connection conn(db_.url());
        pqxx::nontransaction tx(conn);
        recorded.clear();
        for (const auto& row : tx.exec(
                 "SELECT o.mchid || '/' || o.out_trade_no, o.state, coalesce(o.transaction_id, ''), o.origin,"
                 " (SELECT coalesce(sum(r.amount_refund), 0) FROM wxrecon.refunds r WHERE r.mchid = o.mchid"
                 " AND r.out_trade_no = o.out_trade_no AND r.status = 'SUCCESS') FROM wxrecon.orders o"))
            recorded[row[0].as<std::string>()] = {row[1].as<std::string>(), row[2].as<std::string>(),
                                                  row[3].as<std::string>(), row[4].as<std::int64_t>()};
        return 0;
    });
    const auto truth = sim_truth(sim_.port());
    std::set<std::string> unregistered;
    for (const auto& o : orders_) {
        const std::string key = o.mchid + "/" + o.out_trade_no;
        const auto it = recorded.find(key);
        if (it == recorded.end()) {
            violation("order " + key + " is missing from the ledger");
            continue;
        }
        const recorded_order& r = it->second;
        std::int64_t refunded = 0;
        for (const auto amount : o.refunds) refunded += amount;
        std::string want_state, want_transaction = o.transaction_id;
        switch (o.fate) {
            case order_fate::notified:
            case order_fate::unregistered:
                want_state = refunded >= order_amount ? "REFUND" : "SUCCESS";
                if (o.fate == order_fate::unregistered) unregistered.insert(key);
                if (r.origin != (o.fate == order_fate::unregistered ? "notify" : "sql"))
                    violation("order " + key + " has origin " + r.origin);
                break;
            case order_fate::polled_paid:
            case order_fate::polled_unpaid: {
                want_state = o.fate == order_fate::polled_paid ? "SUCCESS" : "CLOSED";
                const auto at_wechat = truth.find(key);
                if (at_wechat == truth.end()) {
                    violation("order " + key + " is unknown to wxpay-sim");
                    continue;
                }
                if (at_wechat->second.trade_state != want_state)
                    violation("order " + key + " is " + at_wechat->second.trade_state +
                              " at wxpay-sim, not " + want_state);
                want_transaction = at_wechat->second.transaction_id;
                break;
            }
        }
        if (r.state != want_state || r.transaction_id != want_transaction || r.refunded != refunded)
            violation("order " + key + " ends " + r.state + " transaction_id=" + r.transaction_id +
                      " refunded " + std::to_string(r.refunded) + "; expected " + want_state +
                      " transaction_id=" + want_transaction + " refunded " + std::to_string(refunded) +
                      evidence(key));
    }
    if (recorded.size() != orders_.size())
        violation("the ledger has " + std::to_string(recorded.size()) + " orders, the campaign made " +
                  std::to_string(orders_.size()));

    // The only discrepancies are the unknown orders, once each.
    std::set<std::string> flagged;
    for (const auto& [order, kind] :
         rows("SELECT mchid || '/' || out_trade_no, kind FROM wxrecon.discrepancies ORDER BY id")) {
        if (kind != "unknown_order" || !unregistered.count(order) || !flagged.insert(order).second)
            violation("order " + order + ": unexpected discrepancy " + kind);
    }
    for (const auto& order : unregistered)
        if (!flagged.count(order)) violation("order " + order + ": unknown_order was not flagged");
    const auto rejected = rows("SELECT count(*) FROM wxrecon.rejected_notifications").at(0).first;
    if (rejected != "0") violation(rejected + " genuine notifications were rejected");
}

// Every app event in the outbox reached the application (wxpay-sim's receiver) with a valid signature.
void crash_campaign::check_app_events_received() {
    std::set<std::string> received;
    std::uint64_t since = 1;
    bool complete = true;
    for (;;) {
        const auto r =
            http_get(sim_.port(), "/sim/app-events?since=" + std::to_string(since) + "&limit=2000");
        simdjson::dom::parser parser;
        const simdjson::padded_string text(r.body);
        simdjson::dom::element doc;
        ASSERT_EQ(parser.parse(text).get(doc), simdjson::SUCCESS) << r.body.substr(0, 200);
        if (doc["first"].get_int64().value() > 1) complete = false;  // the receiver's log dropped its oldest
        std::size_t n = 0;
        std::int64_t last = 0;
        for (auto e : doc["events"].get_array()) {
            ++n;
            last = e["n"].get_int64().value();
            const std::int64_t status = e["status"].get_int64().value();
            if (e["signature_ok"].get_bool().value() && status >= 200 && status < 300)
                received.insert(std::string(e["id"].get_string().value()));
        }
        if (n == 0) break;
        since = static_cast<std::uint64_t>(last) + 1;
    }
    std::size_t missing = 0;
    for (const auto& [id, order] : rows("SELECT id, mchid || '/' || out_trade_no || ' ' || type"
                                        " FROM wxrecon.app_events ORDER BY id")) {
        if (received.count(id)) continue;
        if (!complete) continue;
        ++violations_;
        if (++missing <= failures_shown_per_check)
            ADD_FAILURE() << "app event " << id << " (" << order << ") never reached the application";
    }
}

void crash_campaign::run() {
    const auto started = steady::now();
    std::printf("crash campaign: seed=%llu cycles=%d (replay the choices with WXRECON_CRASH_SEED=%llu)\n",
                static_cast<unsigned long long>(options_.seed), options_.cycles,
                static_cast<unsigned long long>(options_.seed));
    std::fflush(stdout);
    for (int cycle = 1; cycle <= options_.cycles; ++cycle) {
        plan_cycle(cycle);
        daemon_process daemon(*merchant_, db_.url(), extra_toml_);
        if (!daemon.start()) {
            const std::string log = daemon.stderr_text();
            FAIL() << "cycle " << cycle << ": wxrecond did not become ready; its stderr ends:\n"
                   << log.substr(log.size() > 4000 ? log.size() - 4000 : 0);
        }
        const auto queue = deliveries(duplicate_rate);
        std::string what;
        // Spread over the longest a cycle can last before its kill, PostgreSQL's crash included.
        const bool postgres_too = cycle % 10 == backend_kill_digit || cycle % 10 == server_restart_digit;
        const auto counts = deliver(daemon.port(), queue, cycle, postgres_too ? 4000ms : 2200ms,
                                    [&] { what = crash(cycle, daemon); });
        if (::testing::Test::HasFatalFailure()) return;
        std::printf(
            "crash campaign: cycle %d/%d: %s; %ld deliveries (%zu queued), %ld answered 204, %ld 503\n",
            cycle, options_.cycles, what.c_str(), counts.deliveries, queue.size(), counts.acknowledged,
            counts.unavailable);
        std::fflush(stdout);
        const std::string when =
            "after cycle " + std::to_string(cycle) + " (seed " + std::to_string(options_.seed) + ")";
        check_acknowledged(when);
        check_invariants(when);
    }
    for (const auto& n : notes_) acknowledged_in_cycles_ += n.acknowledged;

    // WeChat Pay keeps retrying what was never acknowledged (and the refunds of payments acknowledged late);
    // wxrecond, started once more, settles everything.
    const int final_round = options_.cycles + 1;
    daemon_process daemon(*merchant_, db_.url(), extra_toml_);
    ASSERT_TRUE(daemon.start()) << "final start: wxrecond did not become ready";
    for (int round = 0; round < 50; ++round) {
        const auto queue = deliveries(0);
        if (queue.empty()) break;
        deliver(daemon.port(), queue, final_round, 0ms, [] {});
        std::this_thread::sleep_for(100ms);
    }
    for (const auto& n : notes_)
        if (!n.acknowledged)
            violation("order " + n.out_trade_no + ": " + n.spec.id + " was never acknowledged");
    if (!wait_until_zero("SELECT count(*) FROM wxrecon.orders WHERE state IN ('NOTPAY', 'USERPAYING')", 180s))
        violation(
            rows("SELECT count(*) FROM wxrecon.orders WHERE state IN ('NOTPAY', 'USERPAYING')").at(0).first +
            " orders still open after 180 s");
    if (!wait_until_zero("SELECT count(*) FROM wxrecon.app_events WHERE delivered_at IS NULL", 180s))
        violation(rows("SELECT count(*) FROM wxrecon.app_events WHERE delivered_at IS NULL").at(0).first +
                  " app events still undelivered after 180 s");
    EXPECT_EQ(daemon.stop(SIGTERM), 0) << "the final wxrecond did not drain and exit 0";

    const std::string when = "at the end (seed " + std::to_string(options_.seed) + ")";
    check_acknowledged(when);
    check_invariants(when);
    check_final_ledger();
    check_app_events_received();

    std::size_t acknowledged = 0;
    for (const auto& n : notes_) acknowledged += n.acknowledged;
    char figures[512];
    std::snprintf(
        figures, sizeof figures,
        "seed=%llu cycles=%d orders=%zu notifications=%zu acknowledged=%zu "
        "acknowledged_during_crashes=%zu deliveries=%ld duplicates=%ld retries=%ld answered_503=%ld "
        "answered_other=%ld wxrecond_sigkills=%d postgres_backend_sigkills=%d "
        "postgres_immediate_restarts=%d slowest_recovery=%.0fms recoveries_missed=%d violations=%ld "
        "wall=%.1fs",
        static_cast<unsigned long long>(options_.seed), options_.cycles, orders_.size(), notes_.size(),
        acknowledged, acknowledged_in_cycles_, deliveries_, duplicates_, retries_, unavailable_,
        other_statuses_, wxrecond_kills_, backend_kills_, postgres_restarts_, slowest_recovery_ms_,
        recoveries_missed_, violations_, milliseconds_since(started) / 1000);
    std::printf("crash campaign: %s\n", figures);
    std::fflush(stdout);
    ::testing::Test::RecordProperty("crash_campaign", figures);
    EXPECT_EQ(violations_, 0) << "seed " << options_.seed;
}

TEST(CrashCampaign, RandomKillsLoseNothingAcknowledged) {
    ASSERT_NE(std::getenv("WXRECON_TEST_PG_CTL"), nullptr)
        << "WXRECON_TEST_PG_CTL is not set: run through scripts/test.sh or scripts/crash-campaign.sh";
    crash_campaign campaign(options_from_environment());
    campaign.run();
}

}  // namespace
}  // namespace wxrecon::testing
