#pragma once
// HDF5 files of attribution maps, for runs over whole datasets (LibTorch-free; needs HDF5's C
// library, e.g. Debian's libhdf5-dev: include <hdf5.h>, link -lhdf5).
//
// Layout (readable with h5py: f["maps/integrated_gradients"][i], f["index/key"].asstr()[i]):
//   /maps/<method>          [N, C, H, W] float32, or IEEE float16 with `half` (numpy's float16),
//                           chunked one item per chunk, shuffled and deflate-compressed at the
//                           writer's level (default 1: on attribution maps as tight as level 4 and
//                           20-30% faster; 0: stored as they are, the fastest to write)
//   /index/item             [N] int64: the item's position in the whole dataset (before shards)
//   /index/key, /index/source   [N] UTF-8 strings: the item's dataset key and the file it came from
//   /index/label            [N] int64: the dataset's label, -1 when none
//   /index/top5_class       [N, 5] int64, -1 padded; /index/top5_probability [N, 5] float64, NaN padded
//   /index/seconds          [N, M] float64: each method's wall time on the item
//   /index/convergence_delta [N, M] float64: the method's convergence delta, NaN when it has none
//   attributes of /: "format" ("salient-attributions 1"), "methods" (JSON array, the order of
//   M), "parameters" (JSON: the run's settings)
// Every dataset grows along N as items are appended, so a writer never needs the item count.
#include <hdf5.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "salient/core/error.hpp"

namespace salient {

inline constexpr const char* attribution_file_format = "salient-attributions 1";

// One map as stored: its chunk's bytes after the file's filters (shuffle, deflate), for
// copying between files without decompressing and recompressing (salient-merge).
struct StoredMap {
  std::vector<unsigned char> bytes;
  uint32_t filters = 0;        // HDF5's mask of the filters skipped on this chunk
  std::vector<int64_t> shape;  // the item's shape
};

// One item's row of the index.
struct AttributionIndexEntry {
  int64_t item = -1;
  std::string key, source;
  int64_t label = -1;
  std::vector<int64_t> top_classes;       // at most 5
  std::vector<double> top_probabilities;  // as many as top_classes
  std::vector<double> seconds;            // one per method
  std::vector<double> convergence_delta;  // one per method (NaN: none)
};

namespace detail {

// An HDF5 identifier closed by its own close function.
class H5Id {
 public:
  H5Id() = default;
  H5Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  H5Id(H5Id&& other) noexcept : id_(std::exchange(other.id_, -1)), close_(other.close_) {}
  H5Id& operator=(H5Id&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, -1);
      close_ = other.close_;
    }
    return *this;
  }
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  ~H5Id() { reset(); }
  hid_t get() const { return id_; }
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

// Runs an HDF5 call with its error printing off (HDF5 prints a stack on every failure by
// default) and turns a negative result into a salient::error naming the file and the step.
template <class Call>
auto h5_call(const std::filesystem::path& file, const char* what, Call&& call) {
  H5E_auto2_t printer = nullptr;
  void* data = nullptr;
  H5Eget_auto2(H5E_DEFAULT, &printer, &data);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const auto result = call();
  H5Eset_auto2(H5E_DEFAULT, printer, data);
  if (result < 0) fail_io("HDF5 file '", file.string(), "': cannot ", what);
  return result;
}

// IEEE binary16 bits of a float, rounded to nearest even (NaN stays NaN, overflow gives inf).
inline uint16_t half_bits(float value) {
  uint32_t f;
  std::memcpy(&f, &value, sizeof f);
  const uint16_t sign = static_cast<uint16_t>((f >> 16) & 0x8000u);
  const uint32_t magnitude = f & 0x7fffffffu;
  if (magnitude >= 0x7f800000u) return sign | (magnitude > 0x7f800000u ? 0x7e00u : 0x7c00u);
  if (magnitude >= 0x477ff000u) return sign | 0x7c00u;  // rounds to beyond 65504
  if (magnitude < 0x38800000u) {                       // a subnormal half (or zero)
    const uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
    const int shift = 113 - static_cast<int>(magnitude >> 23) + 13;
    if (shift > 24) return sign;
    const uint32_t rest = mantissa & ((1u << shift) - 1), half = 1u << (shift - 1);
    uint32_t result = mantissa >> shift;
    if (rest > half || (rest == half && (result & 1u))) ++result;
    return sign | static_cast<uint16_t>(result);
  }
  uint32_t result = ((magnitude - 0x38000000u) >> 13);
  const uint32_t rest = magnitude & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (result & 1u))) ++result;
  return sign | static_cast<uint16_t>(result);
}

