#include "recovery_command.hpp"

#include <charconv>
#include <cstdio>
#include <memory>
#include <optional>

#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "app.hpp"
#include "base/json_writer.hpp"
#include "config/config.hpp"
#include "config/key_material.hpp"
#include "store/app_event_store.hpp"
#include "store/db_pool.hpp"
#include "store/evidence_store.hpp"
#include "store/ledger.hpp"
#include "store/order_store.hpp"
#include "store/poll_store.hpp"
#include "store/rejected_log.hpp"
#include "workflow/certificate_refresher.hpp"
#include "workflow/key_holder.hpp"
#include "workflow/notify_intake.hpp"
#include "workflow/poller.hpp"
#include "workflow/wechat_access.hpp"

namespace wxrecon::daemon {

namespace {

namespace asio = boost::asio;
using workflow::notify_result;

constexpr const char* replay_usage = "usage: wxrecond [--config PATH] replay --rejected ID | --event ID\n";
constexpr const char* repoll_usage = "usage: wxrecond [--config PATH] repoll MCHID OUT_TRADE_NO\n";
constexpr auto database_wait = std::chrono::seconds(30);

struct loaded_config {
    config::config cfg;
    std::shared_ptr<const config::key_store> keys;
};

std::optional<loaded_config> load(const char* command, const std::string& config_path) {
    auto cfg = config::load_config(config_path);
    if (!cfg) {
        std::fprintf(stderr, "wxrecond: %s: %s\n", command, cfg.err().message.c_str());
        return std::nullopt;
    }
    auto keys = config::load_key_store(*cfg, wall_clock{}.seconds());
    if (!keys) {
        std::fprintf(stderr, "wxrecond: %s: %s\n", command, keys.err().message.c_str());
        return std::nullopt;
    }
    return loaded_config{std::move(*cfg), std::make_shared<const config::key_store>(std::move(*keys))};
}

// What every recovery command runs in: the database migrated (when auto_migrate), a ledger whose facts are
// announced like the daemon's own, and one coroutine on an io_context. Returns its exit status.
template <class Work>
int with_ledger(const char* command, const config::config& cfg, Work work) {
    try {
        if (cfg.database.auto_migrate) migrate_database(cfg.database.url);
        const bool announce = cfg.app_events.has_value();
        store::db_pool fact_pool(cfg.database.url, 1, 64,
                                 store::with_app_events(store::prepare_ledger_connection, announce));
        store::db_pool side_pool(cfg.database.url, 1, 64,
                                 store::with_app_events(store::prepare_poll_connection, announce));
        store::ledger ledger(fact_pool);
        asio::io_context io;
        auto done = asio::co_spawn(io, work(io, side_pool, ledger), asio::use_future);
        io.run();
        return done.get();
    } catch (...) {
        return command_failure(command);
    }
}

// ---- replay

using intake_handler = asio::awaitable<reply> (workflow::notification_intake::*)(const inbound_request&,
                                                                                 std::string);

// The intake endpoint a notification was (or would have been) posted to, as the listener routes it.
struct endpoint {
    intake_handler handler;
    std::string path;
};

std::optional<endpoint> endpoint_of_path(const std::string& path) {
    static const std::pair<const char*, intake_handler> routes[] = {
        {"/wxpay/v3/notify/", &workflow::notification_intake::handle_v3},
        {"/wxpay/v2/notify/", &workflow::notification_intake::handle_v2_payment},
        {"/wxpay/v2/refund-notify/", &workflow::notification_intake::handle_v2_refund},
    };
    for (const auto& [prefix, handler] : routes)
        if (path.starts_with(prefix) && path.size() > std::string_view(prefix).size())
            return endpoint{handler, path};
    return std::nullopt;
}

std::optional<endpoint> endpoint_of_event(const store::stored_notification& n) {
    if (n.source == "notify_v3") return endpoint_of_path("/wxpay/v3/notify/" + n.mchid);
    if (n.source == "notify_v2")
        return endpoint_of_path((n.refund ? "/wxpay/v2/refund-notify/" : "/wxpay/v2/notify/") + n.mchid);
    return std::nullopt;
}

struct replay_request {
    bool rejected = true;  // --rejected, else --event
    std::int64_t id = 0;
};

std::optional<replay_request> parse_replay_args(const std::vector<std::string>& args) {
    if (args.size() != 2 || (args[0] != "--rejected" && args[0] != "--event")) return std::nullopt;
    replay_request r;
    r.rejected = args[0] == "--rejected";
    const auto& text = args[1];
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), r.id);
    if (ec != std::errc{} || end != text.data() + text.size() || r.id <= 0) return std::nullopt;
    return r;
}

