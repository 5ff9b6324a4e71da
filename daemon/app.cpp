#include "app.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include <sys/resource.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "base/metrics.hpp"
#include "base/time.hpp"
#include "crypto/crypto.hpp"
#include "net/http_server.hpp"
#include "store/app_event_store.hpp"
#include "store/db_pool.hpp"
#include "store/ledger.hpp"
#include "store/migrations.hpp"
#include "store/poll_store.hpp"
#include "store/rejected_log.hpp"
#include "workflow/alert_pusher.hpp"
#include "workflow/app_event_pusher.hpp"
#include "workflow/bill_schedule.hpp"
#include "workflow/certificate_refresher.hpp"
#include "workflow/escapes.hpp"
#include "workflow/event_partition_keeper.hpp"
#include "workflow/notify_intake.hpp"
#include "workflow/order_api.hpp"
#include "workflow/poller.hpp"
#include "workflow/refund_tracker.hpp"

namespace wxrecon::daemon {

namespace asio = boost::asio;
using net::http_limits;
using net::http_server;
using net::parse_endpoint;

namespace {

// Where rejected notifications may go: enough for a genuine misconfiguration to be visible,
// far below what a forgery flood would need to crowd out genuine facts.
constexpr double rejected_rows_per_second = 20;
constexpr int app_event_thread_nice = 10;
constexpr double rejected_burst = 100;
constexpr std::size_t fact_queue_per_connection = 512;
constexpr unsigned api_connections = 4;
constexpr unsigned poll_connections = 2;

bool is_mchid(std::string_view s) {
    return !s.empty() && s.size() <= 32 &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Taken when the program is loaded, before configuration, keys and migrations.
const std::int64_t process_started = wall_clock{}.seconds();

double seconds_of(const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

// What any Prometheus-scraped process exports about itself, read from /proc at scrape time (cheap).
void refresh_process_metrics(metrics& stats) {
    std::ifstream statm("/proc/self/statm");
    double pages_total = 0, pages_resident = 0;
    if (statm >> pages_total >> pages_resident) {
        const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
        stats.set("process_virtual_memory_bytes", pages_total * page);
        stats.set("process_resident_memory_bytes", pages_resident * page);
    }
    std::error_code ec;
    std::size_t fds = 0;
    for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec))
        ++fds;
    if (!ec)
        stats.set("process_open_fds",
                  static_cast<double>(fds > 0 ? fds - 1 : 0));  // minus the one listing it
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0)
        stats.set("process_max_fds", static_cast<double>(limit.rlim_cur));
    rusage usage{};
    if (::getrusage(RUSAGE_SELF, &usage) == 0)
        stats.set("process_cpu_seconds_total", seconds_of(usage.ru_utime) + seconds_of(usage.ru_stime));
}

// Expiry of every platform certificate trusted now, configured or downloaded; rotated-out ones disappear.
void refresh_key_expiry(metrics& stats, const config::key_store& keys) {
    std::vector<std::pair<metrics::labels, double>> series;
    for (const auto& [mchid, mk] : keys.merchants)
        for (const auto& cert : mk.platform_certs)
            series.push_back(
                {{{"mchid", mchid}, {"serial", cert.serial}}, static_cast<double>(cert.not_after)});
    stats.replace("wxrecon_key_expiry_timestamp_seconds", series);
}

// Series that alert rules take increase() of exist from the start, so their first event counts.
void initialise_series(metrics& stats, const config::config& cfg, const wall_clock& clock) {
    stats.add("wxrecon_orders_registered_total", {}, 0);
    stats.add("wxrecon_signature_probes_total", {}, 0);
    for (const char* result : {"pushed", "failed", "resolved_before_push", "expired"})
        stats.add("wxrecon_webhook_pushes_total", {{"result", result}}, 0);
    for (const char* api : {"v3", "v2"}) {
        for (const char* result : {"ok", "failed"})
            stats.add("wxrecon_prepay_total", {{"api", api}, {"result", result}}, 0);
        for (const char* result : {"accepted", "refused", "unknown"})
            stats.add("wxrecon_refunds_total", {{"api", api}, {"result", result}}, 0);
        for (const char* kind : {"payment", "refund"})
            for (const char* result : {"accepted", "duplicate", "rejected", "error"})
                stats.add("wxrecon_notifications_total", {{"api", api}, {"kind", kind}, {"result", result}},
                          0);
        stats.add("wxrecon_notifications_total", {{"api", api}, {"kind", "unknown"}, {"result", "rejected"}},
                  0);
    }
    stats.set("wxrecon_notification_silence_threshold_seconds",
              std::chrono::duration<double>(cfg.alerts.notification_silence).count());
    stats.set("wxrecon_last_accepted_notification_timestamp_seconds", static_cast<double>(clock.seconds()));
    stats.set("process_start_time_seconds", static_cast<double>(process_started));
}

// The listener's requests and refused connections, as the daemon's metrics.
net::http_observer listener_metrics(const std::shared_ptr<metrics>& stats, std::string listener) {
    net::http_observer o;
    o.answered = [stats, listener](int status) {
        stats->add("wxrecon_http_requests_total",
                   {{"listener", listener}, {"status", std::to_string(status)}});
    };
    o.refused = [stats, listener](std::string_view reason) {
        stats->add("wxrecon_http_connections_refused_total",
                   {{"listener", listener}, {"reason", std::string(reason)}});
    };
    o.evicted = [stats, listener] {
        stats->add("wxrecon_http_connections_evicted_total", {{"listener", listener}});
    };
    o.escaped = workflow::report_escapes(stats, "http_" + listener);
    return o;
}

}  // namespace

