#include "crypto/crypto.hpp"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "base/encoding.hpp"
#include "base/time.hpp"

namespace wxrecon::crypto {

namespace {

// RAII for every OpenSSL object used here; each deleter is the object's own free function.
template <auto free_fn>
struct openssl_deleter {
    template <class T>
    void operator()(T* p) const noexcept {
        free_fn(p);
    }
};

using bio_ptr = std::unique_ptr<BIO, openssl_deleter<BIO_free_all>>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, openssl_deleter<EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, openssl_deleter<X509_free>>;
using bignum_ptr = std::unique_ptr<BIGNUM, openssl_deleter<BN_free>>;
using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, openssl_deleter<EVP_MD_CTX_free>>;
using cipher_ctx_ptr = std::unique_ptr<EVP_CIPHER_CTX, openssl_deleter<EVP_CIPHER_CTX_free>>;
using pkey_ctx_ptr = std::unique_ptr<EVP_PKEY_CTX, openssl_deleter<EVP_PKEY_CTX_free>>;
using x509_extension_ptr = std::unique_ptr<X509_EXTENSION, openssl_deleter<X509_EXTENSION_free>>;
using decoder_ctx_ptr = std::unique_ptr<OSSL_DECODER_CTX, openssl_deleter<OSSL_DECODER_CTX_free>>;

// Buffers OpenSSL allocated for us (BN_bn2hex text, i2d_* DER output).
struct openssl_free_deleter {
    void operator()(void* p) const noexcept { OPENSSL_free(p); }
};
using openssl_string = std::unique_ptr<char, openssl_free_deleter>;
using openssl_bytes = std::unique_ptr<unsigned char, openssl_free_deleter>;

// DER SubjectPublicKeyInfo of a key; empty on failure.
std::string public_key_der(EVP_PKEY* key) {
    unsigned char* raw = nullptr;
    const int size = i2d_PUBKEY(key, &raw);
    openssl_bytes der(raw);
    if (size <= 0 || !der) {
        ERR_clear_error();
        return {};
    }
    return std::string(reinterpret_cast<const char*>(der.get()), static_cast<std::size_t>(size));
}

constexpr std::size_t gcm_tag_size = 16;
constexpr std::size_t aes256_key_size = 32;

std::shared_ptr<EVP_PKEY> share(pkey_ptr key) {
    return std::shared_ptr<EVP_PKEY>(key.release(), EVP_PKEY_free);
}

// The first reason OpenSSL queued for the failure, then the queue is emptied so that a later,
// unrelated call does not report a stale reason.
std::string take_openssl_error() {
    const unsigned long code = ERR_get_error();
    ERR_clear_error();
    if (code == 0) return "no OpenSSL reason given";
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    return buffer;
}

error openssl_failure(errc code, std::string_view what) {
    return make_error(code, std::string(what) + " (" + take_openssl_error() + ")");
}

bio_ptr memory_bio(std::string_view data) {
    if (data.size() > static_cast<std::size_t>(INT_MAX)) return nullptr;
    return bio_ptr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

// Passphrase callback that always refuses: an encrypted key must fail to load instead of making
// OpenSSL prompt on the daemon's terminal.
int refuse_passphrase(char*, int, int, void*) {
    return -1;
}

bool is_rsa(const EVP_PKEY* key) noexcept {
    return key != nullptr && EVP_PKEY_is_a(key, "RSA") == 1;
}

bool fits_int(std::size_t n) noexcept {
    return n <= static_cast<std::size_t>(INT_MAX) - 64;
}

result<std::int64_t> asn1_time_to_unix(const ASN1_TIME* time, std::string_view which) {
    std::tm tm{};
    if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) {
        return openssl_failure(errc::parse_error,
                               "certificate " + std::string(which) + " is not a valid time");
    }
    // ASN1_TIME_to_tm yields UTC fields; convert them without the C library's TZ-dependent mktime.
    const auto unix =
        civil_to_unix(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (!unix) return make_error(errc::parse_error, "certificate " + std::string(which) + " is out of range");
    return *unix;
}

std::string digest(const EVP_MD* md, std::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (EVP_Digest(data.data(), data.size(), out, &size, md, nullptr) != 1) {
        // Digests only fail on allocation failure or a disabled algorithm: nothing a caller can fix.
        std::fprintf(stderr, "wxrecon: fatal: digest failed: %s\n", take_openssl_error().c_str());
        std::abort();
    }
    return std::string(reinterpret_cast<const char*>(out), size);
}

result<std::string> aes256_ecb(bool encrypt, std::string_view key, std::string_view input) {
    const char* direction = encrypt ? "encryption" : "decryption";
    if (key.size() != aes256_key_size) {
        return make_error(errc::invalid_argument, std::string("AES-256-ECB ") + direction +
                                                      " needs a 32-byte key, got " +
                                                      std::to_string(key.size()) + " bytes");
    }
    if (!fits_int(input.size())) return make_error(errc::invalid_argument, "AES-256-ECB input too large");
    if (!encrypt && (input.empty() || input.size() % 16 != 0)) {
        return make_error(errc::decrypt_failed, "AES-256-ECB ciphertext length " +
                                                    std::to_string(input.size()) +
                                                    " is not a positive multiple of 16");
    }
    cipher_ctx_ptr ctx(EVP_CIPHER_CTX_new());
    if (!ctx) return openssl_failure(errc::internal, "EVP_CIPHER_CTX_new failed");
    const auto* key_bytes = reinterpret_cast<const unsigned char*>(key.data());
    if (EVP_CipherInit_ex(ctx.get(), EVP_aes_256_ecb(), nullptr, key_bytes, nullptr, encrypt ? 1 : 0) != 1) {
        return openssl_failure(errc::internal, "AES-256-ECB initialisation failed");
    }
    std::string out(input.size() + 16, '\0');
    int written = 0;
    int final_written = 0;
    auto* out_bytes = reinterpret_cast<unsigned char*>(out.data());
    if (EVP_CipherUpdate(ctx.get(), out_bytes, &written, reinterpret_cast<const unsigned char*>(input.data()),
                         static_cast<int>(input.size())) != 1) {
        return openssl_failure(errc::internal, std::string("AES-256-ECB ") + direction + " failed");
    }
    if (EVP_CipherFinal_ex(ctx.get(), out_bytes + written, &final_written) != 1) {
        if (encrypt) return openssl_failure(errc::internal, "AES-256-ECB encryption failed");
        ERR_clear_error();
        return make_error(errc::decrypt_failed,
                          "AES-256-ECB decryption failed: bad PKCS#7 padding (wrong key?)");
    }
    out.resize(static_cast<std::size_t>(written + final_written));
    return out;
}

error gcm_argument_error(std::string_view key, std::string_view nonce) {
    if (key.size() != aes256_key_size) {
        return make_error(errc::invalid_argument,
                          "AEAD_AES_256_GCM needs a 32-byte key (the APIv3 key), got " +
                              std::to_string(key.size()) + " bytes");
    }
    if (nonce.empty()) return make_error(errc::invalid_argument, "AEAD_AES_256_GCM nonce is empty");
    return make_error(errc::invalid_argument, "AEAD_AES_256_GCM input too large");
}

bool gcm_arguments_ok(std::string_view key, std::string_view nonce, std::string_view aad,
                      std::string_view data) noexcept {
    return key.size() == aes256_key_size && !nonce.empty() && fits_int(nonce.size()) &&
           fits_int(aad.size()) && fits_int(data.size());
}

// Common GCM set-up: cipher, IV length (WeChat's 12-byte nonce is the default, but other lengths are
// legal GCM), then key and IV.
bool gcm_init(EVP_CIPHER_CTX* ctx, bool encrypt, std::string_view key, std::string_view nonce) {
    const int enc = encrypt ? 1 : 0;
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr, enc) != 1) return false;
    const int iv_length = static_cast<int>(nonce.size());
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, iv_length, nullptr) != 1) return false;
    return EVP_CipherInit_ex(ctx, nullptr, nullptr, reinterpret_cast<const unsigned char*>(key.data()),
                             reinterpret_cast<const unsigned char*>(nonce.data()), enc) == 1;
}

