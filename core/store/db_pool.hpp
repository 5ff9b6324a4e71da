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
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
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
    // database_unavailable and the worker reconnects for the next job.
    template <class R, class F>
    boost::asio::awaitable<R> run(F f);

    // Blocking variant for callers outside any event loop (admin commands, tests).
    template <class R, class F>
    R run_sync(F f);

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

template <class R, class F, class Handler>
struct db_pool::job_impl final : db_pool::job {
    job_impl(F f, Handler h) : f_(std::move(f)), handler_(std::move(h)) {}

    void run(pqxx::connection_base* conn, std::exception_ptr unavailable) override {
        std::exception_ptr ep = unavailable;
        R value{};
        if (!ep) {
            try {
                value = f_(*conn);
            } catch (...) {
                ep = std::current_exception();
            }
        }
        auto ex = boost::asio::get_associated_executor(handler_);
        boost::asio::post(ex, [h = std::move(handler_), ep, v = std::move(value)]() mutable {
            std::move(h)(ep, std::move(v));
        });
    }

    F f_;
    Handler handler_;
};

template <class R, class F>
boost::asio::awaitable<R> db_pool::run(F f) {
    return boost::asio::async_initiate<decltype(boost::asio::use_awaitable), void(std::exception_ptr, R)>(
        [this](auto handler, F fn) {
            using handler_type = decltype(handler);
            submit(std::make_unique<job_impl<R, F, handler_type>>(std::move(fn), std::move(handler)));
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

template <class R, class F>
R db_pool::run_sync(F f) {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    std::exception_ptr error;
    R out{};
    struct sync_handler {
        std::mutex* m;
        std::condition_variable* cv;
        bool* done;
        std::exception_ptr* error;
        R* out;
        void operator()(std::exception_ptr ep, R v) {
            std::lock_guard lock(*m);
            *error = ep;
            *out = std::move(v);
            *done = true;
            cv->notify_all();
        }
    };
    // With no associated executor the completion is posted to the system executor.
    submit(std::make_unique<job_impl<R, F, sync_handler>>(std::move(f), sync_handler{&m, &cv, &done, &error, &out}));
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return done; });
    if (error) std::rethrow_exception(error);
    return out;
}

}  // namespace wxrecon::store
