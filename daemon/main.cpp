// wxrecond: parse the command line, load the configuration, hand over to the
// application. Exit statuses follow docs/interfaces.md §1.2.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "app.hpp"
#include "base/time.hpp"
#include "bills_command.hpp"
#include "discrepancies_command.hpp"
#include "log_sink.hpp"
#include "recovery_command.hpp"
#include "report_command.hpp"

namespace {

using namespace wxrecon;

constexpr const char* usage =
    "usage: wxrecond [--config PATH] [--log-format text|json] [serve|migrate|check-config]\n"
    "       wxrecond bills check FILE [--kind trade|fundflow]\n"
    "       wxrecond [--config PATH] bills load --mchid M --date YYYY-MM-DD\n"
    "                [--trade FILE] [--fundflow FILE] [--bill-type T] [--account-type A] [--no-trade-bill]\n"
    "       wxrecond [--config PATH] bills fetch --date YYYY-MM-DD [--mchid M] [--kind trade|fundflow|all]\n"
    "       wxrecond [--config PATH] report --date YYYY-MM-DD [--mchid M] [--format csv|json]\n"
    "       wxrecond [--config PATH] discrepancies list|ack|resolve ... (discrepancies --help)\n"
    "       wxrecond [--config PATH] replay --rejected ID | --event ID\n"
    "       wxrecond [--config PATH] repoll MCHID OUT_TRADE_NO\n"
    "       wxrecond --version\n"
    "  serve         run the daemon until SIGTERM/SIGINT (default)\n"
    "  migrate       apply pending database migrations and exit\n"
    "  check-config  load and validate the configuration and every key file\n"
    "  bills check   parse a bill file (plain or gzip) offline, print its totals as JSON;\n"
    "                exit 4 when it is malformed or disagrees with its summary\n"
    "  bills load    store bill files of a merchant's day and reconcile the day against them\n"
    "  bills fetch   download a day's bills from WeChat Pay, store and reconcile them (idempotent)\n"
    "  report        the day's statement for finance: per order the ledger, the bill, open discrepancies\n"
    "  discrepancies list, acknowledge or resolve discrepancies (exit 5: nothing changed)\n"
    "  replay        re-verify a stored notification with today's keys and apply it (idempotent);\n"
    "                exit 4 when it is refused again\n"
    "  repoll        query one order at WeChat Pay now and apply the answer\n"
    "  --log-format  text (default) or json: one JSON object per line, for log shippers\n"
    "default config: /etc/wxrecond/wxrecond.toml\n";

int run(int argc, char** argv) {
    std::string config_path = "/etc/wxrecond/wxrecond.toml";
    std::string command = "serve";
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--version") {
            std::printf("wxrecond %s\n", WXRECON_VERSION);
            return daemon::exit_ok;
        } else if (arg == "--help" || arg == "-h") {
            std::fputs(usage, stdout);
            return daemon::exit_ok;
        } else if (arg == "--config" && i + 1 < argc) {
            config_path = argv[++i];
        } else if (arg.starts_with("--config=")) {
            config_path = arg.substr(std::strlen("--config="));
        } else if ((arg == "--log-format" && i + 1 < argc) || arg.starts_with("--log-format=")) {
            if (arg == "--log-format") ++i;  // read before the logger was installed, in main()
        } else if (arg == "serve" || arg == "migrate" || arg == "check-config") {
            command = arg;
        } else if (arg == "bills") {  // `bills check` needs no configuration; the others read it themselves
            return daemon::run_bills_command(std::vector<std::string>(argv + i + 1, argv + argc),
                                             config_path);
        } else if (arg == "report") {
            return daemon::run_report_command(std::vector<std::string>(argv + i + 1, argv + argc),
                                              config_path);
        } else if (arg == "replay") {
            return daemon::run_replay_command(std::vector<std::string>(argv + i + 1, argv + argc),
                                              config_path);
        } else if (arg == "repoll") {
            return daemon::run_repoll_command(std::vector<std::string>(argv + i + 1, argv + argc),
                                              config_path);
        } else if (arg == "discrepancies") {
            return daemon::run_discrepancies_command(std::vector<std::string>(argv + i + 1, argv + argc),
                                                     config_path);
        } else {
            std::fprintf(stderr, "wxrecond: unknown argument \"%s\"\n%s", arg.c_str(), usage);
            return daemon::exit_failure;
        }
    }

    auto cfg = config::load_config(config_path);
    if (!cfg) {
        spdlog::error("config: {}", cfg.err().message);
        return daemon::exit_bad_config;
    }
    if (cfg->server.tls_cert_file) {
        // Refused rather than ignored: a listener silently serving plain HTTP would be worse.
        spdlog::error(
            "config: {}: server.tls_cert_file: serving HTTPS directly is not supported yet; "
            "terminate TLS in front of wxrecond",
            config_path);
        return daemon::exit_bad_config;
    }
    if (command == "migrate") {
        daemon::migrate_database(cfg->database.url);
        return daemon::exit_ok;
    }
    auto keys = config::load_key_store(*cfg, wall_clock{}.seconds());
    if (!keys) {
        spdlog::error("keys: {}", keys.err().message);
        return daemon::exit_bad_config;
    }
    for (const auto& w : keys->warnings) spdlog::warn("keys: {}", w.message);
    if (cfg->api) {
        if (auto token = config::load_api_token(*cfg->api); !token) {
            spdlog::error("config: {}", token.err().message);
            return daemon::exit_bad_config;
        }
    }
    if (cfg->app_events) {
        if (auto secret = config::load_app_events_secret(*cfg->app_events); !secret) {
            spdlog::error("config: {}", secret.err().message);
            return daemon::exit_bad_config;
        }
    }
    if (command == "check-config") {
        std::printf("%s: configuration and key material OK (%zu merchant%s)\n", config_path.c_str(),
                    cfg->merchants.size(), cfg->merchants.size() == 1 ? "" : "s");
        return daemon::exit_ok;
    }
    daemon::application app(std::move(*cfg), std::make_shared<const config::key_store>(std::move(*keys)));
    app.start();
    app.run();
    return daemon::exit_ok;
}

// The log format is needed before anything can be logged, so it is read first.
std::optional<wxrecon::daemon::log_format> requested_log_format(int argc, char** argv) {
    std::string value = "text";
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--log-format" && i + 1 < argc)
            value = argv[++i];
        else if (arg.starts_with("--log-format="))
            value = arg.substr(std::strlen("--log-format="));
    }
    if (value == "text") return wxrecon::daemon::log_format::text;
    if (value == "json") return wxrecon::daemon::log_format::json;
    return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
    // Logs go to stderr (journald under systemd); stdout carries command output only.
    const auto format = requested_log_format(argc, argv);
    if (!format) {
        std::fprintf(stderr, "wxrecond: --log-format must be text or json\n%s", usage);
        return wxrecon::daemon::exit_failure;
    }
    wxrecon::daemon::install_stderr_logger(*format);
    int status = wxrecon::daemon::exit_failure;
    try {
        status = run(argc, argv);
    } catch (const wxrecon::daemon::startup_error& e) {
        spdlog::error("wxrecond: {}", e.what());
        status = e.exit_status;
    } catch (const std::exception& e) {
        spdlog::error("wxrecond: {}", e.what());
        status = wxrecon::daemon::exit_failure;
    }
    spdlog::default_logger()->flush();  // writes out buffered lines
    spdlog::shutdown();
    return status;
}
