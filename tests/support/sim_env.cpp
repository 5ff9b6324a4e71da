#include "sim_env.hpp"
#include "base/time.hpp"

#include <simdjson.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "crypto/crypto.hpp"
#include "test_env.hpp"

namespace wxrecon::testing {

namespace fs = std::filesystem;

sim_key_dir::sim_key_dir(int merchants)
    : dir(fs::temp_directory_path() / ("wxrecon-sim-" + crypto::random_alnum(12))) {
    const fs::path shared =
        shared_key_folder("sim-" + std::to_string(merchants), [&](const fs::path& folder) {
            sim::keygen_options o;
            o.out = folder;
            o.merchants = merchants;
            o.now = wall_clock{}.seconds();
            if (auto made = sim::write_key_set(o); !made) throw std::runtime_error(made.err().message);
        });
    fs::copy(shared, dir, fs::copy_options::recursive);
    // The wxrecond fragment names its files by absolute path: this test's copies, not the shared ones.
    std::string fragment = read_text(dir / "wxrecond-merchants.toml");
    replace_all(fragment, (fs::absolute(shared) / "").string(), (dir / "").string());
    std::ofstream(dir / "wxrecond-merchants.toml", std::ios::binary | std::ios::trunc) << fragment;
    auto loaded = sim::load_key_set(dir);
    if (!loaded) throw std::runtime_error(loaded.err().message);
    keys = std::move(*loaded);
}

sim_key_dir::~sim_key_dir() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
}

running_simulator::running_simulator(const sim_key_dir& keys, sim::sim_options options) {
    auto loaded = sim::load_key_set(keys.dir);
    if (!loaded) throw std::runtime_error(loaded.err().message);
    options.listen = "127.0.0.1:0";
    sim_ = std::make_unique<sim::simulator>(io_, std::move(*loaded), std::move(options));
    sim_->start();
    port_ = sim_->endpoint().port();
    thread_ = std::thread([this] { io_.run(); });
}

running_simulator::~running_simulator() {
    stop();
}

void running_simulator::stop() {
    if (!thread_.joinable()) return;
    auto done = boost::asio::co_spawn(io_, sim_->shutdown(), boost::asio::use_future);
    done.wait();
    io_.stop();
    thread_.join();
}

config::config sim_daemon_config(const sim_key_dir& keys, const std::string& database_url,
                                 unsigned short sim_port, const std::string& extra_toml) {
    std::ifstream in(keys.dir / "wxrecond-merchants.toml");
    std::stringstream fragment;
    fragment << in.rdbuf();
    std::string merchants = fragment.str();
    replace_all(merchants, "http://127.0.0.1:8480", "http://127.0.0.1:" + std::to_string(sim_port));
    const std::string toml =
        "[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"5s\"\nmax_connections = "
        "2048\nmax_connections_per_address = 2048\n"
        "[admin]\nlisten = \"127.0.0.1:0\"\n[database]\nurl = \"" +
        database_url + "\"\npool_size = 4\n" + extra_toml + merchants;
    auto cfg = config::parse_config(toml, keys.dir / "wxrecond.toml");
    if (!cfg) throw std::runtime_error(cfg.err().message);
    return *cfg;
}

void serve_api_with_prepay(config::config& cfg, const sim_key_dir& keys) {
    unsigned short port = 0;
    {
        boost::asio::io_context io;
        boost::asio::ip::tcp::acceptor probe(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
        port = probe.local_endpoint().port();
    }
    cfg.server.listen = "127.0.0.1:" + std::to_string(port);
    cfg.server.public_base_url = "http://127.0.0.1:" + std::to_string(port);
    const auto token_file = keys.dir / "api.token";
    std::ofstream(token_file, std::ios::binary | std::ios::trunc) << api_token << "\n";
    cfg.api = config::api_config{token_file, std::nullopt};
}

http_response api_post(unsigned short port, const std::string& target, const std::string& json) {
    return http_request(port, "POST", target,
                        {{"Authorization", "Bearer " + api_token}, {"Content-Type", "application/json"}},
                        json);
}

std::map<std::string, sim_order_truth> sim_truth(unsigned short sim_port) {
    const auto r = http_get(sim_port, "/sim/ledger");
    simdjson::dom::parser parser;
    const simdjson::padded_string text(r.body);
    const auto doc = parser.parse(text);
    std::map<std::string, sim_order_truth> out;
    for (auto o : doc["orders"].get_array()) {
        sim_order_truth t;
        t.trade_state = std::string(std::string_view(o["trade_state"]));
        std::string_view tid;
        if (o["transaction_id"].get(tid) == simdjson::SUCCESS) t.transaction_id = std::string(tid);
        t.payer_total = int64_t(o["payer_total"]);
        out[std::string(std::string_view(o["mchid"])) + "/" +
            std::string(std::string_view(o["out_trade_no"]))] = t;
    }
    return out;
}

std::string sim_control(unsigned short port, const std::string& target, const std::string& json) {
    const auto r = http_request(port, "POST", target, {{"Content-Type", "application/json"}}, json);
    if (r.status < 200 || r.status >= 300)
        throw std::runtime_error(target + " answered " + std::to_string(r.status) + ": " + r.body);
    return r.body;
}

}  // namespace wxrecon::testing
