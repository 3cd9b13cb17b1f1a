#pragma once
// The check every bad-input test makes: the call throws salient::error and its message names
// the offending value.
#include <string>
#include <string_view>

#include <catch2/catch.hpp>

#include "salient/core/error.hpp"

namespace salient::test {

template <class F>
void require_error_mentioning(F&& f, const std::string& part) {
  try {
    f();
    FAIL("expected salient::error mentioning '" << part << "'");
  } catch (const salient::error& e) {
    INFO("message: " << e.what());
    CHECK_THAT(e.what(), Catch::Matchers::Contains(part));
  }
}

// The same, and the error is of `kind`.
template <class F>
void require_error_of_kind(F&& f, salient::error_kind kind, const std::string& part) {
  try {
    f();
    FAIL("expected salient::error (" << salient::to_string(kind) << ") mentioning '" << part << "'");
  } catch (const salient::error& e) {
    INFO("message: " << e.what());
    CHECK_THAT(e.what(), Catch::Matchers::Contains(part));
    CHECK(salient::to_string(e.kind()) == salient::to_string(kind));
  }
}

}  // namespace salient::test
