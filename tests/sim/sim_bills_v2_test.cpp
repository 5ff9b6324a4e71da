// wxpay-sim's bills, continued: damaged downloads (the hash names the good content, or the damaged one),
// the byte-level variants of the files (BOM, CRLF, "45.0" counts) all parse, and APIv2 downloadbill (MD5
// and HMAC-SHA256) and downloadfundflow with their FAIL answers (docs/protocol-notes.md §7.9, §6.5).
#include "sim_bills_support.hpp"

namespace wxrecon::testing::bills {
namespace {

using wechat::call_outcome;
namespace v2 = protocol::v2;

class SimBillsMore : public SimBills {
protected:
    // Applies and downloads without judging the file: the hash the answer named and the content.
    std::pair<std::string, std::string> raw_v3(const std::string& target) {
        const auto a = apply(0, target);
        EXPECT_EQ(a.outcome, call_outcome::ok) << a.body;
        const auto link = bill::parse_bill_link(a.body);
        if (!link) throw std::runtime_error(link.err().message);
        const auto d = fetch(0, link->download_url);
        EXPECT_EQ(d.call.outcome, call_outcome::ok) << d.call.error;
        return {link->hash_value, has_gzip_magic(d.bytes) ? gunzip(d.bytes) : d.bytes};
    }
    // An APIv2 download signed by hand (the daemon's client always signs HMAC-SHA256).
    http_response v2_raw(const std::string& path, v2::fields f, v2::sign_type type) {
        f["mch_id"] = mchid(1);
        f["nonce_str"] = crypto::random_alnum(32);
        f["sign_type"] = type == v2::sign_type::md5 ? "MD5" : "HMAC-SHA256";
        f["sign"] = v2::sign(f, views_[1]->access.apiv2_key, type);
        return http_post(port(), path, {{"Content-Type", "text/xml"}}, v2::to_xml(f));
    }
    v2::fields trade_fields(const std::string& day) {
        return {{"appid", views_[1]->appid}, {"bill_date", day}, {"bill_type", "ALL"}};
    }
};

TEST_F(SimBillsMore, CorruptDownloadsAreCaughtByHashOrByTheParser) {
    pay(0, "BROKEN-1", 1234, "2026-03-14T10:00:00+08:00");
    pay(0, "BROKEN-2", 990, "2026-03-14T11:00:00+08:00");
    const std::string good = get_v3(0, "/v3/bill/tradebill?bill_date=2026-03-14");
    const std::string corrupt = R"({"mchid":")" + mchid(0) + R"(","bill":"trade","bill_date":"2026-03-14",)";
    for (const std::string damage : {"flip_digit", "truncate"}) {
        control("/sim/bill-corrupt", corrupt + R"("corruption":")" + damage + R"(","hash":"good"})");
        for (const std::string gz : {"", "&tar_type=GZIP"}) {
            const auto [hash, content] = raw_v3("/v3/bill/tradebill?bill_date=2026-03-14" + gz);
            EXPECT_EQ(hash, sha1_of(good)) << damage << ": the answer names the good file";
            EXPECT_NE(sha1_of(content), hash) << damage;
            EXPECT_FALSE(parse(content).totals.has_value()) << damage;
        }
        control("/sim/bill-corrupt", corrupt + R"("corruption":")" + damage + R"(","hash":"served"})");
        const auto [hash, content] = raw_v3("/v3/bill/tradebill?bill_date=2026-03-14&tar_type=GZIP");
        EXPECT_EQ(sha1_of(content), hash) << damage << ": the hash matches what is served";
        EXPECT_NE(content, good);
        EXPECT_FALSE(parse(content).totals.has_value()) << damage << ": only the parser can tell";
    }
    control("/sim/bill-corrupt", corrupt + R"("corruption":"none"})");
    EXPECT_EQ(raw_v3("/v3/bill/tradebill?bill_date=2026-03-14").second, good);
    // The fund-flow bill of the day was never damaged.
    EXPECT_TRUE(parse(get_v3(0, "/v3/bill/fundflowbill?bill_date=2026-03-14")).totals.has_value());
}

TEST_F(SimBillsMore, EveryStyleParses) {
    pay(0, "STYLE-1", 100, "2026-03-14T10:00:00+08:00");
    refund(0, "STYLE-1", 40, "2026-03-14T11:00:00+08:00");
    for (const bool on : {true, false}) {
        const std::string flag = on ? "true" : "false";
        control("/sim/bill-style", R"({"mchid":")" + mchid(0) + R"(","bom":)" + flag + R"(,"crlf":)" + flag +
                                       R"(,"count_dot_zero":)" + flag + "}");
        for (const std::string target : {"/v3/bill/tradebill?bill_date=2026-03-14&tar_type=GZIP",
                                         "/v3/bill/fundflowbill?bill_date=2026-03-14"}) {
            const std::string text = get_v3(0, target);
            EXPECT_EQ(text.starts_with("\xEF\xBB\xBF"), on) << target;
            EXPECT_EQ(text.find("\r\n") != std::string::npos, on) << target;
            std::string body = text;
            while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
            const std::string summary = body.substr(body.rfind('\n') + 1);
            EXPECT_EQ(summary.substr(0, summary.find(',')).ends_with(".0"), on) << summary;
            const auto p = parse(text);
            ASSERT_TRUE(p.totals.has_value()) << p.totals.err().message;
        }
    }
    // The starting style is drawn per merchant from the seed and shown with the other variants.
    const auto merchants = http_get(port(), "/sim/merchants").body;
    EXPECT_NE(merchants.find("\"bill_count_dot_zero\""), std::string::npos);
}

TEST_F(SimBillsMore, ApiV2DownloadBillBothSignatures) {
    pay(1, "V2BILL-1", 1500, "2026-03-14T10:00:00+08:00", 200);
    pay(1, "V2BILL-2", 800, "2026-03-14T12:30:00+08:00");
    refund(1, "V2BILL-2", 800, "2026-03-14T13:00:00+08:00");
    for (const auto type : {v2::sign_type::md5, v2::sign_type::hmac_sha256}) {
        const auto r = v2_raw("/pay/downloadbill", trade_fields("20260314"), type);
        ASSERT_EQ(r.status, 200);
        const auto p = parse(r.body);
        ASSERT_TRUE(p.totals.has_value()) << p.totals.err().message << "\n" << r.body;
        const auto& t = std::get<bill::trade_totals>(*p.totals);
        EXPECT_EQ(t.payment_rows, 2);
        EXPECT_EQ(t.refund_rows, 1);
        EXPECT_EQ(t.settlement_total_fen, 1300 + 800);
        EXPECT_EQ(t.coupon_total_fen, 200);
        EXPECT_EQ(t.fee_total, (8 + 5 - 5) * 1000);  // 7.8 -> 8, 4.8 -> 5, and 5 back
    }
    // The daemon's client: HMAC-SHA256, gzip.
    auto fields = trade_fields("20260314");
    fields["tar_type"] = "GZIP";
    const auto d = v2_fetch(1, "/pay/downloadbill", fields);
    ASSERT_EQ(d.call.outcome, call_outcome::ok) << d.call.error;
    EXPECT_TRUE(parse(gunzip(d.bytes)).totals.has_value());

    const auto none = v2_fetch(1, "/pay/downloadbill", trade_fields("20260310"));
    EXPECT_EQ(none.call.outcome, call_outcome::rejected);
    EXPECT_EQ(none.call.code, "20002");
    EXPECT_EQ(none.call.message, "No Bill Exist");
    for (const std::string day : {"20260315", "2026-03-14", "20251214"}) {
        const auto bad = v2_fetch(1, "/pay/downloadbill", trade_fields(day));
        EXPECT_EQ(bad.call.code, "20001") << day;
        EXPECT_EQ(bad.call.message, "invalid bill_date") << day;
    }
    control("/sim/bill-creating",
            R"({"mchid":")" + mchid(1) + R"(","bill":"trade","bill_date":"2026-03-14","requests":1})");
    const auto creating = v2_fetch(1, "/pay/downloadbill", trade_fields("20260314"));
    EXPECT_EQ(creating.call.code, "20003");
    EXPECT_EQ(creating.call.message, "Bill Creating");
    EXPECT_EQ(v2_fetch(1, "/pay/downloadbill", trade_fields("20260314")).call.outcome, call_outcome::ok);
    // A wrong signature is refused like any APIv2 call.
    auto f = trade_fields("20260314");
    f["mch_id"] = mchid(1);
    f["nonce_str"] = "x";
    f["sign"] = std::string(32, 'A');
    EXPECT_NE(http_post(port(), "/pay/downloadbill", {}, v2::to_xml(f)).body.find("FAIL"), std::string::npos);
}

TEST_F(SimBillsMore, ApiV2DownloadFundFlow) {
    pay(1, "V2FUND-1", 1500, "2026-03-14T10:00:00+08:00");
    refund(1, "V2FUND-1", 500, "2026-03-14T11:00:00+08:00", false);
    const v2::fields basic = {
        {"appid", views_[1]->appid}, {"bill_date", "20260314"}, {"account_type", "Basic"}};
    const auto d = v2_fetch(1, "/pay/downloadfundflow", basic);
    ASSERT_EQ(d.call.outcome, call_outcome::ok) << d.call.error;
    const auto p = parse(d.bytes);
    ASSERT_TRUE(p.totals.has_value()) << p.totals.err().message << "\n" << d.bytes;
    const auto& t = std::get<bill::fundflow_totals>(*p.totals);
    EXPECT_EQ(t.income_rows, 2);  // the payment, the fee handed back
    EXPECT_EQ(t.income_total_fen, 1500 + 3);
    EXPECT_EQ(t.expense_rows, 2);  // the fee, the refund
    EXPECT_EQ(t.expense_total_fen, 9 + 500);
    const auto raw = v2_raw("/pay/downloadfundflow", basic, v2::sign_type::hmac_sha256);
    EXPECT_EQ(raw.header("Digest"), "SHA=" + sha1_of(raw.body));

    const auto md5 = v2_raw("/pay/downloadfundflow", basic, v2::sign_type::md5);
    EXPECT_NE(md5.body.find("PARAM_ERROR"), std::string::npos) << "HMAC-SHA256 only: " << md5.body;
    auto other = basic;
    other["account_type"] = "BASIC";
    EXPECT_EQ(v2_fetch(1, "/pay/downloadfundflow", other).call.code, "PARAM_ERROR") << "Basic|Operation|Fees";
    other["account_type"] = "Fees";
    EXPECT_EQ(v2_fetch(1, "/pay/downloadfundflow", other).call.code, "NO_BILL_EXIST");
    other = basic;
    other["bill_date"] = "20260310";
    EXPECT_EQ(v2_fetch(1, "/pay/downloadfundflow", other).call.code, "NO_BILL_EXIST");
    other["bill_date"] = "20260316";
    EXPECT_EQ(v2_fetch(1, "/pay/downloadfundflow", other).call.code, "PARAM_ERROR");
    control("/sim/bill-creating",
            R"({"mchid":")" + mchid(1) + R"(","bill":"fundflow","bill_date":"2026-03-14","requests":1})");
    EXPECT_EQ(v2_fetch(1, "/pay/downloadfundflow", basic).call.code, "BILL_CREATING");
    EXPECT_EQ(v2_fetch(1, "/pay/downloadfundflow", basic).call.outcome, call_outcome::ok);
}

}  // namespace
}  // namespace wxrecon::testing::bills
