#include "store/db_pool.hpp"

#include <spdlog/spdlog.h>
#include <chrono>
#include <pqxx/pqxx>

#include "base/encoding.hpp"

namespace wxrecon::store {

bool is_database_error(const std::exception& e) noexcept {
    return dynamic_cast<const database_unavailable*>(&e) != nullptr ||
           dynamic_cast<const database_overloaded*>(&e) != nullptr ||
           dynamic_cast<const deadline_exceeded*>(&e) != nullptr ||
           dynamic_cast<const pqxx::failure*>(&e) != nullptr;
}

db_pool::db_pool(std::string url, unsigned connections, std::size_t max_queued,
                 std::function<void(pqxx::connection_base&)> prepare)
    : url_(std::move(url)), max_queued_(max_queued), prepare_(std::move(prepare)) {
    workers_.reserve(connections);
    for (unsigned i = 0; i < connections; ++i) workers_.emplace_back([this] { worker_loop(); });
}

db_pool::~db_pool() {
    stop();
}

void db_pool::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_)
        if (t.joinable()) t.join();
}

void db_pool::submit(std::unique_ptr<job> j) {
    {
        std::unique_lock lock(mutex_);
        if (!stopping_ && queue_.size() < max_queued_) {
            queue_.push_back(std::move(j));
            lock.unlock();
            cv_.notify_one();
            return;
        }
    }
    const char* why = "database queue is full";
    {
        std::lock_guard lock(mutex_);
        if (stopping_) why = "database pool is stopping";
    }
    j->run(nullptr, std::make_exception_ptr(database_overloaded(why)));
}

void db_pool::worker_loop() {
    std::unique_ptr<pqxx::connection> conn;
    auto last_failure = std::chrono::steady_clock::time_point{};
    for (;;) {
        std::unique_ptr<job> next;
        {
            std::unique_lock lock(mutex_);
            cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping and drained
            next = std::move(queue_.front());
            queue_.pop_front();
        }
        if (!conn || !conn->is_open()) {
            conn.reset();
            // While PostgreSQL is down, fail fast instead of hammering it with connects.
            if (std::chrono::steady_clock::now() - last_failure < std::chrono::milliseconds(200)) {
                next->run(nullptr,
                          std::make_exception_ptr(database_unavailable("PostgreSQL is unreachable")));
                continue;
            }
            try {
                conn = std::make_unique<pqxx::connection>(url_);
                // libpqxx 6 would otherwise reconnect a broken connection by itself at its next use, without
                // the session's settings (wxrecon.app_events, the planner's and commit settings of
                // prepare_): after a PostgreSQL crash-restart a ledger connection applied facts without
                // their app events (found by the crash campaign). Broken, it is dropped here and made
                // again with prepare_. (libpqxx 7 never reconnects by itself.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
                conn->inhibit_reactivation(true);
#pragma GCC diagnostic pop
                if (prepare_) prepare_(*conn);
                up_.store(true, std::memory_order_relaxed);
            } catch (const std::exception& e) {
                conn.reset();
                last_failure = std::chrono::steady_clock::now();
                if (up_.exchange(false, std::memory_order_relaxed))
                    spdlog::warn("db: connect failed error={}", log_quote(e.what()));
                next->run(nullptr, std::make_exception_ptr(database_unavailable(e.what())));
                continue;
            }
        }
        next->run(conn.get(), nullptr);
        if (!conn->is_open()) {
            if (up_.exchange(false, std::memory_order_relaxed)) spdlog::warn("db: connection lost");
            conn.reset();
        }
    }
}

}  // namespace wxrecon::store