inline float half_value(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu, mantissa = bits & 0x3ffu;
  float value;
  if (exponent == 0) {
    value = std::ldexp(static_cast<float>(mantissa), -24);
  } else if (exponent == 31) {
    value = mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    value = std::ldexp(static_cast<float>(mantissa | 0x400u), static_cast<int>(exponent) - 25);
  }
  uint32_t f;
  std::memcpy(&f, &value, sizeof f);
  f |= sign;
  std::memcpy(&value, &f, sizeof f);
  return value;
}

// numpy's float16 as HDF5 sees it (what h5py writes and reads for numpy.float16).
inline H5Id half_type(const std::filesystem::path& file) {
  H5Id type(h5_call(file, "make the float16 type", [] { return H5Tcopy(H5T_IEEE_F32LE); }), H5Tclose);
  h5_call(file, "make the float16 type", [&] {
    return std::min({H5Tset_fields(type.get(), 15, 10, 5, 0, 10), H5Tset_size(type.get(), 2), H5Tset_ebias(type.get(), 15)});
  });
  return type;
}

inline H5Id string_type(const std::filesystem::path& file) {
  H5Id type(h5_call(file, "make the string type", [] { return H5Tcopy(H5T_C_S1); }), H5Tclose);
  h5_call(file, "make the string type", [&] {
    return std::min(H5Tset_size(type.get(), H5T_VARIABLE), H5Tset_cset(type.get(), H5T_CSET_UTF8));
  });
  return type;
}

// An extendible dataset [0, item...] chunked one item per chunk; shuffled and deflated at
// `compression` (1-9), or stored as it is (0).
inline H5Id growing_dataset(const std::filesystem::path& file, hid_t parent, const std::string& name, hid_t type,
                            const std::vector<hsize_t>& item_shape, int compression = 0) {
  std::vector<hsize_t> dims = {0}, max_dims = {H5S_UNLIMITED}, chunk = {1};
  for (const hsize_t d : item_shape) dims.push_back(d), max_dims.push_back(d), chunk.push_back(d);
  H5Id space(h5_call(file, "make a dataspace", [&] {
               return H5Screate_simple(static_cast<int>(dims.size()), dims.data(), max_dims.data());
             }),
             H5Sclose);
  H5Id properties(h5_call(file, "make dataset properties", [] { return H5Pcreate(H5P_DATASET_CREATE); }), H5Pclose);
  h5_call(file, "set the chunks", [&] { return H5Pset_chunk(properties.get(), static_cast<int>(chunk.size()), chunk.data()); });
  if (compression > 0)
    h5_call(file, "set compression", [&] {
      return std::min(H5Pset_shuffle(properties.get()), H5Pset_deflate(properties.get(), static_cast<unsigned>(compression)));
    });
  return H5Id(h5_call(file, ("create dataset " + name).c_str(),
                      [&] {
                        return H5Dcreate2(parent, name.c_str(), type, space.get(), H5P_DEFAULT, properties.get(),
                                          H5P_DEFAULT);
                      }),
              H5Dclose);
}

// The dataset's dimensions.
inline std::vector<hsize_t> dataset_dims(const std::filesystem::path& file, hid_t dataset) {
  H5Id space(h5_call(file, "read a dataspace", [&] { return H5Dget_space(dataset); }), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) fail_io("HDF5 file '", file.string(), "': cannot read a dataset's rank");
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return dims;
}

// Row `row` of a dataset as a file-space selection and the matching memory space.
struct RowSpaces {
  H5Id file_space, memory;
};
inline RowSpaces row_spaces(const std::filesystem::path& file, hid_t dataset, hsize_t row) {
  auto count = dataset_dims(file, dataset);
  if (count.empty() || row >= count[0]) fail_io("HDF5 file '", file.string(), "': row ", row, " is outside the dataset");
  std::vector<hsize_t> start(count.size(), 0);
  start[0] = row;
  count[0] = 1;
  H5Id space(h5_call(file, "read a dataspace", [&] { return H5Dget_space(dataset); }), H5Sclose);
  h5_call(file, "select a row", [&] {
    return H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
  });
  H5Id memory(h5_call(file, "make a dataspace",
                      [&] { return H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr); }),
              H5Sclose);
  return {std::move(space), std::move(memory)};
}

