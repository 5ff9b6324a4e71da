// OpenSSL EVP wrappers: RSA-SHA256 (PKCS#1 v1.5) signatures, AES-256-GCM and
// AES-256-ECB, MD5 / SHA-256 / HMAC-SHA256 digests, and a CSPRNG.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

typedef struct evp_pkey_st EVP_PKEY;

namespace wxrecon::crypto {

// Shared, immutable handles: cheap to copy, safe to use from several threads.
class public_key {
public:
    public_key() = default;
    explicit public_key(std::shared_ptr<EVP_PKEY> key) : key_(std::move(key)) {}
    EVP_PKEY* get() const noexcept { return key_.get(); }
    explicit operator bool() const noexcept { return key_ != nullptr; }

private:
    std::shared_ptr<EVP_PKEY> key_;
};

class private_key {
public:
    private_key() = default;
    explicit private_key(std::shared_ptr<EVP_PKEY> key) : key_(std::move(key)) {}
    EVP_PKEY* get() const noexcept { return key_.get(); }
    explicit operator bool() const noexcept { return key_ != nullptr; }
    public_key public_part() const;

private:
    std::shared_ptr<EVP_PKEY> key_;
};

struct certificate {
    public_key key;
    std::string serial;       // upper-case hex, no leading zeros stripped beyond OpenSSL's BIGNUM form
    std::int64_t not_before;  // Unix seconds
    std::int64_t not_after;   // Unix seconds
    std::string pem;          // the certificate as given
};

// RSA keys only (WeChat Pay's RSA-2048 mode); PKCS#8 "PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY".
result<private_key> load_private_key_pem(std::string_view pem);
// "PUBLIC KEY" (SubjectPublicKeyInfo) or "RSA PUBLIC KEY" (PKCS#1).
result<public_key> load_public_key_pem(std::string_view pem);
result<certificate> load_certificate_pem(std::string_view pem);
// How many certificates a PEM bundle (a TLS trust file) holds: an error when there are none or one does
// not parse, which is when TLS verification would fail to load it.
result<std::size_t> count_pem_certificates(std::string_view pem);
std::string public_key_to_pem(const public_key& key);
std::string private_key_to_pem(const private_key& key);  // PKCS#8 "PRIVATE KEY"

// A fresh RSA key (the simulator's and the tests' key material).
result<private_key> generate_rsa_key(int bits = 2048);

// What an issued X.509 v3 certificate says about its subject.
struct certificate_request {
    std::string common_name;
    std::string organization;
    std::string serial_hex;       // upper-case hex, becomes the certificate serial
    std::int64_t not_before = 0;  // Unix seconds
    std::int64_t not_after = 0;
    bool is_ca = false;                          // basicConstraints CA:TRUE, keyCertSign
    std::vector<std::string> subject_alt_names;  // "DNS:localhost", "IP:127.0.0.1"
};
// Signs (SHA-256) a certificate for subject_key with issuer_key. issuer_pem empty: self-signed.
result<std::string> issue_certificate(const certificate_request& request, const public_key& subject_key,
                                      const private_key& issuer_key, std::string_view issuer_pem = {});
// SHA-256 of the DER SubjectPublicKeyInfo, lower-case hex (identifies a key in tests and logs).
std::string public_key_fingerprint(const public_key& key);

// RSASSA-PKCS1-v1_5 with SHA-256. sign returns raw signature bytes (not Base64).
result<std::string> rsa_sha256_sign(const private_key& key, std::string_view message);
bool rsa_sha256_verify(const public_key& key, std::string_view message, std::string_view signature) noexcept;

// AEAD_AES_256_GCM as WeChat Pay uses it: key exactly 32 bytes, nonce any length >= 1 (12 in practice),
// output/input = ciphertext || 16-byte tag. decrypt fails with errc::decrypt_failed on a tag mismatch
// and errc::invalid_argument on a bad key length or a too-short input.
result<std::string> aes256_gcm_encrypt(std::string_view key, std::string_view nonce, std::string_view aad,
                                       std::string_view plaintext);
result<std::string> aes256_gcm_decrypt(std::string_view key, std::string_view nonce, std::string_view aad,
                                       std::string_view ciphertext_and_tag);

// AES-256-ECB with PKCS#7 padding (APIv2 refund req_info). Key exactly 32 bytes.
result<std::string> aes256_ecb_encrypt(std::string_view key, std::string_view plaintext);
result<std::string> aes256_ecb_decrypt(std::string_view key, std::string_view ciphertext);

std::string md5(std::string_view data);                                // 16 raw bytes
std::string sha256(std::string_view data);                             // 32 raw bytes
std::string hmac_sha256(std::string_view key, std::string_view data);  // 32 raw bytes

std::string random_bytes(std::size_t n);
// n characters from [0-9A-Za-z], uniformly distributed (nonces).
std::string random_alnum(std::size_t n);

}  // namespace wxrecon::crypto
