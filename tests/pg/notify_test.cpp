// Notification intake end to end against a real PostgreSQL: every row of the
// reply table of docs/interfaces.md §3.2, checked on the HTTP reply and on the
// rows it leaves behind.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <pqxx/pqxx>
#include <sstream>
#include <thread>
#include <vector>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include "base/encoding.hpp"
#include "base/metrics.hpp"
#include "base/time.hpp"
#include "protocol/v2.hpp"
#include "protocol/v3.hpp"
#include "store/db_pool.hpp"
#include "store/migrations.hpp"
#include "store/rejected_log.hpp"
#include "test_env.hpp"

namespace wxrecon::testing {
namespace {

using headers = std::vector<std::pair<std::string, std::string>>;

std::int64_t now_unix() {
    return std::time(nullptr);
}

class NotifyTest : public ::testing::Test {
protected:
    void SetUp() override {
        merchant_ = make_merchant_fixture();
        daemon_ = std::make_unique<running_daemon>(make_config(*merchant_, db_.url()));
        conn_ = std::make_unique<pqxx::connection>(db_.url());
    }
    void TearDown() override {
        daemon_.reset();
        conn_.reset();
    }

    void register_order(const std::string& out_trade_no, std::int64_t total) {
        pqxx::work tx(*conn_);
        tx.exec_params(
            "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, appid) VALUES ($1,$2,$3,$4)",
            test_mchid, out_trade_no, total, test_appid);
        tx.commit();
    }

    domain::payment_fact payment(const std::string& out_trade_no, std::int64_t total,
                                 const std::string& txid) {
        domain::payment_fact p;
        p.out_trade_no = out_trade_no;
        p.state = domain::trade_state::success;
        p.state_desc = "支付成功";
        p.appid = test_appid;
        p.transaction_id = txid;
        p.trade_type = "JSAPI";
        p.bank_type = "OTHERS";
        p.payer_openid = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o";
        p.amount_total = total;
        p.payer_total = total;
        p.success_time = now_unix() * 1'000'000;
        return p;
    }

    protocol::v3::signed_notification notification(const std::string& plaintext,
                                                   const std::string& event_type, const std::string& id,
                                                   std::int64_t ts = 0,
                                                   const std::string& serial = test_pub_key_id) {
        protocol::v3::notification_spec spec;
        spec.id = id;
        spec.create_time = format_rfc3339(now_unix());
        spec.event_type = event_type;
        spec.summary = "支付成功";
        const bool refund = event_type.starts_with("REFUND.");
        spec.original_type = refund ? "refund" : "transaction";
        spec.associated_data = refund ? "refund" : "transaction";
        spec.plaintext = plaintext;
        auto n = protocol::v3::make_notification(spec, merchant_->apiv3_key, merchant_->wechatpay_key, serial,
                                                 ts ? ts : now_unix());
        EXPECT_TRUE(n.has_value());
        return *n;
    }

    http_response send(const protocol::v3::signed_notification& n, const std::string& mchid = test_mchid) {
        return http_post(daemon_->port(), "/wxpay/v3/notify/" + mchid,
                         {{"Content-Type", "application/json"},
                          {"Wechatpay-Timestamp", n.timestamp},
                          {"Wechatpay-Nonce", n.nonce},
                          {"Wechatpay-Signature", n.signature},
                          {"Wechatpay-Serial", n.serial},
                          {"Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048"}},
                         n.body);
    }

