// Key material of a merchant, loaded from the files its config names and
// validated together: what check-config and serve (and SIGHUP) load.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "config/config.hpp"
#include "crypto/crypto.hpp"

namespace wxrecon::config {

struct merchant_keys {
    std::string mchid;
    std::optional<std::string> apiv3_key;      // exactly 32 bytes
    std::optional<std::string> apiv2_key;      // exactly 32 characters
    crypto::private_key merchant_private_key;  // empty unless configured
    std::optional<std::string> app_secret;
    // Verification keys by Wechatpay-Serial: PUB_KEY_ID_... and platform certificate serials (upper hex).
    std::map<std::string, crypto::public_key, std::less<>> wechatpay_keys;
    std::vector<crypto::certificate> platform_certs;  // all loaded, including expired ones

    // The key for a serial if it is trusted at now_unix: a public key always, a platform certificate only
    // within its validity, checked at each use (a certificate trusted at load time may expire since).
    const crypto::public_key* find_wechatpay_key(std::string_view serial,
                                                 std::int64_t now_unix) const noexcept;
    // The platform certificate with this serial, whatever its validity; nullptr when there is none.
    const crypto::certificate* find_platform_certificate(std::string_view serial) const noexcept;
};

struct key_warning {
    std::string message;  // e.g. "platform certificate <serial> in <file> expired at ..."
};

struct key_store {
    std::map<std::string, merchant_keys, std::less<>> merchants;  // by mchid
    std::vector<key_warning> warnings;

    const merchant_keys* find(std::string_view mchid) const noexcept;
};

// Loads and validates every merchant's key files. now_unix decides which platform certificates are
// expired (a warning, not an error). Fails (errc::config_error) with a message naming the config key and
// the file: missing file, PEM that does not parse, APIv3 key not 32 bytes, APIv2 key not 32 characters,
// a v3 merchant without a private key or serial or any usable WeChat Pay verification key,
// a platform certificate whose file name / serial does not match nothing (serial is read from the cert).
result<key_store> load_key_store(const config& cfg, std::int64_t now_unix);

}  // namespace wxrecon::config