// Writes one item (row `row`) of a growing dataset, growing it to row + 1 rows first.
inline void write_row(const std::filesystem::path& file, hid_t dataset, hsize_t row, hid_t memory_type, const void* data) {
  auto dims = dataset_dims(file, dataset);
  dims.at(0) = row + 1;
  h5_call(file, "grow a dataset", [&] { return H5Dset_extent(dataset, dims.data()); });
  const auto spaces = row_spaces(file, dataset, row);
  h5_call(file, "write a row", [&] {
    return H5Dwrite(dataset, memory_type, spaces.memory.get(), spaces.file_space.get(), H5P_DEFAULT, data);
  });
}

// Reads one item (row `row`) of a dataset into `data` (as `memory_type`).
inline void read_row(const std::filesystem::path& file, hid_t dataset, hsize_t row, hid_t memory_type, void* data) {
  const auto spaces = row_spaces(file, dataset, row);
  h5_call(file, "read a row", [&] {
    return H5Dread(dataset, memory_type, spaces.memory.get(), spaces.file_space.get(), H5P_DEFAULT, data);
  });
}

inline void write_string_attribute(const std::filesystem::path& file, hid_t object, const char* name, const std::string& value) {
  const auto type = string_type(file);
  H5Id space(h5_call(file, "make a dataspace", [] { return H5Screate(H5S_SCALAR); }), H5Sclose);
  H5Id attribute(h5_call(file, "create an attribute",
                         [&] { return H5Acreate2(object, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT); }),
                 H5Aclose);
  const char* text = value.c_str();
  h5_call(file, "write an attribute", [&] { return H5Awrite(attribute.get(), type.get(), &text); });
}

inline std::string read_string_attribute(const std::filesystem::path& file, hid_t object, const char* name) {
  H5Id attribute(h5_call(file, (std::string("read attribute ") + name).c_str(), [&] { return H5Aopen(object, name, H5P_DEFAULT); }),
                 H5Aclose);
  const auto type = string_type(file);
  char* text = nullptr;
  h5_call(file, "read an attribute", [&] { return H5Aread(attribute.get(), type.get(), &text); });
  std::string value = text ? text : "";
  H5free_memory(text);
  return value;
}

}  // namespace detail

// Appends items to a new HDF5 file (see the top of this header). The file is created when the
// writer is (an existing file is an error: this class never replaces one); each map's shape is
// fixed by the first item. close() (or the destructor) flushes and closes it.
class AttributionWriter {
 public:
  // `compression`: the maps' deflate level, 0 (none) to 9.
  AttributionWriter(std::filesystem::path path, std::vector<std::string> methods, bool half, const std::string& parameters_json,
                    int compression = 1)
      : path_(std::move(path)), methods_(std::move(methods)), half_(half), compression_(compression) {
    using detail::H5Id;
    using detail::h5_call;
    if (methods_.empty()) detail::fail("an attribution file needs at least one method");
    if (compression_ < 0 || compression_ > 9) detail::fail("compression level ", compression_, " is outside [0, 9]");
    std::string methods_json = "[";
    for (std::size_t m = 0; m < methods_.size(); ++m) {
      if (methods_[m].empty()) detail::fail("an attribution file's method needs a name");
      for (const char c : methods_[m])
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_'))
          detail::fail("method name '", methods_[m], "' is not a dataset name (letters, digits and _ only)");
      methods_json += (m ? ",\"" : "\"") + methods_[m] + "\"";
    }
    methods_json += "]";
    std::error_code error;
    if (std::filesystem::exists(std::filesystem::symlink_status(path_, error)))
      detail::fail_io("HDF5 file '", path_.string(), "' exists; an attribution file is only ever written new");
    file_ = H5Id(h5_call(path_, "create the file", [&] { return H5Fcreate(path_.string().c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT); }),
                 H5Fclose);
    maps_ = H5Id(h5_call(path_, "create group maps", [&] { return H5Gcreate2(file_.get(), "maps", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT); }),
                 H5Gclose);
    H5Id index(h5_call(path_, "create group index", [&] { return H5Gcreate2(file_.get(), "index", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT); }),
               H5Gclose);
    detail::write_string_attribute(path_, file_.get(), "format", attribution_file_format);
    detail::write_string_attribute(path_, file_.get(), "methods", methods_json);
    detail::write_string_attribute(path_, file_.get(), "parameters", parameters_json);
    const auto text = detail::string_type(path_);
    const auto count = static_cast<hsize_t>(methods_.size());
    item_ = detail::growing_dataset(path_, index.get(), "item", H5T_STD_I64LE, {});
    key_ = detail::growing_dataset(path_, index.get(), "key", text.get(), {});
    source_ = detail::growing_dataset(path_, index.get(), "source", text.get(), {});
    label_ = detail::growing_dataset(path_, index.get(), "label", H5T_STD_I64LE, {});
    top_class_ = detail::growing_dataset(path_, index.get(), "top5_class", H5T_STD_I64LE, {5});
    top_probability_ = detail::growing_dataset(path_, index.get(), "top5_probability", H5T_IEEE_F64LE, {5});
    seconds_ = detail::growing_dataset(path_, index.get(), "seconds", H5T_IEEE_F64LE, {count});
    delta_ = detail::growing_dataset(path_, index.get(), "convergence_delta", H5T_IEEE_F64LE, {count});
  }

