// Load program for the notification path: registers N orders, pre-signs and
// pre-encrypts N distinct APIv3 payment notifications, sends them over
// keep-alive connections at a fixed concurrency and prints throughput,
// latency percentiles and the daemon's peak RSS.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <pqxx/pqxx>

#include "base/time.hpp"
#include "protocol/v3.hpp"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using namespace wxrecon;
using clock_type = std::chrono::steady_clock;

struct options {
    std::string host = "127.0.0.1";
    unsigned short port = 8080;
    std::string mchid = "1900000109";
    std::string appid = "wxd678efh567hg6787";
    std::string apiv3_key_file, wechatpay_key_file, serial, database_url;
    int orders = 20000;        // notifications to pre-sign, one per order P1..Pn
    int register_orders = -1;  // orders to insert first (default: as many as notifications; 0: already there)
    std::string prefix;        // order number prefix (default: unique per run)
    int first = 1;             // number of the first order notified
    double seconds = 0;        // stop sending after this long (0: send everything)
    double rate = 0;           // genuine notifications per second (0: as fast as the daemon answers)
    double forgeries = 0;      // forged notifications per genuine one, on their own connections
    int forgery_pipeline = 8;  // forgeries written back to back on a connection before reading the answers
    int concurrency = 64;
    int daemon_pid = 0;
    double report_every = 0;  // print the rate of each interval of this many seconds (0: only the total)
    int api_register = 0;  // orders to register through POST /api/v1/orders first (the first ones notified)
    unsigned short api_port = 0;
    std::string api_token_file;
};

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::string s(std::istreambuf_iterator<char>(in), {});
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
}

double own_cpu_seconds() {
    rusage used{};
    ::getrusage(RUSAGE_SELF, &used);
    const auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
    return seconds(used.ru_utime) + seconds(used.ru_stime);
}

long peak_rss_kib(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
    return -1;
}

// Registers the first api_register orders the way an application does, at the load's concurrency.
void register_through_api(const options& o, const std::string& prefix) {
    const std::string token = slurp(o.api_token_file);
    boost::asio::io_context io;
    int next = 0, refused = 0;
    auto client = [&]() -> boost::asio::awaitable<void> {
        beast::tcp_stream stream(io);
        co_await stream.async_connect(
            boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address(o.host), o.api_port),
            boost::asio::use_awaitable);
        beast::flat_buffer buffer;
        while (next < o.api_register) {
            const int n = o.first + next++;
            http::request<http::string_body> req{http::verb::post, "/api/v1/orders", 11};
            req.set(http::field::host, o.host);
            req.set(http::field::content_type, "application/json");
            req.set(http::field::authorization, "Bearer " + token);
            req.body() = "{\"mchid\":\"" + o.mchid + "\",\"out_trade_no\":\"" + prefix + std::to_string(n) +
                         "\",\"amount_total\":100}";
            req.prepare_payload();
            co_await http::async_write(stream, req, boost::asio::use_awaitable);
            http::response<http::string_body> res;
            co_await http::async_read(stream, buffer, res, boost::asio::use_awaitable);
            if (res.result_int() != 201 && res.result_int() != 200) ++refused;
        }
    };
    const auto t0 = clock_type::now();
    for (int w = 0; w < o.concurrency; ++w) boost::asio::co_spawn(io, client(), boost::asio::detached);
    io.run();
    const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
    std::printf("registered %d orders through the API in %.1f s = %.0f/s, refused: %d\n", o.api_register, s,
                o.api_register / s, refused);
    if (refused > 0) throw std::runtime_error("the API refused registrations");
}

