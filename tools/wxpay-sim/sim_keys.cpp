#include "sim_keys.hpp"

#include <toml++/toml.h>

#include <fstream>
#include <sstream>

#include "base/encoding.hpp"

namespace wxrecon::sim {

namespace fs = std::filesystem;

namespace {

constexpr std::int64_t five_years = 5LL * 365 * 86400;

std::string upper_hex(std::size_t bytes) {
    std::string hex = hex_upper(crypto::random_bytes(bytes));
    if (hex[0] == '0') hex[0] = '5';  // no leading zero: OpenSSL prints serials without one
    return hex;
}

status write_text(const fs::path& file, std::string_view text, bool secret) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    if (!out) return make_error(errc::io_error, "cannot write " + file.string());
    std::error_code ec;
    fs::permissions(file,
                    secret ? fs::perms::owner_read | fs::perms::owner_write
                           : fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                 fs::perms::others_read,
                    ec);
    return ok;
}

result<std::string> read_text(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return make_error(errc::io_error, "cannot read " + file.string());
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

result<platform_certificate> issue_platform(const crypto::private_key& ca_key, const std::string& ca_pem,
                                            std::int64_t now) {
    auto key = crypto::generate_rsa_key();
    if (!key) return key.err();
    crypto::certificate_request req;
    req.common_name = "Tenpay.com sign";
    req.organization = "Tenpay.com";
    req.serial_hex = upper_hex(20);
    req.not_before = now - 60;
    req.not_after = now + five_years;
    auto pem = crypto::issue_certificate(req, key->public_part(), ca_key, ca_pem);
    if (!pem) return pem.err();
    return platform_certificate{*key, req.serial_hex, *pem, req.not_before, req.not_after};
}

std::string toml_string(std::string_view s) {
    return "\"" + std::string(s) + "\"";
}

}  // namespace

std::string_view to_string(key_mode m) noexcept {
    switch (m) {
        case key_mode::public_key:
            return "public_key";
        case key_mode::platform_cert:
            return "platform_cert";
        case key_mode::mixed:
            return "mixed";
    }
    return "?";
}

const sim_merchant* sim_keys::find(std::string_view mchid) const noexcept {
    for (const auto& m : merchants)
        if (m.mchid == mchid) return &m;
    return nullptr;
}

sim_merchant* sim_keys::find(std::string_view mchid) noexcept {
    for (auto& m : merchants)
        if (m.mchid == mchid) return &m;
    return nullptr;
}

result<platform_certificate> make_platform_certificate(const sim_keys& keys, std::int64_t now) {
    return issue_platform(keys.ca_key, keys.ca_cert_pem, now);
}

namespace {

// The simulator's own CA and its HTTPS server certificate, written under dir/ca.
status write_ca(sim_keys& keys, const fs::path& dir, std::int64_t now) {
    auto ca_key = crypto::generate_rsa_key();
    if (!ca_key) return ca_key.err();
    keys.ca_key = *ca_key;
    crypto::certificate_request ca_req;
    ca_req.common_name = "wxpay-sim CA";
    ca_req.organization = "wxpay-sim";
    ca_req.serial_hex = upper_hex(16);
    ca_req.not_before = now - 60;
    ca_req.not_after = now + 10 * 365LL * 86400;
    ca_req.is_ca = true;
    auto ca_pem = crypto::issue_certificate(ca_req, ca_key->public_part(), *ca_key);
    if (!ca_pem) return ca_pem.err();
    keys.ca_cert_pem = *ca_pem;
    auto server_key = crypto::generate_rsa_key();
    if (!server_key) return server_key.err();
    crypto::certificate_request server_req;
    server_req.common_name = "localhost";
    server_req.organization = "wxpay-sim";
    server_req.serial_hex = upper_hex(16);
    server_req.not_before = now - 60;
    server_req.not_after = now + 2 * 365LL * 86400;
    server_req.subject_alt_names = {"DNS:localhost", "IP:127.0.0.1", "IP:::1"};
    auto server_pem = crypto::issue_certificate(server_req, server_key->public_part(), *ca_key, *ca_pem);
    if (!server_pem) return server_pem.err();
    keys.server_cert_pem = *server_pem;
    keys.server_key_pem = crypto::private_key_to_pem(*server_key);
    for (const auto& [name, text, secret] :
         {std::tuple{"ca/ca_cert.pem", keys.ca_cert_pem, false},
          std::tuple{"ca/ca_key.pem", crypto::private_key_to_pem(*ca_key), true},
          std::tuple{"ca/server_cert.pem", keys.server_cert_pem, false},
          std::tuple{"ca/server_key.pem", keys.server_key_pem, true}}) {
        if (auto w = write_text(dir / name, text, secret); !w) return w.err();
    }
    return ok;
}

// One simulated merchant: its keys and certificates, written under dir/<mchid>.
result<sim_merchant> write_merchant(int i, std::int64_t now, const crypto::private_key& ca_key,
                                    const std::string& ca_pem, const fs::path& dir) {
    sim_merchant m;
    m.mchid = std::to_string(1900000101 + i);
    m.appid = "wx" + hex_lower(crypto::random_bytes(8));
    // The merchants cycle through the modes a client must handle.
    static constexpr std::pair<api_version, key_mode> cycle[] = {{api_version::v3, key_mode::public_key},
                                                                 {api_version::v2, key_mode::public_key},
                                                                 {api_version::v3, key_mode::platform_cert},
                                                                 {api_version::v3, key_mode::mixed}};
    m.version = cycle[i % 4].first;
    m.mode = cycle[i % 4].second;
    const fs::path md = dir / m.mchid;
    std::error_code ec;
    fs::create_directories(md, ec);
    if (ec) return make_error(errc::io_error, "cannot create " + md.string() + ": " + ec.message());

    auto merchant_key = crypto::generate_rsa_key();
    if (!merchant_key) return merchant_key.err();
    m.merchant_key = merchant_key->public_part();
    crypto::certificate_request merchant_req;
    merchant_req.common_name = m.mchid;
    merchant_req.organization = "wxpay-sim merchant " + m.mchid;
    merchant_req.serial_hex = upper_hex(20);
    merchant_req.not_before = now - 60;
    merchant_req.not_after = now + five_years;
    m.merchant_serial = merchant_req.serial_hex;
    auto merchant_cert = crypto::issue_certificate(merchant_req, m.merchant_key, ca_key, ca_pem);
    if (!merchant_cert) return merchant_cert.err();

    auto platform = issue_platform(ca_key, ca_pem, now);
    if (!platform) return platform.err();
    auto pub_signer = crypto::generate_rsa_key();
    if (!pub_signer) return pub_signer.err();
    m.public_key_signer = *pub_signer;
    m.public_key_id = "PUB_KEY_ID_01" + m.mchid + "20261126" + std::to_string(100000000000LL + i);
    m.apiv3_key = crypto::random_alnum(32);
    m.apiv2_key = crypto::random_alnum(32);
    m.app_secret = hex_lower(crypto::random_bytes(16));

    for (const auto& [name, text, secret] :
         {std::tuple{"apiclient_key.pem", crypto::private_key_to_pem(*merchant_key), true},
          std::tuple{"apiclient_cert.pem", *merchant_cert, false},
          std::tuple{"wechatpay_platform_key.pem", crypto::private_key_to_pem(platform->key), true},
          std::tuple{"wechatpay_platform_cert.pem", platform->pem, false},
          std::tuple{"wechatpay_pub_key_private.pem", crypto::private_key_to_pem(*pub_signer), true},
          std::tuple{"wechatpay_pub_key.pem", crypto::public_key_to_pem(pub_signer->public_part()), false},
          std::tuple{"apiv3.key", m.apiv3_key, true}, std::tuple{"apiv2.key", m.apiv2_key, true},
          std::tuple{"app_secret", m.app_secret, true}}) {
        if (auto w = write_text(md / name, text, secret); !w) return w.err();
    }
    m.certificates.push_back(std::move(*platform));
    return m;
}

// The merchant as the simulator reads it back (sim.toml), with paths relative to the key set.
std::string sim_toml_block(const sim_merchant& m) {
    const std::string rel = m.mchid + "/";
    return "\n[[merchants]]\nmchid = " + toml_string(m.mchid) + "\nappid = " + toml_string(m.appid) +
           "\napi_version = " + toml_string(m.version == api_version::v3 ? "v3" : "v2") +
           "\nkey_mode = " + toml_string(to_string(m.mode)) +
           "\nmerchant_cert_serial = " + toml_string(m.merchant_serial) +
           "\nmerchant_cert_file = " + toml_string(rel + "apiclient_cert.pem") +
           "\nplatform_key_file = " + toml_string(rel + "wechatpay_platform_key.pem") +
           "\nplatform_cert_file = " + toml_string(rel + "wechatpay_platform_cert.pem") +
           "\npublic_key_id = " + toml_string(m.public_key_id) +
           "\npublic_key_private_file = " + toml_string(rel + "wechatpay_pub_key_private.pem") +
           "\napiv3_key_file = " + toml_string(rel + "apiv3.key") +
           "\napiv2_key_file = " + toml_string(rel + "apiv2.key") +
           "\napp_secret_file = " + toml_string(rel + "app_secret") + "\n";
}

// The merchant as wxrecond's configuration names it, with absolute paths.
std::string wxrecond_block(const sim_merchant& m, const fs::path& md, const std::string& api_base) {
    const std::string abs = (md / "").string();
    return "\n[[merchants]]\nmchid = " + toml_string(m.mchid) + "\nappid = " + toml_string(m.appid) +
           "\napi_version = " + toml_string(m.version == api_version::v3 ? "v3" : "v2") +
           "\napi_base = " + toml_string(api_base) + "\nmp_api_base = " + toml_string(api_base) +
           "\napiv3_key_file = " + toml_string(abs + "apiv3.key") +
           "\napiv2_key_file = " + toml_string(abs + "apiv2.key") +
           "\nmerchant_private_key_file = " + toml_string(abs + "apiclient_key.pem") +
           "\nmerchant_cert_file = " + toml_string(abs + "apiclient_cert.pem") +
           "\nmerchant_cert_serial = " + toml_string(m.merchant_serial) +
           "\nwechatpay_public_key_file = " + toml_string(abs + "wechatpay_pub_key.pem") +
           "\nwechatpay_public_key_id = " + toml_string(m.public_key_id) + "\nplatform_cert_files = [" +
           toml_string(abs + "wechatpay_platform_cert.pem") + "]" +
           "\napp_secret_file = " + toml_string(abs + "app_secret") + "\n";
}

}  // namespace

result<sim_keys> write_key_set(const keygen_options& o) {
    if (o.merchants < 1 || o.merchants > 99)
        return make_error(errc::invalid_argument, "--merchants must be from 1 to 99");
    std::error_code ec;
    fs::create_directories(o.out / "ca", ec);
    if (ec)
        return make_error(errc::io_error, "cannot create " + (o.out / "ca").string() + ": " + ec.message());
    if (fs::exists(o.out / "sim.toml"))
        return make_error(errc::invalid_argument,
                          (o.out / "sim.toml").string() + " exists; choose an empty folder");
    const fs::path dir = fs::absolute(o.out);

    sim_keys keys;
    if (auto written = write_ca(keys, dir, o.now); !written) return written.err();
    std::string sim_toml =
        "# Written by `wxpay-sim keys`: the simulator's view of its merchants.\n"
        "[ca]\ncert_file = \"ca/ca_cert.pem\"\nkey_file = \"ca/ca_key.pem\"\n"
        "server_cert_file = \"ca/server_cert.pem\"\nserver_key_file = \"ca/server_key.pem\"\n";
    std::string fragment =
        "# Written by `wxpay-sim keys`: [[merchants]] blocks for wxrecond.toml, one per simulated "
        "merchant.\n";
    for (int i = 0; i < o.merchants; ++i) {
        auto m = write_merchant(i, o.now, keys.ca_key, keys.ca_cert_pem, dir);
        if (!m) return m.err();
        sim_toml += sim_toml_block(*m);
        fragment += wxrecond_block(*m, dir / m->mchid, o.api_base);
        keys.merchants.push_back(std::move(*m));
    }
    if (auto w = write_text(dir / "wxrecond-merchants.toml", fragment, false); !w) return w.err();
    if (auto w = write_text(dir / "sim.toml", sim_toml, false); !w) return w.err();
    return keys;
}

result<sim_keys> load_key_set(const fs::path& dir) {
    const fs::path file = dir / "sim.toml";
    toml::table doc;
    try {
        doc = toml::parse_file(file.string());
    } catch (const toml::parse_error& e) {
        return make_error(errc::config_error, file.string() + ": " + std::string(e.description()));
    }
    auto text = [&](const toml::node_view<toml::node>& node, std::string_view what) -> result<std::string> {
        const auto v = node.value<std::string>();
        if (!v) return make_error(errc::config_error, file.string() + ": missing " + std::string(what));
        return *v;
    };
    auto file_text = [&](const toml::node_view<toml::node>& node,
                         std::string_view what) -> result<std::string> {
        auto name = text(node, what);
        if (!name) return name.err();
        return read_text(dir / *name);
    };
    sim_keys keys;
    auto ca_cert = file_text(doc["ca"]["cert_file"], "ca.cert_file");
    auto ca_key_pem = file_text(doc["ca"]["key_file"], "ca.key_file");
    auto server_cert = file_text(doc["ca"]["server_cert_file"], "ca.server_cert_file");
    auto server_key = file_text(doc["ca"]["server_key_file"], "ca.server_key_file");
    if (!ca_cert) return ca_cert.err();
    if (!ca_key_pem) return ca_key_pem.err();
    if (!server_cert) return server_cert.err();
    if (!server_key) return server_key.err();
    auto ca_key = crypto::load_private_key_pem(*ca_key_pem);
    if (!ca_key) return make_error(errc::config_error, "ca.key_file: " + ca_key.err().message);
    keys.ca_cert_pem = *ca_cert;
    keys.ca_key = *ca_key;
    keys.server_cert_pem = *server_cert;
    keys.server_key_pem = *server_key;

    const toml::array* list = doc["merchants"].as_array();
    if (list == nullptr || list->empty())
        return make_error(errc::config_error, file.string() + ": no [[merchants]]");
    for (const auto& entry : *list) {
        const toml::table* t = entry.as_table();
        if (t == nullptr)
            return make_error(errc::config_error, file.string() + ": [[merchants]] entry is not a table");
        const toml::node_view<const toml::node> view(t);
        auto get = [&](std::string_view key) -> result<std::string> {
            const auto v = view[key].value<std::string>();
            if (!v)
                return make_error(errc::config_error,
                                  file.string() + ": merchants." + std::string(key) + " missing");
            return *v;
        };
        auto read = [&](std::string_view key) -> result<std::string> {
            auto name = get(key);
            if (!name) return name.err();
            return read_text(dir / *name);
        };
        sim_merchant m;
        auto mchid = get("mchid");
        auto appid = get("appid");
        auto version = get("api_version");
        auto mode = get("key_mode");
        auto serial = get("merchant_cert_serial");
        auto merchant_cert = read("merchant_cert_file");
        auto platform_key = read("platform_key_file");
        auto platform_cert = read("platform_cert_file");
        auto pub_id = get("public_key_id");
        auto pub_private = read("public_key_private_file");
        auto apiv3 = read("apiv3_key_file");
        auto apiv2 = read("apiv2_key_file");
        auto secret = read("app_secret_file");
        for (const auto* r : {&mchid, &appid, &version, &mode, &serial, &merchant_cert, &platform_key,
                              &platform_cert, &pub_id, &pub_private, &apiv3, &apiv2, &secret})
            if (!*r) return r->err();
        m.mchid = *mchid;
        m.appid = *appid;
        m.version = *version == "v2" ? api_version::v2 : api_version::v3;
        m.mode = *mode == "platform_cert" ? key_mode::platform_cert
                 : *mode == "mixed"       ? key_mode::mixed
                                          : key_mode::public_key;
        m.merchant_serial = *serial;
        auto mcert = crypto::load_certificate_pem(*merchant_cert);
        if (!mcert)
            return make_error(errc::config_error, m.mchid + ": merchant_cert_file: " + mcert.err().message);
        m.merchant_key = mcert->key;
        auto pkey = crypto::load_private_key_pem(*platform_key);
        auto pcert = crypto::load_certificate_pem(*platform_cert);
        if (!pkey || !pcert)
            return make_error(errc::config_error, m.mchid + ": platform key or certificate does not load");
        m.certificates.push_back({*pkey, pcert->serial, pcert->pem, pcert->not_before, pcert->not_after});
        m.public_key_id = *pub_id;
        auto signer = crypto::load_private_key_pem(*pub_private);
        if (!signer)
            return make_error(errc::config_error,
                              m.mchid + ": public_key_private_file: " + signer.err().message);
        m.public_key_signer = *signer;
        m.apiv3_key = *apiv3;
        m.apiv2_key = *apiv2;
        m.app_secret = *secret;
        keys.merchants.push_back(std::move(m));
    }
    return keys;
}

}  // namespace wxrecon::sim