void migrate_database(const std::string& url) {
    try {
        const auto report = store::migrate(url);
        for (const auto& name : report.applied) spdlog::info("migrate: applied file={}", name);
        for (const auto& warning : report.warnings) spdlog::warn("migrate: {}", warning);
        spdlog::info("migrate: schema current version={}", report.version);
    } catch (const store::database_unavailable& e) {
        throw startup_error(exit_database, std::string("database unreachable: ") + e.what());
    } catch (const std::exception& e) {
        throw startup_error(exit_database, std::string("migration failed: ") + e.what());
    }
}

int command_failure(const std::string& command) {
    try {
        throw;
    } catch (const startup_error& e) {
        std::fprintf(stderr, "wxrecond: %s: %s\n", command.c_str(), e.what());
        return e.exit_status;
    } catch (const store::database_unavailable& e) {
        std::fprintf(stderr, "wxrecond: %s: database unavailable: %s\n", command.c_str(), e.what());
        return exit_database;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "wxrecond: %s: %s\n", command.c_str(), e.what());
        return exit_failure;
    } catch (...) {
        std::fprintf(stderr, "wxrecond: %s: unknown failure\n", command.c_str());
        return exit_failure;
    }
}

struct application::impl {
    config::config cfg;
    workflow::key_holder keys;
    std::shared_ptr<metrics> stats = metrics::make_standard();
    asio::io_context io{1};
    std::unique_ptr<store::db_pool> fact_pool;
    std::unique_ptr<store::db_pool> side_pool;  // readiness checks and rejected rows: never the fact path
    std::unique_ptr<store::db_pool> api_pool;   // the internal API's registrations and prepay records
    std::unique_ptr<store::db_pool>
        poll_pool;  // the poller's claims and schedules (its facts go through the ledger)
    std::unique_ptr<store::db_pool> alert_pool;  // the webhook outbox: never in the way of facts
    std::unique_ptr<store::ledger> ledger;
    std::unique_ptr<store::rejected_log> rejected;
    std::unique_ptr<workflow::notification_intake> intake;
    std::unique_ptr<workflow::wechat_clients> wechat;
    std::unique_ptr<workflow::poller> poller;
    std::unique_ptr<workflow::certificate_refresher> certificates;
    std::unique_ptr<workflow::alert_pusher> alerts;
    std::unique_ptr<workflow::event_partition_keeper> partitions;
    std::unique_ptr<store::db_pool> bill_pool;
    std::unique_ptr<workflow::bill_schedule> bills;
    std::unique_ptr<workflow::refund_tracker> refunds;
    std::unique_ptr<store::db_pool> event_pool;  // the app-event outbox: never in the way of facts
    // Deliveries run on a thread of their own: at thousands per second their HTTP work on the main
    // thread delayed the notifications' (p99 1.6x). The ledger wakes the pusher across (asio::dispatch).
    asio::io_context event_io{1};
    std::thread event_thread;
    std::unique_ptr<workflow::app_event_pusher> app_events;
    std::unique_ptr<workflow::refund_api> refund_api;
    std::unique_ptr<workflow::order_api> api;
    std::unique_ptr<http_server> api_server;  // only when api.listen is set
    std::unique_ptr<http_server> public_server;
    std::unique_ptr<http_server> admin_server;
    std::atomic<bool> stopping{false};

