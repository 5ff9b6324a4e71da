// Streaming gzip decompression (RFC 1952) for downloaded bills (tar_type=GZIP): compressed bytes go in
// as they arrive, decompressed bytes come out in pieces of bounded size, so memory stays flat whatever
// the compression ratio (a small bomb cannot blow it up; the consumer sees a stream like any other).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace wxrecon {

// True when the bytes start with gzip's magic number (1f 8b). Needs the first two bytes of the file.
bool has_gzip_magic(std::string_view first_bytes) noexcept;

class gzip_inflater {
public:
    // Receives each decompressed piece; an error stops decompression and is returned by feed().
    using sink = std::function<status(std::string_view)>;

    static constexpr std::size_t default_piece_bytes = 64 * 1024;
    static constexpr std::uint64_t no_total_limit = UINT64_MAX;

    // piece_bytes bounds each piece handed to the sink; max_total_bytes bounds the whole output.
    explicit gzip_inflater(std::size_t piece_bytes = default_piece_bytes,
                           std::uint64_t max_total_bytes = no_total_limit);
    ~gzip_inflater();
    gzip_inflater(const gzip_inflater&) = delete;
    gzip_inflater& operator=(const gzip_inflater&) = delete;

    // The next compressed bytes, cut anywhere. Corrupt data is errc::parse_error naming the byte offset
    // of the compressed input where it was found. Concatenated gzip members are read one after another.
    status feed(std::string_view compressed, const sink& out);
    // End of input: refused (errc::parse_error) when the stream stopped inside a member.
    status finish();

    std::uint64_t total_in() const noexcept;
    std::uint64_t total_out() const noexcept;

private:
    struct state;
    std::unique_ptr<state> state_;
};

// Reads a file in chunks: each chunk as stored goes to `raw` (when given), and the file's content,
// decompressed when it starts with gzip's magic, to `content` (when given). Neither is ever held whole.
// Errors: io_error for a file that cannot be read, parse_error for corrupt gzip, or whatever a sink returned.
struct file_content_info {
    std::uint64_t file_bytes = 0;
    bool gzip = false;
};
result<file_content_info> read_file_content(const std::string& path, const gzip_inflater::sink& content,
                                            const gzip_inflater::sink& raw = {});

}  // namespace wxrecon
