// COPY … FROM STDIN with the text format written directly: each row is built into a buffer, escaped per
// PostgreSQL's COPY rules, and the buffer goes to the server in pieces of about 64 KiB. libpqxx's
// tuple-based stream_to formats every field through its string conversions and costs several times the
// parsing of the rows it carries (bench/run-bills.sh: 5 s of client CPU for a million bill rows).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pqxx {
class transaction_base;
class tablewriter;
}  // namespace pqxx

namespace wxrecon::store {

class copy_writer {
public:
    copy_writer(pqxx::transaction_base& tx, const std::string& table,
                const std::vector<std::string>& columns);
    ~copy_writer();
    copy_writer(const copy_writer&) = delete;
    copy_writer& operator=(const copy_writer&) = delete;

    copy_writer& text(std::string_view value);
    copy_writer& integer(std::int64_t value);
    copy_writer& boolean(bool value);
    copy_writer& null();
    void end_row();

    // Sends what is buffered and ends the COPY; the rows are then part of the transaction.
    void complete();

private:
    void separate();
    void flush();

    std::unique_ptr<pqxx::tablewriter> writer_;
    std::string buffer_;
    bool row_started_ = false;
};

}  // namespace wxrecon::store
