// Fetching a merchant's bills for a Beijing day from WeChat Pay (docs/protocol-notes.md §6, §7.9) and
// reconciling the day: APIv3 applies for a download link and downloads the file (unsigned; checked against
// the SHA-1 the signed application answer gave), APIv2 downloads the file in one signed call. A bill still
// being made is asked for again later; a file that is not what WeChat Pay said is downloaded again and never
// parsed. One instance fetches a day at a time (a lease on the day's reconciliations row).
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "base/metrics.hpp"
#include "base/time.hpp"
#include "config/config.hpp"
#include "config/key_material.hpp"
#include "store/db_pool.hpp"
#include "store/ledger.hpp"
#include "workflow/bill_reconciler.hpp"

namespace wxrecon::workflow {

struct bill_fetch_policy {
    bool trade = true;
    bool fundflow = true;
    std::chrono::microseconds cross_day_tolerance = std::chrono::minutes(10);
    // STATEMENT_CREATING / BILL_CREATING: asked again after this, at most this many times in all.
    std::chrono::milliseconds not_ready_wait = std::chrono::minutes(30);
    int not_ready_tries = 12;
    int download_tries = 3;  // hash mismatches and failed downloads
    std::chrono::milliseconds download_timeout = std::chrono::minutes(10);
    std::filesystem::path work_dir = std::filesystem::temp_directory_path();
    std::string owner = "wxrecond";  // the fetch lease's owner: unique per instance
    std::chrono::milliseconds lease = std::chrono::hours(1);
};

// Why a day could not be fetched.
struct bill_fetch_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class bill_fetcher {
public:
    bill_fetcher(boost::asio::any_io_executor ex, store::db_pool& pool, store::ledger& ledger,
                 std::shared_ptr<metrics> metrics, wall_clock clock, bill_fetch_policy policy);
    ~bill_fetcher();

    // Fetches the day's bills of the kinds the policy names, stores them and reconciles the day. Throws
    // bill_fetch_error for a day outside the last 3 months, a day another instance is fetching, a bill still
    // being made after the last try, or downloads that kept failing (the message says which).
    boost::asio::awaitable<bill_day_result> fetch_day(const config::merchant_config& merchant,
                                                      const config::merchant_keys& keys,
                                                      std::string bill_date);

    // Sets the merchant's gauges from the database: the newest reconciled day up to yesterday (0 when none,
    // so the alert on an unreconciled yesterday fires after a restart too) and its open bill differences.
    // Returns that day.
    boost::asio::awaitable<std::optional<std::string>> publish_gauges(std::string mchid);

    // The Beijing day before now, YYYY-MM-DD.
    static std::string previous_beijing_day(std::int64_t now_unix);
    // Whether WeChat Pay still keeps the day's bills: from 3 months before today (Beijing) to yesterday.
    static bool fetchable(const std::string& bill_date, std::int64_t now_unix);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace wxrecon::workflow
