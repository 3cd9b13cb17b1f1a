#pragma once
// salient::error: the one exception type the library throws for bad input, unsupported models
// and failed file operations. Its message names the bad value and what was expected; its kind
// says which of the three it is, for callers that handle them differently.
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace salient {

enum class error_kind {
  bad_input,    // a wrong shape, value, option or target: the call cannot work as made
  unsupported,  // a model, op or layer outside what a method or rule set handles
  io,           // a file that cannot be read, written, or is not what it should be
};

inline std::string_view to_string(error_kind kind) {
  switch (kind) {
    case error_kind::bad_input: return "bad input";
    case error_kind::unsupported: return "unsupported";
    case error_kind::io: return "I/O";
  }
  return "?";
}

class error : public std::runtime_error {
 public:
  explicit error(const std::string& message, error_kind kind = error_kind::bad_input)
      : std::runtime_error(message), kind_(kind) {}
  error_kind kind() const noexcept { return kind_; }

 private:
  error_kind kind_;
};

// Throws a salient::error of `kind` with a message built from streamable parts:
// raise(error_kind::bad_input, "target class ", c, " out of range [0, ", k, ")").
template <class... Parts>
[[noreturn]] void raise(error_kind kind, Parts&&... parts) {
  std::ostringstream message;
  (message << ... << std::forward<Parts>(parts));
  throw error(message.str(), kind);
}

namespace detail {
// The library's shorthands.
template <class... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  raise(error_kind::bad_input, std::forward<Parts>(parts)...);
}
template <class... Parts>
[[noreturn]] void fail_unsupported(Parts&&... parts) {
  raise(error_kind::unsupported, std::forward<Parts>(parts)...);
}
template <class... Parts>
[[noreturn]] void fail_io(Parts&&... parts) {
  raise(error_kind::io, std::forward<Parts>(parts)...);
}
}  // namespace detail
}  // namespace salient