    // Rejected rows are written off the fact path, asynchronously: wait for them.
    long rejected_with(const std::string& reason, long expected) {
        long n = 0;
        for (int i = 0; i < 200; ++i) {
            n = db_.count("SELECT count(*) FROM wxrecon.rejected_notifications WHERE reason = '" + reason +
                          "'");
            if (n >= expected) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return n;
    }

    scratch_database db_;
    std::unique_ptr<merchant_fixture> merchant_;
    std::unique_ptr<running_daemon> daemon_;
    std::unique_ptr<pqxx::connection> conn_;
};

TEST_F(NotifyTest, PaymentIsAppliedOnceAndDuplicatesChangeNothing) {
    register_order("ORDER-T1", 100);
    const auto n =
        notification(protocol::v3::transaction_json(test_mchid, payment("ORDER-T1", 100, "4200000001")),
                     "TRANSACTION.SUCCESS", "EV-1");
    EXPECT_EQ(send(n).status, 204);
    EXPECT_EQ(db_.scalar("SELECT state FROM wxrecon.orders WHERE out_trade_no = 'ORDER-T1'"), "SUCCESS");
    EXPECT_EQ(db_.scalar("SELECT state_source FROM wxrecon.orders WHERE out_trade_no = 'ORDER-T1'"),
              "notify");
    EXPECT_EQ(db_.scalar("SELECT transaction_id FROM wxrecon.orders WHERE out_trade_no = 'ORDER-T1'"),
              "4200000001");
    EXPECT_EQ(
        db_.scalar("SELECT notified_at IS NOT NULL FROM wxrecon.orders WHERE out_trade_no = 'ORDER-T1'"),
        "t");
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events"), 1);
    EXPECT_EQ(db_.scalar("SELECT raw_body FROM wxrecon.payment_events"), n.body);
    EXPECT_EQ(db_.scalar("SELECT payload->>'out_trade_no' FROM wxrecon.payment_events"), "ORDER-T1");
    EXPECT_EQ(db_.scalar("SELECT raw_headers->>'Wechatpay-Signature' FROM wxrecon.payment_events"),
              n.signature);
    // Only the headers re-verifying needs are kept with the fact; the client's others are not evidence.
    EXPECT_EQ(db_.scalar("SELECT string_agg(k, ',' ORDER BY k) FROM wxrecon.payment_events,"
                         " jsonb_object_keys(raw_headers) AS k"),
              "Content-Type,Wechatpay-Nonce,Wechatpay-Serial,Wechatpay-Signature,Wechatpay-Signature-Type,"
              "Wechatpay-Timestamp");

    // The same notification again, and a re-signed copy with a new id but the same fact identity.
    EXPECT_EQ(send(n).status, 204);
    const auto resent =
        notification(protocol::v3::transaction_json(test_mchid, payment("ORDER-T1", 100, "4200000001")),
                     "TRANSACTION.SUCCESS", "EV-1-retry");
    EXPECT_EQ(send(resent).status, 204);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events"), 1);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.discrepancies"), 0);
}

// A forged request may carry any bytes. Each kind of malformed UTF-8 (PostgreSQL's text refuses all of
// them) and a NUL still leaves its rejected row, the bytes replaced by U+FFFD, instead of making the
// row's insert fail and the forgery vanish.
TEST_F(NotifyTest, ForgeriesWithHostileBytesAreStillRecordedAsRejected) {
    const std::vector<std::pair<std::string, std::string>> hostile = {
        {"surrogate", "\xED\xA0\x80"},         {"overlong 2-byte", "\xC0\xAF"},
        {"overlong 3-byte", "\xE0\x80\xAF"},   {"overlong 4-byte", "\xF0\x80\x80\xAF"},
        {"past U+10FFFF", "\xF4\x90\x80\x80"}, {"F5 lead", "\xF5\x80\x80\x80"},
        {"stray continuation", "\x80"},        {"cut short", "\xE4\xB8"},
        {"NUL", std::string(1, '\0')},
    };
    long expected = 0;
    for (const auto& [name, bytes] : hostile) {
        auto forged =
            notification(protocol::v3::transaction_json(test_mchid, payment("ORDER-U8", 100, "4200000099")),
                         "TRANSACTION.SUCCESS", "EV-U8-" + std::to_string(expected));
        forged.body.insert(forged.body.size() - 1, ",\"x\":\"" + bytes + "\"");
        EXPECT_EQ(send(forged).status, 401) << name;
        EXPECT_EQ(rejected_with("bad_signature", ++expected), expected) << name;
    }
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.rejected_notifications WHERE body LIKE '%\"x\":\"' || "
                        "U&'\\FFFD' || '%'"),
              expected);
}

// Defence in depth: a message WeChat Pay signed that contradicts itself is refused with a 400 (rejected,
// malformed) rather than applied or answered 503 (which WeChat would retry for a day).
TEST_F(NotifyTest, SignedNotificationsThatContradictThemselvesAreRefused) {
    register_order("X6-ORDER", 100);
    auto not_paid = payment("X6-ORDER", 100, "4200000066");
    not_paid.state = domain::trade_state::notpay;
    EXPECT_EQ(send(notification(protocol::v3::transaction_json(test_mchid, not_paid), "TRANSACTION.SUCCESS",
                                "EV-6a"))
                  .status,
              400);
    EXPECT_EQ(rejected_with("malformed", 1), 1);

    auto no_amount = payment("X6-ORDER", 100, "4200000066");
    no_amount.amount_total.reset();
    no_amount.payer_total.reset();
    EXPECT_EQ(send(notification(protocol::v3::transaction_json(test_mchid, no_amount), "TRANSACTION.SUCCESS",
                                "EV-6b"))
                  .status,
              400);
    EXPECT_EQ(rejected_with("malformed", 2), 2);

    domain::refund_fact closed;
    closed.out_trade_no = "X6-ORDER";
    closed.out_refund_no = "X6-R1";
    closed.refund_id = "50000000066";
    closed.transaction_id = "4200000066";
    closed.status = domain::refund_status::closed;
    closed.amount_refund = 50;
    closed.amount_total = 100;
    EXPECT_EQ(
        send(notification(protocol::v3::refund_json(test_mchid, closed), "REFUND.SUCCESS", "EV-6c")).status,
        400);
    EXPECT_EQ(rejected_with("malformed", 3), 3);

    auto negative = closed;
    negative.status = domain::refund_status::success;
    negative.amount_total = -100;
    EXPECT_EQ(
        send(notification(protocol::v3::refund_json(test_mchid, negative), "REFUND.SUCCESS", "EV-6d")).status,
        400);
    EXPECT_EQ(rejected_with("malformed", 4), 4);

    // An order number WeChat Pay would never issue (its rule: 6 to 32 of [0-9A-Za-z_-|*]) is refused
    // before the ledger, for payments and refunds alike, and never becomes an order.
    int refused = 4;
    for (const std::string& bad :
         std::vector<std::string>{"X6", "X6-ORDER/../x", "X6 ORDER", std::string(33, '7')}) {
        const auto paid = payment(bad, 100, "4200000067");
        EXPECT_EQ(send(notification(protocol::v3::transaction_json(test_mchid, paid), "TRANSACTION.SUCCESS",
                                    "EV-6p-" + std::to_string(refused)))
                      .status,
                  400)
            << bad;
        auto refunded = closed;
        refunded.status = domain::refund_status::success;
        refunded.out_trade_no = bad;
        EXPECT_EQ(send(notification(protocol::v3::refund_json(test_mchid, refunded), "REFUND.SUCCESS",
                                    "EV-6r-" + std::to_string(refused)))
                      .status,
                  400)
            << bad;
        refused += 2;
        EXPECT_EQ(rejected_with("malformed", refused), refused) << bad;
    }
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.orders"), 1);

    EXPECT_EQ(db_.scalar("SELECT state FROM wxrecon.orders WHERE out_trade_no = 'X6-ORDER'"), "NOTPAY");
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.refunds"), 0);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events"), 0);
}

