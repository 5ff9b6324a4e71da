// wxrecon-send: plays WeChat Pay's notifier against a running wxrecond. Builds one
// signed (or deliberately forged) notification, POSTs it, prints the reply on one line.
// Used by scripts/demo.sh and by humans poking at a test instance; plain HTTP only.
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>

#include "base/encoding.hpp"
#include "base/time.hpp"
#include "config/config.hpp"
#include "crypto/crypto.hpp"
#include "domain/facts.hpp"
#include "protocol/v2.hpp"
#include "protocol/v3.hpp"

namespace {

using namespace wxrecon;
namespace beast = boost::beast;
namespace http = beast::http;

constexpr const char* usage =
    "usage: wxrecon-send --url http://HOST:PORT --mchid MCHID [--apiv3-key-file F]\n"
    "                    [--wechatpay-key-file PEM] [--serial PUB_KEY_ID_...] [--appid APPID] COMMAND ...\n"
    "  payment     --out-trade-no T --total FEN [--transaction-id ID] [--id NOTIFY_ID]\n"
    "  refund      --out-trade-no T --out-refund-no R --refund FEN --total FEN\n"
    "              --status SUCCESS|ABNORMAL|CLOSED --transaction-id ID [--id NOTIFY_ID]\n"
    "  v2-payment  --apiv2-key-file F --out-trade-no T --total FEN --transaction-id ID\n"
    "              [--sign-type MD5|HMAC-SHA256]\n"
    "  forged      --out-trade-no T --total FEN   (payment signed with a freshly generated wrong key)\n"
    "  probe       --out-trade-no T --total FEN   (Wechatpay-Signature WECHATPAY/SIGNTEST/...)\n"
    "Prints \"<kind> out_trade_no=<T> -> HTTP <status> <body>\".\n"
    "Exit status 0 once an HTTP reply arrived (whatever its status), 1 on usage or I/O errors.\n";

const char* const demo_openid = "oDemoOpenid000000000000000001";
const char* const default_appid = "wxd678efh567hg6787";

// A command line that cannot work (as opposed to an I/O failure).
struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct options {
    std::string command;
    std::map<std::string, std::string, std::less<>> values;  // "--name" -> value

    bool has(std::string_view name) const { return values.contains(name); }
    std::string get(std::string_view name, std::string fallback = {}) const {
        const auto it = values.find(name);
        return it == values.end() ? fallback : it->second;
    }
    std::string need(std::string_view name) const {
        const auto it = values.find(name);
        if (it == values.end() || it->second.empty())
            throw usage_error(command + " needs " + std::string(name));
        return it->second;
    }
    std::int64_t need_fen(std::string_view name) const {
        const std::string text = need(name);
        std::int64_t v = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec != std::errc{} || end != text.data() + text.size() || v < 0)
            throw usage_error(std::string(name) + ": \"" + text + "\" is not an amount in fen");
        return v;
    }
};

options parse_args(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg.starts_with("--")) {
            if (i + 1 >= argc) throw usage_error(arg + " needs a value");
            o.values[arg] = argv[++i];
        } else if (o.command.empty()) {
            o.command = arg;
        } else {
            throw usage_error("unexpected argument \"" + arg + "\"");
        }
    }
    if (o.command.empty()) throw usage_error("no command given");
    return o;
}

std::string read_file(const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + file);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

std::string read_secret(const options& o, std::string_view option) {
    auto secret = config::read_secret_file(o.need(option), option.substr(2));
    if (!secret) throw std::runtime_error(secret.err().message);
    return std::move(*secret);
}

crypto::private_key load_key(const std::string& file) {
    auto key = crypto::load_private_key_pem(read_file(file));
    if (!key) throw std::runtime_error(file + ": " + key.err().message);
    return std::move(*key);
}

// A key nobody trusts: what an attacker who knows the serial but not the key would sign with.
crypto::private_key fresh_wrong_key() {
    EVP_PKEY* raw = EVP_RSA_gen(2048);
    if (raw == nullptr) throw std::runtime_error("RSA key generation failed");
    return crypto::private_key(std::shared_ptr<EVP_PKEY>(raw, EVP_PKEY_free));
}

std::string random_digits(std::size_t n) {
    std::string out;
    while (out.size() < n) {
        for (const unsigned char b : crypto::random_bytes(n)) {
            if (b < 250 && out.size() < n) out.push_back(static_cast<char>('0' + b % 10));  // unbiased
        }
    }
    return out;
}

std::string random_uuid() {
    const std::string h = hex_lower(crypto::random_bytes(16));
    return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" +
           h.substr(20);
}

struct http_target {
    std::string host, port, base_path;
};