  // One item: its index row and one map per method (values in storage order; `shapes[m]` is
  // the item's [C, H, W] or any shape, the same for every item of a method).
  void append(const AttributionIndexEntry& entry, const std::vector<std::vector<float>>& maps,
              const std::vector<std::vector<int64_t>>& shapes) {
    check_row(entry, maps.size(), shapes);
    for (std::size_t m = 0; m < methods_.size(); ++m) {
      std::size_t values = 1;
      for (const int64_t d : shapes[m]) values *= static_cast<std::size_t>(d);
      if (maps[m].size() != values)
        detail::fail("attribution map of ", methods_[m], " holds ", maps[m].size(), " values for its shape's ", values);
    }
    if (half_)  // a map that lives below float16's normal range would be stored as (almost) all zeros
      for (std::size_t m = 0; m < methods_.size(); ++m) {
        float largest = 0;
        for (const float v : maps[m]) largest = std::max(largest, std::abs(v));
        if (largest > 0 && largest < 6.103515625e-5f)
          detail::fail("attribution file '", path_.string(), "': float16 cannot hold this map of ", methods_[m], " (its largest value is ",
                       largest, ", below float16's normal range from 6.1e-05): store the maps as float32");
      }
    const auto row = static_cast<hsize_t>(rows_);
    for (std::size_t m = 0; m < methods_.size(); ++m) {
      if (half_) {
        std::vector<uint16_t> bits(maps[m].size());
        for (std::size_t v = 0; v < bits.size(); ++v) bits[v] = detail::half_bits(maps[m][v]);
        const auto type = detail::half_type(path_);
        detail::write_row(path_, map_sets_[m].get(), row, type.get(), bits.data());
      } else {
        detail::write_row(path_, map_sets_[m].get(), row, H5T_NATIVE_FLOAT, maps[m].data());
      }
    }
    write_index(entry, row);
  }

  // One item whose maps come as stored by another attribution file of the same type (see
  // AttributionReader::stored_map): the chunks are copied as they are, bit for bit.
  void append(const AttributionIndexEntry& entry, const std::vector<StoredMap>& maps) {
    std::vector<std::vector<int64_t>> shapes;
    for (const auto& map : maps) shapes.push_back(map.shape);
    check_row(entry, maps.size(), shapes);
    const auto row = static_cast<hsize_t>(rows_);
    for (std::size_t m = 0; m < methods_.size(); ++m) {
      auto dims = detail::dataset_dims(path_, map_sets_[m].get());
      dims.at(0) = row + 1;
      detail::h5_call(path_, "grow a dataset", [&] { return H5Dset_extent(map_sets_[m].get(), dims.data()); });
      std::vector<hsize_t> offset(dims.size(), 0);
      offset[0] = row;
      detail::h5_call(path_, "write a stored chunk", [&] {
        return H5Dwrite_chunk(map_sets_[m].get(), H5P_DEFAULT, maps[m].filters, offset.data(), maps[m].bytes.size(),
                              maps[m].bytes.data());
      });
    }
    write_index(entry, row);
  }

  // A string attribute of the file (e.g. a JSON document about the run), written once.
  void set_attribute(const std::string& name, const std::string& text) {
    if (!file_.get() || file_.get() < 0) detail::fail("attribution file '", path_.string(), "' is closed");
    detail::write_string_attribute(path_, file_.get(), name.c_str(), text);
  }

