#include "config/key_material.hpp"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <system_error>

#include "base/time.hpp"
#include "config/value_checks.hpp"

namespace wxrecon::config {

namespace {

constexpr std::uintmax_t max_key_file_bytes = 1 << 20;  // PEM chains and secrets are a few KiB at most
constexpr std::string_view public_key_id_prefix = "PUB_KEY_ID_";

// Builds errors and warnings of one merchant in the single format operators grep for:
// "<config file>: merchants[<i>].<key>: <what> (<file path>)".
class merchant_context {
public:
    merchant_context(const config& cfg, std::size_t index) : cfg_(cfg), index_(index) {}

    std::string describe(std::string_view key, std::string_view what, const path* file = nullptr) const {
        std::string text = cfg_.source_file.string() + ": merchants[" + std::to_string(index_) + "]." +
                           std::string(key) + ": " + std::string(what);
        if (file != nullptr) text += " (" + file->string() + ")";
        return text;
    }

    error fail(std::string_view key, std::string_view what, const path* file = nullptr) const {
        return make_error(errc::config_error, describe(key, what, file));
    }

    // config.cpp already resolves relative paths against the config file's folder; doing it again
    // here keeps hand-built configs (tests, tools) behaving the same way.
    path resolve(const path& file) const {
        if (file.is_absolute() || cfg_.source_file.empty()) return file;
        return cfg_.source_file.parent_path() / file;
    }

    result<std::string> read_file(std::string_view key, const path& file) const {
        std::error_code ec;
        const auto file_status = std::filesystem::status(file, ec);
        if (ec || !std::filesystem::exists(file_status)) return fail(key, "file not found", &file);
        if (!std::filesystem::is_regular_file(file_status)) return fail(key, "not a regular file", &file);
        const auto size = std::filesystem::file_size(file, ec);
        if (ec) return fail(key, "cannot read file: " + ec.message(), &file);
        if (size > max_key_file_bytes) return fail(key, "file is larger than 1 MiB", &file);
        std::ifstream in(file, std::ios::binary);
        if (!in) return fail(key, "cannot open file", &file);
        std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (in.bad()) return fail(key, "read error", &file);
        return content;
    }

