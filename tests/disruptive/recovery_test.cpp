// The operators' recovery tools with the real binary (issue 16, Prove 5): `wxrecond replay` re-verifies a
// stored notification with today's keys and applies it through the fact path, idempotently; `wxrecond
// repoll` queries one order at WeChat Pay (wxpay-sim) now and applies the answer.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "base/time.hpp"
#include "crypto/crypto.hpp"
#include "daemon_process.hpp"
#include "protocol/v3.hpp"
#include "sim_env.hpp"
#include "test_env.hpp"

namespace wxrecon::testing {
namespace {

struct command_result {
    int status = -1;
    std::string out, err;
};

command_result wxrecond(const std::string& config, const std::string& args) {
    const std::string out = config + ".out", err = config + ".err";
    // WXRECON_TEST_WRAPPER (valgrind, gdb -batch ...) runs the binary under a tool when a failure needs it.
    const char* wrapper = std::getenv("WXRECON_TEST_WRAPPER");
    const int w = std::system((std::string(wrapper ? wrapper : "") + " " + WXRECOND_PATH + " --config " +
                               config + " " + args + " >" + out + " 2>" + err)
                                  .c_str());
    command_result r;
    r.status = WIFEXITED(w) ? WEXITSTATUS(w) : -1;
    std::ifstream o(out), e(err);
    r.out.assign(std::istreambuf_iterator<char>(o), {});
    r.err.assign(std::istreambuf_iterator<char>(e), {});
    return r;
}

std::string read_text(const std::filesystem::path& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

bool wait_for(const scratch_database& db, const std::string& sql) {
    for (int i = 0; i < 100; ++i) {
        if (db.scalar(sql) != "0") return true;
        std::this_thread::sleep_for(50ms);
    }
    return false;
}

// WeChat Pay moved to a new public key; the notification it signed with the new one was refused (unknown
// serial) until the operator put the new key into the configuration. Replayed then, it is applied once.
TEST(Recovery, ANotificationRejectedForAnUnknownSerialIsAppliedByReplayOnceTheKeyIsConfigured) {
    scratch_database db;
    auto m = make_merchant_fixture();
    daemon_process daemon(*m, db.url());
    ASSERT_TRUE(daemon.start()) << daemon.stderr_text();
    db.exec(std::string("INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, appid) VALUES ('") +
            test_mchid + "', 'REPLAY-000001', 100, '" + test_appid + "')");

    const auto new_key = crypto::generate_rsa_key();
    ASSERT_TRUE(new_key.has_value());
    const std::string new_key_id = "PUB_KEY_ID_0119000001092026120400000002";
    domain::payment_fact p;
    p.out_trade_no = "REPLAY-000001";
    p.state = domain::trade_state::success;
    p.appid = test_appid;
    p.transaction_id = "4200000000000000000000000001";
    p.trade_type = "JSAPI";
    p.amount_total = 100;
    p.payer_total = 100;
    p.payer_openid = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o";
    p.success_time = std::time(nullptr) * 1'000'000LL;
    const protocol::v3::notification_spec spec{"EV-REPLAY-1",
                                               format_rfc3339(std::time(nullptr)),
                                               "TRANSACTION.SUCCESS",
                                               "支付成功",
                                               "transaction",
                                               "transaction",
                                               protocol::v3::transaction_json(test_mchid, p)};
    const auto signed_with_new =
        protocol::v3::make_notification(spec, m->apiv3_key, *new_key, new_key_id, std::time(nullptr));
    ASSERT_TRUE(signed_with_new.has_value());
    EXPECT_EQ(send(daemon.port(), *signed_with_new), 401);
    ASSERT_TRUE(wait_for(db, "SELECT count(*) FROM wxrecon.rejected_notifications"));
    EXPECT_EQ(daemon.stop(SIGTERM), 0);
    const std::string rejected_id = db.scalar("SELECT id FROM wxrecon.rejected_notifications");
    EXPECT_EQ(db.scalar("SELECT reason FROM wxrecon.rejected_notifications"), "unknown_serial");
    const std::string config = (m->dir / "wxrecond.toml").string();

    // With the old key only, the replay is refused again, for the same reason, and nothing is recorded.
    auto replayed = wxrecond(config, "replay --rejected " + rejected_id);
    EXPECT_EQ(replayed.status, 4) << replayed.out << replayed.err;
    EXPECT_NE(replayed.out.find(R"("result":"rejected")"), std::string::npos) << replayed.out;
    EXPECT_NE(replayed.out.find("unknown_serial"), std::string::npos) << replayed.out;
    EXPECT_EQ(db.scalar("SELECT state FROM wxrecon.orders"), "NOTPAY");
    EXPECT_EQ(db.count("SELECT count(*) FROM wxrecon.rejected_notifications"), 1);
    EXPECT_EQ(db.scalar("SELECT replay_result FROM wxrecon.rejected_notifications"), "rejected");

    // The operator configures the new key: the replay verifies (as of the moment it first arrived, so its
    // timestamp is fresh whenever the replay runs) and applies it through the fact path.
    {
        std::ofstream(m->dir / "new_pub_key.pem") << crypto::public_key_to_pem(new_key->public_part());
        std::string toml = read_text(config);
        toml.replace(toml.find("\"pub_key.pem\""), 13, "\"new_pub_key.pem\"");
        toml.replace(toml.find(test_pub_key_id), new_key_id.size(), new_key_id);
        std::ofstream(config) << toml;
    }
    replayed = wxrecond(config, "replay --rejected " + rejected_id);
    EXPECT_EQ(replayed.status, 0) << replayed.out << replayed.err;
    EXPECT_NE(replayed.out.find(R"("result":"accepted")"), std::string::npos) << replayed.out;
    EXPECT_NE(replayed.out.find(R"("rejected_as":"unknown_serial")"), std::string::npos) << replayed.out;
    EXPECT_EQ(db.scalar("SELECT state || ' ' || transaction_id FROM wxrecon.orders"),
              "SUCCESS 4200000000000000000000000001");
    EXPECT_EQ(db.scalar("SELECT replay_result FROM wxrecon.rejected_notifications"), "accepted");
    EXPECT_EQ(db.scalar("SELECT source || ' ' || notify_id || ' ' || (raw_body IS NOT NULL)"
                        " FROM wxrecon.payment_events"),
              "notify_v3 EV-REPLAY-1 true");

    // Idempotent: again, and the event itself replayed, are duplicates; nothing new is recorded.
    replayed = wxrecond(config, "replay --rejected " + rejected_id);
    EXPECT_EQ(replayed.status, 0) << replayed.out << replayed.err;
    EXPECT_NE(replayed.out.find(R"("result":"duplicate")"), std::string::npos) << replayed.out;
    const std::string event_id = db.scalar("SELECT id FROM wxrecon.payment_events");
    replayed = wxrecond(config, "replay --event " + event_id);
    EXPECT_EQ(replayed.status, 0) << replayed.out << replayed.err;
    EXPECT_NE(replayed.out.find(R"("result":"duplicate")"), std::string::npos) << replayed.out;
    EXPECT_EQ(db.count("SELECT count(*) FROM wxrecon.payment_events"), 1);
    EXPECT_EQ(db.count("SELECT count(*) FROM wxrecon.rejected_notifications"), 1);

    // No such row, and bad usage.
    replayed = wxrecond(config, "replay --rejected 999999");
    EXPECT_EQ(replayed.status, 1);
    EXPECT_NE(replayed.err.find("no rejected notification with id 999999"), std::string::npos)
        << replayed.err;
    EXPECT_EQ(wxrecond(config, "replay --event x").status, 1);
    EXPECT_EQ(wxrecond(config, "replay").status, 1);
}

// A forgery stays refused however often it is replayed, and evidence that is not a notification (a query's
// event) is not replayed at all.
TEST(Recovery, ForgeriesStayRefusedAndQueryEventsAreNotReplayed) {
    scratch_database db;
    auto m = make_merchant_fixture();
    daemon_process daemon(*m, db.url());
    ASSERT_TRUE(daemon.start()) << daemon.stderr_text();
    const auto forger = crypto::generate_rsa_key();
    ASSERT_TRUE(forger.has_value());
    EXPECT_EQ(send(daemon.port(),
                   payment_notification(*m, "FORGED-000001", "4200000000000000000000000009", &*forger)),
              401);
    ASSERT_TRUE(wait_for(db, "SELECT count(*) FROM wxrecon.rejected_notifications"));
    EXPECT_EQ(daemon.stop(SIGTERM), 0);
    const std::string config = (m->dir / "wxrecond.toml").string();
    auto replayed =
        wxrecond(config, "replay --rejected " + db.scalar("SELECT id FROM wxrecon.rejected_notifications"));
    EXPECT_EQ(replayed.status, 4) << replayed.out << replayed.err;
    EXPECT_NE(replayed.out.find("bad_signature"), std::string::npos) << replayed.out;
    EXPECT_EQ(db.count("SELECT count(*) FROM wxrecon.payment_events"), 0);
    EXPECT_EQ(db.count("SELECT count(*) FROM wxrecon.orders"), 0);

    db.exec(std::string("INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total) VALUES ('") +
            test_mchid + "', 'QUERIED-0001', 100)");
    db.exec(std::string(
                "INSERT INTO wxrecon.payment_events (mchid, out_trade_no, source, event_type, trade_state,"
                " payload) VALUES ('") +
            test_mchid + "', 'QUERIED-0001', 'query_v3', 'QUERY', 'NOTPAY', '{}')");
    replayed = wxrecond(config, "replay --event " + db.scalar("SELECT id FROM wxrecon.payment_events"));
    EXPECT_EQ(replayed.status, 4) << replayed.out << replayed.err;
    EXPECT_NE(replayed.err.find("came from query_v3"), std::string::npos) << replayed.err;
}

// An order whose notification never came, paid at WeChat Pay: repoll finds it now, whatever its schedule;
// again it is a duplicate. A settled order is queried too (it may have been refunded); an unknown order and
// one leased by a running poll are refused.
TEST(Recovery, RepollQueriesOneOrderNowAndAppliesTheAnswer) {
    scratch_database db;
    sim_key_dir keys(1);
    running_simulator sim(keys, sim::sim_options{});
    const std::string mchid = keys.keys.merchants[0].mchid;
    std::string merchants = read_text(keys.dir / "wxrecond-merchants.toml");
    const std::string from = "http://127.0.0.1:8480", to = "http://127.0.0.1:" + std::to_string(sim.port());
    for (std::size_t pos = 0; (pos = merchants.find(from, pos)) != std::string::npos; pos += to.size())
        merchants.replace(pos, from.size(), to);
    const std::string config = (keys.dir / "wxrecond.toml").string();
    std::ofstream(config)
        << "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[database]\nurl = \""
        << db.url() << "\"\n"
        << merchants;

    sim_control(sim.port(), "/sim/orders",
                R"({"mchid":")" + mchid +
                    R"(","prefix":"REPOLL-","count":2,"amount":100,"notify_url":"http://127.0.0.1:9/lost"})");
    sim_control(sim.port(), "/sim/pay", R"({"mchid":")" + mchid + R"(","prefix":"REPOLL-","count":1})");
    auto migrated = wxrecond(config, "migrate");
    ASSERT_EQ(migrated.status, 0) << migrated.err;
    db.exec("INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, appid, next_poll_at) VALUES ('" +
            mchid + "', 'REPOLL-1', 100, '" + keys.keys.merchants[0].appid +
            "', now() + interval '1 hour'), ('" + mchid + "', 'REPOLL-2', 100, '" +
            keys.keys.merchants[0].appid + "', now() + interval '1 hour')");