TEST_F(NotifyTest, PlatformCertificateAndPublicKeyModesAreAcceptedSideBySide) {
    register_order("ORDER-T11", 100);
    register_order("ORDER-T12", 100);
    EXPECT_EQ(
        send(notification(protocol::v3::transaction_json(test_mchid, payment("ORDER-T11", 100, "4200000011")),
                          "TRANSACTION.SUCCESS", "EV-11", 0, test_platform_serial))
            .status,
        204);
    EXPECT_EQ(
        send(notification(protocol::v3::transaction_json(test_mchid, payment("ORDER-T12", 100, "4200000012")),
                          "TRANSACTION.SUCCESS", "EV-12", 0, test_pub_key_id))
            .status,
        204);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.orders WHERE state = 'SUCCESS'"), 2);
}

TEST_F(NotifyTest, ConcurrentDeliveriesProduceOneEventAndOneStateChange) {
    register_order("ORDER-T2", 100);
    const auto n =
        notification(protocol::v3::transaction_json(test_mchid, payment("ORDER-T2", 100, "4200000002")),
                     "TRANSACTION.SUCCESS", "EV-2");
    std::vector<std::thread> senders;
    std::atomic<int> ok{0};
    for (int i = 0; i < 12; ++i)
        senders.emplace_back([&] {
            if (send(n).status == 204) ++ok;
        });
    for (auto& t : senders) t.join();
    EXPECT_EQ(ok.load(), 12);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events"), 1);
    EXPECT_EQ(db_.scalar("SELECT state FROM wxrecon.orders WHERE out_trade_no = 'ORDER-T2'"), "SUCCESS");
}

TEST_F(NotifyTest, UnknownOrderIsCreatedAndFlagged) {
    const auto n =
        notification(protocol::v3::transaction_json(test_mchid, payment("NOBODY", 250, "4200000003")),
                     "TRANSACTION.SUCCESS", "EV-3");
    EXPECT_EQ(send(n).status, 204);
    EXPECT_EQ(db_.scalar("SELECT origin || ' ' || state || ' ' || amount_total FROM wxrecon.orders"),
              "notify SUCCESS 250");
    EXPECT_EQ(db_.scalar("SELECT kind FROM wxrecon.discrepancies WHERE resolved_at IS NULL"),
              "unknown_order");
}

TEST_F(NotifyTest, AmountAndAppidMismatchesAreAppliedAndFlagged) {
    register_order("ORDER-T4", 100);
    auto p = payment("ORDER-T4", 90, "4200000004");
    p.appid = "wxsomeoneelse";
    EXPECT_EQ(send(notification(protocol::v3::transaction_json(test_mchid, p), "TRANSACTION.SUCCESS", "EV-4"))
                  .status,
              204);
    EXPECT_EQ(db_.scalar("SELECT state || ' ' || amount_total || ' ' || payer_total FROM wxrecon.orders"),
              "SUCCESS 100 90");
    EXPECT_EQ(
        db_.count(
            "SELECT count(*) FROM wxrecon.discrepancies WHERE kind IN ('amount_mismatch','appid_mismatch')"),
        2);
}