    // Same rule as config::read_secret_file; read here so every message has this file's format.
    result<std::string> read_secret(std::string_view key, const path& file) const {
        auto content = read_file(key, file);
        if (content) text::strip_final_newline(*content);
        return content;
    }

private:
    const config& cfg_;
    std::size_t index_;
};

bool is_hex(std::string_view text) {
    if (text.empty()) return false;
    for (char c : text) {
        const bool digit = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
        if (!digit) return false;
    }
    return true;
}

bool is_printable_ascii(std::string_view text) {
    for (char c : text) {
        if (c < 0x21 || c > 0x7e) return false;
    }
    return true;
}

// The APIv3 and APIv2 keys: what decrypts and authenticates notifications.
status load_api_keys(const merchant_context& ctx, const merchant_config& m, merchant_keys& keys) {
    const bool v3 = m.version == api_version::v3;
    if (m.apiv3_key_file) {
        const path file = ctx.resolve(*m.apiv3_key_file);
        auto secret = ctx.read_secret("apiv3_key_file", file);
        if (!secret) return secret.err();
        if (secret->size() != 32) {
            return ctx.fail("apiv3_key_file",
                            "APIv3 key must be exactly 32 bytes, found " + std::to_string(secret->size()),
                            &file);
        }
        keys.apiv3_key = std::move(*secret);
    } else if (v3) {
        return ctx.fail("apiv3_key_file", "required for api_version \"v3\" (decrypts notifications)");
    }

    if (m.apiv2_key_file) {
        const path file = ctx.resolve(*m.apiv2_key_file);
        auto secret = ctx.read_secret("apiv2_key_file", file);
        if (!secret) return secret.err();
        if (secret->size() != 32 || !is_printable_ascii(*secret)) {
            return ctx.fail("apiv2_key_file",
                            "APIv2 key must be exactly 32 printable ASCII characters, found " +
                                std::to_string(secret->size()) + " bytes",
                            &file);
        }
        keys.apiv2_key = std::move(*secret);
    } else if (!v3) {
        return ctx.fail("apiv2_key_file", "required for api_version \"v2\"");
    }

    return ok;
}

// The merchant's own private key and certificate serial: what signs its requests.
status load_signing_key(const merchant_context& ctx, const merchant_config& m, merchant_keys& keys) {
    const bool v3 = m.version == api_version::v3;
    if (m.merchant_private_key_file) {
        const path file = ctx.resolve(*m.merchant_private_key_file);
        auto pem = ctx.read_file("merchant_private_key_file", file);
        if (!pem) return pem.err();
        auto key = crypto::load_private_key_pem(*pem);
        if (!key) return ctx.fail("merchant_private_key_file", key.err().message, &file);
        keys.merchant_private_key = std::move(*key);
    } else if (v3) {
        return ctx.fail("merchant_private_key_file", "required for api_version \"v3\" (signs requests)");
    }

    if (m.merchant_cert_file && keys.merchant_private_key) {
        const path file = ctx.resolve(*m.merchant_cert_file);
        auto pem = ctx.read_file("merchant_cert_file", file);
        if (!pem) return pem.err();
        auto cert = crypto::load_certificate_pem(*pem);
        if (!cert) return ctx.fail("merchant_cert_file", cert.err().message, &file);
        if (crypto::public_key_fingerprint(cert->key) !=
            crypto::public_key_fingerprint(keys.merchant_private_key.public_part()))
            return ctx.fail("merchant_cert_file",
                            "is not the certificate of merchant_private_key_file (the public keys differ)",
                            &file);
        // OpenSSL prints a serial without leading zeros; the merchant platform shows them.
        const auto significant = [](std::string_view hex) {
            return hex.substr(std::min(hex.find_first_not_of('0'), hex.size()));
        };
        if (m.merchant_cert_serial && !m.merchant_cert_serial->empty() &&
            significant(cert->serial) != significant(*m.merchant_cert_serial))
            return ctx.fail(
                "merchant_cert_file",
                "has serial " + cert->serial + ", but merchant_cert_serial is " + *m.merchant_cert_serial,
                &file);
    }

    if (m.merchant_cert_serial && !m.merchant_cert_serial->empty()) {
        if (!is_hex(*m.merchant_cert_serial)) {
            return ctx.fail("merchant_cert_serial", "must be the certificate serial number in hex, got \"" +
                                                        *m.merchant_cert_serial + "\"");
        }
    } else if (v3) {
        return ctx.fail("merchant_cert_serial",
                        "required for api_version \"v3\" (serial_no of every request)");
    }

    return ok;
}

// What WeChat Pay's signatures are verified with: its public key and/or platform certificates.
status load_wechatpay_keys(const merchant_context& ctx, const merchant_config& m, std::int64_t now_unix,
                           merchant_keys& keys, std::vector<key_warning>& warnings) {
    const bool v3 = m.version == api_version::v3;
    // Public-key mode: the id is what WeChat Pay sends in Wechatpay-Serial, so one is useless without
    // the other.
    if (m.wechatpay_public_key_file.has_value() != m.wechatpay_public_key_id.has_value()) {
        if (m.wechatpay_public_key_file) {
            const path file = ctx.resolve(*m.wechatpay_public_key_file);
            return ctx.fail("wechatpay_public_key_id", "required together with wechatpay_public_key_file",
                            &file);
        }
        return ctx.fail("wechatpay_public_key_file", "required together with wechatpay_public_key_id");
    }
    if (m.wechatpay_public_key_file) {
        const path file = ctx.resolve(*m.wechatpay_public_key_file);
        const std::string& id = *m.wechatpay_public_key_id;
        if (!id.starts_with(public_key_id_prefix) || id.size() == public_key_id_prefix.size()) {
            return ctx.fail("wechatpay_public_key_id", "must start with \"PUB_KEY_ID_\", got \"" + id + "\"");
        }
        auto pem = ctx.read_file("wechatpay_public_key_file", file);
        if (!pem) return pem.err();
        auto key = crypto::load_public_key_pem(*pem);
        if (!key) return ctx.fail("wechatpay_public_key_file", key.err().message, &file);
        keys.wechatpay_keys.emplace(id, std::move(*key));
    }

    std::vector<std::string> expired;  // "file (serial, expired at …)" for the refusal
    for (std::size_t j = 0; j < m.platform_cert_files.size(); ++j) {
        const std::string key_name = "platform_cert_files[" + std::to_string(j) + "]";
        const path file = ctx.resolve(m.platform_cert_files[j]);
        auto pem = ctx.read_file(key_name, file);
        if (!pem) return pem.err();
        auto cert = crypto::load_certificate_pem(*pem);
        if (!cert) return ctx.fail(key_name, cert.err().message, &file);

        const bool duplicate =
            keys.wechatpay_keys.contains(cert->serial) ||
            std::any_of(keys.platform_certs.begin(), keys.platform_certs.end(),
                        [&](const crypto::certificate& c) { return c.serial == cert->serial; });
        if (duplicate) {
            return ctx.fail(key_name, "platform certificate " + cert->serial + " is listed twice", &file);
        }

        if (cert->not_after < now_unix) {
            // Normal after a rotation: keep it visible, but never trust it.
            expired.push_back(file.string() + " (" + cert->serial + ", expired at " +
                              format_rfc3339(cert->not_after) + ")");
            warnings.push_back(key_warning{ctx.describe(
                key_name,
                "platform certificate " + cert->serial + " expired at " + format_rfc3339(cert->not_after),
                &file)});
        } else {
            if (cert->not_before > now_unix) {
                warnings.push_back(
                    key_warning{ctx.describe(key_name,
                                             "platform certificate " + cert->serial +
                                                 " is not valid before " + format_rfc3339(cert->not_before),
                                             &file)});
            }
            keys.wechatpay_keys.emplace(cert->serial, cert->key);
        }
        keys.platform_certs.push_back(std::move(*cert));
    }

    if (v3 && keys.wechatpay_keys.empty()) {
        if (!expired.empty()) {
            std::string files;
            for (const auto& e : expired) files += (files.empty() ? "" : ", ") + e;
            return ctx.fail("platform_cert_files",
                            "every platform certificate is expired: " + files +
                                "; and no WeChat Pay public key is configured; configure "
                                "wechatpay_public_key_file + wechatpay_public_key_id or a current platform "
                                "certificate");
        }
        return ctx.fail(
            "wechatpay_public_key_file",
            "api_version \"v3\" needs a WeChat Pay verification key: set wechatpay_public_key_file + "
            "wechatpay_public_key_id and/or platform_cert_files");
    }

    return ok;
}

// Loads one merchant's files into `keys`, appending warnings; the first problem ends the load.
status load_merchant(const config& cfg, std::size_t index, std::int64_t now_unix, merchant_keys& keys,
                     std::vector<key_warning>& warnings) {
    const merchant_context ctx(cfg, index);
    const merchant_config& m = cfg.merchants[index];
    keys.mchid = m.mchid;
    if (auto loaded = load_api_keys(ctx, m, keys); !loaded) return loaded;
    if (auto loaded = load_signing_key(ctx, m, keys); !loaded) return loaded;
    if (auto loaded = load_wechatpay_keys(ctx, m, now_unix, keys, warnings); !loaded) return loaded;
    if (m.ca_file) {  // the TLS trust for this merchant's API host: unusable, every call would fail later
        const path file = ctx.resolve(*m.ca_file);
        auto pem = ctx.read_file("ca_file", file);
        if (!pem) return pem.err();
        if (auto certs = crypto::count_pem_certificates(*pem); !certs)
            return ctx.fail("ca_file", certs.err().message, &file);
    }
    if (m.app_secret_file) {
        const path file = ctx.resolve(*m.app_secret_file);
        auto secret = ctx.read_secret("app_secret_file", file);
        if (!secret) return secret.err();
        if (secret->empty()) return ctx.fail("app_secret_file", "file is empty", &file);
        keys.app_secret = std::move(*secret);
    }
    return ok;
}

}  // namespace

const crypto::public_key* merchant_keys::find_wechatpay_key(std::string_view serial,
                                                            std::int64_t now_unix) const noexcept {
    const auto it = wechatpay_keys.find(serial);
    if (it == wechatpay_keys.end()) return nullptr;
    if (const auto* cert = find_platform_certificate(serial);
        cert != nullptr && (now_unix < cert->not_before || now_unix > cert->not_after))
        return nullptr;
    return &it->second;
}

const crypto::certificate* merchant_keys::find_platform_certificate(std::string_view serial) const noexcept {
    for (const auto& cert : platform_certs)
        if (cert.serial == serial) return &cert;
    return nullptr;
}

const merchant_keys* key_store::find(std::string_view mchid) const noexcept {
    const auto it = merchants.find(mchid);
    return it == merchants.end() ? nullptr : &it->second;
}

result<std::string> load_api_token(const api_config& api) {
    auto token = read_secret_file(api.token_file, "api.token_file");
    if (!token) return token.err();
    if (token->size() < 16)
        return make_error(errc::config_error, "api.token_file: " + api.token_file.string() +
                                                  ": the token must be at least 16 characters");
    return token;
}

result<std::string> load_app_events_secret(const app_events_config& events) {
    auto secret = read_secret_file(events.secret_file, "app_events.secret_file");
    if (!secret) return secret.err();
    if (secret->size() < 16)
        return make_error(errc::config_error, "app_events.secret_file: " + events.secret_file.string() +
                                                  ": the secret must be at least 16 bytes");
    return secret;
}

result<key_store> load_key_store(const config& cfg, std::int64_t now_unix) {
    key_store store;
    for (std::size_t i = 0; i < cfg.merchants.size(); ++i) {
        const merchant_config& m = cfg.merchants[i];
        const merchant_context ctx(cfg, i);
        if (m.mchid.empty()) return ctx.fail("mchid", "required");
        if (store.merchants.contains(m.mchid)) return ctx.fail("mchid", "duplicate merchant " + m.mchid);
        merchant_keys keys;
        if (auto loaded = load_merchant(cfg, i, now_unix, keys, store.warnings); !loaded) return loaded.err();
        store.merchants.emplace(m.mchid, std::move(keys));
    }
    return store;
}

}  // namespace wxrecon::config