  int64_t size() const { return rows_; }
  const std::filesystem::path& path() const { return path_; }

  void close() {
    if (file_.get() < 0) return;
    detail::h5_call(path_, "flush the file", [&] { return H5Fflush(file_.get(), H5F_SCOPE_GLOBAL); });
    for (auto* id : {&item_, &key_, &source_, &label_, &top_class_, &top_probability_, &seconds_, &delta_, &maps_}) id->reset();
    map_sets_.clear();
    file_.reset();
  }
  ~AttributionWriter() { close_quietly(); }
  AttributionWriter(const AttributionWriter&) = delete;
  AttributionWriter& operator=(const AttributionWriter&) = delete;

 private:
  void close_quietly() noexcept {
    try {
      close();
    } catch (...) {
    }
  }

  // Checks one item's row before anything of it is written; the first item fixes the shapes.
  void check_row(const AttributionIndexEntry& entry, std::size_t map_count, const std::vector<std::vector<int64_t>>& shapes) {
    using detail::H5Id;
    if (!file_.get() || file_.get() < 0) detail::fail("attribution file '", path_.string(), "' is closed");
    const std::size_t m_count = methods_.size();
    if (map_count != m_count || shapes.size() != m_count)
      detail::fail("attribution file '", path_.string(), "': ", map_count, " maps for ", m_count, " methods");
    if (entry.seconds.size() != m_count || entry.convergence_delta.size() != m_count)
      detail::fail("attribution file '", path_.string(), "': an index row needs one time and one delta per method");
    if (entry.top_classes.size() > 5 || entry.top_probabilities.size() != entry.top_classes.size())
      detail::fail("attribution file '", path_.string(), "': at most 5 top classes, each with its probability");
    if (map_sets_.empty()) {
      for (std::size_t m = 0; m < m_count; ++m) {
        std::vector<hsize_t> shape;
        for (const int64_t d : shapes[m]) {
          if (d < 1) detail::fail("attribution map shape has a dimension ", d);
          shape.push_back(static_cast<hsize_t>(d));
        }
        const auto type = half_ ? detail::half_type(path_) : H5Id();
        map_sets_.push_back(detail::growing_dataset(path_, maps_.get(), methods_[m], half_ ? type.get() : H5T_IEEE_F32LE,
                                                    shape, compression_));
        shapes_.push_back(shapes[m]);
      }
    }
    for (std::size_t m = 0; m < m_count; ++m)
      if (shapes[m] != shapes_[m]) detail::fail("attribution map of ", methods_[m], " changed its shape between items");
  }

  void write_index(const AttributionIndexEntry& entry, hsize_t row) {
    std::vector<int64_t> classes(5, -1);
    std::vector<double> probabilities(5, std::numeric_limits<double>::quiet_NaN());
    std::copy(entry.top_classes.begin(), entry.top_classes.end(), classes.begin());
    std::copy(entry.top_probabilities.begin(), entry.top_probabilities.end(), probabilities.begin());
    const auto text = detail::string_type(path_);
    const char* key = entry.key.c_str();
    const char* source = entry.source.c_str();
    detail::write_row(path_, item_.get(), row, H5T_NATIVE_INT64, &entry.item);
    detail::write_row(path_, key_.get(), row, text.get(), &key);
    detail::write_row(path_, source_.get(), row, text.get(), &source);
    detail::write_row(path_, label_.get(), row, H5T_NATIVE_INT64, &entry.label);
    detail::write_row(path_, top_class_.get(), row, H5T_NATIVE_INT64, classes.data());
    detail::write_row(path_, top_probability_.get(), row, H5T_NATIVE_DOUBLE, probabilities.data());
    detail::write_row(path_, seconds_.get(), row, H5T_NATIVE_DOUBLE, entry.seconds.data());
    detail::write_row(path_, delta_.get(), row, H5T_NATIVE_DOUBLE, entry.convergence_delta.data());
    ++rows_;
  }

  std::filesystem::path path_;
  std::vector<std::string> methods_;
  bool half_;
  int compression_;
  detail::H5Id file_, maps_, item_, key_, source_, label_, top_class_, top_probability_, seconds_, delta_;
  std::vector<detail::H5Id> map_sets_;
  std::vector<std::vector<int64_t>> shapes_;
  int64_t rows_ = 0;
};

