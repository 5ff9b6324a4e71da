#include "store/copy_writer.hpp"

#include <charconv>

#include <pqxx/pqxx>
#include <pqxx/tablewriter>

namespace wxrecon::store {
namespace {

constexpr std::size_t flush_bytes = 64 * 1024;

}  // namespace

// tablewriter is libpqxx 6's raw COPY writer: deprecated there in favour of stream_to, whose raw line
// writer is private. It is the only public way to hand libpq pre-formatted COPY data.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
copy_writer::copy_writer(pqxx::transaction_base& tx, const std::string& table,
                         const std::vector<std::string>& columns)
    : writer_(std::make_unique<pqxx::tablewriter>(tx, table, columns.begin(), columns.end())) {
    buffer_.reserve(flush_bytes + 4096);
}
#pragma GCC diagnostic pop

copy_writer::~copy_writer() = default;

void copy_writer::separate() {
    if (row_started_) buffer_.push_back('\t');
    row_started_ = true;
}

copy_writer& copy_writer::text(std::string_view value) {
    separate();
    // Appended in runs between the few bytes COPY needs escaped, not byte by byte.
    std::size_t run = 0;
    for (std::size_t i = 0; i < value.size(); ++i) {
        const char c = value[i];
        const char escaped = c == '\\' ? '\\' : c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : '\0';
        if (escaped == '\0') continue;
        buffer_.append(value.substr(run, i - run));
        buffer_.push_back('\\');
        buffer_.push_back(escaped);
        run = i + 1;
    }
    buffer_.append(value.substr(run));
    return *this;
}

copy_writer& copy_writer::integer(std::int64_t value) {
    separate();
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
    buffer_.append(digits, end);
    return *this;
}

copy_writer& copy_writer::boolean(bool value) {
    separate();
    buffer_.push_back(value ? 't' : 'f');
    return *this;
}

copy_writer& copy_writer::null() {
    separate();
    buffer_.append("\\N");
    return *this;
}

void copy_writer::end_row() {
    buffer_.push_back('\n');
    row_started_ = false;
    if (buffer_.size() >= flush_bytes) flush();
}

void copy_writer::flush() {
    // write_raw_line adds the final newline itself (and drops one already there): the buffer ends in one.
    if (!buffer_.empty()) writer_->write_raw_line(buffer_);
    buffer_.clear();
}

void copy_writer::complete() {
    flush();
    writer_->complete();
}

}  // namespace wxrecon::store
