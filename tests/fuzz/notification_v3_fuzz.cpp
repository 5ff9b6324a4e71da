// libFuzzer target for everything an APIv3 notification or answer puts in front of wxrecond before and
// after verification: the envelope, the decrypted payment and refund resources, the signature headers and
// the Authorization header. The first input byte picks the reader; the rest is its input. Whatever the
// bytes: no crash, no hang, and what the writers produce reads back the same.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/crypto.hpp"
#include "protocol/v3.hpp"

namespace {

using namespace wxrecon;
namespace v3 = protocol::v3;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz: %s\n", what);
    std::abort();
}

const crypto::private_key& signing_key() {
    static const crypto::private_key key = *crypto::generate_rsa_key(2048);
    return key;
}

// Up to n '\n'-separated fields, the last taking the rest.
std::vector<std::string_view> split(std::string_view s, std::size_t n) {
    std::vector<std::string_view> out;
    while (out.size() + 1 < n) {
        const auto nl = s.find('\n');
        if (nl == std::string_view::npos) break;
        out.push_back(s.substr(0, nl));
        s.remove_prefix(nl + 1);
    }
    out.push_back(s);
    while (out.size() < n) out.emplace_back();
    return out;
}

void envelope(std::string_view data) {
    const auto env = v3::parse_envelope(data);
    if (!env) return;
    (void)v3::decrypt_resource(env->res, "0123456789abcdef0123456789abcdef");
}

void payment(std::string_view data) {
    const auto tx = v3::parse_transaction(data);
    if (!tx) return;
    // What the simulator would write for this payment reads back as the same payment.
    const auto again = v3::parse_transaction(v3::transaction_json(tx->mchid, tx->payment));
    if (!again) fail("a written transaction does not read back");
    if (again->payment.out_trade_no != tx->payment.out_trade_no ||
        again->payment.state != tx->payment.state || again->payment.amount_total != tx->payment.amount_total)
        fail("a written transaction reads back different");
}

void refund(std::string_view data) {
    (void)v3::parse_refund(data);
    (void)v3::parse_refund_answer(data);
}

// Timestamp, nonce, signature, serial and body from the input; then the same body properly signed must
// verify, and with one byte changed must not.
void signature(std::string_view data) {
    const auto f = split(data, 5);
    const crypto::public_key key = signing_key().public_part();
    const auto lookup = [&key](std::string_view serial, std::int64_t) -> const crypto::public_key* {
        return serial == "SERIAL" ? &key : nullptr;
    };
    (void)v3::is_probe(f[2]);
    (void)v3::verify_signature({f[0], f[1], f[2], f[3]}, f[4], 1'764'129'600, lookup);
    const std::int64_t now = 1'764'129'600;
    const auto sig = v3::sign_message(f[4], signing_key(), "SERIAL", now);
    if (!sig) fail("cannot sign");
    if (!v3::verify_signature({sig->timestamp, sig->nonce, sig->signature, sig->serial}, f[4], now, lookup))
        fail("a genuine signature does not verify");
    std::string changed(f[4]);
    changed.push_back('x');
    if (v3::verify_signature({sig->timestamp, sig->nonce, sig->signature, sig->serial}, changed, now, lookup))
        fail("a signature verifies a changed body");
}

void authorization(std::string_view data) {
    const auto a = v3::parse_authorization(data);
    if (!a) return;
    const auto again = v3::parse_authorization(v3::format_authorization(*a));
    if (!again) fail("a formatted Authorization does not parse");
    if (again->mchid != a->mchid || again->nonce_str != a->nonce_str || again->signature != a->signature ||
        again->timestamp != a->timestamp || again->serial_no != a->serial_no)
        fail("a formatted Authorization parses different");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view data(reinterpret_cast<const char*>(bytes) + 1, size - 1);
    switch (bytes[0] % 5) {
        case 0:
            envelope(data);
            break;
        case 1:
            payment(data);
            break;
        case 2:
            refund(data);
            break;
        case 3:
            signature(data);
            break;
        default:
            authorization(data);
            break;
    }
    return 0;
}
