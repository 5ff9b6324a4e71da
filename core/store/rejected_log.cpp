#include "store/rejected_log.hpp"

#include <spdlog/spdlog.h>
#include <pqxx/pqxx>

#include "base/encoding.hpp"
#include "base/json_writer.hpp"
#include "store/db_pool.hpp"

namespace wxrecon::store {

namespace {
constexpr std::size_t max_body_kept = 16 * 1024;
}

rejected_log::rejected_log(db_pool& pool, std::uint64_t keep, double rows_per_second, double burst,
                           std::shared_ptr<metrics> m)
    : pool_(pool), keep_(keep), metrics_(std::move(m)), rows_(rows_per_second, burst) {}

bool rejected_log::take_token() {
    std::lock_guard lock(mutex_);
    return rows_.take(std::chrono::steady_clock::now());
}

void rejected_log::record(std::string_view reason, const std::function<rejected_entry()>& entry) {
    if (!take_token()) {
        metrics_->add("wxrecon_rejected_sampled_total", {{"reason", std::string(reason)}});
        return;
    }
    write(entry());
}

void rejected_log::write(rejected_entry e) {
    e.body = sanitize_utf8(e.body, max_body_kept);
    e.path = sanitize_utf8(e.path, 1024);
    e.mchid = sanitize_utf8(e.mchid, 64);
    auto m = metrics_;
    std::string reason = e.reason;
    pool_.post(
        [e = std::move(e), keep = keep_](pqxx::connection_base& conn) {
            pqxx::work tx(conn);
            const auto id =
                tx.exec_params1(
                      "INSERT INTO wxrecon.rejected_notifications"
                      " (path, mchid, reason, remote_addr, headers, body)"
                      " VALUES ($1, nullif($2, ''), $3, nullif($4, ''), $5::jsonb, $6) RETURNING id",
                      e.path, e.mchid, e.reason, e.remote_addr, e.headers_json, e.body)[0]
                    .as<std::int64_t>();
            // Oldest first out: ids only grow, so this keeps at most `keep` rows.
            tx.exec_params("DELETE FROM wxrecon.rejected_notifications WHERE id <= $1",
                           id - static_cast<std::int64_t>(keep));
            tx.commit();
        },
        [m, reason = std::move(reason)](std::exception_ptr ep) {
            m->add("wxrecon_rejected_sampled_total", {{"reason", reason}});
            try {
                std::rethrow_exception(ep);
            } catch (const std::exception& ex) {
                spdlog::debug("rejected_log: not written reason={} error={}", reason, log_quote(ex.what()));
            }
        });
}

}  // namespace wxrecon::store
