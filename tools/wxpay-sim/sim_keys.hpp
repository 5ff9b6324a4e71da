// Key material for the simulator: `wxpay-sim keys` writes one consistent set
// per merchant (and a CA for HTTPS), plus the simulator's own view of it
// (sim.toml) and the matching [[merchants]] blocks for wxrecond.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "crypto/crypto.hpp"
#include "sim_model.hpp"

namespace wxrecon::sim {

// How WeChat Pay signs what it sends this merchant (docs/protocol-notes.md §2.4–§2.6).
enum class key_mode {
    public_key,     // everything signed with the WeChat Pay public key (PUB_KEY_ID_…)
    platform_cert,  // everything signed with the platform certificate
    mixed,  // migration: notifications pick either by seed; responses follow the request's Wechatpay-Serial
};
std::string_view to_string(key_mode m) noexcept;

struct platform_certificate {
    crypto::private_key key;
    std::string serial;
    std::string pem;
    std::int64_t not_before = 0;
    std::int64_t not_after = 0;
};

struct sim_merchant {
    std::string mchid;
    std::string appid;
    api_version version = api_version::v3;
    key_mode mode = key_mode::public_key;
    std::string merchant_serial;
    crypto::public_key merchant_key;                 // verifies the merchant's Authorization
    std::string public_key_id;                       // PUB_KEY_ID_…
    crypto::private_key public_key_signer;           // WeChat Pay's side of that public key
    std::vector<platform_certificate> certificates;  // newest last; all are listed by /v3/certificates
    std::string apiv3_key;
    std::string apiv2_key;
    std::string app_secret;
};

struct sim_keys {
    std::vector<sim_merchant> merchants;
    std::string ca_cert_pem;
    crypto::private_key ca_key;
    std::string server_cert_pem;  // for HTTPS: localhost / 127.0.0.1, issued by the CA
    std::string server_key_pem;

    const sim_merchant* find(std::string_view mchid) const noexcept;
    sim_merchant* find(std::string_view mchid) noexcept;
};

struct keygen_options {
    std::filesystem::path out;
    int merchants = 1;
    std::string api_base = "http://127.0.0.1:8480";  // written into the wxrecond fragment
    std::int64_t now = 0;                            // Unix seconds; validity starts here
};

// Writes the set (refusing to overwrite an existing sim.toml) and returns what it wrote.
result<sim_keys> write_key_set(const keygen_options& options);
// Loads DIR/sim.toml and the files it names.
result<sim_keys> load_key_set(const std::filesystem::path& dir);

// A new platform certificate (issued by the CA), for rotation mid-run.
result<platform_certificate> make_platform_certificate(const sim_keys& keys, std::int64_t now);

}  // namespace wxrecon::sim