http_target parse_url(const std::string& url) {
    constexpr std::string_view scheme = "http://";
    if (!url.starts_with(scheme)) throw usage_error("--url must start with http:// (got \"" + url + "\")");
    std::string rest = url.substr(scheme.size());
    http_target t;
    const auto slash = rest.find('/');
    if (slash != std::string::npos) t.base_path = rest.substr(slash), rest.resize(slash);
    while (t.base_path.ends_with('/')) t.base_path.pop_back();
    const auto colon = rest.rfind(':');
    t.host = colon == std::string::npos ? rest : rest.substr(0, colon);
    t.port = colon == std::string::npos ? "80" : rest.substr(colon + 1);
    if (t.host.empty() || t.port.empty()) throw usage_error("--url \"" + url + "\" names no host or port");
    return t;
}

struct outgoing {
    std::string path;  // after the URL's base path
    std::string content_type;
    std::string body;
    std::map<std::string, std::string> headers;
};

// One exchange under a single 10 s deadline (Beast's timeouts cover asynchronous operations only,
// hence a coroutine run to completion rather than the blocking calls).
boost::asio::awaitable<std::pair<int, std::string>> exchange(http_target t, outgoing out) {
    const auto executor = co_await boost::asio::this_coro::executor;
    boost::asio::ip::tcp::resolver resolver(executor);
    beast::tcp_stream stream(executor);
    stream.expires_after(std::chrono::seconds(10));
    co_await stream.async_connect(co_await resolver.async_resolve(t.host, t.port, boost::asio::use_awaitable),
                                  boost::asio::use_awaitable);
    http::request<http::string_body> req{http::verb::post, t.base_path + out.path, 11};
    req.set(http::field::host, t.host + ":" + t.port);
    req.set(http::field::user_agent, "wxrecon-send/" WXRECON_VERSION);
    req.set(http::field::content_type, out.content_type);
    for (const auto& [name, value] : out.headers) req.set(name, value);
    req.body() = std::move(out.body);
    req.prepare_payload();
    co_await http::async_write(stream, req, boost::asio::use_awaitable);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(1 << 20);
    co_await http::async_read(stream, buffer, parser, boost::asio::use_awaitable);
    beast::error_code ignored;
    stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ignored);
    co_return std::pair<int, std::string>{parser.get().result_int(), std::move(parser.get().body())};
}

std::pair<int, std::string> post(const http_target& t, const outgoing& out) {
    boost::asio::io_context io;
    auto reply = boost::asio::co_spawn(io, exchange(t, out), boost::asio::use_future);
    io.run();
    return reply.get();  // rethrows what the exchange threw
}

// A TRANSACTION.SUCCESS plaintext for out_trade_no, paid in full just now.
protocol::v3::notification_spec payment_spec(const options& o, std::int64_t now) {
    domain::payment_fact p;
    p.out_trade_no = o.need("--out-trade-no");
    p.state = domain::trade_state::success;
    p.state_desc = "支付成功";
    p.appid = o.get("--appid", default_appid);
    p.transaction_id = o.get("--transaction-id", "4200" + random_digits(24));
    p.trade_type = "JSAPI";
    p.bank_type = "OTHERS";
    p.payer_openid = demo_openid;
    p.currency = "CNY";
    p.amount_total = o.need_fen("--total");
    p.payer_total = p.amount_total;
    p.success_time = now * 1'000'000;
    return {o.get("--id", random_uuid()),
            format_rfc3339(now),
            "TRANSACTION.SUCCESS",
            "支付成功",
            "transaction",
            "transaction",
            protocol::v3::transaction_json(o.need("--mchid"), p)};
}

protocol::v3::notification_spec refund_spec(const options& o, std::int64_t now) {
    domain::refund_fact r;
    r.out_trade_no = o.need("--out-trade-no");
    r.out_refund_no = o.need("--out-refund-no");
    r.refund_id = "50" + random_digits(27);
    r.transaction_id = o.need("--transaction-id");
    const std::string status = o.need("--status");
    const auto parsed = domain::parse_refund_status(status);
    if (!parsed || *parsed == domain::refund_status::processing)
        throw usage_error("--status must be SUCCESS, ABNORMAL or CLOSED");
    r.status = *parsed;
    r.amount_refund = o.need_fen("--refund");
    r.amount_total = o.need_fen("--total");
    if (r.status == domain::refund_status::success) r.success_time = now * 1'000'000;
    const char* summary = r.status == domain::refund_status::success    ? "退款成功"
                          : r.status == domain::refund_status::abnormal ? "退款异常"
                                                                        : "退款关闭";
    return {o.get("--id", random_uuid()),
            format_rfc3339(now),
            "REFUND." + status,
            summary,
            "refund",
            "refund",
            protocol::v3::refund_json(o.need("--mchid"), r)};
}