bool gcm_aad(EVP_CIPHER_CTX* ctx, std::string_view aad) {
    if (aad.empty()) return true;
    int ignored = 0;
    return EVP_CipherUpdate(ctx, nullptr, &ignored, reinterpret_cast<const unsigned char*>(aad.data()),
                            static_cast<int>(aad.size())) == 1;
}

}  // namespace

public_key private_key::public_part() const {
    if (!key_) return public_key{};
    // Round-trip through the DER SubjectPublicKeyInfo so the result carries no private material.
    const std::string der = public_key_der(key_.get());
    if (der.empty()) return public_key{};
    const auto* cursor = reinterpret_cast<const unsigned char*>(der.data());
    pkey_ptr pub(d2i_PUBKEY(nullptr, &cursor, static_cast<long>(der.size())));
    if (!pub) {
        ERR_clear_error();
        return public_key{};
    }
    return public_key(share(std::move(pub)));
}

result<private_key> load_private_key_pem(std::string_view pem) {
    if (pem.find("ENCRYPTED PRIVATE KEY") != std::string_view::npos ||
        pem.find("Proc-Type: 4,ENCRYPTED") != std::string_view::npos) {
        return make_error(errc::parse_error, "private key PEM is passphrase-protected; store it unencrypted");
    }
    bio_ptr bio = memory_bio(pem);
    if (!bio) return make_error(errc::parse_error, "private key PEM too large");
    pkey_ptr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, refuse_passphrase, nullptr));
    if (!key) {
        return openssl_failure(errc::parse_error,
                               "not a PEM private key (expected BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)");
    }
    if (!is_rsa(key.get())) return make_error(errc::parse_error, "private key is not an RSA key");
    return private_key(share(std::move(key)));
}

