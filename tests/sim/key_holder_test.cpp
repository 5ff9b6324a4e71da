// What wxrecond trusts to verify WeChat Pay's signatures: the key files plus the
// certificate list WeChat Pay serves today, each certificate only within its
// validity, checked when it is used. A certificate in neither, or expired, no
// longer verifies anything.
#include <gtest/gtest.h>

#include "base/encoding.hpp"
#include "base/time.hpp"
#include "crypto/crypto.hpp"
#include "protocol/v3.hpp"
#include "workflow/key_holder.hpp"

namespace wxrecon::workflow {
namespace {

constexpr const char* mchid = "1900000109";

struct issued {
    crypto::private_key key;
    crypto::certificate cert;
};

issued issue(const std::string& serial, std::int64_t not_before, std::int64_t not_after) {
    auto key = crypto::generate_rsa_key(2048);
    EXPECT_TRUE(key.has_value());
    crypto::certificate_request r;
    r.common_name = "Tenpay.com Root CA";
    r.serial_hex = serial;
    r.not_before = not_before;
    r.not_after = not_after;
    const auto pem = crypto::issue_certificate(r, key->public_part(), *key);
    EXPECT_TRUE(pem.has_value());
    auto cert = crypto::load_certificate_pem(*pem);
    EXPECT_TRUE(cert.has_value());
    return {*key, *cert};
}

std::shared_ptr<const config::key_store> files_with(const std::vector<crypto::certificate>& certs) {
    auto store = std::make_shared<config::key_store>();
    auto& mk = store->merchants[mchid];
    mk.mchid = mchid;
    for (const auto& c : certs) {
        mk.wechatpay_keys.emplace(c.serial, c.key);
        mk.platform_certs.push_back(c);
    }
    return store;
}

bool trusted(const key_holder& h, const crypto::certificate& c, std::int64_t at) {
    return h.get()->find(mchid)->find_wechatpay_key(c.serial, at) != nullptr;
}

class KeyHolder : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        now_ = wall_clock{}.seconds();
        for (const char* serial : {"0A", "0B", "0C"})
            certs_.push_back(issue(serial, now_ - 3600, now_ + 86400));
        certs_.push_back(issue("0D", now_ - 7200, now_ - 60));  // expired a minute ago
    }
    static const crypto::certificate& cert(char which) {
        return certs_[static_cast<std::size_t>(which - 'A')].cert;
    }

    static inline std::int64_t now_ = 0;
    static inline std::vector<issued> certs_;
};

TEST_F(KeyHolder, TheListServedTodayReplacesTheOneDownloadedBefore) {
    key_holder h(files_with({cert('A')}));
    EXPECT_EQ(h.replace_downloaded(mchid, {cert('A'), cert('B')}, now_), 1);
    EXPECT_TRUE(trusted(h, cert('B'), now_));

    // WeChat Pay stops listing B: B is no longer trusted (it used to be kept for ever).
    EXPECT_EQ(h.replace_downloaded(mchid, {cert('A'), cert('C')}, now_), 1);
    EXPECT_FALSE(trusted(h, cert('B'), now_));
    EXPECT_TRUE(trusted(h, cert('C'), now_));

    // SIGHUP with A removed from the files: A stays while it is still served, and is gone after the
    // download the reload starts no longer lists it.
    h.set(files_with({}));
    EXPECT_TRUE(trusted(h, cert('A'), now_));
    EXPECT_EQ(h.replace_downloaded(mchid, {cert('C')}, now_), 0);
    EXPECT_FALSE(trusted(h, cert('A'), now_));
    EXPECT_TRUE(trusted(h, cert('C'), now_));
    EXPECT_EQ(h.get()->find(mchid)->platform_certs.size(), 1u);
}

TEST_F(KeyHolder, AnExpiredCertificateIsDroppedAndNeverVerifies) {
    key_holder h(files_with({cert('A')}));
    EXPECT_EQ(h.replace_downloaded(mchid, {cert('C'), cert('D')}, now_), 1) << "D expired: not added";
    EXPECT_FALSE(h.get()->find(mchid)->wechatpay_keys.contains(cert('D').serial));

    // C was downloaded while valid; a signature by its key verifies until notAfter and not a second later.
    const auto& c = certs_[2];
    const auto verify_at = [&](std::int64_t at) {
        const std::string ts = std::to_string(at), nonce = "nonce", body = "{}";
        const auto sig = crypto::rsa_sha256_sign(c.key, protocol::v3::message_to_verify(ts, nonce, body));
        EXPECT_TRUE(sig.has_value());
        const std::string signature = base64_encode(*sig);
        const auto keys = h.get();
        return protocol::v3::verify_signature(
            {ts, nonce, signature, c.cert.serial}, body, at,
            [&](std::string_view s, std::int64_t t) { return keys->find(mchid)->find_wechatpay_key(s, t); });
    };
    EXPECT_TRUE(verify_at(c.cert.not_after).has_value());
    const auto late = verify_at(c.cert.not_after + 1);
    ASSERT_FALSE(late.has_value());
    EXPECT_EQ(late.err().code, errc::unknown_serial);
    EXPECT_EQ(verify_at(c.cert.not_before - 1).err().code, errc::unknown_serial);
}

}  // namespace
}  // namespace wxrecon::workflow