// Reads an attribution file (see the top of this header); refuses a file of another format.
class AttributionReader {
 public:
  explicit AttributionReader(std::filesystem::path path) : path_(std::move(path)) {
    using detail::H5Id;
    using detail::h5_call;
    std::error_code error;
    if (!std::filesystem::is_regular_file(path_, error)) detail::fail_io("HDF5 file '", path_.string(), "' is not a readable file");
    const bool is_hdf5 = h5_call(path_, "read the file", [&] { return H5Fis_hdf5(path_.string().c_str()); }) > 0;
    if (!is_hdf5) detail::fail_io("'", path_.string(), "' is not an HDF5 file");
    file_ = H5Id(h5_call(path_, "open the file", [&] { return H5Fopen(path_.string().c_str(), H5F_ACC_RDONLY, H5P_DEFAULT); }),
                 H5Fclose);
    const bool has_format = h5_call(path_, "read its attributes", [&] { return H5Aexists(file_.get(), "format"); }) > 0;
    if (!has_format || detail::read_string_attribute(path_, file_.get(), "format") != attribution_file_format)
      detail::fail_io("HDF5 file '", path_.string(), "' is not a salient attribution file (", attribution_file_format, ")");
    methods_json_ = detail::read_string_attribute(path_, file_.get(), "methods");
    parameters_ = detail::read_string_attribute(path_, file_.get(), "parameters");
    // The methods from the JSON array of plain names the writer wrote.
    std::string name;
    bool inside = false;
    for (const char c : methods_json_) {
      if (c == '"') {
        if (inside) methods_.push_back(name), name.clear();
        inside = !inside;
      } else if (inside) {
        name += c;
      }
    }
    for (const char* column : {"item", "key", "source", "label", "top5_class", "top5_probability", "seconds", "convergence_delta"})
      index_.emplace_back(h5_call(path_, (std::string("open index/") + column).c_str(),
                                  [&] { return H5Dopen2(file_.get(), (std::string("index/") + column).c_str(), H5P_DEFAULT); }),
                          H5Dclose);
    rows_ = static_cast<int64_t>(detail::dataset_dims(path_, index_[0].get()).at(0));
    for (const auto& column : index_)
      if (static_cast<int64_t>(detail::dataset_dims(path_, column.get()).at(0)) != rows_)
        detail::fail_io("HDF5 file '", path_.string(), "': its index columns hold different item counts");
    for (const auto& method : methods_) {
      const bool present = h5_call(path_, "look for a map", [&] {
        return H5Lexists(file_.get(), ("maps/" + method).c_str(), H5P_DEFAULT);
      }) > 0;
      if (!present) {
        if (rows_ > 0) detail::fail_io("HDF5 file '", path_.string(), "' has no maps of ", method);
        maps_.emplace_back();
        continue;
      }
      maps_.emplace_back(h5_call(path_, ("open maps/" + method).c_str(),
                                 [&] { return H5Dopen2(file_.get(), ("maps/" + method).c_str(), H5P_DEFAULT); }),
                         H5Dclose);
      if (static_cast<int64_t>(detail::dataset_dims(path_, maps_.back().get()).at(0)) != rows_)
        detail::fail_io("HDF5 file '", path_.string(), "': maps/", method, " and the index hold different item counts");
    }
  }

  const std::vector<std::string>& methods() const { return methods_; }
  const std::string& parameters() const { return parameters_; }

  // Every item's dataset position (index/item), read in one call.
  std::vector<int64_t> items() const {
    std::vector<int64_t> items(static_cast<std::size_t>(rows_));
    if (rows_ > 0)
      detail::h5_call(path_, "read index/item", [&] {
        return H5Dread(index_[0].get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, items.data());
      });
    return items;
  }

  // A string attribute of the file ("" when it has none).
  std::string attribute(const std::string& name) const {
    const bool present = detail::h5_call(path_, "read its attributes", [&] { return H5Aexists(file_.get(), name.c_str()); }) > 0;
    return present ? detail::read_string_attribute(path_, file_.get(), name.c_str()) : std::string();
  }

  // Whether the maps are stored as float16 (false for a file without items).
  bool half() const {
    if (maps_.empty() || maps_[0].get() < 0) return false;
    detail::H5Id type(detail::h5_call(path_, "read a map's type", [&] { return H5Dget_type(maps_[0].get()); }), H5Tclose);
    return H5Tget_size(type.get()) == 2;
  }