result<public_key> load_public_key_pem(std::string_view pem) {
    bio_ptr bio = memory_bio(pem);
    if (!bio) return make_error(errc::parse_error, "public key PEM too large");
    if (pem.find("-----BEGIN PUBLIC KEY-----") != std::string_view::npos) {
        pkey_ptr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, refuse_passphrase, nullptr));
        if (!key) return openssl_failure(errc::parse_error, "PUBLIC KEY PEM does not parse");
        if (!is_rsa(key.get())) return make_error(errc::parse_error, "public key is not an RSA key");
        return public_key(share(std::move(key)));
    }
    if (pem.find("-----BEGIN RSA PUBLIC KEY-----") != std::string_view::npos) {
        // PKCS#1 RSAPublicKey has no non-deprecated PEM_read_* function; the decoder handles it.
        EVP_PKEY* raw = nullptr;
        decoder_ctx_ptr dctx(OSSL_DECODER_CTX_new_for_pkey(&raw, "PEM", "type-specific", "RSA",
                                                           EVP_PKEY_PUBLIC_KEY, nullptr, nullptr));
        if (!dctx) return openssl_failure(errc::internal, "cannot create an RSA public key decoder");
        const auto* data = reinterpret_cast<const unsigned char*>(pem.data());
        std::size_t remaining = pem.size();
        const int decoded = OSSL_DECODER_from_data(dctx.get(), &data, &remaining);
        pkey_ptr key(raw);
        if (decoded != 1 || !key) {
            return openssl_failure(errc::parse_error, "RSA PUBLIC KEY PEM does not parse");
        }
        return public_key(share(std::move(key)));
    }
    return make_error(errc::parse_error,
                      "not a PEM public key (expected BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY)");
}

result<std::size_t> count_pem_certificates(std::string_view pem) {
    bio_ptr bio = memory_bio(pem);
    if (!bio) return make_error(errc::parse_error, "certificate bundle too large");
    std::size_t n = 0;
    for (;;) {
        ERR_clear_error();
        x509_ptr cert(PEM_read_bio_X509(bio.get(), nullptr, refuse_passphrase, nullptr));
        if (cert) {
            ++n;
            continue;
        }
        // The end of the data is the only acceptable way to stop.
        const unsigned long e = ERR_peek_last_error();
        if (n > 0 && ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) break;
        return openssl_failure(errc::parse_error,
                               n == 0 ? "holds no PEM certificate (expected BEGIN CERTIFICATE)"
                                      : "certificate " + std::to_string(n + 1) + " does not parse");
    }
    ERR_clear_error();
    return n;
}