    auto polled = wxrecond(config, "repoll " + mchid + " REPOLL-1");
    EXPECT_EQ(polled.status, 0) << polled.out << polled.err;
    EXPECT_NE(polled.out.find(R"("queried":true)"), std::string::npos) << polled.out;
    EXPECT_NE(polled.out.find(R"("state": "SUCCESS")"), std::string::npos) << polled.out;
    EXPECT_EQ(db.scalar("SELECT state FROM wxrecon.orders WHERE out_trade_no = 'REPOLL-1'"), "SUCCESS");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM wxrecon.payment_events WHERE out_trade_no = 'REPOLL-1'"
                        " AND source = 'query_v3'"),
              "1");
    EXPECT_EQ(db.scalar("SELECT poll_lease_owner IS NULL AND next_poll_at IS NULL FROM wxrecon.orders"
                        " WHERE out_trade_no = 'REPOLL-1'"),
              "t");

    polled = wxrecond(config, "repoll " + mchid + " REPOLL-1");  // settled: queried again, nothing new
    EXPECT_EQ(polled.status, 0) << polled.out << polled.err;
    EXPECT_EQ(db.scalar("SELECT count(*) FROM wxrecon.payment_events WHERE out_trade_no = 'REPOLL-1'"), "1");

    // Unpaid: queried, still open, its schedule kept and nothing closed.
    polled = wxrecond(config, "repoll " + mchid + " REPOLL-2");
    EXPECT_EQ(polled.status, 0) << polled.out << polled.err;
    EXPECT_EQ(db.scalar("SELECT state || ' ' || (next_poll_at IS NOT NULL) || ' ' || poll_attempts"
                        " FROM wxrecon.orders WHERE out_trade_no = 'REPOLL-2'"),
              "NOTPAY true 1");

    polled = wxrecond(config, "repoll " + mchid + " REPOLL-404");
    EXPECT_EQ(polled.status, 1);
    EXPECT_NE(polled.err.find("no order REPOLL-404"), std::string::npos) << polled.err;
    db.exec(
        "UPDATE wxrecon.orders SET poll_lease_until = now() + interval '1 minute', poll_lease_owner = 'other'"
        " WHERE out_trade_no = 'REPOLL-2'");
    polled = wxrecond(config, "repoll " + mchid + " REPOLL-2");
    EXPECT_EQ(polled.status, 1);
    EXPECT_NE(polled.err.find("being polled"), std::string::npos) << polled.err;
    EXPECT_EQ(wxrecond(config, "repoll 1234567890 REPOLL-1").status, 2);
    EXPECT_EQ(wxrecond(config, "repoll " + mchid).status, 1);
}

}  // namespace
}  // namespace wxrecon::testing