  // The maps' deflate level (0: stored as they are; -1 for a file without items).
  int compression() const {
    if (maps_.empty() || maps_[0].get() < 0) return -1;
    detail::H5Id properties(detail::h5_call(path_, "read a map's properties", [&] { return H5Dget_create_plist(maps_[0].get()); }),
                            H5Pclose);
    const int filters = H5Pget_nfilters(properties.get());
    for (int f = 0; f < filters; ++f) {
      unsigned flags = 0, level = 0;
      std::size_t values = 1;
      if (H5Pget_filter2(properties.get(), static_cast<unsigned>(f), &flags, &values, &level, 0, nullptr, nullptr) == H5Z_FILTER_DEFLATE)
        return static_cast<int>(level);
    }
    return 0;
  }

  // One item's map of method `m` as stored (compressed), for AttributionWriter's copy.
  StoredMap stored_map(std::size_t m, int64_t row) const {
    check_row(row);
    if (m >= maps_.size()) detail::fail("HDF5 file '", path_.string(), "' has no method ", m);
    const hid_t dataset = maps_[m].get();
    const auto dims = detail::dataset_dims(path_, dataset);
    StoredMap map;
    for (std::size_t d = 1; d < dims.size(); ++d) map.shape.push_back(static_cast<int64_t>(dims[d]));
    std::vector<hsize_t> offset(dims.size(), 0);
    offset[0] = static_cast<hsize_t>(row);
    hsize_t bytes = 0;
    detail::h5_call(path_, "read a chunk's size", [&] { return H5Dget_chunk_storage_size(dataset, offset.data(), &bytes); });
    if (bytes == 0 || bytes > (hsize_t{1} << 34)) detail::fail_io("HDF5 file '", path_.string(), "': item ", row, " of ", methods_[m], " has no stored map");
    map.bytes.resize(static_cast<std::size_t>(bytes));
    detail::h5_call(path_, "read a chunk", [&] {
      return H5Dread_chunk(dataset, H5P_DEFAULT, offset.data(), &map.filters, map.bytes.data());
    });
    return map;
  }
  int64_t size() const { return rows_; }

  AttributionIndexEntry entry(int64_t row) const {
    check_row(row);
    const auto r = static_cast<hsize_t>(row);
    AttributionIndexEntry entry;
    const auto text = detail::string_type(path_);
    detail::read_row(path_, index_[0].get(), r, H5T_NATIVE_INT64, &entry.item);
    entry.key = read_text(index_[1].get(), r, text.get());
    entry.source = read_text(index_[2].get(), r, text.get());
    detail::read_row(path_, index_[3].get(), r, H5T_NATIVE_INT64, &entry.label);
    std::vector<int64_t> classes(5);
    std::vector<double> probabilities(5);
    detail::read_row(path_, index_[4].get(), r, H5T_NATIVE_INT64, classes.data());
    detail::read_row(path_, index_[5].get(), r, H5T_NATIVE_DOUBLE, probabilities.data());
    for (std::size_t k = 0; k < 5 && classes[k] >= 0; ++k) {
      entry.top_classes.push_back(classes[k]);
      entry.top_probabilities.push_back(probabilities[k]);
    }
    entry.seconds.resize(methods_.size());
    entry.convergence_delta.resize(methods_.size());
    detail::read_row(path_, index_[6].get(), r, H5T_NATIVE_DOUBLE, entry.seconds.data());
    detail::read_row(path_, index_[7].get(), r, H5T_NATIVE_DOUBLE, entry.convergence_delta.data());
    return entry;
  }

  // One item's map of one method (float16 files are widened to float) and its shape.
  std::pair<std::vector<float>, std::vector<int64_t>> map(const std::string& method, int64_t row) const {
    check_row(row);
    const auto at = std::find(methods_.begin(), methods_.end(), method);
    if (at == methods_.end()) detail::fail("HDF5 file '", path_.string(), "' holds no maps of ", method);
    const hid_t dataset = maps_[static_cast<std::size_t>(at - methods_.begin())].get();
    const auto dims = detail::dataset_dims(path_, dataset);
    std::vector<int64_t> shape;
    std::size_t values = 1;
    for (std::size_t d = 1; d < dims.size(); ++d) shape.push_back(static_cast<int64_t>(dims[d])), values *= dims[d];
    std::vector<float> data(values);
    detail::read_row(path_, dataset, static_cast<hsize_t>(row), H5T_NATIVE_FLOAT, data.data());
    return {std::move(data), std::move(shape)};
  }