result<certificate> load_certificate_pem(std::string_view pem) {
    bio_ptr bio = memory_bio(pem);
    if (!bio) return make_error(errc::parse_error, "certificate PEM too large");
    x509_ptr cert(PEM_read_bio_X509(bio.get(), nullptr, refuse_passphrase, nullptr));
    if (!cert) {
        return openssl_failure(errc::parse_error, "not a PEM X.509 certificate (expected BEGIN CERTIFICATE)");
    }

    pkey_ptr key(X509_get_pubkey(cert.get()));
    if (!key) return openssl_failure(errc::parse_error, "certificate public key does not parse");
    if (!is_rsa(key.get())) return make_error(errc::parse_error, "certificate key is not an RSA key");

    bignum_ptr serial_bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr));
    if (!serial_bn) return openssl_failure(errc::parse_error, "certificate serial number does not parse");
    // BN_bn2hex writes upper-case digits, which is the form Wechatpay-Serial uses.
    openssl_string serial_hex(BN_bn2hex(serial_bn.get()));
    if (!serial_hex) return openssl_failure(errc::internal, "cannot format certificate serial number");

    auto not_before = asn1_time_to_unix(X509_get0_notBefore(cert.get()), "notBefore");
    if (!not_before) return not_before.err();
    auto not_after = asn1_time_to_unix(X509_get0_notAfter(cert.get()), "notAfter");
    if (!not_after) return not_after.err();

    certificate out;
    out.key = public_key(share(std::move(key)));
    out.serial = serial_hex.get();
    out.not_before = *not_before;
    out.not_after = *not_after;
    out.pem = std::string(pem);
    return out;
}

std::string public_key_to_pem(const public_key& key) {
    if (!key) return {};
    bio_ptr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PUBKEY(bio.get(), key.get()) != 1) {
        ERR_clear_error();
        return {};
    }
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio.get(), &data);
    return size > 0 ? std::string(data, static_cast<std::size_t>(size)) : std::string{};
}

std::string private_key_to_pem(const private_key& key) {
    if (!key) return {};
    bio_ptr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
        ERR_clear_error();
        return {};
    }
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(size));
}

result<private_key> generate_rsa_key(int bits) {
    pkey_ctx_ptr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
    EVP_PKEY* raw = nullptr;
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), bits) != 1 || EVP_PKEY_keygen(ctx.get(), &raw) != 1) {
        return openssl_failure(errc::internal, "RSA key generation failed");
    }
    return private_key(share(pkey_ptr(raw)));
}

namespace {

bool add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    x509_extension_ptr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
    return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

bool set_name(X509_NAME* name, const certificate_request& request) {
    const auto add = [name](const char* field, const std::string& value) {
        return value.empty() || X509_NAME_add_entry_by_txt(
                                    name, field, MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1, 0) == 1;
    };
    return add("C", "CN") && add("O", request.organization) && add("CN", request.common_name);
}

}  // namespace

result<std::string> issue_certificate(const certificate_request& request, const public_key& subject_key,
                                      const private_key& issuer_key, std::string_view issuer_pem) {
    if (!subject_key || !issuer_key)
        return make_error(errc::invalid_argument, "issue_certificate: missing key");
    x509_ptr issuer;
    if (!issuer_pem.empty()) {
        bio_ptr bio = memory_bio(issuer_pem);
        if (bio) issuer.reset(PEM_read_bio_X509(bio.get(), nullptr, refuse_passphrase, nullptr));
        if (!issuer) return openssl_failure(errc::invalid_argument, "issuer certificate does not parse");
    }
    x509_ptr cert(X509_new());
    BIGNUM* serial_raw = nullptr;
    if (!cert || BN_hex2bn(&serial_raw, request.serial_hex.c_str()) == 0) {
        BN_free(serial_raw);
        return make_error(errc::invalid_argument, "certificate serial is not hex: " + request.serial_hex);
    }
    bignum_ptr serial(serial_raw);
    X509_NAME* subject = X509_get_subject_name(cert.get());
    const bool built =
        X509_set_version(cert.get(), X509_VERSION_3) == 1 &&
        BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) != nullptr &&
        ASN1_TIME_set(X509_getm_notBefore(cert.get()), static_cast<time_t>(request.not_before)) != nullptr &&
        ASN1_TIME_set(X509_getm_notAfter(cert.get()), static_cast<time_t>(request.not_after)) != nullptr &&
        X509_set_pubkey(cert.get(), subject_key.get()) == 1 && set_name(subject, request) &&
        X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer.get()) : subject) == 1;
    if (!built) return openssl_failure(errc::internal, "cannot build certificate");
    X509* issuer_cert = issuer ? issuer.get() : cert.get();
    std::string san;
    for (const auto& name : request.subject_alt_names) san += (san.empty() ? "" : ",") + name;
    const bool extended = add_extension(cert.get(), issuer_cert, NID_basic_constraints,
                                        request.is_ca ? "critical,CA:TRUE" : "CA:FALSE") &&
                          add_extension(cert.get(), issuer_cert, NID_key_usage,
                                        request.is_ca ? "critical,keyCertSign,cRLSign"
                                                      : "critical,digitalSignature,keyEncipherment") &&
                          add_extension(cert.get(), issuer_cert, NID_subject_key_identifier, "hash") &&
                          (san.empty() || add_extension(cert.get(), issuer_cert, NID_subject_alt_name, san));
    if (!extended) return openssl_failure(errc::internal, "cannot add certificate extensions");
    if (X509_sign(cert.get(), issuer_key.get(), EVP_sha256()) <= 0) {
        return openssl_failure(errc::internal, "cannot sign certificate");
    }
    bio_ptr out(BIO_new(BIO_s_mem()));
    if (!out || PEM_write_bio_X509(out.get(), cert.get()) != 1) {
        return openssl_failure(errc::internal, "cannot write certificate PEM");
    }
    char* data = nullptr;
    const long size = BIO_get_mem_data(out.get(), &data);
    return std::string(data, static_cast<std::size_t>(size));
}

