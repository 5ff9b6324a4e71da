// The daemon's wiring: configuration and keys in, PostgreSQL pools, the public
// and admin listeners, signal handling and the orderly shutdown out.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

#include "config/config.hpp"
#include "config/key_material.hpp"

namespace wxrecon::daemon {

// A startup failure with the process exit status it maps to (docs/interfaces.md §1.2).
struct startup_error : std::runtime_error {
    startup_error(int status, const std::string& what) : std::runtime_error(what), exit_status(status) {}
    int exit_status;
};

inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;
inline constexpr int exit_bad_config = 2;
inline constexpr int exit_database = 3;
inline constexpr int exit_bad_input = 4;  // an input file is malformed or disagrees with itself
// discrepancies ack/resolve changed nothing: no such discrepancy, or not in a status the step applies to
inline constexpr int exit_not_changed = 5;

class application {
public:
    application(config::config cfg, std::shared_ptr<const config::key_store> keys);
    ~application();

    // Migrates (when auto_migrate), connects and binds the listeners. Throws startup_error.
    void start();
    // Runs the event loop until SIGTERM/SIGINT (when handle_signals) or request_stop(), then drains.
    void run(bool handle_signals = true);
    // Thread-safe: begins the graceful shutdown.
    void request_stop();
    // Thread-safe: reloads key material from the configured files (what SIGHUP does).
    bool reload_keys();

    unsigned short public_port() const;
    unsigned short admin_port() const;
    unsigned short api_port() const;  // the API's own listener, or the public one when api.listen is unset

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// Applies pending migrations. Throws startup_error(exit_database) when PostgreSQL is unreachable or a
// migration fails.
void migrate_database(const std::string& url);

// For a one-shot command's `catch (...)`: prints "wxrecond: <command>: <why>" and returns the exit status
// what was thrown maps to (a startup_error its own, an unreachable database 3, anything else 1).
int command_failure(const std::string& command);

}  // namespace wxrecon::daemon
