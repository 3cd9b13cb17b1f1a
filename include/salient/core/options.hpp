#pragma once
// Options structs by field name. An options struct that tools and bindings configure by name
// lists its fields once, next to its definition, with a function found by argument-dependent
// lookup:
//
//   template <class Visit>
//   void for_each_option(SaliencyOptions& options, Visit&& visit) {
//     visit("abs", options.abs); visit("batch_size", options.batch_size); visit("progress", options.progress);
//   }
//
// From that one list come the options as JSON (what a run records: the struct's own defaults,
// never written a second time), the names a method accepts, and setting one option from text
// ("steps" = "32") with the same checks as a command-line flag. Text sets bool, int64_t (0 to
// max_option_count), uint64_t, double, std::string, std::array<int64_t, 2> ("15,15" or "15")
// and enums (ADL `to_string(E)` and `from_string(text, E&)`); other JSON-convertible fields
// are recorded but not set from text; callbacks (std::function: progress, on_layer) are
// neither, and are set by assignment.
#include <array>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "salient/core/error.hpp"

namespace salient {

// The bound of every integer option set by name (counts, sizes, steps): a value above it is
// a typo or a run that would not finish, and is refused before any work.
inline constexpr int64_t max_option_count = 10'000'000;

namespace detail {
// Whole-text integer in [minimum, maximum]; `what` names the option in the message.
inline int64_t parse_integer(std::string_view what, const std::string& text, int64_t minimum, int64_t maximum) {
  std::size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty()) fail(what, " expects an integer, got '", text, "'");
  if (v < minimum) fail(what, " must be at least ", minimum, ", got ", v);
  if (v > maximum) fail(what, " must be at most ", maximum, ", got ", v);
  return v;
}

// Whole-text finite number.
inline double parse_number(std::string_view what, const std::string& text) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty() || !std::isfinite(v)) fail(what, " expects a number, got '", text, "'");
  return v;
}

template <class T>
inline constexpr bool is_callback = false;
template <class R, class... Args>
inline constexpr bool is_callback<std::function<R(Args...)>> = true;

template <class T>
inline constexpr bool settable_from_text = std::same_as<T, bool> || std::same_as<T, int64_t> || std::same_as<T, uint64_t> ||
                                           std::same_as<T, double> || std::same_as<T, std::string> ||
                                           std::same_as<T, std::array<int64_t, 2>> || std::same_as<T, std::vector<double>> ||
                                           std::is_enum_v<T>;

template <class T>
void parse_option_value(std::string_view name, const std::string& text, T& value) {
  if constexpr (std::same_as<T, bool>) {
    if (text == "true" || text == "1") value = true;
    else if (text == "false" || text == "0") value = false;
    else fail(name, " expects true or false, got '", text, "'");
  } else if constexpr (std::same_as<T, int64_t>) {
    value = parse_integer(name, text, 0, max_option_count);
  } else if constexpr (std::same_as<T, uint64_t>) {
    value = static_cast<uint64_t>(parse_integer(name, text, 0, std::numeric_limits<int64_t>::max()));
  } else if constexpr (std::same_as<T, double>) {
    value = parse_number(name, text);
  } else if constexpr (std::same_as<T, std::string>) {
    value = text;
  } else if constexpr (std::same_as<T, std::array<int64_t, 2>>) {
    const auto comma = text.find(',');
    if (comma == std::string::npos) {
      value[0] = value[1] = parse_integer(name, text, 1, max_option_count);
    } else {
      value[0] = parse_integer(name, text.substr(0, comma), 1, max_option_count);
      value[1] = parse_integer(name, text.substr(comma + 1), 1, max_option_count);
    }
  } else if constexpr (std::same_as<T, std::vector<double>>) {  // comma-separated numbers
    std::vector<double> numbers;
    for (std::size_t begin = 0;;) {
      const auto comma = text.find(',', begin);
      numbers.push_back(parse_number(name, text.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin)));
      if (comma == std::string::npos) break;
      begin = comma + 1;
    }
    value = std::move(numbers);
  } else if constexpr (std::is_enum_v<T>) {
    from_string(text, value);
  } else {
    fail("option ", name, " cannot be set from text");
  }
}

template <class T>
nlohmann::json option_json(const T& value) {
  if constexpr (std::is_enum_v<T>)
    return std::string(to_string(value));
  else
    return value;
}
}  // namespace detail

template <class O>
concept NamedOptions = std::copyable<O> && requires(O& options) { for_each_option(options, [](std::string_view, auto&) {}); };

// The options as a JSON object, field name -> value (callbacks left out).
template <NamedOptions O>
nlohmann::json options_json(O options) {  // a copy: the visitor takes the fields by reference
  auto json = nlohmann::json::object();
  for_each_option(options, [&](std::string_view name, const auto& value) {
    if constexpr (!detail::is_callback<std::decay_t<decltype(value)>>) json[std::string(name)] = detail::option_json(value);
  });
  return json;
}

// The names of the fields text can set, in declaration order.
template <NamedOptions O>
std::vector<std::string> option_names(O options) {
  std::vector<std::string> names;
  for_each_option(options, [&](std::string_view name, const auto& value) {
    if constexpr (detail::settable_from_text<std::decay_t<decltype(value)>>) names.emplace_back(name);
  });
  return names;
}

// Sets the field `name` from text; false when the struct has no such field. Bad values fail
// with a message naming the option.
template <NamedOptions O>
bool set_option(O& options, std::string_view name, const std::string& text) {
  bool found = false;
  for_each_option(options, [&](std::string_view field, auto& value) {
    if (field != name) return;
    detail::parse_option_value(name, text, value);
    found = true;
  });
  return found;
}

}  // namespace salient