 private:
  void check_row(int64_t row) const {
    if (row < 0 || row >= rows_) detail::fail("item ", row, " is outside HDF5 file '", path_.string(), "' (", rows_, " items)");
  }
  std::string read_text(hid_t dataset, hsize_t row, hid_t type) const {
    char* text = nullptr;
    detail::read_row(path_, dataset, row, type, &text);
    std::string value = text ? text : "";
    H5free_memory(text);
    return value;
  }

  std::filesystem::path path_;
  detail::H5Id file_;
  std::vector<std::string> methods_;
  std::string methods_json_, parameters_;
  std::vector<detail::H5Id> index_, maps_;
  int64_t rows_ = 0;
};

// Writes the items of `inputs` (attribution files of the same methods, map types and shapes)
// into the new file `output`, ordered by their dataset position (index/item), copying each
// map's stored bytes as they are, and gives it the string `attributes`. An item that two rows
// hold is an error naming both files. On any error `output` is not left behind (an existing
// file there is refused, never touched). Returns the number of items written.
inline int64_t merge_attribution_files(const std::vector<std::filesystem::path>& inputs, const std::filesystem::path& output,
                                       const std::string& parameters_json,
                                       const std::vector<std::pair<std::string, std::string>>& attributes = {}) {
  if (inputs.empty()) detail::fail("nothing to merge: no attribution files given");
  struct Row {
    int64_t item;
    std::size_t file;
    int64_t row;
  };
  std::vector<Row> rows;
  std::vector<std::string> methods;
  std::optional<bool> half;
  std::optional<int> compression;  // stored chunks are copied as they are: every file's filters must be the output's
  for (std::size_t f = 0; f < inputs.size(); ++f) {  // one file open at a time: there may be thousands
    const AttributionReader reader(inputs[f]);
    if (f == 0) methods = reader.methods();
    if (reader.methods() != methods) detail::fail("'", inputs[f].string(), "' holds other methods than '", inputs[0].string(), "'");
    if (reader.size() == 0) continue;
    if (half && *half != reader.half())
      detail::fail("'", inputs[f].string(), "' stores its maps as ", reader.half() ? "float16" : "float32", ", the files before it do not");
    half = reader.half();
    if (compression && *compression != reader.compression())
      detail::fail("'", inputs[f].string(), "' compresses its maps at level ", reader.compression(), ", the files before it at ",
                   *compression);
    compression = reader.compression();
    const auto items = reader.items();
    for (std::size_t r = 0; r < items.size(); ++r) rows.push_back({items[r], f, static_cast<int64_t>(r)});
  }
  std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.item < b.item; });
  for (std::size_t k = 1; k < rows.size(); ++k)
    if (rows[k].item == rows[k - 1].item)
      detail::fail("item ", rows[k].item, " is in '", inputs[rows[k - 1].file].string(), "' and in '", inputs[rows[k].file].string(),
                   "': the files overlap");
  AttributionWriter writer(output, methods, half.value_or(false), parameters_json, compression.value_or(1));
  // From here the output is this function's own file: a failure removes it (and nothing else).
  struct RemoveUnlessDone {
    AttributionWriter& writer;
    const std::filesystem::path& path;
    bool done = false;
    ~RemoveUnlessDone() {
      if (done) return;
      std::error_code error;
      try {
        writer.close();
      } catch (...) {
      }
      std::filesystem::remove(path, error);
    }
  } cleanup{writer, output};
  // A file is opened at its first row and closed after its last: files sorted by item (a run's
  // parts) are open one at a time, interleaved ones (hash shards) together. An open file costs
  // HDF5 caches (~1 MB), so a file is never kept open past its rows.
  std::vector<int64_t> rows_left(inputs.size(), 0);
  for (const auto& row : rows) ++rows_left[row.file];
  std::vector<std::optional<AttributionReader>> open(inputs.size());
  for (const auto& row : rows) {
    if (!open[row.file]) open[row.file].emplace(inputs[row.file]);
    const auto& reader = *open[row.file];
    std::vector<StoredMap> maps;
    for (std::size_t m = 0; m < methods.size(); ++m) maps.push_back(reader.stored_map(m, row.row));
    writer.append(reader.entry(row.row), maps);
    if (--rows_left[row.file] == 0) open[row.file].reset();
  }
  for (const auto& [name, text] : attributes) writer.set_attribute(name, text);
  writer.close();
  cleanup.done = true;
  return static_cast<int64_t>(rows.size());
}

}  // namespace salient