    wall_clock clock;  // the system's: every component below reads time from it

    impl(config::config c, std::shared_ptr<const config::key_store> k)
        : cfg(std::move(c)), keys(std::move(k)) {}

    asio::awaitable<reply> handle_public(inbound_request& req) {
        const std::string_view path = req.path;
        if (api && !api_server && workflow::order_api::handles(path)) co_return co_await api->handle(req);
        struct route {
            std::string_view prefix;
            asio::awaitable<reply> (workflow::notification_intake::*handler)(const workflow::inbound_request&,
                                                                             std::string);
            bool v2;
        };
        static constexpr route routes[] = {
            {"/wxpay/v3/notify/", &workflow::notification_intake::handle_v3, false},
            {"/wxpay/v2/notify/", &workflow::notification_intake::handle_v2_payment, true},
            {"/wxpay/v2/refund-notify/", &workflow::notification_intake::handle_v2_refund, true},
        };
        for (const auto& r : routes) {
            if (!path.starts_with(r.prefix)) continue;
            const std::string_view mchid = path.substr(r.prefix.size());
            if (!is_mchid(mchid)) break;
            if (req.method != "POST") co_return reply{405, "text/plain", "method not allowed\n"};
            const auto started = std::chrono::steady_clock::now();
            std::string merchant(mchid);
            reply out = co_await (intake.get()->*r.handler)(req, std::move(merchant));
            stats->observe("wxrecon_notification_seconds",
                           std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
            co_return out;
        }
        co_return workflow::notification_intake::v3_failure(404, "no such endpoint");
    }

    reply too_large(std::string_view target) { return intake->too_large(target); }

    asio::awaitable<reply> handle_admin(inbound_request& req) {
        if (req.method != "GET") co_return reply{405, "text/plain", "method not allowed\n"};
        if (req.path == "/healthz") co_return reply{200, "text/plain", "ok\n"};
        if (req.path == "/metrics") {
            stats->set("wxrecon_db_up", fact_pool->up() ? 1 : 0);
            refresh_process_metrics(*stats);
            refresh_key_expiry(*stats, *keys.get());
            co_return reply{200, "text/plain; version=0.0.4; charset=utf-8", stats->render()};
        }
        if (req.path == "/readyz") {
            std::string why;
            try {
                const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
                const int version = co_await store::current_schema_version(*side_pool, until);
                if (version < store::latest_migration_version())
                    why = "migrations pending: schema at " + std::to_string(version) + ", need " +
                          std::to_string(store::latest_migration_version());
            } catch (const std::exception& e) {
                why = std::string("database: ") + e.what();
            }
            if (keys.get()->merchants.empty()) why = "no key material loaded";
            if (!why.empty()) co_return reply{503, "text/plain", why + "\n"};
            co_return reply{200, "text/plain", "ready\n"};
        }
        co_return reply{404, "text/plain", "not found\n"};
    }

    // WATCHDOG=1 from the event loop itself: when the loop wedges, the pings stop and systemd restarts us.
    asio::awaitable<void> watchdog(std::chrono::microseconds interval) {
        asio::steady_timer timer(io);
        for (;;) {
            sd_notify(0, "WATCHDOG=1");
            timer.expires_after(interval);
            co_await timer.async_wait(asio::use_awaitable);
        }
    }

    asio::awaitable<void> shutdown() {
        if (stopping.exchange(true)) co_return;
        sd_notify(0, "STOPPING=1");
        spdlog::info("wxrecond: stopping grace_ms={}", cfg.server.shutdown_grace.count());
        // One deadline for all of it, so the whole stop stays within shutdown_grace (and systemd's
        // TimeoutStopSec); notifications in flight come first.
        const auto deadline = std::chrono::steady_clock::now() + cfg.server.shutdown_grace;
        const auto left = [deadline] {
            return std::max(std::chrono::milliseconds(0),
                            std::chrono::duration_cast<std::chrono::milliseconds>(
                                deadline - std::chrono::steady_clock::now()));
        };
        co_await public_server->shutdown(left());
        if (api_server) co_await api_server->shutdown(left());
        co_await poller->stop(left());
        co_await refunds->stop(left());
        if (app_events) {
            co_await asio::co_spawn(event_io, app_events->stop(left()), asio::use_awaitable);
            event_io.stop();
        }
        co_await alerts->stop(left());
        if (bills) bills->stop();
        partitions->stop();
        co_await certificates->stop(left());
        co_await admin_server->shutdown(std::chrono::milliseconds(100));
        io.stop();
    }
};

application::application(config::config cfg, std::shared_ptr<const config::key_store> keys)
    : impl_(std::make_unique<impl>(std::move(cfg), std::move(keys))) {}

application::~application() {
    if (impl_->event_thread.joinable()) {
        impl_->event_io.stop();
        impl_->event_thread.join();
    }
    if (impl_->fact_pool) impl_->fact_pool->stop();
    if (impl_->side_pool) impl_->side_pool->stop();
    if (impl_->api_pool) impl_->api_pool->stop();
    if (impl_->poll_pool) impl_->poll_pool->stop();
    if (impl_->alert_pool) impl_->alert_pool->stop();
    if (impl_->bill_pool) impl_->bill_pool->stop();
    if (impl_->event_pool) impl_->event_pool->stop();
}

void application::start() {
    auto& s = *impl_;
    if (s.cfg.database.auto_migrate) migrate_database(s.cfg.database.url);
    // With [app_events], every pool whose writes may announce something turns the outbox triggers on.
    const bool announce = s.cfg.app_events.has_value();
    s.fact_pool = std::make_unique<store::db_pool>(
        s.cfg.database.url, s.cfg.database.pool_size, s.cfg.database.pool_size * fact_queue_per_connection,
        store::with_app_events(store::prepare_ledger_connection, announce));
    s.side_pool = std::make_unique<store::db_pool>(s.cfg.database.url, 1, 256);
    s.ledger = std::make_unique<store::ledger>(*s.fact_pool);
    s.ledger->on_batch([stats = s.stats](std::size_t facts) {
        stats->observe("wxrecon_fact_batch_size", static_cast<double>(facts));
    });
    s.rejected = std::make_unique<store::rejected_log>(*s.side_pool, s.cfg.notifications.rejected_keep,
                                                       rejected_rows_per_second, rejected_burst, s.stats);
    s.intake =
        std::make_unique<workflow::notification_intake>(s.keys, *s.ledger, *s.rejected, s.stats, s.clock);
    s.wechat = std::make_unique<workflow::wechat_clients>(s.io.get_executor(), s.cfg.poller.request_timeout,
                                                          s.clock);
    s.poll_pool =
        std::make_unique<store::db_pool>(s.cfg.database.url, poll_connections, 1024,
                                         store::with_app_events(store::prepare_poll_connection, announce));
    // The poller and the refund tracker pace each merchant's calls together, under one lease owner.
    const auto rate = std::make_shared<workflow::merchant_rate_limiter>(s.cfg.poller.rate_per_second);
    const std::string owner = "wxrecond-" + crypto::random_alnum(8);
    workflow::poller_options poll_options;
    poll_options.clock = s.clock;
    poll_options.rate = rate;
    poll_options.owner = owner;
    s.poller = std::make_unique<workflow::poller>(s.io.get_executor(), s.cfg, s.keys, *s.wechat, *s.poll_pool,
                                                  *s.ledger, s.stats, poll_options);
    workflow::refund_tracker_options refund_options;
    refund_options.clock = s.clock;
    refund_options.rate = rate;
    refund_options.owner = owner;
    s.refunds = std::make_unique<workflow::refund_tracker>(s.io.get_executor(), s.cfg, s.keys, *s.wechat,
                                                           *s.poll_pool, *s.ledger, s.stats, refund_options);
    workflow::certificate_refresh_options certificate_options;
    certificate_options.clock = s.clock;
    s.certificates = std::make_unique<workflow::certificate_refresher>(
        s.io.get_executor(), s.cfg, s.keys, *s.wechat, s.stats, certificate_options);
    s.alert_pool = std::make_unique<store::db_pool>(s.cfg.database.url, 1, 64);
    s.alerts = std::make_unique<workflow::alert_pusher>(s.io.get_executor(), s.cfg, *s.alert_pool, s.stats);
    // On the alert pusher's connection: a round is a few statements an hour.
    s.partitions = std::make_unique<workflow::event_partition_keeper>(s.io.get_executor(), s.cfg.database,
                                                                      *s.alert_pool, s.stats);
    if (s.cfg.bills) {
        // Its own connection: a bill's COPY takes seconds and must not hold up rejected-row writes.
        s.bill_pool =
            std::make_unique<store::db_pool>(s.cfg.database.url, 1, 64, store::with_app_events({}, announce));
        s.bills = std::make_unique<workflow::bill_schedule>(s.io.get_executor(), s.cfg, s.keys, *s.bill_pool,
                                                            *s.ledger, s.stats, s.clock);
    }
    s.intake->on_unknown_serial = [c = s.certificates.get()](const std::string& mchid) {
        c->unknown_serial(mchid);
    };
    if (s.cfg.api) {
        auto token = config::load_api_token(*s.cfg.api);
        if (!token) throw startup_error(exit_bad_config, token.err().message);
        // Its own connections: a burst of registrations neither waits behind nor delays rejected-row writes.
        s.api_pool = std::make_unique<store::db_pool>(s.cfg.database.url, api_connections, 1024,
                                                      store::with_app_events({}, announce));
        s.refund_api = std::make_unique<workflow::refund_api>(s.cfg, *s.api_pool, s.keys, *s.wechat,
                                                              *s.ledger, s.stats, owner + "-api", s.clock);
        s.api = std::make_unique<workflow::order_api>(s.cfg, std::move(*token), *s.api_pool, s.keys,
                                                      *s.wechat, *s.poller, *s.refund_api, s.stats, s.clock);
    }
    if (s.cfg.app_events) {
        auto secret = config::load_app_events_secret(*s.cfg.app_events);
        if (!secret) throw startup_error(exit_bad_config, secret.err().message);
        s.event_pool =
            std::make_unique<store::db_pool>(s.cfg.database.url, 1, 256, store::prepare_app_event_connection);
        workflow::app_event_pusher_options event_options;
        event_options.owner = owner;
        event_options.clock = s.clock;
        s.app_events = std::make_unique<workflow::app_event_pusher>(s.event_io.get_executor(),
                                                                    *s.cfg.app_events, std::move(*secret),
                                                                    *s.event_pool, s.stats, event_options);
        // Facts applied here are announced at once; the tick finds those committed elsewhere.
        s.ledger->on_applied([pusher = s.app_events.get()] { pusher->wake(); });
        for (const char* result : {"delivered", "failed"})
            s.stats->add("wxrecon_app_events_total", {{"result", result}}, 0);
        s.stats->set("wxrecon_app_events_outbox", 0);
        s.stats->set("wxrecon_app_events_oldest_seconds", 0);
    }
    s.stats->set("wxrecon_build_info", {{"version", WXRECON_VERSION}}, 1);
    initialise_series(*s.stats, s.cfg, s.clock);

    http_limits limits;
    limits.max_body_bytes = s.cfg.server.max_body_bytes;
    limits.read_timeout = s.cfg.server.read_timeout;
    limits.header_timeout = s.cfg.server.header_timeout;
    limits.idle_timeout = s.cfg.server.idle_timeout;
    limits.max_connections = s.cfg.server.max_connections;
    limits.max_connections_per_address = s.cfg.server.max_connections_per_address;
    try {
        s.public_server = std::make_unique<http_server>(
            s.io.get_executor(), parse_endpoint(s.cfg.server.listen), limits,
            [&s](inbound_request& r) { return s.handle_public(r); },
            [&s](std::string_view t) { return s.too_large(t); }, "public",
            listener_metrics(s.stats, "public"));
        http_limits admin_limits;
        admin_limits.max_body_bytes = 4096;
        admin_limits.max_connections = 64;
        s.admin_server = std::make_unique<http_server>(
            s.io.get_executor(), parse_endpoint(s.cfg.admin.listen), admin_limits,
            [&s](inbound_request& r) { return s.handle_admin(r); },
            [](std::string_view) {
                return reply{413, "text/plain", "too large\n"};
            },
            "admin", listener_metrics(s.stats, "admin"));
        if (s.api && s.cfg.api->listen) {
            s.api_server = std::make_unique<http_server>(
                s.io.get_executor(), parse_endpoint(*s.cfg.api->listen), limits,
                [&s](inbound_request& r) { return s.api->handle(r); },
                [](std::string_view) {
                    return reply{413, "application/json", "{\"error\":\"body too large\"}"};
                },
                "api", listener_metrics(s.stats, "api"));
        }
    } catch (const std::exception& e) {
        throw startup_error(exit_failure, std::string("cannot listen: ") + e.what());
    }
    s.public_server->start();
    s.admin_server->start();
    if (s.api_server) s.api_server->start();
    s.poller->start();
    s.refunds->start();
    if (s.app_events) {
        s.app_events->start();
        s.event_thread = std::thread([&io = s.event_io] {
            // Telling the application can wait (lag target 1 s); acknowledging a payment cannot. Niced, the
            // delivery thread yields the cores to the notifications whenever both want them.
            if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), app_event_thread_nice) != 0)
                spdlog::debug("app-events: delivery thread not niced errno={}", errno);
            auto busy = asio::make_work_guard(io);  // until shutdown stops it
            io.run();
        });
    }
    s.certificates->start();
    s.alerts->start();
    s.partitions->start();
    if (s.bills) s.bills->start();
    spdlog::info("wxrecond: listening public={} admin={}", public_port(), admin_port());
}