TEST_F(NotifyTest, RefundMovesThePaidOrderToRefund) {
    register_order("ORDER-T5", 100);
    EXPECT_EQ(
        send(notification(protocol::v3::transaction_json(test_mchid, payment("ORDER-T5", 100, "4200000005")),
                          "TRANSACTION.SUCCESS", "EV-5"))
            .status,
        204);
    domain::refund_fact r;
    r.out_trade_no = "ORDER-T5";
    r.out_refund_no = "R5";
    r.refund_id = "50000000005";
    r.transaction_id = "4200000005";
    r.status = domain::refund_status::abnormal;
    r.amount_refund = 100;  // the whole payment: REFUND (a partial refund leaves it SUCCESS)
    r.amount_total = 100;
    EXPECT_EQ(send(notification(protocol::v3::refund_json(test_mchid, r), "REFUND.ABNORMAL", "EV-5a")).status,
              204);
    EXPECT_EQ(db_.scalar("SELECT kind FROM wxrecon.discrepancies WHERE resolved_at IS NULL"),
              "refund_abnormal");
    r.status = domain::refund_status::success;
    r.success_time = now_unix() * 1'000'000;
    EXPECT_EQ(send(notification(protocol::v3::refund_json(test_mchid, r), "REFUND.SUCCESS", "EV-5b")).status,
              204);
    EXPECT_EQ(db_.scalar("SELECT state FROM wxrecon.orders"), "REFUND");
    EXPECT_EQ(db_.scalar("SELECT status || ' ' || amount_refund FROM wxrecon.refunds"), "SUCCESS 100");
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.discrepancies WHERE resolved_at IS NULL"), 0);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events"), 3);
}

TEST_F(NotifyTest, RefundForAnUnpaidOrderIsStoredAndFlagged) {
    register_order("ORDER-T6", 100);
    domain::refund_fact r;
    r.out_trade_no = "ORDER-T6";
    r.out_refund_no = "R6";
    r.transaction_id = "4200000006";
    r.status = domain::refund_status::success;
    r.amount_refund = 100;
    r.amount_total = 100;
    EXPECT_EQ(send(notification(protocol::v3::refund_json(test_mchid, r), "REFUND.SUCCESS", "EV-6")).status,
              204);
    EXPECT_EQ(db_.scalar("SELECT state FROM wxrecon.orders"), "NOTPAY");
    EXPECT_EQ(db_.scalar("SELECT kind FROM wxrecon.discrepancies"), "refund_without_payment");
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.refunds"), 1);
}

TEST_F(NotifyTest, VerifiedEventOfAnotherTypeIsAcknowledgedAndIgnored) {
    EXPECT_EQ(send(notification("{}", "PAYSCORE.USER_OPEN_SERVICE", "EV-7")).status, 204);
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events"), 0);
}

// The stored evidence keeps every header as sent; a signed header sent twice could make it say something
// other than what was verified, so the notification is refused. Sent once each, the same one is accepted.
TEST_F(NotifyTest, ASignedHeaderSentTwiceIsRefused) {
    register_order("ORDER-T9", 100);
    const auto n =
        notification(protocol::v3::transaction_json(test_mchid, payment("ORDER-T9", 100, "4200000009")),
                     "TRANSACTION.SUCCESS", "EV-9");
    const headers once{{"Content-Type", "application/json"},
                       {"Wechatpay-Timestamp", n.timestamp},
                       {"Wechatpay-Nonce", n.nonce},
                       {"Wechatpay-Signature", n.signature},
                       {"Wechatpay-Serial", n.serial}};
    for (const char* name :
         {"Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial"}) {
        headers twice = once;
        for (const auto& [k, v] : once)
            if (k == name) twice.emplace_back(k, v);
        const auto r =
            http_post(daemon_->port(), std::string("/wxpay/v3/notify/") + test_mchid, twice, n.body);
        EXPECT_EQ(r.status, 401) << name;
        EXPECT_NE(r.body.find(std::string(name) + " header sent more than once"), std::string::npos)
            << r.body;
    }
    EXPECT_EQ(rejected_with("bad_signature", 4), 4);
    EXPECT_EQ(db_.scalar("SELECT state FROM wxrecon.orders WHERE out_trade_no = 'ORDER-T9'"), "NOTPAY");
    EXPECT_EQ(http_post(daemon_->port(), std::string("/wxpay/v3/notify/") + test_mchid, once, n.body).status,
              204);
}