int exit_status_of(notify_result result) {
    switch (result) {
        case notify_result::accepted:
        case notify_result::duplicate:
        case notify_result::ignored:
            return exit_ok;
        case notify_result::rejected:
            return exit_bad_input;
        case notify_result::error:
            break;
    }
    return exit_failure;
}

asio::awaitable<int> replay(const config::config& cfg, std::shared_ptr<const config::key_store> key_files,
                            replay_request request, asio::io_context& io, store::db_pool& pool,
                            store::ledger& ledger) {
    const std::string what = request.rejected ? "rejected notification" : "event";
    std::optional<store::stored_notification> stored;
    if (request.rejected)
        stored = co_await store::load_rejected_notification(pool, request.id);
    else
        stored = co_await store::load_event_notification(pool, request.id);
    if (!stored) {
        std::fprintf(stderr, "wxrecond: replay: no %s with id %lld\n", what.c_str(),
                     static_cast<long long>(request.id));
        co_return exit_failure;
    }
    const auto target = request.rejected ? endpoint_of_path(stored->path) : endpoint_of_event(*stored);
    if (!target) {
        std::fprintf(stderr, "wxrecond: replay: %s %lld %s: nothing to replay%s\n", what.c_str(),
                     static_cast<long long>(request.id),
                     request.rejected
                         ? ("was posted to " + stored->path + ", not a notification endpoint").c_str()
                         : ("came from " + stored->source + ", not a notification").c_str(),
                     request.rejected ? "" : " (wxrecond repoll queries an order again)");
        co_return exit_bad_input;
    }
    auto headers = parse_headers_json(stored->headers_json);
    if (!headers) {
        std::fprintf(stderr, "wxrecond: replay: %s %lld: %s\n", what.c_str(),
                     static_cast<long long>(request.id), headers.err().message.c_str());
        co_return exit_bad_input;
    }
    const std::string mchid = target->path.substr(target->path.rfind('/') + 1);

    auto stats = std::make_shared<metrics>();
    workflow::key_holder keys(std::move(key_files));
    workflow::wechat_clients clients(io.get_executor(), cfg.poller.request_timeout);
    workflow::certificate_refresher certificates(io.get_executor(), cfg, keys, clients, stats);
    co_await certificates.download_now(mchid);
    // Nothing new goes into rejected_notifications: a refusal is reported here, and noted on the row.
    store::rejected_log no_record(pool, 0, 0, 0, stats);
    // Verified as of the moment it first arrived: its timestamp was fresh then.
    const domain::micros received_at = stored->received_at;
    workflow::notification_intake intake(keys, ledger, no_record, stats,
                                         wall_clock([received_at] { return received_at; }));
    notify_result result = notify_result::error;
    std::string detail;
    intake.on_finished = [&](notify_result r, std::string_view d) {
        result = r;
        detail = std::string(d);
    };

    inbound_request req;
    req.method = "POST";
    req.path = req.target = target->path;
    req.remote_addr = "replay";
    req.headers = std::move(*headers);
    req.body = stored->body;
    req.request_id =
        "replay-" + std::string(request.rejected ? "rejected-" : "event-") + std::to_string(request.id);
    req.received = std::chrono::steady_clock::now();
    const reply answer = co_await (intake.*(target->handler))(req, mchid);

    // A named string: GCC 12 frees a temporary passed to a coroutine inside co_await twice.
    const std::string replay_result(to_string(result));
    if (request.rejected) co_await store::mark_replayed(pool, request.id, replay_result);
    json_object out;
    out.add(request.rejected ? "rejected_id" : "event_id", request.id)
        .add("path", target->path)
        .add("mchid", mchid)
        .add("result", to_string(result))
        .add("status", answer.status);
    if (request.rejected) out.add("rejected_as", stored->reason);
    if (!detail.empty()) out.add("detail", detail);
    std::printf("%s\n", out.str().c_str());
    co_return exit_status_of(result);
}

