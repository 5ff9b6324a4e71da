// A result handed from a worker thread to an awaiting coroutine, bounded by a
// deadline: whichever comes first, the result or the deadline, resumes the
// caller, exactly once, on the caller's own executor.
#pragma once

#include <atomic>
#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace wxrecon::store {

// When a caller stops waiting for the database.
using deadline = std::chrono::steady_clock::time_point;

// The caller's deadline passed before the work finished. The work may still complete (or never start);
// the caller must treat the outcome as unknown.
struct deadline_exceeded : std::runtime_error {
    using std::runtime_error::runtime_error;
};

template <class R>
class delivery {
public:
    virtual ~delivery() = default;
    // Thread-safe; only the first of deliver() and the deadline reaches the caller.
    virtual void deliver(std::exception_ptr error, R value) = 0;
    // True once the caller has given up: work not yet started should be skipped.
    bool abandoned() const noexcept { return abandoned_.load(std::memory_order_acquire); }

protected:
    std::atomic<bool> abandoned_{false};
};

namespace detail {

// Both completions run on the caller's executor, which is single-threaded, so only abandoned_ is shared.
// Until deliver() the caller's loop counts the work as outstanding, even after a deadline gave up on it:
// its run() cannot return, and the loop be destroyed, while a worker may still post to it.
template <class R, class Handler>
class delivery_impl final : public delivery<R>,
                            public std::enable_shared_from_this<delivery_impl<R, Handler>> {
public:
    delivery_impl(Handler h, boost::asio::any_io_executor ex)
        : handler_(std::move(h)),
          executor_(std::move(ex)),
          work_(boost::asio::prefer(executor_, boost::asio::execution::outstanding_work.tracked)) {}

    // The worker keeps its own hold on the loop until post() has returned: post() signals the loop's
    // thread after queueing, and that thread may run the handler and leave run() in between.
    void deliver(std::exception_ptr error, R value) override {
        const boost::asio::any_io_executor held = std::exchange(work_, {});
        boost::asio::post(
            executor_, [self = this->shared_from_this(), work = held, error, v = std::move(value)]() mutable {
                self->complete(error, std::move(v));
            });
    }

    void arm(std::chrono::steady_clock::time_point until) {
        timer_.emplace(executor_, until);
        timer_->async_wait([self = this->shared_from_this()](const boost::system::error_code& ec) {
            if (ec) return;
            self->abandoned_.store(true, std::memory_order_release);
            self->complete(std::make_exception_ptr(deadline_exceeded("deadline passed")), R{});
        });
    }

private:
    void complete(std::exception_ptr error, R value) {
        if (!handler_) return;
        if (timer_) timer_->cancel();
        Handler h = std::move(*handler_);
        handler_.reset();
        std::move(h)(error, std::move(value));
    }

    std::optional<Handler> handler_;
    boost::asio::any_io_executor executor_;
    boost::asio::any_io_executor work_;  // executor_, tracking outstanding work; empty once delivered
    std::optional<boost::asio::steady_timer> timer_;
};

}  // namespace detail

// start(std::shared_ptr<delivery<R>>) hands the delivery to whoever does the work.
template <class R, class Start>
boost::asio::awaitable<R> await_delivery(Start start,
                                         std::optional<std::chrono::steady_clock::time_point> until) {
    return boost::asio::async_initiate<decltype(boost::asio::use_awaitable), void(std::exception_ptr, R)>(
        [until](auto handler, Start begin) {
            using impl = detail::delivery_impl<R, decltype(handler)>;
            boost::asio::any_io_executor ex = boost::asio::get_associated_executor(handler);
            auto d = std::make_shared<impl>(std::move(handler), ex);
            if (until) d->arm(*until);
            begin(std::shared_ptr<delivery<R>>(d));
        },
        boost::asio::use_awaitable, std::move(start));
}

}  // namespace wxrecon::store
