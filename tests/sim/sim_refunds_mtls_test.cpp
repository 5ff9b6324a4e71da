// APIv2 refunds need the merchant's client certificate (docs/protocol-notes.md §7.10): over HTTPS the
// simulator refuses /secapi/pay/refund with CERT_ERROR, before anything is applied, unless the client
// presents the merchant's own apiclient_cert.pem.
#include "sim_refunds_support.hpp"

namespace wxrecon::testing::refunds {
namespace {

class SimRefundsMutualTls : public SimRefunds {
protected:
    SimRefundsMutualTls() {
        tls_ = true;
        client_options_.ca_file = (keys_->dir / "ca" / "ca_cert.pem").string();
    }
    void present_certificate_of(std::size_t merchant) {
        const auto dir = keys_->dir / keys_->keys.merchants.at(merchant).mchid;
        client_options_.client_cert_file = (dir / "apiclient_cert.pem").string();
        client_options_.client_key_file = (dir / "apiclient_key.pem").string();
    }
};

TEST_F(SimRefundsMutualTls, V2RefundNeedsTheMerchantsOwnCertificate) {
    paid(v2_merchant, "MTLS-REFUND", 1200);
    const std::string key = mchid(v2_merchant) + "/MTLS-RF";

    const auto anonymous = v2_refund(v2_merchant, "MTLS-REFUND", "MTLS-RF", 500, 1200);
    EXPECT_EQ(anonymous.outcome, call_outcome::rejected) << anonymous.error;
    EXPECT_EQ(anonymous.code, "CERT_ERROR");
    EXPECT_EQ(truth().count(key), 0u);

    // A valid certificate of the simulator's CA, but another merchant's.
    present_certificate_of(v3_merchant);
    EXPECT_EQ(v2_refund(v2_merchant, "MTLS-REFUND", "MTLS-RF", 500, 1200).code, "CERT_ERROR");
    EXPECT_EQ(truth().count(key), 0u);

    present_certificate_of(v2_merchant);
    const auto accepted = v2_refund(v2_merchant, "MTLS-REFUND", "MTLS-RF", 500, 1200);
    ASSERT_EQ(accepted.outcome, call_outcome::ok) << accepted.code << " " << accepted.error;
    const auto t = truth();
    ASSERT_EQ(t.count(key), 1u);
    EXPECT_EQ(t.at(key).refund_id, accepted.fields.at("refund_id"));
    EXPECT_EQ(t.at(key).amount, 500);
}

TEST_F(SimRefundsMutualTls, RefundQueryNeedsNoCertificate) {
    present_certificate_of(v2_merchant);
    paid(v2_merchant, "MTLS-QUERY", 300);
    ASSERT_EQ(v2_refund(v2_merchant, "MTLS-QUERY", "MTLS-Q-RF", 300, 300).outcome, call_outcome::ok);
    client_options_.client_cert_file.clear();
    client_options_.client_key_file.clear();
    const auto q = v2_refundquery(v2_merchant, "MTLS-Q-RF");
    ASSERT_EQ(q.outcome, call_outcome::ok) << q.code << " " << q.error;
    EXPECT_EQ(q.fields.at("refund_status_0"), "SUCCESS");
}

}  // namespace
}  // namespace wxrecon::testing::refunds
