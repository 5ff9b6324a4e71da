// The reconciled day, end to end (issue 13): wxrecond and wxpay-sim on a real PostgreSQL. 2,000 orders
// registered and paid at WeChat Pay on a Beijing day two days back, with some notifications lost and no
// order ever queried (the poller's first query is an hour away), a hand payment nobody registered, a refund
// made only at WeChat Pay, fees WeChat Pay debited beyond what the trade bill shows, a payment at
// 23:59:59.5 — and an APIv2 merchant whose day is clean. After the bills are fetched, every difference is
// found exactly once with its kind, nothing else is flagged, the ledger holds every payment, and fetching
// the day again changes nothing.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <pqxx/pqxx>

#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "base/json_writer.hpp"
#include "config/key_material.hpp"
#include "crypto/crypto.hpp"
#include "sim_env.hpp"
#include "store/db_pool.hpp"
#include "store/ledger.hpp"
#include "test_env.hpp"
#include "workflow/bill_fetcher.hpp"

namespace wxrecon::testing {
namespace {

using namespace std::chrono_literals;
using kind_and_order = std::pair<std::string, std::string>;

// The Beijing day `back` days before today, yyyy-MM-dd.
std::string beijing_day_back(int back) {
    using namespace std::chrono;
    const auto today = floor<days>(system_clock::now() + hours(8));
    const year_month_day d{today - days(back)};
    char text[16];
    std::snprintf(text, sizeof text, "%04d-%02u-%02u", static_cast<int>(d.year()),
                  static_cast<unsigned>(d.month()), static_cast<unsigned>(d.day()));
    return text;
}

class BillDayEndToEnd : public ::testing::Test {
protected:
    void SetUp() override {
        sim::sim_options options;
        options.time_scale = 0.001;
        options.seed = 20261203;
        sim_ = std::make_unique<running_simulator>(keys_, options);
        cfg_ = sim_daemon_config(keys_, db_.url(), sim_->port());
        daemon_ = std::make_unique<running_daemon>(cfg_);
        auto store = config::load_key_store(cfg_, std::time(nullptr));
        ASSERT_TRUE(store.has_value()) << store.err().message;
        key_store_ = std::move(*store);
        pool_ = std::make_unique<store::db_pool>(db_.url(), 2, 64, store::prepare_ledger_connection);
        ledger_ = std::make_unique<store::ledger>(*pool_);
        work_ = std::filesystem::temp_directory_path() / ("wxrecon-bill-day-" + crypto::random_alnum(8));
        std::filesystem::create_directories(work_);
    }
    void TearDown() override {
        ledger_.reset();
        if (pool_) pool_->stop();
        daemon_.reset();
        sim_.reset();
        std::filesystem::remove_all(work_);
    }

    const std::string& mchid(std::size_t i) const { return keys_.keys.merchants.at(i).mchid; }
    std::string notify_url(std::size_t i) const {
        const bool v3 = keys_.keys.merchants.at(i).version == sim::api_version::v3;
        return "http://127.0.0.1:" + std::to_string(daemon_->port()) +
               (v3 ? "/wxpay/v3/notify/" : "/wxpay/v2/notify/") + mchid(i);
    }
    void control(const std::string& target, const std::string& json) {
        sim_control(sim_->port(), target, json);
    }

    // Registered in the ledger (as the application's SQL would), placed and paid at the simulator.
    void paid_orders(std::size_t i, const std::string& prefix, int count, std::int64_t amount,
                     const std::string& at, std::int64_t coupon = 0) {
        db_.exec("INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total) SELECT '" + mchid(i) +
                 "', '" + prefix + "' || g, " + std::to_string(amount) + " FROM generate_series(1, " +
                 std::to_string(count) + ") g");
        control("/sim/orders", json_object()
                                   .add("mchid", mchid(i))
                                   .add("prefix", prefix)
                                   .add("count", count)
                                   .add("amount", amount)
                                   .add("notify_url", notify_url(i))
                                   .str());
        control("/sim/pay", json_object()
                                .add("mchid", mchid(i))
                                .add("prefix", prefix)
                                .add("count", count)
                                .add("at", at)
                                .add("coupon", coupon)
                                .str());
    }

