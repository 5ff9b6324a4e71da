#include "store/discrepancy_store.hpp"

#include <algorithm>
#include <pqxx/pqxx>

#include "store/db_pool.hpp"

namespace wxrecon::store {
namespace {

// The status condition of each filter. Unresolved rows are those with resolved_at null (the CHECK of
// migration 0009 keeps status in step), which the partial index discrepancies_one_open covers.
const char* status_condition(status_filter f) {
    switch (f) {
        case status_filter::unresolved:
            return "resolved_at IS NULL";
        case status_filter::open:
            return "resolved_at IS NULL AND status = 'open'";
        case status_filter::acknowledged:
            return "resolved_at IS NULL AND status = 'acknowledged'";
        case status_filter::resolved:
            return "resolved_at IS NOT NULL";
        case status_filter::all:
            break;
    }
    return "true";
}

std::string text_or_empty(const pqxx::field& f) {
    return f.is_null() ? std::string() : f.as<std::string>();
}

}  // namespace

struct discrepancy_store::impl {
    explicit impl(const std::string& url) : conn(url) {}
    pqxx::connection conn;
};

std::optional<status_filter> parse_status_filter(std::string_view text) {
    if (text == "unresolved") return status_filter::unresolved;
    if (text == "open") return status_filter::open;
    if (text == "acknowledged") return status_filter::acknowledged;
    if (text == "resolved") return status_filter::resolved;
    if (text == "all") return status_filter::all;
    return std::nullopt;
}

discrepancy_store::discrepancy_store(const std::string& database_url) {
    try {
        impl_ = std::make_unique<impl>(database_url);
    } catch (const pqxx::broken_connection& e) {
        throw database_unavailable(e.what());
    }
}

discrepancy_store::~discrepancy_store() = default;

discrepancy_list discrepancy_store::list(const discrepancy_filter& filter) {
    const auto limit = static_cast<std::int64_t>(std::min(filter.limit, max_list_limit));
    try {
        pqxx::read_transaction tx(impl_->conn);
        // One more than the limit, to tell whether rows were left out.
        const auto rows = tx.exec_params(
            std::string(
                "SELECT id, mchid, out_trade_no, kind, status, detail::text, wxrecon.rfc3339(detected_at),"
                " bill_date::text, wxrecon.rfc3339(acknowledged_at), acknowledged_by,"
                " wxrecon.rfc3339(resolved_at), resolved_by, resolution"
                " FROM wxrecon.discrepancies WHERE ") +
                status_condition(filter.status) +
                " AND ($1 = '' OR kind = $1) AND ($2 = '' OR mchid = $2) ORDER BY id LIMIT $3",
            filter.kind, filter.mchid, limit + 1);
        discrepancy_list out;
        out.truncated = rows.size() > static_cast<std::size_t>(limit);
        out.rows.reserve(std::min(rows.size(), static_cast<std::size_t>(limit)));
        for (const auto& row : rows) {
            if (out.rows.size() == static_cast<std::size_t>(limit)) break;
            discrepancy_row d;
            d.id = row[0].as<std::int64_t>();
            d.mchid = row[1].as<std::string>();
            d.out_trade_no = row[2].as<std::string>();
            d.kind = row[3].as<std::string>();
            d.status = row[4].as<std::string>();
            d.detail_json = row[5].as<std::string>();
            d.detected_at = row[6].as<std::string>();
            d.bill_date = text_or_empty(row[7]);
            d.acknowledged_at = text_or_empty(row[8]);
            d.acknowledged_by = text_or_empty(row[9]);
            d.resolved_at = text_or_empty(row[10]);
            d.resolved_by = text_or_empty(row[11]);
            d.resolution = text_or_empty(row[12]);
            out.rows.push_back(std::move(d));
        }
        return out;
    } catch (const pqxx::broken_connection& e) {
        throw database_unavailable(e.what());
    }
}

result<transition_result> discrepancy_store::acknowledge(std::int64_t id, const std::string& who,
                                                         const std::string& note) {
    return transition("SELECT wxrecon.acknowledge_discrepancy($1, $2, nullif($3, ''))", id, who, note);
}

result<transition_result> discrepancy_store::resolve(std::int64_t id, const std::string& who,
                                                     const std::string& note) {
    return transition("SELECT wxrecon.resolve_discrepancy($1, $2, $3)", id, who, note);
}

result<transition_result> discrepancy_store::transition(const char* sql, std::int64_t id,
                                                        const std::string& who, const std::string& note) {
    try {
        pqxx::work tx(impl_->conn);
        transition_result out;
        const bool moved = tx.exec_params1(sql, id, who, note)[0].as<bool>();
        const auto now = tx.exec_params("SELECT status FROM wxrecon.discrepancies WHERE id = $1", id);
        tx.commit();
        if (now.empty()) {
            out.outcome = transition_outcome::not_found;
        } else {
            out.current_status = now[0][0].as<std::string>();
            out.outcome = moved ? transition_outcome::done : transition_outcome::wrong_status;
        }
        return out;
    } catch (const pqxx::broken_connection& e) {
        throw database_unavailable(e.what());
    } catch (const pqxx::data_exception& e) {
        // invalid_parameter_value from the functions' checks: the first line of the message says which.
        std::string why = e.what();
        if (const auto eol = why.find('\n'); eol != std::string::npos) why.erase(eol);
        if (why.starts_with("ERROR:")) why.erase(0, why.find_first_not_of(' ', 6));
        return make_error(errc::invalid_argument, why);
    }
}

}  // namespace wxrecon::store