void application::run(bool handle_signals) {
    auto& s = *impl_;
    asio::signal_set stop_signals(s.io);
    asio::signal_set reload_signal(s.io);
    std::uint64_t watchdog_usec = 0;
    if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0)
        asio::co_spawn(s.io, s.watchdog(std::chrono::microseconds(watchdog_usec / 2)),
                       workflow::report_escapes(s.stats, "watchdog"));
    if (handle_signals) {
        stop_signals.add(SIGTERM);
        stop_signals.add(SIGINT);
        reload_signal.add(SIGHUP);
        stop_signals.async_wait([&s](const boost::system::error_code& ec, int) {
            if (!ec) asio::co_spawn(s.io, s.shutdown(), workflow::report_escapes(s.stats, "shutdown"));
        });
        std::function<void(const boost::system::error_code&, int)> on_hup;
        on_hup = [this, &reload_signal, &on_hup](const boost::system::error_code& ec, int) {
            if (ec) return;
            reload_keys();
            reload_signal.async_wait(on_hup);
        };
        reload_signal.async_wait(on_hup);
        sd_notify(0, "READY=1");
        s.io.run();
    } else {
        s.io.run();
    }
    if (s.event_thread.joinable()) {
        s.event_io.stop();  // already, unless the main loop ended without a shutdown
        s.event_thread.join();
    }
    // Queued database work (facts already acknowledged are committed; the rest) finishes before exit.
    s.fact_pool->stop();
    s.side_pool->stop();
    if (s.api_pool) s.api_pool->stop();
    s.poll_pool->stop();
    s.alert_pool->stop();
    if (s.bill_pool) s.bill_pool->stop();
    if (s.event_pool) s.event_pool->stop();
    spdlog::info("wxrecond: stopped");
}