    void wait_for_deliveries() {
        const auto give_up = std::chrono::steady_clock::now() + 300s;
        std::string body;
        while (std::chrono::steady_clock::now() < give_up) {
            body = http_get(sim_->port(), "/sim/stats").body;
            if (body.find("\"pending\":0,") != std::string::npos) return;
            std::this_thread::sleep_for(100ms);
        }
        FAIL() << "deliveries still pending: " << body;
    }

    // Orders whose payment notification the simulator dropped and never delivered.
    std::set<std::string> never_notified(std::size_t i) {
        const auto r = http_get(sim_->port(), "/sim/deliveries?limit=100000");
        simdjson::dom::parser parser;
        const simdjson::padded_string text(r.body);
        const auto doc = parser.parse(text);
        std::set<std::string> dropped, acknowledged;
        for (auto d : doc["deliveries"].get_array()) {
            if (std::string_view(d["mchid"]) != mchid(i) || !std::string_view(d["out_refund_no"]).empty())
                continue;
            const std::string no{std::string_view(d["out_trade_no"])};
            if (bool(d["dropped"])) dropped.insert(no);
            if (bool(d["acknowledged"])) acknowledged.insert(no);
        }
        std::set<std::string> out;
        for (const auto& no : dropped)
            if (!acknowledged.count(no)) out.insert(no);
        return out;
    }

    workflow::bill_day_result fetch(std::size_t i, const std::string& day) {
        workflow::bill_fetch_policy policy;
        policy.work_dir = work_;
        policy.not_ready_wait = 10ms;
        policy.cross_day_tolerance = 10min;
        boost::asio::io_context io;
        workflow::bill_fetcher fetcher(io.get_executor(), *pool_, *ledger_, nullptr, wall_clock{}, policy);
        auto done = boost::asio::co_spawn(
            io, fetcher.fetch_day(cfg_.merchants.at(i), *key_store_.find(mchid(i)), day),
            boost::asio::use_future);
        io.run();
        return done.get();
    }

    std::set<kind_and_order> discrepancies_of(std::size_t i) const {
        pqxx::connection conn(db_.url());
        pqxx::nontransaction tx(conn);
        std::set<kind_and_order> out;
        for (const auto& row : tx.exec("SELECT kind, out_trade_no FROM wxrecon.discrepancies WHERE mchid = " +
                                       tx.quote(mchid(i))))
            EXPECT_TRUE(out.insert({row[0].as<std::string>(), row[1].as<std::string>()}).second)
                << row[0].as<std::string>() << " " << row[1].as<std::string>() << " flagged twice";
        return out;
    }

    scratch_database db_;
    sim_key_dir keys_{2};  // an APIv3 merchant, an APIv2 merchant
    std::unique_ptr<running_simulator> sim_;
    config::config cfg_;
    std::unique_ptr<running_daemon> daemon_;
    config::key_store key_store_;
    std::unique_ptr<store::db_pool> pool_;
    std::unique_ptr<store::ledger> ledger_;
    std::filesystem::path work_;
};

TEST_F(BillDayEndToEnd, EveryDifferenceIsFoundOnceAndNothingElse) {
    const std::string day = beijing_day_back(2);
    const std::string at = day + "T";
    control("/sim/faults", R"({"mchid":")" + mchid(0) + R"(","drop":0.05})");

    // Merchant 0 (APIv3): 2,000 orders, a coupon among them and one paid half a second before midnight.
    paid_orders(0, "DAYORD-", 1998, 1990, at + "12:00:00+08:00");
    paid_orders(0, "COUPON-", 1, 3000, at + "13:00:00+08:00", 500);
    paid_orders(0, "LATEPAY-", 1, 250, at + "23:59:59.5+08:00");
    // Merchant 1 (APIv2): a clean day.
    paid_orders(1, "V2ORD-", 20, 800, at + "10:00:00+08:00");
    wait_for_deliveries();

    // What the ledger never heard of: a hand payment, a refund made at WeChat Pay, fees beyond the bill.
    control("/sim/hand-payment", json_object()
                                     .add("mchid", mchid(0))
                                     .add("out_trade_no", "HANDPAY-1")
                                     .add("amount", 3300)
                                     .add("at", at + "15:00:00+08:00")
                                     .str());
    control("/sim/refund", json_object()
                               .add("mchid", mchid(0))
                               .add("out_trade_no", "DAYORD-7")
                               .add("amount", 300)
                               .add("at", at + "16:00:00+08:00")
                               .add("notify", false)
                               .str());
    control("/sim/fee-adjustment",
            json_object().add("mchid", mchid(0)).add("bill_date", day).add("amount", 37).str());

    const auto cut = never_notified(0);
    ASSERT_GT(cut.size(), 40u) << "about 5 % of 2,000 notifications are dropped";
    ASSERT_LT(cut.size(), 200u);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.orders WHERE mchid = '" + mchid(0) +
                        "' AND state = 'NOTPAY'"),
              static_cast<long>(cut.size()))
        << "every order whose notification was lost is unpaid in the ledger, and no other";

