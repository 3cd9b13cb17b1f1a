#pragma once
// Where the command-line tools write, and the one rule they all follow: a tool writes into a
// new folder, an empty one, or a folder it wrote before (recognised by its marker file
// `.salient-output`, which names the tool and lists every file it wrote there), and it only
// ever replaces or removes files on that list. Anything else in the folder is never touched:
// a folder with files of its own, or a file of the user's where the tool would write, stops
// the tool before any computation.
//
// Single-file outputs (--json FILE) follow the same rule with the marker inside the file: an
// existing file is replaced only if it is a JSON object whose "written_by" names the tool.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include <csignal>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "salient/core/error.hpp"

namespace salient::cli {

class OutputFolder {
 public:
  static constexpr const char* marker_name = ".salient-output";

  // Claims `dir` for `tool` and proves it writable (by writing the marker), or fails. While
  // the claim lasts the folder is locked (flock), so a second run into it stops at once.
  OutputFolder(std::filesystem::path dir, std::string tool) : dir_(std::move(dir)), tool_(std::move(tool)) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const auto status = fs::symlink_status(dir_, ec);
    if (fs::exists(status)) {
      if (!fs::is_directory(status)) raise(error_kind::io, "output '", dir_.string(), "' exists and is not a folder; choose another --out");
    } else {
      const auto target = dir_.has_filename() ? dir_ : dir_.parent_path();  // "out/" names "out"
      if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
      created_ = fs::create_directory(target, ec);  // false if another run made it just now
      if (ec) raise(error_kind::io, "cannot create output folder '", dir_.string(), "': ", ec.message());
    }
    lock_.acquire(dir_);  // before looking inside: a run writing into the folder now would change it
    if (fs::exists(dir_ / marker_name)) {
      std::ifstream in(dir_ / marker_name);
      std::string owner;
      std::getline(in, owner);
      if (owner != tool_)
        raise(error_kind::io, "output folder '", dir_.string(), "' holds the output of ", owner.empty() ? "another program" : owner,
                     ", not of ", tool_, "; choose another --out");
      for (std::string line; std::getline(in, line);)
        if (safe_relative(line)) previous_.insert(line);
    } else if (!fs::is_empty(dir_, ec)) {
      raise(error_kind::io, "output folder '", dir_.string(), "' already holds files that ", tool_,
                   " did not write; choose a new or empty folder for --out");
    }
    write_marker(previous_);
    claimed_ = true;
    dir_text_ = dir_.string();
    marker_text_ = (dir_ / marker_name).string();
    written_paths_.reserve(4096);
    active() = this;
    for (int signal : {SIGINT, SIGTERM, SIGHUP}) std::signal(signal, &on_signal);
  }
  OutputFolder(const OutputFolder&) = delete;
  OutputFolder& operator=(const OutputFolder&) = delete;

  // Not finished (an error or a signal ended the run): a folder this run created or found
  // empty loses what this run wrote; a folder of an earlier run keeps its files, all recorded.
  ~OutputFolder() {
    if (active() == this) {
      for (int signal : {SIGINT, SIGTERM, SIGHUP}) std::signal(signal, SIG_DFL);
      active() = nullptr;
    }
    if (finished_ || !claimed_ || !previous_.empty() || keep_) return;
    std::error_code ec;
    for (const auto& file : written_)
      if (written_set_.count(file)) remove_own(file);
    std::filesystem::remove(dir_ / marker_name, ec);
    if (created_) std::filesystem::remove(dir_, ec);  // only if empty: nothing but ours was there
  }

  const std::filesystem::path& dir() const { return dir_; }