outgoing v3_request(const options& o, const protocol::v3::notification_spec& spec, std::string_view apiv3_key,
                    const crypto::private_key& key, std::int64_t now) {
    auto n = protocol::v3::make_notification(spec, apiv3_key, key, o.need("--serial"), now);
    if (!n) throw std::runtime_error("cannot build the notification: " + n.err().message);
    if (o.command == "probe")
        n->signature = std::string(protocol::v3::probe_prefix) + crypto::random_alnum(32);
    return {"/wxpay/v3/notify/" + o.need("--mchid"),
            "application/json",
            n->body,
            {{"Wechatpay-Timestamp", n->timestamp},
             {"Wechatpay-Nonce", n->nonce},
             {"Wechatpay-Signature", n->signature},
             {"Wechatpay-Serial", n->serial},
             {"Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048"}}};
}

// APIv2 payment result XML, signed with the APIv2 key; time_end in Beijing time.
outgoing v2_request(const options& o, std::int64_t now) {
    const std::string sign_type = o.get("--sign-type", "MD5");
    if (sign_type != "MD5" && sign_type != "HMAC-SHA256")
        throw usage_error("--sign-type must be MD5 or HMAC-SHA256");
    std::string time_end;
    for (const char c : format_rfc3339(now, 480).substr(0, 19))
        if (c >= '0' && c <= '9') time_end.push_back(c);
    const std::string total = std::to_string(o.need_fen("--total"));
    protocol::v2::fields f{{"return_code", "SUCCESS"},
                           {"result_code", "SUCCESS"},
                           {"appid", o.get("--appid", default_appid)},
                           {"mch_id", o.need("--mchid")},
                           {"nonce_str", crypto::random_alnum(32)},
                           {"openid", demo_openid},
                           {"is_subscribe", "N"},
                           {"trade_type", "JSAPI"},
                           {"bank_type", "OTHERS"},
                           {"total_fee", total},
                           {"cash_fee", total},
                           {"fee_type", "CNY"},
                           {"transaction_id", o.need("--transaction-id")},
                           {"out_trade_no", o.need("--out-trade-no")},
                           {"time_end", time_end},
                           {"sign_type", sign_type}};
    f["sign"] = protocol::v2::sign(
        f, read_secret(o, "--apiv2-key-file"),
        sign_type == "MD5" ? protocol::v2::sign_type::md5 : protocol::v2::sign_type::hmac_sha256);
    return {"/wxpay/v2/notify/" + o.need("--mchid"), "text/xml", protocol::v2::to_xml(f), {}};
}

int run(const options& o) {
    const http_target target = parse_url(o.need("--url"));
    const std::int64_t now = wall_clock{}.seconds();
    outgoing out;
    if (o.command == "payment") {
        out = v3_request(o, payment_spec(o, now), read_secret(o, "--apiv3-key-file"),
                         load_key(o.need("--wechatpay-key-file")), now);
    } else if (o.command == "refund") {
        out = v3_request(o, refund_spec(o, now), read_secret(o, "--apiv3-key-file"),
                         load_key(o.need("--wechatpay-key-file")), now);
    } else if (o.command == "forged" || o.command == "probe") {
        // The right APIv3 key when given, so only the signature is wrong.
        const std::string apiv3_key =
            o.has("--apiv3-key-file") ? read_secret(o, "--apiv3-key-file") : crypto::random_alnum(32);
        out = v3_request(o, payment_spec(o, now), apiv3_key, fresh_wrong_key(), now);
    } else if (o.command == "v2-payment") {
        out = v2_request(o, now);
    } else {
        throw usage_error("unknown command \"" + o.command + "\"");
    }
    std::pair<int, std::string> reply;
    try {
        reply = post(target, out);
    } catch (const boost::system::system_error& e) {
        throw std::runtime_error(o.need("--url") + out.path + ": " + e.code().message());
    }
    const auto& [status, body] = reply;
    std::string line = body;
    for (char& c : line)
        if (c == '\n' || c == '\r') c = ' ';
    std::printf("%s out_trade_no=%s -> HTTP %d%s%s\n", o.command.c_str(), o.need("--out-trade-no").c_str(),
                status, line.empty() ? "" : " ", line.c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc == 2 && (std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h")) {
            std::fputs(usage, stdout);
            return 0;
        }
        return run(parse_args(argc, argv));
    } catch (const usage_error& e) {
        std::fprintf(stderr, "wxrecon-send: %s (--help shows the usage)\n", e.what());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "wxrecon-send: %s\n", e.what());
    }
    return 1;
}