// An APIv2 document longer than any WeChat Pay sends is filed as too large, however much the listener lets
// through.
TEST(V2Notifications, ABodyOverTheXmlLimitIsFiledAsTooLarge) {
    scratch_database db;
    auto m = make_merchant_fixture();
    auto cfg = make_config(*m, db.url());
    cfg.server.max_body_bytes = 1 << 20;
    running_daemon d(std::move(cfg));
    const std::string body =
        "<xml><return_code>SUCCESS</return_code><attach>" + std::string(70000, 'a') + "</attach></xml>";
    const auto r = http_post(d.port(), std::string("/wxpay/v2/notify/") + test_mchid, {}, body);
    EXPECT_NE(r.body.find("exceeds the APIv2 limit of 65536"), std::string::npos) << r.body;
    std::string reason;
    for (int i = 0; i < 200 && reason.empty(); ++i) {
        reason = db.scalar("SELECT reason FROM wxrecon.rejected_notifications");
        if (reason.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(reason, "body_too_large");
}

TEST_F(NotifyTest, RefusalsGetTheDocumentedStatusAndARejectedRow) {
    register_order("ORDER-T8", 100);
    const std::string plain =
        protocol::v3::transaction_json(test_mchid, payment("ORDER-T8", 100, "4200000008"));

    auto forged = notification(plain, "TRANSACTION.SUCCESS", "EV-8");
    forged.body.back() = ' ';  // one changed byte after signing
    EXPECT_EQ(send(forged).status, 401);
    EXPECT_EQ(rejected_with("bad_signature", 1), 1);

    auto probe = notification(plain, "TRANSACTION.SUCCESS", "EV-8p");
    probe.signature = "WECHATPAY/SIGNTEST/" + probe.signature;
    EXPECT_EQ(send(probe).status, 401);
    EXPECT_EQ(rejected_with("probe", 1), 1);

    EXPECT_EQ(send(notification(plain, "TRANSACTION.SUCCESS", "EV-8s", now_unix() - 301)).status, 401);
    EXPECT_EQ(rejected_with("stale_timestamp", 1), 1);

    EXPECT_EQ(send(notification(plain, "TRANSACTION.SUCCESS", "EV-8u", 0,
                                "PUB_KEY_ID_0000000000000000000000000000000009"))
                  .status,
              401);
    EXPECT_EQ(rejected_with("unknown_serial", 1), 1);

    auto unsigned_n = notification(plain, "TRANSACTION.SUCCESS", "EV-8n");
    unsigned_n.signature.clear();
    EXPECT_EQ(send(unsigned_n).status, 401);
    EXPECT_EQ(rejected_with("missing_signature", 1), 1);

    // Signed correctly but not a notification.
    auto not_json = notification(plain, "TRANSACTION.SUCCESS", "EV-8j");
    not_json.body = "this is not json";
    auto sig = crypto::rsa_sha256_sign(
        merchant_->wechatpay_key,
        protocol::v3::message_to_verify(not_json.timestamp, not_json.nonce, not_json.body));
    not_json.signature = base64_encode(*sig);
    EXPECT_EQ(send(not_json).status, 400);
    EXPECT_EQ(rejected_with("malformed", 1), 1);

    // Encrypted with another APIv3 key.
    const std::string real_key = merchant_->apiv3_key;
    merchant_->apiv3_key = std::string(32, 'x');
    const auto wrong_key = notification(plain, "TRANSACTION.SUCCESS", "EV-8k");
    merchant_->apiv3_key = real_key;
    EXPECT_EQ(send(wrong_key).status, 400);
    EXPECT_EQ(rejected_with("decrypt_failed", 1), 1);

    // Decrypts, but names another merchant than the path.
    const auto other =
        notification(protocol::v3::transaction_json("1900000999", payment("ORDER-T8", 100, "4200000008")),
                     "TRANSACTION.SUCCESS", "EV-8m");
    EXPECT_EQ(send(other).status, 400);
    EXPECT_EQ(rejected_with("mchid_mismatch", 1), 1);

    EXPECT_EQ(send(notification(plain, "TRANSACTION.SUCCESS", "EV-8x"), "1234567").status, 404);
    const auto huge = http_post(daemon_->port(), std::string("/wxpay/v3/notify/") + test_mchid, {},
                                std::string(70000, '{'));
    EXPECT_EQ(huge.status, 413);

    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events"), 0);
    EXPECT_EQ(db_.scalar("SELECT state FROM wxrecon.orders"), "NOTPAY");
    const auto metrics = http_get(daemon_->admin_port(), "/metrics").body;
    EXPECT_NE(metrics.find("wxrecon_signature_probes_total 1"), std::string::npos) << metrics;
}

std::string v2_payment_xml(const std::string& api_key, const std::string& out_trade_no,
                           const std::string& txid, std::int64_t total, protocol::v2::sign_type type) {
    protocol::v2::fields f{{"return_code", "SUCCESS"},
                           {"result_code", "SUCCESS"},
                           {"appid", test_appid},
                           {"mch_id", test_mchid},
                           {"nonce_str", "5d2b6c2a8db53831f7eda20af46e531c"},
                           {"openid", "oUpF8uMEb4qRXf22hE3X68TekukE"},
                           {"trade_type", "JSAPI"},
                           {"bank_type", "CFT"},
                           {"total_fee", std::to_string(total)},
                           {"cash_fee", std::to_string(total)},
                           {"fee_type", "CNY"},
                           {"transaction_id", txid},
                           {"out_trade_no", out_trade_no},
                           {"time_end", "20261126120000"}};
    if (type == protocol::v2::sign_type::hmac_sha256) f["sign_type"] = "HMAC-SHA256";
    f["sign"] = protocol::v2::sign(f, api_key, type);
    return protocol::v2::to_xml(f);
}

TEST_F(NotifyTest, V2PaymentAndRefundNotifications) {
    register_order("ORDER-V1", 300);
    const std::string path = std::string("/wxpay/v2/notify/") + test_mchid;
    auto r = http_post(daemon_->port(), path, {},
                       v2_payment_xml(merchant_->apiv2_key, "ORDER-V1", "4200000100", 300,
                                      protocol::v2::sign_type::hmac_sha256));
    EXPECT_EQ(r.status, 200);
    EXPECT_NE(r.body.find("SUCCESS"), std::string::npos) << r.body;
    EXPECT_EQ(
        db_.scalar("SELECT state || ' ' || state_source FROM wxrecon.orders WHERE out_trade_no = 'ORDER-V1'"),
        "SUCCESS notify");
    EXPECT_EQ(db_.scalar("SELECT source FROM wxrecon.payment_events"), "notify_v2");
    EXPECT_EQ(db_.scalar("SELECT to_char(success_time AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDDHH24MISS') FROM "
                         "wxrecon.orders"),
              "20261126120000");

    // WeChat Pay's retry of the same notification: success again, nothing new recorded.
    r = http_post(
        daemon_->port(), path, {},
        v2_payment_xml(merchant_->apiv2_key, "ORDER-V1", "4200000100", 300, protocol::v2::sign_type::md5));
    EXPECT_NE(r.body.find("SUCCESS"), std::string::npos) << r.body;
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events"), 1);

    // Not XML, an unknown merchant, a body over the limit.
    r = http_post(daemon_->port(), path, {}, "return_code=SUCCESS");
    EXPECT_EQ(r.status, 200);
    EXPECT_NE(r.body.find("FAIL"), std::string::npos);
    EXPECT_EQ(rejected_with("malformed", 1), 1);
    EXPECT_EQ(http_post(daemon_->port(), "/wxpay/v2/notify/1234567", {}, "<xml/>").status, 404);
    EXPECT_EQ(http_post(daemon_->port(), path, {}, "<xml>" + std::string(70000, 'a') + "</xml>").status, 413);

    // Bad sign and a DTD: APIv2 convention, 200 with FAIL.
    auto bad =
        v2_payment_xml(merchant_->apiv2_key, "ORDER-V1", "4200000100", 1, protocol::v2::sign_type::md5);
    bad.replace(bad.find("<total_fee><![CDATA[1]]>"), 24, "<total_fee><![CDATA[2]]>");
    r = http_post(daemon_->port(), path, {}, bad);
    EXPECT_EQ(r.status, 200);
    EXPECT_NE(r.body.find("FAIL"), std::string::npos);
    EXPECT_EQ(rejected_with("bad_signature", 1), 1);
    r = http_post(daemon_->port(), path, {},
                  "<?xml version=\"1.0\"?><!DOCTYPE xml [<!ENTITY a \"aaaa\">]><xml><a>&a;</a></xml>");
    EXPECT_NE(r.body.find("FAIL"), std::string::npos);
    EXPECT_EQ(rejected_with("forbidden_xml", 1), 1);

    // Refund notification: applied when it matches the paid order, refused otherwise.
    auto refund_xml = [&](const std::string& txid, std::int64_t total) {
        const std::string inner =
            "<root><out_refund_no><![CDATA[RV1]]></out_refund_no><out_trade_no><![CDATA[ORDER-V1]]>"
            "</out_trade_no><refund_id><![CDATA[5000001]]></refund_id><refund_fee><![CDATA[100]]>"
            "</refund_fee><refund_status><![CDATA[SUCCESS]]></refund_status><success_time>"
            "<![CDATA[2026-11-26 12:30:00]]></success_time><total_fee><![CDATA[" +
            std::to_string(total) + "]]></total_fee><transaction_id><![CDATA[" + txid +
            "]]></transaction_id></root>";
        protocol::v2::fields f{{"return_code", "SUCCESS"},
                               {"appid", test_appid},
                               {"mch_id", test_mchid},
                               {"nonce_str", "abc"},
                               {"req_info", protocol::v2::encrypt_req_info(inner, merchant_->apiv2_key)}};
        return protocol::v2::to_xml(f);
    };
    const std::string refund_path = std::string("/wxpay/v2/refund-notify/") + test_mchid;
    r = http_post(daemon_->port(), refund_path, {}, refund_xml("4200000999", 300));
    EXPECT_NE(r.body.find("FAIL"), std::string::npos);
    EXPECT_EQ(rejected_with("refund_unmatched", 1), 1);
    r = http_post(daemon_->port(), refund_path, {}, refund_xml("4200000100", 300));
    EXPECT_NE(r.body.find("SUCCESS"), std::string::npos) << r.body;
    EXPECT_EQ(db_.scalar("SELECT state FROM wxrecon.orders WHERE out_trade_no = 'ORDER-V1'"), "SUCCESS")
        << "100 of 300 refunded: still paid";
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events"), 2);
}

TEST_F(NotifyTest, NoCommitWithinFourSecondsIs503AndNothingIsApplied) {
    register_order("ORDER-T10", 100);
    const auto n =
        notification(protocol::v3::transaction_json(test_mchid, payment("ORDER-T10", 100, "4200000010")),
                     "TRANSACTION.SUCCESS", "EV-10");
    pqxx::connection blocker(db_.url());
    {
        pqxx::work hold(blocker);  // keeps the order row locked past the deadline
        hold.exec("SELECT 1 FROM wxrecon.orders WHERE out_trade_no = 'ORDER-T10' FOR UPDATE");
        const auto started = std::chrono::steady_clock::now();
        EXPECT_EQ(send(n).status, 503);
        const auto took = std::chrono::steady_clock::now() - started;
        EXPECT_GE(took, std::chrono::milliseconds(3500));  // the statement gives up just before the 4 s
        EXPECT_LT(took, std::chrono::milliseconds(4900));
        hold.abort();
    }
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events"), 0);
    EXPECT_EQ(db_.scalar("SELECT state FROM wxrecon.orders"), "NOTPAY");
    EXPECT_EQ(send(n).status, 204);  // WeChat's retry
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events"), 1);
}

TEST_F(NotifyTest, PaymentEventsRefuseUpdateAndDelete) {
    register_order("ORDER-T9", 100);
    EXPECT_EQ(
        send(notification(protocol::v3::transaction_json(test_mchid, payment("ORDER-T9", 100, "4200000009")),
                          "TRANSACTION.SUCCESS", "EV-9"))
            .status,
        204);
    {
        pqxx::nontransaction tx(*conn_);
        EXPECT_THROW(tx.exec("UPDATE wxrecon.payment_events SET amount_total = 1"), pqxx::sql_error);
        EXPECT_THROW(tx.exec("DELETE FROM wxrecon.payment_events"), pqxx::sql_error);
        EXPECT_THROW(tx.exec("TRUNCATE wxrecon.payment_events"), pqxx::sql_error);
    }
    EXPECT_EQ(db_.count("SELECT count(*) FROM wxrecon.payment_events WHERE amount_total = 100"), 1);
}

TEST_F(NotifyTest, HealthReadinessAndMetrics) {
    EXPECT_EQ(http_get(daemon_->admin_port(), "/healthz").status, 200);
    EXPECT_EQ(http_get(daemon_->admin_port(), "/readyz").status, 200);
    const auto m = http_get(daemon_->admin_port(), "/metrics");
    EXPECT_EQ(m.status, 200);
    EXPECT_NE(m.body.find("wxrecon_db_up 1"), std::string::npos) << m.body;
}

TEST(RejectedNotifications, BoundedInRowsAndSampledUnderAFlood) {
    scratch_database db;
    auto m = make_merchant_fixture();
    auto cfg = make_config(*m, db.url());
    cfg.notifications.rejected_keep = 5;
    running_daemon d(std::move(cfg));
    const headers forged{{"Wechatpay-Timestamp", std::to_string(now_unix())},
                         {"Wechatpay-Nonce", "n"},
                         {"Wechatpay-Signature", "Zm9yZ2Vk"},
                         {"Wechatpay-Serial", test_pub_key_id}};
    const int flood = 400;
    for (int i = 0; i < flood; ++i)
        EXPECT_EQ(http_post(d.port(), std::string("/wxpay/v3/notify/") + test_mchid, forged, "{}").status,
                  401);
    pqxx::connection c(db.url());
    long rows = 0;
    for (int i = 0; i < 300; ++i) {  // written asynchronously: let the writer catch up
        pqxx::nontransaction tx(c);
        rows = tx.exec1("SELECT count(*) FROM wxrecon.rejected_notifications")[0].as<long>();
        const long max_id =
            tx.exec1("SELECT coalesce(max(id), 0) FROM wxrecon.rejected_notifications")[0].as<long>();
        if (rows <= 5 && max_id >= 50) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_LE(rows, 5);
    EXPECT_GE(rows, 1);
    // Far fewer rows were written than forgeries arrived; the rest were counted.
    const auto metrics = http_get(d.admin_port(), "/metrics").body;
    EXPECT_NE(metrics.find("wxrecon_rejected_sampled_total{reason=\"bad_signature\"}"), std::string::npos)
        << metrics;
    EXPECT_NE(
        metrics.find("wxrecon_notifications_total{api=\"v3\",kind=\"unknown\",result=\"rejected\"} 400"),
        std::string::npos);
}

// A flood of forgeries is counted in full but logged within a budget (200 lines at once, then 20 a second);
// the next refusal logged says how many went unlogged before it, so the lines still add up.
TEST(RejectedNotifications, AFloodIsCountedInFullButLoggedWithinABudget) {
    scratch_database db;
    auto m = make_merchant_fixture();
    running_daemon d(make_config(*m, db.url()));
    std::ostringstream log_text;
    const auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text);
    sink->set_pattern("%v");
    const auto logger = spdlog::default_logger();
    const auto level_before = logger->level();
    logger->set_level(spdlog::level::info);
    logger->sinks().push_back(sink);
    const headers forged{{"Wechatpay-Timestamp", std::to_string(now_unix())},
                         {"Wechatpay-Nonce", "n"},
                         {"Wechatpay-Signature", "Zm9yZ2Vk"},
                         {"Wechatpay-Serial", test_pub_key_id}};
    const int flood = 600;
    const auto started = std::chrono::steady_clock::now();
    for (int i = 0; i < flood; ++i)
        EXPECT_EQ(http_post(d.port(), std::string("/wxpay/v3/notify/") + test_mchid, forged, "{}").status,
                  401);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // a token comes back
    EXPECT_EQ(http_post(d.port(), std::string("/wxpay/v3/notify/") + test_mchid, forged, "{}").status, 401);
    logger->sinks().pop_back();
    logger->set_level(level_before);

    long lines = 0, unlogged = 0;
    std::istringstream in(log_text.str());
    for (std::string line; std::getline(in, line);) {
        if (line.find("notify: result=rejected") == std::string::npos) continue;
        ++lines;
        const auto at = line.find("unlogged_rejections=");
        if (at != std::string::npos) unlogged += std::stol(line.substr(at + 20));
    }
    EXPECT_LE(lines, 200 + static_cast<long>(20 * seconds) + 2) << "in " << seconds << " s";
    EXPECT_GT(unlogged, 0);
    EXPECT_EQ(lines + unlogged, flood + 1);
    const auto metrics = http_get(d.admin_port(), "/metrics").body;
    EXPECT_NE(metrics.find("wxrecon_notifications_total{api=\"v3\",kind=\"unknown\",result=\"rejected\"} " +
                           std::to_string(flood + 1)),
              std::string::npos);
}

// Beyond the row budget a refusal costs a count and nothing else: its entry (headers, a copy of the body) is
// never made.
TEST(RejectedNotifications, AnEntryBeyondTheRowBudgetIsNeverMade) {
    scratch_database db;
    {
        pqxx::connection c(db.url());
        store::migrate(c);
    }
    store::db_pool pool(db.url(), 1, 16);
    const auto m = metrics::make_standard();
    store::rejected_log log(pool, 100, 0, 3, m);  // three rows at once, none regained
    int made = 0;
    for (int i = 0; i < 10; ++i)
        log.record("bad_signature", [&made] {
            ++made;
            return store::rejected_entry{"/wxpay/v3/notify/x", "x", "bad_signature", "127.0.0.1", "{}", "{}"};
        });
    pool.stop();
    EXPECT_EQ(made, 3);
    EXPECT_NE(m->render().find("wxrecon_rejected_sampled_total{reason=\"bad_signature\"} 7"),
              std::string::npos)
        << m->render();
    EXPECT_EQ(db.count("SELECT count(*) FROM wxrecon.rejected_notifications"), 3);
}

TEST(Migrations, ConcurrentInstancesApplyEachFileOnce) {
    scratch_database db;
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int i = 0; i < 4; ++i)
        threads.emplace_back([&] {
            try {
                pqxx::connection c(db.url());
                store::migrate(c);
            } catch (...) {
                ++failures;
            }
        });
    for (auto& t : threads) t.join();
    EXPECT_EQ(failures.load(), 0);
    pqxx::connection c(db.url());
    EXPECT_EQ(store::current_schema_version(c), store::latest_migration_version());
    pqxx::nontransaction tx(c);
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM wxrecon.schema_migrations")[0].as<int>(),
              static_cast<int>(store::embedded_migrations().size()));
}