std::string public_key_fingerprint(const public_key& key) {
    if (!key) return {};
    const std::string der = public_key_der(key.get());
    return der.empty() ? std::string{} : hex_lower(sha256(der));
}

result<std::string> rsa_sha256_sign(const private_key& key, std::string_view message) {
    if (!key) return make_error(errc::invalid_argument, "RSA-SHA256 sign: no private key loaded");
    md_ctx_ptr ctx(EVP_MD_CTX_new());
    if (!ctx) return openssl_failure(errc::internal, "EVP_MD_CTX_new failed");
    // RSA's default padding under EVP_DigestSign is PKCS#1 v1.5, which is what WeChat Pay specifies.
    if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1) {
        return openssl_failure(errc::internal, "RSA-SHA256 sign initialisation failed");
    }
    std::size_t size = 0;
    const auto* data = reinterpret_cast<const unsigned char*>(message.data());
    if (EVP_DigestSign(ctx.get(), nullptr, &size, data, message.size()) != 1) {
        return openssl_failure(errc::internal, "RSA-SHA256 signature size query failed");
    }
    std::string signature(size, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size, data,
                       message.size()) != 1) {
        return openssl_failure(errc::internal, "RSA-SHA256 signing failed");
    }
    signature.resize(size);
    return signature;
}

bool rsa_sha256_verify(const public_key& key, std::string_view message, std::string_view signature) noexcept {
    // Only RSA keys: an EC key must not be able to stand in for WeChat Pay's RSA key.
    if (!is_rsa(key.get()) || signature.empty()) return false;
    md_ctx_ptr ctx(EVP_MD_CTX_new());
    if (!ctx) {
        ERR_clear_error();
        return false;
    }
    const bool verified =
        EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) == 1 &&
        EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                         signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                         message.size()) == 1;
    // A failed verification queues a reason; drop it so it cannot leak into another call's report.
    ERR_clear_error();
    return verified;
}

result<std::string> aes256_gcm_encrypt(std::string_view key, std::string_view nonce, std::string_view aad,
                                       std::string_view plaintext) {
    if (!gcm_arguments_ok(key, nonce, aad, plaintext)) return gcm_argument_error(key, nonce);
    cipher_ctx_ptr ctx(EVP_CIPHER_CTX_new());
    if (!ctx) return openssl_failure(errc::internal, "EVP_CIPHER_CTX_new failed");
    if (!gcm_init(ctx.get(), true, key, nonce) || !gcm_aad(ctx.get(), aad)) {
        return openssl_failure(errc::internal, "AES-256-GCM encryption set-up failed");
    }
    std::string out(plaintext.size() + gcm_tag_size, '\0');
    auto* out_bytes = reinterpret_cast<unsigned char*>(out.data());
    int written = 0;
    if (!plaintext.empty() && EVP_CipherUpdate(ctx.get(), out_bytes, &written,
                                               reinterpret_cast<const unsigned char*>(plaintext.data()),
                                               static_cast<int>(plaintext.size())) != 1) {
        return openssl_failure(errc::internal, "AES-256-GCM encryption failed");
    }
    int final_written = 0;
    if (EVP_CipherFinal_ex(ctx.get(), out_bytes + written, &final_written) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(gcm_tag_size),
                            out_bytes + plaintext.size()) != 1) {
        return openssl_failure(errc::internal, "AES-256-GCM finalisation failed");
    }
    return out;
}

