// Refunds made through wxpay-sim's merchant APIs, with the daemon's own pay_client (real signatures, real
// HTTP): PROCESSING for a while, then SUCCESS, ABNORMAL or CLOSED (drawn from the seed, or planned), the
// refund queries of both versions following, and a refund answered too late for the client still applied
// exactly once (docs/protocol-notes.md §4.6, §7.10).
#include <regex>

#include "sim_refunds_support.hpp"

namespace wxrecon::testing::refunds {
namespace {

TEST_F(SimRefunds, ProcessingThenSuccessAfterTheDelayInBothVersions) {
    faults(R"({"refund_processing_ms":3000})");
    paid(v3_merchant, "RP-V3-1", 1000);
    paid(v2_merchant, "RP-V2-1", 800);

    const auto created3 = v3_refund(v3_merchant, "RP-V3-1", "RF-V3-1", 300, 1000);
    ASSERT_EQ(created3.outcome, call_outcome::ok) << created3.code << " " << created3.body;
    EXPECT_NE(created3.body.find("\"status\":\"PROCESSING\""), std::string::npos) << created3.body;
    const auto created2 = v2_refund(v2_merchant, "RP-V2-1", "RF-V2-1", 800, 800);
    ASSERT_EQ(created2.outcome, call_outcome::ok) << created2.code << " " << created2.error;
    EXPECT_FALSE(created2.fields.at("refund_id").empty());

    // Still PROCESSING: the truth, both queries, and no notification planned yet.
    EXPECT_EQ(v3_status(v3_merchant, "RF-V3-1"), "PROCESSING");
    const auto q2 = v2_refundquery(v2_merchant, "RF-V2-1");
    ASSERT_EQ(q2.outcome, call_outcome::ok) << q2.code << " " << q2.error;
    EXPECT_EQ(q2.fields.at("refund_status_0"), "PROCESSING");
    EXPECT_EQ(q2.fields.count("refund_success_time_0"), 0u);
    EXPECT_EQ(truth().at(mchid(v3_merchant) + "/RF-V3-1").status, "PROCESSING");
    EXPECT_TRUE(refund_deliveries("RF-V3-1").empty());

    ASSERT_TRUE(eventually([&] { return v3_status(v3_merchant, "RF-V3-1") == "SUCCESS"; }));
    ASSERT_TRUE(eventually([&] {
        const auto q = v2_refundquery(v2_merchant, "RF-V2-1");
        return q.outcome == call_outcome::ok && q.fields.at("refund_status_0") == "SUCCESS";
    }));
    const auto done2 = v2_refundquery(v2_merchant, "RF-V2-1");
    EXPECT_EQ(done2.fields.at("refund_id_0"), created2.fields.at("refund_id"));
    EXPECT_EQ(done2.fields.at("refund_fee_0"), "800");
    EXPECT_TRUE(std::regex_match(done2.fields.at("refund_success_time_0"),
                                 std::regex(R"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})")))
        << done2.fields.at("refund_success_time_0");
    const auto done3 = v3_refund_query(v3_merchant, "RF-V3-1");
    EXPECT_NE(done3.body.find("\"success_time\""), std::string::npos) << done3.body;

    // The notification goes out when the refund ends, not when it was accepted.
    EXPECT_EQ(refund_deliveries("RF-V3-1"), std::vector<std::string>{"REFUND.SUCCESS"});
    EXPECT_EQ(refund_deliveries("RF-V2-1"), std::vector<std::string>{"REFUND.SUCCESS"});
    EXPECT_EQ(truth().at(mchid(v2_merchant) + "/RF-V2-1").status, "SUCCESS");

    // Unknown numbers, in each version's words.
    EXPECT_EQ(v2_refundquery(v2_merchant, "RF-NOPE").code, "REFUNDNOTEXIST");
    const auto unknown3 = v3_refund_query(v3_merchant, "RF-NOPE");
    EXPECT_EQ(unknown3.status, 404);
    EXPECT_EQ(unknown3.code, "RESOURCE_NOT_EXISTS");
}

TEST_F(SimRefunds, SeededAbnormalAndClosedAreReproducible) {
    const std::string rates = R"({"refund_abnormal":0.3,"refund_closed":0.3})";
    auto run_once = [&] {
        faults(rates);
        std::map<std::string, std::string> ends;
        for (int i = 1; i <= 24; ++i) {
            const std::string n = std::to_string(i);
            paid(v3_merchant, "SEED-ORDER-" + n, 500);
            const auto r = v3_refund(v3_merchant, "SEED-ORDER-" + n, "SEED-RF-" + n, 500, 500);
            EXPECT_EQ(r.outcome, call_outcome::ok) << r.code << " " << r.body;
        }
        for (const auto& [key, t] : truth()) ends[key] = t.status;
        return ends;
    };
    const auto first = run_once();
    std::map<std::string, int> counts;
    for (const auto& [key, status] : first) ++counts[status];
    EXPECT_EQ(first.size(), 24u);
    EXPECT_GT(counts["ABNORMAL"], 0);
    EXPECT_GT(counts["CLOSED"], 0);
    EXPECT_GT(counts["SUCCESS"], 0);
    // Each ended refund was announced with its own status.
    EXPECT_EQ(refund_deliveries("SEED-RF-1"),
              std::vector<std::string>{"REFUND." + first.at(mchid(v3_merchant) + "/SEED-RF-1")});

    restart();
    EXPECT_EQ(run_once(), first);
}

TEST_F(SimRefunds, RefundPlanSetsTheOutcome) {
    const auto plan = [&](const std::string& json) { return control_call("POST", "/sim/refund-plan", json); };
    const std::string m = mchid(v2_merchant);
    EXPECT_EQ(
        plan(R"({"mchid":")" + m + R"(","out_refund_no":"PLAN-1","status":"CLOSED","notify":false})").first,
        200);
    EXPECT_EQ(plan(R"({"mchid":")" + m + R"(","out_refund_no":"PLAN-2","status":"ABNORMAL","after_ms":3000})")
                  .first,
              200);
    EXPECT_EQ(plan(R"({"mchid":")" + m + R"(","out_refund_no":"PLAN-3","status":"PROCESSING"})").first, 400);
    EXPECT_EQ(plan(R"({"mchid":"nobody","out_refund_no":"PLAN-3"})").first, 404);
    EXPECT_EQ(plan(R"({"mchid":")" + m + R"(","out_refund_no":"PLAN-3","after":1})").first, 400);

    paid(v2_merchant, "PLAN-ORDER", 900);
    ASSERT_EQ(v2_refund(v2_merchant, "PLAN-ORDER", "PLAN-1", 100, 900).outcome, call_outcome::ok);
    ASSERT_EQ(v2_refund(v2_merchant, "PLAN-ORDER", "PLAN-2", 200, 900).outcome, call_outcome::ok);
    // A plan is for a refund still to come.
    EXPECT_EQ(plan(R"({"mchid":")" + m + R"(","out_refund_no":"PLAN-1"})").first, 409);

    EXPECT_EQ(v2_refundquery(v2_merchant, "PLAN-1").fields.at("refund_status_0"), "REFUNDCLOSE");
    EXPECT_TRUE(refund_deliveries("PLAN-1").empty());  // notify false: it ends unannounced
    EXPECT_EQ(v2_refundquery(v2_merchant, "PLAN-2").fields.at("refund_status_0"), "PROCESSING");
    ASSERT_TRUE(eventually(
        [&] { return v2_refundquery(v2_merchant, "PLAN-2").fields.at("refund_status_0") == "CHANGE"; }));
    EXPECT_EQ(refund_deliveries("PLAN-2"), std::vector<std::string>{"REFUND.ABNORMAL"});
    const auto t = truth();
    EXPECT_EQ(t.at(m + "/PLAN-1").status, "CLOSED");
    EXPECT_EQ(t.at(m + "/PLAN-2").status, "ABNORMAL");

    // A closed refund gives its amount back: 900 - 200 (abnormal, still counted) is refundable.
    EXPECT_EQ(v2_refund(v2_merchant, "PLAN-ORDER", "PLAN-4", 701, 900).code, "NOTENOUGH");
    EXPECT_EQ(v2_refund(v2_merchant, "PLAN-ORDER", "PLAN-4", 700, 900).outcome, call_outcome::ok);
}

TEST_F(SimRefunds, DroppedRefundNotificationsAreLostLikePaymentOnes) {
    faults(R"({"drop":1})");
    paid(v3_merchant, "DROP-ORDER", 400);
    ASSERT_EQ(v3_refund(v3_merchant, "DROP-ORDER", "DROP-RF", 400, 400).outcome, call_outcome::ok);
    const auto [status, body] = control_call("GET", "/sim/deliveries");
    ASSERT_EQ(status, 200);
    simdjson::dom::parser parser;
    simdjson::dom::array list;
    ASSERT_EQ(parser.parse(simdjson::padded_string(body)).at_pointer("/deliveries").get(list),
              simdjson::SUCCESS);
    bool seen = false;
    for (const simdjson::dom::element d : list) {
        if (json_text(d, "/out_refund_no") != "DROP-RF") continue;
        seen = true;
        bool dropped = false;
        EXPECT_EQ(d.at_pointer("/dropped").get(dropped), simdjson::SUCCESS);
        EXPECT_TRUE(dropped);
        EXPECT_EQ(json_text(d, "/event_type"), "REFUND.SUCCESS");
    }
    EXPECT_TRUE(seen) << body;
    EXPECT_EQ(v3_status(v3_merchant, "DROP-RF"), "SUCCESS");  // the refund itself happened
}

TEST_F(SimRefunds, TotalFeeMustMatchTheOrder) {
    paid(v2_merchant, "FEE-ORDER", 600);
    const auto wrong = v2_refund(v2_merchant, "FEE-ORDER", "FEE-RF", 100, 601);
    EXPECT_EQ(wrong.outcome, call_outcome::rejected);
    EXPECT_EQ(wrong.code, "PARAM_ERROR");
    EXPECT_EQ(truth().count(mchid(v2_merchant) + "/FEE-RF"), 0u);
    EXPECT_EQ(v2_refund(v2_merchant, "FEE-ORDER", "FEE-RF", 100, 600).outcome, call_outcome::ok);
}

// reply_slow: the refund is applied, the answer comes after the client gave up; the client's retry with
// the same out_refund_no gets the same refund, and WeChat holds one refund, not two.
TEST_F(SimRefunds, ReplySlowAppliesFirstSoTheRetryFindsTheSameRefund) {
    paid(v3_merchant, "SLOW-V3", 500);
    paid(v2_merchant, "SLOW-V2", 500);
    faults(R"({"reply_slow":1,"slow_ms":1500})");
    client_options_.exchange_timeout = std::chrono::milliseconds(300);

    const auto late3 = v3_refund(v3_merchant, "SLOW-V3", "SLOW-RF-3", 200, 500);
    EXPECT_EQ(late3.outcome, call_outcome::unreachable) << late3.status << " " << late3.body;
    EXPECT_TRUE(late3.sent);
    const auto late2 = v2_refund(v2_merchant, "SLOW-V2", "SLOW-RF-2", 200, 500);
    EXPECT_EQ(late2.outcome, call_outcome::unreachable) << late2.code;

    auto t = truth();
    ASSERT_EQ(t.count(mchid(v3_merchant) + "/SLOW-RF-3"), 1u);
    ASSERT_EQ(t.count(mchid(v2_merchant) + "/SLOW-RF-2"), 1u);
    const std::string id3 = t.at(mchid(v3_merchant) + "/SLOW-RF-3").refund_id;
    const std::string id2 = t.at(mchid(v2_merchant) + "/SLOW-RF-2").refund_id;

    faults(R"({"reply_slow":0})");
    client_options_.exchange_timeout = std::chrono::milliseconds(10'000);
    const auto again3 = v3_refund(v3_merchant, "SLOW-V3", "SLOW-RF-3", 200, 500);
    ASSERT_EQ(again3.outcome, call_outcome::ok) << again3.code << " " << again3.body;
    EXPECT_NE(again3.body.find("\"refund_id\":\"" + id3 + "\""), std::string::npos) << again3.body;
    const auto again2 = v2_refund(v2_merchant, "SLOW-V2", "SLOW-RF-2", 200, 500);
    ASSERT_EQ(again2.outcome, call_outcome::ok) << again2.code;
    EXPECT_EQ(again2.fields.at("refund_id"), id2);

    t = truth();
    for (const std::string no : {"SLOW-V3", "SLOW-V2"}) {
        int refunds = 0;
        for (const auto& [key, r] : t) refunds += r.out_trade_no == no;
        EXPECT_EQ(refunds, 1) << no;
    }
    EXPECT_EQ(t.at(mchid(v3_merchant) + "/SLOW-RF-3").status, "SUCCESS");
}

}  // namespace
}  // namespace wxrecon::testing::refunds
