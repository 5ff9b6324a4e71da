// A bounded pool of PostgreSQL connections, one per worker thread, so that
// blocking libpqxx calls never run on the I/O threads: coroutines hand a job
// to the pool and await its result.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <optional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

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
// The caller's deadline passed before the job finished. The job may still complete (or never start);
// the caller must treat the outcome as unknown.
struct deadline_exceeded : std::runtime_error {
    using std::runtime_error::runtime_error;
};

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
    std::size_t queued() const;

private:
    struct job {
        virtual ~job() = default;
        virtual void run(pqxx::connection_base* conn, std::exception_ptr unavailable) = 0;
    };
    template <class R, class F, class Handler>
    struct job_impl;

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

// The caller's side of a job: completed exactly once, by the worker's result or by the deadline.
// Both completions run on the caller's executor (single-threaded), so only `abandoned` is shared.
template <class R, class Handler>
struct db_pool_pending {
    explicit db_pool_pending(Handler h) : handler(std::move(h)) {}
    std::optional<Handler> handler;
    std::atomic<bool> abandoned{false};
    std::unique_ptr<boost::asio::steady_timer> timer;

    void complete(std::exception_ptr ep, R value) {
        if (!handler) return;
        if (timer) timer->cancel();
        Handler h = std::move(*handler);
        handler.reset();
        std::move(h)(ep, std::move(value));
    }
};

template <class R, class F, class Handler>
struct db_pool::job_impl final : db_pool::job {
    job_impl(F f, std::shared_ptr<db_pool_pending<R, Handler>> p, boost::asio::any_io_executor ex)
        : f_(std::move(f)), pending_(std::move(p)), executor_(std::move(ex)) {}

    void run(pqxx::connection_base* conn, std::exception_ptr unavailable) override {
        std::exception_ptr ep = unavailable;
        R value{};
        if (!ep && pending_->abandoned.load()) return;  // nobody waits for it any more
        if (!ep) {
            try {
                value = f_(*conn);
            } catch (...) {
                ep = std::current_exception();
            }
        }
        boost::asio::post(executor_, [p = pending_, ep, v = std::move(value)]() mutable { p->complete(ep, std::move(v)); });
    }

    F f_;
    std::shared_ptr<db_pool_pending<R, Handler>> pending_;
    boost::asio::any_io_executor executor_;
};

template <class R, class F>
boost::asio::awaitable<R> db_pool::run(F f, std::optional<std::chrono::steady_clock::time_point> until) {
    return boost::asio::async_initiate<decltype(boost::asio::use_awaitable), void(std::exception_ptr, R)>(
        [this, until](auto handler, F fn) {
            using handler_type = decltype(handler);
            boost::asio::any_io_executor ex = boost::asio::get_associated_executor(handler);
            auto pending = std::make_shared<db_pool_pending<R, handler_type>>(std::move(handler));
            if (until) {
                pending->timer = std::make_unique<boost::asio::steady_timer>(ex, *until);
                pending->timer->async_wait([pending](const boost::system::error_code& ec) {
                    if (ec) return;
                    pending->abandoned.store(true);
                    pending->complete(std::make_exception_ptr(deadline_exceeded("database deadline passed")), R{});
                });
            }
            submit(std::make_unique<job_impl<R, F, handler_type>>(std::move(fn), pending, ex));
        },
        boost::asio::use_awaitable, std::move(f));
}

template <class F>
void db_pool::post(F f, std::function<void(std::exception_ptr)> on_failure) {
    struct detached final : job {
        detached(F fn, std::function<void(std::exception_ptr)> fail) : f_(std::move(fn)), fail_(std::move(fail)) {}
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
