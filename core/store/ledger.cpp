#include "store/ledger.hpp"

#include <spdlog/spdlog.h>
#include <algorithm>
#include <map>
#include <pqxx/pqxx>
#include <set>

#include "base/encoding.hpp"
#include "base/json_writer.hpp"
#include "store/db_pool.hpp"
#include "store/fact_batch.hpp"

namespace wxrecon::store {
namespace {

using namespace domain;

constexpr int batch_attempts = 3;

bool is_outage(const std::string& sqlstate) {
    // Connection exceptions and operator intervention (shutdown, crash recovery).
    return sqlstate.starts_with("08") || (sqlstate.starts_with("57") && sqlstate != "57014");
}

}  // namespace

std::vector<apply_result> apply_batch(pqxx::connection_base& conn, const std::vector<const fact*>& facts,
                                      std::optional<deadline> until) {
    // Time kept back for the commit itself (one WAL flush), so it ends before the callers' deadline.
    constexpr auto commit_margin = std::chrono::milliseconds(150);
    long timeout_ms = 4000;
    if (until) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            *until - commit_margin - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            throw commit_not_confirmed("the callers' deadline passed before the batch began");
        timeout_ms = static_cast<long>(left.count());
    }
    try {
        batch_transaction tx(conn, timeout_ms);
        std::vector<apply_result> results = apply_in(tx, facts);
        if (until && std::chrono::steady_clock::now() > *until - commit_margin)
            throw commit_not_confirmed("the callers' deadline is too close to commit; rolled back");
        try {
            tx.commit();
        } catch (const pqxx::broken_connection& e) {
            throw commit_not_confirmed(std::string("connection lost during commit: ") + e.what());
        }
        return results;
    } catch (const pqxx::broken_connection& e) {
        throw database_unavailable(e.what());
    } catch (const pqxx::sql_error& e) {
        if (e.sqlstate() == "57014")
            throw commit_not_confirmed(std::string("statement timed out: ") + e.what());
        if (is_outage(e.sqlstate())) throw database_unavailable(e.what());
        throw;
    }
}

void prepare_ledger_connection(pqxx::connection_base& conn) {
    prepare_fact_batch(conn);
}

ledger::ledger(db_pool& pool, ledger_limits limits) : pool_(pool), limits_(limits) {}

ledger::~ledger() = default;

boost::asio::awaitable<apply_result> ledger::apply(const domain::fact& f, deadline until) {
    // Every source checks this first; here it keeps a bad number from costing its batch-mates a retry.
    if (!domain::valid_out_trade_no(f.out_trade_no()))
        throw std::invalid_argument("out_trade_no is not " + std::string(domain::out_trade_no_rule));
    // Named locals, not temporaries, live across the co_await: GCC 12 mishandles temporaries there.
    auto owned = std::make_shared<const domain::fact>(f);
    auto start = [this, owned, until](std::shared_ptr<delivery<apply_result>> done) {
        bool schedule = false;
        {
            std::lock_guard lock(mutex_);
            if (queue_.size() >= limits_.max_queued) {
                done->deliver(std::make_exception_ptr(database_overloaded("fact queue is full")), {});
                return;
            }
            queue_.push_back(item{owned, std::move(done), until});
            // A drain keeps taking batches until it finds the queue empty, or finds few facts while another
            // drain runs (both checked under this lock), so a fact queued without a new drain is always
            // picked up by a running one.
            schedule = active_drains_ == 0 ||
                       (active_drains_ < std::min(limits_.max_concurrent_batches, pool_.workers()) &&
                        queue_.size() >= limits_.facts_for_another_batch);
            if (schedule) ++active_drains_;
        }
        if (schedule)
            pool_.post([this](pqxx::connection_base& conn) { drain(conn); },
                       [this](std::exception_ptr error) { fail_queued(error); });
    };
    co_return co_await await_delivery<apply_result>(std::move(start), until);
}

void ledger::fail_queued(std::exception_ptr error) {
    // The drain could not run (database down, pool stopping): answer now rather than at the deadline.
    std::deque<item> taken;
    {
        std::lock_guard lock(mutex_);
        --active_drains_;
        taken.swap(queue_);
    }
    for (auto& it : taken) it.done->deliver(error, {});
}

void ledger::drain(pqxx::connection_base& conn) {
    for (;;) {
        std::vector<item> batch;
        {
            std::lock_guard lock(mutex_);
            // Another drain is running and what waits is too little to need two: it takes them next.
            if (active_drains_ > 1 && queue_.size() < limits_.facts_for_another_batch) {
                --active_drains_;
                return;
            }
            // A fact whose caller has (almost) given up is left out: it would only shorten the batch's time.
            const auto soon = std::chrono::steady_clock::now() + std::chrono::milliseconds(250);
            while (!queue_.empty() && batch.size() < limits_.max_batch) {
                item& front = queue_.front();
                if (front.until <= soon)
                    front.done->deliver(
                        std::make_exception_ptr(commit_not_confirmed("no time left to commit")), {});
                else if (!front.done->abandoned())
                    batch.push_back(std::move(front));
                queue_.pop_front();
            }
            if (batch.empty() && queue_.empty()) {
                --active_drains_;
                return;
            }
        }
        if (!batch.empty()) run_batch(conn, std::move(batch));
    }
}

void ledger::run_batch(pqxx::connection_base& conn, std::vector<item> items) {
    std::vector<const domain::fact*> facts;
    facts.reserve(items.size());
    deadline until = deadline::max();
    for (const auto& it : items) {
        facts.push_back(it.fact.get());
        until = std::min(until, it.until);
    }
    std::exception_ptr failure;
    for (int attempt = 0; attempt < batch_attempts; ++attempt) {
        try {
            auto results = apply_batch(conn, facts, until);
            if (batch_listener_) batch_listener_(items.size());
            const bool changed = std::any_of(results.begin(), results.end(), [](const apply_result& r) {
                return r.outcome == domain::outcome::applied;
            });
            // Committed: the listener may look now, before the callers resume.
            if (changed && applied_listener_) applied_listener_();
            for (std::size_t i = 0; i < items.size(); ++i)
                items[i].done->deliver(nullptr, std::move(results[i]));
            return;
        } catch (const batch_conflict&) {
            failure = std::current_exception();  // lost a race: the retry sees the winner's rows
        } catch (const pqxx::transaction_rollback&) {
            failure = std::current_exception();  // deadlock or serialization failure: retry
        } catch (const database_unavailable&) {
            failure = std::current_exception();
            break;
        } catch (const commit_not_confirmed&) {
            failure = std::current_exception();
            break;
        } catch (const std::exception& e) {
            failure = std::current_exception();
            if (items.size() > 1) {
                // A fact the database refuses: find it by halves, keeping arrival order.
                spdlog::warn("ledger: batch of {} refused, splitting error={}", items.size(),
                             log_quote(e.what()));
                const auto mid = items.begin() + static_cast<std::ptrdiff_t>(items.size() / 2);
                run_batch(conn, std::vector<item>(items.begin(), mid));
                run_batch(conn, std::vector<item>(mid, items.end()));
                return;
            }
            break;
        }
        if (!conn.is_open()) break;
    }
    for (auto& it : items) it.done->deliver(failure, {});
}

}  // namespace wxrecon::store