// ---- repoll

asio::awaitable<int> repoll(const config::config& cfg, std::shared_ptr<const config::key_store> key_files,
                            std::string mchid, std::string out_trade_no, asio::io_context& io,
                            store::db_pool& pool, store::ledger& ledger) {
    auto stats = std::make_shared<metrics>();
    workflow::key_holder keys(std::move(key_files));
    workflow::wechat_clients clients(io.get_executor(), cfg.poller.request_timeout);
    workflow::certificate_refresher certificates(io.get_executor(), cfg, keys, clients, stats);
    co_await certificates.download_now(mchid);
    workflow::poller_options options;
    options.owner = "wxrecond-repoll-" + std::to_string(::getpid());
    workflow::poller poller(io.get_executor(), cfg, keys, clients, pool, ledger, stats, options);
    const auto polled = co_await poller.repoll(mchid, out_trade_no);
    using outcome = workflow::poller::out_of_turn_outcome;
    if (polled.outcome == outcome::unknown_order) {
        std::fprintf(stderr, "wxrecond: repoll: no order %s for merchant %s\n", out_trade_no.c_str(),
                     mchid.c_str());
        co_return exit_failure;
    }
    if (polled.outcome == outcome::busy) {
        std::fprintf(stderr, "wxrecond: repoll: order %s is being polled (leased) right now; try again\n",
                     out_trade_no.c_str());
        co_return exit_failure;
    }
    const auto order = co_await store::order_json(pool, mchid, out_trade_no,
                                                  std::chrono::steady_clock::now() + database_wait);
    json_object out;
    out.add("mchid", mchid).add("out_trade_no", out_trade_no).add("queried", polled.error.empty());
    if (!polled.error.empty()) out.add("error", polled.error);
    if (order) out.add_raw("order", *order);
    std::printf("%s\n", out.str().c_str());
    co_return polled.error.empty() ? exit_ok : exit_failure;
}

}  // namespace

int run_replay_command(const std::vector<std::string>& args, const std::string& config_path) {
    if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
        std::fputs(replay_usage, stdout);
        return exit_ok;
    }
    const auto request = parse_replay_args(args);
    if (!request) {
        std::fputs(replay_usage, stderr);
        return exit_failure;
    }
    auto loaded = load("replay", config_path);
    if (!loaded) return exit_bad_config;
    return with_ledger("replay", loaded->cfg,
                       [&](asio::io_context& io, store::db_pool& pool, store::ledger& ledger) {
                           return replay(loaded->cfg, loaded->keys, *request, io, pool, ledger);
                       });
}

int run_repoll_command(const std::vector<std::string>& args, const std::string& config_path) {
    if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
        std::fputs(repoll_usage, stdout);
        return exit_ok;
    }
    if (args.size() != 2) {
        std::fputs(repoll_usage, stderr);
        return exit_failure;
    }
    auto loaded = load("repoll", config_path);
    if (!loaded) return exit_bad_config;
    if (loaded->cfg.find_merchant(args[0]) == nullptr) {
        std::fprintf(stderr, "wxrecond: repoll: merchant %s is not in %s\n", args[0].c_str(),
                     config_path.c_str());
        return exit_bad_config;
    }
    return with_ledger("repoll", loaded->cfg,
                       [&](asio::io_context& io, store::db_pool& pool, store::ledger& ledger) {
                           return repoll(loaded->cfg, loaded->keys, args[0], args[1], io, pool, ledger);
                       });
}

}  // namespace wxrecon::daemon