result<std::string> aes256_gcm_decrypt(std::string_view key, std::string_view nonce, std::string_view aad,
                                       std::string_view ciphertext_and_tag) {
    if (!gcm_arguments_ok(key, nonce, aad, ciphertext_and_tag)) return gcm_argument_error(key, nonce);
    if (ciphertext_and_tag.size() < gcm_tag_size) {
        return make_error(errc::invalid_argument, "AEAD_AES_256_GCM input of " +
                                                      std::to_string(ciphertext_and_tag.size()) +
                                                      " bytes is shorter than the 16-byte tag");
    }
    const std::string_view ciphertext =
        ciphertext_and_tag.substr(0, ciphertext_and_tag.size() - gcm_tag_size);
    const std::string_view tag = ciphertext_and_tag.substr(ciphertext.size());

    cipher_ctx_ptr ctx(EVP_CIPHER_CTX_new());
    if (!ctx) return openssl_failure(errc::internal, "EVP_CIPHER_CTX_new failed");
    if (!gcm_init(ctx.get(), false, key, nonce) || !gcm_aad(ctx.get(), aad)) {
        return openssl_failure(errc::internal, "AES-256-GCM decryption set-up failed");
    }
    std::string out(ciphertext.size() + gcm_tag_size, '\0');
    auto* out_bytes = reinterpret_cast<unsigned char*>(out.data());
    int written = 0;
    if (!ciphertext.empty() && EVP_CipherUpdate(ctx.get(), out_bytes, &written,
                                                reinterpret_cast<const unsigned char*>(ciphertext.data()),
                                                static_cast<int>(ciphertext.size())) != 1) {
        return openssl_failure(errc::internal, "AES-256-GCM decryption failed");
    }
    // The tag must be set before Final, which is where GCM authenticates.
    std::string tag_copy(tag);
    if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(gcm_tag_size),
                            tag_copy.data()) != 1) {
        return openssl_failure(errc::internal, "AES-256-GCM cannot set the tag");
    }
    int final_written = 0;
    if (EVP_CipherFinal_ex(ctx.get(), out_bytes + written, &final_written) != 1) {
        ERR_clear_error();
        return make_error(
            errc::decrypt_failed,
            "AEAD_AES_256_GCM authentication failed: wrong APIv3 key, nonce or associated data, or "
            "the ciphertext was altered");
    }
    out.resize(static_cast<std::size_t>(written + final_written));
    return out;
}

result<std::string> aes256_ecb_encrypt(std::string_view key, std::string_view plaintext) {
    return aes256_ecb(true, key, plaintext);
}

result<std::string> aes256_ecb_decrypt(std::string_view key, std::string_view ciphertext) {
    return aes256_ecb(false, key, ciphertext);
}

std::string md5(std::string_view data) {
    return digest(EVP_md5(), data);
}

std::string sha256(std::string_view data) {
    return digest(EVP_sha256(), data);
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    std::size_t size = 0;
    // EVP_MAC treats a null key as "no key"; an empty key is still a valid (if useless) HMAC key.
    static const unsigned char empty_key = 0;
    const auto* key_bytes = key.empty() ? &empty_key : reinterpret_cast<const unsigned char*>(key.data());
    if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key_bytes, key.size(),
                  reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, sizeof out,
                  &size) == nullptr) {
        std::fprintf(stderr, "wxrecon: fatal: HMAC-SHA256 failed: %s\n", take_openssl_error().c_str());
        std::abort();
    }
    return std::string(reinterpret_cast<const char*>(out), size);
}

std::string random_bytes(std::size_t n) {
    std::string out(n, '\0');
    if (n == 0) return out;
    // Nonces and keys must never come from a weak source; without a working CSPRNG there is no safe
    // way to continue, so this is a crash rather than an error value.
    if (!fits_int(n) || RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
        std::fprintf(stderr, "wxrecon: fatal: RAND_bytes failed: %s\n", take_openssl_error().c_str());
        std::abort();
    }
    return out;
}

std::string random_alnum(std::size_t n) {
    static constexpr char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    constexpr unsigned alphabet_size = sizeof alphabet - 1;                 // 62
    constexpr unsigned accept_below = 256 / alphabet_size * alphabet_size;  // 248: bytes >= 248 would bias
    std::string out;
    out.reserve(n);
    while (out.size() < n) {
        // Draw a little more than needed; rejection discards about 3 % of bytes.
        const std::string pool = random_bytes(n - out.size() + 8);
        for (unsigned char byte : pool) {
            if (byte >= accept_below) continue;
            out.push_back(alphabet[byte % alphabet_size]);
            if (out.size() == n) break;
        }
    }
    return out;
}

}  // namespace wxrecon::crypto