void application::request_stop() {
    asio::post(impl_->io, [this] {
        asio::co_spawn(impl_->io, impl_->shutdown(), workflow::report_escapes(impl_->stats, "shutdown"));
    });
}

bool application::reload_keys() {
    sd_notify(0, "RELOADING=1");
    auto loaded = config::load_key_store(impl_->cfg, impl_->clock.seconds());
    bool ok = loaded.has_value();
    if (ok) {
        for (const auto& w : loaded->warnings) spdlog::warn("keys: {}", w.message);
        impl_->keys.set(std::make_shared<const config::key_store>(std::move(*loaded)));
        spdlog::info("keys: reloaded");
        // The downloaded certificates are replaced by a fresh download, not kept for ever beside the files.
        asio::post(impl_->io, [certificates = impl_->certificates.get()] { certificates->reloaded(); });
    } else {
        spdlog::error("keys: reload failed, keeping the previous keys: {}", loaded.err().message);
    }
    sd_notify(0, "READY=1");
    return ok;
}

unsigned short application::public_port() const {
    return impl_->public_server->local_endpoint().port();
}
unsigned short application::admin_port() const {
    return impl_->admin_server->local_endpoint().port();
}

unsigned short application::api_port() const {
    return impl_->api_server ? impl_->api_server->local_endpoint().port() : public_port();
}

}  // namespace wxrecon::daemon
