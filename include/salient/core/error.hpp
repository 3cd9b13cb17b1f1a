#pragma once
// salient::error: the one exception type the library throws for bad input or unsupported
// models. Its message names the bad value and what was expected.
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace salient {

class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
// Builds a message from streamable parts: fail("target class ", c, " out of range [0, ", k, ")").
template <class... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  std::ostringstream message;
  (message << ... << std::forward<Parts>(parts));
  throw error(message.str());
}
}  // namespace detail
}  // namespace salient
