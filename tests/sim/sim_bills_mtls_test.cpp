// APIv2 downloadfundflow needs the merchant's client certificate (docs/protocol-notes.md §6.5): over
// HTTPS the simulator asks for one, and the daemon's client presents merchant_cert_file.
#include "sim_bills_support.hpp"

namespace wxrecon::testing::bills {
namespace {

using wechat::call_outcome;
namespace v2 = protocol::v2;

class SimBillsMutualTls : public SimBills {
protected:
    SimBillsMutualTls() {
        tls_ = true;
        client_options_.ca_file = (keys_->dir / "ca" / "ca_cert.pem").string();
    }
    std::string merchant_file(std::size_t merchant, const char* name) const {
        return (keys_->dir / keys_->keys.merchants.at(merchant).mchid / name).string();
    }
    v2::fields basic() const {
        return {{"appid", views_[1]->appid}, {"bill_date", "20260314"}, {"account_type", "Basic"}};
    }
};

TEST_F(SimBillsMutualTls, FundFlowNeedsTheMerchantsOwnCertificate) {
    pay(1, "MTLS-1", 1500, "2026-03-14T10:00:00+08:00");

    const auto anonymous = v2_fetch(1, "/pay/downloadfundflow", basic());
    EXPECT_EQ(anonymous.call.code, "CERT_ERROR") << anonymous.call.error << anonymous.call.body;

    // Another merchant's certificate is a valid one, but not this merchant's.
    client_options_.client_cert_file = merchant_file(0, "apiclient_cert.pem");
    client_options_.client_key_file = merchant_file(0, "apiclient_key.pem");
    EXPECT_EQ(v2_fetch(1, "/pay/downloadfundflow", basic()).call.code, "CERT_ERROR");

    client_options_.client_cert_file = merchant_file(1, "apiclient_cert.pem");
    client_options_.client_key_file = merchant_file(1, "apiclient_key.pem");
    const auto d = v2_fetch(1, "/pay/downloadfundflow", basic());
    ASSERT_EQ(d.call.outcome, call_outcome::ok) << d.call.error << d.call.body;
    const auto p = parse(d.bytes);
    ASSERT_TRUE(p.totals.has_value()) << p.totals.err().message;
    EXPECT_EQ(std::get<bill::fundflow_totals>(*p.totals).income_total_fen, 1500);
}

TEST_F(SimBillsMutualTls, TradeBillNeedsNoCertificate) {
    pay(1, "MTLS-2", 800, "2026-03-14T10:00:00+08:00");
    const auto d = v2_fetch(1, "/pay/downloadbill",
                            {{"appid", views_[1]->appid}, {"bill_date", "20260314"}, {"bill_type", "ALL"}});
    ASSERT_EQ(d.call.outcome, call_outcome::ok) << d.call.error << d.call.body;
    EXPECT_TRUE(parse(d.bytes).totals.has_value());
}

}  // namespace
}  // namespace wxrecon::testing::bills
