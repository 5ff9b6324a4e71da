// A bounded pool of PostgreSQL connections, one per worker thread, so that
// blocking libpqxx calls never run on the I/O threads: coroutines hand a job
// to the pool and await its result.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "store/delivery.hpp"

namespace pqxx {
class connection_base;
}

namespace wxrecon::store {

// PostgreSQL cannot be reached, or the connection broke: retry later (503).
struct database_unavailable : std::runtime_error {
    using std::runtime_error::runtime_error;
};
// More work is queued than the pool may hold: shed load (503).
struct database_overloaded : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Whether an exception out of a pool job is the database's (unreachable, overloaded, too slow, or an error
// PostgreSQL reported): the caller may answer "retry later". Anything else is a fault of ours.
bool is_database_error(const std::exception& e) noexcept;

class db_pool {
public:
    // prepare runs once on every new connection (session settings, prepared statements).
    db_pool(std::string url, unsigned connections, std::size_t max_queued,
            std::function<void(pqxx::connection_base&)> prepare = {});
    ~db_pool();
    db_pool(const db_pool&) = delete;
    db_pool& operator=(const db_pool&) = delete;

    // Runs f(connection&) on a worker and resumes the caller on its own executor with the result.
    // Exceptions thrown by f propagate to the awaiting coroutine; a broken connection surfaces as
    // database_unavailable and the worker reconnects for the next job. With a deadline, the caller is
    // resumed with deadline_exceeded when it passes first (a job not yet started is then skipped).
    template <class R, class F>
    boost::asio::awaitable<R> run(F f, std::optional<std::chrono::steady_clock::time_point> until = {});

    // Fire and forget: f runs on a worker if the queue has room; on_failure (if any) gets the error of
    // a job that could not run or threw. Never blocks the caller.
    template <class F>
    void post(F f, std::function<void(std::exception_ptr)> on_failure = {});

    // Finishes every queued job, then joins the workers. Idempotent.
    void stop();

    bool up() const noexcept { return up_.load(std::memory_order_relaxed); }
    std::size_t workers() const noexcept { return workers_.size(); }

private:
    struct job {
        virtual ~job() = default;
        virtual void run(pqxx::connection_base* conn, std::exception_ptr unavailable) = 0;
    };

    void submit(std::unique_ptr<job> j);
    void worker_loop();

    std::string url_;
    std::size_t max_queued_;
    std::function<void(pqxx::connection_base&)> prepare_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::unique_ptr<job>> queue_;
    bool stopping_ = false;
    std::atomic<bool> up_{false};
    std::vector<std::thread> workers_;
};

template <class R, class F>
boost::asio::awaitable<R> db_pool::run(F f, std::optional<std::chrono::steady_clock::time_point> until) {
    return await_delivery<R>(
        [this, fn = std::move(f)](std::shared_ptr<delivery<R>> d) mutable {
            post(
                [fn = std::move(fn), d](pqxx::connection_base& conn) mutable {
                    if (d->abandoned()) return;  // nobody waits for it any more
                    std::exception_ptr error;
                    R value{};
                    try {
                        value = fn(conn);
                    } catch (...) {
                        error = std::current_exception();
                    }
                    d->deliver(error, std::move(value));
                },
                [d](std::exception_ptr error) { d->deliver(error, R{}); });
        },
        until);
}

template <class F>
void db_pool::post(F f, std::function<void(std::exception_ptr)> on_failure) {
    struct detached final : job {
        detached(F fn, std::function<void(std::exception_ptr)> fail)
            : f_(std::move(fn)), fail_(std::move(fail)) {}
        void run(pqxx::connection_base* conn, std::exception_ptr unavailable) override {
            std::exception_ptr ep = unavailable;
            if (!ep) {
                try {
                    f_(*conn);
                } catch (...) {
                    ep = std::current_exception();
                }
            }
            if (ep && fail_) fail_(ep);
        }
        F f_;
        std::function<void(std::exception_ptr)> fail_;
    };
    submit(std::make_unique<detached>(std::move(f), std::move(on_failure)));
}

}  // namespace wxrecon::store
