// Load program for wxpay-sim. Two modes:
//   sim_load sink --port P [--seconds S] [--expect N]
//       a notification receiver that answers 204 to everything and prints how many it received (it stops
//       after S seconds, or once N have arrived);
//   sim_load queries --port P --keys DIR --mchid M --prefix X --orders N [--concurrency C] [--seconds S]
//       pre-signs N APIv3 order queries (prefix1..prefixN) with the merchant key, sends them at
//       concurrency C over keep-alive connections, and prints the rate and latency percentiles.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "base/time.hpp"
#include "crypto/crypto.hpp"
#include "net/http_client.hpp"
#include "net/http_server.hpp"
#include "protocol/v3.hpp"

namespace {

namespace asio = boost::asio;
using namespace wxrecon;
using clock_type = std::chrono::steady_clock;

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

int run_sink(unsigned short port, double seconds, long expect) {
    asio::io_context io(1);
    long received = 0;
    clock_type::time_point first{}, last{};
    net::http_limits limits;
    limits.max_connections = 4096;
    limits.max_connections_per_address = limits.max_connections;  // every client is on loopback
    net::http_server server(
        io.get_executor(), asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), limits,
        [&](inbound_request&) -> asio::awaitable<reply> {
            last = clock_type::now();
            if (received++ == 0) first = last;
            if (received == expect) io.stop();
            co_return reply{204, "", ""};
        },
        [](std::string_view) {
            return reply{413, "", ""};
        },
        "sink");
    server.start();
    std::printf("sink listening on 127.0.0.1:%u\n", server.local_endpoint().port());
    std::fflush(stdout);
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code&, int) { io.stop(); });
    asio::steady_timer stop(io);
    if (seconds > 0) {
        stop.expires_after(std::chrono::milliseconds(static_cast<long>(seconds * 1000)));
        stop.async_wait([&](const boost::system::error_code& ec) {
            if (!ec) io.stop();
        });
    }
    io.run();
    const double span = std::chrono::duration<double>(last - first).count();
    std::printf("sink: %ld notifications received in %.2f s = %.0f/s\n", received, span,
                span > 0 ? static_cast<double>(received) / span : 0.0);
    return 0;
}

struct query_options {
    unsigned short port = 8480;
    std::string keys, mchid, prefix, serial;
    int orders = 1000, concurrency = 32;
    double seconds = 0;
};

int run_queries(const query_options& o) {
    const auto key = crypto::load_private_key_pem(slurp(o.keys + "/" + o.mchid + "/apiclient_key.pem"));
    if (!key) throw std::runtime_error(key.err().message);
    std::vector<net::outbound_request> requests;
    requests.reserve(static_cast<std::size_t>(o.orders));
    const std::int64_t now = wall_clock{}.seconds();
    for (int i = 1; i <= o.orders; ++i) {
        net::outbound_request r;
        const std::string target =
            "/v3/pay/transactions/out-trade-no/" + o.prefix + std::to_string(i) + "?mchid=" + o.mchid;
        auto auth = protocol::v3::sign_request("GET", target, "", o.mchid, o.serial, *key, now);
        if (!auth) throw std::runtime_error(auth.err().message);
        r.url = "http://127.0.0.1:" + std::to_string(o.port) + target;
        r.headers = {{"Authorization", *auth}, {"Accept", "application/json"}};
        requests.push_back(std::move(r));
    }
    std::printf("pre-signed %d queries\n", o.orders);
    asio::io_context io(1);
    net::client_options copts;
    copts.max_idle_per_host = static_cast<std::size_t>(o.concurrency);
    net::http_client client(io.get_executor(), copts);
    std::size_t next = 0;
    long ok = 0, other = 0;
    std::vector<double> latencies;
    latencies.reserve(requests.size());
    const auto start = clock_type::now();
    const auto deadline = o.seconds > 0
                              ? start + std::chrono::milliseconds(static_cast<long>(o.seconds * 1000))
                              : clock_type::time_point::max();
    auto worker = [&]() -> asio::awaitable<void> {
        while (next < requests.size() && clock_type::now() < deadline) {
            net::outbound_request r = requests[next++];
            const auto sent = clock_type::now();
            const net::exchange ex = co_await client.send(std::move(r));
            latencies.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - sent).count());
            if (ex.response && ex.response->status == 200 &&
                !ex.response->header("Wechatpay-Signature").empty())
                ++ok;
            else
                ++other;
        }
    };
    for (int i = 0; i < o.concurrency; ++i) asio::co_spawn(io, worker(), asio::detached);
    io.run();
    const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
    std::sort(latencies.begin(), latencies.end());
    auto pct = [&](double p) {
        return latencies.empty()
                   ? 0.0
                   : latencies[std::min(latencies.size() - 1,
                                        static_cast<std::size_t>(p * static_cast<double>(latencies.size())))];
    };
    std::printf("queries: %ld signed 200 answers in %.2f s = %.0f/s, concurrency %d, other answers: %ld\n",
                ok, elapsed, static_cast<double>(ok) / elapsed, o.concurrency, other);
    std::printf("latency ms: p50 %.2f  p99 %.2f  max %.2f\n", pct(0.50), pct(0.99),
                latencies.empty() ? 0.0 : latencies.back());
    return other == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const std::string mode = argc > 1 ? argv[1] : "";
        query_options o;
        double seconds = 0;
        long expect = 0;
        for (int i = 2; i + 1 < argc; i += 2) {
            const std::string k = argv[i], v = argv[i + 1];
            if (k == "--port")
                o.port = static_cast<unsigned short>(std::stoi(v));
            else if (k == "--seconds")
                seconds = o.seconds = std::stod(v);
            else if (k == "--keys")
                o.keys = v;
            else if (k == "--mchid")
                o.mchid = v;
            else if (k == "--serial")
                o.serial = v;
            else if (k == "--prefix")
                o.prefix = v;
            else if (k == "--orders")
                o.orders = std::stoi(v);
            else if (k == "--concurrency")
                o.concurrency = std::stoi(v);
            else if (k == "--expect")
                expect = std::stol(v);
            else
                throw std::runtime_error("unknown option " + k);
        }
        if (mode == "sink") return run_sink(o.port, seconds, expect);
        if (mode == "queries") return run_queries(o);
        std::fprintf(stderr,
                     "usage: sim_load sink --port P [--seconds S] [--expect N]\n"
                     "       sim_load queries --port P --keys DIR --mchid M --serial S --prefix X --orders N "
                     "[--concurrency C] [--seconds S]\n");
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sim_load: %s\n", e.what());
        return 1;
    }
}