TEST(Migrations, ADatabaseMigratedByADifferentBuildIsRefusedByName) {
    scratch_database db;
    pqxx::connection c(db.url());
    store::migrate(c);
    const auto& last = store::embedded_migrations().back();
    db.exec("UPDATE wxrecon.schema_migrations SET name = 'NNNN_elsewhere.sql' WHERE version = " +
            std::to_string(last.version));
    try {
        store::migrate(c);
        FAIL() << "a migration recorded under another name was not noticed";
    } catch (const std::exception& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("NNNN_elsewhere.sql"), std::string::npos) << message;
        EXPECT_NE(message.find(last.name), std::string::npos) << message;
    }
    // The lock was released: a correct record migrates again.
    db.exec("UPDATE wxrecon.schema_migrations SET name = '" + std::string(last.name) +
            "' WHERE version = " + std::to_string(last.version));
    pqxx::connection again(db.url());
    EXPECT_EQ(store::migrate(again).version, last.version);
}

// Migration 0019 holds orders to WeChat Pay's numbers. A ledger already holding another number stops the
// migration with the count and an example, changes nothing, and migrates once the row is fixed by hand.
TEST(Migrations, AnOrderNumberWeChatPayWouldNotIssueStopsTheConstraintUntilFixed) {
    scratch_database db;
    pqxx::connection c(db.url());
    std::vector<store::migration> before_check;
    for (const auto& m : store::embedded_migrations())
        if (m.version < 19) before_check.push_back(m);
    store::migrate(c, before_check);
    db.exec(
        "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total) VALUES ('1900000109', 'T1', 100),"
        " ('1900000109', 'GOOD-ORDER-1', 100)");
    try {
        store::migrate(c);
        FAIL() << "the constraint was added over a number WeChat Pay does not issue";
    } catch (const std::exception& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("1 orders have a number WeChat Pay does not issue"), std::string::npos)
            << message;
        EXPECT_NE(message.find("1900000109/'T1'"), std::string::npos) << message;
    }
    pqxx::connection again(db.url());
    EXPECT_EQ(store::current_schema_version(again), 18);
    db.exec("UPDATE wxrecon.orders SET out_trade_no = 'T1-FIXED' WHERE out_trade_no = 'T1'");
    EXPECT_EQ(store::migrate(again).version, store::latest_migration_version());
    EXPECT_THROW(db.exec("INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total) VALUES"
                         " ('1900000109', 'T2', 100)"),
                 std::exception);
}

}  // namespace
}  // namespace wxrecon::testing