    const auto first = fetch(0, day);
    std::set<kind_and_order> expected = {
        {"missing_in_ledger", "HANDPAY-1"}, {"refund_missing_in_ledger", "DAYORD-7"}, {"fee_mismatch", day}};
    for (const auto& no : cut) expected.insert({"missing_in_ledger", no});
    EXPECT_EQ(discrepancies_of(0), expected);
    EXPECT_EQ(first.day.status, "differences");
    EXPECT_EQ(first.day.differences, static_cast<std::int64_t>(expected.size()));
    EXPECT_EQ(first.day.bill_payments, 2001);
    EXPECT_EQ(first.day.bill_paid_fen, 1998 * 1990 + 3000 + 250 + 3300);
    EXPECT_EQ(first.day.ledger_payments, 2001) << "the lost payments and the hand payment, now from the bill";
    EXPECT_EQ(first.payments_applied, cut.size() + 1);

    // The ledger ends right: every payment, the hand payment created from the bill's line.
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.orders WHERE mchid = '" + mchid(0) +
                        "' AND state <> 'SUCCESS'"),
              0);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.orders WHERE mchid = '" + mchid(0) +
                        "' AND state_source = 'bill'"),
              static_cast<long>(cut.size()) + 1);
    EXPECT_EQ(db_.scalar("SELECT origin || ' ' || amount_total || ' ' || payer_total FROM wxrecon.orders "
                         "WHERE out_trade_no = 'HANDPAY-1'"),
              "bill 3300 3300");
    EXPECT_EQ(db_.scalar("SELECT payer_total FROM wxrecon.orders WHERE out_trade_no = 'COUPON-1'"), "2500");
    EXPECT_EQ(db_.scalar("SELECT to_char(success_time AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD HH24:MI:SS') "
                         "FROM wxrecon.orders WHERE out_trade_no = 'LATEPAY-1'"),
              day + " 23:59:59");

    // The APIv2 merchant's day is balanced.
    const auto v2 = fetch(1, day);
    EXPECT_EQ(v2.day.status, "balanced") << v2.day.json();
    EXPECT_EQ(v2.day.bill_payments, 20);
    EXPECT_EQ(discrepancies_of(1), std::set<kind_and_order>{});

    // Again: the same files, nothing new, nothing resolved, no fact applied twice.
    const auto ids =
        db_.scalar("SELECT string_agg(id::text || status, ',' ORDER BY id) FROM wxrecon.discrepancies");
    const auto events = db_.count("SELECT count(*) FROM wxrecon.payment_events");
    const auto again = fetch(0, day);
    for (const auto& f : again.files) EXPECT_EQ(f.outcome, store::bill_store_outcome::same_file);
    EXPECT_EQ(again.payments_applied, 0u);
    EXPECT_EQ(discrepancies_of(0), expected);
    EXPECT_EQ(db_.scalar("SELECT string_agg(id::text || status, ',' ORDER BY id) FROM wxrecon.discrepancies"),
              ids);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events"), events);
    EXPECT_EQ(again.day.differences, first.day.differences);
}

}  // namespace
}  // namespace wxrecon::testing