  // The path to write `relative` (e.g. "summary.json", "certificates/pair.json") at. Refuses a
  // file that exists and is not on the marker's list; records the file before it is written,
  // so a run that dies half-way leaves nothing unrecorded.
  std::filesystem::path file(const std::string& relative) {
    namespace fs = std::filesystem;
    const std::lock_guard<std::mutex> hold(mutex_);  // a tool may write on a thread of its own
    if (!safe_relative(relative)) raise(error_kind::bad_input, "internal: output name '", relative, "' is not a plain relative path");
    const auto path = dir_ / relative;
    if (written_set_.count(relative)) return path;
    std::error_code ec;
    fs::path partial = dir_;
    for (const auto& part : fs::path(relative)) {
      partial /= part;
      const auto status = fs::symlink_status(partial, ec);
      if (fs::is_symlink(status))
        raise(error_kind::io, "output folder '", dir_.string(), "' has a link at '", relative, "'; ", tool_, " does not write through links");
    }
    if (fs::exists(fs::symlink_status(path, ec)) && !previous_.count(relative))
      raise(error_kind::io, "output folder '", dir_.string(), "' already has '", relative, "', which ", tool_,
                   " did not write; choose another --out");
    std::vector<std::string> new_folders;
    for (auto parent = path.parent_path(); parent != dir_ && !fs::exists(parent, ec); parent = parent.parent_path())
      new_folders.push_back(parent.string());
    fs::create_directories(path.parent_path(), ec);
    if (ec) raise(error_kind::io, "cannot create folder '", path.parent_path().string(), "': ", ec.message());
    for (auto it = new_folders.rbegin(); it != new_folders.rend(); ++it) written_paths_.push_back(*it + "/");
    written_paths_.push_back(path.string());
    written_.push_back(relative);
    written_set_.insert(relative);
    std::ofstream marker(dir_ / marker_name, std::ios::app);
    marker << relative << "\n";
    if (!marker) raise(error_kind::io, "cannot write to output folder '", dir_.string(), "'");
    return path;
  }

  // From now on an unfinished run keeps what it wrote (all listed in the marker), as a run of
  // an earlier run's folder does: a resumable run's finished parts outlive a crash or signal.
  void keep_on_failure() { keep_ = true; }

  // Removes one of this run's files (e.g. a part merged into the final file) and unlists it.
  void remove(const std::string& relative) {
    const std::lock_guard<std::mutex> hold(mutex_);
    if (!written_set_.erase(relative)) raise(error_kind::bad_input, "internal: '", relative, "' is not a file of this run");
    remove_own(relative);  // written_ keeps the name: every use of it looks in written_set_
  }

  // The run succeeded: files of earlier runs that this run did not write again are removed
  // (they were this tool's) and the marker lists exactly this run's files; or, with
  // `keep_earlier` (a tool whose modes write different files), both are kept and listed.
  void finish(bool keep_earlier = false) {
    std::set<std::string> listed = written_set_;
    for (const auto& old : previous_)
      if (!listed.count(old)) {
        if (keep_earlier) listed.insert(old);
        else remove_own(old);
      }
    write_marker(listed);
    finished_ = true;
  }

 private:
  // An exclusive flock on the folder itself (no file of its own), held until the tool ends; the
  // kernel drops it when the process dies. File systems without flock go unlocked.
  class FolderLock {
   public:
    FolderLock() = default;
    FolderLock(const FolderLock&) = delete;
    FolderLock& operator=(const FolderLock&) = delete;
    ~FolderLock() {
      if (fd_ >= 0) ::close(fd_);
    }
    void acquire(const std::filesystem::path& dir) {
      fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd_ < 0) raise(error_kind::io, "cannot open output folder '", dir.string(), "': ", std::strerror(errno));
      if (::flock(fd_, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK) return;
      raise(error_kind::io, "output folder '", dir.string(),
            "' is being written by another run right now; wait for it to end or choose another --out");
    }

   private:
    int fd_ = -1;
  };

  static OutputFolder*& active() {
    static OutputFolder* folder = nullptr;
    return folder;
  }

