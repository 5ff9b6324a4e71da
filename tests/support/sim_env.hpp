// Test support for the simulator: a key set in a temp folder, wxpay-sim
// running in-process on port 0, and a wxrecond configuration for its merchants.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>

#include "config/config.hpp"
#include "sim_keys.hpp"
#include "sim_server.hpp"
#include "test_env.hpp"

namespace wxrecon::testing {

// A key set for n merchants, written by the same code as `wxpay-sim keys`; removed on destruction.
struct sim_key_dir {
    explicit sim_key_dir(int merchants);
    ~sim_key_dir();
    std::filesystem::path dir;
    sim::sim_keys keys;
};

class running_simulator {
public:
    running_simulator(const sim_key_dir& keys, sim::sim_options options);
    ~running_simulator();
    unsigned short port() const { return port_; }
    void stop();

private:
    boost::asio::io_context io_;
    std::unique_ptr<sim::simulator> sim_;
    std::thread thread_;
    unsigned short port_ = 0;
};

// wxrecond's configuration for the key set's merchants (both listeners on port 0), talking to the
// simulator on sim_port. extra_toml goes in before the merchants (e.g. a [poller] section); the default
// keeps the poller's first query an hour away, for tests about notifications alone.
config::config sim_daemon_config(const sim_key_dir& keys, const std::string& database_url,
                                 unsigned short sim_port,
                                 const std::string& extra_toml = "[poller]\ndelays = [\"1h\"]\n");

// The bearer token serve_api_with_prepay sets up.
inline const std::string api_token = "sim-test-token-0123456789";
// Serves the internal API (api_token) on the public listener, moved to a fixed free loopback port that is
// also server.public_base_url, so orders wxrecond places at the simulator carry a notify_url reaching it.
void serve_api_with_prepay(config::config& cfg, const sim_key_dir& keys);

// POSTs to wxrecond's internal API with api_token.
http_response api_post(unsigned short port, const std::string& target, const std::string& json);

// One order of the simulator's truth (GET /sim/ledger).
struct sim_order_truth {
    std::string trade_state, transaction_id;
    std::int64_t payer_total = 0;
};
// The simulator's truth by "mchid/out_trade_no".
std::map<std::string, sim_order_truth> sim_truth(unsigned short sim_port);

// POSTs a JSON body to a /sim control endpoint; throws unless the status is 2xx.
std::string sim_control(unsigned short port, const std::string& target, const std::string& json);

}  // namespace wxrecon::testing