int run(const options& o) {
    const std::string apiv3_key = slurp(o.apiv3_key_file);
    auto key = crypto::load_private_key_pem(slurp(o.wechatpay_key_file) + "\n");
    if (!key) throw std::runtime_error(key.err().message);

    const std::string prefix = o.prefix.empty() ? "L" + std::to_string(std::time(nullptr)) + "-" : o.prefix;
    const int to_register = o.register_orders < 0 ? o.orders : o.register_orders;
    if (to_register > 0) {
        pqxx::connection c(o.database_url);
        pqxx::work tx(c);
        tx.exec_params(
            "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, appid)"
            " SELECT $1, $2 || g, 100, $3 FROM generate_series(1, $4) g",
            o.mchid, prefix, o.appid, to_register);
        tx.commit();
        std::printf("registered %d orders\n", to_register);
    }

    // Pre-sign on every core: signing is WeChat Pay's cost, not the daemon's. wxrecond accepts a
    // Wechatpay-Timestamp within 300 s of its clock, and signing a long run's notifications takes minutes:
    // they carry the time the signing is expected to end plus half the run (at most 150 s), so they are
    // all fresh from the first to the last second of a run of up to 5 minutes.
    std::vector<protocol::v3::signed_notification> notes(o.orders);
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    const auto signing_seconds = [&] {
        const auto t0 = clock_type::now();
        for (int i = 0; i < 50; ++i) (void)crypto::rsa_sha256_sign(*key, "calibration " + std::to_string(i));
        const double each = std::chrono::duration<double>(clock_type::now() - t0).count() / 50;
        return each * o.orders / cores;
    }();
    const auto now = std::time(nullptr) + static_cast<std::time_t>(signing_seconds) +
                     static_cast<std::time_t>(std::min(150.0, o.seconds / 2));
    const auto signing_started = clock_type::now();
    {
        std::vector<std::thread> signers;
        const unsigned n = cores;
        for (unsigned t = 0; t < n; ++t)
            signers.emplace_back([&, t] {
                for (int i = static_cast<int>(t); i < o.orders; i += static_cast<int>(n)) {
                    domain::payment_fact p;
                    p.out_trade_no = prefix + std::to_string(o.first + i);
                    p.state = domain::trade_state::success;
                    p.appid = o.appid;
                    p.transaction_id = "42" + std::to_string(now) + std::to_string(o.first + i);
                    p.amount_total = 100;
                    p.payer_total = 100;
                    p.success_time = now * 1'000'000LL;
                    const protocol::v3::notification_spec spec{"EV-" + p.transaction_id,
                                                               format_rfc3339(now),
                                                               "TRANSACTION.SUCCESS",
                                                               "支付成功",
                                                               "transaction",
                                                               "transaction",
                                                               protocol::v3::transaction_json(o.mchid, p)};
                    notes[i] = *protocol::v3::make_notification(spec, apiv3_key, *key, o.serial, now);
                }
            });
        for (auto& t : signers) t.join();
    }
    std::printf("pre-signed %d notifications in %.0f s (expected %.0f s)\n", o.orders,
                std::chrono::duration<double>(clock_type::now() - signing_started).count(), signing_seconds);
    if (o.api_register > 0) register_through_api(o, prefix);

    // One thread, one coroutine per connection: the generator must not eat the cores it measures.
    int next = 0;
    int failures = 0;
    long forged_sent = 0, forged_refused = 0;
    long genuine_slot = 0;
    std::vector<double> all;
    all.reserve(o.orders);
    std::vector<long> per_interval;
    boost::asio::io_context io;
    const double cpu_at_start = own_cpu_seconds();
    const auto started = clock_type::now();
    const auto running = [&] {
        return o.seconds <= 0 || clock_type::now() - started < std::chrono::duration<double>(o.seconds);
    };
    // With a rate, sends are paced to fixed slots (open loop); without, each connection sends back to back.
    auto pace = [&](long& slot, double rate) -> boost::asio::awaitable<void> {
        if (rate <= 0) co_return;
        const auto due = started + std::chrono::duration_cast<clock_type::duration>(
                                       std::chrono::duration<double>(static_cast<double>(slot++) / rate));
        boost::asio::steady_timer timer(io, due);
        co_await timer.async_wait(boost::asio::use_awaitable);
    };
    auto request_for = [&](const protocol::v3::signed_notification& n, std::string_view signature) {
        http::request<http::string_body> req{http::verb::post, "/wxpay/v3/notify/" + o.mchid, 11};
        req.set(http::field::host, o.host);
        req.set(http::field::content_type, "application/json");
        req.set("Wechatpay-Timestamp", n.timestamp);
        req.set("Wechatpay-Nonce", n.nonce);
        req.set("Wechatpay-Signature", signature);
        req.set("Wechatpay-Serial", n.serial);
        req.body() = n.body;
        req.prepare_payload();
        return req;
    };
    auto connect = [&](beast::tcp_stream& stream) {
        return stream.async_connect(
            boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address(o.host), o.port),
            boost::asio::use_awaitable);
    };
    auto client = [&]() -> boost::asio::awaitable<void> {
        beast::tcp_stream stream(io);
        co_await connect(stream);
        beast::flat_buffer buffer;
        while (next < o.orders && running()) {
            co_await pace(genuine_slot, o.rate);
            if (next >= o.orders || !running()) break;
            const auto& n = notes[next++];
            const auto req = request_for(n, n.signature);
            const auto t0 = clock_type::now();
            co_await http::async_write(stream, req, boost::asio::use_awaitable);
            http::response<http::string_body> res;
            co_await http::async_read(stream, buffer, res, boost::asio::use_awaitable);
            const auto t1 = clock_type::now();
            all.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
            if (res.result_int() != 204) ++failures;
            if (o.report_every > 0) {
                const auto interval = static_cast<std::size_t>(
                    std::chrono::duration<double>(t1 - started).count() / o.report_every);
                if (interval >= per_interval.size()) per_interval.resize(interval + 1);
                ++per_interval[interval];
            }
        }
    };
    // Forgeries, the four kinds in turn: a signature made by another key, a stale timestamp, a serial no
    // trusted key has, WeChat Pay's signature probe. Each must be refused (401) before any RSA work but the
    // first kind's one verification.
    const auto& sample = notes.back();
    std::vector<http::request<http::string_body>> forged;
    forged.push_back(request_for(
        sample, sample.signature.substr(0, 10) + std::string(sample.signature.size() - 12, 'A') + "=="));
    forged.push_back(request_for(sample, sample.signature));
    forged.back().set("Wechatpay-Timestamp", std::to_string(std::stoll(sample.timestamp) - 3600));
    forged.push_back(request_for(sample, sample.signature));
    forged.back().set("Wechatpay-Serial", "PUB_KEY_ID_0100000000000000000000000000000");
    forged.push_back(request_for(sample, "WECHATPAY/SIGNTEST/" + sample.signature.substr(19)));
    // The forger has a thread of its own and sends pre-written bytes, several requests per write (HTTP/1.1
    // pipelining, which the listener serves in order): a generator as costly per request as the genuine
    // client could not reach ten times the genuine rate beside the daemon on two cores.
    const int depth = std::max(1, o.forgery_pipeline);
    std::vector<std::string> bursts;
    for (std::size_t first_kind = 0; first_kind < forged.size(); ++first_kind) {
        std::string burst;
        for (int j = 0; j < depth; ++j) {
            std::ostringstream text;
            text << forged[(first_kind + static_cast<std::size_t>(j)) % forged.size()];
            burst += text.str();
        }
        bursts.push_back(std::move(burst));
    }
    boost::asio::io_context forger_io;
    std::atomic<bool> genuine_done{false};
    long forged_burst_slot = 0;
    auto forger = [&](std::size_t kind) -> boost::asio::awaitable<void> {
        beast::tcp_stream stream(forger_io);
        co_await stream.async_connect(
            boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address(o.host), o.port),
            boost::asio::use_awaitable);
        beast::flat_buffer buffer;
        while (running() && !genuine_done.load()) {
            const auto due =
                started + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(
                              static_cast<double>(forged_burst_slot++) * depth / (o.rate * o.forgeries)));
            boost::asio::steady_timer timer(forger_io, due);
            co_await timer.async_wait(boost::asio::use_awaitable);
            co_await boost::asio::async_write(stream, boost::asio::buffer(bursts[kind++ % bursts.size()]),
                                              boost::asio::use_awaitable);
            for (int j = 0; j < depth; ++j) {
                http::response<http::string_body> res;
                co_await http::async_read(stream, buffer, res, boost::asio::use_awaitable);
                ++forged_sent;
                if (res.result_int() == 401) ++forged_refused;
            }
        }
    };
    std::thread forger_thread;
    if (o.forgeries > 0) {
        for (int w = 0; w < o.concurrency; ++w)
            boost::asio::co_spawn(forger_io, forger(static_cast<std::size_t>(w)), boost::asio::detached);
        forger_thread = std::thread([&] { forger_io.run(); });
    }
    for (int w = 0; w < o.concurrency; ++w) boost::asio::co_spawn(io, client(), boost::asio::detached);
    io.run();
    genuine_done = true;
    if (forger_thread.joinable()) forger_thread.join();
    const double seconds = std::chrono::duration<double>(clock_type::now() - started).count();

    std::sort(all.begin(), all.end());
    auto pct = [&](double p) {
        return all.empty() ? 0.0 : all[static_cast<std::size_t>(p * (all.size() - 1))];
    };
    const int done = static_cast<int>(all.size());
    std::printf("notifications: %d in %.2f s = %.0f/s, concurrency %d, non-204 replies: %d%s\n", done,
                seconds, done / seconds, o.concurrency, failures,
                o.seconds > 0 && done >= o.orders ? " (ran out of pre-signed notifications)" : "");
    for (std::size_t i = 0; i < per_interval.size(); ++i) {
        const double from = static_cast<double>(i) * o.report_every;
        const double length = std::min(o.report_every, seconds - from);
        if (length >= o.report_every / 2)  // a last interval cut short is left out
            std::printf("interval %zu (%.0f-%.0f s): %.0f/s\n", i + 1, from, from + length,
                        static_cast<double>(per_interval[i]) / length);
    }
    std::printf("latency ms: p50 %.2f  p99 %.2f  max %.2f\n", pct(0.50), pct(0.99),
                all.empty() ? 0 : all.back());
    if (o.forgeries > 0)
        std::printf("forgeries: %ld sent alongside = %.0f/s, %ld refused with 401, %d per write\n",
                    forged_sent, forged_sent / seconds, forged_refused, depth);
    if (o.daemon_pid > 0) std::printf("daemon peak RSS: %.1f MiB\n", peak_rss_kib(o.daemon_pid) / 1024.0);
    // On one machine the generator's CPU is taken from the daemon and PostgreSQL: it is part of the picture.
    std::printf("generator CPU while sending: %.1f s\n", own_cpu_seconds() - cpu_at_start);
    return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // a script acts on each line as it comes
    options o;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i], v = argv[i + 1];
        if (k == "--port")
            o.port = static_cast<unsigned short>(std::stoi(v));
        else if (k == "--mchid")
            o.mchid = v;
        else if (k == "--appid")
            o.appid = v;
        else if (k == "--apiv3-key-file")
            o.apiv3_key_file = v;
        else if (k == "--wechatpay-key-file")
            o.wechatpay_key_file = v;
        else if (k == "--serial")
            o.serial = v;
        else if (k == "--database-url")
            o.database_url = v;
        else if (k == "--orders")
            o.orders = std::stoi(v);
        else if (k == "--register")
            o.register_orders = std::stoi(v);
        else if (k == "--prefix")
            o.prefix = v;
        else if (k == "--seconds")
            o.seconds = std::stod(v);
        else if (k == "--rate")
            o.rate = std::stod(v);
        else if (k == "--first")
            o.first = std::stoi(v);
        else if (k == "--forgeries")
            o.forgeries = std::stod(v);
        else if (k == "--forgery-pipeline")
            o.forgery_pipeline = std::stoi(v);
        else if (k == "--concurrency")
            o.concurrency = std::stoi(v);
        else if (k == "--daemon-pid")
            o.daemon_pid = std::stoi(v);
        else if (k == "--report-every")
            o.report_every = std::stod(v);
        else if (k == "--api-register")
            o.api_register = std::stoi(v);
        else if (k == "--api-port")
            o.api_port = static_cast<unsigned short>(std::stoi(v));
        else if (k == "--api-token-file")
            o.api_token_file = v;
        else {
            std::fprintf(stderr, "notify_load: unknown option %s\n", k.c_str());
            return 2;
        }
    }
    try {
        return run(o);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "notify_load: %s\n", e.what());
        return 1;
    }
}
