#include "base/gzip.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace wxrecon {

bool has_gzip_magic(std::string_view first_bytes) noexcept {
    return first_bytes.size() >= 2 && static_cast<unsigned char>(first_bytes[0]) == 0x1f &&
           static_cast<unsigned char>(first_bytes[1]) == 0x8b;
}

struct gzip_inflater::state {
    z_stream stream{};
    bool initialised = false;
    bool in_member = false;       // a member has begun and not yet ended
    bool member_ended = false;    // the last member ended; more input starts another
    bool output_pending = false;  // the last call filled the buffer: zlib may hold more output
    std::vector<unsigned char> buffer;
    std::uint64_t max_total = no_total_limit;
    std::uint64_t total_in = 0;
    std::uint64_t total_out = 0;
    std::optional<error> failure;

    ~state() {
        if (initialised) inflateEnd(&stream);
    }

    status fail(error e) {
        failure = std::move(e);
        return *failure;
    }
};

gzip_inflater::gzip_inflater(std::size_t piece_bytes, std::uint64_t max_total_bytes)
    : state_(std::make_unique<state>()) {
    state& s = *state_;
    // zlib counts its buffers in uInt.
    s.buffer.resize(std::clamp<std::size_t>(piece_bytes, 1, std::numeric_limits<uInt>::max()));
    s.max_total = max_total_bytes;
    // 16 + MAX_WBITS: a gzip wrapper (header and CRC-32 trailer checked), never raw deflate or zlib.
    if (inflateInit2(&s.stream, 16 + MAX_WBITS) == Z_OK) {
        s.initialised = true;
    } else {
        s.failure = make_error(errc::internal, "gzip: zlib could not be initialised");
    }
}

gzip_inflater::~gzip_inflater() = default;

status gzip_inflater::feed(std::string_view compressed, const sink& out) {
    state& s = *state_;
    if (s.failure) return *s.failure;
    const auto* next = reinterpret_cast<const unsigned char*>(compressed.data());
    std::size_t left = compressed.size();
    while (left > 0 || s.output_pending) {
        if (s.member_ended && left > 0) {  // a further member follows (concatenated gzip files)
            inflateReset(&s.stream);
            s.member_ended = false;
        }
        const auto offered = static_cast<uInt>(std::min<std::size_t>(left, std::numeric_limits<uInt>::max()));
        s.stream.next_in = const_cast<Bytef*>(next);  // zlib's input pointer is not const, it never writes
        s.stream.avail_in = offered;
        s.stream.next_out = s.buffer.data();
        s.stream.avail_out = static_cast<uInt>(s.buffer.size());
        const int rc = inflate(&s.stream, Z_NO_FLUSH);
        const std::size_t consumed = offered - s.stream.avail_in;
        const std::size_t produced = s.buffer.size() - s.stream.avail_out;
        next += consumed;
        left -= consumed;
        s.total_in += consumed;
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
            const std::string detail = s.stream.msg != nullptr ? s.stream.msg : "error " + std::to_string(rc);
            return s.fail(make_error(errc::parse_error, "gzip: corrupt data near compressed byte " +
                                                            std::to_string(s.total_in) + " (" + detail +
                                                            ")"));
        }
        if (consumed > 0) s.in_member = true;
        if (produced > 0) {
            if (produced > s.max_total - s.total_out) {
                return s.fail(make_error(errc::parse_error, "gzip: the decompressed data exceeds " +
                                                                std::to_string(s.max_total) + " bytes"));
            }
            s.total_out += produced;
            const std::string_view piece(reinterpret_cast<const char*>(s.buffer.data()), produced);
            if (auto taken = out(piece); !taken) return s.fail(taken.err());
        }
        s.output_pending = rc == Z_OK && s.stream.avail_out == 0;
        if (rc == Z_STREAM_END) {
            s.in_member = false;
            s.member_ended = true;
        } else if (consumed == 0 && produced == 0) {
            break;  // zlib needs more input than this call has
        }
    }
    return ok;
}

status gzip_inflater::finish() {
    state& s = *state_;
    if (s.failure) return *s.failure;
    if (s.in_member) {
        return s.fail(make_error(errc::parse_error, "gzip: the data ends inside a member after " +
                                                        std::to_string(s.total_in) + " bytes (truncated)"));
    }
    if (!s.member_ended) return s.fail(make_error(errc::parse_error, "gzip: no data"));
    return ok;
}

std::uint64_t gzip_inflater::total_in() const noexcept {
    return state_->total_in;
}
std::uint64_t gzip_inflater::total_out() const noexcept {
    return state_->total_out;
}

result<file_content_info> read_file_content(const std::string& path, const gzip_inflater::sink& content,
                                            const gzip_inflater::sink& raw) {
    const auto closer = [](std::FILE* f) { std::fclose(f); };
    const std::unique_ptr<std::FILE, decltype(closer)> file(std::fopen(path.c_str(), "rb"), closer);
    if (!file) return make_error(errc::io_error, path + ": " + std::strerror(errno));
    file_content_info info;
    std::optional<gzip_inflater> inflater;
    std::array<char, 64 * 1024> chunk;
    while (true) {
        const std::size_t got = std::fread(chunk.data(), 1, chunk.size(), file.get());
        if (got == 0) {
            if (std::ferror(file.get()))
                return make_error(errc::io_error, path + ": " + std::strerror(errno));
            break;
        }
        const std::string_view bytes(chunk.data(), got);
        if (info.file_bytes == 0 && has_gzip_magic(bytes)) {
            info.gzip = true;
            inflater.emplace();
        }
        info.file_bytes += got;
        if (raw) {
            if (auto taken = raw(bytes); !taken) return taken.err();
        }
        if (!content) continue;  // the stored bytes only: nothing to decompress
        if (auto fed = inflater ? inflater->feed(bytes, content) : content(bytes); !fed) return fed.err();
    }
    if (inflater && content) {
        if (auto ended = inflater->finish(); !ended) return ended.err();
    }
    return info;
}

}  // namespace wxrecon
