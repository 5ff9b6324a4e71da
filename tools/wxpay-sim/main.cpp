// wxpay-sim: a local WeChat Pay for trying and testing wxrecon without a
// merchant account. `keys` writes key material, `serve` runs the simulator.
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <chrono>
#include <cstdio>
#include <string>

#include "sim_keys.hpp"
#include "sim_server.hpp"

namespace {

using namespace wxrecon;

constexpr const char* usage = R"(usage: wxpay-sim keys --out DIR [--merchants N] [--api-base URL]
       wxpay-sim serve --keys DIR [options]
       wxpay-sim --help | --version

keys: writes a consistent key set per merchant into DIR (which must not hold a sim.toml yet):
  DIR/<mchid>/apiclient_key.pem, apiclient_cert.pem    merchant API key and certificate (its serial signs requests)
  DIR/<mchid>/wechatpay_platform_{key,cert}.pem        WeChat Pay platform certificate (5 years) and its key
  DIR/<mchid>/wechatpay_pub_key.pem                    WeChat Pay public key (id PUB_KEY_ID_...); the simulator
  DIR/<mchid>/wechatpay_pub_key_private.pem            keeps the private half
  DIR/<mchid>/apiv3.key, apiv2.key, app_secret         APIv3 key (32 bytes), APIv2 key (32 chars), AppSecret
  DIR/ca/                                              the simulator's CA and a localhost server certificate
  DIR/sim.toml                                         the simulator's view of the merchants
  DIR/wxrecond-merchants.toml                          matching [[merchants]] blocks for wxrecond.toml
  --merchants N     how many merchants, 1..99 (default 1); they cycle through APIv3 + public key, APIv2,
                    APIv3 + platform certificate, APIv3 + both keys (migration)
  --api-base URL    the simulator's address written into the wxrecond blocks (default http://127.0.0.1:8480)

serve options:
  --keys DIR            the key set written by `keys` (required)
  --listen HOST:PORT    where to listen (default 127.0.0.1:8480; port 0 picks a free one)
  --tls on|off          serve HTTPS with DIR/ca/server_cert.pem (for localhost and 127.0.0.1, issued by the
                        key set's CA, DIR/ca/ca_cert.pem: give that to clients as their ca_file); default off
  --seed N              seed for every random decision: faults, protocol variants, ids (default 1)
  --time-scale X        multiplies WeChat's retry schedule and injected delays (default 1; 0.001 runs the
                        24-hour schedule in 86 s)
  --faults JSON         initial faults for every merchant, as for POST /sim/faults
  --concurrency N       notification POSTs in flight at once (default 64)
  --signing-threads N   threads that sign responses and notifications (default 2)
  --max-orders N        orders kept (default 2000000)
  --max-deliveries N    delivery log entries kept (default 1000000)
  On start it prints "wxpay-sim listening on HOST:PORT" on stdout. SIGTERM or SIGINT stop it.

WeChat Pay endpoints (signed like the real service):
  APIv3  POST /v3/pay/transactions/jsapi, GET /v3/pay/transactions/out-trade-no/{no}?mchid=,
         GET /v3/pay/transactions/id/{id}?mchid=, POST /v3/pay/transactions/out-trade-no/{no}/close,
         POST /v3/refund/domestic/refunds, GET /v3/refund/domestic/refunds/{no}, GET /v3/certificates,
         GET /v3/bill/tradebill?bill_date=&bill_type=ALL|SUCCESS|REFUND[&tar_type=GZIP],
         GET /v3/bill/fundflowbill?bill_date=&account_type=BASIC|OPERATION|FEES[&tar_type=GZIP],
         GET /v3/billdownload/file?token= (signed request, unsigned answer: the file)
  APIv2  POST /pay/unifiedorder, /pay/orderquery, /pay/closeorder, /secapi/pay/refund, /pay/refundquery,
         /pay/downloadbill, /pay/downloadfundflow (HMAC-SHA256); over --tls on, /secapi/pay/refund and
         /pay/downloadfundflow need the merchant's own client certificate (else CERT_ERROR)
  login  GET /sns/jscode2session?appid=&secret=&js_code=&grant_type=authorization_code
  Refunds made through either API are accepted PROCESSING and end SUCCESS, ABNORMAL or CLOSED (faults
  refund_processing_ms, refund_abnormal, refund_closed, or /sim/refund-plan), then are notified.

Control API (JSON, no authentication: bind it to loopback):
  POST /sim/orders          {"mchid","out_trade_no","amount","notify_url"[,"api_version","sign_type",
                             "expire_seconds","openid","description"]}  an order as if prepay had placed it
  POST /sim/pay             {"mchid","out_trade_no"[,"amount","coupon","at"]}  the user pays (the full
                             amount unless given; coupon: the part a merchant coupon covers; at: RFC 3339
                             success time) and the notification goes out on the retry schedule
  POST /sim/expire          {"mchid","out_trade_no"}  the payment window ends now (the order is CLOSED)
  POST /sim/refund          {"mchid","out_trade_no"[,"amount","out_refund_no","status","notify_url",
                             "reason","at","notify"]}  refund the rest (or amount) ending in SUCCESS,
                             ABNORMAL or CLOSED, at `at` (RFC 3339), notified unless notify is false
  POST /sim/hand-payment    {"mchid","out_trade_no","amount"[,"coupon","at","description"]}  a payment made
                             at WeChat Pay that nobody registered and no notification announces
  POST /sim/fee-rate        {["mchid",]"fee_rate_bp"}  fee rate of payments from now on (default 60 = 0.60%)
  POST /sim/bill-style      {"mchid"[,"bom","crlf","count_dot_zero"]}  bytes of the bill files
  POST /sim/bill-creating   {"mchid","bill":"trade"|"fundflow","bill_date","requests"}  the next N asks
                             for that bill answer STATEMENT_CREATING / Bill Creating (0 clears)
  POST /sim/fee-adjustment  {"mchid","bill_date","amount"}  a 手续费调整 line of amount fen (positive:
                             debited) in that day's fund-flow bill: its fees differ from the trade bill's
  POST /sim/bill-corrupt    {"mchid","bill","bill_date","corruption":"flip_digit"|"truncate"|"none"
                             [,"hash":"good"|"served"]}  serve a damaged file; hash_value names the good
                             content (good) or the damaged one (served)
  POST /sim/faults          {["mchid",]"drop","duplicate","concurrent","delay","delay_ms","reorder",
                             "reorder_window_ms","query_429","query_500","query_slow","reply_slow",
                             "slow_ms","bad_response_signature","unsigned_errors",
                             "query_404_proxy","forged","probe",
                             "rotate_certificate_after","refund_processing_ms","refund_abnormal",
                             "refund_closed"}
                             rates are 0..1; without mchid every merchant; leaving a key out keeps it.
                             reply_slow: the call is applied, then its answer waits slow_ms (real ms);
                             API refunds stay PROCESSING refund_processing_ms (scaled), then end
                             ABNORMAL / CLOSED at those rates (drawn per mchid + out_refund_no), else
                             SUCCESS; drop etc. apply to their notifications too
  POST /sim/refund-plan     {"mchid","out_refund_no"[,"status":"SUCCESS"|"ABNORMAL"|"CLOSED","after_ms",
                             "notify"]}  how the coming API refund with that number ends: after after_ms
                             (scaled; default 0), notified unless notify is false
  POST /sim/app-events      the application's receiver for wxrecond's app events: records body and
                             headers, answers the configured status (default 204)
  POST /sim/app-events-config {["secret","status","clear"]}  the HMAC secret signatures are checked
                             with, the status to answer (200..599), clear: forget what was received
  POST /sim/rotate-certificate {"mchid"[,"gradual"]}  a new platform certificate signs from now on;
                             gradual: callbacks only, API answers stay on the current one
  POST /sim/login-code      {"appid"[,"user"]}  a js_code for jscode2session (the same user, the same openid)
  GET  /sim/ledger          every order and refund with its true state (refund status PROCESSING,
                             SUCCESS, ABNORMAL or CLOSED), amounts and ids
  GET  /sim/deliveries?since=ID&limit=N  the delivery log: every copy, its faults and attempts
  GET  /sim/stats           counts of orders, deliveries, acknowledgements, pending deliveries
  GET  /sim/calls?since=ID  the merchant API call log: who asked what, when it started and ended
  GET  /sim/merchants       merchants with their key mode, faults and protocol variants
  GET  /sim/app-events?since=N&limit=N  app events received (the last 100000 kept), each with
                             event_id, id, type, signature_ok (HMAC-SHA256 of "<t>.<body>", t within
                             300 s of the simulator's clock), the status answered, headers and body
)";

int fail(const std::string& message) {
    std::fprintf(stderr, "wxpay-sim: %s\n", message.c_str());
    return 2;
}

int run_keys(int argc, char** argv) {
    sim::keygen_options o;
    o.now = wall_clock{}.seconds();
    for (int i = 2; i < argc; ++i) {
        const std::string arg = argv[i];
        if (i + 1 >= argc) return fail("missing value after " + arg);
        const std::string value = argv[++i];
        if (arg == "--out")
            o.out = value;
        else if (arg == "--merchants") {
            try {
                o.merchants = std::stoi(value);
            } catch (const std::exception&) {
                return fail("--merchants must be a number");
            }
        } else if (arg == "--api-base")
            o.api_base = value;
        else
            return fail("unknown option " + arg);
    }
    if (o.out.empty()) return fail("keys needs --out DIR");
    auto written = sim::write_key_set(o);
    if (!written) return fail(written.err().message);
    for (const auto& m : written->merchants)
        std::printf("merchant %s appid %s api %s keys %s public key id %s platform serial %s\n",
                    m.mchid.c_str(), m.appid.c_str(), m.version == sim::api_version::v3 ? "v3" : "v2",
                    std::string(sim::to_string(m.mode)).c_str(), m.public_key_id.c_str(),
                    m.certificates.back().serial.c_str());
    std::printf("wrote %s/sim.toml and %s/wxrecond-merchants.toml\n", o.out.c_str(), o.out.c_str());
    return 0;
}

int run_serve(int argc, char** argv) {
    sim::sim_options o;
    std::string keys_dir;
    std::string faults;
    try {
        for (int i = 2; i < argc; ++i) {
            const std::string arg = argv[i];
            if (i + 1 >= argc) return fail("missing value after " + arg);
            const std::string value = argv[++i];
            if (arg == "--keys")
                keys_dir = value;
            else if (arg == "--listen")
                o.listen = value;
            else if (arg == "--tls")
                o.tls = value == "on" ? true : value == "off" ? false : throw std::invalid_argument("--tls");
            else if (arg == "--seed")
                o.seed = std::stoull(value);
            else if (arg == "--time-scale")
                o.time_scale = std::stod(value);
            else if (arg == "--faults")
                faults = value;
            else if (arg == "--concurrency")
                o.delivery_concurrency = std::stoi(value);
            else if (arg == "--signing-threads")
                o.signing_threads = std::stoi(value);
            else if (arg == "--max-orders")
                o.max_orders = std::stoull(value);
            else if (arg == "--max-deliveries")
                o.max_deliveries = std::stoull(value);
            else
                return fail("unknown option " + arg);
        }
    } catch (const std::exception&) {
        return fail("an option value is not valid (numbers for counts and rates, on|off for --tls)");
    }
    if (keys_dir.empty()) return fail("serve needs --keys DIR (write one with `wxpay-sim keys --out DIR`)");
    if (!(o.time_scale > 0 && o.time_scale <= 1000)) return fail("--time-scale must be in (0, 1000]");
    if (o.delivery_concurrency < 1 || o.signing_threads < 1 || o.signing_threads > 64)
        return fail("--concurrency and --signing-threads must be positive (signing threads at most 64)");
    auto keys = sim::load_key_set(keys_dir);
    if (!keys) return fail(keys.err().message);
    if (!faults.empty()) {
        sim::fault_config probe;
        if (auto applied = sim::apply_fault_json(faults, probe); !applied) return fail(applied.err().message);
    }

    boost::asio::io_context io(1);
    sim::simulator simulator(io, std::move(*keys), o);
    try {
        simulator.start();
    } catch (const std::exception& e) {
        return fail(std::string("cannot listen on ") + o.listen + ": " + e.what());
    }
    if (!faults.empty()) {
        wxrecon::inbound_request set;
        set.method = "POST";
        set.target = set.path = "/sim/faults";
        set.body = faults;
        boost::asio::co_spawn(
            io, [&]() -> boost::asio::awaitable<void> { co_await simulator.handle(set); },
            boost::asio::detached);
    }
    const auto ep = simulator.endpoint();
    std::printf("wxpay-sim listening on %s:%u\n", ep.address().to_string().c_str(), ep.port());
    std::fflush(stdout);
    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code& ec, int) {
        if (ec) return;
        boost::asio::co_spawn(
            io,
            [&]() -> boost::asio::awaitable<void> {
                co_await simulator.shutdown();
                io.stop();
            },
            boost::asio::detached);
    });
    io.run();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string command = argc > 1 ? argv[1] : "";
    if (command == "--help" || command == "-h" || command.empty()) {
        std::fputs(usage, command.empty() ? stderr : stdout);
        return command.empty() ? 2 : 0;
    }
    if (command == "--version") {
        std::printf("wxpay-sim %s\n", WXRECON_VERSION);
        return 0;
    }
    try {
        if (command == "keys") return run_keys(argc, argv);
        if (command == "serve") return run_serve(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "wxpay-sim: %s\n", e.what());
        return 1;
    }
    std::fprintf(stderr, "wxpay-sim: unknown command \"%s\"\n%s", command.c_str(), usage);
    return 2;
}