  // SIGINT / SIGTERM / SIGHUP: say what was interrupted, remove what this run wrote into a new
  // or empty folder (an earlier run's folder keeps its files, all listed in the marker), and
  // exit with 128 + the signal. Only async-signal-safe calls on strings prepared beforehand.
  static void on_signal(int signal) {
    auto say = [](const char* text) { (void)!::write(2, text, std::strlen(text)); };
    OutputFolder* folder = active();
    const char* name = signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "SIGHUP";
    if (folder) {
      say(folder->tool_.c_str());
      say(": interrupted by ");
      say(name);
      if (folder->previous_.empty() && !folder->finished_ && !folder->keep_) {
        // Files, then the folders this run created (listed before their files, so removed after them).
        for (auto it = folder->written_paths_.rbegin(); it != folder->written_paths_.rend(); ++it)
          if (!it->empty() && it->back() == '/') ::rmdir(it->c_str());
          else ::unlink(it->c_str());
        ::unlink(folder->marker_text_.c_str());
        if (folder->created_) ::rmdir(folder->dir_text_.c_str());
        say("; removed the unfinished output in '");
      } else {
        say("; the files written so far stay in '");
      }
      say(folder->dir_text_.c_str());
      say("'\n");
    }
    ::_exit(128 + signal);
  }

  static bool safe_relative(const std::string& name) {
    const std::filesystem::path p(name);
    if (name.empty() || p.has_root_path() || name == marker_name) return false;
    return std::none_of(p.begin(), p.end(), [](const std::filesystem::path& part) { return part == ".." || part == "."; });
  }

  void write_marker(const std::set<std::string>& files) {
    std::ofstream marker(dir_ / marker_name, std::ios::trunc);
    marker << tool_ << "\n";
    for (const auto& f : files) marker << f << "\n";
    marker.close();
    if (!marker) raise(error_kind::io, "cannot write to output folder '", dir_.string(), "' (", std::strerror(errno), ")");
  }

  // Removes one of this tool's files (never a folder or a link's target), then the folders
  // above it that it leaves empty, up to the output folder.
  void remove_own(const std::string& relative) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const auto path = dir_ / relative;
    const auto status = fs::symlink_status(path, ec);
    if (fs::is_regular_file(status) || fs::is_symlink(status)) fs::remove(path, ec);
    for (auto parent = path.parent_path(); parent != dir_ && parent.string().size() > dir_.string().size();
         parent = parent.parent_path())
      if (!fs::remove(parent, ec)) break;  // remove() of a folder succeeds only when it is empty
  }

  std::filesystem::path dir_;
  std::string tool_;
  std::mutex mutex_;  // file() and remove() may come from two threads
  FolderLock lock_;  // released after the destructor's clean-up
  std::set<std::string> previous_;
  std::vector<std::string> written_;   // in the order written (as the signal handler's written_paths_)
  std::set<std::string> written_set_;  // the ones still there, for lookups: a dataset run writes 100,000s
  bool created_ = false, claimed_ = false, finished_ = false;
  volatile bool keep_ = false;  // read by the signal handler
  // For the signal handler: full paths of what this run wrote ("dir/" for a folder it created).
  std::string dir_text_, marker_text_;
  std::vector<std::string> written_paths_;
};

// A single output file (--json FILE): refuses to replace an existing file that is not a JSON
// object with "written_by": `tool`. Call before any computation; add "written_by" to the JSON.
inline void check_output_file(const std::filesystem::path& path, const std::string& tool) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::symlink_status(path, ec);
  if (!fs::exists(status)) {
    const auto parent = path.parent_path();
    if (!parent.empty() && !fs::is_directory(parent, ec))
      raise(error_kind::io, "cannot write '", path.string(), "': folder '", parent.string(), "' does not exist");
    return;
  }
  if (!fs::is_regular_file(status)) raise(error_kind::io, "'", path.string(), "' exists and is not a file ", tool, " wrote; choose another name");
  std::ifstream in(path);
  const auto document = nlohmann::json::parse(std::istreambuf_iterator<char>(in), {}, nullptr, /*allow_exceptions=*/false);
  if (!document.is_object() || document.value("written_by", std::string()) != tool)
    raise(error_kind::io, "'", path.string(), "' exists and was not written by ", tool, "; choose another name (", tool,
                 " replaces only its own files)");
}

}  // namespace salient::cli
